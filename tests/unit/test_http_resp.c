/* test_http_resp.c -- unit tests of the incremental HTTP/1.1 response parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_resp.h"

#define POLICY                                                                 \
	"version: STSv1\r\nmode: enforce\r\nmx: mx.example.org\r\n"            \
	"max_age: 86400\r\n"

/* What a parse ended with, to compare feeds of the same bytes. */
struct outcome {
	int rc; /* of the last feed, or of the close when closed */
	int status;
	int headers_done;
	int too_large;
	char content_type[300];
	char location[2100];
	char body[70000];
	size_t body_len;
	char error[100];
};

static void
s_snap(struct http_resp *r, int rc, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->rc = rc;
	o->status = r->status;
	o->headers_done = r->headers_done;
	o->too_large = r->too_large;
	if (r->content_type != NULL)
		snprintf(o->content_type, sizeof(o->content_type), "%s",
		    r->content_type);
	else
		snprintf(o->content_type, sizeof(o->content_type), "(none)");
	if (r->location != NULL)
		snprintf(o->location, sizeof(o->location), "%s", r->location);
	assert_true(r->body_len < sizeof(o->body));
	if (r->body_len > 0) {
		assert_non_null(r->body);
		memcpy(o->body, r->body, r->body_len);
		assert_int_equal(r->body[r->body_len], '\0');
	}
	o->body_len = r->body_len;
	if (rc < 0)
		snprintf(o->error, sizeof(o->error), "%s", r->error);
}

/*
 * Feeds buf in pieces of the given sizes (0 = the rest), stopping early
 * when the parser is done or failed; closes the stream afterwards if
 * close_after and the parser still wants more.
 */
static void
s_parse_pieces(const char *buf, size_t len, const size_t *pieces,
    size_t n_pieces, size_t max_body, int close_after, struct outcome *o)
{
	struct http_resp *r = http_resp_new(max_body);
	size_t off = 0, i = 0;
	int rc = HTTP_RESP_MORE;

	assert_non_null(r);
	while (off < len && rc == HTTP_RESP_MORE) {
		size_t n = i < n_pieces && pieces[i] ? pieces[i] : len - off;
		if (n > len - off)
			n = len - off;
		rc = http_resp_feed(r, buf + off, n);
		off += n;
		i++;
	}
	if (rc == HTTP_RESP_MORE && close_after)
		rc = http_resp_close(r);
	s_snap(r, rc, o);
	http_resp_free(&r);
	assert_null(r);
}

static void
s_parse(const char *buf, size_t len, size_t max_body, int close_after,
    struct outcome *o)
{
	s_parse_pieces(buf, len, NULL, 0, max_body, close_after, o);
}

static void
s_assert_same(const struct outcome *a, const struct outcome *b)
{
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->headers_done, b->headers_done);
	assert_int_equal(a->too_large, b->too_large);
	assert_string_equal(a->content_type, b->content_type);
	assert_string_equal(a->location, b->location);
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len);
	assert_string_equal(a->error, b->error);
}

/* The outcome must not depend on how the bytes were cut: at every offset
 * in two pieces, and one byte at a time. */
static void
s_check_splits(const char *buf, size_t max_body, int close_after,
    const struct outcome *whole)
{
	static struct outcome o;
	size_t len = strlen(buf);

	for (size_t cut = 1; cut < len; cut++) {
		size_t pieces[2] = {cut, 0};
		s_parse_pieces(buf, len, pieces, 2, max_body, close_after, &o);
		s_assert_same(whole, &o);
	}
	size_t *ones = malloc(len * sizeof(*ones));
	assert_non_null(ones);
	for (size_t i = 0; i < len; i++)
		ones[i] = 1;
	s_parse_pieces(buf, len, ones, len, max_body, close_after, &o);
	free(ones);
	s_assert_same(whole, &o);
}

static struct outcome whole;

