/* test_incident.c -- cross-round rules and incidents on a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "compare.h"
#include "incident.h"
#include "store_pg.h"
#include "resultfix.h"

#define sql(t, ...)  pgschema_sql(&(t)->rf.db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->rf.db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->rf.db, (query))

/*
 * Environment as for test_compare: MTASTS_TEST_PG (required),
 * MTASTS_TEST_SQLDIR (default deploy/sql).  Each test has a schema of its
 * own.  Three agents (agent-1..3) write results with store_write_batch,
 * compare_round compares each round and incident_pending folds it, on one
 * connection, as the collector's analysis thread does.
 * MTASTS_TEST_FOLD_ROUNDS changes the 200 rounds of the timing test (the
 * figure in the docs is for 1000); MTASTS_TEST_FILTER (a cmocka pattern
 * such as "test_ack") runs only the tests it matches.
 */

#define DAY	 86400L
#define NAGENTS	 3
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define DEAD	 "dead.example"
#define MX	 "mx1.example.com"
#define PH	 "mta-sts." DOMAIN

enum { ROOT_A, ROOT_B, LEAF1, LEAF2, LEAF3, EXPSOON, NCERTS };

static struct {
	const char *conninfo;
	const char *sqldir;
	time_t now;
	struct rf_cert c[NCERTS];
} fx;

struct t {
	PGconn *conn; /* compare and incident, as in the collector */
	struct rf_db rf;
	int64_t round;
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, int issuer, int ca, long days)
{
	struct tc_opts o = {0};

	o.cn = cn;
	o.serial = 200 + which;
	o.not_before = fx.now - 10 * DAY;
	o.not_after = fx.now + days * DAY;
	if (!ca)
		o.san = "DNS:" MX ",DNS:" PH;
	return rf_cert_make(&fx.c[which], ca ? NULL : &fx.c[issuer], &o, 1);
}

static int
group_setup(void **state)
{
	(void)state;
	fx.now = time(NULL);
	/* Two CAs with one name: only their keys tell them apart. */
	if (s_make_cert(ROOT_A, "Incident Test Root", 0, 1, 3650) == -1 ||
	    s_make_cert(ROOT_B, "Incident Test Root", 0, 1, 3650) == -1 ||
	    s_make_cert(LEAF1, MX, ROOT_A, 0, 365) == -1 ||
	    s_make_cert(LEAF2, MX, ROOT_B, 0, 365) == -1 ||
	    s_make_cert(LEAF3, MX, ROOT_A, 0, 365) == -1 ||
	    s_make_cert(EXPSOON, MX, ROOT_A, 0, 25) == -1)
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
	    .schema = "incident_test",
	    .keyfmt = "AGENTKEY%d",
	    .nagents = NAGENTS,
	    .certs = fx.c,
	    .ncerts = NCERTS};
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	*state = t;
	if (rf_db_open(&t->rf, &o) == -1 ||
	    (t->conn = rf_db_connect(&t->rf)) == NULL)
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
	PQfinish(t->conn);
	rf_db_close(&t->rf);
	free(t);
	return 0;
}

/*
 * One vantage's result: STS id 20240101, TLSRPT, a policy in mode enforce
 * with body hash ab..ab, the policy host presenting LEAF1 + ROOT_A and one
 * MX presenting mx_chain (LEAF1 + ROOT_A unless a test changes it), both
 * verified, no finding.  Tests change fields, then put() it.
 */
static void
pr_init(struct rf_result *x, int64_t round)
{
	rf_result_init(x, DOMAIN, PH, MX, round);
	x->r.duration_ms = 100;
	rf_result_tlsrpt(x, "mailto:tls@example.com");
	x->addrs[0] = "192.0.2.1";
	x->mxh.n_addresses = 1;
	x->mxh.addresses = x->addrs;
	x->mxh.ip = "192.0.2.1";
	rf_result_chains(x, LEAF1, LEAF1, ROOT_A);
}

/* A probe cut short: no finding, nothing compared. */
static void
pr_incomplete(struct rf_result *x)
{
	x->r.completed = 0;
	x->r.policy = NULL;
	x->mxh.verified = 0;
	x->mxh.error = "timeout";
}

static void
put(struct t *t, int a, struct rf_result *x)
{
	if (rf_put(&t->rf, a, x, fx.now) != 0)
		fail();
}

