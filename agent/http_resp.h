/* http_resp.h -- an incremental, bounded HTTP/1.1 response parser (no I/O). */
#ifndef MTASTS_HTTP_RESP_H
#define MTASTS_HTTP_RESP_H

#include <stddef.h>
#include <stdint.h>

/* The limits a hostile server runs into; each one ends the parse. */
#define HTTP_RESP_HEADER_MAX	   16384 /* bytes of one header block */
#define HTTP_RESP_LINES_MAX	   100	 /* header lines of one block */
#define HTTP_RESP_INTERIM_MAX	   8	 /* 1xx responses skipped */
#define HTTP_RESP_CHUNK_LINE_MAX   1024	 /* a chunk-size line with extensions */
#define HTTP_RESP_CHUNK_FRAME_MAX  (1024 * 1024) /* all chunk framing */
#define HTTP_RESP_CONTENT_TYPE_MAX 255		 /* longer values are cut */
#define HTTP_RESP_LOCATION_MAX	   2047		 /* longer values are cut */

enum http_resp_rc {
	HTTP_RESP_ERROR = -2,	  /* malformed or over a limit: see error */
	HTTP_RESP_TRUNCATED = -1, /* the peer closed before the end */
	HTTP_RESP_MORE = 0,	  /* feed more bytes */
	HTTP_RESP_DONE = 1	  /* the response is complete */
};

/* How the body of the final response is delimited (RFC 9112 6.3). */
enum http_resp_framing {
	HTTP_RESP_NO_BODY,
	HTTP_RESP_LENGTH,
	HTTP_RESP_CHUNKED,
	HTTP_RESP_CLOSE
};

/*
 * One response being parsed.  The public members are the result; they are
 * meaningful once headers_done is set (status also before, for logging).
 * A caller may take content_type, location or body by copying the pointer
 * and setting the member to NULL; http_resp_free() frees what is left.
 */
struct http_resp {
	int status;	   /* of the final response; 0 before its status line */
	int minor_version; /* HTTP/1.0 or HTTP/1.1 */
	int headers_done;  /* the final response's headers are complete */
	char *content_type;  /* owned, or NULL when the header is absent */
	char *location;	     /* owned, as sent, or NULL */
	unsigned char *body; /* owned, NUL-terminated (not counted), or NULL */
	size_t body_len;
	int too_large; /* more than max_body body bytes were sent */
	enum http_resp_framing framing;
	const char *error; /* a static reason after HTTP_RESP_ERROR/TRUNCATED */

	/* The parser's own state; callers leave it alone. */
	int state;
	size_t max_body;
	size_t body_cap;
	char *line; /* the line being assembled, grown to its limit */
	size_t line_len;
	size_t line_cap;
	size_t header_bytes; /* of the current block, or of the trailers */
	int n_lines;
	int n_interim;
	int have_length;
	uint64_t length; /* Content-Length, then the bytes of it still due */
	int te_seen;
	int te_chunked_final;
	int te_chunked_count;
	uint64_t chunk_left;
	size_t chunk_frame_bytes;
};

/*
 * A parser keeping at most max_body body bytes.  Calls malloc; free with
 * http_resp_free(), which NULLs the caller's pointer.  NULL when out of
 * memory.
 */
struct http_resp *http_resp_new(size_t max_body);
void http_resp_free(struct http_resp **r);

/*
 * Feeds the next len bytes of the stream.  Returns HTTP_RESP_MORE,
 * HTTP_RESP_DONE (bytes after the end are ignored, and so is any later
 * feed) or HTTP_RESP_ERROR (final; error says why).  One byte over
 * max_body sets too_large and ends the response with HTTP_RESP_DONE.
 */
int http_resp_feed(struct http_resp *r, const void *data, size_t len);

/*
 * The peer closed the stream.  HTTP_RESP_DONE when that completes the
 * response (a body delimited by the close, or one already complete),
 * otherwise HTTP_RESP_TRUNCATED with error set, or HTTP_RESP_ERROR when
 * the parse had already failed.
 */
int http_resp_close(struct http_resp *r);

#endif
