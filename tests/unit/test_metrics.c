/* test_metrics.c -- the /metrics exposition against a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "compare.h"
#include "ingest.h"
#include "metrics.h"
#include "store_pg.h"
#include "resultfix.h"

#define sql(t, ...)  pgschema_sql(&(t)->rf.db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->rf.db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->rf.db, (query))

/*
 * Environment as for test_compare: MTASTS_TEST_PG (required),
 * MTASTS_TEST_SQLDIR (default deploy/sql), and MTASTS_PROMPARSE (default
 * tests/lib/promparse.py), the strict parser every exposition goes
 * through.  Three agents write results with store_write_batch; incidents
 * are inserted by hand.  MTASTS_METRICS_SCALE=1 adds the measurement of
 * docs/metrics.md (1000 domains, 3 agents), which asserts no time.
 * MTASTS_TEST_FILTER runs the tests matching a pattern only, and
 * MTASTS_METRICS_DUMP=FILE keeps the last exposition rendered.
 */

#define DAY	 86400L
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define MX	 "mx1.example.com"
#define POLHOST	 "mta-sts.example.com"
#define NAGENTS	 3

enum { ROOT, LEAF_POL, LEAF_MX, LEAF_MX_SOON, NCERTS };

static struct {
	const char *conninfo;
	const char *sqldir;
	const char *promparse;
	time_t now;
	struct rf_cert c[NCERTS];
} fx;

struct t {
	PGconn *conn; /* the caller's connection metrics_render reads on */
	PGconn *cmp;
	struct rf_db rf;
	int64_t round;
	char *out;
	size_t outlen;
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, long days)
{
	struct tc_opts o = {0};

	o.cn = cn;
	o.serial = 200 + which;
	o.not_before = fx.now - 30 * DAY;
	o.not_after = fx.now + days * DAY;
	if (which != ROOT)
		o.san = "DNS:" MX ",DNS:" POLHOST;
	return rf_cert_make(
	    &fx.c[which], which != ROOT ? &fx.c[ROOT] : NULL, &o, 0);
}

static int
group_setup(void **state)
{
	(void)state;
	fx.now = time(NULL);
	if (s_make_cert(ROOT, "Metrics Test Root", 3650) == -1 ||
	    s_make_cert(LEAF_POL, POLHOST, 60) == -1 ||
	    s_make_cert(LEAF_MX, MX, 20) == -1 ||
	    s_make_cert(LEAF_MX_SOON, MX, 5) == -1)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	rf_certs_free(fx.c, NCERTS);
	return 0;
}

static int
setup(void **state)
{
	static const char *const region[NAGENTS] = {
	    "eu-west", "us-east", "ap \"south\"\\1\nx"};
	const struct rf_db_opts o = {.conninfo = fx.conninfo,
	    .sqldir = fx.sqldir,
	    .schema = "metrics_test",
	    .keyfmt = "METRICSKEY%d",
	    .regions = region,
	    .nagents = NAGENTS,
	    .certs = fx.c,
	    .ncerts = NCERTS};
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	*state = t;
	if (rf_db_open(&t->rf, &o) == -1 ||
	    (t->conn = rf_db_connect(&t->rf)) == NULL ||
	    (t->cmp = rf_db_connect(&t->rf)) == NULL)
		return -1;
	t->round = fx.now / INTERVAL;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	free(t->out);
	PQfinish(t->conn);
	PQfinish(t->cmp);
	rf_db_close(&t->rf);
	free(t);
	return 0;
}

/*
 * One result: STS id, an enforce policy, the policy host with LEAF_POL
 * and one MX with LEAF_MX, both under ROOT, verified, TLS 1.3 and 1.2.
 */
static void
pr_init(struct rf_result *x, const char *domain, int64_t round)
{
	rf_result_init(x, domain, POLHOST, MX, round);
	x->r.started_at_ms = (int64_t)round * INTERVAL * 1000 + 1500;
	x->ph.tls_version = "TLSv1.3";
	x->mxh.tls_version = "TLSv1.2";
	rf_result_chains(x, LEAF_POL, LEAF_MX, ROOT);
}

