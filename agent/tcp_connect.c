/* tcp_connect.c -- a TCP connection to the first of a host's addresses. */
#include "tcp_connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

struct tcp_connect {
	struct engine *engine;
	char *addrs[TCP_CONNECT_ADDRS_MAX];
	size_t n_addrs;
	size_t next_addr;
	int port;
	int connect_timeout_ms;
	long long deadline_ms;
	struct event *ev;
	tcp_connect_cb cb;
	void *arg;
	struct tcp_connect_result res;
};

static void s_try_next(struct tcp_connect *c);

static void
s_close_fd(struct tcp_connect *c)
{
	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->res.fd != -1) {
		close(c->res.fd);
		c->res.fd = -1;
	}
}

static void
s_free(struct tcp_connect *c)
{
	s_close_fd(c);
	for (size_t i = 0; i < c->n_addrs; i++)
		free(c->addrs[i]);
	free(c);
}

/* Reports r, handing over its socket. */
static void
s_finish(struct tcp_connect *c)
{
	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	c->cb(&c->res, c->arg);
	c->res.fd = -1; /* the callee's now */
	s_free(c);
}

static void
s_add_error(struct tcp_connect *c, const char *ip, const char *why)
{
	size_t l = strlen(c->res.errors);

	snprintf(c->res.errors + l, sizeof(c->res.errors) - l, "%s%s: %s",
	    l ? "; " : "", ip, why);
}

static void
s_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_connect *c = arg;
	char err[256];

	(void)fd;
	if (what & EV_TIMEOUT) {
		snprintf(err, sizeof(err), "connect timed out");
	} else if (net_connect_result(c->res.fd, err, sizeof(err)) == 0) {
		s_finish(c);
		return;
	}
	s_add_error(c, c->res.ip, err);
	s_close_fd(c);
	s_try_next(c);
}

static void
s_try_next(struct tcp_connect *c)
{
	char err[256];

	while (c->next_addr < c->n_addrs) {
		long long left = c->deadline_ms - engine_now_ms();
		int timeout = c->connect_timeout_ms;
		const char *ip;

		if (c->deadline_ms != 0) {
			if (left <= 0)
				break;
			if (left < timeout)
				timeout = (int)left;
		}
		ip = c->addrs[c->next_addr++];
		snprintf(c->res.ip, sizeof(c->res.ip), "%s", ip);
		c->res.fd = net_connect_start(ip, c->port, err, sizeof(err));
		if (c->res.fd != -1) {
			struct timeval tv = {
			    timeout / 1000, (timeout % 1000) * 1000};

			c->ev = event_new(c->engine->base, c->res.fd, EV_WRITE,
			    s_on_event, c);
			if (c->ev != NULL && event_add(c->ev, &tv) == 0)
				return;
			s_close_fd(c);
			snprintf(err, sizeof(err), "out of memory");
		}
		s_add_error(c, ip, err);
	}
	c->res.ip[0] = '\0';
	c->res.out_of_time = c->next_addr < c->n_addrs;
	s_finish(c);
}

static void
s_kickoff(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_connect *c = arg;

	(void)fd;
	(void)what;
	event_free(c->ev);
	c->ev = NULL;
	s_try_next(c);
}

struct tcp_connect *
tcp_connect_start(struct engine *engine, char *const *addrs, size_t n, int port,
    int connect_timeout_ms, long long deadline_ms, tcp_connect_cb cb, void *arg)
{
	struct tcp_connect *c;
	struct timeval now = {0, 0};

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->engine = engine;
	c->res.fd = -1;
	c->port = port;
	c->connect_timeout_ms = connect_timeout_ms;
	c->deadline_ms = deadline_ms;
	c->cb = cb;
	c->arg = arg;
	for (size_t i = 0; i < n && i < TCP_CONNECT_ADDRS_MAX; i++) {
		if ((c->addrs[i] = strdup(addrs[i])) == NULL)
			goto fail;
		c->n_addrs++;
	}
	/* Start from the loop so the callback never runs inside this call. */
	c->ev = evtimer_new(engine->base, s_kickoff, c);
	if (c->ev == NULL || evtimer_add(c->ev, &now) == -1)
		goto fail;
	return c;
fail:
	s_free(c);
	return NULL;
}

void
tcp_connect_cancel(struct tcp_connect **cp)
{
	if (*cp == NULL)
		return;
	s_free(*cp);
	*cp = NULL;
}
