/* sender.c -- the agent's side of the wire: Hello, credit window, failover. */
#include "sender.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "errbuf.h"
#include "log.h"
#include "wire.h"

#define BACKOFF_MIN_S	  1
#define BACKOFF_MAX_S	  60
#define ZMQ_HB_IVL_MS	  5000
#define ZMQ_HB_TIMEOUT_MS 15000
/* Bounds the in-flight list whatever credit a collector grants. */
#define SENDER_CREDIT_MAX 65536

enum sender_state {
	ST_BACKOFF, /* no socket; waiting to reconnect */
	ST_HELLO,   /* socket open; Hello not yet answered by an Ack */
	ST_READY    /* Ack received: results flow within the credit */
};

/* What a connection is made with; swapped in whole on reconnect. */
struct settings {
	char *endpoints[AGENT_ENDPOINTS_MAX];
	size_t n_endpoints;
	char *name;
	char *region;
	char public_txt[AGENT_Z85_KEY_LEN + 1];
	char secret_txt[AGENT_Z85_KEY_LEN + 1];
	char collector_txt[AGENT_Z85_KEY_LEN + 1];
	int heartbeat_s;
	int ack_timeout_s;
};

struct sender {
	struct event_base *base;
	struct spool *spool;
	sender_tasks_fn tasks;
	void *arg;
	struct settings cur;
	struct settings next; /* from a SIGHUP, used on the next connect */
	int have_next;

	void *ctx;
	void *sock;
	void *mon; /* PAIR receiving sock's monitor events */
	unsigned mon_id;
	struct event *ev_sock;
	struct event *ev_mon;
	struct event *ev_tick;
	struct event *ev_retry;
	size_t ep; /* index into cur.endpoints */
	int backoff_s;

	enum sender_state state;
	int hello_sent;
	int64_t wait_since_ms; /* monotonic; 0 when no Ack is awaited */
	int64_t last_hb_ms;
	int hb_due;
	uint32_t credit;
	uint64_t next_seq; /* next spool seq to send on this connection */

	/* Seqs sent and not yet acknowledged, oldest first (a ring). */
	uint64_t *inflight;
	size_t in_head, in_n;

	zmq_msg_t out; /* staged frame that ZeroMQ would not take yet */
	int have_out;
	int out_kind; /* 0 other, 1 hello, 2 result */
	uint64_t out_seq;
	int in_pump;
};

static void s_pump(struct sender *s);
static void s_fail(struct sender *s, const char *reason);

static int64_t
s_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
s_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_settings_free(struct settings *st)
{
	for (size_t i = 0; i < st->n_endpoints; i++)
		free(st->endpoints[i]);
	free(st->name);
	free(st->region);
	/* The secret must not linger in freed memory. */
	explicit_bzero(st->secret_txt, sizeof(st->secret_txt));
	memset(st, 0, sizeof(*st));
}

static int
s_settings_from(struct settings *st, const struct agent_config *cfg)
{
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		if ((st->endpoints[i] = strdup(cfg->endpoints[i])) == NULL)
			goto fail;
		st->n_endpoints++;
	}
	if ((st->name = strdup(cfg->name)) == NULL ||
	    (st->region = strdup(cfg->region)) == NULL)
		goto fail;
	snprintf(st->public_txt, sizeof(st->public_txt), "%s",
	    zcert_public_txt(cfg->cert));
	snprintf(st->secret_txt, sizeof(st->secret_txt), "%s",
	    zcert_secret_txt(cfg->cert));
	snprintf(st->collector_txt, sizeof(st->collector_txt), "%s",
	    cfg->collector_public_txt);
	st->heartbeat_s = cfg->heartbeat_s;
	st->ack_timeout_s = cfg->ack_timeout_s;
	return 0;
fail:
	s_settings_free(st);
	return -1;
}

