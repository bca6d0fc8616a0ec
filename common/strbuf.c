/* strbuf.c -- a growing NUL-terminated string with an optional size cap. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most strings built here are short; big ones double their way up. */
#define STRBUF_FIRST 256

void
strbuf_init(struct strbuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

/* Room for n more bytes and the NUL, within the cap; -1 sets b->fail. */
static int
s_reserve(struct strbuf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > SIZE_MAX - 1 - b->len ||
	    (b->max != 0 && b->len + n + 1 > b->max)) {
		b->fail = STRBUF_FULL;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap != 0 ? b->cap : STRBUF_FIRST;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	/* Never allocate past the cap: it bounds memory, not only text. */
	if (b->max != 0 && cap > b->max)
		cap = b->max;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->fail = STRBUF_NOMEM;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void
strbuf_addn(struct strbuf *b, const char *s, size_t n)
{
	if (b->fail != STRBUF_OK || s_reserve(b, n) == -1)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
strbuf_add(struct strbuf *b, const char *s)
{
	strbuf_addn(b, s, strlen(s));
}

void
strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (b->fail != STRBUF_OK)
		return;
	/* Straight into the free space; a second pass only when it is too
	 * small, after growing to the length the first pass measured.  What
	 * a short pass leaves past the text is overwritten then, or never
	 * handed out: a failed buffer gives nothing. */
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(room > 0 ? b->p + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->fail = STRBUF_NOMEM;
		return;
	}
	if ((size_t)n >= room) {
		if (s_reserve(b, (size_t)n) == -1)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->fail = STRBUF_NOMEM;
			return;
		}
	}
	b->len += (size_t)n;
}

void
strbuf_mark_failed(struct strbuf *b, enum strbuf_fail why)
{
	if (b->fail == STRBUF_OK)
		b->fail = why;
}

enum strbuf_fail
strbuf_failed(const struct strbuf *b)
{
	return b->fail;
}

char *
strbuf_steal(struct strbuf *b, size_t *len)
{
	char *s = b->p;

	if (len != NULL)
		*len = 0;
	if (b->fail != STRBUF_OK) {
		free(b->p);
		s = NULL;
	} else if (s == NULL && (s = calloc(1, 1)) == NULL) {
		b->fail = STRBUF_NOMEM;
	} else if (len != NULL) {
		*len = b->len;
	}
	b->p = NULL;
	b->len = b->cap = 0;
	return s;
}

void
strbuf_free(struct strbuf *b)
{
	free(b->p);
	strbuf_init(b, b->max);
}
