/* result_pb.h -- a probe result as the protobuf AgentMessage of the wire. */
#ifndef MTASTS_RESULT_PB_H
#define MTASTS_RESULT_PB_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"

/*
 * Packs r (borrowed) as an AgentMessage whose body is a ProbeResult with
 * sequence seq (> 0) and round number round, carrying what the JSON of
 * `mtasts-agent probe --json` carries.  Every distinct certificate of the
 * policy host and MX chains travels once, chains refer to it by SHA-256.
 * What a collector would refuse is left out rather than sent: MX beyond
 * WIRE_MX_MAX and findings beyond WIRE_FINDINGS_MAX are dropped, a chain is
 * cut at the first certificate that is over WIRE_CERT_DER_MAX or would be
 * certificate number WIRE_CERTS_MAX + 1, the policy body is cut at
 * WIRE_POLICY_RAW_MAX, and bytes that are not UTF-8 in strings become
 * U+FFFD.  On success *buf is a new buffer of *len bytes that the caller
 * frees with free().  Returns 0, or -1 with *buf NULL when seq is 0, the
 * domain is not a host name, memory ran out, or the encoding would exceed
 * WIRE_MAX.
 */
int result_pb_encode(const struct probe_result *r, uint64_t seq, uint64_t round,
    unsigned char **buf, size_t *len);

#endif
