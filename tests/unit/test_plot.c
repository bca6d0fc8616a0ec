/* test_plot.c -- the per-domain SVG against a real PostgreSQL. */
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
#include "plot.h"
#include "store_pg.h"
#include "resultfix.h"

#define sql(t, ...)  pgschema_sql(&(t)->rf.db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->rf.db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->rf.db, (query))

/*
 * Environment as for test_compare: MTASTS_TEST_PG (required),
 * MTASTS_TEST_SQLDIR (default deploy/sql); MTASTS_PLOT_DUMP=FILE keeps
 * the last document rendered, MTASTS_TEST_FILTER runs matching tests
 * only, MTASTS_PLOT_SCALE=1 adds the measurement of docs/metrics.md.  Every
 * document is parsed by Python's xml.dom.minidom, which also checks that
 * nothing in it is a script or points elsewhere.
 */

#define DAY	 86400L
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define MX	 "mx1.example.com"
#define POLHOST	 "mta-sts." DOMAIN
#define NAGENTS	 3
#define ESC	 "<&>\"'"

enum { ROOT, LEAF_POL, LEAF_MX_OLD, LEAF_MX, LEAF_MX_OTHER, NCERTS };

static struct {
	const char *conninfo;
	const char *sqldir;
	time_t now;
	struct rf_cert c[NCERTS];
} fx;