static void
s_expect(const char *buf, size_t max_body, int close_after, int rc)
{
	s_parse(buf, strlen(buf), max_body, close_after, &whole);
	assert_int_equal(whole.rc, rc);
	s_check_splits(buf, max_body, close_after, &whole);
}

static void
test_content_length(void **state)
{
	char resp[512];

	(void)state;
	snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n" POLICY "extra bytes after the body",
	    strlen(POLICY));
	s_expect(resp, 65536, 0, HTTP_RESP_DONE);
	assert_int_equal(whole.status, 200);
	assert_true(whole.headers_done);
	assert_string_equal(whole.content_type, "text/plain; charset=utf-8");
	assert_int_equal(whole.body_len, strlen(POLICY));
	assert_string_equal(whole.body, POLICY);
	assert_false(whole.too_large);
}

static void
test_chunked(void **state)
{
	const char *resp =
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "\r\n"
	    "10\r\nversion: STSv1\r\n\r\n"
	    "19;name=value;other\r\nmode: enforce\r\nmx: mx.exa\r\n"
	    "001A \r\nmple.org\r\nmax_age: 86400\r\n\r\n"
	    "0\r\n"
	    "X-Trailer: yes\r\n"
	    "\r\n";

	(void)state;
	s_expect(resp, 65536, 0, HTTP_RESP_DONE);
	assert_int_equal(whole.status, 200);
	assert_string_equal(whole.body, POLICY);
}

static void
test_chunked_bare_lf(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
		 "3\nabc\n0\n\n",
	    100, 0, HTTP_RESP_DONE);
	assert_string_equal(whole.body, "abc");
	assert_string_equal(whole.content_type, "(none)");
}

static void
test_close_delimited(void **state)
{
	const char *resp = "HTTP/1.0 200 OK\r\n"
			   "Content-Type: text/plain\r\n"
			   "\r\n" POLICY;

	(void)state;
	s_expect(resp, 65536, 1, HTTP_RESP_DONE);
	assert_string_equal(whole.body, POLICY);
	/* Without the close the parser cannot know the body ended. */
	s_expect(resp, 65536, 0, HTTP_RESP_MORE);
}

static void
test_te_not_chunked_reads_to_close(void **state)
{
	(void)state;
	/* Transfer-Encoding wins over Content-Length; chunked not last
	 * means the close ends the body (RFC 9112 6.3). */
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
		 "Transfer-Encoding: chunked, gzip\r\n\r\nabcdef",
	    100, 1, HTTP_RESP_DONE);
	assert_string_equal(whole.body, "abcdef");
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
		 "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n"
		 "2\r\nab\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_DONE);
	assert_string_equal(whole.body, "ab");
}

static void
test_too_large(void **state)
{
	static char resp[70 * 1024 + 200];
	size_t n;

	(void)state;
	n = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
	memset(resp + n, 'x', 100);
	resp[n + 100] = '\0';
	/* Exactly max_body is fine; one byte more is too large. */
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	assert_false(whole.too_large);
	s_expect(resp, 99, 0, HTTP_RESP_DONE);
	assert_true(whole.too_large);
	assert_int_equal(whole.body_len, 99);

	/* Close-delimited, far beyond the cap: stops at the cap. */
	n = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n\r\n");
	memset(resp + n, 'y', 70 * 1024);
	resp[n + 70 * 1024] = '\0';
	s_parse(resp, strlen(resp), 65536, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	assert_true(whole.too_large);
	assert_int_equal(whole.body_len, 65536);

	/* Chunked, one big chunk. */
	n = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "11800\r\n");
	memset(resp + n, 'z', 70 * 1024);
	resp[n + 70 * 1024] = '\0';
	s_parse(resp, strlen(resp), 65536, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	assert_true(whole.too_large);
	assert_int_equal(whole.body_len, 65536);

	/* A zero cap: the first body byte is too much. */
	s_expect("HTTP/1.1 404 Not Found\r\n\r\nx", 0, 0, HTTP_RESP_DONE);
	assert_true(whole.too_large);
	assert_int_equal(whole.body_len, 0);
}

static void
test_huge_content_length_is_not_allocated(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615"
		 "\r\n\r\nabc",
	    65536, 1, HTTP_RESP_TRUNCATED);
	assert_string_equal(
	    whole.error, "connection closed before the end of the body");
	assert_int_equal(whole.status, 200);
	assert_string_equal(whole.body, "abc");
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616"
		 "\r\n\r\n",
	    65536, 0, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "Content-Length overflows");
}

