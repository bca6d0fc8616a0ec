/* ingest.c -- the collector's side of the agent protocol (proto/README.md). */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "log.h"
#include "wire.h"

#define RID_MAX		255 /* ZeroMQ routing ids are at most 255 bytes */
#define TRANSIENT_TRIES 3   /* deadlocks and serialization failures */
#define LOG_EVERY_MS	1000
#define MAINT_RETRY_MS	(5 * 60 * 1000)
#define DETAIL_MAX	256

/* One agent (one CURVE key) as this process knows it; a cache only. */
struct agent {
	char key[INGEST_KEY_LEN + 1];
	int64_t id; /* agents.id, 0 until upserted by this process */
	unsigned char rid[RID_MAX];
	size_t rid_len;
	char *name;
	char *region;
	int64_t last_seen_ms;
	uint64_t tasks_sent; /* version sent on this connection, 0: none */
	uint64_t serial;     /* which struct agent of this key a job was for */
	size_t inflight;     /* its jobs not yet handled (s_submit) */
	size_t inflight_results; /* results in those jobs */
	/* Results waiting for their transaction; each owns its message. */
	Mtastswatch__V1__AgentMessage **queue;
	size_t n, cap;
	size_t queued_bytes;
	int64_t first_queued_ms;
};

enum job_kind { JOB_BATCH, JOB_GAP, JOB_WATERMARK };
enum job_status { JOB_OK, JOB_FAILED, JOB_DOWN };

/* One write for one agent and what came of it (see s_submit). */
struct job {
	struct job *next;
	enum job_kind kind;
	uint64_t epoch;	 /* ing->epoch when made */
	uint64_t serial; /* the agent's, so that the answer finds the same */
	char key[INGEST_KEY_LEN + 1];
	char name[64]; /* for log lines */
	int64_t agent_id;
	/* JOB_BATCH: results not (yet) written, each owning its message */
	Mtastswatch__V1__AgentMessage **msgs;
	size_t n;
	size_t count; /* results when made, for agent.inflight_results */
	/* JOB_GAP */
	uint64_t first, last;
	char reason[DETAIL_MAX];
	/* what came of it */
	enum job_status status;
	const char *op;		 /* what failed */
	char err[DETAIL_MAX];	 /* its message, cleaned */
	uint64_t committed;	 /* JOB_OK: the watermark to acknowledge */
	size_t stored, rejected; /* JOB_BATCH */
};

struct ingest {
	struct store *store; /* the main thread's */
	struct ingest_config cfg;
	ingest_send_fn send;
	void *send_arg;
	const struct keys_allow *allow;
	zhashx_t *agents; /* Z85 key -> struct agent */
	int64_t now_ms;

	/* The task set: active domains, sorted, and its encoding. */
	char **domains;
	size_t n_domains;
	int have_domains;
	uint64_t tasks_version;
	unsigned char *tasks_buf;
	size_t tasks_len;
	int64_t next_poll_ms;

	int64_t next_maint_ms;

	int db_down;
	uint64_t epoch; /* moves on at every loss of the database */
	int64_t backoff_ms;
	int64_t next_reconnect_ms;
	uint64_t next_serial;

	/*
	 * The writer thread (ingest_start_writer); wstore NULL: jobs run
	 * inline.  lock guards todo, done and stop; the rest is the main
	 * thread's, wstore the writer's once it runs.
	 */
	struct store *wstore;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t todo_cond;     /* todo grew, or stop */
	pthread_cond_t done_cond;     /* done grew */
	struct job *todo, *todo_tail; /* in order: one agent's in its order */
	struct job *done, *done_tail;
	int stop;
	int pipe_rd, pipe_wr; /* a byte when done becomes non-empty */
	size_t inflight;      /* jobs made and not yet handled */

	uint64_t refused[INGEST_REFUSE_COUNT];
	uint64_t suppressed[INGEST_REFUSE_COUNT];
	int64_t last_logged_ms[INGEST_REFUSE_COUNT];
	uint64_t results_stored;
	uint64_t batches;
};

static void s_writer_stop(struct ingest *ing);

static const char *const refusal_names[INGEST_REFUSE_COUNT] = {
    [INGEST_REFUSE_EMPTY] = "empty",
    [INGEST_REFUSE_OVERSIZED] = "oversized",
    [INGEST_REFUSE_MALFORMED] = "malformed",
    [INGEST_REFUSE_UNKNOWN_BODY] = "unknown_body",
    [INGEST_REFUSE_INVALID] = "invalid",
    [INGEST_REFUSE_FRAMES] = "frames",
    [INGEST_REFUSE_UNAUTHENTICATED] = "unauthenticated",
    [INGEST_REFUSE_UNKNOWN_AGENT] = "unknown_agent",
    [INGEST_REFUSE_BAD_RESULT] = "bad_result",
    [INGEST_REFUSE_DB_DOWN] = "db_down",
};

const char *
ingest_refusal_name(enum ingest_refusal why)
{
	return why < INGEST_REFUSE_COUNT ? refusal_names[why] : "?";
}

/*
 * A copy of s fit for a quoted log value: no quotes, backslashes or
 * control characters (PostgreSQL messages span lines), cut to fit.
 */
