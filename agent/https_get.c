/* https_get.c -- one bounded HTTPS GET over HTTP/1.1 on the engine's loop. */
#include "https_get.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_resp.h"
#include "tcp_connect.h"

/* Policies are small; a larger buffer would only sit idle in every fetch
 * that waits on a slow server. */
#define READ_BUF 4096

enum get_state { ST_CONNECTING, ST_TLS, ST_WRITE, ST_READ };

struct https_get {
	struct engine *engine;
	char *host;
	char *path;
	int port;
	struct tcp_connect *conn; /* while connecting */
	size_t max_body;
	int io_timeout_ms;
	long long deadline_ms;
	int timeout_ms;
	int fd;
	enum get_state state;
	struct event *ev;
	int wait_is_deadline; /* the pending wait ends at deadline_ms */
	struct tls_conn *tls;
	SSL *ssl;
	char *request; /* while it is being written */
	size_t request_len;
	char *buf; /* from the first read on */
	struct http_resp *resp;
	https_get_cb cb;
	void *arg;
	struct https_get_result res;
};

static void s_on_event(evutil_socket_t fd, short what, void *arg);

static void
s_close_fd(struct https_get *g)
{
	if (g->ev != NULL) {
		event_free(g->ev);
		g->ev = NULL;
	}
	if (g->fd != -1) {
		close(g->fd);
		g->fd = -1;
	}
}

static void
s_free(struct https_get *g)
{
	tcp_connect_cancel(&g->conn);
	tls_conn_cancel(&g->tls);
	SSL_free(g->ssl);
	s_close_fd(g);
	free(g->host);
	free(g->path);
	free(g->request);
	free(g->buf);
	http_resp_free(&g->resp);
	free(g->res.content_type);
	free(g->res.location);
	free(g->res.body);
	tls_result_clear(&g->res.tls);
	free(g);
}

/* Where a 3xx points, as an absolute URL (RFC 3986 5.2, the common
 * cases); an absolute target is kept as sent. */
static char *
s_absolute_location(const struct https_get *g, const char *loc)
{
	char origin[300], *out = NULL;
	size_t i = 0;
	int rc;

	while ((loc[i] >= 'a' && loc[i] <= 'z') ||
	       (loc[i] >= 'A' && loc[i] <= 'Z') ||
	       (i > 0 && ((loc[i] >= '0' && loc[i] <= '9') || loc[i] == '+' ||
			     loc[i] == '-' || loc[i] == '.')))
		i++;
	if (i > 0 && loc[i] == ':')
		return strdup(loc);
	if (g->port == 443)
		snprintf(origin, sizeof(origin), "https://%s", g->host);
	else
		snprintf(
		    origin, sizeof(origin), "https://%s:%d", g->host, g->port);
	if (loc[0] == '/' && loc[1] == '/')
		rc = asprintf(&out, "https:%s", loc);
	else if (loc[0] == '/')
		rc = asprintf(&out, "%s%s", origin, loc);
	else {
		/* Relative to the directory of our path. */
		const char *slash = strrchr(g->path, '/');
		int dir = slash != NULL ? (int)(slash - g->path) + 1 : 0;
		rc = asprintf(&out, "%s%.*s%s", origin, dir, g->path, loc);
	}
	return rc == -1 ? NULL : out;
}

static void
s_finish(struct https_get *g)
{
	struct https_get_result *r = &g->res;
	struct http_resp *h = g->resp;

	if (h != NULL && h->headers_done) {
		r->status = h->status;
		r->content_type = h->content_type;
		h->content_type = NULL;
		if (h->location != NULL && h->status >= 300 && h->status < 400)
			r->location = s_absolute_location(g, h->location);
		r->body = h->body;
		r->body_len = h->body_len;
		h->body = NULL;
		r->too_large = h->too_large;
	}
	/* One close_notify attempt after a clean exchange, never a wait. */
	if (g->ssl != NULL && r->kind == HTTPS_OK)
		(void)SSL_shutdown(g->ssl);
	g->cb(r, g->arg);
	s_free(g);
}

