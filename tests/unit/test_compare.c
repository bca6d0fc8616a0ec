/* test_compare.c -- the vantage comparison against a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "../lib/testcert.h"
#include "compare.h"
#include "incident.h"
#include "store_pg.h"
#include "pgschema.h"

/* The admin-side helpers of pgschema.h, on a test's own schema. */
#define sql(t, ...)  pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->db, (query))

/*
 * Environment as for test_store_pg: MTASTS_TEST_PG (required),
 * MTASTS_TEST_SQLDIR (default deploy/sql).  Each test has a schema of its
 * own; three agents (agent-1..3) write their results for example.com with
 * store_write_batch, then compare_round reads them on a connection of its
 * own, as the collector will.
 */

#define DAY	 86400L
#define NAGENTS	 3
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define MX	 "mx1.example.com"

enum { ROOT_A, ROOT_B, LEAF1, LEAF2, LEAF3, NCERTS };

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
	PGconn *cmp;
	struct pgschema db; /* admin connection and private schema */
	struct store *st;
	int64_t agent[NAGENTS];
	uint64_t seq[NAGENTS];
	int64_t round; /* the current round at fx.now */
};

/* ---- fixtures ---- */

static int
s_make_cert(int which, const char *cn, int issuer, int ca)
{
	struct tcert *c = &fx.c[which];
	struct tc_opts o = {0};
	unsigned char spki[32];
	unsigned int n;

	if ((c->key = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = cn;
	o.key = c->key;
	o.ca = ca;
	o.serial = 100 + which;
	o.not_before = fx.now - 10 * DAY;
	o.not_after = fx.now + 365 * DAY;
	if (!ca) {
		o.san = "DNS:" MX ",DNS:mta-sts." DOMAIN;
		o.issuer = fx.c[issuer].x;
		o.issuer_key = fx.c[issuer].key;
	}
	if ((c->x = tc_cert(&o)) == NULL)
		return -1;
	if (!tc_add_ext(c->x, c->x, NID_subject_key_identifier, "hash"))
		return -1;
	if (!ca && !tc_add_ext(c->x, fx.c[issuer].x,
		       NID_authority_key_identifier, "keyid:always"))
		return -1;
	if (X509_sign(c->x, ca ? c->key : fx.c[issuer].key, EVP_sha256()) <= 0)
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
	/* Two CAs with the same name: only their keys tell them apart. */
	if (s_make_cert(ROOT_A, "Compare Test Root", 0, 1) == -1 ||
	    s_make_cert(ROOT_B, "Compare Test Root", 0, 1) == -1 ||
	    s_make_cert(LEAF1, MX, ROOT_A, 0) == -1 ||
	    s_make_cert(LEAF2, MX, ROOT_B, 0) == -1 ||
	    s_make_cert(LEAF3, MX, ROOT_A, 0) == -1)
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
	if (pgschema_open(&t->db, fx.conninfo, "compare_test") == -1)
		return -1;
	t->st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
	if (t->st == NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	t->cmp = PQconnectdb(t->db.conninfo);
	if (PQstatus(t->cmp) != CONNECTION_OK) {
		print_error("compare connect: %s", PQerrorMessage(t->cmp));
		return -1;
	}
	for (int i = 0; i < NAGENTS; i++) {
		snprintf(key, sizeof(key), "AGENTKEY%d", i + 1);
		snprintf(name, sizeof(name), "agent-%d", i + 1);
		if (store_agent_upsert(t->st, key, name, "r", &t->agent[i]) !=
		    0)
			return -1;
	}
	t->round = fx.now / INTERVAL;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	store_close(&t->st);
	PQfinish(t->cmp);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/*
 * One vantage's result: STS id, a policy (mode enforce), the policy host
 * and one MX, both presenting LEAF1 + ROOT_A, verified, STARTTLS offered.
 * Tests change fields before put().
 */
struct pr {
	Mtastswatch__V1__ProbeResult r;
	Mtastswatch__V1__StsTxt sts;
	Mtastswatch__V1__TlsRpt rpt;
	char *rua[1];
	Mtastswatch__V1__Policy pol;
	char *pol_mx[1];
	unsigned char body_sha[32];
	Mtastswatch__V1__HostObservation ph, mxh;
	Mtastswatch__V1__MxObservation mx, *mxp[1];
	ProtobufCBinaryData chain[2];
	char *addrs[2];
	Mtastswatch__V1__Certificate c[2], *cp[2];
};

/* Makes the MX present leaf (signed by its root) instead of LEAF1. */
static void
pr_mx_leaf(struct pr *x, int leaf, int root)
{
	x->chain[0].data = fx.c[leaf].sha;
	x->chain[1].data = fx.c[root].sha;
	x->c[0].der.data = fx.c[leaf].der;
	x->c[0].der.len = (size_t)fx.c[leaf].len;
	x->c[1].der.data = fx.c[root].der;
	x->c[1].der.len = (size_t)fx.c[root].len;
}

static void
pr_init(struct pr *x, int64_t round)
{
	const Mtastswatch__V1__ProbeResult r0 =
	    MTASTSWATCH__V1__PROBE_RESULT__INIT;
	const Mtastswatch__V1__StsTxt s0 = MTASTSWATCH__V1__STS_TXT__INIT;
	const Mtastswatch__V1__TlsRpt t0 = MTASTSWATCH__V1__TLS_RPT__INIT;
	const Mtastswatch__V1__Policy p0 = MTASTSWATCH__V1__POLICY__INIT;
	const Mtastswatch__V1__HostObservation h0 =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	const Mtastswatch__V1__MxObservation m0 =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;

	memset(x, 0, sizeof(*x));
	x->r = r0;
	x->r.domain = DOMAIN;
	x->r.started_at_ms = (int64_t)round * INTERVAL * 1000;
	x->r.duration_ms = 900;
	x->r.completed = 1;
	x->r.round = (uint64_t)round;

	x->sts = s0;
	x->sts.id = "20240101";
	x->sts.valid = 1;
	x->r.sts_txt = &x->sts;
	x->rpt = t0;
	x->rua[0] = "mailto:tls@example.com";
	x->rpt.rua = x->rua;
	x->rpt.n_rua = 1;
	x->rpt.valid = 1;
	x->r.tlsrpt = &x->rpt;

	x->pol = p0;
	x->pol.http_status = 200;
	memset(x->body_sha, 0xab, sizeof(x->body_sha));
	x->pol.sha256.data = x->body_sha;
	x->pol.sha256.len = sizeof(x->body_sha);
	x->pol.mode = "enforce";
	x->pol_mx[0] = MX;
	x->pol.mx = x->pol_mx;
	x->pol.n_mx = 1;
	x->pol.max_age = 86400;
	x->pol.valid = 1;
	x->r.policy = &x->pol;

	x->chain[0].len = x->chain[1].len = 32;
	x->c[0] = x->c[1] = c0;
	x->cp[0] = &x->c[0];
	x->cp[1] = &x->c[1];
	x->r.certificates = x->cp;
	x->r.n_certificates = 2;
	pr_mx_leaf(x, LEAF1, ROOT_A);

	x->addrs[0] = "192.0.2.1";
	x->addrs[1] = "2001:db8::1";
	x->ph = h0;
	x->ph.host = "mta-sts." DOMAIN;
	x->ph.tls_ok = 1;
	x->ph.verified = 1;
	x->ph.n_chain_sha256 = 2;
	x->ph.chain_sha256 = x->chain;
	x->r.policy_host = &x->ph;

	x->mxh = h0;
	x->mxh.host = MX;
	x->mxh.n_addresses = 2;
	x->mxh.addresses = x->addrs;
	x->mxh.ip = "192.0.2.1";
	x->mxh.tls_ok = 1;
	x->mxh.verified = 1;
	x->mxh.n_chain_sha256 = 2;
	x->mxh.chain_sha256 = x->chain;
	x->mx = m0;
	x->mx.host = &x->mxh;
	x->mx.preference = 10;
	x->mx.starttls = 1;
	x->mx.policy_match = 1;
	x->mxp[0] = &x->mx;
	x->r.mx = x->mxp;
	x->r.n_mx = 1;
}

/* The policy host keeps LEAF1 when a test changes the MX's chain. */
static void
pr_policy_host_own_chain(struct pr *x, ProtobufCBinaryData *chain)
{
	chain[0].data = fx.c[LEAF1].sha;
	chain[0].len = 32;
	chain[1].data = fx.c[ROOT_A].sha;
	chain[1].len = 32;
	x->ph.chain_sha256 = chain;
}

/* Adds LEAF1 (and ROOT_A when n is 2) to x's certificates. */
static void
pr_more_certs(struct pr *x, Mtastswatch__V1__Certificate *more,
    Mtastswatch__V1__Certificate **all, size_t n)
{
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;
	const int which[2] = {LEAF1, ROOT_A};

	all[0] = &x->c[0];
	all[1] = &x->c[1];
	for (size_t i = 0; i < n; i++) {
		more[i] = c0;
		more[i].der.data = fx.c[which[i]].der;
		more[i].der.len = (size_t)fx.c[which[i]].len;
		all[2 + i] = &more[i];
	}
	x->r.certificates = all;
	x->r.n_certificates = 2 + n;
}

/* The first 16 hex digits of a certificate's SPKI hash, as the matrix
 * shows them; good until the next call. */
static const char *
spki16(int which)
{
	static char buf[17];

	snprintf(buf, sizeof(buf), "%.16s", fx.c[which].spki_hex);
	return buf;
}

/* Stores x as agent a's next result. */
static void
put(struct t *t, int a, struct pr *x)
{
	Mtastswatch__V1__ProbeResult *ptr = &x->r;
	struct timespec rt = {.tv_sec = fx.now, .tv_nsec = 0};
	uint64_t committed = 0;

	x->r.seq = ++t->seq[a];
	x->r.vantage = "test";
	if (store_write_batch(t->st, t->agent[a], &ptr, 1, &rt, &committed) !=
	    0) {
		print_error("store_write_batch: %s\n", store_error(t->st));
		fail();
	}
}

/* Every agent reports the default result for round. */
static void
put_all_same(struct t *t, int64_t round)
{
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, round);
		put(t, a, &x);
	}
}

static void
compare(struct t *t, int64_t round, struct compare_summary *sum)
{
	assert_int_equal(compare_round(t->cmp, DOMAIN, round, NULL, sum), 0);
}

static long
nfindings(struct t *t)
{
	return qn(t, "SELECT count(*) FROM vantage_findings");
}

/* ---- tests ---- */

static void
test_identical(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;

	put_all_same(t, t->round);
	compare(t, t->round, &sum);
	assert_int_equal(sum.vantages, 3);
	assert_int_equal(sum.completed, 3);
	assert_int_equal(sum.inconclusive, 0);
	assert_int_equal(sum.findings, 0);
	assert_int_equal(nfindings(t), 0);
	assert_string_equal(q(t,
				"SELECT state || '/' || vantages || '/' || "
				"completed FROM round_status WHERE domain = "
				"'%s' AND round = %lld",
				DOMAIN, (long long)t->round),
	    "compared/3/3");
}

static void
test_chain_mismatch(void **state)
{
	struct t *t = *state;
	Mtastswatch__V1__Certificate more[2], *all[4];
	ProtobufCBinaryData ph_chain[2];
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 2) {
			/* Same CA name, another CA key; verified there all
			 * the same (a trust store of its own, say).  The
			 * policy host keeps LEAF1, whose DER travels too. */
			pr_policy_host_own_chain(&x, ph_chain);
			pr_mx_leaf(&x, LEAF2, ROOT_B);
			pr_more_certs(&x, more, all, 2);
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_int_equal(sum.errors, 1);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_CHAIN_MISMATCH error " MX " {agent-3}");
	/* The matrix names every vantage and what it saw. */
	assert_string_equal(q(t, "SELECT string_agg(k, ',' ORDER BY k) FROM "
				 "vantage_findings, jsonb_object_keys(matrix) "
				 "k"),
	    "agent-1,agent-2,agent-3");
	assert_non_null(strstr(q(t, "SELECT matrix->>'agent-3' FROM "
				    "vantage_findings"),
	    spki16(LEAF2)));
	assert_non_null(strstr(q(t, "SELECT matrix->>'agent-1' FROM "
				    "vantage_findings"),
	    spki16(LEAF1)));
	assert_null(strstr(q(t, "SELECT matrix->>'agent-1' FROM "
				"vantage_findings"),
	    spki16(LEAF2)));
	/* The detail says who dissents and what the majority saw. */
	assert_non_null(
	    strstr(q(t, "SELECT detail FROM vantage_findings"), "agent-3 saw"));
	assert_non_null(strstr(q(t, "SELECT detail FROM vantage_findings"),
	    "majority (2 of 3: agent-1, agent-2)"));
}

/*
 * Another leaf behind a load balancer: not benign the first time it is
 * seen, benign once an earlier round saw it verify for the host.
 */
static void
test_chain_benign_known_key(void **state)
{
	struct t *t = *state;
	ProtobufCBinaryData ph_chain[2];
	struct compare_summary sum;
	struct pr x;
	Mtastswatch__V1__Certificate more[2], *all[4];

	/* Round - 2: nobody has seen LEAF3 yet, so it is not benign. */
	for (int pass = 0; pass < 2; pass++) {
		int64_t round = t->round - 2 + pass;

		for (int a = 0; a < NAGENTS; a++) {
			pr_init(&x, round);
			if (a == 2) {
				pr_policy_host_own_chain(&x, ph_chain);
				pr_mx_leaf(&x, LEAF3, ROOT_A);
				pr_more_certs(&x, more, all, 1);
			}
			put(t, a, &x);
		}
		compare(t, round, &sum);
		assert_int_equal(sum.findings, 1);
		assert_string_equal(
		    q(t,
			"SELECT code || ' ' || severity || ' ' || "
			"dissenters::text FROM vantage_findings WHERE round = "
			"%lld",
			(long long)round),
		    pass == 0 ? "VANTAGE_CHAIN_MISMATCH error {agent-3}"
			      : "VANTAGE_CHAIN_BENIGN info {agent-3}");
	}
}

static void
test_dns_mismatch(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 1)
			x.sts.id = "20240202";
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_DNS_MISMATCH error _mta-sts." DOMAIN " {agent-2}");
	assert_string_equal(q(t, "SELECT matrix::text FROM vantage_findings"),
	    "{\"agent-1\": \"id=20240101\", \"agent-2\": \"id=20240202\", "
	    "\"agent-3\": \"id=20240101\"}");
}

/* Names compare lower-cased without the trailing dot, TTLs never count. */
static void
test_dns_normalised(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 0)
			x.mxh.host = "MX1.Example.COM.";
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 0);
	assert_int_equal(nfindings(t), 0);
}