/* Adds one finding of severity sev. */
static void
pr_finding(struct rf_result *x, const char *code, Mtastswatch__V1__Severity sev)
{
	rf_result_finding(x, code, sev, MX, "test");
}

/* Stores x as agent a's next result, received at `at`. */
static void
put_at(struct t *t, int a, struct rf_result *x, time_t at)
{
	if (rf_put(&t->rf, a, x, at) != 0)
		fail();
}

static void
put(struct t *t, int a, struct rf_result *x)
{
	put_at(t, a, x, fx.now);
}

/* ---- reading the exposition ---- */

/*
 * The value of the sample whose name and labels are exactly series (as
 * rendered), parsed as Prometheus would; fails the test when absent.
 */
static double
value_of(const struct t *t, const char *series)
{
	size_t n = strlen(series);
	const char *p = t->out;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == t->out || p[-1] == '\n') && p[n] == ' ') {
			char *end;
			double v = strtod(p + n + 1, &end);

			assert_true(end > p + n + 1 && *end == '\n');
			return v;
		}
		p += n;
	}
	print_error("series not found: %s\n", series);
	fail();
	return 0;
}

/* 1 when some sample line starts with prefix. */
static int
has_line(const struct t *t, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = t->out; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, n) == 0)
			return 1;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

/* Exit status of the strict parser run on text. */
static int
promparse(const char *text, size_t len)
{
	char path[] = "/tmp/test_metrics_XXXXXX", cmd[512];
	int fd = mkstemp(path), rc;

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", fx.promparse, path);
	rc = system(cmd);
	unlink(path);
	assert_true(rc != -1 && WIFEXITED(rc));
	return WEXITSTATUS(rc);
}

static void
render(struct t *t, const struct ingest_counters *ic)
{
	char err[512];

	free(t->out);
	t->out = NULL;
	if (metrics_render(t->conn, ic, fx.now, &t->out, &t->outlen, err,
		sizeof(err)) != 0) {
		print_error("metrics_render: %s\n", err);
		fail();
	}
	assert_string_equal(err, "");
	assert_int_equal(strlen(t->out), t->outlen);
	if (getenv("MTASTS_METRICS_DUMP") != NULL) {
		FILE *f = fopen(getenv("MTASTS_METRICS_DUMP"), "w");

		if (f != NULL) {
			fputs(t->out, f);
			fclose(f);
		}
	}
	assert_int_equal(promparse(t->out, t->outlen), 0);
}

static void
incident(struct t *t, const char *domain, const char *code,
    const char *severity, const char *state)
{
	sql(t,
	    "INSERT INTO incidents (domain, code, subject, severity, state) "
	    "VALUES ('%s', '%s', 'subject-%s', '%s', '%s')",
	    domain, code, severity, severity, state);
}

/* ---- tests ---- */

static void
test_promparse_self_test(void **state)
{
	char cmd[512];
	int rc;

	(void)state;
	snprintf(cmd, sizeof(cmd), "python3 %s --self-test >/dev/null",
	    fx.promparse);
	rc = system(cmd);
	assert_true(rc != -1 && WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);
}

