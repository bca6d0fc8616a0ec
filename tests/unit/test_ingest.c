/* test_ingest.c -- the collector's protocol engine against real PostgreSQL. */
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

#include <czmq.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "../lib/testcert.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "store_pg.h"
#include "wire.h"
#include "pgschema.h"

/* The admin-side helpers of pgschema.h, on a test's own schema. */
#define sql(t, ...)  pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->db, (query))

/*
 * Environment: MTASTS_TEST_PG, the conninfo pg_start.sh prints (required);
 * MTASTS_TEST_PGDIR, its DIR, for the database-lost test (skipped
 * without it); MTASTS_TEST_SQLDIR, the migrations (default deploy/sql);
 * MTASTS_TEST_VERBOSE=1 keeps the engine's log lines.
 *
 * The engine is driven without sockets: frames go in through
 * ingest_receive with a clock the test sets, and what it answers is
 * caught by the send callback, decoded with wire_collector_decode (so
 * every answer is also checked to be what an agent would accept) and
 * queued for the test to take in order.  Each test gets a schema of its
 * own on the real server, as in test_store_pg.c.
 *
 * Every test runs twice: with the writes inline, and with them on the
 * writer thread (ingest_start_writer, as the daemon runs), where the
 * helpers below wait after each frame and tick until what they started
 * is acknowledged (ingest_settle), so that the same expectations hold.
 * The tests at the end drive the writer without waiting, and hold it up
 * with a row lock taken on the admin connection.
 */

#define INTERVAL   300
#define CREDIT	   50
#define T0	   1000000 /* the engine's monotonic clock at the start */
#define FRAMES_MAX 128

/* Routing ids and keys of the agents; keys are 40 characters like Z85. */
#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1"
#define KEY_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2"
_Static_assert(sizeof(KEY_A) == INGEST_KEY_LEN + 1, "key length");
_Static_assert(sizeof(KEY_B) == INGEST_KEY_LEN + 1, "key length");

static const struct ingest_peer PA = {.rid = "ridA",
    .rid_len = 4,
    .key = KEY_A,
    .name = "agent-a",
    .region = "eu"};
static const struct ingest_peer PA2 = {.rid = "ridA-again",
    .rid_len = 10,
    .key = KEY_A,
    .name = "agent-a",
    .region = "eu"};
static const struct ingest_peer PB = {.rid = "ridB",
    .rid_len = 4,
    .key = KEY_B,
    .name = "agent-b",
    .region = "us"};

static struct {
	const char *conninfo;
	const char *pgdir;
	const char *sqldir;
	int writer; /* this round runs with ingest_start_writer */
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *der;
	int der_len;
	unsigned char sha[32];
} fx;

/* One frame the engine sent. */
struct frame {
	char rid[64];
	size_t rid_len;
	Mtastswatch__V1__CollectorMessage *m; /* NULL: did not decode */
};

struct t {
	struct pgschema db; /* admin connection and private schema */
	struct store *st;
	struct store *w; /* the writer's, when fx.writer */
	struct ingest *ing;
	struct ingest_config cfg;
	int64_t now;
	int manual;	/* the helpers do not wait for the writer */
	int fail_sends; /* the send callback answers -1 */
	/* test_allowlist's, here so that teardown cleans up after a failure */
	char allow_dir[64];
	struct keys_allow *allow[2];
	zcert_t *cert[2];
	/* test_two_collectors_share_database's second collector */
	struct store *st2, *w2;
	struct ingest *ing2;
	struct frame frames[FRAMES_MAX];
	size_t rd, wr, lost;
};

/* --- the database side ---------------------------------------------- */

/* "1,2,4": the seqs stored for key, in order ("<null>" when none). */
static const char *
stored_seqs(struct t *t, const char *key)
{
	return q(t,
	    "SELECT string_agg(r.seq::text, ',' ORDER BY r.seq) FROM results "
	    "r JOIN agents a ON a.id = r.agent_id WHERE a.public_key = '%s'",
	    key);
}

static long
watermark(struct t *t, const char *key)
{
	return strtol(q(t,
			  "SELECT last_committed_seq FROM agents WHERE "
			  "public_key = '%s'",
			  key),
	    NULL, 10);
}

/* --- the send callback and what it caught --------------------------- */

static int
capture(const void *rid, size_t rid_len, const unsigned char *buf, size_t len,
    void *arg)
{
	struct t *t = arg;
	struct frame *f;
	char err[256];

	if (t->fail_sends)
		return -1;
	if (t->wr == FRAMES_MAX) {
		t->lost++;
		return 0;
	}
	f = &t->frames[t->wr++];
	f->rid_len = rid_len < sizeof(f->rid) ? rid_len : sizeof(f->rid);
	memcpy(f->rid, rid, f->rid_len);
	f->m = wire_collector_decode(buf, len, err, sizeof(err));
	if (f->m == NULL)
		print_error("the engine sent what no agent accepts: %s\n", err);
	return 0;
}

/* The next frame sent, which must be for peer; owned by t. */
static Mtastswatch__V1__CollectorMessage *
next_frame(struct t *t, const struct ingest_peer *to)
{
	struct frame *f;

	assert_int_equal(t->lost, 0);
	if (t->rd == t->wr)
		fail_msg("no frame sent; expected one to %.*s",
		    (int)to->rid_len, (const char *)to->rid);
	f = &t->frames[t->rd++];
	assert_non_null(f->m);
	assert_int_equal(f->rid_len, to->rid_len);
	assert_memory_equal(f->rid, to->rid, to->rid_len);
	return f->m;
}

static void
expect_none(struct t *t)
{
	if (t->rd != t->wr) {
		const struct frame *f = &t->frames[t->rd];
		fail_msg("unexpected frame to %.*s (body %d)", (int)f->rid_len,
		    f->rid, f->m != NULL ? (int)f->m->body_case : -1);
	}
	assert_int_equal(t->lost, 0);
}

static void
expect_ack(struct t *t, const struct ingest_peer *to, uint64_t committed)
{
	Mtastswatch__V1__CollectorMessage *m = next_frame(t, to);

	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK);
	assert_int_equal(m->ack->committed_seq, committed);
	assert_int_equal(m->ack->credit, t->cfg.credit);
}

/* A TaskSet with this interval and domains ("a,b"); returns its version. */
static uint64_t
expect_tasks(struct t *t, const struct ingest_peer *to, unsigned interval,
    const char *domains)
{
	Mtastswatch__V1__CollectorMessage *m = next_frame(t, to);
	char joined[1024] = "";
	size_t off = 0;

	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS);
	assert_int_equal(m->tasks->interval_s, interval);
	for (size_t i = 0; i < m->tasks->n_domains; i++)
		off += (size_t)snprintf(joined + off, sizeof(joined) - off,
		    "%s%s", i > 0 ? "," : "", m->tasks->domains[i]);
	assert_string_equal(joined, domains);
	assert_true(m->tasks->version != 0);
	return m->tasks->version;
}