/* Compares round and folds everything pending. */
static size_t
fold(struct t *t, int64_t round)
{
	size_t n = 0;

	/* A one-second window: a stale id is an error from the round after
	 * the body changed (test_policy_rollout covers the default). */
	struct incident_opts o = {.window_s = 1};

	assert_int_equal(compare_round(t->conn, DOMAIN, round, NULL, NULL), 0);
	assert_int_equal(
	    incident_pending(t->conn, fx.now, INTERVAL, &o, &n), 0);
	return n;
}

/* A round in which every agent reports the default result, the ones in
 * mask (bit a) with finding code on the MX too. */
static void
play(struct t *t, int64_t round, unsigned mask, const char *code,
    Mtastswatch__V1__Severity sev)
{
	struct rf_result x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, round);
		if (mask & (1u << a))
			rf_result_finding(&x, code, sev, MX, "a finding");
		put(t, a, &x);
	}
	fold(t, round);
}

#define SEV_INFO    MTASTSWATCH__V1__SEVERITY__SEVERITY_INFO
#define SEV_WARNING MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING
#define SEV_ERROR   MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR
#define ALL	    7u

/* A column of the newest incident of code. */
static const char *
inc(struct t *t, const char *code, const char *column)
{
	return q(t,
	    "SELECT %s FROM incidents WHERE code = '%s' ORDER BY id "
	    "DESC LIMIT 1",
	    column, code);
}

static long
ninc(struct t *t, const char *code)
{
	return strtol(
	    q(t, "SELECT count(*) FROM incidents WHERE code = '%s'", code),
	    NULL, 10);
}

/* The events of code's incidents, in order: "open,escalate,...". */
static const char *
events(struct t *t, const char *code)
{
	return q(t,
	    "SELECT coalesce(string_agg(e.kind, ',' ORDER BY e.id), "
	    "'') FROM incident_events e JOIN incidents i "
	    "ON i.id = e.incident_id WHERE i.code = '%s'",
	    code);
}

static long
nhist(struct t *t, const char *code)
{
	return strtol(q(t,
			  "SELECT count(*) FROM history_findings WHERE "
			  "code = '%s'",
			  code),
	    NULL, 10);
}

/* ---- the lifecycle ---- */

static void
test_open_repeat_resolve(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	char detail[32];
	struct rf_result x;

	for (int k = 0; k < 5; k++) {
		snprintf(detail, sizeof(detail), "round %d", k);
		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, r + k);
			rf_result_finding(&x, "TLSRPT_MISSING", SEV_WARNING,
			    "Example.COM.", detail);
			/* An agent cannot speak for the collector. */
			rf_result_finding(
			    &x, "STS_ID_CHANGED", SEV_INFO, DOMAIN, "");
			rf_result_finding(
			    &x, "VANTAGE_DNS_MISMATCH", SEV_ERROR, DOMAIN, "");
			put(t, a, &x);
		}
		assert_int_equal(fold(t, r + k), 1);
	}
	assert_int_equal(ninc(t, "TLSRPT_MISSING"), 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents"), 1);
	assert_string_equal(inc(t, "TLSRPT_MISSING",
				"domain || ' ' || subject || ' ' || state || "
				"' ' || severity || ' ' || (last_round - "
				"first_round) || ' ' || detail || ' ' || "
				"vantages::text"),
	    DOMAIN " " DOMAIN " open warning 4 round 4 "
		   "{agent-1,agent-2,agent-3}");
	assert_string_equal(events(t, "TLSRPT_MISSING"), "open");

	/* Gone in a conclusive round: resolved, once. */
	play(t, r + 5, 0, NULL, SEV_INFO);
	play(t, r + 6, 0, NULL, SEV_INFO);
	assert_string_equal(inc(t, "TLSRPT_MISSING",
				"state || ' ' || (resolved_at IS NOT NULL)"),
	    "resolved true");
	assert_string_equal(events(t, "TLSRPT_MISSING"), "open,resolve");

	/* Back again: a new episode. */
	play(t, r + 7, ALL, "TLSRPT_MISSING", SEV_WARNING);
	assert_int_equal(ninc(t, "TLSRPT_MISSING"), 2);
	assert_string_equal(events(t, "TLSRPT_MISSING"), "open,resolve,open");
}