static void s_fail(struct https_get *g, enum https_get_error kind,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
s_fail(struct https_get *g, enum https_get_error kind, const char *fmt, ...)
{
	va_list ap;

	g->res.kind = kind;
	va_start(ap, fmt);
	vsnprintf(g->res.error, sizeof(g->res.error), fmt, ap);
	va_end(ap);
	s_finish(g);
}

/* Waits for kind on the socket for at most idle_ms, and never past the
 * request's deadline. */
static int
s_wait(struct https_get *g, short kind, int idle_ms)
{
	long long left = g->deadline_ms - engine_now_ms();
	struct timeval tv;

	if (left < 0)
		left = 0;
	g->wait_is_deadline = left <= idle_ms;
	if (!g->wait_is_deadline)
		left = idle_ms;
	tv.tv_sec = (long)(left / 1000);
	tv.tv_usec = (long)(left % 1000) * 1000;
	if (g->ev != NULL)
		event_free(g->ev);
	g->ev = event_new(g->engine->base, g->fd, kind, s_on_event, g);
	if (g->ev == NULL || event_add(g->ev, &tv) == -1)
		return -1;
	return 0;
}

static void
s_timed_out(struct https_get *g, const char *doing)
{
	if (g->wait_is_deadline)
		s_fail(g, HTTPS_TIMEOUT, "%s: timed out after %d ms", doing,
		    g->timeout_ms);
	else
		s_fail(g, HTTPS_TIMEOUT, "%s: nothing received for %d ms",
		    doing, g->io_timeout_ms);
}

/* The reason of a failed SSL call, from the error queue or errno. */
static void
s_ssl_reason(int err, int saved_errno, char *out, size_t outlen)
{
	unsigned long e = ERR_peek_error();

	if (e != 0 && ERR_reason_error_string(e) != NULL)
		snprintf(out, outlen, "%s", ERR_reason_error_string(e));
	else if (err == SSL_ERROR_SYSCALL && saved_errno != 0)
		snprintf(out, outlen, "%s", strerror(saved_errno));
	else
		snprintf(out, outlen, "TLS error %d", err);
	ERR_clear_error();
}

static void
s_closed(struct https_get *g)
{
	int rc = http_resp_close(g->resp);

	if (rc == HTTP_RESP_DONE) {
		g->res.kind = HTTPS_OK;
		s_finish(g);
	} else if (rc == HTTP_RESP_TRUNCATED) {
		s_fail(g, g->resp->headers_done ? HTTPS_INCOMPLETE : HTTPS_RECV,
		    "%s", g->resp->error);
	} else {
		s_fail(
		    g, HTTPS_PROTOCOL, "bad HTTP response: %s", g->resp->error);
	}
}

/*
 * Reads what the session has, until it would block.  Every byte goes to
 * the parser, which ends the response at its limits, so the loop is
 * bounded by them and by the request's deadline.
 */
static void
s_read(struct https_get *g)
{
	char why[256];

	if (g->buf == NULL) {
		g->buf = malloc(READ_BUF);
		g->resp = http_resp_new(g->max_body);
		if (g->buf == NULL || g->resp == NULL) {
			s_fail(g, HTTPS_NOMEM, "out of memory");
			return;
		}
	}
	for (;;) {
		int n, err, rc, saved_errno;

		ERR_clear_error();
		errno = 0;
		n = SSL_read(g->ssl, g->buf, READ_BUF);
		saved_errno = errno;
		if (n > 0) {
			rc = http_resp_feed(g->resp, g->buf, (size_t)n);
			if (rc == HTTP_RESP_DONE) {
				g->res.kind = HTTPS_OK;
				s_finish(g);
				return;
			}
			if (rc == HTTP_RESP_ERROR) {
				s_fail(g,
				    strcmp(g->resp->error, "out of memory") == 0
					? HTTPS_NOMEM
					: HTTPS_PROTOCOL,
				    "bad HTTP response: %s", g->resp->error);
				return;
			}
			continue;
		}
		err = SSL_get_error(g->ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			if (s_wait(g,
				err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
				g->io_timeout_ms) == -1)
				s_fail(g, HTTPS_NOMEM, "out of memory");
			return;
		}
		/* With SSL_OP_IGNORE_UNEXPECTED_EOF a bare close is a
		 * ZERO_RETURN; older OpenSSL says SYSCALL with no error. */
		if (err == SSL_ERROR_ZERO_RETURN ||
		    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
			saved_errno == 0)) {
			s_closed(g);
			return;
		}
		s_ssl_reason(err, saved_errno, why, sizeof(why));
		if (g->resp->headers_done)
			s_fail(
			    g, HTTPS_INCOMPLETE, "receiving the body: %s", why);
		else
			s_fail(
			    g, HTTPS_RECV, "receiving the response: %s", why);
		return;
	}
}