static void
test_content_length_conflicts(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		 "Content-Length: 4\r\n\r\nabcd",
	    100, 0, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "conflicting Content-Length values");
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", 100, 0,
	    HTTP_RESP_ERROR);
	/* The same value twice, or as a list, is one length. */
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		 "Content-Length: 3 , 3\r\n\r\nabcd",
	    100, 0, HTTP_RESP_DONE);
	assert_string_equal(whole.body, "abc");
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", 100, 0,
	    HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\nabc", 100, 0,
	    HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabc", 100, 0,
	    HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nabc", 100, 0,
	    HTTP_RESP_DONE);
	assert_int_equal(whole.body_len, 0);
}

static void
test_bad_chunks(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "zz\r\nab\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "bad chunk size");
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "2 x\r\nab\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "-2\r\nab\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "10000000000000000\r\nab\r\n",
	    100, 0, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "chunk size overflows");
	/* The largest size is a size: the cap ends the read, not it. */
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "ffffffffffffffff\r\nabc",
	    2, 0, HTTP_RESP_DONE);
	assert_true(whole.too_large);
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "2\r\nabc\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "chunk data not followed by CRLF");
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "2\r\nab\r\n",
	    100, 1, HTTP_RESP_TRUNCATED);
	assert_int_equal(whole.status, 200);
	assert_string_equal(whole.body, "ab");
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n"
		 "\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked x\r\n"
		 "\r\n0\r\n\r\n",
	    100, 0, HTTP_RESP_ERROR);
	s_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n", 100,
	    0, HTTP_RESP_ERROR);
}

static void
test_chunk_line_limits(void **state)
{
	static char resp[2 * 1024 * 1024];
	size_t n;

	(void)state;
	n = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	memset(resp + n, 'e', HTTP_RESP_CHUNK_LINE_MAX);
	strcpy(resp + n + HTTP_RESP_CHUNK_LINE_MAX, "\r\na\r\n0\r\n\r\n");
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "chunk-size line too long");

	/* One-byte chunks with long extensions: the framing cap ends it
	 * long before the body cap would. */
	n = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	while (n + 1100 < sizeof(resp)) {
		memcpy(resp + n, "1;", 2);
		memset(resp + n + 2, 'e', 1000);
		memcpy(resp + n + 1002, "\r\nx\r\n", 5);
		n += 1007;
	}
	resp[n] = '\0';
	s_parse(resp, n, 65536, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "chunk framing over 1 MiB");
	assert_true(whole.body_len < 1100);

	/* Trailers are bounded like headers. */
	n = (size_t)snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
	for (int i = 0; i < 101; i++)
		n += (size_t)snprintf(
		    resp + n, sizeof(resp) - n, "T: %d\r\n", i);
	strcpy(resp + n, "\r\n");
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "more than 100 trailer lines");
}

static void
test_header_limits(void **state)
{
	static char resp[40000];
	size_t n;

	(void)state;
	/* 100 lines pass, 101 do not. */
	n = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 99; i++)
		n += (size_t)snprintf(
		    resp + n, sizeof(resp) - n, "X-%d: v\r\n", i);
	snprintf(resp + n, sizeof(resp) - n, "Content-Length: 1\r\n\r\nA");
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	snprintf(resp + n, sizeof(resp) - n,
	    "X-last: v\r\nContent-Length: 1\r\n\r\nA");
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "more than 100 header lines");

	/* The whole block, status line and blank line included, is capped
	 * at HTTP_RESP_HEADER_MAX bytes. */
	n = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nX: ");
	memset(resp + n, 'v', HTTP_RESP_HEADER_MAX - n - 4);
	n = HTTP_RESP_HEADER_MAX - 4;
	strcpy(resp + n, "\r\n\r\nbody");
	s_parse(resp, strlen(resp), 100, 1, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	assert_string_equal(whole.body, "body");
	resp[n - 1] = 'v';
	strcpy(resp + n, "v\r\n\r\nbody");
	s_parse(resp, strlen(resp), 100, 1, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "header block over 16384 bytes");
	/* A never-ending line fails at the cap, without a line end. */
	memset(resp, 'H', sizeof(resp) - 1);
	resp[sizeof(resp) - 1] = '\0';
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
}