static void
test_inconclusive_never_resolves(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	play(t, r, ALL, "MX_CONNECT_FAILED", SEV_ERROR);
	/* Only agent-1 completes: inconclusive, and agent-1 saw it gone. */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r + 1);
		if (a > 0)
			pr_incomplete(&x);
		else
			rf_result_finding(
			    &x, "POLICY_MAX_AGE_LOW", SEV_WARNING, PH, "short");
		put(t, a, &x);
	}
	fold(t, r + 1);
	assert_string_equal(
	    q(t, "SELECT state FROM round_status WHERE round = %lld",
		(long long)(r + 1)),
	    "inconclusive");
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "open");
	/* An inconclusive round still opens what it saw. */
	assert_string_equal(inc(t, "POLICY_MAX_AGE_LOW", "state"), "open");

	play(t, r + 2, 0, NULL, SEV_INFO);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "resolved");
	assert_string_equal(inc(t, "POLICY_MAX_AGE_LOW", "state"), "resolved");
}

/* What only agent-3 saw is resolved only by agent-3 completing. */
static void
test_missing_vantage(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	play(t, r, 1u << 2, "MX_CONNECT_FAILED", SEV_ERROR);
	assert_string_equal(
	    inc(t, "MX_CONNECT_FAILED", "vantages::text"), "{agent-3}");

	/* agent-3 does not report: compared, but not resolved. */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r + 1);
		if (a != 2) /* agent-3 does not report */
			put(t, a, &x);
	}
	fold(t, r + 1);
	assert_string_equal(
	    q(t, "SELECT state FROM round_status WHERE round = %lld",
		(long long)(r + 1)),
	    "compared");
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "open");

	/* agent-3 reports, but its probe did not complete. */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r + 2);
		if (a == 2)
			pr_incomplete(&x);
		put(t, a, &x);
	}
	fold(t, r + 2);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "open");

	play(t, r + 3, 0, NULL, SEV_INFO);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "resolved");
	assert_string_equal(events(t, "MX_CONNECT_FAILED"), "open,resolve");
}

static void
test_escalate(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	play(t, r, 1, "POLICY_MX_UNUSED", SEV_WARNING);
	play(t, r + 1, 3, "POLICY_MX_UNUSED", SEV_ERROR);
	assert_string_equal(inc(t, "POLICY_MX_UNUSED", "severity"), "error");
	assert_string_equal(
	    inc(t, "POLICY_MX_UNUSED", "vantages::text"), "{agent-1,agent-2}");
	/* Severity never comes down while the incident is open. */
	play(t, r + 2, 1, "POLICY_MX_UNUSED", SEV_WARNING);
	assert_string_equal(inc(t, "POLICY_MX_UNUSED", "severity"), "error");
	assert_string_equal(events(t, "POLICY_MX_UNUSED"), "open,escalate");
	assert_string_equal(
	    q(t, "SELECT string_agg(e.severity, ',' ORDER BY e.id) FROM "
		 "incident_events e"),
	    "warning,error");
}

/* The MX leaf EXPSOON expires 25 days after fx.now; the agents' clocks
 * move on from round to round. */
static void
expiry_round(struct t *t, int64_t round, long day, const char *code,
    Mtastswatch__V1__Severity sev, int leaf)
{
	struct rf_result x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, round);
		x.r.started_at_ms = (int64_t)(fx.now + day * DAY) * 1000 + a;
		x.mx_chain[0] = leaf;
		if (code != NULL)
			rf_result_finding(&x, code, sev, MX, "expiry");
		put(t, a, &x);
	}
	fold(t, round);
}

static void
test_expiry_stages(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	/* day of the agents' clock -> days left 25, 24, 12, 11, 5, 4 */
	const long day[] = {0, 1, 13, 14, 20, 21};
	const char *stage[] = {"30d", "30d", "14d", "14d", "7d", "7d"};

	for (int k = 0; k < 6; k++) {
		expiry_round(t, r + k, day[k], "CERT_EXPIRING",
		    day[k] >= 18 ? SEV_ERROR : SEV_WARNING, EXPSOON);
		assert_string_equal(inc(t, "CERT_EXPIRING", "stage"), stage[k]);
	}
	assert_int_equal(ninc(t, "CERT_EXPIRING"), 1);
	assert_string_equal(
	    events(t, "CERT_EXPIRING"), "open,escalate,escalate");
	assert_string_equal(
	    q(t, "SELECT string_agg(e.stage || ' ' || e.severity, ',' "
		 "ORDER BY e.id) FROM incident_events e"),
	    "30d warning,14d warning,7d error");

	/* Expired: a code of its own, opened once; EXPIRING is gone. */
	expiry_round(t, r + 6, 26, "CERT_EXPIRED", SEV_ERROR, EXPSOON);
	expiry_round(t, r + 7, 27, "CERT_EXPIRED", SEV_ERROR, EXPSOON);
	assert_string_equal(inc(t, "CERT_EXPIRING", "state"), "resolved");
	assert_string_equal(events(t, "CERT_EXPIRED"), "open");
	assert_string_equal(inc(t, "CERT_EXPIRED", "stage IS NULL"), "t");

	/* Renewed: resolved. */
	expiry_round(t, r + 8, 28, NULL, SEV_INFO, LEAF1);
	assert_string_equal(events(t, "CERT_EXPIRED"), "open,resolve");
	assert_int_equal(nhist(t, "CERT_RENEWED"), 1);
}