static void
test_policy_mismatch(void **state)
{
	struct t *t = *state;
	char want[80];
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 0)
			x.body_sha[0] = 0x01;
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_POLICY_MISMATCH error mta-sts." DOMAIN " {agent-1}");
	/* The body hash as hex: 01 then 31 times ab. */
	memcpy(want, "sha256=01", 9);
	for (int i = 0; i < 31; i++)
		memcpy(want + 9 + 2 * i, "ab", 2);
	want[9 + 62] = '\0';
	assert_string_equal(
	    q(t, "SELECT matrix->>'agent-1' FROM vantage_findings"), want);
}

static void
test_verdict_mismatch(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 0) {
			x.mxh.verified = 0;
			x.mxh.error = "unable to get local issuer certificate";
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_VERDICT_MISMATCH error " MX " {agent-1}");
	assert_string_equal(
	    q(t, "SELECT matrix->>'agent-1' FROM vantage_findings"),
	    "failed: unable to get local issuer certificate");
	assert_string_equal(
	    q(t, "SELECT matrix->>'agent-2' FROM vantage_findings"),
	    "verified");
}

static void
test_starttls_mismatch(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 1) {
			x.mx.starttls = 0;
			x.mxh.tls_ok = 0;
			x.mxh.verified = 0;
			x.mxh.n_chain_sha256 = 0;
			x.mxh.error = "EHLO reply does not offer STARTTLS";
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_STARTTLS_MISMATCH error " MX " {agent-2}");
	assert_string_equal(
	    q(t, "SELECT matrix->>'agent-2' FROM vantage_findings"),
	    "not offered");
}