static const char *
s_clean(char *dst, size_t size, const char *s)
{
	size_t i = 0;

	for (; s != NULL && *s != '\0' && i + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;
		dst[i++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			       ? ' '
			       : (char)c;
	}
	while (i > 0 && dst[i - 1] == ' ')
		i--;
	dst[i] = '\0';
	return dst;
}

static void
s_realtime(struct timespec *ts)
{
	if (clock_gettime(CLOCK_REALTIME, ts) == -1) {
		ts->tv_sec = time(NULL);
		ts->tv_nsec = 0;
	}
}

static void
s_queue_clear(struct agent *a)
{
	for (size_t i = 0; i < a->n; i++)
		wire_agent_free(&a->queue[i]);
	a->n = 0;
	a->queued_bytes = 0;
	a->first_queued_ms = 0;
}

static void
s_agent_free(void **item)
{
	struct agent *a = *item;

	if (a == NULL)
		return;
	s_queue_clear(a);
	free(a->queue);
	free(a->name);
	free(a->region);
	free(a);
	*item = NULL;
}

struct ingest *
ingest_new(struct store *store, const struct ingest_config *cfg,
    ingest_send_fn send, void *send_arg)
{
	struct ingest *ing = calloc(1, sizeof(*ing));

	if (ing == NULL)
		return NULL;
	if ((ing->agents = zhashx_new()) == NULL) {
		free(ing);
		return NULL;
	}
	zhashx_set_destructor(ing->agents, s_agent_free);
	ing->store = store;
	ing->epoch = 1;
	ing->cfg = *cfg;
	ing->send = send;
	ing->send_arg = send_arg;
	/* 0 deadlines: the first tick polls domains and makes partitions. */
	return ing;
}

static void
s_domains_free(struct ingest *ing)
{
	for (size_t i = 0; i < ing->n_domains; i++)
		free(ing->domains[i]);
	free(ing->domains);
	ing->domains = NULL;
	ing->n_domains = 0;
}

void
ingest_destroy(struct ingest **ing)
{
	if (ing == NULL || *ing == NULL)
		return;
	s_writer_stop(*ing);
	zhashx_destroy(&(*ing)->agents);
	s_domains_free(*ing);
	free((*ing)->tasks_buf);
	free(*ing);
	*ing = NULL;
}

void
ingest_set_allow(struct ingest *ing, const struct keys_allow *allow)
{
	ing->allow = allow;
}

int
ingest_db_down(const struct ingest *ing)
{
	return ing->db_down;
}

uint64_t
ingest_refusals(const struct ingest *ing, enum ingest_refusal why)
{
	return why < INGEST_REFUSE_COUNT ? ing->refused[why] : 0;
}

void
ingest_counters_get(const struct ingest *ing, struct ingest_counters *out)
{
	memset(out, 0, sizeof(*out));
	out->results_stored = ing->results_stored;
	out->batches = ing->batches;
	memcpy(out->refused, ing->refused, sizeof(out->refused));
	out->agents_connected = zhashx_size(ing->agents);
	out->db_down = ing->db_down;
}

void
ingest_log_stats(const struct ingest *ing)
{
	char line[768];
	size_t off = 0;

	for (int r = 0; r < INGEST_REFUSE_COUNT; r++) {
		int n = snprintf(line + off, sizeof(line) - off,
		    " refused_%s=%" PRIu64, refusal_names[r], ing->refused[r]);
		if (n < 0 || (size_t)n >= sizeof(line) - off)
			break;
		off += (size_t)n;
	}
	log_warnx("stats agents=%zu results_stored=%" PRIu64 " batches=%" PRIu64
		  " db_down=%d%s",
	    zhashx_size(ing->agents), ing->results_stored, ing->batches,
	    ing->db_down, line);
}

/* --- sending ------------------------------------------------------------ */

static int
s_send(struct ingest *ing, const struct agent *a, const unsigned char *buf,
    size_t len, const char *what)
{
	if (ing->send(a->rid, a->rid_len, buf, len, ing->send_arg) == -1) {
		log_debug("send failed what=%s key=%s name=%s", what, a->key,
		    a->name);
		return -1;
	}
	return 0;
}

static void
s_send_tasks(struct ingest *ing, struct agent *a)
{
	if (!ing->have_domains || a->rid_len == 0)
		return;
	/* Only a task set that left counts as sent: otherwise the next Ack
	 * tries again, instead of leaving the agent without work. */
	if (s_send(ing, a, ing->tasks_buf, ing->tasks_len, "tasks") == -1)
		return;
	a->tasks_sent = ing->tasks_version;
	log_debug("tasks key=%s name=%s version=%016" PRIx64 " domains=%zu",
	    a->key, a->name, ing->tasks_version, ing->n_domains);
}

/* Ack, followed by the task set when this connection lacks it. */
static void
s_send_ack(struct ingest *ing, struct agent *a, uint64_t committed)
{
	unsigned char *buf;
	size_t len;

	if (wire_collector_encode_ack(committed, ing->cfg.credit, &buf, &len) ==
	    -1) {
		log_warnx("cannot encode ack key=%s", a->key);
		return;
	}
	(void)s_send(ing, a, buf, len, "ack");
	free(buf);
	log_debug("ack key=%s name=%s committed=%" PRIu64, a->key, a->name,
	    committed);
	/*
	 * A connection that has no task set yet gets it right after an Ack:
	 * after the answer to Hello, or after the first Ack on a connection
	 * that never said Hello (a DEALER reconnects on its own).
	 */
	if (a->tasks_sent != ing->tasks_version)
		s_send_tasks(ing, a);
}

static void
s_send_reject(
    struct ingest *ing, const struct ingest_peer *peer, const char *reason)
{
	unsigned char *buf;
	size_t len;

	if (peer->rid_len == 0 ||
	    wire_collector_encode_reject(reason, &buf, &len) == -1)
		return;
	(void)ing->send(peer->rid, peer->rid_len, buf, len, ing->send_arg);
	free(buf);
}

/* --- refusals ----------------------------------------------------------- */

void
ingest_refuse(struct ingest *ing, const struct ingest_peer *peer,
    enum ingest_refusal why, const char *detail, int64_t now_ms)
{
	char clean[DETAIL_MAX];

	if (why >= INGEST_REFUSE_COUNT)
		return;
	ing->refused[why]++;
	/* At most one line a second per reason, however fast they come. */
	if (ing->last_logged_ms[why] != 0 &&
	    now_ms - ing->last_logged_ms[why] < LOG_EVERY_MS) {
		ing->suppressed[why]++;
		return;
	}
	ing->last_logged_ms[why] = now_ms;
	log_warnx("refused reason=%s key=%s detail=\"%s\" total=%" PRIu64
		  " suppressed=%" PRIu64,
	    refusal_names[why],
	    peer != NULL && peer->key != NULL && peer->key[0] != '\0'
		? peer->key
		: "-",
	    s_clean(clean, sizeof(clean), detail), ing->refused[why],
	    ing->suppressed[why]);
	ing->suppressed[why] = 0;
}

/* Refuses the whole message and tells the agent why (it backs off). */
static void
s_refuse_reply(struct ingest *ing, const struct ingest_peer *peer,
    enum ingest_refusal why, const char *detail)
{
	char reason[DETAIL_MAX];

	ingest_refuse(ing, peer, why, detail, ing->now_ms);
	snprintf(reason, sizeof(reason), "%s: %s", refusal_names[why], detail);
	s_send_reject(ing, peer, reason);
}

/* --- the database ------------------------------------------------------- */

/*
 * After a write failed.  A lost connection stops acknowledgements until a
 * reconnect succeeds: what is queued is dropped from memory, since every
 * agent resends what it has not seen acknowledged.  epoch is the one the
 * failed write started in: a loss already handled since is not a new one.
 */
static void
s_db_failed(struct ingest *ing, const char *op, const char *key,
    const char *err, int broken, uint64_t epoch)
{
	if (!broken) {
		log_warnx("database error op=%s key=%s error=\"%s\"", op,
		    key != NULL ? key : "-", err);
		return;
	}
	if (ing->db_down || epoch != ing->epoch)
		return;
	ing->db_down = 1;
	ing->epoch++;
	ing->backoff_ms = INGEST_BACKOFF_MIN_MS;
	ing->next_reconnect_ms = ing->now_ms + ing->backoff_ms;
	log_warnx("database lost op=%s error=\"%s\"; not acknowledging, "
		  "retrying in %" PRId64 " ms",
	    op, err, ing->backoff_ms);
	for (void *p = zhashx_first(ing->agents); p != NULL;
	     p = zhashx_next(ing->agents)) {
		struct agent *qa = p;
		ing->refused[INGEST_REFUSE_DB_DOWN] += qa->n;
		s_queue_clear(qa);
	}
}

/* After a call on the main thread's own store failed. */
static void
s_store_failed(struct ingest *ing, const char *op, const struct agent *a)
{
	char err[DETAIL_MAX];

	s_clean(err, sizeof(err), store_error(ing->store));
	s_db_failed(ing, op, a != NULL ? a->key : NULL, err,
	    store_broken(ing->store), ing->epoch);
}

/*
 * The agents, copied out, for the loops that write.  zhashx has one
 * cursor, which zhashx_lookup moves, and handling a finished write looks
 * its agent up (s_job_done); nothing deletes an agent meanwhile.  Free
 * with free.  NULL with *n = 0 when there are none or out of memory (the
 * work waits for the next tick).
 */
static struct agent **
s_agents(struct ingest *ing, size_t *n)
{
	size_t size = zhashx_size(ing->agents), i = 0;
	struct agent **list;

	*n = 0;
	if (size == 0 || (list = calloc(size, sizeof(*list))) == NULL)
		return NULL;
	for (void *p = zhashx_first(ing->agents); p != NULL && i < size;
	     p = zhashx_next(ing->agents))
		list[i++] = p;
	*n = i;
	return list;
}

/* Makes sure the agent has its agents.id; 0 or -1. */
static int
s_agent_id(struct ingest *ing, struct agent *a)
{
	if (a->id != 0)
		return 0;
	if (store_agent_upsert(
		ing->store, a->key, a->name, a->region, &a->id) == -1) {
		a->id = 0;
		s_store_failed(ing, "agent_upsert", a);
		return -1;
	}
	return 0;
}

/* --- writes: jobs, run inline or on the writer thread ------------------- */

/*
 * Every write that ends in an Ack (a batch, a gap, reading the watermark)
 * is a job.  The main thread makes it and, once it has run, handles what
 * came of it (counters, the Ack); in between it belongs to whoever runs
 * it, which touches only the job and its own store.  With a writer
 * (ingest_start_writer) jobs run on its thread, one at a time in the
 * order they were made, so one agent's writes commit in its order and its
 * Acks go out in that order, each only after its COMMIT returned.
 */
static void
s_job_free(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n; i++)
		wire_agent_free(&j->msgs[i]);
	free(j->msgs);
	free(j);
}