static void
expect_reject(struct t *t, const struct ingest_peer *to, const char *prefix)
{
	Mtastswatch__V1__CollectorMessage *m = next_frame(t, to);

	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT);
	if (strncmp(m->reject->reason, prefix, strlen(prefix)) != 0)
		fail_msg("reject reason \"%s\", expected \"%s...\"",
		    m->reject->reason, prefix);
}

/* --- what agents send ------------------------------------------------ */

/* With a writer, until what the last call started is acknowledged. */
static void
settle(struct t *t)
{
	if (!t->manual)
		ingest_settle(t->ing, t->now);
}

static void
tick(struct t *t)
{
	ingest_tick(t->ing, t->now);
	settle(t);
}

static void
feed(struct t *t, const struct ingest_peer *p, unsigned char *buf, size_t len)
{
	ingest_receive(t->ing, p, buf, len, t->now);
	free(buf);
	settle(t);
}

static void
send_hello(struct t *t, const struct ingest_peer *p)
{
	struct wire_hello h = {.name = p->name,
	    .region = p->region,
	    .version = "test",
	    .build = "unit",
	    .clock_ms = 1700000000000};
	unsigned char *buf;
	size_t len;

	assert_int_equal(wire_agent_encode_hello(&h, &buf, &len), 0);
	feed(t, p, buf, len);
}

static void
send_heartbeat(struct t *t, const struct ingest_peer *p)
{
	unsigned char *buf;
	size_t len;

	assert_int_equal(
	    wire_agent_encode_heartbeat(1700000000000, 1, 9, 2, &buf, &len), 0);
	feed(t, p, buf, len);
}

static void
send_gap(struct t *t, const struct ingest_peer *p, uint64_t first,
    uint64_t last, const char *reason)
{
	unsigned char *buf;
	size_t len;

	assert_int_equal(
	    wire_agent_encode_gap(first, last, reason, &buf, &len), 0);
	feed(t, p, buf, len);
}

/*
 * A result as an agent sends it: one MX whose chain is the test
 * certificate, the certificate, a finding.  Every pointer points into the
 * struct itself.
 */
struct rb {
	Mtastswatch__V1__AgentMessage m;
	Mtastswatch__V1__ProbeResult r;
	Mtastswatch__V1__HostObservation h;
	Mtastswatch__V1__MxObservation mx, *mxp[1];
	ProtobufCBinaryData chain[1];
	Mtastswatch__V1__Finding f, *fp[1];
	Mtastswatch__V1__Certificate c, *cp[1];
};

static void
rb_init(struct rb *x, uint64_t seq)
{
	const Mtastswatch__V1__AgentMessage m0 =
	    MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	const Mtastswatch__V1__ProbeResult r0 =
	    MTASTSWATCH__V1__PROBE_RESULT__INIT;
	const Mtastswatch__V1__HostObservation h0 =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	const Mtastswatch__V1__MxObservation x0 =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
	const Mtastswatch__V1__Finding f0 = MTASTSWATCH__V1__FINDING__INIT;
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;

	memset(x, 0, sizeof(*x));
	x->m = m0;
	x->r = r0;
	x->r.seq = seq;
	x->r.domain = seq % 2 ? "example.com" : "b.example";
	x->r.started_at_ms = 1700000000123;
	x->r.duration_ms = 321;
	x->r.completed = 1;
	x->r.resolver = "127.0.0.1";
	x->r.round = 77;
	x->r.vantage = "eu-test";

	x->chain[0].data = fx.sha;
	x->chain[0].len = sizeof(fx.sha);
	x->h = h0;
	x->h.host = "mx1.example.com";
	x->h.ip = "192.0.2.1";
	x->h.tls_ok = 1;
	x->h.tls_version = "TLSv1.3";
	x->h.n_chain_sha256 = 1;
	x->h.chain_sha256 = x->chain;
	x->mx = x0;
	x->mx.host = &x->h;
	x->mx.preference = 10;
	x->mx.starttls = 1;
	x->mx.policy_match = 1;
	x->mxp[0] = &x->mx;
	x->r.n_mx = 1;
	x->r.mx = x->mxp;

	x->f = f0;
	x->f.code = "POLICY_MAX_AGE_SHORT";
	x->f.severity = MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING;
	x->f.subject = "example.com";
	x->fp[0] = &x->f;
	x->r.n_findings = 1;
	x->r.findings = x->fp;

	x->c = c0;
	x->c.der.data = fx.der;
	x->c.der.len = (size_t)fx.der_len;
	x->cp[0] = &x->c;
	x->r.n_certificates = 1;
	x->r.certificates = x->cp;

	x->m.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT;
	x->m.result = &x->r;
}

static void
send_rb(struct t *t, const struct ingest_peer *p, const struct rb *x)
{
	unsigned char *buf;
	size_t len;

	assert_int_equal(wire_pack(&x->m.base, &buf, &len), 0);
	feed(t, p, buf, len);
}

static void
send_result(struct t *t, const struct ingest_peer *p, uint64_t seq)
{
	struct rb x;

	rb_init(&x, seq);
	send_rb(t, p, &x);
}

/* Lets the flush timer run out and ticks. */
static void
flush_due(struct t *t)
{
	t->now += INGEST_FLUSH_MS;
	tick(t);
}

/* The first tick (domain poll), then a Hello answered by Ack and tasks. */
static uint64_t
connect_agent(struct t *t, const struct ingest_peer *p, uint64_t committed,
    const char *domains)
{
	uint64_t version;

	send_hello(t, p);
	expect_ack(t, p, committed);
	version = expect_tasks(t, p, t->cfg.interval_s, domains);
	expect_none(t);
	return version;
}

static void
add_domain(struct t *t, const char *name)
{
	assert_int_equal(store_domain_add(t->st, name, NULL), 0);
}

/* --- fixtures ---------------------------------------------------------- */