static void
test_address_differs(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 2) {
			x.addrs[0] = "198.51.100.7";
			x.mxh.ip = "198.51.100.7";
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_int_equal(sum.infos, 1);
	assert_int_equal(sum.errors + sum.warnings, 0);
	assert_string_equal(q(t, "SELECT code || ' ' || severity || ' ' || "
				 "subject || ' ' || dissenters::text FROM "
				 "vantage_findings"),
	    "VANTAGE_ADDRESS_DIFFERS info " MX " {agent-3}");
	assert_string_equal(
	    q(t, "SELECT count(*) FROM vantage_findings WHERE severity <> "
		 "'info'"),
	    "0");
}

/* A probe cut short (timeout) at one vantage is not dissent. */
static void
test_incomplete_not_dissent(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 1) {
			x.r.completed = 0;
			x.sts.id = "";
			x.r.policy = NULL;
			x.mx.starttls = 0;
			x.mxh.verified = 0;
			x.mxh.error = "timeout";
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.vantages, 3);
	assert_int_equal(sum.completed, 2);
	assert_int_equal(sum.inconclusive, 0);
	assert_int_equal(sum.findings, 0);
	assert_int_equal(nfindings(t), 0);
	assert_string_equal(q(t, "SELECT state || '/' || vantages || '/' || "
				 "completed FROM round_status"),
	    "compared/3/2");
}