static void
test_full(void **state)
{
	struct t *t = *state;
	struct ingest_counters ic = {0};
	uint64_t committed;
	struct timespec rt = {.tv_sec = fx.now, .tv_nsec = 0};
	char s[512];
	struct rf_result x;

	/* Five days old: outside the lookback, so never exported. */
	assert_int_equal(
	    store_ensure_partitions(t->rf.st, fx.now - 5 * DAY), 0);
	pr_init(&x, "old.example", t->round - 5 * DAY / INTERVAL);
	put_at(t, 0, &x, fx.now - 5 * DAY);

	sql(t, "INSERT INTO domains (name) VALUES ('example.com'), "
	       "('b.example'), ('old.example')");
	sql(t, "INSERT INTO domains (name, removed_at) VALUES "
	       "('removed.example', now())");

	/* The previous round: all agree (and is not the latest). */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, DOMAIN, t->round - 1);
		put(t, a, &x);
	}
	assert_int_equal(
	    compare_round(t->cmp, DOMAIN, t->round - 1, NULL, NULL), 0);
	/* The latest: agent-1 has a warning, agent-3 another STS id, a
	 * leaf that expires in 5 days and an error finding. */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, DOMAIN, t->round);
		x.r.duration_ms = 900 + 1000 * a;
		if (a == 0)
			pr_finding(&x, "POLICY_MAX_AGE_SHORT",
			    MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING);
		if (a == 2) {
			x.sts.id = "20250101";
			x.mx_chain[0] = LEAF_MX_SOON;
			pr_finding(&x, "CERT_EXPIRING",
			    MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR);
		}
		put(t, a, &x);
	}
	assert_int_equal(
	    compare_round(t->cmp, DOMAIN, t->round, NULL, NULL), 0);
	/* b.example: agent-2's probe timed out, and no policy came. */
	pr_init(&x, "b.example", t->round);
	x.r.completed = 0;
	x.r.policy = NULL;
	put(t, 1, &x);
	/* agent-2 lost 4..8 from its spool. */
	assert_int_equal(store_gap(t->rf.st, t->rf.agent[1], t->rf.seq[1] + 1,
			     t->rf.seq[1] + 5, "spool full", &rt, &committed),
	    0);

	incident(t, DOMAIN, "VANTAGE_DNS_MISMATCH", "error", "open");
	incident(t, DOMAIN, "CERT_EXPIRING", "warning", "open");
	incident(t, DOMAIN, "CERT_EXPIRED", "error", "resolved");
	incident(t, "", "AGENT_SILENT", "warning", "open");

	ic.results_stored = 42;
	ic.batches = 7;
	ic.refused[INGEST_REFUSE_MALFORMED] = 3;
	ic.agents_connected = 2;
	render(t, &ic);

	/* Probes. */
	assert_true(
	    value_of(t, "mtastswatch_probe_success{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",region=\"eu-west\"}") == 1);
	assert_true(
	    value_of(t, "mtastswatch_probe_success{domain=\"" DOMAIN
			"\",vantage=\"agent-2\",region=\"us-east\"}") == 1);
	/* The region's quote, backslash and newline escaped. */
	assert_true(
	    value_of(t, "mtastswatch_probe_success{domain=\"" DOMAIN
			"\",vantage=\"agent-3\",region=\"ap \\\"south\\\"\\\\1"
			"\\nx\"}") == 0);
	assert_true(value_of(t, "mtastswatch_probe_completed{domain=\"" DOMAIN
				"\",vantage=\"agent-3\",region=\"ap "
				"\\\"south\\\"\\\\1\\nx\"}") == 1);
	assert_true(value_of(t, "mtastswatch_probe_success{domain=\"b."
				"example\",vantage=\"agent-2\",region=\"us-"
				"east\"}") == 0);
	assert_true(value_of(t, "mtastswatch_probe_completed{domain=\"b."
				"example\",vantage=\"agent-2\",region=\"us-"
				"east\"}") == 0);
	assert_true(
	    value_of(t, "mtastswatch_probe_duration_seconds{domain=\"" DOMAIN
			"\",vantage=\"agent-2\",region=\"us-east\"}") == 1.9);
	snprintf(s, sizeof(s), "%lld.500", (long long)t->round * INTERVAL + 1);
	assert_true(
	    value_of(t, "mtastswatch_probe_timestamp_seconds{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",region=\"eu-west\"}") ==
	    strtod(s, NULL));
	assert_true(value_of(t, "mtastswatch_probe_findings{domain=\"" DOMAIN
				"\",vantage=\"agent-1\",region=\"eu-west\","
				"severity=\"warning\"}") == 1);
	assert_true(value_of(t, "mtastswatch_probe_findings{domain=\"" DOMAIN
				"\",vantage=\"agent-1\",region=\"eu-west\","
				"severity=\"error\"}") == 0);

	/* Certificates: the earliest notAfter of each host's chain. */
	assert_true(value_of(t, "mtastswatch_probe_ssl_earliest_cert_expiry{"
				"domain=\"" DOMAIN "\",vantage=\"agent-1\","
				"host=\"" MX "\",role=\"mx\"}") ==
		    (double)fx.c[LEAF_MX].not_after);
	assert_true(value_of(t, "mtastswatch_probe_ssl_earliest_cert_expiry{"
				"domain=\"" DOMAIN "\",vantage=\"agent-3\","
				"host=\"" MX "\",role=\"mx\"}") ==
		    (double)fx.c[LEAF_MX_SOON].not_after);
	assert_true(value_of(t, "mtastswatch_probe_ssl_earliest_cert_expiry{"
				"domain=\"" DOMAIN "\",vantage=\"agent-2\","
				"host=\"" POLHOST "\",role=\"policy\"}") ==
		    (double)fx.c[LEAF_POL].not_after);
	assert_true(
	    value_of(t, "mtastswatch_probe_tls_version_info{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",host=\"" MX
			"\",role=\"mx\",version=\"TLSv1.2\"}") == 1);
	assert_true(
	    value_of(t, "mtastswatch_probe_host_verified{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",host=\"" POLHOST
			"\",role=\"policy\"}") == 1);
	assert_true(
	    value_of(t, "mtastswatch_policy_mode{domain=\"" DOMAIN
			"\",vantage=\"agent-2\",mode=\"enforce\"}") == 1);
	/* No policy fetched: no mode series. */
	assert_false(has_line(t, "mtastswatch_policy_mode{domain=\"b."));
	/* Outside the lookback. */
	assert_null(strstr(t->out, "domain=\"old.example\",vantage"));
	assert_null(strstr(t->out, "removed.example"));

	/* The latest compared round: STS id and chain, agent-3 dissents. */
	assert_true(value_of(t, "mtastswatch_round_vantages{domain=\"" DOMAIN
				"\"}") == 3);
	assert_true(value_of(t, "mtastswatch_round_completed{domain=\"" DOMAIN
				"\"}") == 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM vantage_findings WHERE "
			       "severity <> 'info' AND round = (SELECT "
			       "max(round) FROM round_status)"),
	    2);
	assert_true(
	    value_of(t,
		"mtastswatch_round_disagreements{domain=\"" DOMAIN "\"}") == 2);
	assert_true(value_of(t, "mtastswatch_round_dissenters{domain=\"" DOMAIN
				"\"}") == 1);
	assert_true(value_of(t, "mtastswatch_round_number{domain=\"" DOMAIN
				"\"}") == (double)t->round);

	/* Incidents: open ones only. */
	assert_true(value_of(t, "mtastswatch_incidents_open{code=\"CERT_"
				"EXPIRING\",severity=\"warning\"}") == 1);
	assert_true(value_of(t, "mtastswatch_incidents_open{code=\"AGENT_"
				"SILENT\",severity=\"warning\"}") == 1);
	assert_false(
	    has_line(t, "mtastswatch_incidents_open{code=\"CERT_EXPIRED\""));
	assert_true(
	    value_of(t, "mtastswatch_domain_incidents_open{domain=\"" DOMAIN
			"\",severity=\"error\"}") == 1);
	assert_true(
	    value_of(t, "mtastswatch_domain_incidents_open{domain=\"" DOMAIN
			"\",severity=\"info\"}") == 0);
	assert_true(value_of(t, "mtastswatch_domain_incidents_open{domain=\"b."
				"example\",severity=\"error\"}") == 0);
	assert_true(value_of(t, "mtastswatch_domains{state=\"active\"}") == 3);
	assert_true(value_of(t, "mtastswatch_domains{state=\"removed\"}") == 1);

	/* Agents. */
	assert_true(
	    value_of(t, "mtastswatch_agent_last_seq{agent=\"agent-2\"}") ==
	    (double)committed);
	assert_int_equal(committed, t->rf.seq[1] + 5);
	assert_true(
	    value_of(t, "mtastswatch_agent_gaps_total{agent=\"agent-2\"}") ==
	    5);
	assert_true(
	    value_of(t, "mtastswatch_agent_gaps_total{agent=\"agent-1\"}") ==
	    0);
	assert_true(
	    value_of(t, "mtastswatch_agent_last_seen_timestamp_seconds{agent="
			"\"agent-1\",region=\"eu-west\"}") >= (double)fx.now);

	/* The collector's counters. */
	assert_true(
	    value_of(t, "mtastswatch_collector_results_stored_total") == 42);
	assert_true(value_of(t, "mtastswatch_collector_batches_total") == 7);
	assert_true(value_of(t, "mtastswatch_collector_refused_total{reason="
				"\"malformed\"}") == 3);
	assert_true(value_of(t, "mtastswatch_collector_refused_total{reason="
				"\"db_down\"}") == 0);
	assert_true(value_of(t, "mtastswatch_collector_agents_connected") == 2);
	assert_true(value_of(t, "mtastswatch_collector_database_up") == 1);
	assert_true(value_of(t, "mtastswatch_metrics_database_success") == 1);

	/* Every family once, each with HELP and TYPE (promparse checked the
	 * order); the same text twice is refused, so the check can fail. */
	assert_non_null(strstr(t->out, "# TYPE mtastswatch_agent_gaps_total "
				       "counter\n"));
	{
		size_t n = t->outlen;
		char *twice = malloc(2 * n + 1);

		assert_non_null(twice);
		memcpy(twice, t->out, n);
		memcpy(twice + n, t->out, n + 1);
		assert_int_equal(promparse(twice, 2 * n), 1);
		free(twice);
	}
}