static int
group_setup(void **state)
{
	struct tc_opts o = {0};
	time_t now = time(NULL);

	(void)state;
	if ((fx.key = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = "mx1.example.com";
	o.san = "DNS:mx1.example.com";
	o.key = fx.key;
	o.not_before = now - 86400;
	o.not_after = now + 90 * 86400;
	if ((fx.cert = tc_cert(&o)) == NULL)
		return -1;
	fx.der = NULL;
	if ((fx.der_len = i2d_X509(fx.cert, &fx.der)) <= 0)
		return -1;
	if (!EVP_Digest(
		fx.der, (size_t)fx.der_len, fx.sha, NULL, EVP_sha256(), NULL))
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	OPENSSL_free(fx.der);
	X509_free(fx.cert);
	EVP_PKEY_free(fx.key);
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
	if (pgschema_open(&t->db, fx.conninfo, "ingest_test") == -1)
		return -1;
	if ((t->st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err))) ==
	    NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	t->cfg.interval_s = INTERVAL;
	t->cfg.credit = CREDIT;
	t->cfg.batch = 100;
	t->cfg.retention_days = 0;
	t->now = T0;
	if ((t->ing = ingest_new(t->st, &t->cfg, capture, t)) == NULL)
		return -1;
	if (fx.writer) {
		t->w = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
		if (t->w == NULL) {
			print_error("store_open: %s\n", err);
			return -1;
		}
		if (ingest_start_writer(t->ing, t->w) == -1)
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
	/* A writer test that failed may hold the row lock the writer waits
	 * for, and destroy joins the writer. */
	if (t->db.admin != NULL)
		PQclear(PQexec(t->db.admin, "ROLLBACK"));
	ingest_destroy(&t->ing);
	ingest_destroy(&t->ing2);
	store_close(&t->st);
	store_close(&t->st2);
	store_close(&t->w);
	store_close(&t->w2);
	for (int i = 0; i < 2; i++) {
		keys_allow_free(&t->allow[i]);
		zcert_destroy(&t->cert[i]);
	}
	if (t->allow_dir[0] != '\0') {
		char path[128];

		snprintf(path, sizeof(path), "%s/a.cert", t->allow_dir);
		(void)unlink(path);
		(void)rmdir(t->allow_dir);
	}
	for (size_t i = 0; i < t->wr; i++)
		wire_collector_free(&t->frames[i].m);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/* --- the tests --------------------------------------------------------- */

/*
 * Hello is answered by Ack(0, credit) and then the task set: the active
 * domains from the database, sorted, lower case, without names that are
 * not host names, at the configured interval.
 */
static void
test_hello_ack_then_tasks(void **state)
{
	struct t *t = *state;
	uint64_t v1, v2;

	add_domain(t, "Example.COM");
	add_domain(t, "b.example");
	add_domain(t, "localhost"); /* no dot: the wire would refuse it */
	add_domain(t, "gone.example");
	assert_int_equal(store_domain_remove(t->st, "gone.example", NULL), 0);
	tick(t);
	expect_none(t);

	send_hello(t, &PA);
	expect_ack(t, &PA, 0);
	v1 = expect_tasks(t, &PA, INTERVAL, "b.example,example.com");
	expect_none(t);
	assert_string_equal(q(t, "SELECT name || '/' || region || '/' || "
				 "last_committed_seq FROM agents WHERE "
				 "public_key = '" KEY_A "'"),
	    "agent-a/eu/0");

	/* A second Hello starts a connection again: Ack and the same set. */
	t->now += 10;
	send_hello(t, &PA);
	expect_ack(t, &PA, 0);
	v2 = expect_tasks(t, &PA, INTERVAL, "b.example,example.com");
	assert_true(v1 == v2);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 1);
}

/* Before the first domain poll there is no task set: Ack alone, then it. */
static void
test_hello_before_first_poll(void **state)
{
	struct t *t = *state;

	add_domain(t, "example.com");
	send_hello(t, &PA);
	expect_ack(t, &PA, 0);
	expect_none(t);
	t->now += 5;
	tick(t);
	expect_tasks(t, &PA, INTERVAL, "example.com");
	expect_none(t);
}

/*
 * Results are written when INGEST_FLUSH_MS have passed since the first
 * was queued, not before, and then acknowledged with the last seq.
 */
static void
test_results_flush_on_timer(void **state)
{
	struct t *t = *state;
	int64_t first;
	int wait;

	add_domain(t, "example.com");
	tick(t);
	connect_agent(t, &PA, 0, "example.com");

	first = t->now;
	send_result(t, &PA, 1);
	t->now += 20;
	send_result(t, &PA, 2);
	send_result(t, &PA, 3);
	expect_none(t);
	wait = ingest_timeout(t->ing, t->now);
	assert_int_equal(wait, first + INGEST_FLUSH_MS - t->now);

	t->now = first + INGEST_FLUSH_MS - 1;
	tick(t);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_int_equal(ingest_timeout(t->ing, t->now), 1);

	t->now++;
	assert_int_equal(ingest_timeout(t->ing, t->now), 0);
	tick(t);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	assert_int_equal(watermark(t, KEY_A), 3);
	assert_string_equal(
	    q(t, "SELECT domain || '/' || round || '/' || duration_ms || '/' "
		 "|| vantage || '/' || warning_count FROM results "
		 "WHERE seq = 2"),
	    "b.example/77/321/eu-test/1");
	assert_int_equal(qn(t, "SELECT count(*) FROM certificates"), 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM host_observations "
			       "WHERE policy_match = 1"),
	    3);
	/* Nothing queued: the timeout is the poll's or a second, no less. */
	assert_true(ingest_timeout(t->ing, t->now) > INGEST_FLUSH_MS);
	flush_due(t);
	expect_none(t);
}

/* A full batch is written at once, without waiting for the timer. */
static void
test_full_batch_flushes_at_once(void **state)
{
	struct t *t = *state;

	t->cfg.batch = 3;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	send_result(t, &PA, 3);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	/* And the timer finds nothing left to write. */
	flush_due(t);
	expect_none(t);
}

/*
 * An agent that has sent its whole credit waits for an Ack: its results
 * are written at once rather than after INGEST_FLUSH_MS, batch or not.
 */
static void
test_credit_used_flushes_at_once(void **state)
{
	struct t *t = *state;

	t->cfg.credit = 3;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	expect_none(t);
	send_result(t, &PA, 3);
	expect_ack(t, &PA, 3);
	expect_none(t);
	/* The Ack gave the credit back: two more wait for the timer. */
	send_result(t, &PA, 4);
	send_result(t, &PA, 5);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	send_result(t, &PA, 6);
	expect_ack(t, &PA, 6);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3,4,5,6");
}

/* A resend is stored once and leaves the Ack where it was. */
static void
test_duplicate_resend(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 2);

	/* The agent missed the Ack and resends both. */
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 2);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM result_seqs"), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM findings"), 2);

	/* The same seq twice in one batch, beside a new one. */
	send_result(t, &PA, 3);
	send_result(t, &PA, 3);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_BAD_RESULT), 0);
}

