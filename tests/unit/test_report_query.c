/* test_report_query.c -- the reports against a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "compare.h"
#include "report_query.h"
#include "store_pg.h"
#include "resultfix.h"

#define sql(t, ...) pgschema_sql(&(t)->rf.db, __VA_ARGS__)
#define q(t, ...)   pgschema_q(&(t)->rf.db, __VA_ARGS__)

/*
 * Environment: MTASTS_TEST_PG (required), MTASTS_TEST_SQLDIR (default
 * deploy/sql).  Each test gets a schema of its own, filled the same way:
 *
 * - domains example.com (watched), idle.example (watched, never probed),
 *   gone.example (removed);
 * - agents agent-1 (eu-west), agent-2 (us-east), agent-3 (ap-south), each
 *   with a result for example.com in rounds R-1 and R, written with
 *   store_write_batch and compared with compare_round;
 * - round R-1: every vantage sees policy leaf PH_OLD (2 days left) and MX
 *   leaf MX_A; round R: policy leaf PH (20 days left), MX leaf MX_A
 *   (200 days) at agent-1 and -2, MX_B (5 days) at agent-3, which makes
 *   agent-3 a dissenter (VANTAGE_CHAIN_MISMATCH, error: mode enforce);
 * - every result carries one agent finding, CERT_EXPIRING on the policy
 *   host;
 * - incidents inserted by hand: #a CERT_EXPIRING warning open, #b
 *   VANTAGE_CHAIN_MISMATCH error open, #c MX_NO_STARTTLS info resolved
 *   ten days ago, #d AGENT_SILENT warning open for agent-3 (domain '');
 * - agent-2 last heard of two hours ago; agent-1 declared a gap of five.
 */

#define DAY	 86400L
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define PHOST	 "mta-sts.example.com"
#define MX	 "mx1.example.com"
#define NAGENTS	 3

enum { ROOT, PH, PH_OLD, MX_A, MX_B, NCERTS };

static struct {
	const char *conninfo;
	const char *sqldir;
	time_t now;
	struct rf_cert c[NCERTS];
} fx;

struct t {
	struct rf_db rf;
	PGconn *conn; /* the reports' own connection */
	int64_t round;
	long long inc[4]; /* ids of incidents a..d */
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, long days_left, long serial)
{
	struct tc_opts o = {0};
	char san[128];

	o.cn = cn;
	o.serial = serial;
	o.not_before = fx.now - 10 * DAY;
	o.not_after = fx.now + days_left * DAY + 3600;
	if (which != ROOT) {
		snprintf(san, sizeof(san), "DNS:%s", cn);
		o.san = san;
	}
	return rf_cert_make(
	    &fx.c[which], which != ROOT ? &fx.c[ROOT] : NULL, &o, 0);
}

