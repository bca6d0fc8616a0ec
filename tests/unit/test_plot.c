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

#include "../lib/testcert.h"
#include "compare.h"
#include "plot.h"
#include "store_pg.h"
#include "pgschema.h"

#define sql(t, ...)  pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->db, (query))

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

struct tcert {
	X509 *x;
	EVP_PKEY *key;
	unsigned char *der;
	int len;
	unsigned char sha[32];
	char spki_hex[65];
};

static struct {
	const char *conninfo;
	const char *sqldir;
	time_t now;
	struct tcert c[NCERTS];
} fx;

struct t {
	PGconn *conn;
	PGconn *cmp;
	struct pgschema db;
	struct store *st;
	int64_t agent[NAGENTS];
	uint64_t seq[NAGENTS];
	char *out;
	size_t outlen;
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, long days)
{
	struct tcert *c = &fx.c[which];
	struct tc_opts o = {0};
	unsigned char spki[32];
	unsigned int n;

	if ((c->key = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = cn;
	o.key = c->key;
	o.ca = which == ROOT;
	o.serial = 300 + which;
	o.not_before = fx.now - 200 * DAY;
	o.not_after = fx.now + days * DAY;
	if (which != ROOT) {
		o.san = "DNS:" MX ",DNS:" POLHOST;
		o.issuer = fx.c[ROOT].x;
		o.issuer_key = fx.c[ROOT].key;
	}
	if ((c->x = tc_cert(&o)) == NULL)
		return -1;
	c->der = NULL;
	if ((c->len = i2d_X509(c->x, &c->der)) <= 0)
		return -1;
	EVP_Digest(c->der, (size_t)c->len, c->sha, NULL, EVP_sha256(), NULL);
	X509_pubkey_digest(c->x, EVP_sha256(), spki, &n);
	for (int i = 0; i < 32; i++)
		sprintf(c->spki_hex + 2 * i, "%02x", spki[i]);
	return 0;
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
	for (int i = 0; i < NCERTS; i++) {
		OPENSSL_free(fx.c[i].der);
		X509_free(fx.c[i].x);
		EVP_PKEY_free(fx.c[i].key);
	}
	return 0;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char err[512], key[32], name[32];

	if (t == NULL)
		return -1;
	*state = t;
	if (pgschema_open(&t->db, fx.conninfo, "plot_test") == -1)
		return -1;
	t->st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
	if (t->st == NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	t->conn = PQconnectdb(t->db.conninfo);
	t->cmp = PQconnectdb(t->db.conninfo);
	if (PQstatus(t->conn) != CONNECTION_OK ||
	    PQstatus(t->cmp) != CONNECTION_OK) {
		print_error("connect: %s", PQerrorMessage(t->conn));
		return -1;
	}
	for (int i = 0; i < NAGENTS; i++) {
		snprintf(key, sizeof(key), "PLOTKEY%d", i + 1);
		snprintf(name, sizeof(name), "agent-%d", i + 1);
		if (store_agent_upsert(t->st, key, name, "r", &t->agent[i]) !=
		    0)
			return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	free(t->out);
	store_close(&t->st);
	PQfinish(t->conn);
	PQfinish(t->cmp);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/* One result: STS id, enforce policy, the policy host with LEAF_POL and
 * one MX (name mx) with the leaf given, both under ROOT and verified. */
struct pr {
	Mtastswatch__V1__ProbeResult r;
	Mtastswatch__V1__StsTxt sts;
	Mtastswatch__V1__Policy pol;
	char *pol_mx[1];
	unsigned char body_sha[32];
	Mtastswatch__V1__HostObservation ph, mxh;
	Mtastswatch__V1__MxObservation mx, *mxp[1];
	ProtobufCBinaryData ph_chain[2], mx_chain[2];
	Mtastswatch__V1__Certificate c[3], *cp[3];
};

static void
pr_init(struct pr *x, const char *domain, const char *mx, int leaf, time_t at)
{
	const Mtastswatch__V1__ProbeResult r0 =
	    MTASTSWATCH__V1__PROBE_RESULT__INIT;
	const Mtastswatch__V1__StsTxt s0 = MTASTSWATCH__V1__STS_TXT__INIT;
	const Mtastswatch__V1__Policy p0 = MTASTSWATCH__V1__POLICY__INIT;
	const Mtastswatch__V1__HostObservation h0 =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	const Mtastswatch__V1__MxObservation m0 =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;
	const int certs[3] = {ROOT, LEAF_POL, leaf};

	memset(x, 0, sizeof(*x));
	x->r = r0;
	x->r.domain = (char *)domain;
	x->r.started_at_ms = (int64_t)at * 1000;
	x->r.duration_ms = 900;
	x->r.completed = 1;
	x->r.round = (uint64_t)(at / INTERVAL);
	x->sts = s0;
	x->sts.id = "20240101";
	x->sts.valid = 1;
	x->r.sts_txt = &x->sts;
	x->pol = p0;
	x->pol.http_status = 200;
	memset(x->body_sha, 0xab, sizeof(x->body_sha));
	x->pol.sha256.data = x->body_sha;
	x->pol.sha256.len = sizeof(x->body_sha);
	x->pol.mode = "enforce";
	x->pol_mx[0] = (char *)mx;
	x->pol.mx = x->pol_mx;
	x->pol.n_mx = 1;
	x->pol.max_age = 86400;
	x->pol.valid = 1;
	x->r.policy = &x->pol;
	for (int i = 0; i < 3; i++) {
		x->c[i] = c0;
		x->c[i].der.data = fx.c[certs[i]].der;
		x->c[i].der.len = (size_t)fx.c[certs[i]].len;
		x->cp[i] = &x->c[i];
	}
	x->r.certificates = x->cp;
	x->r.n_certificates = 3;
	for (int i = 0; i < 2; i++)
		x->ph_chain[i].len = x->mx_chain[i].len = 32;
	x->ph_chain[0].data = fx.c[LEAF_POL].sha;
	x->ph_chain[1].data = fx.c[ROOT].sha;
	x->mx_chain[0].data = fx.c[leaf].sha;
	x->mx_chain[1].data = fx.c[ROOT].sha;
	x->ph = h0;
	x->ph.host = "mta-sts.example.com";
	x->ph.tls_ok = 1;
	x->ph.verified = 1;
	x->ph.n_chain_sha256 = 2;
	x->ph.chain_sha256 = x->ph_chain;
	x->r.policy_host = &x->ph;
	x->mxh = h0;
	x->mxh.host = (char *)mx;
	x->mxh.tls_ok = 1;
	x->mxh.verified = 1;
	x->mxh.n_chain_sha256 = 2;
	x->mxh.chain_sha256 = x->mx_chain;
	x->mx = m0;
	x->mx.host = &x->mxh;
	x->mx.preference = 10;
	x->mx.starttls = 1;
	x->mx.policy_match = 1;
	x->mxp[0] = &x->mx;
	x->r.mx = x->mxp;
	x->r.n_mx = 1;
}

/* Stores x as agent a's next result, received at `at` (the partition of
 * a day before today must be made first). */
static void
put_at(struct t *t, int a, struct pr *x, time_t at)
{
	Mtastswatch__V1__ProbeResult *ptr = &x->r;
	struct timespec rt = {.tv_sec = at, .tv_nsec = 0};
	uint64_t committed = 0;

	x->r.seq = ++t->seq[a];
	x->r.vantage = "test";
	if (store_write_batch(t->st, t->agent[a], &ptr, 1, &rt, &committed) !=
	    0) {
		print_error("store_write_batch: %s\n", store_error(t->st));
		fail();
	}
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
	struct pr x;
	int64_t round = fx.now / INTERVAL;

	sql(t, "INSERT INTO domains (name) VALUES ('" DOMAIN "')");
	for (size_t i = 0; i < sizeof(ago) / sizeof(ago[0]); i++) {
		time_t at = fx.now - ago[i] * DAY;

		pr_init(
		    &x, DOMAIN, MX, ago[i] > 20 ? LEAF_MX_OLD : LEAF_MX, at);
		assert_int_equal(store_ensure_partitions(t->st, at), 0);
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
		struct pr x;

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
	struct pr x;

	sql(t, "UPDATE agents SET name = $$ag" ESC "$$ WHERE id = %lld",
	    (long long)t->agent[1]);
	sql(t, "UPDATE agents SET name = 'bad\x01name' WHERE id = %lld",
	    (long long)t->agent[2]);
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
	struct pr x;
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
	    (long long)t->agent[0], (long long)fx.now);
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
	struct pr x;

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
	    (long long)t->agent[0], (long long)t->agent[1],
	    (long long)t->agent[2]);
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

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_plot: MTASTS_TEST_PG is not set; start a cluster "
		    "first:\n  eval \"$(sh tests/lib/pg_start.sh "
		    "/tmp/pgm)\"\n");
		return 1;
	}
	if (getenv("MTASTS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("MTASTS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