/* ---- the cross-round rules ---- */

/* Every agent sees STS id and a policy body whose sha256 starts body. */
static void
put_sts(struct t *t, int64_t round, const char *id, unsigned char body)
{
	struct rf_result x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, round);
		x.sts.id = (char *)id;
		x.body_sha[0] = body;
		put(t, a, &x);
	}
}

static void
sts_round(struct t *t, int64_t round, const char *id, unsigned char body)
{
	put_sts(t, round, id, body);
	fold(t, round);
}

static void
test_sts_id_changed(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	sts_round(t, r, "20240101", 0xab);
	assert_int_equal(qn(t, "SELECT count(*) FROM history_findings"), 0);
	sts_round(t, r + 1, "20240202", 0xab);
	assert_int_equal(nhist(t, "STS_ID_CHANGED"), 1);
	assert_string_equal(inc(t, "STS_ID_CHANGED",
				"severity || ' ' || subject || ' ' || detail"),
	    "info _mta-sts." DOMAIN " the STS id changed from 20240101 to "
	    "20240202; the policy body did not change");
	assert_string_equal(inc(t, "STS_ID_CHANGED", "state"), "open");
	sts_round(t, r + 2, "20240202", 0xab);
	assert_string_equal(inc(t, "STS_ID_CHANGED", "state"), "resolved");
	assert_int_equal(nhist(t, "STS_ID_CHANGED"), 1);
	/* With the body. */
	sts_round(t, r + 3, "20240303", 0xcd);
	assert_non_null(strstr(inc(t, "STS_ID_CHANGED", "detail"),
	    "the policy body changed with it"));
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
}

static void
test_policy_changed_without_id(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	sts_round(t, r, "20240101", 0xab);
	sts_round(t, r + 1, "20240101", 0xcd);
	/* Within the window the id may be on its way. */
	assert_int_equal(ninc(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
	sts_round(t, r + 2, "20240101", 0xcd);
	assert_string_equal(inc(t, "POLICY_CHANGED_WITHOUT_ID",
				"severity || ' ' || subject || ' ' || state"),
	    "error mta-sts." DOMAIN " open");
	/* It stays while the id does not move, even if the body does. */
	sts_round(t, r + 3, "20240101", 0xef);
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 2);
	assert_int_equal(ninc(t, "POLICY_CHANGED_WITHOUT_ID"), 1);
	assert_string_equal(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "state"), "open");
	assert_non_null(strstr(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "detail"), "abababababababab"));
	/* The id bumps: resolved, and the id change says why. */
	sts_round(t, r + 4, "20240404", 0xef);
	assert_string_equal(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "state"), "resolved");
	assert_string_equal(
	    events(t, "POLICY_CHANGED_WITHOUT_ID"), "open,resolve");
	assert_non_null(strstr(inc(t, "STS_ID_CHANGED", "detail"),
	    "had changed under the old id"));
	sts_round(t, r + 5, "20240404", 0xef);
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 2);
}

/*
 * The right order of a policy change, new body first and the id after it
 * (RFC 8461, section 3.3), with the id reaching the resolvers an hour
 * later: nothing but STS_ID_CHANGED under the default window.
 */
