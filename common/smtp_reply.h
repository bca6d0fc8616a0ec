/* smtp_reply.h -- bounded parser of ESMTP replies (RFC 5321 4.2). */
#ifndef MTASTS_SMTP_REPLY_H
#define MTASTS_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_LINE_MAX	     1000 /* RFC 5321 4.5.3.1.5: 512; we are lenient */
#define SMTP_REPLY_LINES_MAX 100

struct smtp_reply {
	int code; /* 3-digit reply code */
	size_t n_lines;
	int has_starttls;     /* some line after the first is STARTTLS */
	char first_line[256]; /* text of the first line, truncated */
};

/*
 * Looks for one complete reply at the start of buf (which need not be
 * NUL-terminated).  Accepts CRLF and bare LF.  Returns 1 and sets *consumed
 * when a whole reply is there; 0 when more bytes are needed; -1 on a
 * protocol error: a line over SMTP_LINE_MAX, more than SMTP_REPLY_LINES_MAX
 * lines, a malformed code, or lines whose codes differ.
 */
int smtp_reply_parse(
    const char *buf, size_t len, struct smtp_reply *out, size_t *consumed);

#endif
