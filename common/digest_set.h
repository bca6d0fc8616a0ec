/* digest_set.h -- a bounded set of SHA-256 digests, oldest out first. */
#ifndef MTASTS_DIGEST_SET_H
#define MTASTS_DIGEST_SET_H

#include <stddef.h>

#define DIGEST_SET_LEN 32      /* bytes of one digest */
#define DIGEST_SET_MAX 1048576 /* largest max digest_set_new accepts */

/*
 * Remembers up to max digests; adding one more forgets the oldest.  It is
 * a cache: a digest may be forgotten at any time (a lookup gives up after
 * a fixed number of probes, so that digests chosen to collide cost a
 * bounded time and are simply not remembered), never invented.  Not
 * thread-safe: callers that share one hold a lock around every call.
 */
struct digest_set;

/* Calls malloc; free with digest_set_free.  NULL when max is 0, above
 * DIGEST_SET_MAX, or out of memory. */
struct digest_set *digest_set_new(size_t max);
/* Frees *set and sets it to NULL; NULL and *set == NULL are fine. */
void digest_set_free(struct digest_set **set);

/* 1 when d (DIGEST_SET_LEN bytes) is remembered, else 0. */
int digest_set_has(const struct digest_set *set, const unsigned char *d);
/* Remembers d, forgetting the oldest when full; a no-op when present. */
void digest_set_add(struct digest_set *set, const unsigned char *d);
/* Forgets everything. */
void digest_set_clear(struct digest_set *set);
/* How many digests are remembered (at most max). */
size_t digest_set_count(const struct digest_set *set);

#endif