/* 1, 2, 4: 4 is stored but the Ack stays at 2 until 3 arrives. */
static void
test_hole_holds_ack(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	send_result(t, &PA, 4);
	flush_due(t);
	expect_ack(t, &PA, 2);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,4");
	assert_int_equal(watermark(t, KEY_A), 2);

	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 2);
	send_result(t, &PA, 5);
	flush_due(t);
	expect_ack(t, &PA, 2);

	send_result(t, &PA, 3);
	flush_due(t);
	expect_ack(t, &PA, 5);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3,4,5");
	assert_int_equal(watermark(t, KEY_A), 5);
}

/* A Gap moves the watermark over what will never come, and is recorded. */
static void
test_gap_advances_watermark(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 2);

	send_gap(t, &PA, 3, 5, "spool full");
	expect_ack(t, &PA, 5);
	expect_none(t);
	assert_string_equal(q(t, "SELECT first_seq || '-' || last_seq || '/' "
				 "|| reason FROM gaps"),
	    "3-5/spool full");
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "3");
	assert_int_equal(watermark(t, KEY_A), 5);

	/* Queued results go first, in the agent's order: Ack 7, then 8. */
	send_result(t, &PA, 6);
	send_result(t, &PA, 7);
	send_gap(t, &PA, 8, 8, NULL);
	expect_ack(t, &PA, 7);
	expect_ack(t, &PA, 8);
	expect_none(t);
	assert_string_equal(
	    q(t, "SELECT reason FROM gaps WHERE first_seq = 8"), "agent spool");

	/* The same gap again is recorded once. */
	send_gap(t, &PA, 3, 5, "spool full");
	expect_ack(t, &PA, 8);
	assert_int_equal(qn(t, "SELECT count(*) FROM gaps"), 2);
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "4");

	/* A gap beyond a hole waits for the hole. */
	send_gap(t, &PA, 10, 12, "spool full");
	expect_ack(t, &PA, 8);
	send_result(t, &PA, 9);
	flush_due(t);
	expect_ack(t, &PA, 12);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,6,7,9");
}

/*
 * A result that wire_agent_decode accepts but the database refuses (a
 * policy_match beyond smallint) becomes a one-seq gap "rejected: ...",
 * the rest of the batch is stored and the whole batch acknowledged.
 */
static void
test_database_refuses_result(void **state)
{
	struct t *t = *state;
	struct rb bad;
	unsigned char *buf;
	size_t len;
	char err[128];
	Mtastswatch__V1__AgentMessage *m;

	tick(t);
	connect_agent(t, &PA, 0, "");
	rb_init(&bad, 2);
	bad.mx.policy_match = 70000;
	/* It does pass the wire checks: only the database can refuse it. */
	assert_int_equal(wire_pack(&bad.m.base, &buf, &len), 0);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	wire_agent_free(&m);
	free(buf);

	send_result(t, &PA, 1);
	send_rb(t, &PA, &bad);
	send_result(t, &PA, 3);
	flush_due(t);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,3");
	assert_string_equal(q(t, "SELECT first_seq || '-' || last_seq FROM "
				 "gaps WHERE reason LIKE 'rejected: %%'"),
	    "2-2");
	assert_non_null(strstr(q(t, "SELECT reason FROM gaps"), "smallint"));
	assert_string_equal(q(t, "SELECT gaps_total FROM agents"), "1");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_BAD_RESULT), 1);
	/* Nothing of the refused result was left behind. */
	assert_int_equal(qn(t, "SELECT count(*) FROM host_observations"), 2);
	assert_int_equal(qn(t, "SELECT count(*) FROM result_seqs"), 2);

	/* Resent, it is below the watermark: skipped, not refused again. */
	send_rb(t, &PA, &bad);
	flush_due(t);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM gaps"), 1);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_BAD_RESULT), 1);
}

/*
 * What the store's own checks refuse (a round beyond 2^63, which the wire
 * lets through) takes the same path; a seq beyond 2^63 cannot be a gap
 * and is dropped, and the Ack carries the watermark from the database.
 */
static void
test_store_refuses_result(void **state)
{
	struct t *t = *state;
	struct rb x;

	tick(t);
	connect_agent(t, &PA, 0, "");
	rb_init(&x, 1);
	x.r.round = UINT64_MAX;
	send_rb(t, &PA, &x);
	flush_due(t);
	expect_ack(t, &PA, 1);
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_string_equal(q(t, "SELECT first_seq || '-' || last_seq || '/' "
				 "|| reason FROM gaps"),
	    "1-1/rejected: seq 1 round 18446744073709551615: out of range");

	send_result(t, &PA, 2);
	rb_init(&x, UINT64_MAX);
	send_rb(t, &PA, &x);
	flush_due(t);
	expect_ack(t, &PA, 2);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "2");
	assert_int_equal(qn(t, "SELECT count(*) FROM gaps"), 1);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_BAD_RESULT), 2);

	/* Only the bad one: no write succeeds, the Ack comes all the same. */
	send_rb(t, &PA, &x);
	flush_due(t);
	expect_ack(t, &PA, 2);
	expect_none(t);
}

/*
 * Frames that are empty, too large, not protobuf, of an unknown body or
 * beyond a wire limit: each answered with a Reject naming why, counted,
 * and kept away from the database; the agent is served afterwards.
 */
static void
test_bad_frames_rejected(void **state)
{
	struct t *t = *state;
	static const unsigned char malformed[] = {0x0a, 0x7f, 0x01};
	static const unsigned char unknown_body[] = {0x2a, 0x00};
	unsigned char *big, *buf;
	size_t len;
	struct rb x;

	tick(t);
	ingest_receive(t->ing, &PA, "", 0, t->now);
	expect_reject(t, &PA, "empty: empty message");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_EMPTY), 1);
	expect_none(t);

	assert_non_null(big = calloc(1, (size_t)WIRE_MAX + 1));
	ingest_receive(t->ing, &PA, big, (size_t)WIRE_MAX + 1, t->now);
	free(big);
	expect_reject(t, &PA, "oversized: oversized message: 4194305 bytes");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_OVERSIZED), 1);

	ingest_receive(t->ing, &PA, malformed, sizeof(malformed), t->now);
	expect_reject(t, &PA, "malformed: malformed protobuf");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_MALFORMED), 1);

	ingest_receive(t->ing, &PA, unknown_body, sizeof(unknown_body), t->now);
	expect_reject(t, &PA, "unknown_body: message without known body");
	assert_int_equal(
	    ingest_refusals(t->ing, INGEST_REFUSE_UNKNOWN_BODY), 1);

	rb_init(&x, 0);
	send_rb(t, &PA, &x);
	expect_reject(t, &PA, "invalid: result without seq");
	rb_init(&x, 1);
	x.r.domain = "not a host";
	send_rb(t, &PA, &x);
	expect_reject(t, &PA, "invalid: bad domain");
	rb_init(&x, 1);
	x.f.code = "lower_case";
	send_rb(t, &PA, &x);
	expect_reject(t, &PA, "invalid: finding 0: bad code");
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_INVALID), 3);
	expect_none(t);

	/* A Reject carries no routing when there is nowhere to send it. */
	{
		struct ingest_peer anon = PA;

		anon.rid_len = 0;
		ingest_receive(t->ing, &anon, "", 0, t->now);
		assert_int_equal(
		    ingest_refusals(t->ing, INGEST_REFUSE_EMPTY), 2);
		expect_none(t);
	}

	/* None of it reached the database. */
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 0);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);

	/* The same agent, well-behaved now, is served as usual. */
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	flush_due(t);
	expect_ack(t, &PA, 1);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1");

	/* An empty spool range in a Heartbeat is fine too. */
	assert_int_equal(
	    wire_agent_encode_heartbeat(1, 0, 0, 0, &buf, &len), 0);
	feed(t, &PA, buf, len);
	expect_ack(t, &PA, 1);
	expect_none(t);
}

