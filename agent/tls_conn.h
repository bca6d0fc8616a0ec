/* tls_conn.h -- a non-blocking TLS client handshake that records facts. */
#ifndef MTASTS_TLS_CONN_H
#define MTASTS_TLS_CONN_H

#include <stddef.h>

#include <openssl/x509.h>

#include "engine.h"

struct tls_result {
	int ok;		  /* the handshake completed */
	int timed_out;	  /* it did not, for want of time */
	char error[256];  /* why it did not */
	int version_num;  /* TLS1_2_VERSION etc., 0 when unknown */
	char version[16]; /* "TLSv1.3" */
	char cipher[64];
	long handshake_ms;
	STACK_OF(X509) * chain;	    /* owned: the chain as the server sent it */
	unsigned char *ocsp_staple; /* owned DER, or NULL */
	size_t ocsp_staple_len;
	/* owned: the live session, only from tls_conn_start_session() and
	 * only when ok; its socket stays the caller's. */
	SSL *ssl;
};

/* Releases what a result owns and zeroes it. */
void tls_result_clear(struct tls_result *r);

/*
 * Called once, always from the event loop (never inside tls_conn_start).  r
 * is the connection's; a callee keeps members by taking and NULLing them.
 * The connection object is freed after the callback returns.
 */
typedef void (*tls_conn_cb)(struct tls_result *r, void *arg);

struct tls_conn;

/*
 * Runs a handshake on the connected socket fd (borrowed: the caller closes
 * it after the callback) with SNI sni, within timeout_ms.  Returns NULL if
 * it could not start.
 */
struct tls_conn *tls_conn_start(struct engine *engine, int fd, const char *sni,
    int timeout_ms, tls_conn_cb cb, void *arg);
/*
 * As tls_conn_start(), but a completed handshake hands its session over in
 * r->ssl so that the caller can speak over it (HTTPS).
 */
struct tls_conn *tls_conn_start_session(struct engine *engine, int fd,
    const char *sni, int timeout_ms, tls_conn_cb cb, void *arg);
/* Abandons a handshake; its callback is not called.  NULLs *conn. */
void tls_conn_cancel(struct tls_conn **conn);

#endif
