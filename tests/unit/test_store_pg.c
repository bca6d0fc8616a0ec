/* test_store_pg.c -- store_pg against a real PostgreSQL server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "../lib/testcert.h"
#include "store_pg.h"
#include "pgschema.h"

/* The admin-side helpers of pgschema.h, on a test's own schema. */
#define sql(t, ...)  pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->db, (query))

/*
 * Environment: MTASTS_TEST_PG, the conninfo pg_start.sh prints (required);
 * MTASTS_TEST_PGDIR, its DIR, for the restart test (skipped without it);
 * MTASTS_TEST_SQLDIR, the migrations (default deploy/sql).
 *
 * Each test runs in a schema of its own, made in setup and dropped in
 * teardown: the store reaches it through search_path in its conninfo, the
 * checks through the same search_path on an admin connection.  Tests
 * therefore neither see nor depend on each other.
 */

#define DAY 86400L

static struct {
	const char *conninfo;
	const char *pgdir;
	const char *sqldir;
	time_t now;
	EVP_PKEY *k_root, *k_leaf;
	X509 *root, *leaf;
	unsigned char *root_der, *leaf_der;
	int root_len, leaf_len;
	unsigned char root_sha[32], leaf_sha[32], leaf_spki[32];
	char root_hex[65], leaf_hex[65], leaf_spki_hex[65];
} fx;

struct t {
	struct pgschema db; /* admin connection and private schema */
	struct store *st;
};