static void
test_policy_rollout(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct incident_opts o = {0};
	size_t n;

	sts_round(t, r, "20240101", 0xab);
	for (int64_t k = 1; k <= 3600 / INTERVAL; k++) {
		put_sts(t, r + k, "20240101", 0xcd);
		assert_int_equal(
		    compare_round(t->conn, DOMAIN, r + k, NULL, NULL), 0);
		assert_int_equal(
		    incident_pending(t->conn, fx.now, INTERVAL, &o, &n), 0);
	}
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
	put_sts(t, r + 3600 / INTERVAL + 1, "20240202", 0xcd);
	assert_int_equal(
	    compare_round(t->conn, DOMAIN, r + 3600 / INTERVAL + 1, NULL, NULL),
	    0);
	assert_int_equal(
	    incident_pending(t->conn, fx.now, INTERVAL, &o, &n), 0);
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
	assert_int_equal(ninc(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
	assert_int_equal(nhist(t, "STS_ID_CHANGED"), 1);
	/* The same change left without an id past the window is an error. */
	for (int64_t k = 2; k <= 3600 / INTERVAL + 3; k++) {
		put_sts(t, r + 3600 / INTERVAL + k, "20240202", 0xef);
		assert_int_equal(compare_round(t->conn, DOMAIN,
				     r + 3600 / INTERVAL + k, NULL, NULL),
		    0);
		assert_int_equal(
		    incident_pending(t->conn, fx.now, INTERVAL, &o, &n), 0);
	}
	assert_string_equal(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "severity || ' ' || state"),
	    "error open");
	assert_int_equal(nhist(t, "POLICY_CHANGED_WITHOUT_ID"), 1);
}

/*
 * A round where one vantage alone completed is inconclusive: what that
 * vantage (perhaps the attacked one) saw must not move the state or
 * raise a cross-round finding.
 */
static void
test_lone_vantage_moves_nothing(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	sts_round(t, r, "20240101", 0xab);
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r + 1);
		x.sts.id = "20249999";
		x.body_sha[0] = 0xcd;
		if (a != 0)
			pr_incomplete(&x);
		put(t, a, &x);
	}
	fold(t, r + 1);
	assert_string_equal(q(t,
				"SELECT state FROM round_status WHERE "
				"round = %lld",
				(long long)(r + 1)),
	    "inconclusive");
	assert_string_equal(q(t, "SELECT value || ' ' || round FROM "
				 "domain_state WHERE kind = 'sts_id'"),
	    q(t, "SELECT '20240101 %lld'", (long long)r));
	assert_int_equal(nhist(t, "STS_ID_CHANGED"), 0);
	sts_round(t, r + 2, "20240101", 0xab);
	assert_int_equal(qn(t, "SELECT count(*) FROM history_findings"), 0);
	assert_int_equal(ninc(t, "POLICY_CHANGED_WITHOUT_ID"), 0);
	assert_string_equal(q(t, "SELECT round FROM domain_state WHERE kind = "
				 "'policy_sha256'"),
	    q(t, "SELECT %lld", (long long)(r + 2)));
}

static void
test_policy_body_returns(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	sts_round(t, r, "20240101", 0xab);
	sts_round(t, r + 1, "20240101", 0xcd);
	sts_round(t, r + 2, "20240101", 0xcd);
	assert_string_equal(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "state"), "open");
	sts_round(t, r + 3, "20240101", 0xab);
	assert_string_equal(
	    inc(t, "POLICY_CHANGED_WITHOUT_ID", "state"), "resolved");
	assert_int_equal(nhist(t, "STS_ID_CHANGED"), 0);
	assert_string_equal(
	    q(t, "SELECT count(*) FROM domain_state WHERE kind LIKE "
		 "'stale%%'"),
	    "0");
}

/* Every agent's MX presents the chain leaf (+ root, when root >= 0). */
static void
chain_round(struct t *t, int64_t round, int leaf, int root)
{
	struct rf_result x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, round);
		x.mx_chain[0] = leaf;
		x.mx_chain[1] = root;
		put(t, a, &x);
	}
	fold(t, round);
}

static void
test_cert_renewed(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	chain_round(t, r, LEAF1, ROOT_A);
	chain_round(t, r + 1, LEAF3, ROOT_A);
	assert_int_equal(nhist(t, "CERT_RENEWED"), 1);
	assert_int_equal(nhist(t, "CERT_ISSUER_CHANGED"), 0);
	assert_string_equal(
	    inc(t, "CERT_RENEWED", "severity || ' ' || subject"), "info " MX);
	assert_non_null(
	    strstr(inc(t, "CERT_RENEWED", "detail"), "same issuing CA key"));
	chain_round(t, r + 2, LEAF3, ROOT_A);
	assert_int_equal(nhist(t, "CERT_RENEWED"), 1);
	assert_string_equal(inc(t, "CERT_RENEWED", "state"), "resolved");
}

static void
test_cert_issuer_changed(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	chain_round(t, r, LEAF1, ROOT_A);
	chain_round(t, r + 1, LEAF2, ROOT_B);
	assert_int_equal(nhist(t, "CERT_ISSUER_CHANGED"), 1);
	assert_int_equal(nhist(t, "CERT_RENEWED"), 0);
	assert_string_equal(
	    inc(t, "CERT_ISSUER_CHANGED", "severity || ' ' || subject"),
	    "warning " MX);
	assert_non_null(
	    strstr(inc(t, "CERT_ISSUER_CHANGED", "detail"), "SPKI"));
}