static void
s_write(struct https_get *g)
{
	char why[256];
	int n, err, saved_errno;

	ERR_clear_error();
	errno = 0;
	n = SSL_write(g->ssl, g->request, (int)g->request_len);
	saved_errno = errno;
	if (n > 0) {
		/* Without partial writes the whole request went at once. */
		free(g->request);
		g->request = NULL;
		g->state = ST_READ;
		s_read(g);
		return;
	}
	err = SSL_get_error(g->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		if (s_wait(g, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
			g->io_timeout_ms) == -1)
			s_fail(g, HTTPS_NOMEM, "out of memory");
		return;
	}
	s_ssl_reason(err, saved_errno, why, sizeof(why));
	s_fail(g, HTTPS_RECV, "sending the request: %s", why);
}

static void
s_tls_done(struct tls_result *r, void *arg)
{
	struct https_get *g = arg;
	char host[300]; /* a DNS name and a port */
	int n;

	g->tls = NULL;
	g->res.tls = *r;
	memset(r, 0, sizeof(*r)); /* ownership moves to our result */
	if (!g->res.tls.ok) {
		s_fail(g, g->res.tls.timed_out ? HTTPS_TIMEOUT : HTTPS_TLS,
		    "%s", g->res.tls.error);
		return;
	}
	g->ssl = g->res.tls.ssl;
	g->res.tls.ssl = NULL;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* Many servers close without close_notify; the HTTP framing, not
	 * TLS, says whether the response was whole. */
	SSL_set_options(g->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	if (g->port == 443)
		snprintf(host, sizeof(host), "%s", g->host);
	else
		snprintf(host, sizeof(host), "%s:%d", g->host, g->port);
	n = asprintf(&g->request,
	    "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "User-Agent: mtasts-watch/0.1\r\n"
	    "Accept: */*\r\n"
	    "Connection: close\r\n"
	    "\r\n",
	    g->path, host);
	if (n == -1) {
		g->request = NULL;
		s_fail(g, HTTPS_NOMEM, "out of memory");
		return;
	}
	g->request_len = (size_t)n;
	g->state = ST_WRITE;
	s_write(g);
}

static void
s_connected(struct https_get *g)
{
	long long left = g->deadline_ms - engine_now_ms();
	int timeout = g->io_timeout_ms;

	if (left < timeout)
		timeout = left > 0 ? (int)left : 0;
	/* tls_conn watches the socket from here until its callback. */
	g->state = ST_TLS;
	g->tls = tls_conn_start_session(
	    g->engine, g->fd, g->host, timeout, s_tls_done, g);
	if (g->tls == NULL)
		s_fail(g, HTTPS_NOMEM, "cannot start TLS (out of memory)");
}

static void
s_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct https_get *g = arg;

	(void)fd;
	switch (g->state) {
	case ST_WRITE:
		if (what & EV_TIMEOUT)
			s_timed_out(g, "sending the request");
		else
			s_write(g);
		return;
	case ST_READ:
		if (what & EV_TIMEOUT)
			s_timed_out(g, g->resp->headers_done
					   ? "receiving the body"
					   : "waiting for the response");
		else
			s_read(g);
		return;
	default:
		return;
	}
}

static void
s_on_connect(struct tcp_connect_result *r, void *arg)
{
	struct https_get *g = arg;

	g->conn = NULL;
	snprintf(g->res.ip, sizeof(g->res.ip), "%s", r->ip);
	if (r->fd == -1 && r->out_of_time)
		s_fail(g, HTTPS_TIMEOUT, "connect: timed out after %d ms%s%s",
		    g->timeout_ms, r->errors[0] ? "; " : "", r->errors);
	else if (r->fd == -1)
		s_fail(g, HTTPS_CONNECT, "%s",
		    r->errors[0] ? r->errors : "no address");
	else {
		g->fd = r->fd;
		s_connected(g);
	}
}

struct https_get *
https_get_start(struct engine *engine, const struct https_get_req *req,
    https_get_cb cb, void *arg)
{
	struct https_get *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->engine = engine;
	g->fd = -1;
	g->cb = cb;
	g->arg = arg;
	g->port = req->port;
	g->max_body = req->max_body;
	g->io_timeout_ms = req->io_timeout_ms;
	g->timeout_ms = req->timeout_ms;
	g->deadline_ms = engine_now_ms() + req->timeout_ms;
	if ((g->host = strdup(req->host)) == NULL ||
	    (g->path = strdup(req->path)) == NULL)
		goto fail;
	g->conn = tcp_connect_start(engine, req->addrs, req->n_addrs, req->port,
	    req->connect_timeout_ms, g->deadline_ms, s_on_connect, g);
	if (g->conn == NULL)
		goto fail;
	return g;
fail:
	s_free(g);
	return NULL;
}

void
https_get_cancel(struct https_get **gp)
{
	if (*gp == NULL)
		return;
	s_free(*gp);
	*gp = NULL;
}
