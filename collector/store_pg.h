/* store_pg.h -- the collector's PostgreSQL storage (schema: deploy/sql). */
#ifndef MTASTS_STORE_PG_H
#define MTASTS_STORE_PG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mtastswatch/v1/wire.pb-c.h"

/* Days of partitions made ahead of today by store_ensure_partitions. */
#define STORE_PARTITION_DAYS_AHEAD 3
/* Certificates a store remembers having written (store_write_batch). */
#define STORE_CERT_CACHE 16384

struct store;

/*
 * Connects with the libpq conninfo and applies the pending migrations of
 * migrations_dir (files NNN_name.sql, in NNN order), each in its own
 * transaction under a database-wide advisory lock, so that collectors
 * starting together apply each exactly once.  Then prepares the
 * statements and makes today's partitions.  Calls malloc; returns the
 * store, closed with store_close, or NULL with a message in err.
 */
struct store *store_open(
    const char *conninfo, const char *migrations_dir, char *err, size_t errlen);
/* Disconnects, frees *s and sets it to NULL.  NULL and *s == NULL are fine. */
void store_close(struct store **s);

/* The last error message; owned by s, valid until the next call on s. */
const char *store_error(const struct store *s);
/*
 * After store_write_batch returned -1: the index of the result that caused
 * it (invalid or refused by the database; a caller may reject that agent),
 * or -1 when the failure was not about one result (connection, deadlock).
 */
long store_bad_index(const struct store *s);

/*
 * Connection handling.  Once the connection is lost every call returns -1
 * until store_reconnect succeeds; the caller retries that with backoff.
 * store_ping runs a trivial query.  store_reconnect makes a new connection
 * and prepares the statements again; it does not run migrations.
 */
int store_ping(struct store *s);
int store_reconnect(struct store *s);
/* 1 while the connection is known to be lost. */
int store_broken(const struct store *s);

/*
 * The agent with this Z85 public key, created when new; name and region
 * are updated and last_seen set to now.  0 with *agent_id set, or -1.
 */
int store_agent_upsert(struct store *s, const char *public_key,
    const char *name, const char *region, int64_t *agent_id);
/*
 * The agent's committed watermark: the highest seq such that every seq
 * from 1 up to it is stored or covered by a gap (0 when none).  This is
 * what Ack.committed_seq carries; a result above a hole is stored but not
 * counted until the hole is filled or declared lost.  0 or -1.
 */
int store_agent_committed(struct store *s, int64_t agent_id, uint64_t *seq);

/*
 * Stores the n results of agent_id, received at *received (collector
 * clock; picks the day partition), in one transaction.  Results already
 * stored (or at or below the watermark) are skipped and still count as
 * committed; certificates already known are kept as they are.  Results are
 * borrowed.  On success returns 0 with *committed_seq set to the new
 * watermark (see store_agent_committed); on any error rolls everything
 * back and returns -1, so that the caller does not acknowledge.  A result
 * is invalid (store_bad_index names it) when its seq is 0, its seq or
 * round is above INT64_MAX, its domain is empty, a certificate DER does
 * not parse, a chain names a hash not among the result's certificates, or
 * the database refuses a value (text that is not UTF-8, for instance).
 *
 * A batch is written with one COPY per table; when that fails for a reason
 * that may be one result's, the batch is written again one statement per
 * row, which is what names the result.  The last STORE_CERT_CACHE
 * certificates the store committed are neither parsed nor written again.
 */
int store_write_batch(struct store *s, int64_t agent_id,
    Mtastswatch__V1__ProbeResult *const *results, size_t n,
    const struct timespec *received, uint64_t *committed_seq);

/*
 * Records that the agent will never send first..last (1 <= first <= last
 * <= INT64_MAX), adds the count to agents.gaps_total unless this gap was
 * already recorded, and advances the watermark.  0 with *committed_seq set,
 * or -1.
 */
int store_gap(struct store *s, int64_t agent_id, uint64_t first, uint64_t last,
    const char *reason, const struct timespec *received,
    uint64_t *committed_seq);

/*
 * Makes the partitions of today (UTC day of now) and the next
 * STORE_PARTITION_DAYS_AHEAD days; idempotent and safe between collectors.
 * The collector calls it at start and then at least daily.  0 or -1.
 */
int store_ensure_partitions(struct store *s, time_t now);
/*
 * Drops the day partitions that end at or before cutoff, for results and
 * all the tables hanging off them together.  *days (may be NULL) gets the
 * number of days dropped.  0 or -1.
 */
int store_drop_partitions_before(struct store *s, time_t cutoff, int *days);

struct store_domain {
	char *name; /* owned by the list */
	time_t added_at;
	time_t removed_at; /* 0 while active */
};

/*
 * Domain names are stored lower-case without a trailing dot.  add: *added
 * (may be NULL) is 1 when the name was not active before (new, or removed
 * and now back).  remove: *removed is 1 when an active name was removed.
 * 0 or -1.
 */
int store_domain_add(struct store *s, const char *name, int *added);
int store_domain_remove(struct store *s, const char *name, int *removed);
/*
 * The domains in name order, active ones only unless with_removed.  Calls
 * malloc: *list is freed with store_domain_list_free(*list, *n).
 */
int store_domain_list(
    struct store *s, int with_removed, struct store_domain **list, size_t *n);
void store_domain_list_free(struct store_domain *list, size_t n);

#endif
