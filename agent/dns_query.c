/* dns_query.c -- asynchronous DNS lookups on the engine's resolver. */
#include "dns_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound-event.h>
#include <unbound.h>

/*
 * Queries handed to libunbound at once.  Each costs libunbound about 16 KiB
 * of per-query state; a round that starts thousands of probes together
 * would otherwise ask five queries per probe at once and keep that memory
 * (bench/probe/RESULTS.md).  Queries beyond this wait in FIFO order; their
 * timeout runs from dns_query_start() as before.
 */
#define DNS_INFLIGHT_MAX 256

struct dns_query {
	struct engine *engine;
	int qtype;
	int async_id;
	int pending;   /* unbound still holds us as its mydata */
	int abandoned; /* nobody waits for the answer any more */
	int queued;    /* on the engine's wait list, not yet asked */
	char *name;    /* owned while queued */
	struct dns_query *next;
	struct event *timer;
	struct dns_query **slot;
	dns_query_cb cb;
	void *arg;
};

static void s_pump(struct engine *e);

static void
s_query_free(struct dns_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	free(q->name);
	free(q);
}

static void
s_unqueue(struct dns_query *q)
{
	struct engine *e = q->engine;
	struct dns_query **pp = &e->dns_wait_head, *prev = NULL;

	while (*pp != NULL && *pp != q) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = q->next;
	if (e->dns_wait_tail == q)
		e->dns_wait_tail = prev;
	q->next = NULL;
	q->queued = 0;
}

static void
s_deliver(struct dns_query *q, struct dns_answer *ans)
{
	q->abandoned = 1;
	if (q->timer != NULL)
		evtimer_del(q->timer);
	*q->slot = NULL;
	q->cb(ans, q->arg);
	dns_answer_clear(ans);
}

static void
s_ub_done(void *mydata, int rcode, void *packet, int packet_len, int sec,
    char *why_bogus, int was_ratelimited)
{
	struct dns_query *q = mydata;
	struct engine *e = q->engine;
	struct dns_answer ans;

	(void)was_ratelimited;
	q->pending = 0;
	e->dns_inflight--;
	if (q->abandoned) {
		s_query_free(q);
		s_pump(e);
		return;
	}
	memset(&ans, 0, sizeof(ans));
	if (sec == 1) {
		ans.status = DNS_FAIL;
		snprintf(ans.why, sizeof(ans.why), "DNSSEC bogus: %s",
		    why_bogus ? why_bogus : "?");
	} else if (rcode == 3) {
		ans.status = DNS_NXDOMAIN;
		ans.rcode = 3;
	} else if (rcode != 0 || packet == NULL || packet_len <= 0) {
		ans.status = DNS_FAIL;
		ans.rcode = rcode;
		snprintf(ans.why, sizeof(ans.why), "%s",
		    rcode == 2	 ? "SERVFAIL"
		    : rcode == 5 ? "REFUSED"
				 : "resolver error");
	} else {
		(void)dns_answer_parse(
		    packet, (size_t)packet_len, q->qtype, &ans);
		if (ans.status == DNS_FAIL && ans.rcode == 2)
			snprintf(ans.why, sizeof(ans.why), "SERVFAIL");
	}
	s_deliver(q, &ans);
	/* The callback may have cancelled us; it only marks, we free. */
	s_query_free(q);
	s_pump(e);
}

/* Hands q to libunbound.  0, or -1 when libunbound refused it. */
static int
s_submit(struct dns_query *q, const char *name)
{
	struct engine *e = q->engine;
	int id = 0;

	q->pending = 1;
	e->dns_inflight++;
	if (ub_resolve_event(e->ub, name, q->qtype, 1, q, s_ub_done, &id) !=
	    0) {
		q->pending = 0;
		e->dns_inflight--;
		return -1;
	}
	/* Local data is answered (and q freed) before ub_resolve_event
	 * returns; the caller's slot tells whether q is still alive. */
	return id;
}

/* Asks the waiting queries while there is room.  Answers that arrive
 * synchronously call back into here; the flag keeps that flat. */
static void
s_pump(struct engine *e)
{
	if (e->dns_pumping)
		return;
	e->dns_pumping = 1;
	while (e->dns_inflight < DNS_INFLIGHT_MAX && e->dns_wait_head != NULL) {
		struct dns_query *q = e->dns_wait_head;
		struct dns_query **slot = q->slot;
		char *name = q->name;
		int id;

		e->dns_wait_head = q->next;
		if (e->dns_wait_head == NULL)
			e->dns_wait_tail = NULL;
		q->next = NULL;
		q->queued = 0;
		q->name = NULL;
		id = s_submit(q, name);
		free(name);
		if (id == -1) {
			struct dns_answer ans;
			memset(&ans, 0, sizeof(ans));
			ans.status = DNS_FAIL;
			snprintf(ans.why, sizeof(ans.why), "resolver error");
			s_deliver(q, &ans);
			s_query_free(q);
		} else if (*slot == q) {
			/* A synchronous answer has freed q already and
			 * cleared the slot. */
			q->async_id = id;
		}
	}
	e->dns_pumping = 0;
}

static void
s_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct engine *e = q->engine;
	struct dns_answer ans;

	(void)fd;
	(void)what;
	memset(&ans, 0, sizeof(ans));
	ans.status = DNS_FAIL;
	snprintf(ans.why, sizeof(ans.why), "timed out");
	if (q->queued)
		s_unqueue(q);
	if (q->pending && ub_cancel(e->ub, q->async_id) == 0) {
		q->pending = 0;
		e->dns_inflight--;
	}
	s_deliver(q, &ans);
	if (!q->pending)
		s_query_free(q);
	s_pump(e);
}

int
dns_query_start(struct engine *engine, const char *name, int qtype,
    int timeout_ms, dns_query_cb cb, void *arg, struct dns_query **slot)
{
	struct dns_query *q;
	struct timeval tv;
	int id;

	*slot = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->slot = slot;
	q->engine = engine;
	q->qtype = qtype;
	q->cb = cb;
	q->arg = arg;
	q->timer = evtimer_new(engine->base, s_timeout, q);
	if (q->timer == NULL) {
		free(q);
		return -1;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (evtimer_add(q->timer, &tv) == -1) {
		s_query_free(q);
		return -1;
	}
	if (engine->dns_inflight >= DNS_INFLIGHT_MAX ||
	    engine->dns_wait_head != NULL) {
		if ((q->name = strdup(name)) == NULL) {
			s_query_free(q);
			return -1;
		}
		q->queued = 1;
		if (engine->dns_wait_tail != NULL)
			engine->dns_wait_tail->next = q;
		else
			engine->dns_wait_head = q;
		engine->dns_wait_tail = q;
		*slot = q;
		return 0;
	}
	*slot = q;
	if ((id = s_submit(q, name)) == -1) {
		*slot = NULL;
		s_query_free(q);
		return -1;
	}
	/* Local data is answered (and q freed) before ub_resolve_event
	 * returns; *slot tells whether q is still ours. */
	if (*slot == q)
		q->async_id = id;
	return 0;
}

void
dns_query_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;
	struct engine *e;

	if (q == NULL)
		return;
	*qp = NULL;
	if (q->abandoned)
		return; /* delivered already; freed by its own path */
	e = q->engine;
	q->abandoned = 1;
	if (q->queued) {
		s_unqueue(q);
		s_query_free(q);
		return;
	}
	if (q->pending && ub_cancel(e->ub, q->async_id) == 0) {
		q->pending = 0;
		e->dns_inflight--;
	}
	if (!q->pending)
		s_query_free(q);
	else
		evtimer_del(q->timer);
	s_pump(e);
}