static void
hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static int
group_setup(void **state)
{
	struct tc_opts o = {0};
	unsigned char *p;

	(void)state;
	fx.now = time(NULL);
	if ((fx.k_root = tc_key_ec("P-256")) == NULL ||
	    (fx.k_leaf = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = "Store Test Root";
	o.key = fx.k_root;
	o.ca = 1;
	o.not_before = fx.now - 10 * DAY;
	o.not_after = fx.now + 3650 * DAY;
	if ((fx.root = tc_cert(&o)) == NULL)
		return -1;
	/* Key identifiers, which tc_cert does not add; then sign again. */
	if (!tc_add_ext(fx.root, fx.root, NID_subject_key_identifier, "hash") ||
	    X509_sign(fx.root, fx.k_root, EVP_sha256()) <= 0)
		return -1;
	o.cn = "mx1.example.com";
	o.san = "DNS:mx1.example.com,DNS:mx2.example.com";
	o.key = fx.k_leaf;
	o.issuer = fx.root;
	o.issuer_key = fx.k_root;
	o.ca = 0;
	o.serial = 0x4242;
	o.not_after = 1900000000;
	if ((fx.leaf = tc_cert(&o)) == NULL)
		return -1;
	if (!tc_add_ext(fx.leaf, fx.leaf, NID_subject_key_identifier, "hash") ||
	    !tc_add_ext(fx.leaf, fx.root, NID_authority_key_identifier,
		"keyid:always") ||
	    X509_sign(fx.leaf, fx.k_root, EVP_sha256()) <= 0)
		return -1;
	fx.root_der = fx.leaf_der = NULL;
	if ((fx.root_len = i2d_X509(fx.root, &fx.root_der)) <= 0 ||
	    (fx.leaf_len = i2d_X509(fx.leaf, &fx.leaf_der)) <= 0)
		return -1;
	p = fx.root_der;
	EVP_Digest(
	    p, (size_t)fx.root_len, fx.root_sha, NULL, EVP_sha256(), NULL);
	EVP_Digest(fx.leaf_der, (size_t)fx.leaf_len, fx.leaf_sha, NULL,
	    EVP_sha256(), NULL);
	{
		unsigned int n;

		X509_pubkey_digest(fx.leaf, EVP_sha256(), fx.leaf_spki, &n);
	}
	hex(fx.root_sha, 32, fx.root_hex);
	hex(fx.leaf_sha, 32, fx.leaf_hex);
	hex(fx.leaf_spki, 32, fx.leaf_spki_hex);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	OPENSSL_free(fx.root_der);
	OPENSSL_free(fx.leaf_der);
	X509_free(fx.root);
	X509_free(fx.leaf);
	EVP_PKEY_free(fx.k_root);
	EVP_PKEY_free(fx.k_leaf);
	return 0;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char err[512];

	if (t == NULL)
		return -1;
	*state = t;
	if (pgschema_open(&t->db, fx.conninfo, "store_test") == -1)
		return -1;
	t->st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
	if (t->st == NULL) {
		print_error("store_open: %s\n", err);
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
	store_close(&t->st);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/*
 * One hand-built ProbeResult with everything in it: STS and TLSRPT TXT, a
 * policy, the policy host and two MX hosts with chains, two findings and
 * both certificates.  Every pointer points into the struct itself.
 */
struct fr {
	Mtastswatch__V1__ProbeResult r;
	Mtastswatch__V1__StsTxt sts;
	ProtobufCBinaryData sts_rec[1];
	Mtastswatch__V1__TlsRpt rpt;
	ProtobufCBinaryData rpt_rec[1];
	char *rua[2];
	Mtastswatch__V1__Policy pol;
	char *pol_mx[2];
	Mtastswatch__V1__HostObservation ph, mxh[2];
	Mtastswatch__V1__MxObservation mx[2], *mxp[2];
	ProtobufCBinaryData chain[2];
	char *addrs[2];
	Mtastswatch__V1__Finding f[2], *fp[2];
	Mtastswatch__V1__Certificate c[2], *cp[2];
};

static void
fr_init(struct fr *x, uint64_t seq, const char *domain)
{
	static const char sts_txt[] = "v=STSv1; id=20240101";
	static const char rpt_txt[] = "v=TLSRPTv1; rua=mailto:tls@example.com";
	static const char raw[] = "version: STSv1\nmode: enforce\n"
				  "mx: mx1.example.com\nmax_age: 86400\n";
	static unsigned char body_sha[32] = {0xab, 0xcd};
	const Mtastswatch__V1__ProbeResult r0 =
	    MTASTSWATCH__V1__PROBE_RESULT__INIT;
	const Mtastswatch__V1__StsTxt s0 = MTASTSWATCH__V1__STS_TXT__INIT;
	const Mtastswatch__V1__TlsRpt t0 = MTASTSWATCH__V1__TLS_RPT__INIT;
	const Mtastswatch__V1__Policy p0 = MTASTSWATCH__V1__POLICY__INIT;
	const Mtastswatch__V1__HostObservation h0 =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	const Mtastswatch__V1__MxObservation m0 =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
	const Mtastswatch__V1__Finding f0 = MTASTSWATCH__V1__FINDING__INIT;
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;

	memset(x, 0, sizeof(*x));
	x->r = r0;
	x->r.seq = seq;
	x->r.domain = (char *)domain;
	x->r.started_at_ms = 1700000000123;
	x->r.duration_ms = 1234;
	x->r.completed = 1;
	x->r.resolver = "127.0.0.1";
	x->r.round = 77;
	x->r.vantage = "eu-test";

	x->sts = s0;
	x->sts_rec[0].data = (uint8_t *)sts_txt;
	x->sts_rec[0].len = strlen(sts_txt);
	x->sts.n_records = 1;
	x->sts.records = x->sts_rec;
	x->sts.id = "20240101";
	x->sts.valid = 1;
	x->r.sts_txt = &x->sts;

	x->rpt = t0;
	x->rpt_rec[0].data = (uint8_t *)rpt_txt;
	x->rpt_rec[0].len = strlen(rpt_txt);
	x->rpt.n_records = 1;
	x->rpt.records = x->rpt_rec;
	x->rua[0] = "mailto:tls@example.com";
	x->rua[1] = "https://r.example/\"q\"\\x";
	x->rpt.n_rua = 2;
	x->rpt.rua = x->rua;
	x->rpt.valid = 1;
	x->r.tlsrpt = &x->rpt;

	x->pol = p0;
	x->pol.url = "https://mta-sts.example.com/.well-known/mta-sts.txt";
	x->pol.http_status = 200;
	x->pol.content_type = "text/plain";
	x->pol.sha256.data = body_sha;
	x->pol.sha256.len = sizeof(body_sha);
	x->pol.mode = "enforce";
	x->pol_mx[0] = "mx1.example.com";
	x->pol_mx[1] = "*.example.com";
	x->pol.n_mx = 2;
	x->pol.mx = x->pol_mx;
	x->pol.max_age = 86400;
	x->pol.valid = 1;
	x->pol.raw.data = (uint8_t *)raw;
	x->pol.raw.len = strlen(raw);
	x->r.policy = &x->pol;

	x->chain[0].data = fx.leaf_sha;
	x->chain[0].len = 32;
	x->chain[1].data = fx.root_sha;
	x->chain[1].len = 32;
	x->addrs[0] = "192.0.2.1";
	x->addrs[1] = "2001:db8::1";

	x->ph = h0;
	x->ph.host = "mta-sts.example.com";
	x->ph.ip = "192.0.2.9";
	x->ph.tls_ok = 1;
	x->ph.tls_version = "TLSv1.3";
	x->ph.verified = 1;
	x->ph.handshake_ms = 12;
	x->ph.n_chain_sha256 = 1;
	x->ph.chain_sha256 = x->chain;
	x->r.policy_host = &x->ph;

	for (int i = 0; i < 2; i++) {
		x->mxh[i] = h0;
		x->mxh[i].host = i == 0 ? "mx1.example.com" : "mx2.example.com";
		x->mxh[i].n_addresses = 2;
		x->mxh[i].addresses = x->addrs;
		x->mxh[i].ip = "192.0.2.1";
		x->mxh[i].tls_ok = i == 0;
		x->mxh[i].tls_version = i == 0 ? "TLSv1.3" : "";
		x->mxh[i].cipher = i == 0 ? "TLS_AES_256_GCM_SHA384" : "";
		x->mxh[i].verified = i == 0;
		x->mxh[i].handshake_ms = 30 + (uint32_t)i;
		x->mxh[i].ocsp = i == 0 ? "good" : "";
		x->mxh[i].n_chain_sha256 = i == 0 ? 2 : 0;
		x->mxh[i].chain_sha256 = x->chain;
		x->mxh[i].error = i == 0 ? "" : "connection refused";
		x->mx[i] = m0;
		x->mx[i].host = &x->mxh[i];
		x->mx[i].preference = 10 * (uint32_t)(i + 1);
		x->mx[i].starttls = i == 0;
		x->mx[i].policy_match = i == 0 ? 1 : -1;
		x->mxp[i] = &x->mx[i];
	}
	x->r.n_mx = 2;
	x->r.mx = x->mxp;

	for (int i = 0; i < 2; i++) {
		x->f[i] = f0;
		x->fp[i] = &x->f[i];
	}
	x->f[0].code = "MX_UNREACHABLE";
	x->f[0].severity = MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR;
	x->f[0].subject = "mx2.example.com";
	x->f[0].detail = "connection refused";
	x->f[0].rfc8460 = "starttls-not-supported";
	x->f[1].code = "POLICY_MAX_AGE_SHORT";
	x->f[1].severity = MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING;
	x->f[1].subject = "example.com";
	x->f[1].detail = "max_age 86400";
	x->r.n_findings = 2;
	x->r.findings = x->fp;

	x->c[0] = c0;
	x->c[0].der.data = fx.leaf_der;
	x->c[0].der.len = (size_t)fx.leaf_len;
	x->c[1] = c0;
	x->c[1].der.data = fx.root_der;
	x->c[1].der.len = (size_t)fx.root_len;
	x->cp[0] = &x->c[0];
	x->cp[1] = &x->c[1];
	x->r.n_certificates = 2;
	x->r.certificates = x->cp;
}

/* A batch of n results with seqs first, first+1, ...; free with free(). */
static struct fr *
batch_new(uint64_t first, size_t n, Mtastswatch__V1__ProbeResult **ptrs)
{
	struct fr *x = calloc(n, sizeof(*x));

	assert_non_null(x);
	for (size_t i = 0; i < n; i++) {
		fr_init(&x[i], first + i, i % 2 ? "b.example" : "example.com");
		ptrs[i] = &x[i].r;
	}
	return x;
}

static int64_t
agent(struct t *t, const char *key)
{
	int64_t id = 0;

	assert_int_equal(
	    store_agent_upsert(t->st, key, "agent-1", "eu", &id), 0);
	assert_true(id > 0);
	return id;
}

static struct timespec
ts(time_t sec)
{
	struct timespec tv = {.tv_sec = sec, .tv_nsec = 250000000};

	return tv;
}

/* Writes seqs first..first+n-1 for agent, expecting success. */
static uint64_t
write_seqs(struct t *t, int64_t id, uint64_t first, size_t n, time_t when)
{
	Mtastswatch__V1__ProbeResult *ptrs[16];
	struct timespec rt = ts(when);
	struct fr *x;
	uint64_t committed = 0;

	assert_true(n <= 16);
	x = batch_new(first, n, ptrs);
	if (store_write_batch(t->st, id, ptrs, n, &rt, &committed) != 0)
		print_error("store_write_batch: %s\n", store_error(t->st));
	free(x);
	return committed;
}

static void
test_migrations_idempotent(void **state)
{
	struct t *t = *state;
	struct store *again, *bad;
	char err[256];

	/* Every file of deploy/sql, once, in order. */
	assert_string_equal(
	    q(t, "SELECT split_part(string_agg(version || ':' || name, ',' "
		 "ORDER BY version), ',', 1) FROM schema_migrations"),
	    "1:001_init.sql");
	long applied = qn(t, "SELECT count(*) FROM schema_migrations");
	assert_true(applied >= 2);
	again = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
	assert_non_null(again);
	assert_int_equal(
	    qn(t, "SELECT count(*) FROM schema_migrations"), applied);
	assert_int_equal(store_ping(again), 0);
	store_close(&again);
	assert_null(again);
	store_close(&again);
	/* Today and the days ahead, for each of the six tables. */
	assert_int_equal(qn(t, "SELECT count(*) FROM pg_inherits "
			       "WHERE inhparent = 'results'::regclass"),
	    STORE_PARTITION_DAYS_AHEAD + 1);
	assert_int_equal(
	    qn(t, "SELECT count(*) FROM pg_inherits i JOIN pg_class c "
		  "ON c.oid = i.inhrelid WHERE c.relnamespace = "
		  "current_schema()::regnamespace AND c.relkind = 'r'"),
	    6 * (STORE_PARTITION_DAYS_AHEAD + 1));

	bad = store_open(t->db.conninfo, "/nonexistent/sql", err, sizeof(err));
	assert_null(bad);
	assert_non_null(strstr(err, "/nonexistent/sql"));
	bad = store_open("host=/nonexistent port=1 dbname=x connect_timeout=2",
	    fx.sqldir, err, sizeof(err));
	assert_null(bad);
	assert_non_null(strstr(err, "connect"));
}

/* Collectors starting together: each migration is applied exactly once. */
static void
test_migrations_concurrent(void **state)
{
	struct t *t = *state;
	char fresh[1024], err[256];
	pid_t pids[4];
	int status;

	sql(t, "DROP SCHEMA IF EXISTS %s_c CASCADE", t->db.schema);
	sql(t, "CREATE SCHEMA %s_c", t->db.schema);
	snprintf(fresh, sizeof(fresh), "%s options='-csearch_path=%s_c'",
	    fx.conninfo, t->db.schema);
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] != -1);
		if (pids[i] == 0) {
			struct store *s =
			    store_open(fresh, fx.sqldir, err, sizeof(err));

			if (s == NULL)
				fprintf(stderr, "child: %s\n", err);
			/* _exit: the inherited admin link is not ours. */
			_exit(s != NULL ? 0 : 1);
		}
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(
	    qn(t, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
		  "n.oid = c.relnamespace WHERE c.relname = 'results' AND "
		  "n.nspname LIKE '%_c'"),
	    1);
	sql(t, "DROP SCHEMA %s_c CASCADE", t->db.schema);
}

/*
 * Collectors racing on one agent's overlapping batches store each result
 * once.  A batch that commits before seq 1 is stored acknowledges less than
 * it wrote, which is why each child only checks it succeeded.
 */
static void
test_concurrent_writers(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYrace");
	pid_t pids[4];
	int status;
	uint64_t committed = 0;

	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] != -1);
		if (pids[i] == 0) {
			Mtastswatch__V1__ProbeResult *ptrs[6];
			struct timespec rt = ts(fx.now);
			char err[256];
			struct store *s;
			struct fr *x;
			uint64_t c = 0;
			int rc = 1;

			s = store_open(
			    t->db.conninfo, fx.sqldir, err, sizeof(err));
			x = batch_new(1 + (uint64_t)i, 6, ptrs);
			if (s != NULL &&
			    store_write_batch(s, id, ptrs, 6, &rt, &c) == 0 &&
			    c <= 9)
				rc = 0;
			else
				fprintf(stderr, "child %d: %s\n", i,
				    s != NULL ? store_error(s) : err);
			free(x);
			store_close(&s);
			/* _exit: the inherited admin link is not ours. */
			_exit(rc);
		}
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 9);
	assert_int_equal(qn(t, "SELECT count(DISTINCT seq) FROM results"), 9);
	assert_int_equal(store_agent_committed(t->st, id, &committed), 0);
	assert_int_equal(committed, 9);
}

