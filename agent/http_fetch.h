/* http_fetch.h -- bounded HTTP(S) requests on the engine's curl multi. */
#ifndef MTASTS_HTTP_FETCH_H
#define MTASTS_HTTP_FETCH_H

#include <stddef.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "engine.h"

struct http_fetch_req {
	const char *url;
	/* "host:port:addr[,addr...]" so curl uses our resolver's answer, or
	 * NULL to let curl resolve. */
	const char *resolve;
	const char *post_type; /* Content-Type of a POST, NULL for GET */
	const unsigned char *post;
	size_t post_len;
	size_t max_body; /* bytes kept; one more aborts the transfer */
	long timeout_ms;
	long connect_timeout_ms;
	int https_only; /* refuse any other scheme */
};

struct http_fetch_result {
	CURLcode curl_code;
	char error[CURL_ERROR_SIZE];
	long status;	     /* 0 when no response came */
	char *content_type;  /* owned, or NULL */
	char *location;	     /* owned: where a 3xx points, or NULL */
	unsigned char *body; /* owned; at most max_body bytes */
	size_t body_len;
	int too_large; /* the server sent more than max_body */
	char ip[64];   /* the address connected to, or "" */
	/* TLS facts of the connection, captured when its handshake ended. */
	int tls_done;
	char tls_version[16];
	char cipher[64];
	long handshake_ms;
	STACK_OF(X509) * chain;	    /* owned; as the server sent it */
	unsigned char *ocsp_staple; /* owned DER, or NULL */
	size_t ocsp_staple_len;
};

/*
 * Called once when the request ends.  res stays owned by the fetch, which is
 * freed right after the callback returns; a callee that wants to keep a
 * member takes it and sets it to NULL.
 */
typedef void (*http_fetch_cb)(struct http_fetch_result *res, void *arg);

struct http_fetch;

/* Starts a request.  Returns NULL when it could not even be started. */
struct http_fetch *http_fetch_start(struct engine *engine,
    const struct http_fetch_req *req, http_fetch_cb cb, void *arg);
/* Abandons a request; its callback is not called.  NULLs *fetch. */
void http_fetch_cancel(struct http_fetch **fetch);
/* For engine.c: the transfer on easy ended with rc. */
void http_fetch_finish(CURL *easy, CURLcode rc);

#endif
