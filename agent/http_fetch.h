/* http_fetch.h -- OCSP and AIA requests on the engine's curl multi. */
#ifndef MTASTS_HTTP_FETCH_H
#define MTASTS_HTTP_FETCH_H

#include <stddef.h>

#include <curl/curl.h>

#include "engine.h"

struct http_fetch_req {
	const char *url;
	const char *post_type; /* Content-Type of a POST, NULL for GET */
	const unsigned char *post;
	size_t post_len;
	size_t max_body; /* bytes kept; one more aborts the transfer */
	long timeout_ms;
	long connect_timeout_ms;
};

struct http_fetch_result {
	CURLcode curl_code;
	char error[CURL_ERROR_SIZE];
	long status;	     /* 0 when no response came */
	unsigned char *body; /* owned; at most max_body bytes */
	size_t body_len;
	int too_large; /* the server sent more than max_body */
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
