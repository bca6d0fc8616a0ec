/* analysis.h -- the thread that compares finished rounds across vantages
 * and folds them into incidents. */
#ifndef MTASTS_ANALYSIS_H
#define MTASTS_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "notify.h"

/*
 * compare_pending (compare.h) then incident_pending (incident.h), every
 * half interval (at least every ANALYSIS_MIN_EVERY_S), on a PostgreSQL
 * connection of the thread's own.  A pass over thousands of domains takes
 * seconds; on its own thread it never delays a result's acknowledgement.
 * A failed pass is logged and retried at the next tick, and a lost
 * connection is reopened then.
 */

#define ANALYSIS_MIN_EVERY_S	      5
#define ANALYSIS_STATEMENT_TIMEOUT_MS 120000

struct analysis_opts {
	const char *conninfo; /* copied */
	uint32_t interval_s;  /* the round interval */
	unsigned quorum;      /* 0: compare.h's default */
	uint32_t window_s;    /* propagation window; 0: compare.h's */
	/* Woken after each pass that folded rounds; borrowed, and must
	 * outlive the analysis (stop the analysis first).  May be NULL. */
	struct notify *notify;
};

struct analysis;

/* Starts the thread (every signal blocked in it).  NULL with the reason
 * in err, or the analysis, to stop with analysis_stop. */
struct analysis *analysis_start(
    const struct analysis_opts *opts, char *err, size_t errlen);

/* Asks the thread to stop, waits for the pass in progress to end, closes
 * the connection, frees *a and NULLs it.  NULL is fine. */
void analysis_stop(struct analysis **a);

/* Runs a pass now rather than at the next tick (tests, SIGHUP). */
void analysis_kick(struct analysis *a);

#endif
