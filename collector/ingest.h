/* ingest.h -- the collector's side of the agent protocol (proto/README.md). */
#ifndef MTASTS_INGEST_H
#define MTASTS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "store_pg.h"

/*
 * The protocol engine, without sockets: the daemon hands it each frame
 * with who sent it, and it answers through a send callback.  Everything
 * correctness depends on (watermarks, stored results, gaps) lives in the
 * database; what it keeps in memory (routing ids, queued results, the
 * task set) is rebuilt from the agents and the database after a restart,
 * so several collectors may share one database.
 *
 * Results are queued per agent and written in one transaction when
 * `batch` are queued, when the agent has used its whole `credit` with
 * nothing of it being written (it waits for an Ack then), or
 * INGEST_FLUSH_MS after the first one, then acknowledged.  A result the
 * database refuses is recorded as a gap of one ("rejected: ...") so that
 * the watermark moves past it.  When the
 * database connection is lost the engine stops acknowledging, drops what
 * it has queued (agents resend from their spool) and reconnects with
 * backoff from 1 s to 30 s.
 *
 * Writes (batches, gaps, the watermark an Ack carries) run inline on the
 * caller's thread, or, after ingest_start_writer, on a writer thread with
 * its own connection while the caller goes on decoding: at most
 * INGEST_INFLIGHT_MAX at a time (then the caller waits), one after the
 * other in the order they were made, so an agent's batches commit in its
 * order.  Either way an Ack is sent by the caller's thread, and only once
 * the COMMIT of what it acknowledges has returned.
 */

#define INGEST_FLUSH_MS	      100 /* after the first queued result */
#define INGEST_QUEUE_BYTES    (16u * 1024 * 1024) /* per agent, then flush */
#define INGEST_POLL_MS	      30000		  /* domain list poll */
#define INGEST_ACTIVE_MS      120000 /* agents that get a new task set */
#define INGEST_FORGET_MS      600000 /* idle agents dropped from memory */
#define INGEST_MAINTENANCE_MS (3600 * 1000) /* partitions and retention */
#define INGEST_BACKOFF_MIN_MS 1000
#define INGEST_BACKOFF_MAX_MS 30000
#define INGEST_KEY_LEN	      40 /* Z85 CURVE public key */
#define INGEST_INFLIGHT_MAX   4	 /* writes handed to the writer, unhandled */

struct ingest_config {
	unsigned interval_s;
	unsigned credit;
	unsigned batch;
	unsigned retention_days; /* 0: keep everything */
};

/* Why a message was refused; each has a counter. */
enum ingest_refusal {
	INGEST_REFUSE_EMPTY,	       /* empty frame */
	INGEST_REFUSE_OVERSIZED,       /* over WIRE_MAX */
	INGEST_REFUSE_MALFORMED,       /* not protobuf */
	INGEST_REFUSE_UNKNOWN_BODY,    /* a body this build does not know */
	INGEST_REFUSE_INVALID,	       /* decodes but breaks a wire limit */
	INGEST_REFUSE_FRAMES,	       /* not exactly one payload frame */
	INGEST_REFUSE_UNAUTHENTICATED, /* no CURVE key in the metadata */
	INGEST_REFUSE_UNKNOWN_AGENT,   /* key not (or no longer) allowed */
	INGEST_REFUSE_BAD_RESULT,      /* the database refused a result */
	INGEST_REFUSE_DB_DOWN,	       /* dropped while the database is lost */
	INGEST_REFUSE_COUNT
};

/* Who sent a frame: the routing id and what CURVE and ZAP said. */
struct ingest_peer {
	const void *rid; /* ROUTER routing id */
	size_t rid_len;
	const char *key;    /* "User-Id": Z85 public key, NULL when none */
	const char *name;   /* metadata of the key's certificate, or NULL */
	const char *region; /* likewise */
};

/*
 * Sends one frame to the connection rid.  Must not block; returns 0, or
 * -1 when the peer is gone or its queue is full (the engine only logs it:
 * an agent that misses an Ack resends).
 */
typedef int (*ingest_send_fn)(const void *rid, size_t rid_len,
    const unsigned char *buf, size_t len, void *arg);

struct ingest;

/*
 * The store is borrowed and must outlive the engine.  Calls malloc;
 * returns NULL when out of memory.  Free with ingest_destroy.
 */
struct ingest *ingest_new(struct store *store, const struct ingest_config *cfg,
    ingest_send_fn send, void *send_arg);
/*
 * Frees *ing (queued results are dropped, not written; the writer finishes
 * the write it is in, unacknowledged) and NULLs it.
 */
void ingest_destroy(struct ingest **ing);

/*
 * Moves the writes to a thread of their own, which uses writer (a second
 * connection to the same database, borrowed: it must outlive the engine
 * and nothing else may use it meanwhile).  The thread takes no signals.
 * Call it once, before the first frame.  0, or -1 (nothing changed).
 */
int ingest_start_writer(struct ingest *ing, struct store *writer);
/*
 * With a writer: a descriptor that polls readable when finished writes
 * wait for ingest_tick to acknowledge them (level-triggered until it
 * does).  -1 without.
 */
int ingest_fd(const struct ingest *ing);
/* Blocks until every write handed to the writer is acknowledged or failed. */
void ingest_settle(struct ingest *ing, int64_t now_ms);

/*
 * New settings (SIGHUP).  An interval change makes a new task set, pushed
 * to the agents seen lately.
 */
void ingest_set_config(struct ingest *ing, const struct ingest_config *cfg);
/*
 * The allowlist a key must be in (borrowed; NULL: no check beyond ZAP's).
 * Checked on every message, so an agent removed from allow_dir is refused
 * after a reload even on a connection ZAP accepted before.
 */
void ingest_set_allow(struct ingest *ing, const struct keys_allow *allow);

/*
 * One frame from peer at now_ms (monotonic clock).  Never fails: what is
 * wrong with the frame is counted, logged and answered with a Reject.
 */
void ingest_receive(struct ingest *ing, const struct ingest_peer *peer,
    const void *buf, size_t len, int64_t now_ms);
/* Counts and logs a refusal the daemon found before decoding. */
void ingest_refuse(struct ingest *ing, const struct ingest_peer *peer,
    enum ingest_refusal why, const char *detail, int64_t now_ms);

/*
 * Timed work: the Acks of finished writes, due batches, database
 * reconnects, the domain poll, partitions and retention.  Call it at
 * least when ingest_timeout says and when ingest_fd polls readable.
 */
void ingest_tick(struct ingest *ing, int64_t now_ms);
/* Milliseconds until ingest_tick has work, at most 1000. */
int ingest_timeout(const struct ingest *ing, int64_t now_ms);
/*
 * Writes and acknowledges every queued result, and waits for the writes
 * in flight (at shutdown).
 */
void ingest_flush_all(struct ingest *ing, int64_t now_ms);

/* 1 while the database connection is lost. */
int ingest_db_down(const struct ingest *ing);
uint64_t ingest_refusals(const struct ingest *ing, enum ingest_refusal why);
const char *ingest_refusal_name(enum ingest_refusal why);
/* The counters, copied out (for /metrics: see metrics.h). */
struct ingest_counters {
	uint64_t results_stored;
	uint64_t batches;
	uint64_t refused[INGEST_REFUSE_COUNT];
	size_t agents_connected;
	int db_down;
};

void ingest_counters_get(const struct ingest *ing, struct ingest_counters *out);

/* Logs every counter in one line. */
void ingest_log_stats(const struct ingest *ing);

#endif
