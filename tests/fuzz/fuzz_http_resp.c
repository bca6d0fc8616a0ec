/* fuzz_http_resp.c -- libFuzzer target for the HTTP/1.1 response parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds data in pieces of step bytes (0 = at once), then closes. */
static struct http_resp *
s_run(const uint8_t *data, size_t size, size_t step, size_t max_body, int *rc)
{
	struct http_resp *r = http_resp_new(max_body);
	size_t off = 0;

	if (r == NULL)
		abort();
	*rc = HTTP_RESP_MORE;
	while (off < size && *rc == HTTP_RESP_MORE) {
		size_t n = step == 0 || step > size - off ? size - off : step;
		*rc = http_resp_feed(r, data + off, n);
		off += n;
	}
	if (*rc == HTTP_RESP_MORE)
		*rc = http_resp_close(r);
	return r;
}

static void
s_check(const struct http_resp *r, int rc, size_t max_body)
{
	if (rc == HTTP_RESP_MORE || r->body_len > max_body ||
	    (r->body_len > 0 && r->body[r->body_len] != '\0') ||
	    (rc < 0 && r->error == NULL) ||
	    (r->too_large && r->body_len != max_body) ||
	    (r->headers_done && (r->status < 200 || r->status > 599)) ||
	    (r->content_type != NULL &&
		strlen(r->content_type) > HTTP_RESP_CONTENT_TYPE_MAX) ||
	    (r->location != NULL &&
		strlen(r->location) > HTTP_RESP_LOCATION_MAX) ||
	    r->line_cap > HTTP_RESP_HEADER_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp *a, *b;
	size_t max_body, step;
	int rc_a, rc_b;

	if (size < 1)
		return 0;
	/* The first byte picks the cap and how the stream is cut. */
	max_body = (size_t)(data[0] & 0x0f) * 64;
	step = (size_t)(data[0] >> 4);
	data++;
	size--;
	a = s_run(data, size, 0, max_body, &rc_a);
	b = s_run(data, size, step, max_body, &rc_b);
	s_check(a, rc_a, max_body);
	s_check(b, rc_b, max_body);
	/* However the bytes arrive, the outcome is the same. */
	if (rc_a != rc_b || a->status != b->status ||
	    a->headers_done != b->headers_done ||
	    a->too_large != b->too_large || a->body_len != b->body_len ||
	    (a->body_len > 0 && memcmp(a->body, b->body, a->body_len) != 0) ||
	    (rc_a < 0 && strcmp(a->error, b->error) != 0) ||
	    (a->content_type == NULL) != (b->content_type == NULL) ||
	    (a->content_type != NULL &&
		strcmp(a->content_type, b->content_type) != 0) ||
	    (a->location == NULL) != (b->location == NULL) ||
	    (a->location != NULL && strcmp(a->location, b->location) != 0))
		abort();
	http_resp_free(&a);
	http_resp_free(&b);
	return 0;
}