static void
test_inconclusive(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		x.r.completed = a == 0;
		if (a == 0)
			x.sts.id = "different";
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.inconclusive, 1);
	assert_int_equal(sum.completed, 1);
	assert_int_equal(nfindings(t), 0);
	assert_string_equal(q(t, "SELECT state || '/' || vantages || '/' || "
				 "completed FROM round_status"),
	    "inconclusive/3/1");
}

static void
test_compare_twice(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		if (a == 0) {
			x.sts.id = "other";
			x.body_sha[0] = 0x02;
		}
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 2);
	assert_int_equal(sum.inserted, 2);
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 2);
	assert_int_equal(sum.inserted, 0);
	assert_int_equal(nfindings(t), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM round_status"), 1);
}

/* Severity: testing mode and one dissenter is a warning; two dissenters
 * (all three differ: no majority) is an error again. */
static void
test_severity_rule(void **state)
{
	struct t *t = *state;
	struct compare_summary sum;
	struct pr x;

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round);
		x.pol.mode = "testing";
		if (a == 0)
			x.sts.id = "one";
		put(t, a, &x);
	}
	compare(t, t->round, &sum);
	assert_int_equal(sum.findings, 1);
	assert_int_equal(sum.warnings, 1);
	assert_string_equal(
	    q(t, "SELECT severity FROM vantage_findings"), "warning");

	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round - 1);
		x.pol.mode = "testing";
		x.sts.id = a == 0 ? "one" : a == 1 ? "two" : "three";
		put(t, a, &x);
	}
	compare(t, t->round - 1, &sum);
	assert_int_equal(sum.findings, 1);
	assert_int_equal(sum.errors, 1);
	assert_string_equal(q(t,
				"SELECT severity || ' ' || "
				"cardinality(dissenters) FROM "
				"vantage_findings WHERE round = %lld",
				(long long)(t->round - 1)),
	    "error 2");
}

