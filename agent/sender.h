/* sender.h -- delivers the spool to a collector over ZeroMQ CURVE. */
#ifndef MTASTS_SENDER_H
#define MTASTS_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include <czmq.h>
#include <event2/event.h>

#include "agent_config.h"
#include "spool.h"

/*
 * One DEALER connection at a time, to one of the configured endpoints,
 * driven by the agent's libevent loop.  On every connection the agent says
 * Hello, waits for the Ack, then sends what the spool holds after the
 * acknowledged sequence, with at most `credit` results unacknowledged.  No
 * Ack within ack_timeout while something is awaited, a lost connection or a
 * Reject closes the socket and moves to the next endpoint after a backoff
 * of 1 s doubling to 60 s, with jitter.
 */

/* What Hello reports as the agent's version. */
#define SENDER_AGENT_VERSION "0.1.0"

/* Called for each TaskSet; domains are borrowed for the call. */
typedef void (*sender_tasks_fn)(uint64_t version, uint32_t interval_s,
    char *const *domains, size_t n, void *arg);

struct sender;

/*
 * Takes its settings from cfg (copied; the key pair is duplicated), reads
 * from spool (borrowed, must outlive the sender), and connects at once.
 * Calls malloc; returns NULL with the reason in err.  Free with
 * sender_free().
 */
struct sender *sender_new(struct event_base *base, struct spool *spool,
    const struct agent_config *cfg, sender_tasks_fn tasks, void *arg, char *err,
    size_t errlen);
/* Closes the socket, frees *s and NULLs it.  NULL is fine. */
void sender_free(struct sender **s);

/*
 * New settings (SIGHUP).  Heartbeat and ack timeout apply at once; the
 * endpoints, keys, name and region on the next connection.  Returns 0, or
 * -1 when out of memory (the old settings stay).
 */
int sender_reconfigure(struct sender *s, const struct agent_config *cfg);

/* More results are durable in the spool: send what the window allows. */
void sender_kick(struct sender *s);

/* The endpoint in use or being tried. */
const char *sender_endpoint(const struct sender *s);

#endif