static void
s_job_fail(struct job *j, struct store *st, const char *op)
{
	j->op = op;
	s_clean(j->err, sizeof(j->err), store_error(st));
	j->status = store_broken(st) ? JOB_DOWN : JOB_FAILED;
}

static void
s_job_remove(struct job *j, size_t i)
{
	wire_agent_free(&j->msgs[i]);
	memmove(
	    &j->msgs[i], &j->msgs[i + 1], (j->n - i - 1) * sizeof(j->msgs[0]));
	j->n--;
}

/*
 * Writes the batch in one transaction.  A result the database refuses
 * becomes a gap of one, so the agent's watermark moves past it and its
 * spool lets it go, and the others are written again.  Any other failure
 * leaves j->n results unwritten and acknowledges nothing.
 */
static void
s_job_batch(struct job *j, struct store *st)
{
	Mtastswatch__V1__ProbeResult **results;
	struct timespec received;
	int tries = 0, known = 0;

	if ((results = calloc(j->n, sizeof(*results))) == NULL) {
		j->op = "write_batch";
		snprintf(j->err, sizeof(j->err), "out of memory");
		j->status = JOB_FAILED;
		return;
	}
	while (j->n > 0) {
		long bad;

		for (size_t i = 0; i < j->n; i++)
			results[i] = j->msgs[i]->result;
		s_realtime(&received);
		if (store_write_batch(st, j->agent_id, results, j->n, &received,
			&j->committed) == 0) {
			j->stored = j->n;
			for (size_t i = 0; i < j->n; i++)
				wire_agent_free(&j->msgs[i]);
			j->n = 0;
			known = 1;
			break;
		}
		bad = store_bad_index(st);
		if (bad >= 0 && (size_t)bad < j->n) {
			uint64_t seq = results[bad]->seq;
			char detail[DETAIL_MAX], reason[DETAIL_MAX];

			s_clean(detail, sizeof(detail), store_error(st));
			log_warnx("result rejected key=%s name=%s seq=%" PRIu64
				  " domain=%s error=\"%s\"",
			    j->key, j->name, seq, results[bad]->domain, detail);
			j->rejected++;
			snprintf(
			    reason, sizeof(reason), "rejected: %s", detail);
			/* Beyond what a gap can hold: dropped, never acked. */
			if (seq <= INT64_MAX &&
			    store_gap(st, j->agent_id, seq, seq, reason,
				&received, &j->committed) == -1) {
				s_job_fail(j, st, "gap");
				break;
			}
			if (seq <= INT64_MAX)
				known = 1;
			s_job_remove(j, (size_t)bad);
			continue;
		}
		if (!store_broken(st) && ++tries < TRANSIENT_TRIES)
			continue;
		s_job_fail(j, st, "write_batch");
		break;
	}
	free(results);
	/* Only dropped results: the watermark comes from the database. */
	if (j->status == JOB_OK && !known &&
	    store_agent_committed(st, j->agent_id, &j->committed) == -1)
		s_job_fail(j, st, "agent_committed");
}

