/* mx_match.h -- host names and the policy's mx patterns (RFC 8461 4.1). */
#ifndef MTASTS_MX_MATCH_H
#define MTASTS_MX_MATCH_H

#include <stddef.h>

#define DNSNAME_MAX 254 /* 253 characters and the NUL */

/*
 * Lower-cases in and strips one trailing dot into out.  Returns 0, or -1
 * when the result is empty or does not fit in outlen.
 */
int dnsname_normalize(const char *in, char *out, size_t outlen);

/*
 * 1 when pattern is a valid policy mx value: an LDH domain name of at least
 * two labels, optionally "*." followed by one; not an IP address, no
 * non-ASCII (U-label) bytes, each label 1..63 bytes, 253 in all.
 */
int mx_pattern_valid(const char *pattern);

/*
 * 1 when host (normalized) matches pattern (case-insensitive).  "*.b.c"
 * matches exactly one extra leftmost label: "a.b.c", neither "b.c" nor
 * "x.a.b.c".
 */
int mx_match(const char *pattern, const char *host);
/* 1 when host matches any of the n patterns. */
int mx_match_any(char *const *patterns, size_t n, const char *host);

#endif
