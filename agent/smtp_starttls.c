/* smtp_starttls.c -- ESMTP dialogue up to a STARTTLS handshake. */
#include "smtp_starttls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtp_reply.h"
#include "tcp_connect.h"

#define SMTP_BUF_MAX   16384
#define SMTP_BUF_FIRST 1024 /* a greeting and most EHLO replies fit */

enum smtp_state { ST_CONNECTING, ST_GREETING, ST_EHLO, ST_STARTTLS, ST_TLS };

struct smtp_starttls {
	struct engine *engine;
	char *host;
	struct tcp_connect *conn; /* while connecting */
	int fd;
	enum smtp_state state;
	struct event *ev;
	struct tls_conn *tls;
	/* Grown on demand up to SMTP_BUF_MAX: a dialogue that waits for its
	 * greeting (the common state of a slow MX) then holds 1 KiB, not 16. */
	char *buf;
	size_t buf_len;
	size_t buf_cap;
	smtp_starttls_cb cb;
	void *arg;
	struct smtp_result res;
};

static void s_on_event(evutil_socket_t fd, short what, void *arg);

static void
s_close_fd(struct smtp_starttls *s)
{
	if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
}

static void
s_free(struct smtp_starttls *s)
{
	tcp_connect_cancel(&s->conn);
	tls_conn_cancel(&s->tls);
	s_close_fd(s);
	free(s->host);
	free(s->buf);
	tls_result_clear(&s->res.tls);
	free(s);
}

static void
s_finish(struct smtp_starttls *s)
{
	s->cb(&s->res, s->arg);
	s_free(s);
}

/* A failure after the TCP connect ends the probe of this host: another
 * address of the same host would most likely say the same. */
