/* report_main.c -- mtasts-report: the operator's view of the collector's
 * database. */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "collector_config.h"
#include "log.h"
#include "report_query.h"
#include "store_pg.h"
#include "wire.h"

#define NAME_MAX_LEN 253

enum format { FMT_DEFAULT, FMT_TABLE, FMT_JSON, FMT_CSV, FMT_CEF };

struct args {
	const char *conninfo;
	const char *migrations;
	enum format format;
	int all;
	int open_only;
	const char *since;
	const char *severity;
	const char *days;
	const char *limit;
	const char *by;
	const char *note;
	unsigned given; /* OPT_* bits: which command options were given */
};

enum {
	OPT_ALL = 1 << 0,
	OPT_OPEN = 1 << 1,
	OPT_SINCE = 1 << 2,
	OPT_SEVERITY = 1 << 3,
	OPT_DAYS = 1 << 4,
	OPT_LIMIT = 1 << 5,
	OPT_BY = 1 << 6,
	OPT_NOTE = 1 << 7,
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mtasts-report [--database CONNINFO] [--format FMT] "
	    "COMMAND [ARGS]\n"
	    "  domains add NAME... | domains remove NAME... | "
	    "domains list [--all]\n"
	    "  status                      one row per watched domain\n"
	    "  domain DOMAIN               the latest compared round of "
	    "DOMAIN\n"
	    "  incidents [--open] [--since T] [--severity S] [--limit N]\n"
	    "                              T: RFC 3339 or 24h, 7d...; S: "
	    "info|warning|error\n"
	    "  expiring [--days N]         certificates with N days left or "
	    "less (30)\n"
	    "  agents                      the agents and their health\n"
	    "  ack ID [--by NAME] [--note TEXT]\n"
	    "FMT: table (default on a terminal), json (JSON Lines, the "
	    "default otherwise),\n"
	    "     csv, cef (incidents only).\n"
	    "CONNINFO defaults to $MTASTS_DATABASE.  domains add|remove "
	    "apply the migrations\n"
	    "of --migrations DIR ($MTASTS_MIGRATIONS or %s).\n"
	    "exit: 0 done, 1 nothing found or unknown domain or id (or a "
	    "name refused),\n"
	    "      2 usage or database failure\n",
	    COLLECTOR_MIGRATIONS_DEFAULT);
}

/*
 * The stored form of a domain: lower case, no trailing dot, a host name
 * as the wire carries it (the collector sends no other in a task set).
 * Returns 0 with the name in out, or -1.
 */
static int
s_normalize(const char *in, char *out, size_t outlen)
{
	return report_parse_domain(in, out, outlen);
}

/* ---- domains add|remove|list: the store, with its migrations ---- */

static int
s_list(struct store *st, int all)
{
	struct store_domain *list;
	size_t n;

	if (store_domain_list(st, all, &list, &n) == -1) {
		fprintf(stderr, "mtasts-report: %s\n", store_error(st));
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (all)
			printf("%s\t%s\n", list[i].name,
			    list[i].removed_at != 0 ? "removed" : "active");
		else
			printf("%s\n", list[i].name);
	}
	store_domain_list_free(list, n);
	return fflush(stdout) == EOF ? 2 : 0;
}

static int
s_change(struct store *st, int add, char **names, int n)
{
	char name[NAME_MAX_LEN + 1];
	int rc = 0;

	for (int i = 0; i < n; i++) {
		int changed = 0;

		if (s_normalize(names[i], name, sizeof(name)) == -1) {
			fprintf(stderr,
			    "mtasts-report: %s: not a domain name\n", names[i]);
			rc = 1;
			continue;
		}
		if ((add ? store_domain_add(st, name, &changed)
			 : store_domain_remove(st, name, &changed)) == -1) {
			fprintf(stderr, "mtasts-report: %s: %s\n", name,
			    store_error(st));
			return 2;
		}
		if (add)
			printf("%s %s\n", changed ? "added" : "present", name);
		else if (changed)
			printf("removed %s\n", name);
		else {
			fprintf(stderr,
			    "mtasts-report: %s: not an active "
			    "domain\n",
			    name);
			rc = 1;
		}
	}
	return rc;
}