static void
test_write_batch_rows(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYa1");
	char query[256];

	assert_int_equal(write_seqs(t, id, 1, 2, fx.now), 2);

	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 2);
	snprintf(query, sizeof(query),
	    "SELECT count(*) FROM results WHERE agent_id = %lld",
	    (long long)id);
	assert_int_equal(qn(t, query), 2);
	assert_string_equal(q(t, "SELECT domain || ' ' || round || ' ' || "
				 "duration_ms || ' ' || completed || ' ' || "
				 "resolver || ' ' || vantage || ' ' || "
				 "error_count || warning_count || info_count "
				 "FROM results WHERE seq = 1"),
	    "example.com 77 1234 true 127.0.0.1 eu-test 110");
	assert_string_equal(
	    q(t, "SELECT domain FROM results WHERE seq = 2"), "b.example");
	assert_string_equal(q(t, "SELECT extract(epoch FROM started_at) "
				 "FROM results WHERE seq = 1"),
	    "1700000000.123000");
	snprintf(query, sizeof(query),
	    "SELECT extract(epoch FROM received_at) = %lld.25 FROM results "
	    "WHERE seq = 1",
	    (long long)fx.now);
	assert_string_equal(q(t, "%s", query), "t");
	assert_int_equal(qn(t, "SELECT count(*) FROM result_seqs"), 2);
	assert_string_equal(q(t, "SELECT last_committed_seq FROM agents"), "2");

	/* Chains, leaf first, per host. */
	assert_string_equal(
	    q(t, "SELECT string_agg(encode(cert_sha256, 'hex'), ',' ORDER BY "
		 "position) FROM chain_certs c JOIN results r ON "
		 "r.id = c.result_id AND r.received_at = c.received_at "
		 "WHERE r.seq = 1 AND c.role = 'mx' AND c.host = "
		 "'mx1.example.com'"),
	    q(t, "SELECT '%s,%s'", fx.leaf_hex, fx.root_hex));
	assert_string_equal(
	    q(t, "SELECT host || ' ' || host_position || ' ' || "
		 "encode(cert_sha256, 'hex') FROM chain_certs c JOIN results r "
		 "ON r.id = c.result_id AND r.received_at = c.received_at "
		 "WHERE r.seq = 2 AND role = 'policy'"),
	    q(t, "SELECT 'mta-sts.example.com 0 %s'", fx.leaf_hex));
	assert_int_equal(qn(t, "SELECT count(*) FROM chain_certs"), 6);

	/* Certificates: once each, parsed from the DER. */
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	assert_string_equal(
	    q(t,
		"SELECT subject || '|' || issuer || '|' || serial || '|' || "
		"array_to_string(san, ',') || '|' || key_type || '|' || "
		"key_bits || '|' || sig_alg || '|' || "
		"extract(epoch FROM not_after)::bigint FROM certificates WHERE "
		"sha256 = '\\x%s'",
		fx.leaf_hex),
	    "CN=mx1.example.com|CN=Store Test Root|4242|mx1.example.com,"
	    "mx2.example.com|EC|256|ecdsa-with-SHA256|1900000000");
	assert_string_equal(
	    q(t,
		"SELECT encode(spki_sha256, 'hex') || ' ' || "
		"(length(ski) = 20)::text || ' ' || (length(aki) = 20)::text "
		"FROM certificates WHERE sha256 = '\\x%s'",
		fx.leaf_hex),
	    q(t, "SELECT '%s true true'", fx.leaf_spki_hex));
	assert_string_equal(
	    q(t,
		"SELECT encode(sha256, 'hex') FROM certificates WHERE "
		"spki_sha256 = '\\x%s'",
		fx.leaf_spki_hex),
	    fx.leaf_hex);
	assert_string_equal(q(t, "SELECT key_type || ' ' || (ski IS NULL) || "
				 "' ' || (aki IS NULL) FROM certificates "
				 "WHERE subject = issuer"),
	    "EC false true");
	assert_string_equal(
	    q(t, "SELECT encode(sha256(der), 'hex') FROM certificates WHERE "
		 "subject = 'CN=Store Test Root'"),
	    fx.root_hex);

	/* Findings, in order, empty rfc8460 as NULL. */
	assert_string_equal(
	    q(t, "SELECT string_agg(code || ':' || severity || ':' || "
		 "subject || ':' || coalesce(rfc8460, '-'), ',' ORDER BY "
		 "position) FROM findings f JOIN results r ON r.id = "
		 "f.result_id "
		 "AND r.received_at = f.received_at WHERE r.seq = 1"),
	    "MX_UNREACHABLE:error:mx2.example.com:starttls-not-supported,"
	    "POLICY_MAX_AGE_SHORT:warning:example.com:-");

	/* DNS observations. */
	assert_string_equal(
	    q(t, "SELECT convert_from(sts_records[1], 'UTF8') || '|' || sts_id "
		 "|| '|' || sts_valid || '|' || "
		 "convert_from(tlsrpt_records[1], 'UTF8') || '|' || "
		 "array_to_string(tlsrpt_rua, ' ') || '|' || tlsrpt_valid "
		 "FROM dns_observations d JOIN results r ON r.id = d.result_id "
		 "AND r.received_at = d.received_at WHERE r.seq = 1"),
	    "v=STSv1; id=20240101|20240101|true|v=TLSRPTv1; "
	    "rua=mailto:tls@example.com|mailto:tls@example.com "
	    "https://r.example/\"q\"\\x|true");

	/* Policy observations. */
	assert_string_equal(
	    q(t, "SELECT url || '|' || http_status || '|' || content_type || "
		 "'|' || mode || '|' || array_to_string(mx, ',') || '|' || "
		 "max_age || '|' || valid || '|' || "
		 "left(encode(sha256, 'hex'), 6) || '|' || "
		 "length(raw) FROM policy_observations LIMIT 1"),
	    "https://mta-sts.example.com/.well-known/mta-sts.txt|200|"
	    "text/plain|enforce|mx1.example.com,*.example.com|86400|true|"
	    "abcd00|64");
	assert_int_equal(qn(t, "SELECT count(*) FROM policy_observations"), 2);

	/* Host observations: MX set with preferences, empty strings NULL. */
	assert_string_equal(
	    q(t,
		"SELECT string_agg(host || ':' || preference || ':' || "
		"starttls || ':' || policy_match || ':' || "
		"array_to_string(addresses, ' ') || ':' || tls_ok || ':' || "
		"coalesce(tls_version, '-') || ':' || coalesce(cipher, '-') "
		"|| ':' || coalesce(ocsp, '-') || ':' || coalesce(error, '-') "
		"|| ':' || handshake_ms, ',' ORDER BY position) "
		"FROM host_observations h JOIN results r ON r.id = h.result_id "
		"AND r.received_at = h.received_at WHERE r.seq = 1 AND "
		"role = 'mx'"),
	    "mx1.example.com:10:true:1:192.0.2.1 2001:db8::1:true:TLSv1.3:"
	    "TLS_AES_256_GCM_SHA384:good:-:30,"
	    "mx2.example.com:20:false:-1:192.0.2.1 2001:db8::1:false:-:-:-:"
	    "connection refused:31");
	assert_string_equal(
	    q(t, "SELECT host || ' ' || ip || ' ' || (preference IS NULL) || "
		 "' ' || verified FROM host_observations WHERE role = 'policy' "
		 "LIMIT 1"),
	    "mta-sts.example.com 192.0.2.9 true true");
	assert_int_equal(qn(t, "SELECT count(*) FROM mx_sets"), 4);
}

