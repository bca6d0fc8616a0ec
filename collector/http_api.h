/* http_api.h -- the collector's HTTP JSON API, /metrics and the domain
 * plots, served by libmicrohttpd on a thread of its own. */
#ifndef MTASTS_HTTP_API_H
#define MTASTS_HTTP_API_H

#include <stddef.h>

#include "ingest.h"
#include "notify.h"

/*
 * One libmicrohttpd thread polls every connection and runs every request
 * (MHD_USE_INTERNAL_POLLING_THREAD, no thread per connection), on a
 * PostgreSQL connection of its own that it opens on first use and
 * reopens when lost: a slow report holds up other HTTP clients, never the
 * caller's ZeroMQ loop.  Routes, status codes and fields: docs/api.md.
 *
 * Bounds: HTTP_API_CONN_MAX connections at once, HTTP_API_TIMEOUT_S
 * idle seconds per connection, HTTP_API_BODY_MAX bytes of request body
 * (the ack POST; a larger Content-Length is answered 413, a larger
 * chunked body closes the connection), request line and headers within
 * HTTP_API_HEADER_MAX, each query cut off by the server after
 * HTTP_API_QUERY_TIMEOUT_MS.
 */

#define HTTP_API_BIND_DEFAULT	  "127.0.0.1:8350"
#define HTTP_API_CONN_MAX	  64
#define HTTP_API_TIMEOUT_S	  15
#define HTTP_API_BODY_MAX	  4096
#define HTTP_API_HEADER_MAX	  32768
#define HTTP_API_QUERY_TIMEOUT_MS 10000

struct http_api_opts {
	/* "IP:PORT" or "[IPv6]:PORT", numeric; NULL: HTTP_API_BIND_DEFAULT.
	 * Port 0 takes a free port (http_api_port tells which). */
	const char *bind;
	/* libpq conninfo of the store's database (required). */
	const char *conninfo;
	/* Bearer token every request must carry; NULL or "": none, which
	 * is refused unless bind is a loopback address. */
	const char *token;
	/* Seconds without news before the agents report calls an agent
	 * silent; 0: REPORT_SILENT_AFTER_S. */
	long silent_after_s;
	/* Woken after an ack so its event goes out at once; borrowed, it
	 * must outlive the API (stop the API first).  May be NULL. */
	struct notify *notify;
};

struct http_api;

/*
 * Binds and starts the thread; the strings of opts are copied.  Calls
 * malloc.  Returns the API (stop with http_api_stop) or NULL with the
 * reason in err: a bad bind, no conninfo, a non-loopback bind without a
 * token, or a socket that cannot be bound.  The thread is started with
 * every signal blocked, so signals stay with the caller's threads.
 */
struct http_api *http_api_start(
    const struct http_api_opts *opts, char *err, size_t errlen);

/* Stops the thread (requests in progress finish first), closes the
 * database connection, frees *api and NULLs it.  NULL is fine. */
void http_api_stop(struct http_api **api);

/*
 * The ingest counters /metrics shows; copied under a mutex, so the caller
 * (the main loop, about once a second) never waits on a request.  Until
 * the first call /metrics leaves them out.
 */
void http_api_set_counters(
    struct http_api *api, const struct ingest_counters *ic);

/* The port bound (the one the kernel chose when the bind said 0). */
unsigned http_api_port(const struct http_api *api);

#endif