/* No CURVE key, or one of the wrong length: refused before anything. */
static void
test_unauthenticated_refused(void **state)
{
	struct t *t = *state;
	struct ingest_peer p = PA;
	unsigned char *buf;
	size_t len;
	struct wire_hello h = {.name = "x"};

	tick(t);
	assert_int_equal(wire_agent_encode_hello(&h, &buf, &len), 0);
	p.key = NULL;
	ingest_receive(t->ing, &p, buf, len, t->now);
	expect_reject(t, &PA, "unauthenticated: no CURVE key");
	p.key = "short";
	ingest_receive(t->ing, &p, buf, len, t->now);
	expect_reject(t, &PA, "unauthenticated: ");
	p.key = KEY_A "x"; /* 41 characters */
	ingest_receive(t->ing, &p, buf, len, t->now);
	expect_reject(t, &PA, "unauthenticated: ");
	free(buf);
	expect_none(t);
	assert_int_equal(
	    ingest_refusals(t->ing, INGEST_REFUSE_UNAUTHENTICATED), 3);
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 0);
}

/* Writes a public zcert with name and region into dir; returns it. */
static zcert_t *
allow_cert(
    const char *dir, const char *file, const char *name, const char *region)
{
	char path[512];
	zcert_t *c = zcert_new();

	assert_non_null(c);
	zcert_set_meta(c, "name", "%s", name);
	zcert_set_meta(c, "region", "%s", region);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_int_equal(zcert_save_public(c, path), 0);
	return c;
}

/*
 * With an allowlist, a key outside it is refused (even one that was
 * allowed before a reload), and the certificate file, not what the
 * connection claims, names the agent in the database.
 */
static void
test_allowlist(void **state)
{
	struct t *t = *state;
	struct ingest_peer pa, pb;
	char err[256], path[128];

	snprintf(
	    t->allow_dir, sizeof(t->allow_dir), "/tmp/ingest_allow_XXXXXX");
	assert_non_null(mkdtemp(t->allow_dir));
	t->cert[0] = allow_cert(t->allow_dir, "a.cert", "fra1", "eu-central");
	t->cert[1] = zcert_new(); /* never written: not allowed */
	assert_non_null(t->cert[1]);
	t->allow[0] = keys_allow_load(t->allow_dir, err, sizeof(err));
	assert_non_null(t->allow[0]);
	assert_int_equal(keys_allow_count(t->allow[0]), 1);
	ingest_set_allow(t->ing, t->allow[0]);

	pa = PA;
	pa.key = zcert_public_txt(t->cert[0]);
	pa.name = "claims-to-be-someone-else";
	pb = PB;
	pb.key = zcert_public_txt(t->cert[1]);
	assert_int_equal(strlen(pa.key), INGEST_KEY_LEN);

	tick(t);
	send_hello(t, &pb);
	expect_reject(t, &pb, "unknown_agent: key not in allow_dir");
	expect_none(t);
	assert_int_equal(
	    ingest_refusals(t->ing, INGEST_REFUSE_UNKNOWN_AGENT), 1);
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 0);

	connect_agent(t, &pa, 0, "");
	assert_string_equal(q(t,
				"SELECT name || '/' || region FROM agents "
				"WHERE public_key = '%s'",
				pa.key),
	    "fra1/eu-central");
	send_result(t, &pa, 1);
	flush_due(t);
	expect_ack(t, &pa, 1);
	send_result(t, &pa, 2); /* queued when the key is removed */

	/* Removed from allow_dir and reloaded: refused on the same link. */
	snprintf(path, sizeof(path), "%s/a.cert", t->allow_dir);
	assert_int_equal(unlink(path), 0);
	t->allow[1] = keys_allow_load(t->allow_dir, err, sizeof(err));
	assert_non_null(t->allow[1]);
	assert_int_equal(keys_allow_count(t->allow[1]), 0);
	ingest_set_allow(t->ing, t->allow[1]);
	keys_allow_free(&t->allow[0]);
	send_result(t, &pa, 3);
	expect_reject(t, &pa, "unknown_agent: ");
	send_heartbeat(t, &pa);
	expect_reject(t, &pa, "unknown_agent: ");
	/* What it had queued goes with it, unwritten and unacknowledged. */
	ingest_flush_all(t->ing, t->now);
	flush_due(t);
	expect_none(t);
	assert_int_equal(
	    ingest_refusals(t->ing, INGEST_REFUSE_UNKNOWN_AGENT), 3);
	assert_string_equal(stored_seqs(t, pa.key), "1");
	/* Teardown frees the allowlists and certificates, removes the dir. */
	ingest_set_allow(t->ing, NULL);
}

/* A Heartbeat is answered with the watermark, flushing what is queued. */
static void
test_heartbeat_acks_watermark(void **state)
{
	struct t *t = *state;

	add_domain(t, "example.com");
	tick(t);
	connect_agent(t, &PA, 0, "example.com");
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 0);
	expect_none(t);

	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 2);
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 2);
	expect_none(t);

	/* Queued results are written first; the Ack covers them. */
	send_result(t, &PA, 3);
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");

	/* A new connection without Hello (DEALER reconnect) gets the set. */
	send_heartbeat(t, &PA2);
	expect_ack(t, &PA2, 3);
	expect_tasks(t, &PA2, INTERVAL, "example.com");
	expect_none(t);
}