/* The same batch twice stores nothing new and acknowledges the same. */
static void
test_write_batch_idempotent(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYi1");
	uint64_t committed = 0;

	assert_int_equal(write_seqs(t, id, 1, 3, fx.now), 3);
	assert_int_equal(write_seqs(t, id, 1, 3, fx.now + 1), 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 6);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	/* Overlapping: 2 and 3 are skipped, 4 is new. */
	assert_int_equal(write_seqs(t, id, 2, 3, fx.now + 2), 4);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 4);
	assert_int_equal(
	    qn(t, "SELECT count(*) FROM results WHERE seq = 4"), 1);
	assert_int_equal(store_agent_committed(t->st, id, &committed), 0);
	assert_int_equal(committed, 4);

	/* Retried after the watermark moved on, through result_seqs alone. */
	sql(t, "UPDATE agents SET last_committed_seq = 0");
	assert_int_equal(write_seqs(t, id, 1, 4, fx.now + 3), 4);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 4);

	/* An empty batch just reports the watermark. */
	{
		struct timespec rt = ts(fx.now);

		committed = 0;
		assert_int_equal(
		    store_write_batch(t->st, id, NULL, 0, &rt, &committed), 0);
		assert_int_equal(committed, 4);
	}
}

static void
test_two_agents(void **state)
{
	struct t *t = *state;
	int64_t a = agent(t, "AGENTKEYtwoA"), b = agent(t, "AGENTKEYtwoB");
	int64_t again = 0;
	uint64_t ca = 0, cb = 0;

	assert_true(a != b);
	assert_int_equal(write_seqs(t, a, 1, 2, fx.now), 2);
	assert_int_equal(write_seqs(t, b, 1, 1, fx.now), 1);
	assert_int_equal(store_agent_committed(t->st, a, &ca), 0);
	assert_int_equal(store_agent_committed(t->st, b, &cb), 0);
	assert_int_equal(ca, 2);
	assert_int_equal(cb, 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 3);
	assert_int_equal(
	    qn(t, "SELECT count(DISTINCT agent_id) FROM results WHERE seq = 1"),
	    2);
	/* The key is the identity: same id, name and region follow. */
	assert_int_equal(
	    store_agent_upsert(t->st, "AGENTKEYtwoA", "renamed", "us", &again),
	    0);
	assert_int_equal(again, a);
	assert_string_equal(q(t, "SELECT name || ' ' || region FROM agents "
				 "WHERE public_key = 'AGENTKEYtwoA'"),
	    "renamed us");
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 2);
	assert_int_equal(store_agent_upsert(t->st, "", "x", "y", &again), -1);
	/* Unknown agent: refused, not invented. */
	{
		Mtastswatch__V1__ProbeResult *ptrs[1];
		struct fr *x = batch_new(1, 1, ptrs);
		struct timespec rt = ts(fx.now);
		uint64_t c;

		assert_int_equal(
		    store_write_batch(t->st, 999999, ptrs, 1, &rt, &c), -1);
		free(x);
	}
}