/* Without the intermediate the issuer is the leaf's AKI; a round that
 * adds the issuer back is no change. */
static void
test_cert_issuer_by_aki(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;

	chain_round(t, r, LEAF1, -1);
	chain_round(t, r + 1, LEAF2, -1);
	assert_int_equal(nhist(t, "CERT_ISSUER_CHANGED"), 1);
	assert_non_null(strstr(inc(t, "CERT_ISSUER_CHANGED", "detail"), "AKI"));
	chain_round(t, r + 2, LEAF2, ROOT_B);
	chain_round(t, r + 3, LEAF2, -1);
	assert_int_equal(nhist(t, "CERT_ISSUER_CHANGED"), 1);
	assert_int_equal(nhist(t, "CERT_RENEWED"), 0);
}

/* Two leaves behind a load balancer, taking turns: no renewal. */
static void
test_load_balancer(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	for (int k = 0; k < 4; k++) {
		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, r + k);
			x.mx_chain[0] =
			    (a == 2) == (k % 2 == 0) ? LEAF3 : LEAF1;
			put(t, a, &x);
		}
		fold(t, r + k);
	}
	/* The state follows the agreement (LEAF3, serial 204, in the last
	 * round), without a word about it. */
	assert_string_equal(
	    q(t,
		"SELECT value = (SELECT encode(sha256, 'hex') FROM "
		"certificates WHERE serial = 'CC') FROM domain_state WHERE "
		"kind = 'leaf_sha256' AND subject = '%s'",
		MX),
	    "t");
	assert_int_equal(qn(t, "SELECT count(*) FROM history_leaves WHERE "
			       "host = '" MX "'"),
	    2);
	assert_int_equal(nhist(t, "CERT_RENEWED"), 0);
	assert_int_equal(nhist(t, "CERT_ISSUER_CHANGED"), 0);
	assert_int_equal(ninc(t, "CERT_RENEWED"), 0);
}

/* A vantage finding: all vantages, dissenters and matrix copied; no
 * cross-round change from one dissenter. */
static void
test_vantage_incident(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r);
		if (a == 1)
			x.sts.id = "20240202";
		put(t, a, &x);
	}
	fold(t, r);
	assert_string_equal(inc(t, "VANTAGE_DNS_MISMATCH",
				"severity || ' ' || subject || ' ' || "
				"vantages::text || ' ' || dissenters::text"),
	    "error _mta-sts." DOMAIN " {agent-1,agent-2,agent-3} {agent-2}");
	assert_string_equal(
	    inc(t, "VANTAGE_DNS_MISMATCH", "matrix->>'agent-2'"),
	    "id=20240202");
	assert_int_equal(qn(t, "SELECT count(*) FROM history_findings"), 0);
	/* agent-2 does not report the next round: still resolved. */
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r + 1);
		if (a != 1) /* agent-2 does not report */
			put(t, a, &x);
	}
	fold(t, r + 1);
	assert_string_equal(
	    inc(t, "VANTAGE_DNS_MISMATCH", "state"), "resolved");
}

/* ---- agent health ---- */

static void
test_agent_silent(void **state)
{
	struct t *t = *state;
	time_t now = time(NULL);
	size_t n;

	sql(t, "UPDATE agents SET last_seen = now() - interval '1 hour' "
	       "WHERE name = 'agent-2'");
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    incident_pending(t->conn, now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 0);
	assert_string_equal(inc(t, "AGENT_SILENT",
				"domain || '/' || subject || ' ' || severity "
				"|| ' ' || state"),
	    "/agent-2 warning open");
	assert_int_equal(ninc(t, "AGENT_SILENT"), 1);
	assert_string_equal(events(t, "AGENT_SILENT"), "open");

	sql(t, "UPDATE agents SET last_seen = now() WHERE name = 'agent-2'");
	assert_int_equal(incident_pending(t->conn, now, INTERVAL, NULL, &n), 0);
	assert_string_equal(events(t, "AGENT_SILENT"), "open,resolve");
	assert_int_equal(ninc(t, "AGENT_SILENT"), 1);
}