static int
s_domains(const struct args *a, int argc, char **argv)
{
	const char *migrations = a->migrations;
	const char *verb;
	char err[512];
	struct store *st;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	verb = argv[1];
	if ((a->given & ~OPT_ALL) != 0 || a->format != FMT_DEFAULT ||
	    !((strcmp(verb, "list") == 0 && argc == 2) ||
		((strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) &&
		    argc > 2 && !a->all))) {
		usage(stderr);
		return 2;
	}
	if (migrations == NULL || migrations[0] == '\0')
		migrations = COLLECTOR_MIGRATIONS_DEFAULT;
	/* store_open brings the schema up to date, as the collector does. */
	if ((st = store_open(a->conninfo, migrations, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "mtasts-report: database: %s\n", err);
		return 2;
	}
	if (strcmp(verb, "list") == 0)
		rc = s_list(st, a->all);
	else
		rc = s_change(st, strcmp(verb, "add") == 0, argv + 2, argc - 2);
	store_close(&st);
	return rc;
}

/* ---- the reports: a plain connection, no migration ---- */

static PGconn *
s_connect(const char *conninfo, int read_only)
{
	PGconn *conn = PQconnectdb(conninfo);
	PGresult *res;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "mtasts-report: database: %s",
		    conn != NULL ? PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return NULL;
	}
	if (!read_only)
		return conn;
	/* A report never writes; say so to the server as well. */
	res = PQexec(conn, "SET default_transaction_read_only = on");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "mtasts-report: database: %s",
		    PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

static int
s_colour(void)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == '\0');
}

/* Writes a listing in the chosen format; exit status 0, 1 (empty) or 2. */
static int
s_emit_list(enum format fmt, enum report_kind kind, const json_t *rows)
{
	int rc;

	switch (fmt) {
	case FMT_TABLE:
		rc = report_write_table(stdout, kind, rows, s_colour());
		break;
	case FMT_CSV:
		rc = report_write_csv(stdout, kind, rows);
		break;
	case FMT_CEF:
		rc = report_write_cef(stdout, rows);
		break;
	default:
		rc = report_write_jsonl(stdout, rows);
		break;
	}
	if (rc == -1 || fflush(stdout) == EOF) {
		fprintf(stderr, "mtasts-report: cannot write the output\n");
		return 2;
	}
	return json_array_size(rows) == 0 ? 1 : 0;
}

static int
s_refuse_cef(const char *cmd)
{
	fprintf(stderr,
	    "mtasts-report: %s: --format cef is for incidents only\n", cmd);
	return 2;
}

/* A decimal in [lo, hi]; 0 or -1. */
static int
s_number(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static const char *
s_default_by(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u != NULL && u[0] != '\0')
		return u;
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_name != NULL)
		return pw->pw_name;
	return "mtasts-report";
}