static void
test_bad_item_rolls_back(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYbad");
	Mtastswatch__V1__ProbeResult *ptrs[3];
	struct timespec rt = ts(fx.now);
	unsigned char junk[40] = {0x30, 0x03, 0x02, 0x01};
	unsigned char stray[32] = {1, 2, 3};
	uint64_t committed = 99;
	struct fr *x = batch_new(1, 3, ptrs);

	/* Item 1: a certificate that is not DER. */
	x[1].c[1].der.data = junk;
	x[1].c[1].der.len = sizeof(junk);
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), -1);
	assert_int_equal(store_bad_index(t->st), 1);
	assert_non_null(strstr(store_error(t->st), "certificate"));
	assert_int_equal(committed, 99);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM result_seqs"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 0);
	assert_string_equal(q(t, "SELECT last_committed_seq FROM agents"), "0");

	/* Item 2: a chain naming a certificate that was not sent. */
	x[1].c[1].der.data = fx.root_der;
	x[1].c[1].der.len = (size_t)fx.root_len;
	x[2].chain[1].data = stray;
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), -1);
	assert_int_equal(store_bad_index(t->st), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);

	/* Item 0: text the database refuses (not UTF-8). */
	x[2].chain[1].data = fx.root_sha;
	x[0].r.domain = "bad\xff.example";
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), -1);
	assert_int_equal(store_bad_index(t->st), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);

	/* seq 0 */
	x[0].r.domain = "example.com";
	x[0].r.seq = 0;
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), -1);
	assert_int_equal(store_bad_index(t->st), 0);

	/* Fixed, the same batch goes through on the same connection. */
	x[0].r.seq = 1;
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), 0);
	assert_int_equal(committed, 3);
	assert_int_equal(store_bad_index(t->st), -1);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 3);
	free(x);
}