/*
 * Runs j on st.  On the writer thread, dead_epoch is the last epoch in
 * which it found the database lost: the jobs made before the main thread
 * learnt of it fail at once rather than write after a hole; a later job
 * makes a new connection first.
 */
static void
s_job_run(struct job *j, struct store *st, uint64_t *dead_epoch)
{
	struct timespec received;

	if (dead_epoch != NULL) {
		if (j->epoch <= *dead_epoch) {
			j->op = "skipped";
			snprintf(j->err, sizeof(j->err), "database lost");
			j->status = JOB_DOWN;
			return;
		}
		if (store_broken(st) && store_reconnect(st) == -1) {
			s_job_fail(j, st, "reconnect");
			j->status = JOB_DOWN;
			*dead_epoch = j->epoch;
			return;
		}
	}
	switch (j->kind) {
	case JOB_BATCH:
		s_job_batch(j, st);
		break;
	case JOB_GAP:
		s_realtime(&received);
		if (store_gap(st, j->agent_id, j->first, j->last, j->reason,
			&received, &j->committed) == -1)
			s_job_fail(j, st, "gap");
		break;
	case JOB_WATERMARK:
		if (store_agent_committed(st, j->agent_id, &j->committed) == -1)
			s_job_fail(j, st, "agent_committed");
		break;
	}
	if (dead_epoch != NULL && j->status == JOB_DOWN)
		*dead_epoch = j->epoch;
}

/* What came of a job, on the main thread: counters, then the Ack. */
static void
s_job_done(struct ingest *ing, struct job *j)
{
	struct agent *a = zhashx_lookup(ing->agents, j->key);

	/* Forgotten or refused since: its next message starts over. */
	if (a != NULL && a->serial != j->serial)
		a = NULL;
	if (a != NULL && a->inflight > 0)
		a->inflight--;
	if (a != NULL)
		a->inflight_results -= j->count < a->inflight_results
					   ? j->count
					   : a->inflight_results;
	ing->refused[INGEST_REFUSE_BAD_RESULT] += j->rejected;
	if (j->stored > 0) {
		ing->results_stored += j->stored;
		ing->batches++;
	}
	if (j->status != JOB_OK) {
		s_db_failed(ing, j->op, j->key, j->err, j->status == JOB_DOWN,
		    j->epoch);
		/*
		 * Not acknowledged.  Kept, the results would be retried at
		 * every tick; dropped, the agent resends them after its ack
		 * timeout.
		 */
		if (j->status == JOB_DOWN)
			ing->refused[INGEST_REFUSE_DB_DOWN] += j->n;
		else if (j->n > 0)
			log_warnx("batch dropped unacknowledged key=%s n=%zu",
			    j->key, j->n);
		return;
	}
	if (a == NULL) {
		log_debug("no ack for an agent gone key=%s committed=%" PRIu64,
		    j->key, j->committed);
		return;
	}
	if (j->rejected > 0)
		log_info("batch acknowledged after rejections key=%s", j->key);
	s_send_ack(ing, a, j->committed);
}

/*
 * Hands over the jobs the writer finished, in order.  wait: block until
 * at least one is there (only when some are in flight).
 */
static void
s_reap(struct ingest *ing, int wait)
{
	struct job *list;

	if (ing->wstore == NULL)
		return;
	pthread_mutex_lock(&ing->lock);
	while (wait && ing->done == NULL && ing->inflight > 0)
		pthread_cond_wait(&ing->done_cond, &ing->lock);
	list = ing->done;
	ing->done = ing->done_tail = NULL;
	pthread_mutex_unlock(&ing->lock);
	while (list != NULL) {
		struct job *j = list;

		list = j->next;
		ing->inflight--;
		s_job_done(ing, j);
		s_job_free(j);
	}
}

/* Empties the wakeup pipe, then reaps: no wakeup is lost in between. */
static void
s_reap_woken(struct ingest *ing)
{
	char buf[64];

	if (ing->wstore == NULL)
		return;
	while (read(ing->pipe_rd, buf, sizeof(buf)) > 0)
		continue;
	s_reap(ing, 0);
}

/* Until every job made has been handled. */
static void
s_settle(struct ingest *ing)
{
	while (ing->wstore != NULL && ing->inflight > 0)
		s_reap(ing, 1);
}

/*
 * Room for one more job in flight (INGEST_INFLIGHT_MAX): handles finished
 * ones, waiting when there are none.  -1 when the database is lost, which
 * handling them may have found.
 */
static int
s_slot(struct ingest *ing)
{
	while (ing->wstore != NULL && ing->inflight >= INGEST_INFLIGHT_MAX)
		s_reap(ing, 1);
	return ing->db_down ? -1 : 0;
}