static void s_fail(struct smtp_starttls *s, enum smtp_stage stage,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
s_fail(struct smtp_starttls *s, enum smtp_stage stage, const char *fmt, ...)
{
	va_list ap;

	s->res.stage = stage;
	va_start(ap, fmt);
	vsnprintf(s->res.error, sizeof(s->res.error), fmt, ap);
	va_end(ap);
	s_finish(s);
}

static int
s_wait(struct smtp_starttls *s, short kind, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = event_new(s->engine->base, s->fd, kind, s_on_event, s);
	if (s->ev == NULL || event_add(s->ev, &tv) == -1)
		return -1;
	return 0;
}

/* Commands are a few bytes: one write either takes them or the peer is
 * broken; partial writes on a fresh socket do not happen in practice, and
 * if one does, we report it rather than buffer. */
static int
s_send(struct smtp_starttls *s, const char *cmd)
{
	size_t len = strlen(cmd);
	ssize_t n = write(s->fd, cmd, len);

	return n == (ssize_t)len ? 0 : -1;
}

static void
s_tls_done(struct tls_result *r, void *arg)
{
	struct smtp_starttls *s = arg;

	s->tls = NULL;
	s->res.stage = SMTP_STAGE_TLS;
	s->res.tls = *r;
	memset(r, 0, sizeof(*r)); /* ownership moves to our result */
	s_finish(s);
}

/* Returns 1 when the dialogue goes on, 0 when s is finished and freed. */
static int
s_on_reply(struct smtp_starttls *s, const struct smtp_reply *rep)
{
	char cmd[300];

	switch (s->state) {
	case ST_GREETING:
		if (rep->code != 220) {
			s_fail(s, SMTP_STAGE_GREETING, "greeting %d %s",
			    rep->code, rep->first_line);
			return 0;
		}
		snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", s->engine->helo_name);
		if (s_send(s, cmd) == -1) {
			s_fail(s, SMTP_STAGE_GREETING, "cannot send EHLO");
			return 0;
		}
		s->state = ST_EHLO;
		s->res.stage = SMTP_STAGE_EHLO;
		return 1;
	case ST_EHLO:
		if (rep->code != 250) {
			s_fail(s, SMTP_STAGE_EHLO, "EHLO answered %d %s",
			    rep->code, rep->first_line);
			return 0;
		}
		if (!rep->has_starttls) {
			(void)s_send(s, "QUIT\r\n");
			s_fail(s, SMTP_STAGE_NO_STARTTLS,
			    "EHLO reply does not offer STARTTLS");
			return 0;
		}
		s->res.starttls = 1;
		if (s_send(s, "STARTTLS\r\n") == -1) {
			s_fail(s, SMTP_STAGE_STARTTLS, "cannot send STARTTLS");
			return 0;
		}
		s->state = ST_STARTTLS;
		s->res.stage = SMTP_STAGE_STARTTLS;
		return 1;
	case ST_STARTTLS:
		if (rep->code != 220) {
			s_fail(s, SMTP_STAGE_STARTTLS,
			    "STARTTLS answered %d %s", rep->code,
			    rep->first_line);
			return 0;
		}
		/* Anything the server sent after its 220 would be plaintext
		 * injected into the TLS session (CVE-2011-0411): dropped. */
		s->buf_len = 0;
		event_free(s->ev);
		s->ev = NULL;
		s->state = ST_TLS;
		s->tls = tls_conn_start(s->engine, s->fd, s->host,
		    s->engine->io_timeout_ms, s_tls_done, s);
		if (s->tls == NULL) {
			s_fail(s, SMTP_STAGE_STARTTLS, "cannot start TLS");
			return 0;
		}
		return 0; /* alive, but the TLS layer owns the socket now */
	default:
		return 0;
	}
}

static void
s_on_readable(struct smtp_starttls *s)
{
	struct smtp_reply rep;
	size_t used;
	ssize_t n;
	int rc;

	if (s->buf_len == s->buf_cap) {
		size_t cap = s->buf_cap ? s->buf_cap * 2 : SMTP_BUF_FIRST;
		char *b;
		if (cap > SMTP_BUF_MAX)
			cap = SMTP_BUF_MAX;
		if ((b = realloc(s->buf, cap)) == NULL) {
			s_fail(s, s->res.stage, "out of memory");
			return;
		}
		s->buf = b;
		s->buf_cap = cap;
	}
	n = read(s->fd, s->buf + s->buf_len, s->buf_cap - s->buf_len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		if (s_wait(s, EV_READ, s->engine->io_timeout_ms) == -1)
			s_fail(s, s->res.stage, "out of memory");
		return;
	}
	if (n <= 0) {
		s_fail(s, s->res.stage, "connection closed by the server%s%s",
		    n == -1 ? ": " : "", n == -1 ? strerror(errno) : "");
		return;
	}
	s->buf_len += (size_t)n;
	/* A server may answer several commands in one segment. */
	while ((rc = smtp_reply_parse(s->buf, s->buf_len, &rep, &used)) == 1) {
		memmove(s->buf, s->buf + used, s->buf_len - used);
		s->buf_len -= used;
		if (!s_on_reply(s, &rep))
			return;
	}
	if (rc == -1) {
		s_fail(s, s->res.stage, "malformed SMTP reply");
		return;
	}
	if (s->buf_len == SMTP_BUF_MAX) {
		s_fail(s, s->res.stage, "reply over %d bytes", SMTP_BUF_MAX);
		return;
	}
	if (s_wait(s, EV_READ, s->engine->io_timeout_ms) == -1)
		s_fail(s, s->res.stage, "out of memory");
}

static void
s_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_starttls *s = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		s_fail(s, s->res.stage, "no reply within %d ms",
		    s->engine->io_timeout_ms);
		return;
	}
	s_on_readable(s);
}

static void
s_connected(struct tcp_connect_result *r, void *arg)
{
	struct smtp_starttls *s = arg;

	s->conn = NULL;
	snprintf(s->res.ip, sizeof(s->res.ip), "%s", r->ip);
	if (r->fd == -1) {
		s_fail(s, SMTP_STAGE_CONNECT, "%s",
		    r->errors[0] ? r->errors : "no address");
		return;
	}
	s->fd = r->fd;
	s->state = ST_GREETING;
	s->res.stage = SMTP_STAGE_GREETING;
	if (s_wait(s, EV_READ, s->engine->io_timeout_ms) == -1)
		s_fail(s, SMTP_STAGE_GREETING, "out of memory");
}

struct smtp_starttls *
smtp_starttls_start(struct engine *engine, const char *host, char *const *addrs,
    size_t n, smtp_starttls_cb cb, void *arg)
{
	struct smtp_starttls *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->engine = engine;
	s->fd = -1;
	s->cb = cb;
	s->arg = arg;
	if ((s->host = strdup(host)) == NULL)
		goto fail;
	s->conn = tcp_connect_start(engine, addrs, n, engine->cfg.smtp_port,
	    engine->connect_timeout_ms, 0, s_connected, s);
	if (s->conn == NULL)
		goto fail;
	return s;
fail:
	s_free(s);
	return NULL;
}

void
smtp_starttls_cancel(struct smtp_starttls **sp)
{
	if (*sp == NULL)
		return;
	s_free(*sp);
	*sp = NULL;
}