/*
 * A value the database refuses in a row the checks do not look at (a
 * host's error text that is not UTF-8) fails the batch's COPY; the batch
 * is written again row by row, which names the result, and the others go
 * through once it is taken out, as ingest does.
 */
static void
test_refused_inside_batch(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYrefused");
	Mtastswatch__V1__ProbeResult *ptrs[5];
	struct timespec rt = ts(fx.now);
	uint64_t committed = 99;
	struct fr *x = batch_new(1, 5, ptrs);

	x[2].mxh[1].error = "refused \xff";
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 5, &rt, &committed), -1);
	assert_int_equal(store_bad_index(t->st), 2);
	assert_non_null(strstr(store_error(t->st), "host_insert"));
	assert_int_equal(committed, 99);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM result_seqs"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM host_observations"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 0);
	assert_string_equal(q(t, "SELECT last_committed_seq FROM agents"), "0");

	/* The same store, the batch without seq 3. */
	ptrs[2] = ptrs[3];
	ptrs[3] = ptrs[4];
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 4, &rt, &committed), 0);
	assert_int_equal(store_bad_index(t->st), -1);
	assert_int_equal(committed, 2);
	assert_string_equal(
	    q(t, "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM results"),
	    "1,2,4,5");
	assert_int_equal(qn(t, "SELECT count(*) FROM host_observations"), 12);
	assert_int_equal(qn(t, "SELECT count(*) FROM chain_certs"), 12);
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 8);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	/* Every child row names a result of its own day. */
	assert_int_equal(qn(t, "SELECT count(*) FROM findings f WHERE NOT "
			       "EXISTS (SELECT 1 FROM results r WHERE r.id = "
			       "f.result_id AND r.received_at = "
			       "f.received_at)"),
	    0);
	/* Ids follow the batch order. */
	assert_string_equal(
	    q(t, "SELECT string_agg(seq::text, ',' ORDER BY id) FROM results"),
	    "1,2,4,5");
	free(x);
}

/*
 * The store remembers the certificates it wrote and does not write them
 * again; one deleted behind its back is written again all the same.
 */
static void
test_certificates_remembered(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYcerts");

	assert_int_equal(write_seqs(t, id, 1, 2, fx.now), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	/* Counts the inserts tried, those ON CONFLICT DO NOTHING drops too. */
	sql(t, "CREATE TABLE cert_tries (n integer); "
	       "INSERT INTO cert_tries VALUES (0); "
	       "CREATE FUNCTION cert_try() RETURNS trigger LANGUAGE plpgsql "
	       "AS $$BEGIN UPDATE cert_tries SET n = n + 1; RETURN NEW; "
	       "END$$; "
	       "CREATE TRIGGER cert_try BEFORE INSERT ON certificates "
	       "FOR EACH ROW EXECUTE FUNCTION cert_try()");
	assert_int_equal(write_seqs(t, id, 3, 2, fx.now), 4);
	assert_int_equal(qn(t, "SELECT n FROM cert_tries"), 0);
	/* Another store has no memory of them: it tries, once each. */
	{
		char err[512];
		struct store *other =
		    store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));

		assert_non_null(other);
		store_close(&t->st);
		t->st = other;
	}
	assert_int_equal(write_seqs(t, id, 5, 2, fx.now), 6);
	assert_int_equal(qn(t, "SELECT n FROM cert_tries"), 2);
	assert_int_equal(write_seqs(t, id, 7, 2, fx.now), 8);
	assert_int_equal(qn(t, "SELECT n FROM cert_tries"), 2);

	sql(t, "DELETE FROM chain_certs");
	sql(t, "DELETE FROM certificates");
	assert_int_equal(write_seqs(t, id, 9, 2, fx.now), 10);
	assert_int_equal(store_bad_index(t->st), -1);
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM chain_certs"), 6);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 10);
	assert_string_equal(q(t, "SELECT string_agg(DISTINCT subject, ',') "
				 "FROM certificates"),
	    "CN=Store Test Root,CN=mx1.example.com");
}

/*
 * At or below the watermark a result is skipped unchecked, as before;
 * a seq twice in a batch is stored once, from its first result.
 */
