/* wire.h -- bounded encoding, decoding and checking of the agent wire. */
#ifndef MTASTS_WIRE_H
#define MTASTS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mtastswatch/v1/wire.pb-c.h"

/*
 * Limits every peer holds to; proto/README.md explains them.  A message
 * larger than WIRE_MAX is refused before protobuf-c sees a byte of it.
 */
#define WIRE_MAX	    (4 * 1024 * 1024)
#define WIRE_PROTO_MINOR    0	   /* additions to wire.proto this code knows */
#define WIRE_SHA256_LEN	    32	   /* chain references and policy digest */
#define WIRE_MX_MAX	    64	   /* MX observations per result */
#define WIRE_FINDINGS_MAX   256	   /* findings per result */
#define WIRE_CERTS_MAX	    64	   /* distinct certificates per result */
#define WIRE_CERT_DER_MAX   65536  /* bytes of one certificate */
#define WIRE_POLICY_RAW_MAX 65536  /* RFC 8461 3.3 */
#define WIRE_CODE_MAX	    64	   /* characters of a finding code */
#define WIRE_TASKS_MAX	    100000 /* domains in one task set */

/*
 * Decodes and checks one agent message (one ZeroMQ frame).  Refuses an empty
 * or oversized buffer before decoding; then checks that exactly one known
 * body is set, that every string field is valid UTF-8 and, for a result,
 * the limits above: seq > 0, domain a host name, chain references of 32
 * bytes that name a certificate of the result, every certificate DER that
 * parses, finding codes of [A-Z0-9_]{1,64} (codes this build does not know
 * are accepted), policy digest empty or 32 bytes.  Unknown fields are
 * ignored.  Returns the message (free with wire_agent_free) or NULL with the
 * reason in err.  Calls malloc.
 */
Mtastswatch__V1__AgentMessage *wire_agent_decode(
    const void *buf, size_t len, char *err, size_t errlen);
/* Frees what wire_agent_decode returned and NULLs *msg; NULL is fine. */
void wire_agent_free(Mtastswatch__V1__AgentMessage **msg);

/*
 * The same for a collector message: a task set has interval_s > 0 and at
 * most WIRE_TASKS_MAX domains, each a host name.  Free with
 * wire_collector_free.
 */
Mtastswatch__V1__CollectorMessage *wire_collector_decode(
    const void *buf, size_t len, char *err, size_t errlen);
void wire_collector_free(Mtastswatch__V1__CollectorMessage **msg);

/*
 * Encoders.  Each packs one message into a new buffer in *buf (caller frees
 * with free()) of *len bytes, and returns 0, or -1 (out of memory, a bad
 * argument, or larger than WIRE_MAX) with *buf NULL.  Strings are borrowed;
 * bytes that are not UTF-8 are sent as U+FFFD.
 */

/* What an agent says first on every connection. */
struct wire_hello {
	const char *name;     /* informational: identity is the CURVE key */
	const char *region;   /* may be NULL */
	const char *version;  /* may be NULL */
	const char *build;    /* may be NULL */
	int64_t clock_ms;     /* agent clock, Unix ms */
	uint64_t spool_first; /* oldest sequence spooled, 0 = none */
	uint64_t spool_last;  /* newest sequence spooled, 0 = none */
};

/* proto_minor is always WIRE_PROTO_MINOR. */
int wire_agent_encode_hello(
    const struct wire_hello *hello, unsigned char **buf, size_t *len);
int wire_agent_encode_heartbeat(int64_t clock_ms, uint64_t spool_first,
    uint64_t spool_last, uint32_t in_flight, unsigned char **buf, size_t *len);
/* Results first..last (1 <= first <= last) will never come; reason may be
 * NULL. */
int wire_agent_encode_gap(uint64_t first, uint64_t last, const char *reason,
    unsigned char **buf, size_t *len);

int wire_collector_encode_ack(
    uint64_t committed_seq, uint32_t credit, unsigned char **buf, size_t *len);
/* domains[0..n) must be host names (checked); interval_s > 0. */
int wire_collector_encode_tasks(uint64_t version, uint32_t interval_s,
    char *const *domains, size_t n, unsigned char **buf, size_t *len);
int wire_collector_encode_reject(
    const char *reason, unsigned char **buf, size_t *len);

/*
 * Packs any message into a new buffer in *buf (caller frees with free()) of
 * *len bytes.  Returns 0, or -1 with *buf NULL when out of memory or when
 * the encoding would be empty or larger than WIRE_MAX (a peer would refuse
 * either).
 */
int wire_pack(const ProtobufCMessage *m, unsigned char **buf, size_t *len);

/*
 * 1 when name is a host name as the wire carries it: LDH labels of 1 to 63
 * characters not starting or ending with '-', at most 253 characters, at
 * least one dot, no trailing dot.
 */
int wire_host_valid(const char *name);

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes), its
 * code point in *cp when cp is not NULL; 0 when there is none (RFC 3629:
 * overlong forms, surrogates and code points past U+10FFFF refused).
 */
size_t wire_utf8_seq(const void *s, size_t n, uint32_t *cp);

/* 1 when s[0..len) is valid UTF-8 (no overlong forms, no surrogates). */
int wire_utf8_valid(const char *s, size_t len);

/*
 * A NUL-terminated copy of s[0..len) in which every byte that is not part of
 * valid UTF-8, and every NUL, became U+FFFD.  Calls malloc; caller frees;
 * NULL when out of memory.
 */
char *wire_utf8_clean(const char *s, size_t len);

#endif
