/* scheduler.h -- probes every task domain once per round, in a stable window.
 */
#ifndef MTASTS_SCHEDULER_H
#define MTASTS_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/*
 * Round arithmetic (proto/README.md, "Rounds").  Times are Unix seconds on
 * the agent clock; interval_s > 0.  Every vantage computes the same round
 * for the same moment, and each vantage starts its round at the same
 * offset (its jitter) every time, so two vantages probe a domain at most
 * interval/4 apart and always within one round.
 */

/* floor(t / interval_s); times before 1970 count as round 0. */
uint64_t sched_round(int64_t t, uint32_t interval_s);
/* First second of round. */
int64_t sched_round_start(uint64_t round, uint32_t interval_s);
/*
 * This agent's offset into every round, in [0, interval_s / 4) (0 when
 * interval_s < 4): a hash of its public key, so it is the same on every
 * start and different between vantages.
 */
uint32_t sched_jitter(const char *key, uint32_t interval_s);
/* 1 when t lies between round start + jitter and the end of its round. */
int sched_window_open(int64_t t, uint32_t interval_s, uint32_t jitter);
/* The earliest time > t at which a window opens. */
int64_t sched_next_open(int64_t t, uint32_t interval_s, uint32_t jitter);
/*
 * 1 when a domain last started at last_start (-1: never) has not been
 * started yet in the round that holds t.
 */
int sched_due(int64_t last_start, int64_t t, uint32_t interval_s);

/*
 * Starts one probe of domain at time now under interval_s (to compute its
 * round from).  Returns 0 when a probe is running and sched_probe_done()
 * will follow, -1 when it could not start.
 */
typedef int (*sched_start_fn)(
    const char *domain, uint32_t interval_s, void *arg);

struct sched;

/*
 * A scheduler on base that starts at most concurrency probes at once
 * through start.  key (copied) seeds the jitter.  No domains until
 * sched_set_tasks().  Calls malloc; free with sched_free().
 */
struct sched *sched_new(struct event_base *base, const char *key,
    int concurrency, sched_start_fn start, void *arg);
/* Frees *s and NULLs it; running probes are the caller's. NULL is fine. */
void sched_free(struct sched **s);

/*
 * Replaces the whole domain list (strings copied; duplicates merged) and
 * the interval.  Domains kept from the old list remember when they were
 * last started, so none is probed twice in a round; a new domain is probed
 * in the current round if the window is still open.  Logs the change.
 * Returns 0, or -1 when out of memory (the old list stays).
 */
int sched_set_tasks(struct sched *s, uint64_t version, uint32_t interval_s,
    char *const *domains, size_t n);
void sched_set_concurrency(struct sched *s, int concurrency);
/* A probe started through sched_start_fn has finished. */
void sched_probe_done(struct sched *s);
/* Stops starting probes (shutdown). */
void sched_stop(struct sched *s);

#endif
