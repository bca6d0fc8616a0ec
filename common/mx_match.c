/* mx_match.c -- host names and the policy's mx patterns (RFC 8461 4.1). */
#include "mx_match.h"

#include "abnf.h"

#include <string.h>

static unsigned char
s_lower(unsigned char c)
{
	/* Not tolower(): the locale must not change what a DNS name is. */
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

int
dnsname_normalize(const char *in, char *out, size_t outlen)
{
	size_t len;

	if (in == NULL || out == NULL || outlen == 0)
		return -1;
	len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len >= outlen)
		return -1;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)s_lower((unsigned char)in[i]);
	out[len] = '\0';
	return 0;
}

/*
 * Checks name as RFC 5321's Domain (LDH labels that start and end with a
 * letter or digit) with at least two labels.  An all-numeric last label is
 * refused: no top-level domain is numeric (RFC 3696 section 2), and this is
 * what tells "192.0.2.1", which is otherwise a well-formed LDH name, from a
 * host name.
 */
static int
s_domain_valid(const char *name)
{
	size_t label_len = 0, n_labels = 0;
	int label_numeric = 1;
	unsigned char c, prev = '\0';

	for (const char *p = name;; p++) {
		c = (unsigned char)*p;
		if (c == '.' || c == '\0') {
			if (label_len == 0 || label_len > 63 || prev == '-')
				return 0;
			n_labels++;
			if (c == '\0')
				break;
			label_len = 0;
			label_numeric = 1;
			prev = c;
			continue;
		}
		if (abnf_is_alpha(c))
			label_numeric = 0;
		else if (c == '-') {
			if (label_len == 0)
				return 0;
			label_numeric = 0;
		} else if (!abnf_is_digit(c))
			return 0; /* also every byte of a U-label */
		label_len++;
		prev = c;
	}
	return n_labels >= 2 && !label_numeric;
}

int
mx_pattern_valid(const char *pattern)
{
	if (pattern == NULL || strlen(pattern) > DNSNAME_MAX - 1)
		return 0;
	if (pattern[0] == '*' && pattern[1] == '.')
		pattern += 2;
	return s_domain_valid(pattern);
}

int
mx_match(const char *pattern, const char *host)
{
	char pat[DNSNAME_MAX], name[DNSNAME_MAX];
	size_t pat_len, name_len, left_len;

	/*
	 * A policy that failed to parse may still hand its mx lines to a
	 * report; an invalid one (an IP address, say) must never match.
	 */
	if (!mx_pattern_valid(pattern))
		return 0;
	if (dnsname_normalize(pattern, pat, sizeof(pat)) == -1 ||
	    dnsname_normalize(host, name, sizeof(name)) == -1)
		return 0;
	if (pat[0] != '*')
		return strcmp(pat, name) == 0;

	/* "*.b.c": name must be one non-empty label followed by ".b.c". */
	pat_len = strlen(pat + 1);
	name_len = strlen(name);
	if (name_len <= pat_len)
		return 0;
	left_len = name_len - pat_len;
	if (strcmp(name + left_len, pat + 1) != 0)
		return 0;
	return memchr(name, '.', left_len) == NULL;
}

int
mx_match_any(char *const *patterns, size_t n, const char *host)
{
	for (size_t i = 0; i < n; i++) {
		if (mx_match(patterns[i], host))
			return 1;
	}
	return 0;
}
