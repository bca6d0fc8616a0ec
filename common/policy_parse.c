/* policy_parse.c -- parser of the MTA-STS policy body (RFC 8461 3.2). */
#include "policy_parse.h"

#include "abnf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_match.h"

#define FIELD_NAME_MAX 32
#define MAX_AGE_DIGITS 10
#define MX_SHOWN_MAX   80 /* longest mx value quoted in a reason */

/* What the parse has seen so far; the first error is the one reported. */
struct policy_state {
	struct sts_policy *out;
	char *err;
	size_t errlen;
	int failed;
	size_t lineno;
	int seen_version, seen_mode, seen_max_age;
	size_t mx_cap;
};

static void s_fail(struct policy_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
s_fail(struct policy_state *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->failed)
		return;
	st->failed = 1;
	if (st->err == NULL || st->errlen == 0)
		return;
	n = 0;
	if (st->lineno > 0)
		n = snprintf(st->err, st->errlen, "line %zu: ", st->lineno);
	if (n < 0 || (size_t)n >= st->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static int
s_is_name_char(unsigned char c, size_t at)
{
	if (abnf_is_alnum(c))
		return 1;
	return at > 0 && (c == '_' || c == '-' || c == '.');
}

static int
s_value_is(const char *v, size_t vlen, const char *word)
{
	return strlen(word) == vlen && memcmp(v, word, vlen) == 0;
}

/* Says which rule an mx value breaks, for a reason an operator can act on. */
static const char *
s_mx_problem(const char *mx)
{
	const unsigned char *p;

	for (p = (const unsigned char *)mx; *p != '\0'; p++) {
		if (*p >= 0x80)
			return "is not ASCII (use the A-label, xn--...)";
	}
	if (strncmp(mx, "*.", 2) == 0 && strchr(mx + 2, '*') == NULL &&
	    strchr(mx + 2, '.') == NULL)
		return "needs at least two labels after \"*.\"";
	if (strchr(mx, '*') != NULL)
		return "has a wildcard other than a leading \"*.\"";
	if (mx[0] == '[' || strchr(mx, ':') != NULL ||
	    strspn(mx, "0123456789.") == strlen(mx))
		return "is an IP address, not a host name";
	if (strchr(mx, '.') == NULL)
		return "needs at least two labels";
	return "is not a valid host name";
}

static void
s_add_mx(struct policy_state *st, const char *v, size_t vlen)
{
	struct sts_policy *out = st->out;
	char *mx, **grown;

	if (out->n_mx == POLICY_MX_MAX) {
		s_fail(st, "more than %d mx lines", POLICY_MX_MAX);
		return;
	}
	if (out->n_mx == st->mx_cap) {
		st->mx_cap = st->mx_cap == 0 ? 4 : st->mx_cap * 2;
		grown = realloc(out->mx, st->mx_cap * sizeof(*out->mx));
		if (grown == NULL) {
			s_fail(st, "out of memory");
			return;
		}
		out->mx = grown;
	}
	mx = strndup(v, vlen);
	if (mx == NULL) {
		s_fail(st, "out of memory");
		return;
	}
	for (char *p = mx; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	out->mx[out->n_mx++] = mx;
	if (!mx_pattern_valid(mx))
		s_fail(
		    st, "mx \"%.*s\" %s", MX_SHOWN_MAX, mx, s_mx_problem(mx));
}

static void
s_set_max_age(struct policy_state *st, const char *v, size_t vlen)
{
	long age = 0;

	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9') {
			s_fail(st, "max_age must be digits");
			return;
		}
	}
	if (vlen > MAX_AGE_DIGITS) {
		s_fail(st, "max_age must be at most %d digits", MAX_AGE_DIGITS);
		return;
	}
	/* Ten digits fit in a long on every platform we build on (LP64). */
	for (size_t i = 0; i < vlen; i++)
		age = age * 10 + (v[i] - '0');
	if (age > POLICY_MAX_AGE_LIMIT) {
		s_fail(st, "max_age above %ld", POLICY_MAX_AGE_LIMIT);
		return;
	}
	st->out->max_age = age;
}

static void
s_field(struct policy_state *st, const char *key, size_t klen, const char *v,
    size_t vlen)
{
	struct sts_policy *out = st->out;

	/*
	 * Field names are case-sensitive (%s in the ABNF): "Mode" is an
	 * unknown extension, ignored.  A repeated field keeps its first value
	 * so that a policy reads the same to every sender; mx alone repeats.
	 */
	if (s_value_is(key, klen, "mx")) {
		s_add_mx(st, v, vlen);
	} else if (s_value_is(key, klen, "version")) {
		if (st->seen_version++)
			return;
		if (s_value_is(v, vlen, "STSv1"))
			out->version_ok = 1;
		else
			s_fail(st, "version must be STSv1");
	} else if (s_value_is(key, klen, "mode")) {
		if (st->seen_mode++)
			return;
		if (s_value_is(v, vlen, "enforce"))
			out->mode = STS_MODE_ENFORCE;
		else if (s_value_is(v, vlen, "testing"))
			out->mode = STS_MODE_TESTING;
		else if (s_value_is(v, vlen, "none"))
			out->mode = STS_MODE_NONE;
		else
			s_fail(st, "mode must be enforce, testing or none");
	} else if (s_value_is(key, klen, "max_age")) {
		if (st->seen_max_age++)
			return;
		s_set_max_age(st, v, vlen);
	}
}

/* Splits one line (without its line end) into key and value. */
static void
s_line(struct policy_state *st, const char *line, size_t len)
{
	size_t klen = 0, vstart, vend;
	unsigned char c;

	/*
	 * The ABNF has no empty lines, but every widespread sender skips them
	 * and policies ending in a blank line are common: calling that an
	 * error would be a false alarm about mail that flows.
	 */
	if (len == 0)
		return;
	/* Checked first so that every later reason is about visible text. */
	for (size_t i = 0; i < len; i++) {
		c = (unsigned char)line[i];
		if (c == '\0') {
			s_fail(st, "NUL byte");
			return;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			s_fail(st, "control character 0x%02x", c);
			return;
		}
	}
	while (klen < len && s_is_name_char((unsigned char)line[klen], klen))
		klen++;
	if (memchr(line, ':', len) == NULL) {
		s_fail(st, "no ':' after the field name");
		return;
	}
	if (line[klen] != ':') {
		if (klen == 0)
			s_fail(st, "line must begin with a field name");
		else
			s_fail(st, "invalid byte 0x%02x in field name",
			    (unsigned char)line[klen]);
		return;
	}
	if (klen == 0) {
		s_fail(st, "empty field name");
		return;
	}
	if (klen > FIELD_NAME_MAX) {
		s_fail(
		    st, "field name longer than %d characters", FIELD_NAME_MAX);
		return;
	}
	vstart = klen + 1;
	while (vstart < len && abnf_is_wsp((unsigned char)line[vstart]))
		vstart++;
	vend = len;
	while (vend > vstart && abnf_is_wsp((unsigned char)line[vend - 1]))
		vend--;
	if (vend == vstart) {
		s_fail(
		    st, "field \"%.*s\" has an empty value", (int)klen, line);
		return;
	}
	s_field(st, line, klen, line + vstart, vend - vstart);
}

int
policy_parse(const char *body, size_t len, struct sts_policy *out, char *err,
    size_t errlen)
{
	struct policy_state st;
	const char *nl;
	size_t pos = 0, line_len;

	memset(out, 0, sizeof(*out));
	out->max_age = -1;
	memset(&st, 0, sizeof(st));
	st.out = out;
	st.err = err;
	st.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (body == NULL || len == 0) {
		s_fail(&st, "empty policy");
		return -1;
	}

	/*
	 * Lines are read to the end even after an error so that out shows
	 * every mode and mx line a report may want.
	 */
	while (pos < len) {
		st.lineno++;
		nl = memchr(body + pos, '\n', len - pos);
		line_len = nl != NULL ? (size_t)(nl - (body + pos)) : len - pos;
		if (nl != NULL && line_len > 0 &&
		    body[pos + line_len - 1] == '\r')
			s_line(&st, body + pos, line_len - 1);
		else
			s_line(&st, body + pos, line_len);
		pos += line_len + (nl != NULL);
	}

	st.lineno = 0;
	if (!st.seen_version)
		s_fail(&st, "missing version field");
	if (!st.seen_mode)
		s_fail(&st, "missing mode field");
	if (!st.seen_max_age)
		s_fail(&st, "missing max_age field");
	if (out->n_mx == 0 && out->mode != STS_MODE_NONE)
		s_fail(&st, "no mx field (required unless mode is none)");
	return st.failed ? -1 : 0;
}

void
policy_free(struct sts_policy *policy)
{
	if (policy == NULL)
		return;
	for (size_t i = 0; i < policy->n_mx; i++)
		free(policy->mx[i]);
	free(policy->mx);
	memset(policy, 0, sizeof(*policy));
	policy->max_age = -1;
}

const char *
policy_mode_name(enum sts_mode mode)
{
	switch (mode) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_NONE:
		return "none";
	case STS_MODE_UNSET:
		break;
	}
	return "unset";
}
