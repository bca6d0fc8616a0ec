/* analysis.c -- the thread that compares finished rounds across vantages
 * and folds them into incidents. */
#include "analysis.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "compare.h"
#include "errbuf.h"
#include "incident.h"
#include "log.h"
#include "pgconn.h"

struct analysis {
	char *conninfo;
	uint32_t interval_s;
	unsigned quorum;
	uint32_t window_s;
	struct notify *notify;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;     /* under mu */
	int kick;     /* under mu */
	PGconn *conn; /* the thread's only */
};

/*
 * 0 with a usable connection, -1 (logged) when the database is away.  A
 * stop waits for the pass in progress, so every wait of the pass is
 * bounded: connecting, and each statement (a fold queued behind another
 * collector's lock fails and is retried at the next tick).
 */
static int
s_connect(struct analysis *a)
{
	char err[512];

	if (a->conn != NULL && PQstatus(a->conn) == CONNECTION_OK)
		return 0;
	if (a->conn != NULL) {
		PQfinish(a->conn);
		a->conn = NULL;
	}
	a->conn = pgconn_open(a->conninfo, "mtasts-collector-analysis",
	    ANALYSIS_STATEMENT_TIMEOUT_MS, err, sizeof(err));
	if (a->conn != NULL)
		return 0;
	log_warnx("analysis: event=db_unavailable error=\"%s\"", err);
	return -1;
}

static void
s_pass(struct analysis *a)
{
	struct compare_opts co = {0};
	struct incident_opts io = {0};
	size_t n = 0;

	if (s_connect(a) == -1)
		return;
	co.quorum = a->quorum;
	co.window_s = a->window_s;
	if (compare_pending(a->conn, time(NULL), a->interval_s, &co, &n) == -1)
		log_warnx("compare: event=failed error=\"%s\"",
		    PQerrorMessage(a->conn));
	else if (n > 0)
		log_info("compare: event=compared rounds=%zu", n);
	/* Also after a failed comparison: what was compared can be folded. */
	n = 0;
	io.window_s = a->window_s;
	if (incident_pending(a->conn, time(NULL), a->interval_s, &io, &n) == -1)
		log_warnx("incidents: event=failed error=\"%s\"",
		    PQerrorMessage(a->conn));
	else if (n > 0)
		log_info("incidents: event=folded rounds=%zu", n);
	/* Agent health writes events without folding a round: always wake. */
	notify_wake(a->notify);
}

static void *
s_main(void *arg)
{
	struct analysis *a = arg;
	uint32_t every = a->interval_s / 2;
	struct timespec until;

	if (every < ANALYSIS_MIN_EVERY_S)
		every = ANALYSIS_MIN_EVERY_S;
	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		a->kick = 0;
		pthread_mutex_unlock(&a->mu);
		s_pass(a);
		pthread_mutex_lock(&a->mu);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += every;
		while (!a->stop && !a->kick)
			if (pthread_cond_timedwait(&a->cv, &a->mu, &until) ==
			    ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void
s_free(struct analysis *a)
{
	if (a->conn != NULL)
		PQfinish(a->conn);
	free(a->conninfo);
	free(a);
}

struct analysis *
analysis_start(const struct analysis_opts *opts, char *err, size_t errlen)
{
	struct analysis *a;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (opts->conninfo == NULL || opts->interval_s == 0) {
		errbuf_set(err, errlen, "analysis: no conninfo or interval");
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->conninfo = strdup(opts->conninfo)) == NULL) {
		free(a);
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	a->interval_s = opts->interval_s;
	a->quorum = opts->quorum;
	a->window_s = opts->window_s;
	a->notify = opts->notify;
	pthread_mutex_init(&a->mu, NULL);
	/* A monotonic clock, so that setting the time never stalls a pass. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a->thread, NULL, s_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errbuf_set(err, errlen, "analysis thread: %s", strerror(rc));
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		s_free(a);
		return NULL;
	}
	return a;
}

void
analysis_kick(struct analysis *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->kick = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void
analysis_stop(struct analysis **ap)
{
	struct analysis *a;

	if (ap == NULL || (a = *ap) == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	s_free(a);
	*ap = NULL;
}
