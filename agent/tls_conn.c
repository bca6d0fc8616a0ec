/* tls_conn.c -- a non-blocking TLS client handshake that records facts. */
#include "tls_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct tls_conn {
	struct engine *engine;
	SSL *ssl;
	struct event *ev;
	long long started_ms;
	long long deadline_ms;
	int keep_session;
	tls_conn_cb cb;
	void *arg;
	struct tls_result res;
};

void
tls_result_clear(struct tls_result *r)
{
	if (r->chain != NULL)
		sk_X509_pop_free(r->chain, X509_free);
	free(r->ocsp_staple);
	SSL_free(r->ssl);
	memset(r, 0, sizeof(*r));
}

static void
s_conn_free(struct tls_conn *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	if (c->ssl != NULL) {
		/* One close_notify attempt, never a wait for the peer's. */
		if (c->res.ok)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	tls_result_clear(&c->res);
	free(c);
}

static void
s_capture(struct tls_conn *c)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
	const unsigned char *staple = NULL;
	long len;

	if (chain != NULL && c->res.chain == NULL)
		c->res.chain = X509_chain_up_ref(chain);
	c->res.version_num = SSL_version(c->ssl);
	snprintf(c->res.version, sizeof(c->res.version), "%s",
	    SSL_get_version(c->ssl));
	if (SSL_get_current_cipher(c->ssl) != NULL)
		snprintf(c->res.cipher, sizeof(c->res.cipher), "%s",
		    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	len = SSL_get_tlsext_status_ocsp_resp(c->ssl, &staple);
	if (len > 0 && len <= 65536 && staple != NULL &&
	    c->res.ocsp_staple == NULL) {
		c->res.ocsp_staple = malloc((size_t)len);
		if (c->res.ocsp_staple != NULL) {
			memcpy(c->res.ocsp_staple, staple, (size_t)len);
			c->res.ocsp_staple_len = (size_t)len;
		}
	}
}

static void
s_finish(struct tls_conn *c)
{
	c->res.handshake_ms = (long)(engine_now_ms() - c->started_ms);
	c->cb(&c->res, c->arg);
	s_conn_free(c);
}

static void s_step(evutil_socket_t fd, short what, void *arg);

static int
s_wait(struct tls_conn *c, short kind)
{
	struct timeval tv;
	long long left = c->deadline_ms - engine_now_ms();

	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = event_new(c->engine->base, SSL_get_fd(c->ssl), kind, s_step, c);
	if (c->ev == NULL || event_add(c->ev, &tv) == -1)
		return -1;
	return 0;
}

static void
s_step(evutil_socket_t fd, short what, void *arg)
{
	struct tls_conn *c = arg;
	int rc, err;
	unsigned long e;

	(void)fd;
	if (what & EV_TIMEOUT) {
		c->res.timed_out = 1;
		snprintf(c->res.error, sizeof(c->res.error),
		    "TLS handshake timed out");
		s_capture(c);
		s_finish(c);
		return;
	}
	ERR_clear_error();
	rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->res.ok = 1;
		s_capture(c);
		if (c->keep_session) {
			c->res.ssl = c->ssl;
			c->ssl = NULL;
		}
		s_finish(c);
		return;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		if (s_wait(c,
			err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) == 0)
			return;
		snprintf(c->res.error, sizeof(c->res.error), "out of memory");
		s_finish(c);
		return;
	}
	e = ERR_peek_error();
	if (e != 0)
		snprintf(c->res.error, sizeof(c->res.error), "%s",
		    ERR_reason_error_string(e) ? ERR_reason_error_string(e)
					       : "TLS error");
	else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
		snprintf(c->res.error, sizeof(c->res.error),
		    "connection closed during the TLS handshake");
	else
		snprintf(c->res.error, sizeof(c->res.error),
		    "TLS handshake failed (error %d)", err);
	ERR_clear_error();
	s_capture(c);
	s_finish(c);
}

static struct tls_conn *
s_start(struct engine *engine, int fd, const char *sni, int timeout_ms,
    int keep_session, tls_conn_cb cb, void *arg)
{
	struct tls_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->engine = engine;
	c->keep_session = keep_session;
	c->cb = cb;
	c->arg = arg;
	c->started_ms = engine_now_ms();
	c->deadline_ms = c->started_ms + timeout_ms;
	if ((c->ssl = SSL_new(engine->ssl_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(c->ssl, sni) != 1)
		goto fail;
	SSL_set_connect_state(c->ssl);
	/* The first step runs from the loop so the callback never fires
	 * inside this function. */
	if (s_wait(c, EV_WRITE) == -1)
		goto fail;
	return c;
fail:
	s_conn_free(c);
	return NULL;
}

struct tls_conn *
tls_conn_start(struct engine *engine, int fd, const char *sni, int timeout_ms,
    tls_conn_cb cb, void *arg)
{
	return s_start(engine, fd, sni, timeout_ms, 0, cb, arg);
}

struct tls_conn *
tls_conn_start_session(struct engine *engine, int fd, const char *sni,
    int timeout_ms, tls_conn_cb cb, void *arg)
{
	return s_start(engine, fd, sni, timeout_ms, 1, cb, arg);
}

void
tls_conn_cancel(struct tls_conn **cp)
{
	if (*cp == NULL)
		return;
	s_conn_free(*cp);
	*cp = NULL;
}
