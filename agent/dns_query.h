/* dns_query.h -- asynchronous DNS lookups on the engine's resolver. */
#ifndef MTASTS_DNS_QUERY_H
#define MTASTS_DNS_QUERY_H

#include "dns_packet.h"
#include "engine.h"

/*
 * Called once with the answer; ans is freed after the callback returns (a
 * callee may take members and NULL them).
 */
typedef void (*dns_query_cb)(struct dns_answer *ans, void *arg);

struct dns_query;

/*
 * Asks for name/qtype; the answer, a failure or a timeout after timeout_ms
 * arrives through cb, possibly before this function returns.  *slot holds
 * the query while it is pending and is set to NULL before cb runs, so the
 * caller can always cancel through it.  Returns 0, or -1 when the query
 * could not be started (cb is then not called).
 */
int dns_query_start(struct engine *engine, const char *name, int qtype,
    int timeout_ms, dns_query_cb cb, void *arg, struct dns_query **slot);

/* Abandons a query; its callback is not called.  NULLs *query. */
void dns_query_cancel(struct dns_query **query);

#endif