static int
group_setup(void **state)
{
	(void)state;
	fx.now = time(NULL);
	if (s_make_cert(ROOT, "Report Test Root", 3650, 1) == -1 ||
	    s_make_cert(PH, PHOST, 20, 0x1001) == -1 ||
	    s_make_cert(PH_OLD, PHOST, 2, 0x1002) == -1 ||
	    s_make_cert(MX_A, MX, 200, 0x1003) == -1 ||
	    s_make_cert(MX_B, MX, 5, 0x1004) == -1)
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

/* One vantage's result for example.com. */
static void
pr_init(struct rf_result *x, int64_t round, int ph_leaf, int mx_leaf)
{
	rf_result_init(x, DOMAIN, PHOST, MX, round);
	x->r.started_at_ms = (int64_t)round * INTERVAL * 1000;
	x->r.duration_ms = 1200;
	x->pol.url = "https://" PHOST "/.well-known/mta-sts.txt";
	x->pol.max_age = 604800;
	x->ph.ip = "192.0.2.10";
	x->ph.tls_version = "TLSv1.3";
	x->ph.cipher = "TLS_AES_256_GCM_SHA384";
	x->addrs[0] = "192.0.2.25";
	x->mxh.addresses = x->addrs;
	x->mxh.n_addresses = 1;
	x->mxh.ip = "192.0.2.25";
	x->mxh.tls_version = "TLSv1.2";
	x->mxh.cipher = "ECDHE-ECDSA-AES128-GCM-SHA256";
	rf_result_chains(x, ph_leaf, mx_leaf, ROOT);
	rf_result_finding(x, "CERT_EXPIRING",
	    MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING, PHOST,
	    "certificate expires soon");
}

static long long
s_incident(struct t *t, const char *domain, const char *code,
    const char *subject, const char *severity, const char *state,
    long first_ago, long last_ago, const char *extra_cols,
    const char *extra_vals)
{
	const char *id;

	id = q(t,
	    "INSERT INTO incidents (domain, code, subject, severity, state, "
	    "detail, first_seen, last_seen, first_round, last_round%s) "
	    "VALUES ('%s', '%s', '%s', '%s', '%s', 'detail of %s', "
	    "to_timestamp(%lld), to_timestamp(%lld), %lld, %lld%s) "
	    "RETURNING id",
	    extra_cols, domain, code, subject, severity, state, code,
	    (long long)(fx.now - first_ago), (long long)(fx.now - last_ago),
	    (long long)(t->round - 1), (long long)t->round, extra_vals);
	return strtoll(id, NULL, 10);
}

static int
setup(void **state)
{
	static const char *const regions[NAGENTS] = {
	    "eu-west", "us-east", "ap-south"};
	/* 40 characters, as long as a Z85 CURVE key: the table cuts it. */
	const struct rf_db_opts o = {.conninfo = fx.conninfo,
	    .sqldir = fx.sqldir,
	    .schema = "report_test",
	    .keyfmt = "REPORTAGENTKEY%d0000000000000000000000000",
	    .regions = regions,
	    .nagents = NAGENTS,
	    .certs = fx.c,
	    .ncerts = NCERTS};
	struct t *t = calloc(1, sizeof(*t));
	struct timespec rt = {.tv_sec = fx.now, .tv_nsec = 0};
	uint64_t committed;
	PGconn *cmp;
	struct rf_result x;

	if (t == NULL)
		return -1;
	*state = t;
	if (rf_db_open(&t->rf, &o) == -1 ||
	    (t->conn = rf_db_connect(&t->rf)) == NULL)
		return -1;
	t->round = fx.now / INTERVAL;
	if (store_domain_add(t->rf.st, DOMAIN, NULL) != 0 ||
	    store_domain_add(t->rf.st, "idle.example", NULL) != 0 ||
	    store_domain_add(t->rf.st, "gone.example", NULL) != 0 ||
	    store_domain_remove(t->rf.st, "gone.example", NULL) != 0)
		return -1;
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round - 1, PH_OLD, MX_A);
		if (rf_put(&t->rf, a, &x, fx.now) == -1)
			return -1;
		pr_init(&x, t->round, PH, a == 2 ? MX_B : MX_A);
		if (rf_put(&t->rf, a, &x, fx.now) == -1)
			return -1;
	}
	if (store_gap(t->rf.st, t->rf.agent[0], 100, 104, "spool full", &rt,
		&committed) != 0)
		return -1;
	if ((cmp = rf_db_connect(&t->rf)) == NULL ||
	    compare_round(cmp, DOMAIN, t->round - 1, NULL, NULL) != 0 ||
	    compare_round(cmp, DOMAIN, t->round, NULL, NULL) != 0) {
		PQfinish(cmp);
		return -1;
	}
	PQfinish(cmp);

	t->inc[0] = s_incident(t, DOMAIN, "CERT_EXPIRING", PHOST, "warning",
	    "open", 2 * DAY, 3600, ", stage, vantages",
	    ", '30d', '{agent-1,agent-2,agent-3}'");
	t->inc[1] = s_incident(t, DOMAIN, "VANTAGE_CHAIN_MISMATCH", MX, "error",
	    "open", 600, 60, ", dissenters, vantages, matrix",
	    ", '{agent-3}', '{agent-1,agent-2,agent-3}', "
	    "'{\"agent-1\": \"a\", \"agent-3\": \"b\"}'");
	{
		const char *id = q(t,
		    "INSERT INTO incidents (domain, code, subject, severity, "
		    "state, detail, first_seen, last_seen, resolved_at) "
		    "VALUES ('%s', 'MX_NO_STARTTLS', '%s', 'info', "
		    "'resolved', 'resolved long ago', to_timestamp(%lld), "
		    "to_timestamp(%lld), to_timestamp(%lld)) RETURNING id",
		    DOMAIN, MX, (long long)(fx.now - 12 * DAY),
		    (long long)(fx.now - 10 * DAY),
		    (long long)(fx.now - 10 * DAY));

		t->inc[2] = strtoll(id, NULL, 10);
	}
	t->inc[3] = s_incident(t, "", "AGENT_SILENT", "agent-3", "warning",
	    "open", 1800, 300, "", "");
	sql(t, "INSERT INTO incident_events (incident_id, kind, severity) "
	       "SELECT id, 'open', severity FROM incidents");
	sql(t,
	    "UPDATE agents SET last_seen = to_timestamp(%lld), first_seen = "
	    "to_timestamp(%lld)",
	    (long long)fx.now, (long long)(fx.now - 30 * DAY));
	sql(t,
	    "UPDATE agents SET last_seen = to_timestamp(%lld) WHERE name = "
	    "'agent-2'",
	    (long long)(fx.now - 7200));
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	PQfinish(t->conn);
	rf_db_close(&t->rf);
	free(t);
	return 0;
}

/* ---- helpers ---- */

static const json_t *
getp(const json_t *o, const char *path)
{
	char key[64];
	const char *p = path, *dot;

	while (o != NULL && (dot = strchr(p, '.')) != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - p), p);
		o = json_object_get(o, key);
		p = dot + 1;
	}
	return o != NULL ? json_object_get(o, p) : NULL;
}

static void
want_str(const json_t *o, const char *path, const char *want)
{
	const json_t *v = getp(o, path);

	if (!json_is_string(v)) {
		print_error("%s: not a string\n", path);
		fail();
	}
	assert_string_equal(json_string_value(v), want);
}

static void
want_int(const json_t *o, const char *path, long long want)
{
	const json_t *v = getp(o, path);

	if (!json_is_integer(v)) {
		print_error("%s: not an integer\n", path);
		fail();
	}
	assert_int_equal(json_integer_value(v), want);
}

static void
want_null(const json_t *o, const char *path)
{
	const json_t *v = getp(o, path);

	if (!json_is_null(v)) {
		print_error("%s: not null\n", path);
		fail();
	}
}

static void
want_bool(const json_t *o, const char *path, int want)
{
	const json_t *v = getp(o, path);

	if (!json_is_boolean(v)) {
		print_error("%s: not a boolean\n", path);
		fail();
	}
	assert_int_equal(json_is_true(v), want);
}

