/* report_main.c -- mtasts-report: the operator's view of the collector's
 * database. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector_config.h"
#include "log.h"
#include "store_pg.h"
#include "wire.h"

#define NAME_MAX_LEN 253

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mtasts-report [--database CONNINFO] [--migrations DIR] "
	    "domains add NAME...\n"
	    "       mtasts-report [--database CONNINFO] [--migrations DIR] "
	    "domains remove NAME...\n"
	    "       mtasts-report [--database CONNINFO] [--migrations DIR] "
	    "domains list [--all]\n"
	    "CONNINFO defaults to $MTASTS_DATABASE, DIR to $MTASTS_MIGRATIONS "
	    "or %s.\n"
	    "exit: 0 done, 1 a name was refused or not found, 2 usage or "
	    "database failure\n",
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
	size_t n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > NAME_MAX_LEN || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return wire_host_valid(out) ? 0 : -1;
}

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

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"database", required_argument, NULL, 'D'},
	    {"migrations", required_argument, NULL, 'M'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *conninfo = getenv("MTASTS_DATABASE");
	const char *migrations = getenv("MTASTS_MIGRATIONS");
	char err[512];
	struct store *st;
	int ch, all = 0, rc;
	const char *verb;

	log_set_name("mtasts-report");
	while ((ch = getopt_long(argc, argv, "+D:M:ah", opts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			conninfo = optarg;
			break;
		case 'M':
			migrations = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	/* "domains list --all": options after the verbs too. */
	if (argc >= 3 && strcmp(argv[argc - 1], "--all") == 0) {
		all = 1;
		argc--;
	}
	if (argc < 2 || strcmp(argv[0], "domains") != 0) {
		usage(stderr);
		return 2;
	}
	verb = argv[1];
	if (!((strcmp(verb, "list") == 0 && argc == 2) ||
		((strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) &&
		    argc > 2 && !all))) {
		usage(stderr);
		return 2;
	}
	if (conninfo == NULL || conninfo[0] == '\0') {
		fprintf(stderr, "mtasts-report: no database: give --database "
				"or set MTASTS_DATABASE\n");
		return 2;
	}
	if (migrations == NULL || migrations[0] == '\0')
		migrations = COLLECTOR_MIGRATIONS_DEFAULT;
	/* store_open brings the schema up to date, as the collector does. */
	if ((st = store_open(conninfo, migrations, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mtasts-report: database: %s\n", err);
		return 2;
	}
	if (strcmp(verb, "list") == 0)
		rc = s_list(st, all);
	else
		rc = s_change(st, strcmp(verb, "add") == 0, argv + 2, argc - 2);
	store_close(&st);
	return rc;
}
