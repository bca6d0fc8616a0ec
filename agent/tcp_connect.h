/* tcp_connect.h -- a TCP connection to the first of a host's addresses. */
#ifndef MTASTS_TCP_CONNECT_H
#define MTASTS_TCP_CONNECT_H

#include <stddef.h>

#include "engine.h"

#define TCP_CONNECT_ADDRS_MAX 8

struct tcp_connect_result {
	int fd;		  /* connected, now the callee's to close; -1: none */
	char ip[64];	  /* the address it runs on; "" when none */
	int out_of_time;  /* none: the deadline passed with addresses left */
	char errors[320]; /* why each address tried failed, "IP: why; ..." */
};

/*
 * Called once, always from the event loop (never inside
 * tcp_connect_start).  r is the connect's; the object is freed after the
 * callback returns.
 */
typedef void (*tcp_connect_cb)(struct tcp_connect_result *r, void *arg);

struct tcp_connect;

/*
 * Tries addrs (copied; at most TCP_CONNECT_ADDRS_MAX) in order on port,
 * each for at most connect_timeout_ms, and none past deadline_ms
 * (engine_now_ms() time; 0 for no deadline).  NULL when it could not
 * start.
 */
struct tcp_connect *tcp_connect_start(struct engine *engine, char *const *addrs,
    size_t n, int port, int connect_timeout_ms, long long deadline_ms,
    tcp_connect_cb cb, void *arg);
/* Abandons the attempt (closing its socket); the callback is not called.
 * NULLs *c. */
void tcp_connect_cancel(struct tcp_connect **c);

#endif