static void
s_spool_range(struct sender *s, uint64_t *first, uint64_t *last)
{
	uint64_t f, l = spool_durable_last(s->spool);

	spool_stats(s->spool, &f, NULL, NULL, NULL);
	/* The wire wants both 0 or 1 <= first <= last. */
	if (f == 0 || f > l)
		f = l = 0;
	*first = f;
	*last = l;
}

static void
s_drop_out(struct sender *s)
{
	if (s->have_out)
		zmq_msg_close(&s->out);
	s->have_out = 0;
}

/* Stages buf (freed here) as the next frame to send. */
static int
s_stage_buf(struct sender *s, unsigned char *buf, size_t len, int kind)
{
	int rc = zmq_msg_init_size(&s->out, len);

	if (rc == 0) {
		memcpy(zmq_msg_data(&s->out), buf, len);
		s->have_out = 1;
		s->out_kind = kind;
	}
	free(buf);
	return rc;
}

static int
s_read_cb(uint64_t seq, const void *payload, size_t len, void *arg)
{
	struct sender *s = arg;

	if (zmq_msg_init_size(&s->out, len) == -1)
		return 1;
	memcpy(zmq_msg_data(&s->out), payload, len);
	s->have_out = 1;
	s->out_kind = 2;
	s->out_seq = seq;
	return 1;
}

/*
 * Puts the next frame due in s->out: Hello first on every connection,
 * nothing else until it is answered, then a due heartbeat, spool gaps, and
 * results while the credit allows.  Returns 1 when a frame is staged.
 */
static int
s_stage(struct sender *s)
{
	unsigned char *buf;
	size_t len;
	uint64_t first, last, count;
	char reason[96];

	if (s->have_out)
		return 1;
	if (!s->hello_sent) {
		struct wire_hello h = {.name = s->cur.name,
		    .region = s->cur.region,
		    .version = SENDER_AGENT_VERSION,
		    .clock_ms = s_wall_ms()};
		s_spool_range(s, &h.spool_first, &h.spool_last);
		if (wire_agent_encode_hello(&h, &buf, &len) == -1 ||
		    s_stage_buf(s, buf, len, 1) == -1) {
			log_warnx("collector: event=encode_failed what=hello");
			return 0;
		}
		return 1;
	}
	if (s->state != ST_READY)
		return 0;
	if (s->hb_due) {
		s->hb_due = 0;
		s_spool_range(s, &first, &last);
		if (wire_agent_encode_heartbeat(s_wall_ms(), first, last,
			(uint32_t)s->in_n, &buf, &len) == 0 &&
		    s_stage_buf(s, buf, len, 0) == 0)
			return 1;
		log_warnx("collector: event=encode_failed what=heartbeat");
	}
	if (spool_take_gap(s->spool, &first, &last, &count) == 1) {
		snprintf(reason, sizeof(reason),
		    "spool cap: %" PRIu64 " results dropped", count);
		if (wire_agent_encode_gap(first, last, reason, &buf, &len) ==
			0 &&
		    s_stage_buf(s, buf, len, 0) == 0) {
			log_warnx("collector: event=gap first=%" PRIu64
				  " last=%" PRIu64 " lost=%" PRIu64,
			    first, last, count);
			return 1;
		}
		log_warnx("collector: event=encode_failed what=gap");
	}
	if (s->in_n < s->credit) {
		if (spool_read(s->spool, s->next_seq, 1, s_read_cb, s) == -1)
			log_warnx("collector: event=spool_read_failed");
		if (s->have_out)
			return 1;
	}
	return 0;
}

static void
s_sent(struct sender *s)
{
	int64_t now = s_mono_ms();

	if (s->out_kind == 1) {
		s->hello_sent = 1;
		s->wait_since_ms = now;
		log_info("collector: endpoint=%s event=hello_sent",
		    s->cur.endpoints[s->ep]);
	} else if (s->out_kind == 2) {
		if (s->in_n == 0)
			s->wait_since_ms = now;
		s->inflight[(s->in_head + s->in_n) % SENDER_CREDIT_MAX] =
		    s->out_seq;
		s->in_n++;
		s->next_seq = s->out_seq + 1;
	}
	s->have_out = 0;
}

