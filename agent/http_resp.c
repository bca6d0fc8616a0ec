/* http_resp.c -- an incremental, bounded HTTP/1.1 response parser (no I/O). */
#include "http_resp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "abnf.h"

enum {
	ST_STATUS,
	ST_HEADERS,
	ST_BODY_LENGTH,
	ST_BODY_CLOSE,
	ST_CHUNK_SIZE,
	ST_CHUNK_DATA,
	ST_CHUNK_END,
	ST_TRAILERS,
	ST_DONE,
	ST_ERROR
};

#define LINE_FIRST 256

static int
s_fail(struct http_resp *r, const char *why)
{
	r->state = ST_ERROR;
	r->error = why;
	return HTTP_RESP_ERROR;
}

static int
s_is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The longest line the current state accepts, its terminator included. */
static size_t
s_line_limit(const struct http_resp *r)
{
	switch (r->state) {
	case ST_STATUS:
	case ST_HEADERS:
	case ST_TRAILERS:
		/* The block's count already holds the line's first part. */
		return HTTP_RESP_HEADER_MAX - (r->header_bytes - r->line_len);
	case ST_CHUNK_SIZE:
		return HTTP_RESP_CHUNK_LINE_MAX;
	default: /* ST_CHUNK_END: nothing but the line end */
		return 2;
	}
}

static const char *
s_limit_reason(const struct http_resp *r)
{
	switch (r->state) {
	case ST_STATUS:
	case ST_HEADERS:
		return "header block over 16384 bytes";
	case ST_TRAILERS:
		return "trailers over 16384 bytes";
	case ST_CHUNK_SIZE:
		return "chunk-size line too long";
	default:
		return "chunk data not followed by CRLF";
	}
}

/* Appends n bytes to the line, which may not outgrow limit. */
static int
s_line_add(struct http_resp *r, const char *p, size_t n, size_t limit)
{
	if (n > limit || r->line_len > limit - n)
		return -1;
	if (r->line_len + n > r->line_cap) {
		size_t cap = r->line_cap ? r->line_cap : LINE_FIRST;
		char *l;
		while (cap < r->line_len + n)
			cap *= 2;
		if (cap > HTTP_RESP_HEADER_MAX)
			cap = HTTP_RESP_HEADER_MAX;
		if ((l = realloc(r->line, cap)) == NULL)
			return -2;
		r->line = l;
		r->line_cap = cap;
	}
	memcpy(r->line + r->line_len, p, n);
	r->line_len += n;
	return 0;
}

static int
s_body_add(struct http_resp *r, const char *p, size_t n)
{
	size_t room = r->max_body - r->body_len;

	if (n > room) {
		/* Keep what fits, so a report can show how it starts. */
		n = room;
		r->too_large = 1;
	}
	if (n > 0 && r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		unsigned char *b;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		if (cap > r->max_body + 1)
			cap = r->max_body + 1;
		if ((b = realloc(r->body, cap)) == NULL)
			return s_fail(r, "out of memory");
		r->body = b;
		r->body_cap = cap;
	}
	if (n > 0) {
		memcpy(r->body + r->body_len, p, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
	}
	if (r->too_large)
		r->state = ST_DONE;
	return 0;
}

/* A copy of v cut to max bytes. */
static char *
s_copy(const char *v, size_t len, size_t max)
{
	char *s;

	if (len > max)
		len = max;
	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, v, len);
	s[len] = '\0';
	return s;
}

/* Content-Length: digits, or a list of identical ones (RFC 9110 8.6). */
static int
s_content_length(struct http_resp *r, const char *v, size_t len)
{
	size_t i = 0;
	int any = 0;

	while (i < len) {
		uint64_t n = 0;
		size_t digits = 0;
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		while (i < len && v[i] >= '0' && v[i] <= '9') {
			unsigned d = (unsigned)(v[i] - '0');
			if (n > (UINT64_MAX - d) / 10)
				return s_fail(r, "Content-Length overflows");
			n = n * 10 + d;
			digits++;
			i++;
		}
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (digits == 0 || (i < len && v[i] != ','))
			return s_fail(r, "bad Content-Length");
		if (i < len)
			i++; /* the comma */
		if (r->have_length && r->length != n)
			return s_fail(r, "conflicting Content-Length values");
		r->have_length = 1;
		r->length = n;
		any = 1;
	}
	if (!any)
		return s_fail(r, "bad Content-Length");
	return 0;
}