static int
s_report(const struct args *a, int argc, char **argv)
{
	const char *cmd = argv[0];
	struct report_incident_filter f = {0};
	char err[512], domain[NAME_MAX_LEN + 1];
	enum report_kind kind = REPORT_KIND_STATUS;
	time_t now = time(NULL);
	json_t *out = NULL;
	unsigned allowed = 0;
	int nargs = 0, ack = 0, rc, qrc;
	int64_t id = 0;
	long days = REPORT_EXPIRING_DAYS_DEFAULT, limit = 0;
	enum format fmt = a->format;
	PGconn *conn;

	if (fmt == FMT_DEFAULT)
		fmt = isatty(STDOUT_FILENO) ? FMT_TABLE : FMT_JSON;
	if (strcmp(cmd, "status") == 0) {
		kind = REPORT_KIND_STATUS;
	} else if (strcmp(cmd, "domain") == 0) {
		nargs = 1;
	} else if (strcmp(cmd, "incidents") == 0) {
		kind = REPORT_KIND_INCIDENTS;
		allowed = OPT_OPEN | OPT_SINCE | OPT_SEVERITY | OPT_LIMIT;
	} else if (strcmp(cmd, "expiring") == 0) {
		kind = REPORT_KIND_EXPIRING;
		allowed = OPT_DAYS | OPT_LIMIT;
	} else if (strcmp(cmd, "agents") == 0) {
		kind = REPORT_KIND_AGENTS;
	} else if (strcmp(cmd, "ack") == 0) {
		ack = 1;
		nargs = 1;
		allowed = OPT_BY | OPT_NOTE;
	} else {
		fprintf(stderr, "mtasts-report: %s: unknown command\n", cmd);
		usage(stderr);
		return 2;
	}
	if (argc - 1 != nargs || (a->given & ~allowed) != 0) {
		usage(stderr);
		return 2;
	}
	if (a->format == FMT_CEF && strcmp(cmd, "incidents") != 0)
		return s_refuse_cef(cmd);
	if (ack && a->format == FMT_CSV) {
		fprintf(stderr, "mtasts-report: ack: --format table or json\n");
		return 2;
	}
	/* Check every argument before touching the database. */
	if (strcmp(cmd, "domain") == 0 &&
	    report_parse_domain(argv[1], domain, sizeof(domain)) == -1) {
		fprintf(
		    stderr, "mtasts-report: %s: not a domain name\n", argv[1]);
		return 2;
	}
	if (ack && report_parse_id(argv[1], &id) == -1) {
		fprintf(
		    stderr, "mtasts-report: %s: not an incident id\n", argv[1]);
		return 2;
	}
	if (a->since != NULL &&
	    report_parse_time(a->since, now, &f.since) == -1) {
		fprintf(stderr,
		    "mtasts-report: --since %s: want RFC 3339 or N[smhdw]\n",
		    a->since);
		return 2;
	}
	if (a->severity != NULL &&
	    (f.min_severity = report_parse_severity(a->severity)) == -1) {
		fprintf(stderr,
		    "mtasts-report: --severity %s: want info, warning or "
		    "error\n",
		    a->severity);
		return 2;
	}
	if (a->days != NULL &&
	    s_number(a->days, 0, REPORT_DAYS_MAX, &days) == -1) {
		fprintf(stderr, "mtasts-report: --days %s: want 0 to %d\n",
		    a->days, REPORT_DAYS_MAX);
		return 2;
	}
	if (a->limit != NULL &&
	    s_number(a->limit, 1, REPORT_ROWS_MAX, &limit) == -1) {
		fprintf(stderr, "mtasts-report: --limit %s: want 1 to %d\n",
		    a->limit, REPORT_ROWS_MAX);
		return 2;
	}
	f.open_only = a->open_only;
	f.limit = (unsigned)limit;

	if ((conn = s_connect(a->conninfo, !ack)) == NULL)
		return 2;
	if (strcmp(cmd, "status") == 0)
		qrc = report_status(conn, now, &out, err, sizeof(err));
	else if (strcmp(cmd, "domain") == 0)
		qrc = report_domain(conn, domain, now, &out, err, sizeof(err));
	else if (strcmp(cmd, "incidents") == 0)
		qrc = report_incidents(conn, &f, &out, err, sizeof(err));
	else if (strcmp(cmd, "expiring") == 0)
		qrc = report_expiring(conn, (int)days, now, (unsigned)limit,
		    &out, err, sizeof(err));
	else if (strcmp(cmd, "agents") == 0)
		qrc = report_agents(conn, now, 0, &out, err, sizeof(err));
	else
		qrc =
		    report_ack(conn, id, a->by != NULL ? a->by : s_default_by(),
			a->note, &out, err, sizeof(err));
	PQfinish(conn);
	if (qrc == -1) {
		fprintf(stderr, "mtasts-report: %s: %s\n", cmd, err);
		return 2;
	}
	if (qrc == 1) {
		if (ack)
			fprintf(stderr, "mtasts-report: %s: no such incident\n",
			    argv[1]);
		else
			fprintf(stderr, "mtasts-report: %s: unknown domain\n",
			    domain);
		return 1;
	}
	if (strcmp(cmd, "domain") == 0 || ack) {
		if (fmt == FMT_JSON)
			rc = report_write_jsonl(stdout, out);
		else if (fmt == FMT_CSV)
			rc = report_write_csv(stdout, REPORT_KIND_HOSTS,
			    json_object_get(
				json_object_get(out, "mtasts"), "hosts"));
		else if (ack)
			rc = printf("acknowledged incident %" PRId64 "\n", id) <
				     0
				 ? -1
				 : 0;
		else
			rc = report_write_domain_text(stdout, out, s_colour());
		json_decref(out);
		if (rc == -1 || fflush(stdout) == EOF) {
			fprintf(
			    stderr, "mtasts-report: cannot write the output\n");
			return 2;
		}
		return 0;
	}
	rc = s_emit_list(fmt, kind, out);
	json_decref(out);
	return rc;
}