static void
test_pending(void **state)
{
	struct t *t = *state;
	size_t n = 99;
	struct pr x;

	/* Ended long ago: compared even though agent-3 never reported. */
	for (int a = 0; a < 2; a++) {
		pr_init(&x, t->round - 3);
		put(t, a, &x);
	}
	/* Current round, every active agent reported: compared early. */
	put_all_same(t, t->round);
	/* Current round of another domain, agent-3 missing: waits. */
	for (int a = 0; a < 2; a++) {
		pr_init(&x, t->round);
		x.r.domain = "b.example";
		put(t, a, &x);
	}
	/* Previous round, agent-3 missing, ended less than a grace ago. */
	for (int a = 0; a < 2; a++) {
		pr_init(&x, t->round - 1);
		x.r.domain = "c.example";
		put(t, a, &x);
	}

	assert_int_equal(
	    compare_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(
	    q(t,
		"SELECT string_agg(domain || ':' || (%lld - round), ',' "
		"ORDER BY round) FROM round_status",
		(long long)t->round),
	    DOMAIN ":3," DOMAIN ":0");
	/* Nothing new the second time. */
	assert_int_equal(
	    compare_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 0);
	/* Two intervals later c.example's round has ended long enough. */
	assert_int_equal(
	    compare_pending(t->cmp, fx.now + 2 * INTERVAL, INTERVAL, NULL, &n),
	    0);
	assert_true(n >= 1);
	assert_string_equal(
	    q(t, "SELECT count(*) FROM round_status WHERE domain = "
		 "'c.example'"),
	    "1");
}

/* ---- the propagation rule ---- */

/* With INTERVAL 300, a split is young for window + one interval = 900 s:
 * in its first three rounds. */
#define WINDOW	 600
#define OLD_ID	 "20240101"
#define NEW_ID	 "20240202"
#define STS_SUBJ "_mta-sts." DOMAIN
#define POL_SUBJ "mta-sts." DOMAIN

/* What one vantage sees: the STS id (NULL: no TXT record), the first
 * byte of the policy body's hash, the policy mode; skip: no result. */
struct view {
	const char *id;
	unsigned char body;
	const char *mode;
	int skip;
};

#define V_OLD                                                                  \
	{                                                                      \
		OLD_ID, 0xab, "enforce", 0                                     \
	}
#define V_NEW_ID                                                               \
	{                                                                      \
		NEW_ID, 0xab, "enforce", 0                                     \
	}
#define V_NEW                                                                  \
	{                                                                      \
		NEW_ID, 0xcd, "enforce", 0                                     \
	}
#define V_TESTING                                                              \
	{                                                                      \
		NEW_ID, 0xcd, "testing", 0                                     \
	}
#define V_NOTXT                                                                \
	{                                                                      \
		NULL, 0xab, "enforce", 0                                       \
	}
#define V_NONE                                                                 \
	{                                                                      \
		NULL, 0, NULL, 1                                               \
	}

/*
 * One round as the collector's analysis pass does it: every agent
 * reports what v says, the round is compared with the propagation window
 * and then folded (incident_pending), which moves domain_state forward
 * for the next round.
 */
static void
step(struct t *t, int64_t round, struct view v0, struct view v1, struct view v2)
{
	const struct view v[NAGENTS] = {v0, v1, v2};
	struct compare_opts o = {.window_s = WINDOW, .interval_s = INTERVAL};
	struct pr x;
	size_t n;

	for (int a = 0; a < NAGENTS; a++) {
		if (v[a].skip)
			continue;
		pr_init(&x, round);
		if (v[a].id == NULL)
			x.r.sts_txt = NULL;
		else
			x.sts.id = (char *)v[a].id;
		x.body_sha[0] = v[a].body;
		x.pol.mode = (char *)v[a].mode;
		put(t, a, &x);
	}
	assert_int_equal(compare_round(t->cmp, DOMAIN, round, &o, NULL), 0);
	assert_int_equal(
	    incident_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
}

/* The round's findings about the STS id and the policy body, each as
 * "CODE severity subject {dissenters}", ';' between them. */
static const char *
changes(struct t *t, int64_t round)
{
	return q(t,
	    "SELECT coalesce(string_agg(code || ' ' || severity || ' ' || "
	    "subject || ' ' || dissenters::text, ';' ORDER BY subject, code), "
	    "'') FROM vantage_findings WHERE round = %lld AND code IN "
	    "('VANTAGE_DNS_MISMATCH', 'VANTAGE_POLICY_MISMATCH', "
	    "'VANTAGE_CHANGE_PROPAGATING')",
	    (long long)round);
}

static const char *
detail(struct t *t, int64_t round, const char *subject)
{
	return q(t,
	    "SELECT detail FROM vantage_findings WHERE round = %lld AND "
	    "subject = '%s' AND code = 'VANTAGE_CHANGE_PROPAGATING'",
	    (long long)round, subject);
}

/* The id bump reaches one vantage, then two, then all: info all along,
 * and no incident above info. */
static void
test_change_propagating(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID;
	int64_t r = t->round - 10;
	char since[64];

	step(t, r, o, o, o);
	assert_string_equal(changes(t, r), "");
	step(t, r + 1, o, n, o);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-2}");
	/* Same matrix as the mismatch would have. */
	assert_string_equal(
	    q(t,
		"SELECT matrix::text FROM vantage_findings WHERE round = "
		"%lld",
		(long long)(r + 1)),
	    "{\"agent-1\": \"id=" OLD_ID "\", \"agent-2\": \"id=" NEW_ID
	    "\", \"agent-3\": \"id=" OLD_ID "\"}");
	assert_non_null(strstr(detail(t, r + 1, STS_SUBJ),
	    "from \"id=" OLD_ID "\" to \"id=" NEW_ID "\""));
	snprintf(since, sizeof(since), "since round %lld (0 s ago",
	    (long long)(r + 1));
	assert_non_null(strstr(detail(t, r + 1, STS_SUBJ), since));

	/* The majority moves; agent-3's resolver still has the old record.
	 * After this round's fold domain_state holds the new id. */
	step(t, r + 2, n, n, o);
	assert_string_equal(changes(t, r + 2),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-3}");
	assert_string_equal(q(t, "SELECT value FROM domain_state WHERE kind "
				 "= 'sts_id'"),
	    NEW_ID);
	/* Still the same change, told the same way round. */
	step(t, r + 3, n, n, o);
	assert_string_equal(changes(t, r + 3),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-3}");
	assert_non_null(strstr(detail(t, r + 3, STS_SUBJ),
	    "from \"id=" OLD_ID "\" to \"id=" NEW_ID "\""));
	snprintf(since, sizeof(since), "since round %lld (600 s ago",
	    (long long)(r + 1));
	assert_non_null(strstr(detail(t, r + 3, STS_SUBJ), since));

	step(t, r + 4, n, n, n);
	assert_string_equal(changes(t, r + 4), "");
	assert_int_equal(qn(t, "SELECT count(*) FROM incidents WHERE code "
			       "LIKE 'VANTAGE%%' AND severity <> 'info'"),
	    0);
	assert_string_equal(q(t, "SELECT state FROM incidents WHERE code = "
				 "'VANTAGE_CHANGE_PROPAGATING'"),
	    "resolved");
}

/* A split that outlasts the window is the mismatch, and stays one; an
 * inconclusive round does not restart the window. */
static void
test_change_beyond_window(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID, none = V_NONE;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	for (int k = 1; k <= 5; k++) {
		step(t, r + k, o, n, o);
		assert_string_equal(changes(t, r + k),
		    k <= 3 ? "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ
			     " {agent-2}"
			   : "VANTAGE_DNS_MISMATCH error " STS_SUBJ
			     " {agent-2}");
	}
	step(t, r + 6, o, none, none);
	assert_string_equal(q(t,
				"SELECT state FROM round_status WHERE round "
				"= %lld",
				(long long)(r + 6)),
	    "inconclusive");
	step(t, r + 7, o, n, o);
	assert_string_equal(changes(t, r + 7),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");
	assert_string_equal(q(t, "SELECT severity || ' ' || state FROM "
				 "incidents WHERE code = "
				 "'VANTAGE_DNS_MISMATCH'"),
	    "error open");
}

/* A new policy body with a new id, converging: info for both. */
static void
test_change_policy_with_id(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, n, o, o);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-1};"
	    "VANTAGE_CHANGE_PROPAGATING info " POL_SUBJ " {agent-1}");
	assert_non_null(strstr(detail(t, r + 1, POL_SUBJ),
	    "the policy body is changing from \"sha256=abab"));
	assert_non_null(strstr(detail(t, r + 1, POL_SUBJ), "to \"sha256=cdab"));
	step(t, r + 2, n, n, o);
	assert_string_equal(changes(t, r + 2),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-3};"
	    "VANTAGE_CHANGE_PROPAGATING info " POL_SUBJ " {agent-3}");
	step(t, r + 3, n, n, n);
	assert_string_equal(changes(t, r + 3), "");
}