/* agent-3's probes do not complete where the others' do. */
static void
test_agent_degraded(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	for (int k = 0; k < 4; k++) {
		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, r + k);
			if (a == 2 && k < 3)
				pr_incomplete(&x);
			put(t, a, &x);
		}
		fold(t, r + k);
		if (k < 2)
			assert_int_equal(ninc(t, "AGENT_DEGRADED"), 0);
		else if (k == 2)
			assert_string_equal(
			    inc(t, "AGENT_DEGRADED", "subject || ' ' || state"),
			    "agent-3 open");
	}
	assert_string_equal(events(t, "AGENT_DEGRADED"), "open,resolve");
	assert_int_equal(ninc(t, "AGENT_SILENT"), 0);
}

/* A target down for every vantage is not the agents' fault. */
static void
test_agent_degraded_dead_target(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;
	size_t n;

	for (int k = 0; k < 4; k++) {
		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, r + k);
			put(t, a, &x);
			pr_init(&x, r + k);
			x.r.domain = DEAD;
			pr_incomplete(&x);
			put(t, a, &x);
		}
		assert_int_equal(
		    compare_round(t->conn, DEAD, r + k, NULL, NULL), 0);
		assert_int_equal(fold(t, r + k), 2);
	}
	assert_int_equal(qn(t, "SELECT count(*) FROM round_status WHERE "
			       "state = 'inconclusive'"),
	    4);
	assert_int_equal(ninc(t, "AGENT_DEGRADED"), 0);
	assert_int_equal(
	    incident_pending(t->conn, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(ninc(t, "AGENT_DEGRADED"), 0);
}

/* ---- acks, idempotency, late rounds, volume ---- */

static void
test_ack(void **state)
{
	struct t *t = *state;
	char toolong[INCIDENT_ACK_WHO_MAX + 2];
	int64_t id;

	play(t, t->round, ALL, "MX_CONNECT_FAILED", SEV_ERROR);
	id = strtoll(inc(t, "MX_CONNECT_FAILED", "id"), NULL, 10);
	assert_int_equal(incident_ack(t->conn, id, "alice", "on it"), 0);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED",
				"acked_by || ' ' || ack_note || ' ' || "
				"(acked_at IS NOT NULL)"),
	    "alice on it true");
	assert_string_equal(events(t, "MX_CONNECT_FAILED"), "open,ack");
	assert_int_equal(incident_ack(t->conn, id, "bob", NULL), 0);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED",
				"acked_by || ' ' || (ack_note IS NULL)"),
	    "bob true");
	assert_int_equal(incident_ack(t->conn, id + 1000, "alice", "x"), 1);
	memset(toolong, 'a', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = '\0';
	assert_int_equal(incident_ack(t->conn, id, toolong, NULL), -1);
	assert_int_equal(incident_ack(t->conn, id, NULL, NULL), -1);
	assert_string_equal(events(t, "MX_CONNECT_FAILED"), "open,ack,ack");
	/* Acked is still open: the next round repeats it. */
	play(t, t->round + 1, ALL, "MX_CONNECT_FAILED", SEV_ERROR);
	assert_string_equal(inc(t, "MX_CONNECT_FAILED", "state"), "open");
}

static void
test_fold_twice(void **state)
{
	struct t *t = *state;
	PGconn *other = PQconnectdb(t->rf.db.conninfo);
	size_t n = 99;

	assert_int_equal(PQstatus(other), CONNECTION_OK);
	for (int k = 0; k < 3; k++) {
		struct rf_result x;

		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, t->round + k);
			rf_result_finding(
			    &x, "MX_CONNECT_FAILED", SEV_ERROR, MX, "x");
			put(t, a, &x);
		}
		assert_int_equal(
		    compare_round(t->conn, DOMAIN, t->round + k, NULL, NULL),
		    0);
	}
	assert_int_equal(
	    incident_pending(other, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(
	    incident_pending(t->conn, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    incident_pending(other, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM round_status WHERE "
			       "folded_at IS NULL"),
	    0);
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents"), 1);
	assert_string_equal(events(t, "MX_CONNECT_FAILED"), "open");
	/* Comparing a folded round again does not fold it again. */
	assert_int_equal(
	    compare_round(t->conn, DOMAIN, t->round, NULL, NULL), 0);
	assert_int_equal(
	    incident_pending(t->conn, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 0);
	PQfinish(other);
}

/* A round compared after a newer one was folded moves nothing back. */
static void
test_late_round(void **state)
{
	struct t *t = *state;
	int64_t r = t->round;
	struct rf_result x;

	sts_round(t, r + 1, "20240101", 0xab);
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, r);
		x.sts.id = "20231231";
		rf_result_finding(
		    &x, "MX_CONNECT_FAILED", SEV_ERROR, MX, "old");
		put(t, a, &x);
	}
	assert_int_equal(fold(t, r), 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM round_status WHERE "
			       "folded_at IS NULL"),
	    0);
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM history_findings"), 0);
	assert_string_equal(q(t,
				"SELECT value || ' ' || (round - %lld) FROM "
				"domain_state WHERE kind = 'sts_id'",
				(long long)r),
	    "20240101 1");
	/* The next round compares with round r + 1, not the late one. */
	sts_round(t, r + 2, "20240101", 0xab);
	assert_int_equal(qn(t, "SELECT count(*) FROM history_findings"), 0);
}