/* Transfer-Encoding: a list of codings, each with optional parameters. */
static int
s_transfer_encoding(struct http_resp *r, const char *v, size_t len)
{
	size_t i = 0;
	int any = 0;

	while (i < len) {
		size_t start, tlen;
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && s_is_tchar((unsigned char)v[i]))
			i++;
		tlen = i - start;
		if (tlen == 0)
			return s_fail(r, "bad Transfer-Encoding");
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i < len && v[i] != ',' && v[i] != ';')
			return s_fail(r, "bad Transfer-Encoding");
		/* Parameters belong to the coding; none matter here. */
		while (i < len && v[i] != ',')
			i++;
		any = 1;
		r->te_chunked_final =
		    tlen == 7 && strncasecmp(v + start, "chunked", 7) == 0;
		if (r->te_chunked_final && ++r->te_chunked_count > 1)
			return s_fail(r, "chunked applied more than once");
	}
	if (!any)
		return s_fail(r, "empty Transfer-Encoding");
	r->te_seen = 1;
	return 0;
}

static int
s_status_line(struct http_resp *r, const char *l, size_t len)
{
	int code;

	if (len < 12 || memcmp(l, "HTTP/1.", 7) != 0 ||
	    (l[7] != '0' && l[7] != '1') || l[8] != ' ')
		return s_fail(r, "not an HTTP/1.x status line");
	if (l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
	    l[11] < '0' || l[11] > '9' || (len > 12 && l[12] != ' '))
		return s_fail(r, "bad status code");
	code = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	/* The reason phrase is for people; nothing here reads it. */
	r->minor_version = l[7] - '0';
	r->status = code;
	r->state = ST_HEADERS;
	return 0;
}

static void
s_reset_block(struct http_resp *r)
{
	free(r->content_type);
	r->content_type = NULL;
	free(r->location);
	r->location = NULL;
	r->status = 0;
	r->header_bytes = 0;
	r->n_lines = 0;
	r->have_length = 0;
	r->length = 0;
	r->te_seen = 0;
	r->te_chunked_final = 0;
	r->te_chunked_count = 0;
}

/* The blank line: the framing of what follows (RFC 9112 6.3). */
static int
s_headers_end(struct http_resp *r)
{
	if (r->status < 200) {
		/* We asked for no upgrade; a switch would leave HTTP. */
		if (r->status == 101)
			return s_fail(r, "unexpected 101 Switching Protocols");
		if (++r->n_interim > HTTP_RESP_INTERIM_MAX)
			return s_fail(r, "too many 1xx responses");
		s_reset_block(r);
		r->state = ST_STATUS;
		return 0;
	}
	r->headers_done = 1;
	r->header_bytes = 0;
	r->n_lines = 0;
	if (r->status == 204 || r->status == 304) {
		r->framing = HTTP_RESP_NO_BODY;
		r->state = ST_DONE;
	} else if (r->te_seen) {
		/* Transfer-Encoding overrides Content-Length; without chunked
		 * last, only the close tells where the body ends. */
		r->framing =
		    r->te_chunked_final ? HTTP_RESP_CHUNKED : HTTP_RESP_CLOSE;
		r->state = r->te_chunked_final ? ST_CHUNK_SIZE : ST_BODY_CLOSE;
	} else if (r->have_length) {
		r->framing = HTTP_RESP_LENGTH;
		r->state = r->length == 0 ? ST_DONE : ST_BODY_LENGTH;
	} else {
		r->framing = HTTP_RESP_CLOSE;
		r->state = ST_BODY_CLOSE;
	}
	if (r->framing == HTTP_RESP_LENGTH && r->length > 0) {
		/* The whole body at once when it is announced, within the
		 * cap; a wrong announcement only costs a realloc. */
		size_t want =
		    r->length < r->max_body ? (size_t)r->length : r->max_body;
		unsigned char *b = malloc(want + 1);
		if (b == NULL)
			return s_fail(r, "out of memory");
		b[0] = '\0';
		r->body = b;
		r->body_cap = want + 1;
	}
	return 0;
}

