/* dns_query.c -- asynchronous DNS lookups on the engine's resolver. */
#include "dns_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound-event.h>
#include <unbound.h>

struct dns_query {
	struct engine *engine;
	int qtype;
	int async_id;
	int pending;   /* unbound still holds us as its mydata */
	int abandoned; /* nobody waits for the answer any more */
	struct event *timer;
	struct dns_query **slot;
	dns_query_cb cb;
	void *arg;
};

static void
s_query_free(struct dns_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
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
	struct dns_answer ans;

	(void)was_ratelimited;
	q->pending = 0;
	if (q->abandoned) {
		s_query_free(q);
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
}

static void
s_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_answer ans;

	(void)fd;
	(void)what;
	memset(&ans, 0, sizeof(ans));
	ans.status = DNS_FAIL;
	snprintf(ans.why, sizeof(ans.why), "timed out");
	if (q->pending && ub_cancel(q->engine->ub, q->async_id) == 0)
		q->pending = 0;
	s_deliver(q, &ans);
	if (!q->pending)
		s_query_free(q);
}

int
dns_query_start(struct engine *engine, const char *name, int qtype,
    int timeout_ms, dns_query_cb cb, void *arg, struct dns_query **slot)
{
	struct dns_query *q;
	struct timeval tv;
	int id = 0;

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
	q->pending = 1;
	*slot = q;
	if (ub_resolve_event(engine->ub, name, qtype, 1, q, s_ub_done, &id) !=
	    0) {
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

	if (q == NULL)
		return;
	*qp = NULL;
	if (q->abandoned)
		return; /* delivered already; freed by its own path */
	q->abandoned = 1;
	if (q->pending && ub_cancel(q->engine->ub, q->async_id) == 0)
		q->pending = 0;
	if (!q->pending)
		s_query_free(q);
	else
		evtimer_del(q->timer);
}