/* A Hello on a connection with queued results writes them first. */
static void
test_hello_flushes_queue(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	expect_none(t);
	send_hello(t, &PA);
	expect_ack(t, &PA, 2);
	expect_tasks(t, &PA, INTERVAL, "");
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2");
}

/*
 * A change of the domain list makes a new task set version, pushed at the
 * next poll to the agents seen lately; one silent too long gets it with
 * its next Ack.  An interval change pushes one at once.
 */
static void
test_domain_change_pushes_tasks(void **state)
{
	struct t *t = *state;
	int64_t start = t->now;
	uint64_t v1, v2, v3, v4, vb;

	add_domain(t, "example.com");
	tick(t);
	v1 = connect_agent(t, &PA, 0, "example.com");
	vb = connect_agent(t, &PB, 0, "example.com");
	assert_true(v1 == vb);

	add_domain(t, "b.example");
	t->now = start + INGEST_POLL_MS - 1;
	tick(t);
	expect_none(t);
	t->now = start + INGEST_POLL_MS;
	tick(t);
	/* Two agents: the order of the pushes is the hash table's. */
	{
		Mtastswatch__V1__CollectorMessage *m1, *m2;

		assert_int_equal(t->wr - t->rd, 2);
		m1 = t->frames[t->rd].m;
		m2 = t->frames[t->rd + 1].m;
		assert_non_null(m1);
		assert_non_null(m2);
		assert_int_not_equal(
		    t->frames[t->rd].rid[3], t->frames[t->rd + 1].rid[3]);
		assert_int_equal(m1->body_case,
		    MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS);
		assert_int_equal(m2->body_case,
		    MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS);
		v2 = m1->tasks->version;
		assert_true(m2->tasks->version == v2);
		assert_int_equal(m1->tasks->n_domains, 2);
		assert_string_equal(m1->tasks->domains[0], "b.example");
		t->rd += 2;
	}
	assert_true(v2 != v1);

	/* A poll that finds the same list pushes nothing. */
	t->now = start + 2 * INGEST_POLL_MS;
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 0);
	tick(t);
	expect_none(t);

	/* B falls silent; A does not.  Only A gets the next set at once. */
	assert_int_equal(store_domain_remove(t->st, "example.com", NULL), 0);
	t->now = start + INGEST_ACTIVE_MS + INGEST_POLL_MS + 1;
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 0);
	tick(t);
	v3 = expect_tasks(t, &PA, INTERVAL, "b.example");
	expect_none(t);
	assert_true(v3 != v1 && v3 != v2);
	send_heartbeat(t, &PB);
	expect_ack(t, &PB, 0);
	assert_true(expect_tasks(t, &PB, INTERVAL, "b.example") == v3);
	expect_none(t);

	/* A new interval: a new version, pushed without waiting for a poll. */
	t->cfg.interval_s = 600;
	ingest_set_config(t->ing, &t->cfg);
	{
		Mtastswatch__V1__CollectorMessage *m1, *m2;

		assert_int_equal(t->wr - t->rd, 2);
		m1 = t->frames[t->rd].m;
		m2 = t->frames[t->rd + 1].m;
		assert_non_null(m1);
		assert_non_null(m2);
		assert_int_equal(m1->tasks->interval_s, 600);
		assert_int_equal(m2->tasks->interval_s, 600);
		v4 = m1->tasks->version;
		assert_true(m2->tasks->version == v4);
		t->rd += 2;
	}
	assert_true(v4 != v3);
	/* Other settings alone push nothing. */
	t->cfg.credit = 7;
	ingest_set_config(t->ing, &t->cfg);
	expect_none(t);
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 0); /* credit 7 now, which expect_ack checks */
	expect_none(t);
}

/* Two agents: each sees its own watermark, on its own connection. */
static void
test_two_agents_separate(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	send_result(t, &PA, 3);
	flush_due(t);
	expect_ack(t, &PA, 3);

	connect_agent(t, &PB, 0, "");
	send_result(t, &PB, 1);
	flush_due(t);
	expect_ack(t, &PB, 1);
	expect_none(t);

	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 3);
	send_heartbeat(t, &PB);
	expect_ack(t, &PB, 1);
	/* B's gap does not move A. */
	send_gap(t, &PB, 2, 10, "spool full");
	expect_ack(t, &PB, 10);
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 3);
	expect_none(t);

	assert_int_equal(watermark(t, KEY_A), 3);
	assert_int_equal(watermark(t, KEY_B), 10);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	assert_string_equal(stored_seqs(t, KEY_B), "1");
}

/*
 * Two collectors on one database: the watermark lives there, so an agent
 * that moves from one to the other is acknowledged where it stands.
 */
/* The other collector takes the frames from now on. */
static void
switch_collector(struct t *t)
{
	struct ingest *other = t->ing2;

	t->ing2 = t->ing;
	t->ing = other;
}

static void
test_two_collectors_share_database(void **state)
{
	struct t *t = *state;
	char err[256];

	t->st2 = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
	assert_non_null(t->st2);
	t->ing2 = ingest_new(t->st2, &t->cfg, capture, t);
	assert_non_null(t->ing2);
	if (fx.writer) {
		t->w2 = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err));
		assert_non_null(t->w2);
		assert_int_equal(ingest_start_writer(t->ing2, t->w2), 0);
	}
	tick(t);
	ingest_tick(t->ing2, t->now);

	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	flush_due(t);
	expect_ack(t, &PA, 2);

	/* The agent fails over to the second collector. */
	switch_collector(t);
	connect_agent(t, &PA2, 2, "");
	send_result(t, &PA2, 3);
	flush_due(t);
	expect_ack(t, &PA2, 3);

	/* And back: the first knows nothing of 3 but the database does. */
	switch_collector(t);
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 1);

	ingest_destroy(&t->ing2);
	assert_null(t->ing2);
	store_close(&t->st2);
	assert_null(t->st2);
	store_close(&t->w2);
}

/* At shutdown what is queued is written and acknowledged; destroy drops. */
static void
test_flush_all_and_destroy(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	connect_agent(t, &PB, 0, "");
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	ingest_flush_all(t->ing, t->now);
	expect_ack(t, &PA, 2);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2");

	send_result(t, &PA, 3);
	send_result(t, &PB, 1);
	ingest_destroy(&t->ing);
	assert_null(t->ing);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2");
	assert_string_equal(stored_seqs(t, KEY_B), "<null>");
}