static void
test_bad_heads(void **state)
{
	static const char *const bad[] = {
	    "HTTP/2 200 OK\r\n\r\n",
	    "HTTP/1.2 200 OK\r\n\r\n",
	    "http/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 099 OK\r\n\r\n",
	    "HTTP/1.1 600 OK\r\n\r\n",
	    "HTTP/1.1  200 OK\r\n\r\n",
	    "\r\nHTTP/1.1 200 OK\r\n\r\n",
	    "SSH-2.0-OpenSSH_9.2\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n: a\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\x01"
	    "b\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n",
	    "HTTP/1.1 101 Switching Protocols\r\n\r\n",
	};
	struct outcome o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s_parse(bad[i], strlen(bad[i]), 100, 1, &o);
		if (o.rc != HTTP_RESP_ERROR)
			fail_msg("accepted: %s", bad[i]);
	}
	/* A NUL in the head. */
	s_parse("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27, 100, 1, &o);
	assert_int_equal(o.rc, HTTP_RESP_ERROR);
	assert_string_equal(o.error, "NUL in the response head");
}

static void
test_status_line_forms(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 100, 0,
	    HTTP_RESP_DONE);
	assert_int_equal(whole.status, 404);
	s_expect("HTTP/1.0 503 Service Unavailable\r\n\r\ndown", 100, 1,
	    HTTP_RESP_DONE);
	assert_int_equal(whole.status, 503);
	assert_string_equal(whole.body, "down");
	/* 204 and 304 have no body, whatever the headers say. */
	s_expect("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 100, 0,
	    HTTP_RESP_DONE);
	assert_int_equal(whole.body_len, 0);
}

static void
test_interim_responses(void **state)
{
	static char resp[4096];
	size_t n = 0;

	(void)state;
	s_expect("HTTP/1.1 100 Continue\r\n\r\n"
		 "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n"
		 "Content-Type: text/html\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	    100, 0, HTTP_RESP_DONE);
	assert_int_equal(whole.status, 200);
	/* The interim response's Content-Type is not the final one's. */
	assert_string_equal(whole.content_type, "(none)");
	assert_string_equal(whole.body, "ok");
	/* Only a handful of them. */
	for (int i = 0; i <= HTTP_RESP_INTERIM_MAX; i++)
		n += (size_t)snprintf(resp + n, sizeof(resp) - n,
		    "HTTP/1.1 100 Continue\r\n\r\n");
	snprintf(resp + n, sizeof(resp) - n, "HTTP/1.1 200 OK\r\n\r\n");
	s_parse(resp, strlen(resp), 100, 1, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_ERROR);
	assert_string_equal(whole.error, "too many 1xx responses");
}

static void
test_redirect_location(void **state)
{
	static char resp[8192];
	size_t n;

	(void)state;
	s_expect("HTTP/1.1 301 Moved Permanently\r\n"
		 "Location:   https://www.example.org/.well-known/mta-sts.txt  "
		 "\r\nContent-Length: 5\r\n\r\nmoved",
	    100, 0, HTTP_RESP_DONE);
	assert_int_equal(whole.status, 301);
	assert_string_equal(
	    whole.location, "https://www.example.org/.well-known/mta-sts.txt");
	/* A long Location is kept, cut to its bound. */
	n = (size_t)snprintf(
	    resp, sizeof(resp), "HTTP/1.1 302 Found\r\nLocation: /");
	memset(resp + n, 'p', 5000);
	strcpy(resp + n + 5000, "\r\nContent-Length: 0\r\n\r\n");
	s_parse(resp, strlen(resp), 100, 0, &whole);
	assert_int_equal(whole.rc, HTTP_RESP_DONE);
	assert_int_equal(strlen(whole.location), HTTP_RESP_LOCATION_MAX);
}

static void
test_content_type(void **state)
{
	(void)state;
	s_expect("HTTP/1.1 200 OK\r\ncontent-TYPE:text/html\r\n"
		 "Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
	    100, 0, HTTP_RESP_DONE);
	/* The last one counts. */
	assert_string_equal(whole.content_type, "text/plain");
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, 0,
	    HTTP_RESP_DONE);
	assert_string_equal(whole.content_type, "(none)");
	s_expect("HTTP/1.1 200 OK\r\nContent-Type:\r\nContent-Length: 0\r\n"
		 "\r\n",
	    100, 0, HTTP_RESP_DONE);
	assert_string_equal(whole.content_type, "");
}