static void
test_skipped_and_repeated(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYrepeat");
	Mtastswatch__V1__ProbeResult *ptrs[3];
	struct timespec rt = ts(fx.now);
	unsigned char junk[40] = {0x30, 0x03, 0x02, 0x01};
	uint64_t committed = 0;
	struct fr *x;

	assert_int_equal(write_seqs(t, id, 1, 2, fx.now), 2);
	x = batch_new(1, 3, ptrs);
	x[0].c[1].der.data = junk; /* seq 1: stored already */
	x[0].c[1].der.len = sizeof(junk);
	x[1].r.seq = 3;
	x[1].r.domain = "first.example";
	x[2].r.seq = 3;
	x[2].r.domain = "second.example";
	assert_int_equal(
	    store_write_batch(t->st, id, ptrs, 3, &rt, &committed), 0);
	assert_int_equal(committed, 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 3);
	assert_string_equal(
	    q(t, "SELECT domain FROM results WHERE seq = 3"), "first.example");
	free(x);
}

static void
test_gaps_and_watermark(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYgap");
	struct timespec rt = ts(fx.now);
	uint64_t committed = 0;

	assert_int_equal(write_seqs(t, id, 1, 2, fx.now), 2);
	/* 3 is missing: 4 and 5 are stored but not yet committed. */
	assert_int_equal(write_seqs(t, id, 4, 2, fx.now), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 4);
	assert_int_equal(
	    store_gap(t->st, id, 3, 3, "spool full", &rt, &committed), 0);
	assert_int_equal(committed, 5);
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "1");
	/* The same gap again: recorded once. */
	assert_int_equal(
	    store_gap(t->st, id, 3, 3, "spool full", &rt, &committed), 0);
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "1");
	assert_int_equal(qn(t, "SELECT count(*) FROM gaps"), 1);
	/* A gap ahead jumps the watermark over it once 6 arrives. */
	assert_int_equal(
	    store_gap(t->st, id, 7, 9, "spool full", &rt, &committed), 0);
	assert_int_equal(committed, 5);
	assert_int_equal(write_seqs(t, id, 6, 1, fx.now), 9);
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "4");
	/* A late result under the watermark counts as committed. */
	assert_int_equal(write_seqs(t, id, 3, 1, fx.now), 9);
	assert_int_equal(
	    qn(t, "SELECT count(*) FROM results WHERE seq = 3"), 0);
	assert_int_equal(store_agent_committed(t->st, id, &committed), 0);
	assert_int_equal(committed, 9);
	assert_int_equal(
	    store_gap(t->st, id, 5, 4, "backwards", &rt, &committed), -1);
	assert_int_equal(
	    store_gap(t->st, id, 0, 4, "zero", &rt, &committed), -1);
}

/*
 * The watermark walks runs of stored seqs a chunk (4096) at a time and
 * jumps gaps whole (004_watermark.sql): runs longer than a chunk, a hole,
 * a gap that ends inside a run and one that overlaps another.
 */
static void
test_watermark_long_runs(void **state)
{
	struct t *t = *state;
	long long id = agent(t, "AGENTKEYlong");
	char wm[128];

	sql(t,
	    "INSERT INTO result_seqs (agent_id, seq, received_at) "
	    "SELECT %lld, g, now() FROM generate_series(1, 20000) g "
	    "WHERE g NOT IN (9000, 15000, 15001, 15002)",
	    id);
	snprintf(wm, sizeof(wm), "SELECT mtastswatch_watermark(%lld, 0)", id);
	assert_int_equal(qn(t, wm), 8999);
	/* 9000 lost: on to the next hole, then over two gaps that overlap. */
	sql(t,
	    "INSERT INTO gaps (agent_id, first_seq, last_seq, reason, "
	    "received_at) VALUES (%lld, 8990, 9000, 'x', now())",
	    id);
	assert_int_equal(qn(t, wm), 14999);
	sql(t,
	    "INSERT INTO gaps (agent_id, first_seq, last_seq, reason, "
	    "received_at) VALUES (%lld, 15000, 15001, 'x', now()), "
	    "(%lld, 15001, 15002, 'x', now())",
	    id, id);
	assert_int_equal(qn(t, wm), 20000);
	snprintf(
	    wm, sizeof(wm), "SELECT mtastswatch_watermark(%lld, 20000)", id);
	assert_int_equal(qn(t, wm), 20000);
	/* Another agent's seqs are not ours. */
	snprintf(
	    wm, sizeof(wm), "SELECT mtastswatch_watermark(%lld, 0)", id + 1000);
	assert_int_equal(qn(t, wm), 0);
}

static void
test_partitions(void **state)
{
	struct t *t = *state;
	int64_t id = agent(t, "AGENTKEYpart");
	time_t day0 = fx.now - fx.now % DAY;
	int days = -1;

	/* Idempotent, and further ahead on demand. */
	assert_int_equal(store_ensure_partitions(t->st, fx.now), 0);
	assert_int_equal(store_ensure_partitions(t->st, fx.now + 10 * DAY), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM pg_inherits "
			       "WHERE inhparent = 'findings'::regclass"),
	    STORE_PARTITION_DAYS_AHEAD + 1 + STORE_PARTITION_DAYS_AHEAD + 1);

	/* A batch received on a day without partitions makes them first. */
	assert_int_equal(write_seqs(t, id, 1, 1, day0 + 40 * DAY), 1);
	assert_int_equal(write_seqs(t, id, 2, 2, day0 + 100), 3);
	assert_int_equal(write_seqs(t, id, 4, 1, day0 + 2 * DAY + 5), 4);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 4);
	assert_string_equal(
	    q(t, "SELECT tableoid::regclass::text FROM results WHERE seq = 1"),
	    q(t,
		"SELECT 'results_p' || to_char(to_timestamp(%lld) AT TIME "
		"ZONE 'UTC', 'YYYYMMDD')",
		(long long)(day0 + 40 * DAY)));

	/* Drop day0: its results and everything hanging off them go. */
	assert_int_equal(
	    store_drop_partitions_before(t->st, day0 + DAY, &days), 0);
	assert_int_equal(days, 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 2);
	assert_string_equal(
	    q(t, "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM results"),
	    "1,4");
	assert_string_equal(
	    q(t, "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM "
		 "result_seqs"),
	    "1,4");
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 4);
	assert_int_equal(qn(t, "SELECT count(*) FROM chain_certs"), 6);
	assert_int_equal(qn(t, "SELECT count(*) FROM host_observations"), 6);
	assert_int_equal(qn(t, "SELECT count(*) FROM policy_observations"), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM dns_observations"), 2);
	{
		const char *tables[] = {"findings", "chain_certs",
		    "host_observations", "policy_observations",
		    "dns_observations"};

		for (size_t i = 0; i < 5; i++)
			assert_int_equal(
			    strtol(q(t,
				       "SELECT count(*) FROM %s c WHERE NOT "
				       "EXISTS (SELECT 1 FROM results r WHERE "
				       "r.id = c.result_id AND r.received_at "
				       "= c.received_at)",
				       tables[i]),
				NULL, 10),
			    0);
	}
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 2);
	assert_string_equal(
	    q(t,
		"SELECT count(*) FROM pg_class WHERE relname = "
		"'results_p' || to_char(to_timestamp(%lld) AT TIME ZONE "
		"'UTC', 'YYYYMMDD')",
		(long long)day0),
	    "0");
	/* Nothing more to drop; a cutoff inside a day keeps that day. */
	assert_int_equal(
	    store_drop_partitions_before(t->st, day0 + 2 * DAY + 100, &days),
	    0);
	assert_int_equal(days, 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 2);
	assert_int_equal(
	    store_drop_partitions_before(t->st, day0 + 2 * DAY + 100, &days),
	    0);
	assert_int_equal(days, 0);
}