/* Two agents with one name make two vantages, never one series. */
static void
test_duplicate_names(void **state)
{
	struct t *t = *state;
	char series[256];
	struct rf_result x;

	sql(t, "UPDATE agents SET name = 'dup' WHERE id IN (%lld, %lld)",
	    (long long)t->rf.agent[0], (long long)t->rf.agent[1]);
	sql(t, "INSERT INTO domains (name) VALUES ('" DOMAIN "')");
	for (int a = 0; a < 2; a++) {
		pr_init(&x, DOMAIN, t->round);
		put(t, a, &x);
	}
	render(t, NULL);
	for (int a = 0; a < 2; a++) {
		snprintf(series, sizeof(series),
		    "mtastswatch_probe_success{domain=\"" DOMAIN
		    "\",vantage=\"dup#%lld\",region=\"%s\"}",
		    (long long)t->rf.agent[a], a == 0 ? "eu-west" : "us-east");
		assert_true(value_of(t, series) == 1);
	}
	/* No ingest counters without ic. */
	assert_null(strstr(t->out, "mtastswatch_collector_"));
}

/* Only the latest result of each agent counts, by round. */
static void
test_latest_result(void **state)
{
	struct t *t = *state;
	struct rf_result x;

	sql(t, "INSERT INTO domains (name) VALUES ('" DOMAIN "')");
	pr_init(&x, DOMAIN, t->round - 2);
	pr_finding(
	    &x, "MX_NO_STARTTLS", MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR);
	put(t, 0, &x);
	pr_init(&x, DOMAIN, t->round - 1);
	x.pol.mode = "testing";
	put(t, 0, &x);
	render(t, NULL);
	assert_true(
	    value_of(t, "mtastswatch_probe_success{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",region=\"eu-west\"}") == 1);
	assert_true(
	    value_of(t, "mtastswatch_policy_mode{domain=\"" DOMAIN
			"\",vantage=\"agent-1\",mode=\"testing\"}") == 1);
	assert_false(has_line(t, "mtastswatch_policy_mode{domain=\"" DOMAIN
				 "\",vantage=\"agent-1\",mode=\"enforce\"}"));
	/* No round compared: no round series, the family still declared. */
	assert_false(has_line(t, "mtastswatch_round_vantages{"));
	assert_non_null(strstr(t->out, "# TYPE mtastswatch_round_vantages "));
}