static struct job *
s_job_new(struct ingest *ing, const struct agent *a, enum job_kind kind)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		log_warnx("out of memory; write dropped key=%s", a->key);
		return NULL;
	}
	j->kind = kind;
	j->epoch = ing->epoch;
	j->serial = a->serial;
	snprintf(j->key, sizeof(j->key), "%s", a->key);
	snprintf(j->name, sizeof(j->name), "%s", a->name);
	j->agent_id = a->id;
	return j;
}

/* Runs j inline, or queues it for the writer; j is the engine's now. */
static void
s_submit(struct ingest *ing, struct agent *a, struct job *j)
{
	a->inflight++;
	ing->inflight++;
	if (ing->wstore == NULL) {
		s_job_run(j, ing->store, NULL);
		ing->inflight--;
		s_job_done(ing, j);
		s_job_free(j);
		return;
	}
	pthread_mutex_lock(&ing->lock);
	if (ing->todo_tail != NULL)
		ing->todo_tail->next = j;
	else
		ing->todo = j;
	ing->todo_tail = j;
	pthread_cond_signal(&ing->todo_cond);
	pthread_mutex_unlock(&ing->lock);
}

/*
 * Hands the agent's queue to a job: written in one transaction, then
 * acknowledged.  -1 when it was dropped instead.
 */
static int
s_flush(struct ingest *ing, struct agent *a)
{
	struct job *j;

	if (a->n == 0 || ing->db_down)
		return 0;
	/* Losing the database on the way drops the queue. */
	if (s_slot(ing) == -1 || a->n == 0)
		return -1;
	if ((j = s_job_new(ing, a, JOB_BATCH)) == NULL) {
		s_queue_clear(a);
		return -1;
	}
	j->msgs = a->queue;
	j->n = j->count = a->n;
	a->inflight_results += a->n;
	a->queue = NULL;
	a->n = a->cap = 0;
	a->queued_bytes = 0;
	a->first_queued_ms = 0;
	s_submit(ing, a, j);
	return 0;
}

/* The watermark from the database, acknowledged; 0 or -1. */
static int
s_ack_current(struct ingest *ing, struct agent *a)
{
	struct job *j;

	if (s_slot(ing) == -1)
		return -1;
	if ((j = s_job_new(ing, a, JOB_WATERMARK)) == NULL)
		return -1;
	s_submit(ing, a, j);
	return ing->db_down ? -1 : 0;
}

/* --- the writer thread -------------------------------------------------- */

static void *
s_writer_main(void *arg)
{
	struct ingest *ing = arg;
	uint64_t dead_epoch = 0;

	pthread_mutex_lock(&ing->lock);
	for (;;) {
		struct job *j;
		int was_empty;

		while (ing->todo == NULL && !ing->stop)
			pthread_cond_wait(&ing->todo_cond, &ing->lock);
		if (ing->stop)
			break;
		j = ing->todo;
		if ((ing->todo = j->next) == NULL)
			ing->todo_tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&ing->lock);

		s_job_run(j, ing->wstore, &dead_epoch);

		pthread_mutex_lock(&ing->lock);
		was_empty = ing->done == NULL;
		if (ing->done_tail != NULL)
			ing->done_tail->next = j;
		else
			ing->done = j;
		ing->done_tail = j;
		pthread_cond_signal(&ing->done_cond);
		/* Full means a wakeup is waiting already. */
		if (was_empty && write(ing->pipe_wr, "", 1) == -1 &&
		    errno != EAGAIN)
			log_warn("writer wakeup");
	}
	pthread_mutex_unlock(&ing->lock);
	return NULL;
}

int
ingest_start_writer(struct ingest *ing, struct store *writer)
{
	sigset_t set, old;
	int fds[2], rc;

	if (ing->wstore != NULL || writer == NULL || ing->inflight > 0)
		return -1;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	if (pthread_mutex_init(&ing->lock, NULL) != 0)
		goto fail_pipe;
	if (pthread_cond_init(&ing->todo_cond, NULL) != 0)
		goto fail_lock;
	if (pthread_cond_init(&ing->done_cond, NULL) != 0)
		goto fail_todo;
	ing->pipe_rd = fds[0];
	ing->pipe_wr = fds[1];
	ing->stop = 0;
	ing->wstore = writer;
	/* Signals are the main thread's: its poll must see them. */
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGABRT);
	sigdelset(&set, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	rc = pthread_create(&ing->thread, NULL, s_writer_main, ing);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		return 0;
	ing->wstore = NULL;
	pthread_cond_destroy(&ing->done_cond);
fail_todo:
	pthread_cond_destroy(&ing->todo_cond);
fail_lock:
	pthread_mutex_destroy(&ing->lock);
fail_pipe:
	close(fds[0]);
	close(fds[1]);
	return -1;
}

int
ingest_fd(const struct ingest *ing)
{
	return ing->wstore != NULL ? ing->pipe_rd : -1;
}

void
ingest_settle(struct ingest *ing, int64_t now_ms)
{
	ing->now_ms = now_ms;
	s_settle(ing);
}

/* Stops the writer; what it had not started is dropped, not written. */
static void
s_writer_stop(struct ingest *ing)
{
	struct job *lists[2];

	if (ing->wstore == NULL)
		return;
	pthread_mutex_lock(&ing->lock);
	ing->stop = 1;
	pthread_cond_signal(&ing->todo_cond);
	pthread_mutex_unlock(&ing->lock);
	pthread_join(ing->thread, NULL);
	lists[0] = ing->todo;
	lists[1] = ing->done;
	for (int i = 0; i < 2; i++)
		while (lists[i] != NULL) {
			struct job *j = lists[i];
			lists[i] = j->next;
			s_job_free(j);
		}
	ing->todo = ing->todo_tail = ing->done = ing->done_tail = NULL;
	ing->inflight = 0;
	pthread_cond_destroy(&ing->done_cond);
	pthread_cond_destroy(&ing->todo_cond);
	pthread_mutex_destroy(&ing->lock);
	close(ing->pipe_rd);
	close(ing->pipe_wr);
	ing->wstore = NULL;
}

/* --- the task set ------------------------------------------------------- */