/* Refusals the daemon finds are counted and answered with nothing. */
static void
test_daemon_refusals_counted(void **state)
{
	struct t *t = *state;

	ingest_refuse(t->ing, &PA, INGEST_REFUSE_FRAMES, "3 frames", t->now);
	ingest_refuse(t->ing, &PA, INGEST_REFUSE_FRAMES, "0 frames", t->now);
	ingest_refuse(t->ing, NULL, INGEST_REFUSE_FRAMES, "no peer\n", t->now);
	ingest_refuse(t->ing, &PA, INGEST_REFUSE_COUNT, "out of range", t->now);
	expect_none(t);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_FRAMES), 3);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_COUNT), 0);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_EMPTY), 0);
	assert_string_equal(
	    ingest_refusal_name(INGEST_REFUSE_FRAMES), "frames");
	assert_string_equal(
	    ingest_refusal_name(INGEST_REFUSE_DB_DOWN), "db_down");
	assert_string_equal(ingest_refusal_name(INGEST_REFUSE_COUNT), "?");
	ingest_log_stats(t->ing);
}

/*
 * A send that fails is only logged: the engine goes on, and the next
 * message is answered.
 */
static void
test_send_failure_tolerated(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	t->fail_sends = 1;
	send_result(t, &PA, 1);
	flush_due(t);
	t->fail_sends = 0;
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1");
	/* The agent missed the Ack, resends, and is acknowledged. */
	send_result(t, &PA, 1);
	flush_due(t);
	expect_ack(t, &PA, 1);
	expect_none(t);
}

/* An agent idle past INGEST_FORGET_MS is forgotten in memory only. */
static void
test_idle_agent_forgotten(void **state)
{
	struct t *t = *state;

	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	flush_due(t);
	expect_ack(t, &PA, 1);
	t->now += INGEST_FORGET_MS + INGEST_POLL_MS + 1;
	tick(t);
	expect_none(t);
	/* Back: a new agent to this process, at its watermark, with tasks. */
	send_heartbeat(t, &PA);
	expect_ack(t, &PA, 1);
	expect_tasks(t, &PA, INTERVAL, "");
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM agents"), 1);
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

/*
 * The database goes away: what is queued is dropped unacknowledged,
 * nothing is answered until a reconnect (after the backoff) succeeds,
 * then every recent agent is told its watermark and resends.
 */
static void
test_database_lost(void **state)
{
	struct t *t = *state;
	int64_t lost_at;
	int i;

	if (fx.pgdir == NULL || fx.pgdir[0] == '\0') {
		print_message("MTASTS_TEST_PGDIR unset: restart not tested\n");
		skip();
	}
	tick(t);
	connect_agent(t, &PA, 0, "");
	send_result(t, &PA, 1);
	flush_due(t);
	expect_ack(t, &PA, 1);

	assert_int_equal(restart_server(), 0);
	send_result(t, &PA, 2);
	flush_due(t);
	lost_at = t->now;
	assert_int_equal(ingest_db_down(t->ing), 1);
	expect_none(t);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_DB_DOWN), 1);

	/* While down: no answer to anything, each message counted. */
	send_result(t, &PA, 3);
	send_heartbeat(t, &PA);
	send_hello(t, &PA);
	send_gap(t, &PA, 4, 4, "spool full");
	expect_none(t);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_DB_DOWN), 5);
	assert_int_equal(ingest_timeout(t->ing, t->now), INGEST_BACKOFF_MIN_MS);

	t->now = lost_at + INGEST_BACKOFF_MIN_MS - 1;
	tick(t);
	assert_int_equal(ingest_db_down(t->ing), 1);
	expect_none(t);

	/* pg_ctl -w returned once the server took connections again. */
	for (i = 0; i < 20 && ingest_db_down(t->ing); i++) {
		t->now += INGEST_BACKOFF_MAX_MS;
		tick(t);
		if (ingest_db_down(t->ing))
			usleep(100000);
	}
	assert_int_equal(ingest_db_down(t->ing), 0);
	expect_ack(t, &PA, 1);
	expect_none(t);

	send_result(t, &PA, 2);
	send_result(t, &PA, 3);
	flush_due(t);
	expect_ack(t, &PA, 3);
	expect_none(t);
	PQreset(t->db.admin);
	assert_int_equal(PQstatus(t->db.admin), CONNECTION_OK);
	sql(t, "SET search_path = %s", t->db.schema);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	assert_int_equal(watermark(t, KEY_A), 3);
}

/* --- the writer thread, not waited for --------------------------------- */

/*
 * Takes the agent's row lock on the admin connection: the lock every
 * batch of that agent takes first, inside its transaction.
 */
static void
hold_agent(struct t *t, const char *key)
{
	sql(t, "BEGIN");
	sql(t, "SELECT 1 FROM agents WHERE public_key = '%s' FOR UPDATE", key);
}

/* Until the writer waits for that lock (5 s at most). */
static void
wait_blocked(struct t *t)
{
	for (int i = 0; i < 100; i++) {
		if (qn(t, "SELECT count(*) FROM pg_locks WHERE NOT granted") >
		    0)
			return;
		usleep(50000);
	}
	fail_msg("the writer never waited for the row lock");
}

static void
skip_without_writer(void)
{
	if (!fx.writer)
		skip();
}

/*
 * Two batches of one agent in flight: the first blocked in its
 * transaction, the second decoded and queued meanwhile.  Nothing is
 * acknowledged until the first COMMIT; then both are, in order, and the
 * first was written before the second.
 */
static void
test_writer_acks_after_commit(void **state)
{
	struct t *t = *state;
	int i;

	skip_without_writer();
	t->cfg.batch = 3;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	t->manual = 1;
	hold_agent(t, KEY_A);
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	send_result(t, &PA, 3);
	wait_blocked(t);
	/* The next batch is received and decoded while the first waits. */
	send_result(t, &PA, 4);
	send_result(t, &PA, 5);
	send_result(t, &PA, 6);
	for (i = 0; i < 5; i++) {
		t->now += INGEST_FLUSH_MS;
		ingest_tick(t->ing, t->now);
		usleep(20000);
	}
	expect_none(t);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_int_equal(watermark(t, KEY_A), 0);

	sql(t, "COMMIT");
	ingest_settle(t->ing, t->now);
	expect_ack(t, &PA, 3);
	expect_ack(t, &PA, 6);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3,4,5,6");
	/* Identities are drawn as seqs are claimed: 1..3 went first. */
	assert_int_equal(qn(t, "SELECT count(*) FROM results a JOIN results b "
			       "ON a.seq < b.seq WHERE a.id > b.id"),
	    0);
	t->manual = 0;
}

/*
 * A gap behind a batch in flight is written after it, and a Hello behind
 * them is answered after them: one agent's writes keep its order.  (A
 * Hello or Heartbeat updates the agent's row on the main thread, which
 * waits for the writer's transaction: it cannot come while the test
 * holds the writer.)
 */
