/* policy_parse.h -- the MTA-STS policy body (RFC 8461 section 3.2). */
#ifndef MTASTS_POLICY_PARSE_H
#define MTASTS_POLICY_PARSE_H

#include <stddef.h>

#define POLICY_MAX_AGE_LIMIT 31557600L
#define POLICY_MX_MAX	     256 /* further mx lines are a syntax error */

enum sts_mode {
	STS_MODE_UNSET = 0,
	STS_MODE_ENFORCE,
	STS_MODE_TESTING,
	STS_MODE_NONE
};

struct sts_policy {
	int version_ok;	    /* "version: STSv1" was present */
	enum sts_mode mode; /* STS_MODE_UNSET when absent or unknown */
	long max_age;	    /* -1 when absent or invalid */
	char **mx;	    /* owned; lower-cased patterns, as written */
	size_t n_mx;
};

/*
 * Parses a policy body (CRLF or LF line ends; need not be NUL-terminated).
 * out is filled as far as the body allows even when it is invalid, so a
 * report can still show the mode and mx lines.  Returns 0 when the policy is
 * valid, -1 otherwise with the first reason in err.  Calls malloc: release
 * out with policy_free() in both cases.
 */
int policy_parse(const char *body, size_t len, struct sts_policy *out,
    char *err, size_t errlen);
void policy_free(struct sts_policy *policy);
const char *policy_mode_name(enum sts_mode mode);

#endif