/* A minority that fetches a weaker mode under a new id and body is what
 * an attacker looks like: both mismatches at once. */
static void
test_change_downgrade_minority(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, d = V_TESTING;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, o, o, d);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-3};"
	    "VANTAGE_POLICY_MISMATCH error " POL_SUBJ " {agent-3}");
}

/* The same downgrade reaching the majority first is the operator's
 * change on its way. */
static void
test_change_downgrade_majority(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, d = V_TESTING;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, d, o, d);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-2};"
	    "VANTAGE_CHANGE_PROPAGATING info " POL_SUBJ " {agent-2}");
}

/* The TXT record gone at one vantage: the mismatch at once. */
static void
test_change_txt_vanished(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, gone = V_NOTXT;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, o, gone, o);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");
	assert_string_equal(
	    q(t,
		"SELECT matrix->>'agent-2' FROM vantage_findings WHERE "
		"round = %lld",
		(long long)(r + 1)),
	    "absent");
}

/* No previous agreement (the first round ever): the mismatch, as
 * without the rule. */
static void
test_change_no_previous(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID;
	int64_t r = t->round - 10;

	step(t, r, o, n, o);
	assert_string_equal(
	    changes(t, r), "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");
}

/* Two new values: the mismatch. */
static void
test_change_two_new(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID,
		    m = {"20240303", 0xab, "enforce", 0};
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, o, n, m);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2,agent-3}");
}