static void
test_writer_keeps_agent_order(void **state)
{
	struct t *t = *state;

	skip_without_writer();
	t->cfg.batch = 2;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	connect_agent(t, &PB, 0, "");
	t->manual = 1;
	hold_agent(t, KEY_A);
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	wait_blocked(t);
	send_gap(t, &PA, 3, 4, "spool full");
	send_result(t, &PA, 5);
	send_result(t, &PA, 6);
	expect_none(t);
	sql(t, "COMMIT");
	send_hello(t, &PA);
	ingest_settle(t->ing, t->now);
	/*
	 * The Acks in order, the Hello's last.  The task set follows the
	 * first Ack that leaves after the Hello was read, which may be one
	 * of a batch that committed meanwhile: any Ack is where it stands.
	 */
	{
		static const uint64_t want[] = {2, 4, 6, 6};
		size_t acks = 0, tasks = 0;

		while (t->rd < t->wr) {
			Mtastswatch__V1__CollectorMessage *m =
			    next_frame(t, &PA);
			if (m->body_case ==
			    MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS) {
				assert_true(acks > 0);
				tasks++;
				continue;
			}
			assert_int_equal(m->body_case,
			    MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK);
			assert_true(acks < 4);
			assert_int_equal(m->ack->committed_seq, want[acks]);
			acks++;
		}
		assert_int_equal(acks, 4);
		assert_int_equal(tasks, 1);
	}
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,5,6");
	assert_int_equal(watermark(t, KEY_A), 6);

	/* More jobs than INGEST_INFLIGHT_MAX: the caller waits, none lost. */
	for (uint64_t seq = 1; seq <= 2 * (INGEST_INFLIGHT_MAX + 2); seq++)
		send_result(t, &PB, seq);
	ingest_settle(t->ing, t->now);
	for (uint64_t seq = 2; seq <= 2 * (INGEST_INFLIGHT_MAX + 2); seq += 2)
		expect_ack(t, &PB, seq);
	expect_none(t);
	assert_int_equal(watermark(t, KEY_B), 2 * (INGEST_INFLIGHT_MAX + 2));
	t->manual = 0;
}

/*
 * The writer's connection dies with a batch in its transaction and
 * another queued: neither is acknowledged, the engine stops answering,
 * then reconnects (the writer too) and the agent's resend is stored.
 */
static void
test_writer_outage_in_flight(void **state)
{
	struct t *t = *state;

	skip_without_writer();
	t->cfg.batch = 3;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	t->manual = 1;
	hold_agent(t, KEY_A);
	send_result(t, &PA, 1);
	send_result(t, &PA, 2);
	send_result(t, &PA, 3);
	wait_blocked(t);
	send_result(t, &PA, 4);
	send_result(t, &PA, 5);
	send_result(t, &PA, 6);
	/* The writer's backend is the one waiting for the lock. */
	assert_int_equal(qn(t, "SELECT count(pg_terminate_backend(pid)) FROM "
			       "pg_locks WHERE NOT granted"),
	    1);
	sql(t, "ROLLBACK");
	ingest_settle(t->ing, t->now);
	assert_int_equal(ingest_db_down(t->ing), 1);
	expect_none(t);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_DB_DOWN), 6);
	assert_int_equal(qn(t, "SELECT count(*) FROM results"), 0);
	assert_int_equal(watermark(t, KEY_A), 0);

	/* While down: nothing answered, each message counted. */
	send_result(t, &PA, 7);
	send_heartbeat(t, &PA);
	expect_none(t);
	assert_int_equal(ingest_refusals(t->ing, INGEST_REFUSE_DB_DOWN), 8);

	/* After the backoff: reconnected, told where it stands, resends. */
	t->now += INGEST_BACKOFF_MIN_MS;
	ingest_tick(t->ing, t->now);
	ingest_settle(t->ing, t->now);
	assert_int_equal(ingest_db_down(t->ing), 0);
	expect_ack(t, &PA, 0);
	expect_none(t);
	for (uint64_t seq = 1; seq <= 6; seq++)
		send_result(t, &PA, seq);
	ingest_settle(t->ing, t->now);
	expect_ack(t, &PA, 3);
	expect_ack(t, &PA, 6);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3,4,5,6");
	t->manual = 0;
}

/* At shutdown, flush_all writes the queue and waits for what is in flight. */
static void
test_writer_flush_all_waits(void **state)
{
	struct t *t = *state;

	skip_without_writer();
	t->cfg.batch = 2;
	ingest_set_config(t->ing, &t->cfg);
	tick(t);
	connect_agent(t, &PA, 0, "");
	t->manual = 1;
	send_result(t, &PA, 1);
	send_result(t, &PA, 2); /* a batch, handed to the writer */
	send_result(t, &PA, 3); /* queued */
	ingest_flush_all(t->ing, t->now);
	expect_ack(t, &PA, 2);
	expect_ack(t, &PA, 3);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	/* Destroy drops what was never handed over, and joins the thread. */
	send_result(t, &PA, 4);
	ingest_destroy(&t->ing);
	expect_none(t);
	assert_string_equal(stored_seqs(t, KEY_A), "1,2,3");
	t->manual = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_hello_ack_then_tasks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_hello_before_first_poll, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_results_flush_on_timer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_full_batch_flushes_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_credit_used_flushes_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_duplicate_resend, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_hole_holds_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_gap_advances_watermark, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_database_refuses_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_store_refuses_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bad_frames_rejected, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unauthenticated_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_allowlist, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_heartbeat_acks_watermark, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_hello_flushes_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_domain_change_pushes_tasks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_agents_separate, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_collectors_share_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_flush_all_and_destroy, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_daemon_refusals_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_send_failure_tolerated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_idle_agent_forgotten, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_database_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_writer_acks_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_writer_keeps_agent_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_writer_outage_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_writer_flush_all_waits, setup, teardown),
	};
	int failed;
	const char *verbose = getenv("MTASTS_TEST_VERBOSE");

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.pgdir = getenv("MTASTS_TEST_PGDIR");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_ingest: MTASTS_TEST_PG is not set; start a cluster "
		    "first:\n  eval \"$(sh tests/lib/pg_start.sh "
		    "/tmp/pgi)\"\n");
		return 1;
	}
	/* Refusals and rejections are what these tests cause on purpose. */
	if (verbose == NULL || strcmp(verbose, "1") != 0)
		log_set_level(LOG_LEVEL_ERROR);
	failed = cmocka_run_group_tests_name(
	    "inline", tests, group_setup, group_teardown);
	fx.writer = 1;
	failed += cmocka_run_group_tests_name(
	    "writer", tests, group_setup, group_teardown);
	return failed;
}
