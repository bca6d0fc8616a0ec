/* scheduler.c -- rounds: every task domain probed once per interval window. */
#include "scheduler.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Longest sleep: a wall clock that jumps is noticed within this. */
#define SCHED_MAX_SLEEP_MS 60000

struct sched_domain {
	char *name;
	int64_t last_start; /* Unix seconds, -1 never */
};

struct sched {
	struct event_base *base;
	struct event *timer;
	char *key;
	sched_start_fn start;
	void *arg;
	int concurrency;
	int running;
	int stopped;

	uint64_t version;
	uint32_t interval_s;
	uint32_t jitter;
	struct sched_domain *domains; /* sorted by name */
	size_t n;

	/* Domains still to start in round cur_round, in order. */
	size_t *queue;
	size_t qhead, qlen;
	uint64_t cur_round;
	int have_round;
};

uint64_t
sched_round(int64_t t, uint32_t interval_s)
{
	if (t < 0 || interval_s == 0)
		return 0;
	return (uint64_t)t / interval_s;
}

int64_t
sched_round_start(uint64_t round, uint32_t interval_s)
{
	return (int64_t)(round * interval_s);
}

uint32_t
sched_jitter(const char *key, uint32_t interval_s)
{
	/* FNV-1a: stable across builds and hosts, which a seeded hash is not.
	 */
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t span = interval_s / 4;

	if (span == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h % span);
}

int
sched_window_open(int64_t t, uint32_t interval_s, uint32_t jitter)
{
	int64_t start =
	    sched_round_start(sched_round(t, interval_s), interval_s);

	return t >= start + jitter;
}

int64_t
sched_next_open(int64_t t, uint32_t interval_s, uint32_t jitter)
{
	uint64_t r = sched_round(t, interval_s);
	int64_t open = sched_round_start(r, interval_s) + jitter;

	if (open > t)
		return open;
	return sched_round_start(r + 1, interval_s) + jitter;
}

int
sched_due(int64_t last_start, int64_t t, uint32_t interval_s)
{
	if (last_start < 0)
		return 1;
	return sched_round(last_start, interval_s) < sched_round(t, interval_s);
}

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_arm(struct sched *s, int64_t at_s, int64_t now_ms)
{
	int64_t ms = at_s * 1000 - now_ms;
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	if (ms > SCHED_MAX_SLEEP_MS)
		ms = SCHED_MAX_SLEEP_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (evtimer_add(s->timer, &tv) == -1)
		log_warnx("sched: event=timer_failed");
}

/* Queues every domain not yet started in the round of now. */
static void
s_queue_round(struct sched *s, int64_t now)
{
	s->qhead = s->qlen = 0;
	for (size_t i = 0; i < s->n; i++)
		if (sched_due(s->domains[i].last_start, now, s->interval_s))
			s->queue[s->qlen++] = i;
}

static void
s_run(struct sched *s)
{
	int64_t now_ms = s_now_ms(), now = now_ms / 1000;
	uint64_t r;

	if (s->stopped || s->interval_s == 0 || s->n == 0)
		return;
	if (!sched_window_open(now, s->interval_s, s->jitter)) {
		s_arm(
		    s, sched_next_open(now, s->interval_s, s->jitter), now_ms);
		return;
	}
	r = sched_round(now, s->interval_s);
	if (!s->have_round || r != s->cur_round) {
		/*
		 * What did not start in its own round is dropped, not carried
		 * over: its round number would be wrong and the next round
		 * probes it anyway.
		 */
		if (s->have_round && s->qhead < s->qlen)
			log_warnx("sched: event=round_overrun round=%" PRIu64
				  " skipped=%zu concurrency=%d",
			    s->cur_round, s->qlen - s->qhead, s->concurrency);
		s_queue_round(s, now);
		s->cur_round = r;
		s->have_round = 1;
		log_info("sched: event=round round=%" PRIu64 " domains=%zu", r,
		    s->qlen);
	}
	while (s->running < s->concurrency && s->qhead < s->qlen) {
		struct sched_domain *d = &s->domains[s->queue[s->qhead++]];
		if (!sched_due(d->last_start, now, s->interval_s))
			continue;
		d->last_start = now;
		if (s->start(d->name, s->interval_s, s->arg) == -1) {
			log_warnx(
			    "sched: domain=%s event=start_failed", d->name);
			continue;
		}
		s->running++;
	}
	s_arm(s, sched_next_open(now, s->interval_s, s->jitter), now_ms);
}

