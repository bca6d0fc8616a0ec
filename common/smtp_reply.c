/* smtp_reply.c -- bounded parser of ESMTP replies (RFC 5321 4.2). */
#include "smtp_reply.h"

#include <string.h>
#include <strings.h>

/*
 * Checks the "DDD" and the byte after it in the n bytes seen so far of one
 * line, so that garbage is refused as soon as it arrives rather than after
 * SMTP_LINE_MAX bytes.  complete says whether n covers the whole line.
 * Reply codes follow RFC 5321 4.2: first digit 1-5, second 0-5.
 */
static int
s_prefix_valid(const char *line, size_t n, int complete)
{
	static const char lo[3] = {'1', '0', '0'}, hi[3] = {'5', '5', '9'};

	for (size_t i = 0; i < 3; i++) {
		if (i >= n)
			return !complete;
		if (line[i] < lo[i] || line[i] > hi[i])
			return 0;
	}
	if (n == 3)
		return 1; /* "DDD" alone ends the reply */
	return line[3] == ' ' || line[3] == '-';
}

/* Copies text into first_line, with bytes a log could choke on as '?'. */
static void
s_copy_text(char *dst, size_t dstlen, const char *text, size_t len)
{
	unsigned char c;

	if (len > dstlen - 1)
		len = dstlen - 1;
	for (size_t i = 0; i < len; i++) {
		c = (unsigned char)text[i];
		dst[i] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[len] = '\0';
}

static int
s_is_starttls(const char *text, size_t len)
{
	if (len < 8 || strncasecmp(text, "STARTTLS", 8) != 0)
		return 0;
	return len == 8 || text[8] == ' ';
}

int
smtp_reply_parse(
    const char *buf, size_t len, struct smtp_reply *out, size_t *consumed)
{
	const char *line, *nl;
	size_t pos = 0, avail, line_len, text_len;
	int code;

	memset(out, 0, sizeof(*out));
	*consumed = 0;
	for (;;) {
		line = buf + pos;
		avail = len - pos;
		if (avail == 0)
			return 0;
		nl = memchr(line, '\n', avail);
		if (nl == NULL) {
			/* A CR at the end may yet be the first half of CRLF. */
			line_len = avail;
			if (line[line_len - 1] == '\r')
				line_len--;
			if (line_len > SMTP_LINE_MAX ||
			    !s_prefix_valid(line, line_len, 0))
				return -1;
			return 0;
		}
		line_len = (size_t)(nl - line);
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		/* SMTP_LINE_MAX counts the line without its CRLF or LF. */
		if (line_len > SMTP_LINE_MAX ||
		    !s_prefix_valid(line, line_len, 1))
			return -1;

		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		       (line[2] - '0');
		text_len = line_len > 4 ? line_len - 4 : 0;
		if (out->n_lines == 0) {
			out->code = code;
			s_copy_text(out->first_line, sizeof(out->first_line),
			    line + 4, text_len);
		} else {
			if (code != out->code)
				return -1;
			if (s_is_starttls(line + 4, text_len))
				out->has_starttls = 1;
		}
		out->n_lines++;
		pos = (size_t)(nl - buf) + 1;
		if (line_len == 3 || line[3] == ' ') {
			*consumed = pos;
			return 1;
		}
		/* The next line could only be line SMTP_REPLY_LINES_MAX + 1. */
		if (out->n_lines == SMTP_REPLY_LINES_MAX)
			return -1;
	}
}