/* Inside a transaction of the caller's, the function leaves it open. */
static void
test_caller_transaction(void **state)
{
	struct t *t = *state;

	PQclear(PQexec(t->conn, "BEGIN"));
	assert_int_equal(PQtransactionStatus(t->conn), PQTRANS_INTRANS);
	render(t, NULL);
	assert_int_equal(PQtransactionStatus(t->conn), PQTRANS_INTRANS);
	PQclear(PQexec(t->conn, "ROLLBACK"));
	assert_true(value_of(t, "mtastswatch_metrics_database_success") == 1);
}

/* Without a database the counters are still served. */
static void
test_database_down(void **state)
{
	struct t *t = *state;
	struct ingest_counters ic = {0};
	PGconn *dead = PQconnectdb("host=/nonexistent/socket/dir dbname=x "
				   "connect_timeout=1");
	char err[512];

	ic.db_down = 1;
	ic.refused[INGEST_REFUSE_DB_DOWN] = 9;
	assert_int_not_equal(PQstatus(dead), CONNECTION_OK);
	free(t->out);
	t->out = NULL;
	assert_int_equal(metrics_render(dead, &ic, fx.now, &t->out, &t->outlen,
			     err, sizeof(err)),
	    0);
	PQfinish(dead);
	assert_string_not_equal(err, "");
	assert_int_equal(promparse(t->out, t->outlen), 0);
	assert_true(value_of(t, "mtastswatch_metrics_database_success") == 0);
	assert_true(value_of(t, "mtastswatch_collector_database_up") == 0);
	assert_true(value_of(t, "mtastswatch_collector_refused_total{reason="
				"\"db_down\"}") == 9);
	assert_null(strstr(t->out, "mtastswatch_probe_success"));

	/* A query that fails on a live connection: same, and the
	 * connection is usable afterwards (the transaction rolled back). */
	sql(t, "DROP TABLE round_status CASCADE");
	free(t->out);
	t->out = NULL;
	assert_int_equal(metrics_render(t->conn, &ic, fx.now, &t->out,
			     &t->outlen, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "round_status"));
	assert_true(value_of(t, "mtastswatch_metrics_database_success") == 0);
	assert_int_equal(PQtransactionStatus(t->conn), PQTRANS_IDLE);
	assert_int_equal(
	    metrics_render(t->conn, NULL, fx.now, NULL, NULL, err, sizeof(err)),
	    -1);
}