static int
s_format(const char *s, enum format *out)
{
	static const struct {
		const char *name;
		enum format f;
	} names[] = {{"table", FMT_TABLE}, {"json", FMT_JSON}, {"csv", FMT_CSV},
	    {"cef", FMT_CEF}};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].f;
			return 0;
		}
	}
	return -1;
}

/*
 * Options come before the command (global ones) or after it, in any
 * order; getopt_long permutes, so "incidents --open" and "--open
 * incidents" are the same.  Which options a command takes is checked
 * there.
 */
static int
s_parse(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"database", required_argument, NULL, 'D'},
	    {"migrations", required_argument, NULL, 'M'},
	    {"format", required_argument, NULL, 'f'},
	    {"all", no_argument, NULL, 'a'},
	    {"open", no_argument, NULL, 'o'},
	    {"since", required_argument, NULL, 's'},
	    {"severity", required_argument, NULL, 'S'},
	    {"days", required_argument, NULL, 'd'},
	    {"limit", required_argument, NULL, 'l'},
	    {"by", required_argument, NULL, 'b'},
	    {"note", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "D:M:f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			a->conninfo = optarg;
			break;
		case 'M':
			a->migrations = optarg;
			break;
		case 'f':
			if (s_format(optarg, &a->format) == -1) {
				fprintf(stderr,
				    "mtasts-report: --format %s: want table, "
				    "json, csv or cef\n",
				    optarg);
				return 2;
			}
			break;
		case 'a':
			a->all = 1;
			a->given |= OPT_ALL;
			break;
		case 'o':
			a->open_only = 1;
			a->given |= OPT_OPEN;
			break;
		case 's':
			a->since = optarg;
			a->given |= OPT_SINCE;
			break;
		case 'S':
			a->severity = optarg;
			a->given |= OPT_SEVERITY;
			break;
		case 'd':
			a->days = optarg;
			a->given |= OPT_DAYS;
			break;
		case 'l':
			a->limit = optarg;
			a->given |= OPT_LIMIT;
			break;
		case 'b':
			a->by = optarg;
			a->given |= OPT_BY;
			break;
		case 'n':
			a->note = optarg;
			a->given |= OPT_NOTE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.conninfo = getenv("MTASTS_DATABASE");
	a.migrations = getenv("MTASTS_MIGRATIONS");
	log_set_name("mtasts-report");
	if ((rc = s_parse(argc, argv, &a)) != -1)
		return rc;
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	if (a.conninfo == NULL || a.conninfo[0] == '\0') {
		fprintf(stderr, "mtasts-report: no database: give --database "
				"or set MTASTS_DATABASE\n");
		return 2;
	}
	if (strcmp(argv[0], "domains") == 0)
		return s_domains(&a, argc, argv);
	return s_report(&a, argc, argv);
}
