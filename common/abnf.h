/* abnf.h -- the RFC 5234 core character classes the record parsers share. */
#ifndef MTASTS_ABNF_H
#define MTASTS_ABNF_H

#include <stddef.h>

static inline int
abnf_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline int
abnf_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int
abnf_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int
abnf_is_alnum(unsigned char c)
{
	return abnf_is_alpha(c) || abnf_is_digit(c);
}

static inline int
abnf_is_hex(unsigned char c)
{
	return abnf_is_digit(c) || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* The value of a HEXDIG (either case), or -1. */
static inline int
abnf_hex_value(unsigned char c)
{
	if (abnf_is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The position of the first byte at or after pos that is not WSP. */
static inline size_t
abnf_skip_wsp(const char *s, size_t len, size_t pos)
{
	while (pos < len && abnf_is_wsp((unsigned char)s[pos]))
		pos++;
	return pos;
}

#endif