static void
s_on_ack(struct sender *s, uint64_t committed, uint32_t credit)
{
	uint64_t last;

	spool_stats(s->spool, NULL, &last, NULL, NULL);
	if (committed > last) {
		/*
		 * The collector holds results this spool never wrote: the
		 * spool was lost or wiped while the key stayed.  Numbering
		 * must continue after committed, or new results would be
		 * ignored as duplicates.
		 */
		log_warnx("collector: endpoint=%s event=ack_beyond_spool "
			  "committed=%" PRIu64 " spool_last=%" PRIu64,
		    s->cur.endpoints[s->ep], committed, last);
		if (spool_adopt(s->spool, committed) == -1)
			log_warn("collector: event=spool_adopt_failed");
	} else if (spool_ack(s->spool, committed) == -1) {
		log_warn("collector: event=spool_ack_failed committed=%" PRIu64,
		    committed);
	}
	while (s->in_n > 0 && s->inflight[s->in_head] <= committed) {
		s->in_head = (s->in_head + 1) % SENDER_CREDIT_MAX;
		s->in_n--;
	}
	s->credit = credit > SENDER_CREDIT_MAX ? SENDER_CREDIT_MAX : credit;
	if (s->state == ST_HELLO) {
		s->state = ST_READY;
		s->next_seq = committed + 1;
		s->backoff_s = BACKOFF_MIN_S;
		s->last_hb_ms = s_mono_ms();
		log_info(
		    "collector: endpoint=%s event=session committed=%" PRIu64
		    " credit=%u",
		    s->cur.endpoints[s->ep], committed, credit);
	} else if (s->next_seq <= committed) {
		s->next_seq = committed + 1;
	}
	s->wait_since_ms = s->in_n > 0 ? s_mono_ms() : 0;
}

static void
s_on_message(struct sender *s, const void *data, size_t len)
{
	Mtastswatch__V1__CollectorMessage *m;
	char err[160];

	if ((m = wire_collector_decode(data, len, err, sizeof(err))) == NULL) {
		log_warnx(
		    "collector: endpoint=%s event=bad_message reason=\"%s\"",
		    s->cur.endpoints[s->ep], err);
		s_fail(s, "bad_message");
		return;
	}
	switch (m->body_case) {
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK:
		s_on_ack(s, m->ack->committed_seq, m->ack->credit);
		break;
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS:
		if (s->state != ST_READY)
			log_warnx("collector: event=tasks_before_ack");
		s->tasks(m->tasks->version, m->tasks->interval_s,
		    m->tasks->domains, m->tasks->n_domains, s->arg);
		break;
	case MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT:
		log_warnx("collector: endpoint=%s event=rejected reason=\"%s\"",
		    s->cur.endpoints[s->ep], m->reject->reason);
		s_fail(s, "rejected");
		break;
	default:
		break;
	}
	wire_collector_free(&m);
}

/* Takes one frame from the socket; 1 when one was handled. */
static int
s_recv_one(struct sender *s)
{
	zmq_msg_t m;
	int more;

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) == -1) {
		zmq_msg_close(&m);
		if (errno != EAGAIN)
			s_fail(s, "recv_failed");
		return 0;
	}
	more = zmq_msg_more(&m);
	if (more) {
		/* One frame per message is the protocol: drop the peer. */
		log_warnx("collector: event=bad_message reason=multipart");
		zmq_msg_close(&m);
		s_fail(s, "bad_message");
		return 0;
	}
	s_on_message(s, zmq_msg_data(&m), zmq_msg_size(&m));
	zmq_msg_close(&m);
	return 1;
}

/*
 * ZMQ_FD is edge-triggered: it signals a change, not a level.  So after
 * every send and receive, and on every wakeup, ZMQ_EVENTS is asked again
 * until nothing is pending, or a frame would sit unread forever.
 */