struct t {
	PGconn *conn;
	PGconn *cmp;
	struct rf_db rf;
	char *out;
	size_t outlen;
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, long days)
{
	struct tc_opts o = {0};

	o.cn = cn;
	o.serial = 300 + which;
	o.not_before = fx.now - 200 * DAY;
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
	if (s_make_cert(ROOT, "Plot Test Root", 3650) == -1 ||
	    s_make_cert(LEAF_POL, POLHOST, 60) == -1 ||
	    s_make_cert(LEAF_MX_OLD, MX, 10) == -1 ||
	    s_make_cert(LEAF_MX, MX, 80) == -1 ||
	    s_make_cert(LEAF_MX_OTHER, MX, 50) == -1)
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
	const struct rf_db_opts o = {.conninfo = fx.conninfo,
	    .sqldir = fx.sqldir,
	    .schema = "plot_test",
	    .keyfmt = "PLOTKEY%d",
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

/* One result: STS id, enforce policy, the policy host with LEAF_POL and
 * one MX (name mx) with the leaf given, both under ROOT and verified. */
static void
pr_init(struct rf_result *x, const char *domain, const char *mx, int leaf,
    time_t at)
{
	rf_result_init(x, domain, POLHOST, mx, at / INTERVAL);
	x->r.started_at_ms = (int64_t)at * 1000;
	rf_result_chains(x, LEAF_POL, leaf, ROOT);
}

/* Stores x as agent a's next result, received at `at` (the partition of
 * a day before today must be made first). */
static void
put_at(struct t *t, int a, struct rf_result *x, time_t at)
{
	if (rf_put(&t->rf, a, x, at) != 0)
		fail();
}

/* Exit status of the well-formedness check on text. */
static int
xml_check(const char *text, size_t len)
{
	static const char script[] =
	    "import sys, xml.dom.minidom as m\n"
	    "d = m.parse(sys.argv[1]).documentElement\n"
	    "assert d.tagName == 'svg', d.tagName\n"
	    "assert d.getAttribute('xmlns') == 'http://www.w3.org/2000/svg'\n"
	    "for e in d.getElementsByTagName('*'):\n"
	    "    assert e.tagName not in ('script', 'foreignObject', 'image',\n"
	    "        'a', 'use', 'style', 'iframe'), e.tagName\n"
	    "    for k, v in e.attributes.items():\n"
	    "        assert 'href' not in k and not k.startswith('on'), k\n"
	    "        assert 'url(' not in v and '//' not in v or "
	    "k == 'xmlns', v\n";
	char path[] = "/tmp/test_plot_XXXXXX",
	     spath[] = "/tmp/test_plot_pyXXXXXX";
	char cmd[512];
	int fd = mkstemp(path), sfd = mkstemp(spath), rc;

	assert_true(fd != -1 && sfd != -1);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(write(sfd, script, sizeof(script) - 1),
	    (ssize_t)(sizeof(script) - 1));
	close(fd);
	close(sfd);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", spath, path);
	rc = system(cmd);
	unlink(path);
	unlink(spath);
	assert_true(rc != -1 && WIFEXITED(rc));
	return WEXITSTATUS(rc);
}

static int
render(struct t *t, const char *domain)
{
	char err[512];
	int rc;

	free(t->out);
	t->out = NULL;
	t->outlen = 0;
	rc = plot_domain_svg(
	    t->conn, domain, &t->out, &t->outlen, err, sizeof(err));
	if (rc == -1) {
		print_error("plot_domain_svg: %s\n", err);
		fail();
	}
	if (rc == 1) {
		assert_null(t->out);
		return rc;
	}
	assert_string_equal(err, "");
	assert_int_equal(strlen(t->out), t->outlen);
	if (getenv("MTASTS_PLOT_DUMP") != NULL) {
		FILE *f = fopen(getenv("MTASTS_PLOT_DUMP"), "w");

		if (f != NULL) {
			fputs(t->out, f);
			fclose(f);
		}
	}
	assert_int_equal(xml_check(t->out, t->outlen), 0);
	return rc;
}

static size_t
count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The number of points of the first polyline of a host's group. */
static size_t
points_of(const struct t *t, const char *host)
{
	char needle[256];
	const char *p, *end;
	size_t n = 1;

	snprintf(needle, sizeof(needle), "data-host=\"%s\"", host);
	assert_non_null(p = strstr(t->out, needle));
	assert_non_null(p = strstr(p, "points=\""));
	p += 8;
	assert_non_null(end = strchr(p, '"'));
	for (; p < end; p++)
		n += *p == ' ';
	return n;
}

/* ---- tests ---- */

/*
 * Eighty days of history: the MX leaf renewed twenty days ago; the
 * latest round with agent-3 on another STS id and another MX leaf.
 */
static void
test_domain(void **state)
{
	struct t *t = *state;
	static const int ago[] = {80, 60, 40, 21, 5};
	char cell[256];
	struct rf_result x;
	int64_t round = fx.now / INTERVAL;

	sql(t, "INSERT INTO domains (name) VALUES ('" DOMAIN "')");
	for (size_t i = 0; i < sizeof(ago) / sizeof(ago[0]); i++) {
		time_t at = fx.now - ago[i] * DAY;

		pr_init(
		    &x, DOMAIN, MX, ago[i] > 20 ? LEAF_MX_OLD : LEAF_MX, at);
		assert_int_equal(store_ensure_partitions(t->rf.st, at), 0);
		put_at(t, 0, &x, at);
	}
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(
		    &x, DOMAIN, MX, a == 2 ? LEAF_MX_OTHER : LEAF_MX, fx.now);
		if (a == 2)
			x.sts.id = "20250101";
		put_at(t, a, &x, fx.now);
	}
	assert_int_equal(compare_round(t->cmp, DOMAIN, round, NULL, NULL), 0);

	assert_int_equal(render(t, DOMAIN), 0);
	/* The chart: both hosts, the three thresholds, one point a day. */
	assert_non_null(strstr(t->out, "data-host=\"" POLHOST "\""));
	assert_non_null(strstr(t->out, "data-host=\"" MX "\""));
	assert_int_equal(count(t->out, "class=\"host\""), 2);
	assert_non_null(strstr(t->out, "data-days=\"30\""));
	assert_non_null(strstr(t->out, "data-days=\"14\""));
	assert_non_null(strstr(t->out, "data-days=\"7\""));
	assert_int_equal(points_of(t, MX), 6);
	/* The latest point is the earliest leaf any vantage saw (50 days,
	 * agent-3's), not the majority's 80. */
	assert_non_null(strstr(t->out, MX " (mx) 50 d<"));
	assert_non_null(strstr(t->out, POLHOST " (policy) 60 d<"));

	/* The matrix: three vantages, two dissenting cells, agent-3's. */
	assert_int_equal(count(t->out, "class=\"vantage\""), 3);
	assert_non_null(strstr(t->out, ">agent-1<"));
	assert_non_null(strstr(t->out, ">agent-3<"));
	assert_int_equal(count(t->out, "class=\"cell dissent\""), 2);
	assert_non_null(strstr(t->out, "<g class=\"cell dissent\"><title>"
				       "20250101</title>"));
	snprintf(cell, sizeof(cell),
	    "<g class=\"cell dissent\"><title>%s</title>",
	    fx.c[LEAF_MX_OTHER].spki_hex);
	assert_non_null(strstr(t->out, cell));
	/* The majority's leaf shows as the first 8 hex digits. */
	snprintf(cell, sizeof(cell), ">%.8s</text>", fx.c[LEAF_MX].spki_hex);
	assert_int_equal(count(t->out, cell), 2);
	assert_non_null(strstr(t->out, ">leaf SPKI " MX "<"));
	assert_non_null(strstr(t->out, ">probe verdict<"));
	assert_non_null(strstr(t->out, "VANTAGE_DNS_MISMATCH"));
	assert_null(strstr(t->out, "<script"));
}

static void
test_unknown_domain(void **state)
{
	struct t *t = *state;
	char err[64];
	char *out = (char *)"untouched";
	size_t len = 7;

	assert_int_equal(render(t, "nowhere.example"), 1);
	assert_int_equal(plot_domain_svg(t->conn, "nowhere.example", &out, &len,
			     err, sizeof(err)),
	    1);
	assert_null(out);
	assert_int_equal(len, 0);
	/* Known but never probed: a document that says so. */
	sql(t, "INSERT INTO domains (name) VALUES ('new.example')");
	assert_int_equal(render(t, "new.example"), 0);
	assert_non_null(strstr(t->out, "no certificate stored"));
	assert_non_null(strstr(t->out, "no compared round"));
	assert_int_equal(count(t->out, "class=\"host\""), 0);
	/* Results alone make a domain known (it may have been removed). */
	{
		struct rf_result x;

		pr_init(&x, "gone.example", MX, LEAF_MX, fx.now);
		put_at(t, 0, &x, fx.now);
	}
	assert_int_equal(render(t, "gone.example"), 0);
	assert_int_equal(count(t->out, "class=\"host\""), 2);
}

/* A query that fails: -1 with the reason, nothing allocated, and the
 * caller's connection usable again (the transaction rolled back). */
static void
test_query_failure(void **state)
{
	struct t *t = *state;
	char err[256];
	char *out = NULL;
	size_t len = 0;

	sql(t, "INSERT INTO domains (name) VALUES ('" DOMAIN "')");
	sql(t, "DROP TABLE round_status CASCADE");
	assert_int_equal(
	    plot_domain_svg(t->conn, DOMAIN, &out, &len, err, sizeof(err)), -1);
	assert_null(out);
	assert_non_null(strstr(err, "round_status"));
	assert_int_equal(PQtransactionStatus(t->conn), PQTRANS_IDLE);
	assert_int_equal(
	    plot_domain_svg(t->conn, NULL, &out, &len, err, sizeof(err)), -1);
}

/* Stored text with markup characters stays text. */
static void
test_escaping(void **state)
{
	struct t *t = *state;
	const char *domain = "esc" ESC ".example";
	struct rf_result x;

	sql(t, "UPDATE agents SET name = $$ag" ESC "$$ WHERE id = %lld",
	    (long long)t->rf.agent[1]);
	sql(t, "UPDATE agents SET name = 'bad\x01name' WHERE id = %lld",
	    (long long)t->rf.agent[2]);
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, domain, "mx" ESC ".example", LEAF_MX, fx.now);
		x.sts.id = a == 0 ? "id" ESC : "plain";
		x.pol.mode = "enforce" ESC;
		put_at(t, a, &x, fx.now);
	}
	assert_int_equal(
	    compare_round(t->cmp, domain, fx.now / INTERVAL, NULL, NULL), 0);
	assert_int_equal(render(t, domain), 0);
	assert_non_null(strstr(t->out, "esc&lt;&amp;&gt;&quot;&apos;.example"));
	assert_non_null(strstr(t->out, "data-host=\"mx&lt;&amp;&gt;&quot;"
				       "&apos;.example\""));
	assert_non_null(strstr(t->out, "<title>id&lt;&amp;&gt;&quot;&apos;"
				       "</title>"));
	assert_non_null(strstr(t->out, ">ag&lt;&amp;&gt;&quot;&apos;<"));
	/* A control character cannot be in XML at all. */
	assert_non_null(strstr(t->out, "bad\xef\xbf\xbdname"));
	assert_null(strstr(t->out, ESC));
	assert_null(strstr(t->out, "\x01"));
	assert_int_equal(count(t->out, "class=\"cell dissent\""), 1);
}