/*
 * Not a change at the vantage: agent-2 joins late and has seen its own
 * id from the start (the split DNS view of tests/integration/vantage.py),
 * or has seen it all along next to the others.  Both stay mismatches
 * although the others agreed on the old id before.
 */
static void
test_change_not_at_vantage(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID, none = V_NONE;
	int64_t r = t->round - 10;

	step(t, r, o, none, o);
	step(t, r + 1, o, n, o);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");

	r += 5;
	step(t, r, o, n, o);
	step(t, r + 1, o, n, o);
	assert_string_equal(changes(t, r + 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");
}

/* A vantage going back to the id everyone had before is a rollback, not
 * a change on its way. */
static void
test_change_rollback(void **state)
{
	struct t *t = *state;
	struct view o = V_OLD, n = V_NEW_ID;
	int64_t r = t->round - 10;

	step(t, r, o, o, o);
	step(t, r + 1, n, n, n);
	step(t, r + 2, n, o, n);
	assert_string_equal(changes(t, r + 2),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-2}");
}

/* compare_pending hands its interval to the rule; the window defaults to
 * an hour. */
static void
test_change_pending(void **state)
{
	struct t *t = *state;
	size_t n;
	struct pr x;

	put_all_same(t, t->round - 2);
	assert_int_equal(
	    compare_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
	    incident_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round - 1);
		if (a == 0)
			x.sts.id = NEW_ID;
		put(t, a, &x);
	}
	assert_int_equal(
	    compare_pending(t->cmp, fx.now, INTERVAL, NULL, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(changes(t, t->round - 1),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-1}");
	assert_non_null(strstr(detail(t, t->round - 1, STS_SUBJ),
	    "propagation window 3600 s plus one interval of 300 s"));
	/* Without an interval (compare_round, no options) the rule is off. */
	sql(t, "DELETE FROM vantage_findings");
	compare(t, t->round - 1, NULL);
	assert_string_equal(changes(t, t->round - 1),
	    "VANTAGE_DNS_MISMATCH error " STS_SUBJ " {agent-1}");
}

/* A query of the rule that fails fails the comparison: nothing of the
 * round is written, and compare_pending would try it again. */
static void
test_change_query_failure(void **state)
{
	struct t *t = *state;
	struct compare_opts o = {.window_s = WINDOW, .interval_s = INTERVAL};
	struct view v = V_OLD, n = V_NEW_ID;
	struct pr x;

	step(t, t->round - 10, v, v, v);
	sql(t, "ALTER TABLE domain_state RENAME TO domain_state_away");
	for (int a = 0; a < NAGENTS; a++) {
		pr_init(&x, t->round - 9);
		if (a == 1)
			x.sts.id = (char *)n.id;
		put(t, a, &x);
	}
	assert_int_equal(
	    compare_round(t->cmp, DOMAIN, t->round - 9, &o, NULL), -1);
	assert_int_equal(qn(t, "SELECT count(*) FROM vantage_findings"), 0);
	assert_string_equal(q(t,
				"SELECT count(*) FROM round_status WHERE "
				"round = %lld",
				(long long)(t->round - 9)),
	    "0");
	/* Back: the same round compares. */
	sql(t, "ALTER TABLE domain_state_away RENAME TO domain_state");
	assert_int_equal(
	    compare_round(t->cmp, DOMAIN, t->round - 9, &o, NULL), 0);
	assert_string_equal(changes(t, t->round - 9),
	    "VANTAGE_CHANGE_PROPAGATING info " STS_SUBJ " {agent-2}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identical, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_chain_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_chain_benign_known_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dns_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_dns_normalised, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_policy_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_verdict_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_starttls_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_address_differs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_incomplete_not_dissent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inconclusive, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_compare_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_severity_rule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_propagating, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_beyond_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_policy_with_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_downgrade_minority, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_downgrade_majority, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_txt_vanished, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_no_previous, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_two_new, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_not_at_vantage, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_change_query_failure, setup, teardown),
	};

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_compare: MTASTS_TEST_PG is not set; start "
		    "a cluster first:\n  eval \"$(sh "
		    "tests/lib/pg_start.sh /tmp/pgm)\"\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