static int
s_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * FNV-1a over the interval and the sorted names: every collector sharing
 * the database computes the same version for the same set.
 */
static uint64_t
s_version(unsigned interval_s, char *const *names, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	char num[16];

	snprintf(num, sizeof(num), "%u\n", interval_s);
	for (const char *p = num; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (size_t i = 0; i < n; i++) {
		for (const char *p = names[i]; *p != '\0'; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		h = (h ^ '\n') * 1099511628211ULL;
	}
	return h == 0 ? 1 : h; /* 0 would read as "no version" */
}

/* Encodes the task set for the current domains; pushes it when new. */
static void
s_tasks_update(struct ingest *ing)
{
	uint64_t version =
	    s_version(ing->cfg.interval_s, ing->domains, ing->n_domains);
	unsigned char *buf;
	size_t len;

	if (ing->have_domains && version == ing->tasks_version)
		return;
	if (wire_collector_encode_tasks(version, ing->cfg.interval_s,
		ing->domains, ing->n_domains, &buf, &len) == -1) {
		log_warnx(
		    "cannot encode the task set domains=%zu", ing->n_domains);
		return;
	}
	free(ing->tasks_buf);
	ing->tasks_buf = buf;
	ing->tasks_len = len;
	ing->tasks_version = version;
	ing->have_domains = 1;
	log_warnx("tasks version=%016" PRIx64 " domains=%zu interval=%u",
	    version, ing->n_domains, ing->cfg.interval_s);
	for (void *p = zhashx_first(ing->agents); p != NULL;
	     p = zhashx_next(ing->agents)) {
		struct agent *a = p;
		if (ing->now_ms - a->last_seen_ms <= INGEST_ACTIVE_MS)
			s_send_tasks(ing, a);
	}
}

static void
s_poll_domains(struct ingest *ing)
{
	struct store_domain *list;
	size_t n, kept = 0;
	char **names;

	if (store_domain_list(ing->store, 0, &list, &n) == -1) {
		s_store_failed(ing, "domain_list", NULL);
		return;
	}
	if ((names = calloc(n > 0 ? n : 1, sizeof(*names))) == NULL) {
		store_domain_list_free(list, n);
		return;
	}
	for (size_t i = 0; i < n && kept < WIRE_TASKS_MAX; i++) {
		/* The wire refuses a task set with one bad name in it. */
		if (!wire_host_valid(list[i].name)) {
			log_warnx("domain skipped name=\"%s\" reason=\"not a "
				  "host name\"",
			    list[i].name);
			continue;
		}
		if ((names[kept] = strdup(list[i].name)) == NULL)
			break;
		kept++;
	}
	if (n > WIRE_TASKS_MAX)
		log_warnx("domains=%zu; only the first %d are probed", n,
		    WIRE_TASKS_MAX);
	store_domain_list_free(list, n);
	qsort(names, kept, sizeof(*names), s_strcmp);
	s_domains_free(ing);
	ing->domains = names;
	ing->n_domains = kept;
	s_tasks_update(ing);
}

void
ingest_set_config(struct ingest *ing, const struct ingest_config *cfg)
{
	int interval_changed = cfg->interval_s != ing->cfg.interval_s;

	ing->cfg = *cfg;
	if (interval_changed && ing->have_domains)
		s_tasks_update(ing);
}

/* --- receiving ---------------------------------------------------------- */

static enum ingest_refusal
s_classify(const char *err)
{
	if (strncmp(err, "empty", 5) == 0)
		return INGEST_REFUSE_EMPTY;
	if (strncmp(err, "oversized", 9) == 0)
		return INGEST_REFUSE_OVERSIZED;
	if (strcmp(err, "malformed protobuf") == 0)
		return INGEST_REFUSE_MALFORMED;
	if (strcmp(err, "message without known body") == 0)
		return INGEST_REFUSE_UNKNOWN_BODY;
	return INGEST_REFUSE_INVALID;
}

static char *
s_dup_clean(const char *s)
{
	return wire_utf8_clean(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* The agent of key, created on its first message to this process. */
static struct agent *
s_agent(struct ingest *ing, const struct ingest_peer *peer,
    const struct keys_agent *allowed)
{
	struct agent *a = zhashx_lookup(ing->agents, peer->key);
	const char *name = peer->name, *region = peer->region;
	char *n, *r;

	/* The certificate file is the authority; ZAP copied it at handshake. */
	if (allowed != NULL) {
		name = allowed->name;
		region = allowed->region;
	}
	if ((n = s_dup_clean(name)) == NULL ||
	    (r = s_dup_clean(region)) == NULL) {
		free(n);
		return NULL;
	}
	if (a == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL) {
			free(n);
			free(r);
			return NULL;
		}
		snprintf(a->key, sizeof(a->key), "%s", peer->key);
		a->serial = ++ing->next_serial;
		zhashx_insert(ing->agents, a->key, a);
	}
	if (a->name == NULL || strcmp(a->name, n) != 0 ||
	    strcmp(a->region, r) != 0)
		a->id = 0; /* upsert again so that the row follows the cert */
	free(a->name);
	free(a->region);
	a->name = n;
	a->region = r;
	if (a->rid_len != peer->rid_len ||
	    memcmp(a->rid, peer->rid, peer->rid_len) != 0) {
		if (a->rid_len != 0)
			log_info("agent moved key=%s name=%s", a->key, a->name);
		memcpy(a->rid, peer->rid, peer->rid_len);
		a->rid_len = peer->rid_len;
		a->tasks_sent = 0; /* a new connection knows no task set */
	}
	a->last_seen_ms = ing->now_ms;
	return a;
}

static void
s_on_hello(struct ingest *ing, struct agent *a, const Mtastswatch__V1__Hello *h,
    int upserted)
{
	char version[64], build[64];

	log_warnx("agent hello key=%s name=%s region=%s version=\"%s\" "
		  "build=\"%s\" proto_minor=%" PRIu32 " spool=%" PRIu64
		  "..%" PRIu64,
	    a->key, a->name, a->region,
	    s_clean(version, sizeof(version), h->version),
	    s_clean(build, sizeof(build), h->build), h->proto_minor,
	    h->spool_first, h->spool_last);
	/* Last seen moves on every Hello even for an agent known already. */
	if (!upserted && store_agent_upsert(ing->store, a->key, a->name,
			     a->region, &a->id) == -1) {
		s_store_failed(ing, "agent_upsert", a);
		return;
	}
	/*
	 * A Hello starts a connection that knows no task set, whatever the
	 * routing id.  What came before the Hello is written first, and the
	 * flush's Ack (the watermark just read back from the database) is
	 * then the answer to the Hello.
	 */
	a->tasks_sent = 0;
	if (a->n > 0)
		(void)s_flush(ing, a);
	else
		(void)s_ack_current(ing, a);
}

static void
s_on_heartbeat(struct ingest *ing, struct agent *a,
    const Mtastswatch__V1__Heartbeat *hb, int upserted)
{
	log_debug("heartbeat key=%s name=%s spool=%" PRIu64 "..%" PRIu64
		  " in_flight=%" PRIu32,
	    a->key, a->name, hb->spool_first, hb->spool_last, hb->in_flight);
	if (!upserted && store_agent_upsert(ing->store, a->key, a->name,
			     a->region, &a->id) == -1) {
		s_store_failed(ing, "agent_upsert", a);
		return;
	}
	/* Either acknowledges, with the task set if it changed. */
	if (a->n > 0)
		(void)s_flush(ing, a);
	else
		(void)s_ack_current(ing, a);
}

static void
s_on_gap(struct ingest *ing, struct agent *a, const Mtastswatch__V1__Gap *g)
{
	struct job *j;
	char reason[DETAIL_MAX];

	log_warnx("agent gap key=%s name=%s first=%" PRIu64 " last=%" PRIu64
		  " reason=\"%s\"",
	    a->key, a->name, g->first, g->last,
	    s_clean(reason, sizeof(reason), g->reason));
	/*
	 * Keep the agent's order: results sent before the gap go first, and
	 * the gap is written after them on the same queue of jobs.
	 */
	if (a->n > 0 && s_flush(ing, a) == -1)
		return;
	if (g->last > INT64_MAX) {
		ingest_refuse(ing, NULL, INGEST_REFUSE_INVALID,
		    "gap beyond 2^63", ing->now_ms);
		return;
	}
	if (s_slot(ing) == -1 || (j = s_job_new(ing, a, JOB_GAP)) == NULL)
		return;
	j->first = g->first;
	j->last = g->last;
	snprintf(j->reason, sizeof(j->reason), "%s",
	    reason[0] != '\0' ? reason : "agent spool");
	s_submit(ing, a, j);
}

static int
s_on_result(struct ingest *ing, struct agent *a,
    Mtastswatch__V1__AgentMessage *msg, size_t len)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void *q = realloc(a->queue, cap * sizeof(*a->queue));
		if (q == NULL)
			return -1;
		a->queue = q;
		a->cap = cap;
	}
	a->queue[a->n++] = msg;
	a->queued_bytes += len;
	if (a->n == 1)
		a->first_queued_ms = ing->now_ms;
	/*
	 * Also when the agent has used its whole credit and none of its
	 * results are being written: it sends nothing more until an Ack that
	 * only this write can bring, so waiting for INGEST_FLUSH_MS would
	 * only idle (with the default credit below the default batch, every
	 * batch would).  While some are being written, their Ack frees the
	 * credit and the batch goes on filling.
	 */
	if (a->n >= ing->cfg.batch || a->queued_bytes >= INGEST_QUEUE_BYTES ||
	    (a->inflight_results == 0 && a->n >= ing->cfg.credit))
		(void)s_flush(ing, a);
	return 0;
}

void
ingest_receive(struct ingest *ing, const struct ingest_peer *peer,
    const void *buf, size_t len, int64_t now_ms)
{
	Mtastswatch__V1__AgentMessage *msg;
	const struct keys_agent *allowed = NULL;
	struct agent *a;
	char err[DETAIL_MAX];
	int upserted = 0;

	ing->now_ms = now_ms;
	/* Acks of what committed meanwhile go out first, in order. */
	s_reap(ing, 0);
	/* ZAP lets no unauthenticated peer through; guard all the same. */
	if (peer->key == NULL || strlen(peer->key) != INGEST_KEY_LEN) {
		s_refuse_reply(
		    ing, peer, INGEST_REFUSE_UNAUTHENTICATED, "no CURVE key");
		return;
	}
	if (ing->allow != NULL &&
	    (allowed = keys_allow_lookup(ing->allow, peer->key)) == NULL) {
		s_refuse_reply(ing, peer, INGEST_REFUSE_UNKNOWN_AGENT,
		    "key not in allow_dir");
		zhashx_delete(ing->agents, peer->key);
		return;
	}
	if ((msg = wire_agent_decode(buf, len, err, sizeof(err))) == NULL) {
		s_refuse_reply(ing, peer, s_classify(err), err);
		return;
	}
	if ((a = s_agent(ing, peer, allowed)) == NULL) {
		log_warnx("out of memory; message dropped key=%s", peer->key);
		wire_agent_free(&msg);
		return;
	}
	if (ing->db_down) {
		/* No answer: the agent resends after its ack timeout. */
		ingest_refuse(ing, peer, INGEST_REFUSE_DB_DOWN,
		    "database unreachable", now_ms);
		wire_agent_free(&msg);
		return;
	}
	if (a->id == 0) {
		if (s_agent_id(ing, a) == -1) {
			wire_agent_free(&msg);
			return;
		}
		upserted = 1;
	}
	switch (msg->body_case) {
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HELLO:
		s_on_hello(ing, a, msg->hello, upserted);
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HEARTBEAT:
		s_on_heartbeat(ing, a, msg->heartbeat, upserted);
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_GAP:
		s_on_gap(ing, a, msg->gap);
		break;
	case MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT:
		if (s_on_result(ing, a, msg, len) == -1) {
			log_warnx(
			    "out of memory; result dropped key=%s", a->key);
			break;
		}
		return; /* the queue owns msg */
	default:
		/* wire_agent_decode lets no other case through. */
		ingest_refuse(ing, peer, INGEST_REFUSE_UNKNOWN_BODY,
		    "message without known body", now_ms);
		break;
	}
	wire_agent_free(&msg);
}

/* --- timers ------------------------------------------------------------- */

static void
s_reconnect(struct ingest *ing)
{
	struct agent **list;
	size_t n;

	if (store_reconnect(ing->store) == -1) {
		char err[DETAIL_MAX];

		ing->backoff_ms *= 2;
		if (ing->backoff_ms > INGEST_BACKOFF_MAX_MS)
			ing->backoff_ms = INGEST_BACKOFF_MAX_MS;
		ing->next_reconnect_ms = ing->now_ms + ing->backoff_ms;
		log_warnx(
		    "database reconnect failed error=\"%s\" retry_ms=%" PRId64,
		    s_clean(err, sizeof(err), store_error(ing->store)),
		    ing->backoff_ms);
		return;
	}
	ing->db_down = 0;
	log_warnx("database reconnected");
	/*
	 * Tell the agents seen lately where they stand, so that they resend
	 * what was dropped without waiting for their ack timeout.
	 */
	list = s_agents(ing, &n);
	for (size_t i = 0; i < n; i++) {
		struct agent *a = list[i];
		if (a->id == 0 ||
		    ing->now_ms - a->last_seen_ms > INGEST_ACTIVE_MS)
			continue;
		if (s_ack_current(ing, a) == -1)
			break;
	}
	free(list);
	ing->next_poll_ms = ing->now_ms;
}

static void
s_maintenance(struct ingest *ing)
{
	time_t now = time(NULL);
	int days = 0;

	ing->next_maint_ms = ing->now_ms + INGEST_MAINTENANCE_MS;
	if (store_ensure_partitions(ing->store, now) == -1) {
		s_store_failed(ing, "ensure_partitions", NULL);
		ing->next_maint_ms = ing->now_ms + MAINT_RETRY_MS;
		return;
	}
	if (ing->cfg.retention_days == 0)
		return;
	if (store_drop_partitions_before(ing->store,
		now - (time_t)ing->cfg.retention_days * 86400, &days) == -1) {
		s_store_failed(ing, "drop_partitions", NULL);
		ing->next_maint_ms = ing->now_ms + MAINT_RETRY_MS;
		return;
	}
	if (days > 0)
		log_warnx("retention dropped_days=%d retention_days=%u", days,
		    ing->cfg.retention_days);
}

/* Agents long silent with nothing queued are forgotten; memory only. */
static void
s_forget_idle(struct ingest *ing)
{
	zlistx_t *keys = zlistx_new();

	if (keys == NULL)
		return;
	for (void *p = zhashx_first(ing->agents); p != NULL;
	     p = zhashx_next(ing->agents)) {
		struct agent *a = p;
		if (a->n == 0 && a->inflight == 0 &&
		    ing->now_ms - a->last_seen_ms > INGEST_FORGET_MS)
			zlistx_add_end(keys, a->key);
	}
	/* The key strings live in the agents until each is deleted. */
	for (void *k = zlistx_first(keys); k != NULL; k = zlistx_next(keys)) {
		char key[INGEST_KEY_LEN + 1];
		snprintf(key, sizeof(key), "%s", (const char *)k);
		zhashx_delete(ing->agents, key);
	}
	zlistx_destroy(&keys);
}

void
ingest_tick(struct ingest *ing, int64_t now_ms)
{
	struct agent **list;
	size_t n;

	ing->now_ms = now_ms;
	s_reap_woken(ing);
	if (ing->db_down) {
		if (now_ms >= ing->next_reconnect_ms)
			s_reconnect(ing);
		if (ing->db_down)
			return;
	}
	list = s_agents(ing, &n);
	for (size_t i = 0; i < n && !ing->db_down; i++) {
		struct agent *a = list[i];
		if (a->n > 0 && now_ms - a->first_queued_ms >= INGEST_FLUSH_MS)
			(void)s_flush(ing, a);
	}
	free(list);
	if (ing->db_down)
		return;
	if (now_ms >= ing->next_maint_ms)
		s_maintenance(ing);
	if (!ing->db_down && now_ms >= ing->next_poll_ms) {
		ing->next_poll_ms = now_ms + INGEST_POLL_MS;
		/* A cheap query that also notices a lost database when idle. */
		s_poll_domains(ing);
		s_forget_idle(ing);
	}
}

int
ingest_timeout(const struct ingest *cing, int64_t now_ms)
{
	/* zhashx cursors are not const; the walk changes nothing else. */
	struct ingest *ing = (struct ingest *)cing;
	int64_t next = now_ms + 1000;

	if (ing->db_down) {
		if (ing->next_reconnect_ms < next)
			next = ing->next_reconnect_ms;
	} else {
		if (ing->next_poll_ms < next)
			next = ing->next_poll_ms;
		if (ing->next_maint_ms < next)
			next = ing->next_maint_ms;
		for (void *p = zhashx_first(ing->agents); p != NULL;
		     p = zhashx_next(ing->agents)) {
			const struct agent *a = p;
			if (a->n > 0 &&
			    a->first_queued_ms + INGEST_FLUSH_MS < next)
				next = a->first_queued_ms + INGEST_FLUSH_MS;
		}
	}
	return next <= now_ms ? 0 : (int)(next - now_ms);
}

void
ingest_flush_all(struct ingest *ing, int64_t now_ms)
{
	struct agent **list;
	size_t n;

	ing->now_ms = now_ms;
	s_reap_woken(ing);
	list = s_agents(ing, &n);
	for (size_t i = 0; i < n && !ing->db_down; i++)
		(void)s_flush(ing, list[i]);
	free(list);
	/* Each Ack after its COMMIT, before the daemon goes. */
	s_settle(ing);
}