/*
 * The bounds: 15 MX hosts and a result every 5.4 hours for 90 days make
 * 12 hosts (the rest counted) and at most 180 points per host.
 */
static void
test_bounds(void **state)
{
	struct t *t = *state;
	struct timespec t0, t1;
	struct rf_result x;
	size_t n;

	sql(t, "SELECT mtastswatch_ensure_partitions(current_date - 91, 92)");
	sql(t, "INSERT INTO domains (name) VALUES ('many.example')");
	pr_init(&x, "seed.example", MX, LEAF_MX, fx.now);
	put_at(t, 0, &x, fx.now); /* brings the certificates in */
	sql(t,
	    "INSERT INTO results (agent_id, seq, domain, round, duration_ms, "
	    "completed, received_at) SELECT %lld, 1000 + k, 'many.example', "
	    "k, 900, true, to_timestamp(%lld - k * 19440) "
	    "FROM generate_series(0, 399) k",
	    (long long)t->rf.agent[0], (long long)fx.now);
	sql(t,
	    "INSERT INTO chain_certs (result_id, received_at, role, "
	    "host_position, host, position, cert_sha256) "
	    "SELECT r.id, r.received_at, CASE WHEN h = 0 THEN 'policy' "
	    "ELSE 'mx' END, h, CASE WHEN h = 0 THEN 'mta-sts.many.example' "
	    "ELSE 'mx' || lpad(h::text, 2, '0') || '.many.example' END, 0, "
	    "'\\x%s'::bytea FROM results r, generate_series(0, 15) h "
	    "WHERE r.domain = 'many.example'",
	    q(t, "SELECT encode(cert_sha256, 'hex') FROM chain_certs "
		 "WHERE position = 0 AND role = 'mx'"));
	/* Timed alone once (no assertion on it), then checked. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(plot_domain_svg(t->conn, "many.example", &t->out,
			     &t->outlen, NULL, 0),
	    0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("plot of 400 results x 16 hosts: %.0f ms\n",
	    (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	assert_int_equal(render(t, "many.example"), 0);
	assert_int_equal(count(t->out, "class=\"host\""), 12);
	assert_non_null(strstr(t->out, "4 more hosts not shown"));
	/* Policy host first, then MX hosts by name. */
	assert_true(strstr(t->out, "data-host=\"mta-sts.many.example\"") <
		    strstr(t->out, "data-host=\"mx01.many.example\""));
	assert_null(strstr(t->out, "data-host=\"mx12.many.example\""));
	n = points_of(t, "mx01.many.example");
	print_message("points for 400 results over 90 days: %zu\n", n);
	assert_true(n <= 180);
	assert_true(n >= 170);
	assert_true(t->outlen < 200 * 1024);
}