/* ---- the measurement of docs/metrics.md (MTASTS_METRICS_SCALE=1) ---- */

static double
s_elapsed(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) +
	       (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * 1000 domains x 3 agents, 96 rounds 45 minutes apart (three days, four
 * day partitions), each result with a policy, a policy host and two MX
 * hosts with two-certificate chains, made in SQL; one compared round per
 * domain and a few hundred incidents.  Prints the render time.
 */
static void
test_scale(void **state)
{
	struct t *t = *state;
	struct timespec t0;
	double best = 1e9;
	struct rf_result x;

	if (getenv("MTASTS_METRICS_SCALE") == NULL) {
		skip();
		return;
	}
	/* One real result brings the certificates in. */
	pr_init(&x, "seed.example", t->round);
	put(t, 0, &x);
	assert_int_equal(
	    store_ensure_partitions(t->rf.st, fx.now - 4 * DAY), 0);
	assert_int_equal(
	    store_ensure_partitions(t->rf.st, fx.now - 2 * DAY), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sql(t, "INSERT INTO domains (name) SELECT 'd' || i || '.example' "
	       "FROM generate_series(1, 1000) i");
	sql(t,
	    "INSERT INTO results (agent_id, seq, domain, round, started_at, "
	    "duration_ms, completed, received_at, error_count) "
	    "SELECT a, 1000000 + k * 1000 + i, 'd' || i || '.example', "
	    "%lld - (95 - k) * 9, to_timestamp(%lld - (95 - k) * 2700), 900, "
	    "true, to_timestamp(%lld - (95 - k) * 2700), (i %% 7 = 0)::int "
	    "FROM generate_series(0, 95) k, generate_series(1, 1000) i, "
	    "unnest(ARRAY[%lld, %lld, %lld]::bigint[]) a",
	    (long long)t->round, (long long)fx.now, (long long)fx.now,
	    (long long)t->rf.agent[0], (long long)t->rf.agent[1],
	    (long long)t->rf.agent[2]);
	sql(t, "INSERT INTO host_observations (result_id, received_at, role, "
	       "position, host, addresses, tls_ok, tls_version, verified, "
	       "handshake_ms) SELECT r.id, r.received_at, h.role, h.pos, "
	       "CASE h.role WHEN 'policy' THEN 'mta-sts.' ELSE 'mx' || h.pos "
	       "|| '.' END || r.domain, '{}', true, 'TLSv1.3', true, 20 "
	       "FROM results r, (VALUES ('policy', 0), ('mx', 0), ('mx', 1)) "
	       "h (role, pos) WHERE r.seq >= 1000000");
	sql(t,
	    "INSERT INTO chain_certs (result_id, received_at, role, "
	    "host_position, host, position, cert_sha256) SELECT h.result_id, "
	    "h.received_at, h.role, h.position, h.host, p, "
	    "(SELECT sha256 FROM certificates ORDER BY (p = 0) = (subject "
	    "LIKE '%%Root%%') LIMIT 1) FROM host_observations h, "
	    "generate_series(0, 1) p");
	sql(t, "INSERT INTO policy_observations (result_id, received_at, "
	       "http_status, mode, mx, max_age, valid) SELECT id, received_at, "
	       "200, 'enforce', '{}', 86400, true FROM results "
	       "WHERE seq >= 1000000");
	sql(t, "INSERT INTO round_status (domain, round, state, vantages, "
	       "completed) SELECT DISTINCT domain, round, 'compared', 3, 3 "
	       "FROM results WHERE seq >= 1000000");
	sql(t,
	    "INSERT INTO vantage_findings (domain, round, code, severity, "
	    "subject, detail, matrix, dissenters) SELECT domain, max(round), "
	    "'VANTAGE_DNS_MISMATCH', 'error', domain, '', '{}', "
	    "'{agent-3}' FROM results WHERE seq >= 1000000 AND "
	    "domain LIKE 'd1%%' GROUP BY domain");
	sql(t, "INSERT INTO incidents (domain, code, subject, severity) "
	       "SELECT 'd' || i || '.example', 'CERT_EXPIRING', 'mx0', "
	       "'warning' FROM generate_series(1, 300) i");
	sql(t, "ANALYZE");
	print_message("scale: data made in %.1f s: %s results\n",
	    s_elapsed(&t0), q(t, "SELECT count(*) FROM results"));

	for (int i = 0; i < 5; i++) {
		double e;

		free(t->out);
		t->out = NULL;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(metrics_render(t->conn, NULL, fx.now, &t->out,
				     &t->outlen, NULL, 0),
		    0);
		e = s_elapsed(&t0);
		best = e < best ? e : best;
	}
	assert_true(value_of(t, "mtastswatch_metrics_database_success") == 1);
	assert_true(value_of(t, "mtastswatch_probe_success{domain=\"d7."
				"example\",vantage=\"agent-1\",region=\"eu-"
				"west\"}") == 0);
	assert_true(value_of(t, "mtastswatch_round_disagreements{domain=\"d1."
				"example\"}") == 1);
	assert_int_equal(promparse(t->out, t->outlen), 0);
	print_message("scale: 1000 domains x 3 agents: render best of 5 "
		      "%.0f ms, %zu bytes\n",
	    best * 1000, t->outlen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_promparse_self_test),
	    cmocka_unit_test_setup_teardown(test_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_duplicate_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_latest_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_caller_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_database_down, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
	};

	fx.promparse = getenv("MTASTS_PROMPARSE");
	if (fx.promparse == NULL || fx.promparse[0] == '\0')
		fx.promparse = "tests/lib/promparse.py";
	if (rf_env("test_metrics", &fx.conninfo, &fx.sqldir) == -1)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