static void
s_pump(struct sender *s)
{
	uint32_t ev;
	size_t sz;

	if (s->in_pump)
		return;
	s->in_pump = 1;
	while (s->sock != NULL) {
		sz = sizeof(ev);
		if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &sz) == -1) {
			s_fail(s, "zmq_events_failed");
			break;
		}
		if (ev & ZMQ_POLLIN) {
			(void)s_recv_one(s);
			continue;
		}
		if ((ev & ZMQ_POLLOUT) && s_stage(s)) {
			if (zmq_msg_send(&s->out, s->sock, ZMQ_DONTWAIT) ==
			    -1) {
				if (errno != EAGAIN)
					s_fail(s, "send_failed");
				break;
			}
			s_sent(s);
			continue;
		}
		break;
	}
	s->in_pump = 0;
}

/* Monitor events tell us a connection came or went, which frames do not. */
static void
s_pump_monitor(struct sender *s)
{
	zmq_msg_t m;
	uint32_t ev;
	size_t sz;
	uint16_t event;

	while (s->mon != NULL) {
		sz = sizeof(ev);
		if (zmq_getsockopt(s->mon, ZMQ_EVENTS, &ev, &sz) == -1 ||
		    !(ev & ZMQ_POLLIN))
			break;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s->mon, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&m);
			break;
		}
		event = 0;
		if (zmq_msg_size(&m) >= 2)
			memcpy(&event, zmq_msg_data(&m), sizeof(event));
		/* The second frame names the endpoint; we know it. */
		while (zmq_msg_more(&m)) {
			zmq_msg_close(&m);
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, s->mon, ZMQ_DONTWAIT) == -1)
				break;
		}
		zmq_msg_close(&m);
		switch (event) {
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			log_info("collector: endpoint=%s event=connected",
			    s->cur.endpoints[s->ep]);
			s->wait_since_ms = s_mono_ms();
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			s_fail(s, "curve_auth_failed");
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
			s_fail(s, "handshake_failed");
			break;
		case ZMQ_EVENT_DISCONNECTED:
			/* Hello must open every connection: start afresh. */
			s_fail(s, "disconnected");
			break;
		default:
			break;
		}
	}
	s_pump(s);
}

static void
s_on_sock(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	s_pump(arg);
}

static void
s_on_mon(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	s_pump_monitor(arg);
}

static void
s_close(struct sender *s)
{
	s_drop_out(s);
	if (s->ev_sock != NULL)
		event_free(s->ev_sock);
	if (s->ev_mon != NULL)
		event_free(s->ev_mon);
	s->ev_sock = s->ev_mon = NULL;
	if (s->sock != NULL)
		(void)zmq_socket_monitor(s->sock, NULL, 0);
	if (s->mon != NULL)
		zmq_close(s->mon);
	if (s->sock != NULL)
		zmq_close(s->sock);
	s->sock = s->mon = NULL;
	s->state = ST_BACKOFF;
	s->hello_sent = 0;
	s->wait_since_ms = 0;
	s->hb_due = 0;
	s->credit = 0;
	s->in_head = s->in_n = 0;
	/* Gaps handed out on this connection may never have arrived. */
	spool_rewind_gaps(s->spool);
}

static int
s_setopt_int(void *sock, int opt, int v)
{
	return zmq_setsockopt(sock, opt, &v, sizeof(v));
}