static int
s_header_line(struct http_resp *r, const char *l, size_t len)
{
	size_t name_len = 0, vs, ve;

	if (len == 0)
		return s_headers_end(r);
	if (l[0] == ' ' || l[0] == '\t')
		return s_fail(r, "obsolete header line folding");
	if (++r->n_lines > HTTP_RESP_LINES_MAX)
		return s_fail(r, "more than 100 header lines");
	while (name_len < len && s_is_tchar((unsigned char)l[name_len]))
		name_len++;
	if (name_len == 0 || name_len == len || l[name_len] != ':')
		return s_fail(r, "malformed header line");
	vs = name_len + 1;
	ve = len;
	while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	for (size_t i = vs; i < ve; i++) {
		unsigned char c = (unsigned char)l[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return s_fail(r, "control character in a header");
	}
#define IS(name)                                                               \
	(name_len == sizeof(name) - 1 && strncasecmp(l, name, name_len) == 0)
	if (IS("content-length"))
		return s_content_length(r, l + vs, ve - vs);
	if (IS("transfer-encoding"))
		return s_transfer_encoding(r, l + vs, ve - vs);
	if (IS("content-type") || IS("location")) {
		int ct = IS("content-type");
		char **slot = ct ? &r->content_type : &r->location;
		char *v = s_copy(l + vs, ve - vs,
		    ct ? HTTP_RESP_CONTENT_TYPE_MAX : HTTP_RESP_LOCATION_MAX);
		if (v == NULL)
			return s_fail(r, "out of memory");
		/* The last one counts, as for most clients. */
		free(*slot);
		*slot = v;
	}
#undef IS
	return 0;
}

static int
s_chunk_size(struct http_resp *r, const char *l, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;
	int d;

	while (i < len && (d = abnf_hex_value((unsigned char)l[i])) != -1) {
		if (n > (UINT64_MAX >> 4))
			return s_fail(r, "chunk size overflows");
		n = (n << 4) | (uint64_t)d;
		i++;
	}
	if (i == 0)
		return s_fail(r, "bad chunk size");
	while (i < len && (l[i] == ' ' || l[i] == '\t'))
		i++;
	/* Chunk extensions are allowed and mean nothing to us. */
	if (i < len && l[i] != ';')
		return s_fail(r, "bad chunk size");
	if (n == 0) {
		r->header_bytes = 0;
		r->n_lines = 0;
		r->state = ST_TRAILERS;
	} else {
		r->chunk_left = n;
		r->state = ST_CHUNK_DATA;
	}
	return 0;
}

static int
s_trailer_line(struct http_resp *r, const char *l, size_t len)
{
	(void)l;
	if (len == 0) {
		r->state = ST_DONE;
		return 0;
	}
	/* Trailers are read past, not used: only their size matters. */
	if (++r->n_lines > HTTP_RESP_LINES_MAX)
		return s_fail(r, "more than 100 trailer lines");
	return 0;
}

/* One complete line (its terminator stripped) in the current state. */
static int
s_line(struct http_resp *r, const char *l, size_t len)
{
	if (memchr(l, '\0', len) != NULL)
		return s_fail(r, "NUL in the response head");
	if (memchr(l, '\r', len) != NULL)
		return s_fail(r, "bare CR in the response head");
	switch (r->state) {
	case ST_STATUS:
		return s_status_line(r, l, len);
	case ST_HEADERS:
		return s_header_line(r, l, len);
	case ST_CHUNK_SIZE:
		return s_chunk_size(r, l, len);
	case ST_CHUNK_END:
		if (len != 0)
			return s_fail(r, "chunk data not followed by CRLF");
		r->state = ST_CHUNK_SIZE;
		return 0;
	default:
		return s_trailer_line(r, l, len);
	}
}

/*
 * Consumes bytes of a line-oriented state from p: up to and including the
 * LF when there is one.  Returns the bytes consumed, or -1 on error.
 */
static long
s_feed_line(struct http_resp *r, const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	size_t take = lf != NULL ? (size_t)(lf - p) + 1 : n;
	size_t limit = s_line_limit(r);
	int rc;

	rc = s_line_add(r, p, take, limit);
	if (rc != 0) {
		s_fail(r, rc == -2 ? "out of memory" : s_limit_reason(r));
		return -1;
	}
	if (r->state == ST_CHUNK_SIZE || r->state == ST_CHUNK_END) {
		r->chunk_frame_bytes += take;
		if (r->chunk_frame_bytes > HTTP_RESP_CHUNK_FRAME_MAX) {
			s_fail(r, "chunk framing over 1 MiB");
			return -1;
		}
	} else {
		r->header_bytes += take;
	}
	if (lf != NULL) {
		/* LF ends a line; a CR right before it belongs to it (RFC
		 * 9112 2.2 lets a recipient accept a bare LF). */
		size_t len = r->line_len - 1;
		if (len > 0 && r->line[len - 1] == '\r')
			len--;
		r->line_len = 0;
		if (s_line(r, r->line, len) != 0)
			return -1;
	}
	return (long)take;
}

int
http_resp_feed(struct http_resp *r, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0 && r->state != ST_DONE && r->state != ST_ERROR) {
		size_t take;
		long used;

		switch (r->state) {
		case ST_BODY_LENGTH:
			take = len < r->length ? len : (size_t)r->length;
			if (s_body_add(r, p, take) != 0)
				return HTTP_RESP_ERROR;
			r->length -= take;
			if (r->length == 0 && r->state != ST_ERROR)
				r->state = ST_DONE;
			break;
		case ST_BODY_CLOSE:
			take = len;
			if (s_body_add(r, p, take) != 0)
				return HTTP_RESP_ERROR;
			break;
		case ST_CHUNK_DATA:
			take =
			    len < r->chunk_left ? len : (size_t)r->chunk_left;
			if (s_body_add(r, p, take) != 0)
				return HTTP_RESP_ERROR;
			r->chunk_left -= take;
			if (r->chunk_left == 0 && r->state == ST_CHUNK_DATA)
				r->state = ST_CHUNK_END;
			break;
		default:
			if ((used = s_feed_line(r, p, len)) < 0)
				return HTTP_RESP_ERROR;
			take = (size_t)used;
			break;
		}
		p += take;
		len -= take;
	}
	if (r->state == ST_ERROR)
		return HTTP_RESP_ERROR;
	return r->state == ST_DONE ? HTTP_RESP_DONE : HTTP_RESP_MORE;
}

int
http_resp_close(struct http_resp *r)
{
	switch (r->state) {
	case ST_DONE:
		return HTTP_RESP_DONE;
	case ST_ERROR:
		return HTTP_RESP_ERROR;
	case ST_BODY_CLOSE:
		r->state = ST_DONE;
		return HTTP_RESP_DONE;
	case ST_STATUS:
		r->error = r->line_len == 0 && r->n_interim == 0
			       ? "connection closed without a response"
			       : "connection closed in the status line";
		break;
	case ST_HEADERS:
		r->error = "connection closed in the headers";
		break;
	default:
		r->error = "connection closed before the end of the body";
		break;
	}
	r->state = ST_ERROR;
	return HTTP_RESP_TRUNCATED;
}

struct http_resp *
http_resp_new(size_t max_body)
{
	struct http_resp *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->max_body = max_body;
	r->state = ST_STATUS;
	return r;
}

void
http_resp_free(struct http_resp **rp)
{
	struct http_resp *r = *rp;

	if (r == NULL)
		return;
	free(r->content_type);
	free(r->location);
	free(r->body);
	free(r->line);
	free(r);
	*rp = NULL;
}