static void
s_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	s_run(arg);
}

struct sched *
sched_new(struct event_base *base, const char *key, int concurrency,
    sched_start_fn start, void *arg)
{
	struct sched *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->start = start;
	s->arg = arg;
	s->concurrency = concurrency;
	if ((s->key = strdup(key)) == NULL ||
	    (s->timer = evtimer_new(base, s_timer, s)) == NULL) {
		sched_free(&s);
		return NULL;
	}
	return s;
}

static void
s_domains_free(struct sched_domain *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

void
sched_free(struct sched **sp)
{
	struct sched *s = *sp;

	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	s_domains_free(s->domains, s->n);
	free(s->queue);
	free(s->key);
	free(s);
	*sp = NULL;
}

static int
s_cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct sched_domain *)a)->name,
	    ((const struct sched_domain *)b)->name);
}

int
sched_set_tasks(struct sched *s, uint64_t version, uint32_t interval_s,
    char *const *domains, size_t n)
{
	struct sched_domain *v, *old, key;
	size_t *queue, m = 0, kept = 0;

	if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL ||
	    (queue = calloc(n ? n : 1, sizeof(*queue))) == NULL) {
		free(v);
		log_warnx("sched: event=tasks_failed reason=out_of_memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((v[i].name = strdup(domains[i])) == NULL) {
			s_domains_free(v, i);
			free(queue);
			log_warnx("sched: event=tasks_failed "
				  "reason=out_of_memory");
			return -1;
		}
		v[i].last_start = -1;
	}
	qsort(v, n, sizeof(*v), s_cmp_domain);
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && strcmp(v[m - 1].name, v[i].name) == 0) {
			free(v[i].name);
			continue;
		}
		v[m++] = v[i];
	}
	for (size_t i = 0; i < m; i++) {
		key.name = v[i].name;
		old = s->n ? bsearch(&key, s->domains, s->n, sizeof(key),
				 s_cmp_domain)
			   : NULL;
		if (old != NULL) {
			v[i].last_start = old->last_start;
			kept++;
		}
	}
	if (version == s->version && interval_s == s->interval_s && kept == m &&
	    kept == s->n)
		log_info("tasks: event=unchanged version=%" PRIu64
			 " domains=%zu",
		    version, m);
	else
		log_info("tasks: event=replaced version=%" PRIu64
			 " interval=%u domains=%zu added=%zu removed=%zu "
			 "old_version=%" PRIu64 " old_interval=%u",
		    version, interval_s, m, m - kept, s->n - kept, s->version,
		    s->interval_s);
	s_domains_free(s->domains, s->n);
	free(s->queue);
	s->domains = v;
	s->n = m;
	s->queue = queue;
	s->version = version;
	if (interval_s != s->interval_s)
		s->have_round = 0;
	s->interval_s = interval_s;
	s->jitter = sched_jitter(s->key, interval_s);
	/*
	 * Re-queue the current round: kept domains already started in it are
	 * not due, new ones are, if the window is still open.
	 */
	if (s->have_round)
		s_queue_round(s, s_now_ms() / 1000);
	evtimer_del(s->timer);
	s_run(s);
	return 0;
}

void
sched_set_concurrency(struct sched *s, int concurrency)
{
	s->concurrency = concurrency;
	s_run(s);
}

void
sched_probe_done(struct sched *s)
{
	if (s->running > 0)
		s->running--;
	s_run(s);
}

void
sched_stop(struct sched *s)
{
	s->stopped = 1;
	evtimer_del(s->timer);
}