static int
s_connect(struct sender *s)
{
	const char *ep;
	char mon_addr[64];
	int64_t maxmsg = WIRE_MAX;
	int fd, mfd;
	size_t sz;

	if (s->have_next) {
		s_settings_free(&s->cur);
		s->cur = s->next;
		memset(&s->next, 0, sizeof(s->next));
		s->have_next = 0;
		if (s->ep >= s->cur.n_endpoints)
			s->ep = 0;
		log_info("collector: event=settings_applied endpoints=%zu",
		    s->cur.n_endpoints);
	}
	ep = s->cur.endpoints[s->ep];
	snprintf(mon_addr, sizeof(mon_addr), "inproc://sender-monitor-%u",
	    s->mon_id++);
	if ((s->sock = zmq_socket(s->ctx, ZMQ_DEALER)) == NULL)
		goto fail;
	/*
	 * The routing id is our public key so that a reconnect takes over
	 * the collector's old route to us (ROUTER_HANDOVER) instead of
	 * leaving its replies on a dead pipe.
	 */
	if (zmq_setsockopt(s->sock, ZMQ_ROUTING_ID, s->cur.public_txt,
		AGENT_Z85_KEY_LEN) == -1 ||
	    zmq_setsockopt(s->sock, ZMQ_CURVE_SERVERKEY, s->cur.collector_txt,
		AGENT_Z85_KEY_LEN) == -1 ||
	    zmq_setsockopt(s->sock, ZMQ_CURVE_PUBLICKEY, s->cur.public_txt,
		AGENT_Z85_KEY_LEN) == -1 ||
	    zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, s->cur.secret_txt,
		AGENT_Z85_KEY_LEN) == -1 ||
	    s_setopt_int(s->sock, ZMQ_HEARTBEAT_IVL, ZMQ_HB_IVL_MS) == -1 ||
	    s_setopt_int(s->sock, ZMQ_HEARTBEAT_TIMEOUT, ZMQ_HB_TIMEOUT_MS) ==
		-1 ||
	    s_setopt_int(s->sock, ZMQ_LINGER, 0) == -1 ||
	    s_setopt_int(s->sock, ZMQ_IMMEDIATE, 1) == -1 ||
	    zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) ==
		-1)
		goto fail;
	if (zmq_socket_monitor(s->sock, mon_addr,
		ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
		    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
		    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == -1 ||
	    (s->mon = zmq_socket(s->ctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(s->mon, mon_addr) == -1)
		goto fail;
	if (zmq_connect(s->sock, ep) == -1)
		goto fail;
	sz = sizeof(fd);
	if (zmq_getsockopt(s->sock, ZMQ_FD, &fd, &sz) == -1)
		goto fail;
	sz = sizeof(mfd);
	if (zmq_getsockopt(s->mon, ZMQ_FD, &mfd, &sz) == -1)
		goto fail;
	s->ev_sock = event_new(s->base, fd, EV_READ | EV_PERSIST, s_on_sock, s);
	s->ev_mon = event_new(s->base, mfd, EV_READ | EV_PERSIST, s_on_mon, s);
	if (s->ev_sock == NULL || s->ev_mon == NULL ||
	    event_add(s->ev_sock, NULL) == -1 ||
	    event_add(s->ev_mon, NULL) == -1)
		goto fail;
	s->state = ST_HELLO;
	s->hello_sent = 0;
	s->wait_since_ms = s_mono_ms();
	log_info("collector: endpoint=%s event=connecting", ep);
	s_pump_monitor(s);
	return 0;
fail:
	log_warnx("collector: endpoint=%s event=connect_failed reason=\"%s\"",
	    ep, zmq_strerror(errno));
	s_close(s);
	return -1;
}

static void
s_retry(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;

	(void)fd;
	(void)what;
	if (s_connect(s) == -1)
		s_fail(s, "connect_failed");
}

/*
 * Drops the connection and schedules one to the next endpoint.  The
 * backoff doubles per failure and is reset by a session that got its
 * Ack; the jitter keeps a fleet of agents from reconnecting in step after
 * a collector restart.
 */
static void
s_fail(struct sender *s, const char *reason)
{
	int64_t ms;
	struct timeval tv;

	ms = (int64_t)s->backoff_s * 500 +
	     arc4random_uniform((uint32_t)s->backoff_s * 500 + 1);
	log_warnx("collector: endpoint=%s event=disconnected reason=%s "
		  "retry_in_ms=%" PRId64,
	    s->cur.endpoints[s->ep], reason, ms);
	s_close(s);
	s->backoff_s =
	    s->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : s->backoff_s * 2;
	s->ep = (s->ep + 1) %
		(s->have_next ? s->next.n_endpoints : s->cur.n_endpoints);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (evtimer_add(s->ev_retry, &tv) == -1)
		log_warnx("collector: event=timer_failed");
}

/* Once a second: ack timeout and heartbeat. */
static void
s_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	int64_t now = s_mono_ms();

	(void)fd;
	(void)what;
	if (s->sock == NULL)
		return;
	if (s->wait_since_ms != 0 &&
	    now - s->wait_since_ms > (int64_t)s->cur.ack_timeout_s * 1000) {
		s_fail(
		    s, s->state == ST_READY ? "ack_timeout" : "no_hello_ack");
		return;
	}
	if (s->state == ST_READY &&
	    now - s->last_hb_ms >= (int64_t)s->cur.heartbeat_s * 1000) {
		s->hb_due = 1;
		s->last_hb_ms = now;
	}
	s_pump(s);
}

struct sender *
sender_new(struct event_base *base, struct spool *spool,
    const struct agent_config *cfg, sender_tasks_fn tasks, void *arg, char *err,
    size_t errlen)
{
	struct sender *s;
	struct timeval sec = {1, 0};

	if (cfg->n_endpoints == 0) {
		errbuf_set(err, errlen, "no endpoint");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->spool = spool;
	s->tasks = tasks;
	s->arg = arg;
	s->backoff_s = BACKOFF_MIN_S;
	if (s_settings_from(&s->cur, cfg) == -1 ||
	    (s->inflight = calloc(SENDER_CREDIT_MAX, sizeof(uint64_t))) ==
		NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	if ((s->ctx = zmq_ctx_new()) == NULL) {
		errbuf_set(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
		goto fail;
	}
	/* Never wait at exit for frames to a collector that is not there. */
	(void)zmq_ctx_set(s->ctx, ZMQ_BLOCKY, 0);
	s->ev_tick = event_new(base, -1, EV_PERSIST, s_tick, s);
	s->ev_retry = evtimer_new(base, s_retry, s);
	if (s->ev_tick == NULL || s->ev_retry == NULL ||
	    event_add(s->ev_tick, &sec) == -1) {
		errbuf_set(err, errlen, "cannot create timers");
		goto fail;
	}
	if (!zmq_has("curve")) {
		errbuf_set(err, errlen, "libzmq was built without CURVE");
		goto fail;
	}
	if (s_connect(s) == -1)
		s_fail(s, "connect_failed");
	return s;
fail:
	sender_free(&s);
	return NULL;
}

void
sender_free(struct sender **sp)
{
	struct sender *s = *sp;

	if (s == NULL)
		return;
	s_close(s);
	if (s->ev_tick != NULL)
		event_free(s->ev_tick);
	if (s->ev_retry != NULL)
		event_free(s->ev_retry);
	if (s->ctx != NULL)
		zmq_ctx_term(s->ctx);
	s_settings_free(&s->cur);
	s_settings_free(&s->next);
	free(s->inflight);
	free(s);
	*sp = NULL;
}

int
sender_reconfigure(struct sender *s, const struct agent_config *cfg)
{
	struct settings st;

	if (s_settings_from(&st, cfg) == -1)
		return -1;
	s_settings_free(&s->next);
	s->next = st;
	s->have_next = 1;
	s->cur.heartbeat_s = cfg->heartbeat_s;
	s->cur.ack_timeout_s = cfg->ack_timeout_s;
	return 0;
}

void
sender_kick(struct sender *s)
{
	s_pump(s);
}

const char *
sender_endpoint(const struct sender *s)
{
	return s->cur.endpoints[s->ep];
}