static const char *
rfc3339(time_t t)
{
	static char buf[8][32];
	static int next;
	char *out = buf[next++ % 8];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* What a writer printed, via a memory stream (caller frees). */
static char *
capture_table(enum report_kind kind, const json_t *rows, int colour)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(report_write_table(fp, kind, rows, colour), 0);
	fclose(fp);
	return buf;
}

static char *
capture_csv(enum report_kind kind, const json_t *rows)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(report_write_csv(fp, kind, rows), 0);
	fclose(fp);
	return buf;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* ---- status ---- */

static void
test_status(void **state)
{
	struct t *t = *state;
	char err[256];
	json_t *out;
	const json_t *ex, *idle;

	assert_int_equal(
	    report_status(t->conn, fx.now, &out, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(out), 2); /* gone.example is not */
	ex = json_array_get(out, 0);
	idle = json_array_get(out, 1);
	want_str(ex, "mtasts.domain", DOMAIN);
	want_str(idle, "mtasts.domain", "idle.example");

	want_int(ex, "mtasts.round", t->round);
	want_str(ex, "mtasts.round_state", "compared");
	want_str(ex, "mtasts.mode", "enforce");
	want_int(ex, "mtasts.vantages.total", 3);
	want_int(ex, "mtasts.vantages.completed", 3);
	want_int(ex, "mtasts.vantages.agreeing", 2); /* agent-3 dissents */
	/* The latest round's policy leaf (20 days), not the old one. */
	want_int(ex, "mtasts.policy_host.days_left", 20);
	want_str(ex, "tls.server.x509.not_after", rfc3339(fx.c[PH].not_after));
	want_str(ex, "server.address", PHOST);
	want_int(ex, "mtasts.incidents.open", 2);
	want_str(ex, "mtasts.incidents.worst.severity", "error");
	want_str(ex, "mtasts.incidents.worst.code", "VANTAGE_CHAIN_MISMATCH");

	want_null(idle, "mtasts.round");
	want_null(idle, "mtasts.mode");
	want_null(idle, "mtasts.policy_host.days_left");
	want_null(idle, "mtasts.incidents.worst");
	want_int(idle, "mtasts.incidents.open", 0);

	/* Once #b is resolved the worst open one is the warning. */
	sql(t, "UPDATE incidents SET state = 'resolved' WHERE id = %lld",
	    t->inc[1]);
	json_decref(out);
	assert_int_equal(
	    report_status(t->conn, fx.now, &out, err, sizeof(err)), 0);
	want_str(json_array_get(out, 0), "mtasts.incidents.worst.code",
	    "CERT_EXPIRING");
	want_int(json_array_get(out, 0), "mtasts.incidents.open", 1);
	json_decref(out);
}

static void
test_status_table_csv(void **state)
{
	static const char header[] =
	    "mtasts.domain,mtasts.mode,mtasts.policy_host.days_left,"
	    "mtasts.incidents.worst.severity,mtasts.incidents.worst.code,"
	    "mtasts.incidents.open,mtasts.vantages.agreeing,"
	    "mtasts.vantages.total,mtasts.round\r\n";
	struct t *t = *state;
	char err[256], *s, *line2, want[256];
	json_t *out;

	assert_int_equal(
	    report_status(t->conn, fx.now, &out, err, sizeof(err)), 0);
	s = capture_table(REPORT_KIND_STATUS, out, 0);
	assert_int_equal(count_lines(s), 3);
	assert_non_null(strstr(s, "DOMAIN"));
	assert_null(strchr(s, '\033')); /* no colour unless asked */
	/* Columns line up: every line has MODE's column at the same place. */
	line2 = strchr(s, '\n') + 1;
	assert_int_equal(
	    strstr(s, "MODE") - s, strstr(line2, "enforce") - line2);
	assert_non_null(strstr(line2, "error VANTAGE_CHAIN_MISMATCH"));
	assert_non_null(strstr(line2, "2/3"));
	assert_non_null(strstr(s, "idle.example"));
	free(s);

	s = capture_table(REPORT_KIND_STATUS, out, 1);
	assert_non_null(
	    strstr(s, "\033[31merror VANTAGE_CHAIN_MISMATCH\033[0m"));
	free(s);

	s = capture_csv(REPORT_KIND_STATUS, out);
	assert_true(strncmp(s, header, strlen(header)) == 0);
	snprintf(want, sizeof(want),
	    "\r\nexample.com,enforce,20,error,VANTAGE_CHAIN_MISMATCH,2,2,3,"
	    "%lld\r\nidle.example,,,,,0,,,\r\n",
	    (long long)t->round);
	assert_non_null(strstr(s, want));
	free(s);
	json_decref(out);
}

/* ---- one domain ---- */

static void
test_domain(void **state)
{
	struct t *t = *state;
	char err[256], want[80];
	json_t *d;
	const json_t *hosts, *ph, *mx, *matrix, *v3, *v1, *f;

	assert_int_equal(
	    report_domain(t->conn, "unknown.example", fx.now, &d, err, 256), 1);
	assert_null(d);

	assert_int_equal(
	    report_domain(t->conn, DOMAIN, fx.now, &d, err, 256), 0);
	want_str(d, "mtasts.domain", DOMAIN);
	want_bool(d, "mtasts.removed", 0);
	want_int(d, "mtasts.round", t->round);
	want_str(d, "mtasts.round_state", "compared");
	want_int(d, "mtasts.vantages.total", 3);
	want_int(d, "mtasts.vantages.agreeing", 2);
	want_str(d, "mtasts.sts.id", "20240101");
	want_str(d, "mtasts.policy.mode", "enforce");
	want_int(d, "mtasts.policy.max_age", 604800);
	for (int i = 0; i < 32; i++)
		memcpy(want + 2 * i, "ab", 2);
	want[64] = '\0';
	want_str(d, "mtasts.policy.sha256", want);
	assert_int_equal(json_array_size(getp(d, "mtasts.policy.mx")), 1);
	assert_string_equal(
	    json_string_value(json_array_get(getp(d, "mtasts.policy.mx"), 0)),
	    MX);

	hosts = getp(d, "mtasts.hosts");
	assert_int_equal(json_array_size(hosts), 2);
	ph = json_array_get(hosts, 0);
	mx = json_array_get(hosts, 1);
	want_str(ph, "mtasts.role", "policy");
	want_str(ph, "server.address", PHOST);
	want_str(ph, "server.ip", "192.0.2.10");
	want_str(ph, "tls.version", "1.3");
	want_str(ph, "tls.version_protocol", "tls");
	want_str(ph, "tls.cipher", "TLS_AES_256_GCM_SHA384");
	want_str(ph, "tls.server.hash.sha256", fx.c[PH].sha_hex);
	want_str(ph, "tls.server.x509.subject.distinguished_name", "CN=" PHOST);
	want_str(ph, "tls.server.x509.issuer.distinguished_name",
	    "CN=Report Test Root");
	want_str(ph, "tls.server.x509.serial_number", "1001");
	want_str(ph, "tls.server.x509.not_after", rfc3339(fx.c[PH].not_after));
	want_str(ph, "tls.server.x509.not_before", rfc3339(fx.now - 10 * DAY));
	assert_string_equal(
	    json_string_value(json_array_get(
		getp(ph, "tls.server.x509.alternative_names"), 0)),
	    PHOST);
	want_str(ph, "tls.server.x509.public_key_algorithm", "EC");
	want_int(ph, "tls.server.x509.public_key_size", 256);
	want_str(ph, "mtasts.spki_sha256", fx.c[PH].spki_hex);
	want_int(ph, "mtasts.days_left", 20);
	want_str(ph, "mtasts.verdict", "verified");
	want_int(ph, "mtasts.verified_by", 3);

	/* The MX leaf two of three saw; verified everywhere all the same. */
	want_str(mx, "mtasts.role", "mx");
	want_str(mx, "server.address", MX);
	want_str(mx, "tls.version", "1.2");
	want_str(mx, "tls.server.hash.sha256", fx.c[MX_A].sha_hex);
	want_int(mx, "mtasts.days_left", 200);
	want_int(mx, "mtasts.leaf_seen_by", 2);
	want_int(mx, "mtasts.preference", 10);
	want_bool(mx, "mtasts.starttls", 1);
	want_bool(mx, "mtasts.policy_match", 1);
	want_str(mx, "mtasts.verdict", "verified");

	matrix = getp(d, "mtasts.matrix");
	assert_int_equal(json_array_size(matrix), 3);
	v1 = json_array_get(matrix, 0);
	v3 = json_array_get(matrix, 2);
	want_str(v1, "observer.name", "agent-1");
	want_str(v1, "observer.geo.name", "eu-west");
	want_bool(v1, "mtasts.agrees", 1);
	want_str(v3, "observer.name", "agent-3");
	want_bool(v3, "mtasts.completed", 1);
	want_bool(v3, "mtasts.agrees", 0);
	assert_string_equal(json_string_value(json_array_get(
				getp(v3, "mtasts.dissents_in"), 0)),
	    "VANTAGE_CHAIN_MISMATCH");
	want_int(v3, "event.duration", 1200LL * 1000000);
	want_str(v3, "event.start", rfc3339((time_t)t->round * INTERVAL));
	want_str(json_array_get(getp(v3, "mtasts.hosts"), 1),
	    "tls.server.hash.sha256", fx.c[MX_B].sha_hex);
	want_str(json_array_get(getp(v1, "mtasts.hosts"), 1),
	    "tls.server.hash.sha256", fx.c[MX_A].sha_hex);

	/* The agents' own findings, once, with who reported them. */
	f = getp(d, "mtasts.findings");
	assert_int_equal(json_array_size(f), 1);
	want_str(json_array_get(f, 0), "rule.name", "CERT_EXPIRING");
	want_int(json_array_get(f, 0), "event.severity", 6);
	assert_int_equal(
	    json_array_size(getp(json_array_get(f, 0), "mtasts.vantages")), 3);
	f = getp(d, "mtasts.vantage_findings");
	assert_int_equal(json_array_size(f), 1);
	want_str(json_array_get(f, 0), "rule.name", "VANTAGE_CHAIN_MISMATCH");
	want_str(json_array_get(f, 0), "mtasts.severity", "error");
	assert_string_equal(
	    json_string_value(json_array_get(
		getp(json_array_get(f, 0), "mtasts.dissenters"), 0)),
	    "agent-3");
	assert_int_equal(
	    json_array_size(getp(d, "mtasts.history_findings")), 0);

	/* Open incidents of the domain only. */
	f = getp(d, "mtasts.incidents");
	assert_int_equal(json_array_size(f), 2);
	want_str(json_array_get(f, 0), "rule.name", "VANTAGE_CHAIN_MISMATCH");
	want_str(json_array_get(f, 1), "rule.name", "CERT_EXPIRING");
	json_decref(d);
}

static void
test_domain_removed_and_idle(void **state)
{
	struct t *t = *state;
	char err[256];
	json_t *d;

	assert_int_equal(
	    report_domain(t->conn, "gone.example", fx.now, &d, err, 256), 0);
	want_bool(d, "mtasts.removed", 1);
	want_null(d, "mtasts.round");
	want_null(d, "mtasts.policy");
	assert_int_equal(json_array_size(getp(d, "mtasts.hosts")), 0);
	assert_int_equal(json_array_size(getp(d, "mtasts.incidents")), 0);
	json_decref(d);
}

static void
test_domain_text(void **state)
{
	struct t *t = *state;
	char err[256], *buf = NULL;
	size_t len = 0;
	FILE *fp;
	json_t *d;

	assert_int_equal(
	    report_domain(t->conn, DOMAIN, fx.now, &d, err, 256), 0);
	fp = open_memstream(&buf, &len);
	assert_int_equal(report_write_domain_text(fp, d, 0), 0);
	fclose(fp);
	assert_non_null(strstr(buf, "sts id       20240101\n"));
	assert_non_null(strstr(buf, "policy mode  enforce\n"));
	assert_non_null(strstr(buf, "\nHOSTS\nROLE"));
	assert_non_null(strstr(buf, "\nVANTAGES\nVANTAGE"));
	assert_non_null(strstr(buf, "\nOPEN INCIDENTS\nID"));
	assert_non_null(strstr(buf, "VANTAGE_CHAIN_MISMATCH"));
	/* agent-3's MX row names its own leaf. */
	{
		char leaf16[17];

		snprintf(leaf16, sizeof(leaf16), "%s", fx.c[MX_B].sha_hex);
		assert_non_null(strstr(buf, leaf16));
	}
	free(buf);

	/* CSV of a domain: its hosts. */
	buf = capture_csv(REPORT_KIND_HOSTS, getp(d, "mtasts.hosts"));
	assert_int_equal(count_lines(buf), 3);
	assert_non_null(strstr(buf, "\r\npolicy," PHOST ",CN=" PHOST ","));
	free(buf);
	json_decref(d);
}

/* ---- incidents ---- */

static json_t *
incidents(struct t *t, int open_only, time_t since, int sev, unsigned limit)
{
	struct report_incident_filter f = {0};
	char err[256];
	json_t *out = NULL;

	f.open_only = open_only;
	f.since = since;
	f.min_severity = sev;
	f.limit = limit;
	if (report_incidents(t->conn, &f, &out, err, sizeof(err)) != 0) {
		print_error("report_incidents: %s\n", err);
		fail();
	}
	return out;
}

static void
test_incidents_ecs(void **state)
{
	struct t *t = *state;
	json_t *all = incidents(t, 0, 0, 0, 0);
	const json_t *b = NULL, *c = NULL;
	char id[24];
	size_t i;
	const json_t *e;

	assert_int_equal(json_array_size(all), 4);
	/* Most recently seen first: b (1 min), d (5 min), a (1 h), c. */
	want_int(json_array_get(all, 0), "mtasts.incident_id", t->inc[1]);
	want_int(json_array_get(all, 1), "mtasts.incident_id", t->inc[3]);
	want_int(json_array_get(all, 2), "mtasts.incident_id", t->inc[0]);
	want_int(json_array_get(all, 3), "mtasts.incident_id", t->inc[2]);
	json_array_foreach(all, i, e)
	{
		if (json_integer_value(getp(e, "mtasts.incident_id")) ==
		    t->inc[1])
			b = e;
		if (json_integer_value(getp(e, "mtasts.incident_id")) ==
		    t->inc[2])
			c = e;
	}
	snprintf(id, sizeof(id), "%lld", t->inc[1]);
	want_str(b, "event.kind", "alert");
	want_str(b, "event.id", id);
	want_str(b, "event.dataset", "mtasts.incident");
	want_int(b, "event.severity", 9);
	want_str(b, "event.start", rfc3339(fx.now - 600));
	want_null(b, "event.end");
	want_str(b, "@timestamp", rfc3339(fx.now - 60));
	want_str(b, "rule.name", "VANTAGE_CHAIN_MISMATCH");
	want_str(b, "message", "detail of VANTAGE_CHAIN_MISMATCH");
	want_str(b, "mtasts.domain", DOMAIN);
	want_str(b, "mtasts.subject", MX);
	want_str(b, "mtasts.severity", "error");
	want_str(b, "mtasts.state", "open");
	want_null(b, "mtasts.stage");
	want_null(b, "mtasts.ack");
	want_str(b, "mtasts.matrix.agent-3", "b");
	assert_string_equal(
	    json_string_value(json_array_get(getp(b, "mtasts.dissenters"), 0)),
	    "agent-3");
	assert_int_equal(json_array_size(getp(b, "mtasts.vantages")), 3);
	want_int(b, "mtasts.first_round", t->round - 1);
	want_int(b, "mtasts.last_round", t->round);

	want_str(c, "mtasts.state", "resolved");
	want_int(c, "event.severity", 3);
	want_str(c, "event.end", rfc3339(fx.now - 10 * DAY));
	want_null(c, "mtasts.matrix");
	want_str(json_array_get(all, 2), "mtasts.stage", "30d");
	want_str(json_array_get(all, 1), "mtasts.domain", "");
	json_decref(all);
}

static void
test_incidents_filters(void **state)
{
	struct t *t = *state;
	time_t since;
	json_t *v;

	v = incidents(t, 1, 0, 0, 0);
	assert_int_equal(json_array_size(v), 3);
	json_decref(v);

	v = incidents(t, 0, 0, REPORT_SEV_ERROR, 0);
	assert_int_equal(json_array_size(v), 1);
	want_str(json_array_get(v, 0), "rule.name", "VANTAGE_CHAIN_MISMATCH");
	json_decref(v);
	v = incidents(t, 0, 0, REPORT_SEV_WARNING, 0);
	assert_int_equal(json_array_size(v), 3);
	json_decref(v);
	v = incidents(t, 0, 0, REPORT_SEV_INFO, 0);
	assert_int_equal(json_array_size(v), 4);
	json_decref(v);

	/* 24h: the incident resolved ten days ago is out. */
	assert_int_equal(report_parse_time("24h", fx.now, &since), 0);
	v = incidents(t, 0, since, 0, 0);
	assert_int_equal(json_array_size(v), 3);
	json_decref(v);
	/* 30 minutes: only what was seen since (b at -1 min, d at -5). */
	assert_int_equal(report_parse_time("30m", fx.now, &since), 0);
	v = incidents(t, 0, since, 0, 0);
	assert_int_equal(json_array_size(v), 2);
	json_decref(v);
	/* An RFC 3339 bound eleven days back brings c back. */
	assert_int_equal(
	    report_parse_time(rfc3339(fx.now - 11 * DAY), fx.now, &since), 0);
	v = incidents(t, 0, since, 0, 0);
	assert_int_equal(json_array_size(v), 4);
	json_decref(v);

	/* Combined, and limited. */
	v = incidents(t, 1, since, REPORT_SEV_WARNING, 0);
	assert_int_equal(json_array_size(v), 3);
	json_decref(v);
	v = incidents(t, 0, 0, 0, 1);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
}

static void
test_incidents_csv_cef_jsonl(void **state)
{
	struct t *t = *state;
	json_t *v = incidents(t, 1, 0, 0, 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	/* A detail with a comma and a quote must come back as one field. */
	json_object_set_new(
	    json_array_get(v, 0), "message", json_string("a, \"b\""));
	buf = capture_csv(REPORT_KIND_INCIDENTS, v);
	assert_true(
	    strncmp(buf, "mtasts.incident_id,mtasts.severity,", 35) == 0);
	assert_int_equal(count_lines(buf), 4);
	free(buf);

	fp = open_memstream(&buf, &len);
	assert_int_equal(report_write_cef(fp, v), 0);
	fclose(fp);
	assert_int_equal(count_lines(buf), 3);
	assert_true(
	    strncmp(buf, "CEF:0|mtasts-watch|mtasts-collector|", 36) == 0);
	assert_non_null(strstr(buf, "|VANTAGE_CHAIN_MISMATCH|"));
	assert_non_null(strstr(buf, "|AGENT_SILENT|"));
	free(buf);

	fp = open_memstream(&buf, &len);
	assert_int_equal(report_write_jsonl(fp, v), 0);
	fclose(fp);
	assert_int_equal(count_lines(buf), 3);
	{
		/* Each line is one whole object. */
		char *line = strtok(buf, "\n");
		int n = 0;

		for (; line != NULL; line = strtok(NULL, "\n"), n++) {
			json_t *o = json_loads(line, 0, NULL);

			assert_non_null(o);
			assert_non_null(getp(o, "rule.name"));
			json_decref(o);
		}
		assert_int_equal(n, 3);
	}
	free(buf);
	json_decref(v);
}

/* ---- expiring ---- */

static void
test_expiring(void **state)
{
	struct t *t = *state;
	char err[256], *s;
	json_t *v;
	const json_t *a, *b;

	assert_int_equal(
	    report_expiring(t->conn, 30, fx.now, 0, &v, err, sizeof(err)), 0);
	/* Soonest first: agent-3's MX leaf (5 days), the policy leaf (20);
	 * PH_OLD (2 days) belongs to the previous round only. */
	assert_int_equal(json_array_size(v), 2);
	a = json_array_get(v, 0);
	b = json_array_get(v, 1);
	want_int(a, "mtasts.days_left", 5);
	want_str(a, "mtasts.role", "mx");
	want_str(a, "server.address", MX);
	want_str(a, "mtasts.domain", DOMAIN);
	want_str(a, "tls.server.hash.sha256", fx.c[MX_B].sha_hex);
	want_str(a, "tls.server.x509.subject.distinguished_name", "CN=" MX);
	want_str(a, "tls.server.x509.serial_number", "1004");
	want_str(a, "tls.server.x509.not_after", rfc3339(fx.c[MX_B].not_after));
	assert_int_equal(json_array_size(getp(a, "mtasts.vantages")), 1);
	assert_string_equal(
	    json_string_value(json_array_get(getp(a, "mtasts.vantages"), 0)),
	    "agent-3");
	want_int(b, "mtasts.days_left", 20);
	want_str(b, "mtasts.role", "policy");
	want_str(b, "tls.server.hash.sha256", fx.c[PH].sha_hex);
	assert_int_equal(json_array_size(getp(b, "mtasts.vantages")), 3);

	s = capture_table(REPORT_KIND_EXPIRING, v, 0);
	assert_int_equal(count_lines(s), 3);
	assert_true(strncmp(s, "DAYS", 4) == 0);
	assert_non_null(strstr(strchr(s, '\n') + 1, "5 "));
	free(s);
	json_decref(v);

	/* The boundary: 20 days left is in at --days 20, out at 19. */
	assert_int_equal(
	    report_expiring(t->conn, 20, fx.now, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(v), 2);
	json_decref(v);
	assert_int_equal(
	    report_expiring(t->conn, 19, fx.now, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	assert_int_equal(
	    report_expiring(t->conn, 365, fx.now, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(v), 3);
	want_int(json_array_get(v, 2), "mtasts.days_left", 200);
	json_decref(v);
	assert_int_equal(
	    report_expiring(t->conn, 0, fx.now, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
	assert_int_equal(
	    report_expiring(t->conn, -1, fx.now, 0, &v, err, sizeof(err)), -1);
}

/* ---- agents ---- */

static void
test_agents(void **state)
{
	struct t *t = *state;
	char err[256], *s;
	json_t *v;
	const json_t *a1, *a2, *a3;

	assert_int_equal(report_agents(t->conn, fx.now, 0, &v, err, 256), 0);
	assert_int_equal(json_array_size(v), 3);
	a1 = json_array_get(v, 0);
	a2 = json_array_get(v, 1);
	a3 = json_array_get(v, 2);
	want_str(a1, "observer.name", "agent-1");
	want_str(a1, "observer.geo.name", "eu-west");
	want_str(a1, "mtasts.public_key",
	    "REPORTAGENTKEY10000000000000000000000000");
	want_str(a1, "mtasts.first_seen", rfc3339(fx.now - 30 * DAY));
	want_str(a1, "mtasts.last_seen", rfc3339(fx.now));
	want_bool(a1, "mtasts.silent", 0);
	want_int(a1, "mtasts.gaps.count", 1);
	want_int(a1, "mtasts.gaps.lost", 5);
	want_int(a1, "mtasts.last_committed_seq", 2);
	want_bool(a2, "mtasts.silent", 1); /* two hours without a word */
	want_int(a2, "mtasts.gaps.count", 0);
	want_bool(a3, "mtasts.silent", 1); /* an open AGENT_SILENT */
	s = capture_table(REPORT_KIND_AGENTS, v, 0);
	assert_non_null(strstr(s, "REPORTAGENTK..."));
	assert_null(strstr(s, "REPORTAGENTKEY1000"));
	free(s);
	json_decref(v);

	/* A longer silence threshold does not clear agent-3's incident. */
	assert_int_equal(
	    report_agents(t->conn, fx.now, 3 * 3600, &v, err, 256), 0);
	want_bool(json_array_get(v, 1), "mtasts.silent", 0);
	want_bool(json_array_get(v, 2), "mtasts.silent", 1);
	json_decref(v);
}

/* ---- ack ---- */

static void
test_ack(void **state)
{
	struct t *t = *state;
	char err[256], big[REPORT_ACK_BY_MAX + 2];
	json_t *v = NULL;

	assert_int_equal(report_ack(t->conn, t->inc[0], "alice", "on it", &v,
			     err, sizeof(err)),
	    0);
	want_str(v, "mtasts.ack.by", "alice");
	want_str(v, "mtasts.ack.note", "on it");
	assert_non_null(getp(v, "mtasts.ack.at"));
	want_int(v, "mtasts.incident_id", t->inc[0]);
	json_decref(v);
	assert_string_equal(q(t,
				"SELECT count(*) FROM incident_events WHERE "
				"kind = 'ack' AND incident_id = %lld",
				t->inc[0]),
	    "1");
	assert_string_equal(
	    q(t, "SELECT acked_by FROM incidents WHERE id = %lld", t->inc[0]),
	    "alice");

	assert_int_equal(
	    report_ack(t->conn, 999999, "bob", NULL, &v, err, sizeof(err)), 1);
	assert_null(v);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(
	    report_ack(t->conn, t->inc[1], big, NULL, &v, err, sizeof(err)),
	    -1);
	assert_int_equal(report_ack(t->conn, t->inc[1], "\xff\xfe", NULL, &v,
			     err, sizeof(err)),
	    -1);
	assert_string_equal(q(t, "SELECT count(*) FROM incident_events WHERE "
				 "kind = 'ack'"),
	    "1");
}

/* ---- parsing and output details ---- */

static void
test_parse(void **state)
{
	time_t now = 1700000000, t;
	char d[300];
	int64_t id;

	(void)state;
	assert_int_equal(report_parse_time("24h", now, &t), 0);
	assert_int_equal(t, now - 86400);
	assert_int_equal(report_parse_time("7d", now, &t), 0);
	assert_int_equal(t, now - 7 * 86400);
	assert_int_equal(report_parse_time("90s", now, &t), 0);
	assert_int_equal(t, now - 90);
	assert_int_equal(report_parse_time("2w", now, &t), 0);
	assert_int_equal(t, now - 14 * 86400);
	assert_int_equal(report_parse_time("2023-11-14T22:13:20Z", 0, &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(
	    report_parse_time("2023-11-14T23:13:20.123+01:00", 0, &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(
	    report_parse_time("2023-11-14t17:13:20-05:00", 0, &t), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(report_parse_time("2023-11-14", 0, &t), 0);
	assert_int_equal(t, 1699920000);
	assert_int_equal(report_parse_time("2023-02-29", 0, &t), -1);
	assert_int_equal(report_parse_time("2023-11-14T22:13:20", 0, &t), -1);
	assert_int_equal(report_parse_time("2023-11-14T25:13:20Z", 0, &t), -1);
	assert_int_equal(report_parse_time("24x", now, &t), -1);
	assert_int_equal(report_parse_time("-5h", now, &t), -1);
	assert_int_equal(report_parse_time("h", now, &t), -1);
	assert_int_equal(report_parse_time("", now, &t), -1);
	assert_int_equal(report_parse_time("999999999w", now, &t), -1);

	assert_int_equal(report_parse_severity("info"), REPORT_SEV_INFO);
	assert_int_equal(report_parse_severity("Warning"), REPORT_SEV_WARNING);
	assert_int_equal(report_parse_severity("ERROR"), REPORT_SEV_ERROR);
	assert_int_equal(report_parse_severity("critical"), -1);

	assert_int_equal(report_parse_domain("Example.COM.", d, sizeof(d)), 0);
	assert_string_equal(d, "example.com");
	assert_int_equal(report_parse_domain("localhost", d, sizeof(d)), -1);
	assert_int_equal(report_parse_domain("a..b", d, sizeof(d)), -1);
	assert_int_equal(report_parse_domain("x'; DROP", d, sizeof(d)), -1);
	assert_int_equal(report_parse_domain("", d, sizeof(d)), -1);
	memset(d, 'a', 260);
	d[260] = '\0';
	{
		char out[300];

		assert_int_equal(report_parse_domain(d, out, sizeof(out)), -1);
	}

	assert_int_equal(report_parse_id("42", &id), 0);
	assert_int_equal(id, 42);
	assert_int_equal(report_parse_id("9223372036854775807", &id), 0);
	assert_int_equal(report_parse_id("9223372036854775808", &id), -1);
	assert_int_equal(report_parse_id("0", &id), -1);
	assert_int_equal(report_parse_id("-1", &id), -1);
	assert_int_equal(report_parse_id("+1", &id), -1);
	assert_int_equal(report_parse_id("12a", &id), -1);
	assert_int_equal(report_parse_id("", &id), -1);
}

/* Data from the network never reaches a terminal as escape sequences,
 * and CSV quotes what RFC 4180 says it must. */
static void
test_output_hostile(void **state)
{
	json_t *rows = json_pack("[{s:{s:s, s:i, s:s, s:s}, s:{s:s}}]",
	    "mtasts", "domain", "evil.example", "incident_id", 7, "severity",
	    "error", "subject",
	    "a\033[2Jb\r\n\xc2\x9b"
	    "31mc,\"d\"",
	    "rule", "name", "X");
	char *s;
	char long_subject[300];

	(void)state;
	assert_non_null(rows);
	s = capture_table(REPORT_KIND_INCIDENTS, rows, 0);
	assert_null(strchr(s, '\033'));
	assert_null(strchr(s, '\r'));
	assert_null(strstr(s, "\xc2\x9b"));
	assert_non_null(strstr(s, "a?[2Jb???31mc,\"d\""));
	assert_int_equal(count_lines(s), 2);
	free(s);
	s = capture_csv(REPORT_KIND_INCIDENTS, rows);
	assert_non_null(strstr(s, ",\"a\033[2Jb\r\n\xc2\x9b"
				  "31mc,\"\"d\"\"\","));
	free(s);

	/* Long cells are cut in tables, kept whole in CSV. */
	memset(long_subject, 'z', sizeof(long_subject) - 1);
	long_subject[sizeof(long_subject) - 1] = '\0';
	json_object_set_new(json_object_get(json_array_get(rows, 0), "mtasts"),
	    "subject", json_string(long_subject));
	s = capture_table(REPORT_KIND_INCIDENTS, rows, 0);
	assert_non_null(strstr(s, "zzz..."));
	assert_null(strstr(s, long_subject));
	free(s);
	s = capture_csv(REPORT_KIND_INCIDENTS, rows);
	assert_non_null(strstr(s, long_subject));
	free(s);
	json_decref(rows);
}

/* A lost connection is an error, not an empty report. */
static void
test_connection_lost(void **state)
{
	struct t *t = *state;
	char err[256];
	json_t *v = (json_t *)1;

	PQfinish(t->conn);
	t->conn = PQconnectdb("host=/nonexistent-dir port=1 "
			      "connect_timeout=2");
	assert_int_not_equal(PQstatus(t->conn), CONNECTION_OK);
	assert_int_equal(
	    report_status(t->conn, fx.now, &v, err, sizeof(err)), -1);
	assert_null(v);
	assert_true(strlen(err) > 0);
	assert_int_equal(
	    report_domain(t->conn, DOMAIN, fx.now, &v, err, sizeof(err)), -1);
	assert_int_equal(report_agents(t->conn, fx.now, 0, &v, err, 256), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_status_table_csv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_domain, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_domain_removed_and_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_domain_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_incidents_ecs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_incidents_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_incidents_csv_cef_jsonl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiring, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ack, setup, teardown),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_output_hostile),
	    cmocka_unit_test_setup_teardown(
		test_connection_lost, setup, teardown),
	};

	if (rf_env("test_report_query", &fx.conninfo, &fx.sqldir) == -1)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
