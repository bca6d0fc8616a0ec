/* https_get.h -- one bounded HTTPS GET over HTTP/1.1 on the engine's loop. */
#ifndef MTASTS_HTTPS_GET_H
#define MTASTS_HTTPS_GET_H

#include <stddef.h>

#include "engine.h"
#include "tcp_connect.h"
#include "tls_conn.h"

#define HTTPS_GET_ADDRS_MAX TCP_CONNECT_ADDRS_MAX

enum https_get_error {
	HTTPS_OK, /* a complete response (perhaps too_large) */
	/* no TCP connection to any address: each refused, unreachable or
	 * out of its connect time (error lists them) */
	HTTPS_CONNECT,
	HTTPS_TLS, /* the TLS handshake failed (see tls.error) */
	/* the whole request's time ran out with addresses left to try, or
	 * the handshake or a read ran out of time */
	HTTPS_TIMEOUT,
	HTTPS_PROTOCOL,	  /* the server's bytes are not HTTP/1.x */
	HTTPS_RECV,	  /* the connection broke before a response */
	HTTPS_INCOMPLETE, /* it broke after the headers, in the body */
	HTTPS_NOMEM
};

struct https_get_req {
	const char *host; /* for SNI and Host: */
	int port;
	const char *path;   /* absolute path, "/..." */
	char *const *addrs; /* tried in order, at most HTTPS_GET_ADDRS_MAX */
	size_t n_addrs;	    /* the addresses are copied */
	size_t max_body;    /* body bytes kept; one more ends the read */
	int connect_timeout_ms; /* per address */
	int io_timeout_ms;	/* handshake, and the longest silence */
	int timeout_ms;		/* the whole request */
};

struct https_get_result {
	enum https_get_error kind;
	char error[320];     /* "" when kind is HTTPS_OK */
	long status;	     /* 0 unless a whole response head came */
	char *content_type;  /* owned, or NULL */
	char *location;	     /* owned: a 3xx target made absolute, or NULL */
	unsigned char *body; /* owned, NUL-terminated; at most max_body */
	size_t body_len;
	int too_large;	       /* the server sent more than max_body */
	char ip[64];	       /* the address connected to, or "" */
	struct tls_result tls; /* owned: the handshake's facts; tls.ok */
};

/*
 * Called once, always from the event loop.  res stays owned by the request,
 * which is freed right after the callback returns; a callee that wants to
 * keep a member takes it and sets it to NULL.
 */
typedef void (*https_get_cb)(struct https_get_result *res, void *arg);

struct https_get;

/*
 * Starts GET https://host[:port]path on the addresses of req, with no
 * redirect followed and no certificate verified (the chain is in
 * res->tls for the caller to judge).  Calls malloc; returns NULL when it
 * could not start, and then the callback is never called.
 */
struct https_get *https_get_start(struct engine *engine,
    const struct https_get_req *req, https_get_cb cb, void *arg);
/* Abandons a request; its callback is not called.  NULLs *g. */
void https_get_cancel(struct https_get **g);

#endif