static double
s_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The same finding for many rounds: one row, one event.  Results go in
 * batches and the rounds are marked compared directly (compare_round over
 * a thousand rounds takes far longer than the fold, and is not what is
 * measured); then prints the time incident_pending took to fold them.
 */
static void
test_thousand_rounds(void **state)
{
	enum { BATCH = 100 };
	struct t *t = *state;
	const char *env = getenv("MTASTS_TEST_FOLD_ROUNDS");
	long rounds = env != NULL ? strtol(env, NULL, 10) : 200;
	struct timespec rt = {.tv_sec = fx.now, .tv_nsec = 0};
	Mtastswatch__V1__ProbeResult *ptr[BATCH];
	struct rf_result *x = calloc(BATCH, sizeof(*x));
	size_t n, total = 0;
	uint64_t committed;
	double secs;
	int64_t r0;

	assert_non_null(x);
	if (rounds < 1 || rounds > 100000)
		rounds = 200;
	r0 = t->round - rounds;
	for (int a = 0; a < NAGENTS; a++)
		for (long k = 0; k < rounds; k += BATCH) {
			size_t nb = 0;

			for (; nb < BATCH && k + (long)nb < rounds; nb++) {
				pr_init(&x[nb], r0 + k + (long)nb);
				rf_result_finding(&x[nb], "TLSRPT_MISSING",
				    SEV_WARNING, DOMAIN, "no record");
				rf_result_finish(&t->rf, &x[nb]);
				x[nb].r.seq = ++t->rf.seq[a];
				ptr[nb] = &x[nb].r;
			}
			assert_int_equal(
			    store_write_batch(t->rf.st, t->rf.agent[a], ptr, nb,
				&rt, &committed),
			    0);
		}
	free(x);
	sql(t,
	    "INSERT INTO round_status (domain, round, state, vantages, "
	    "completed) SELECT '%s', r, 'compared', 3, 3 FROM "
	    "generate_series(%lld, %lld) r",
	    DOMAIN, (long long)r0, (long long)(r0 + rounds - 1));

	secs = s_seconds();
	do {
		assert_int_equal(
		    incident_pending(t->conn, fx.now, INTERVAL, NULL, &n), 0);
		total += n;
	} while (n > 0);
	secs = s_seconds() - secs;
	print_message("fold: %ld rounds of one domain, %d agents: %.2f s "
		      "(%.2f ms per round)\n",
	    rounds, NAGENTS, secs, secs * 1000.0 / (double)rounds);
	assert_int_equal(total, (size_t)rounds);
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents"), 1);
	assert_string_equal(events(t, "TLSRPT_MISSING"), "open");
	assert_int_equal(qn(t, "SELECT last_round - first_round + 1 FROM "
			       "incidents"),
	    rounds);
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents WHERE "
			       "vantages = '{agent-1,agent-2,agent-3}'"),
	    1);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_open_repeat_resolve),
	    T(test_inconclusive_never_resolves),
	    T(test_missing_vantage),
	    T(test_escalate),
	    T(test_expiry_stages),
	    T(test_sts_id_changed),
	    T(test_policy_changed_without_id),
	    T(test_policy_rollout),
	    T(test_lone_vantage_moves_nothing),
	    T(test_policy_body_returns),
	    T(test_cert_renewed),
	    T(test_cert_issuer_changed),
	    T(test_cert_issuer_by_aki),
	    T(test_load_balancer),
	    T(test_vantage_incident),
	    T(test_agent_silent),
	    T(test_agent_degraded),
	    T(test_agent_degraded_dead_target),
	    T(test_ack),
	    T(test_fold_twice),
	    T(test_late_round),
	    T(test_thousand_rounds),
	};
#undef T

	if (rf_env("test_incident", &fx.conninfo, &fx.sqldir) == -1)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