static void
test_domains(void **state)
{
	struct t *t = *state;
	struct store_domain *list = NULL;
	size_t n = 0;
	int added = -1, removed = -1;

	assert_int_equal(store_domain_add(t->st, "Example.COM.", &added), 0);
	assert_int_equal(added, 1);
	assert_int_equal(store_domain_add(t->st, "example.com", &added), 0);
	assert_int_equal(added, 0);
	assert_int_equal(store_domain_add(t->st, "b.example", NULL), 0);
	assert_int_equal(store_domain_add(t->st, "", &added), -1);
	assert_int_equal(store_domain_list(t->st, 0, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "b.example");
	assert_string_equal(list[1].name, "example.com");
	assert_true(list[1].added_at > fx.now - 600);
	assert_int_equal(list[1].removed_at, 0);
	store_domain_list_free(list, n);

	assert_int_equal(
	    store_domain_remove(t->st, "EXAMPLE.com", &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(
	    store_domain_remove(t->st, "example.com", &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(
	    store_domain_remove(t->st, "nope.example", &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(store_domain_list(t->st, 0, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "b.example");
	store_domain_list_free(list, n);
	assert_int_equal(store_domain_list(t->st, 1, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[1].name, "example.com");
	assert_true(list[1].removed_at > 0);
	store_domain_list_free(list, n);

	/* Back again: active, same row. */
	assert_int_equal(store_domain_add(t->st, "example.com", &added), 0);
	assert_int_equal(added, 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM domains"), 2);
	assert_string_equal(q(t, "SELECT removed_at IS NULL FROM domains "
				 "WHERE name = 'example.com'"),
	    "t");

	/* An empty list is a valid list. */
	sql(t, "DELETE FROM domains");
	assert_int_equal(store_domain_list(t->st, 1, &list, &n), 0);
	assert_int_equal(n, 0);
	store_domain_list_free(list, n);
}

/* Runs DIR/restart.sh, which pg_start.sh wrote, and waits for it. */
static int
restart_server(void)
{
	char path[1024];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/restart.sh", fx.pgdir);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void
test_reconnect(void **state)
{
	struct t *t = *state;
	int64_t id;
	uint64_t committed = 0;
	int i;

	if (fx.pgdir == NULL || fx.pgdir[0] == '\0') {
		print_message("MTASTS_TEST_PGDIR unset: restart not tested\n");
		skip();
	}
	id = agent(t, "AGENTKEYre");
	assert_int_equal(store_ping(t->st), 0);
	assert_int_equal(restart_server(), 0);

	assert_int_equal(store_ping(t->st), -1);
	assert_int_equal(store_broken(t->st), 1);
	/* Everything fails, without touching the dead link, until reconnect. */
	assert_int_equal(store_agent_committed(t->st, id, &committed), -1);
	{
		Mtastswatch__V1__ProbeResult *ptrs[1];
		struct fr *x = batch_new(1, 1, ptrs);
		struct timespec rt = ts(fx.now);

		assert_int_equal(
		    store_write_batch(t->st, id, ptrs, 1, &rt, &committed), -1);
		assert_int_equal(store_bad_index(t->st), -1);
		free(x);
	}
	/* pg_ctl -w returned once the server accepts connections. */
	for (i = 0; i < 50 && store_reconnect(t->st) == -1; i++)
		usleep(100000);
	assert_true(i < 50);
	assert_int_equal(store_broken(t->st), 0);
	assert_int_equal(store_ping(t->st), 0);
	assert_int_equal(write_seqs(t, id, 1, 2, fx.now), 2);
	PQreset(t->db.admin);
	sql(t, "SET search_path = %s", t->db.schema);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_migrations_idempotent, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrations_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_write_batch_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_concurrent_writers, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_write_batch_idempotent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_agents, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bad_item_rolls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_gaps_and_watermark, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_inside_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_certificates_remembered, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_skipped_and_repeated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_watermark_long_runs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	};

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.pgdir = getenv("MTASTS_TEST_PGDIR");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_store_pg: MTASTS_TEST_PG is not set; start a "
		    "cluster first:\n  eval \"$(sh tests/lib/pg_start.sh "
		    "/tmp/pgt)\"\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
