/* strbuf.h -- a growing NUL-terminated string with an optional size cap. */
#ifndef MTASTS_STRBUF_H
#define MTASTS_STRBUF_H

#include <stddef.h>

/* Why a buffer stopped taking text. */
enum strbuf_fail {
	STRBUF_OK = 0,
	STRBUF_NOMEM, /* malloc failed, or vsnprintf could not format */
	STRBUF_FULL   /* the text would have passed the cap */
};

/*
 * Lives on the caller's stack: strbuf_init, any number of adds, then
 * strbuf_steal (the string goes to the caller) or strbuf_free.  The first
 * add that fails sets the failure and makes every later add do nothing, so
 * callers write without checking and look once at the end.  The members
 * are the module's; callers read them through the functions.
 */
struct strbuf {
	char *p;    /* the text, NUL-terminated unless failed; or NULL */
	size_t len; /* bytes of text, the NUL not counted */
	size_t cap; /* bytes allocated */
	size_t max; /* 0: no cap; else at most max bytes, the NUL counted */
	enum strbuf_fail fail;
};

/* An empty buffer holding at most max bytes with the NUL (0: no cap but
 * memory).  Allocates nothing: strbuf_free is not needed until an add. */
void strbuf_init(struct strbuf *b, size_t max);

/* Appends n bytes of s (which may hold NULs). */
void strbuf_addn(struct strbuf *b, const char *s, size_t n);
void strbuf_add(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For a caller whose own step towards the text failed (a value it could
 * not convert, say): marks b failed, as an add would, unless it already
 * is. */
void strbuf_mark_failed(struct strbuf *b, enum strbuf_fail why);

/* STRBUF_OK, or why an add failed (it stays readable after steal). */
enum strbuf_fail strbuf_failed(const struct strbuf *b);

/*
 * Hands the string over: malloc'd and NUL-terminated, the caller frees it;
 * "" when nothing was added.  *len (when len is not NULL) gets its length.
 * NULL, with *len 0, when an add failed or out of memory (then
 * strbuf_failed says which).  Either way b holds no memory afterwards.
 */
char *strbuf_steal(struct strbuf *b, size_t *len);

/* Frees what b holds and empties it; b stays usable with the same cap and
 * its failure, if any, cleared. */
void strbuf_free(struct strbuf *b);

#endif