static void
test_closed_early(void **state)
{
	(void)state;
	s_expect("", 100, 1, HTTP_RESP_TRUNCATED);
	assert_string_equal(
	    whole.error, "connection closed without a response");
	s_expect("HTTP/1.1 20", 100, 1, HTTP_RESP_TRUNCATED);
	assert_string_equal(
	    whole.error, "connection closed in the status line");
	s_expect("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", 100, 1,
	    HTTP_RESP_TRUNCATED);
	assert_string_equal(whole.error, "connection closed in the headers");
	assert_false(whole.headers_done);
	s_expect("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", 100, 1,
	    HTTP_RESP_TRUNCATED);
	assert_true(whole.headers_done);
	assert_string_equal(whole.body, "12345");
}

static void
test_feed_after_end(void **state)
{
	struct http_resp *r = http_resp_new(100);
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA";

	(void)state;
	assert_non_null(r);
	assert_int_equal(http_resp_feed(r, resp, strlen(resp)), HTTP_RESP_DONE);
	assert_int_equal(http_resp_feed(r, "garbage", 7), HTTP_RESP_DONE);
	assert_int_equal(http_resp_close(r), HTTP_RESP_DONE);
	assert_int_equal(r->body_len, 1);
	/* A caller takes the body and NULLs it; free leaves it alone. */
	unsigned char *body = r->body;
	r->body = NULL;
	http_resp_free(&r);
	assert_int_equal(body[0], 'A');
	free(body);

	r = http_resp_new(100);
	assert_non_null(r);
	assert_int_equal(http_resp_feed(r, "XTTP", 4), HTTP_RESP_MORE);
	assert_int_equal(http_resp_feed(r, "\r\n", 2), HTTP_RESP_ERROR);
	assert_int_equal(http_resp_feed(r, "HTTP", 4), HTTP_RESP_ERROR);
	assert_int_equal(http_resp_close(r), HTTP_RESP_ERROR);
	http_resp_free(&r);
	http_resp_free(&r); /* NULL is fine */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_chunked_bare_lf),
	    cmocka_unit_test(test_close_delimited),
	    cmocka_unit_test(test_te_not_chunked_reads_to_close),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_huge_content_length_is_not_allocated),
	    cmocka_unit_test(test_content_length_conflicts),
	    cmocka_unit_test(test_bad_chunks),
	    cmocka_unit_test(test_chunk_line_limits),
	    cmocka_unit_test(test_header_limits),
	    cmocka_unit_test(test_bad_heads),
	    cmocka_unit_test(test_status_line_forms),
	    cmocka_unit_test(test_interim_responses),
	    cmocka_unit_test(test_redirect_location),
	    cmocka_unit_test(test_content_type),
	    cmocka_unit_test(test_closed_early),
	    cmocka_unit_test(test_feed_after_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