/*
 * The measurement of docs/metrics.md (MTASTS_PLOT_SCALE=1): a domain
 * probed every 5 minutes by 3 agents for 90 days (77,700 results), each
 * result with the policy host and two MX hosts' leaves.  Prints the time
 * of one plot; asserts no time.
 */
static void
test_scale(void **state)
{
	struct t *t = *state;
	struct timespec t0, t1;
	double best = 1e9;
	struct rf_result x;

	if (getenv("MTASTS_PLOT_SCALE") == NULL) {
		skip();
		return;
	}
	sql(t, "SELECT mtastswatch_ensure_partitions(current_date - 91, 92)");
	pr_init(&x, "seed.example", MX, LEAF_MX, fx.now);
	put_at(t, 0, &x, fx.now); /* brings the certificates in */
	sql(t, "INSERT INTO domains (name) VALUES ('busy.example')");
	sql(t,
	    "INSERT INTO results (agent_id, seq, domain, round, duration_ms, "
	    "completed, received_at) SELECT a, 1000 + k, 'busy.example', "
	    "%lld - k, 900, true, to_timestamp(%lld - k * 300) "
	    "FROM generate_series(0, 25899) k, "
	    "unnest(ARRAY[%lld, %lld, %lld]::bigint[]) a",
	    (long long)(fx.now / INTERVAL), (long long)fx.now,
	    (long long)t->rf.agent[0], (long long)t->rf.agent[1],
	    (long long)t->rf.agent[2]);
	sql(t,
	    "INSERT INTO chain_certs (result_id, received_at, role, "
	    "host_position, host, position, cert_sha256) "
	    "SELECT r.id, r.received_at, CASE WHEN h = 0 THEN 'policy' "
	    "ELSE 'mx' END, h, CASE WHEN h = 0 THEN 'mta-sts.busy.example' "
	    "ELSE 'mx' || h || '.busy.example' END, 0, '\\x%s'::bytea "
	    "FROM results r, generate_series(0, 2) h "
	    "WHERE r.domain = 'busy.example'",
	    q(t, "SELECT encode(cert_sha256, 'hex') FROM chain_certs "
		 "WHERE position = 0 AND role = 'mx'"));
	sql(t,
	    "INSERT INTO round_status (domain, round, state, vantages, "
	    "completed) VALUES ('busy.example', %lld, 'compared', 3, 3)",
	    (long long)(fx.now / INTERVAL));
	sql(t, "ANALYZE");
	for (int i = 0; i < 5; i++) {
		free(t->out);
		t->out = NULL;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(plot_domain_svg(t->conn, "busy.example",
				     &t->out, &t->outlen, NULL, 0),
		    0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e6 <
		    best)
			best = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	}
	assert_int_equal(render(t, "busy.example"), 0);
	assert_int_equal(count(t->out, "class=\"host\""), 3);
	print_message("plot of 77,700 results over 90 days: best of 5 "
		      "%.0f ms, %zu bytes, %zu points per host\n",
	    best, t->outlen, points_of(t, "mx1.busy.example"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_domain, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unknown_domain, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_query_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
	};

	if (rf_env("test_plot", &fx.conninfo, &fx.sqldir) == -1)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
