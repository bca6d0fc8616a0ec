/* test_smtp_reply.c -- unit tests of the bounded ESMTP reply parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

#define EHLO_REPLY                                                             \
	"250-mx.example.com Hello\r\n"                                         \
	"250-PIPELINING\r\n"                                                   \
	"250-SIZE 52428800\r\n"                                                \
	"250-STARTTLS\r\n"                                                     \
	"250 8BITMIME\r\n"

static int
parse(const char *buf, struct smtp_reply *out, size_t *consumed)
{
	return smtp_reply_parse(buf, strlen(buf), out, consumed);
}

static void
test_single_line(void **state)
{
	struct smtp_reply r;
	size_t used = 99;

	(void)state;
	assert_int_equal(
	    parse("220 mx.example.com ESMTP ready\r\n", &r, &used), 1);
	assert_int_equal(r.code, 220);
	assert_int_equal(r.n_lines, 1);
	assert_int_equal(used, 32);
	assert_string_equal(r.first_line, "mx.example.com ESMTP ready");
	assert_false(r.has_starttls);
}

static void
test_bare_lf_and_code_only(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("250 ok\n", &r, &used), 1);
	assert_int_equal(used, 7);
	assert_string_equal(r.first_line, "ok");
	assert_int_equal(parse("250\r\n", &r, &used), 1);
	assert_int_equal(used, 5);
	assert_string_equal(r.first_line, "");
	assert_int_equal(parse("354 \n", &r, &used), 1);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.first_line, "");
}

static void
test_multiline_starttls(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse(EHLO_REPLY, &r, &used), 1);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.n_lines, 5);
	assert_true(r.has_starttls);
	assert_int_equal(used, strlen(EHLO_REPLY));
	assert_string_equal(r.first_line, "mx.example.com Hello");
}

static void
test_starttls_keyword_rules(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("250-h\n250 starttls\n", &r, &used), 1);
	assert_true(r.has_starttls);
	assert_int_equal(
	    parse("250-h\n250-StartTLS extra\n250 X\n", &r, &used), 1);
	assert_true(r.has_starttls);
	assert_int_equal(parse("250-h\n250 STARTTLSX\n", &r, &used), 1);
	assert_false(r.has_starttls);
	assert_int_equal(parse("250-h\n250 X-STARTTLS\n", &r, &used), 1);
	assert_false(r.has_starttls);
	assert_int_equal(parse("250-h\n250 STARTTL\n", &r, &used), 1);
	assert_false(r.has_starttls);
	/* On the first line it is the greeting text, not a keyword. */
	assert_int_equal(parse("250 STARTTLS\n", &r, &used), 1);
	assert_false(r.has_starttls);
}

static void
test_incomplete_returns_zero(void **state)
{
	struct smtp_reply r;
	size_t used = 7;

	(void)state;
	assert_int_equal(smtp_reply_parse("", 0, &r, &used), 0);
	assert_int_equal(used, 0);
	assert_int_equal(parse("2", &r, &used), 0);
	assert_int_equal(parse("250", &r, &used), 0);
	assert_int_equal(parse("250 ok", &r, &used), 0);
	assert_int_equal(parse("250 ok\r", &r, &used), 0);
	assert_int_equal(parse("250-a\r\n", &r, &used), 0);
	assert_int_equal(parse("250-a\r\n250-b\r\n250 c", &r, &used), 0);
}

static void
test_split_across_feeds(void **state)
{
	struct smtp_reply r;
	size_t used, total = strlen(EHLO_REPLY);

	(void)state;
	/* Every proper prefix is incomplete; the whole is one reply. */
	for (size_t n = 0; n < total; n++) {
		if (smtp_reply_parse(EHLO_REPLY, n, &r, &used) != 0)
			fail_msg("prefix of %zu bytes did not return 0", n);
	}
	assert_int_equal(smtp_reply_parse(EHLO_REPLY, total, &r, &used), 1);
	assert_int_equal(used, total);
	assert_true(r.has_starttls);
}

static void
test_consumed_leaves_next_reply(void **state)
{
	struct smtp_reply r;
	size_t used;
	const char *buf = "250 first\r\n220 second\r\n";

	(void)state;
	assert_int_equal(parse(buf, &r, &used), 1);
	assert_int_equal(used, 11);
	assert_int_equal(r.code, 250);
	assert_int_equal(parse(buf + used, &r, &used), 1);
	assert_int_equal(r.code, 220);
	assert_string_equal(r.first_line, "second");
}

static void
test_mismatched_codes(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("250-a\r\n251 b\r\n", &r, &used), -1);
	assert_int_equal(parse("250-a\r\n250-b\r\n550 c\r\n", &r, &used), -1);
}

static void
test_malformed_codes(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("25 ok\r\n", &r, &used), -1);
	assert_int_equal(parse("2500 ok\r\n", &r, &used), -1);
	assert_int_equal(parse("abc ok\r\n", &r, &used), -1);
	assert_int_equal(parse("650 ok\r\n", &r, &used), -1);
	assert_int_equal(parse("060 ok\r\n", &r, &used), -1);
	assert_int_equal(parse("270 ok\r\n", &r, &used), -1);
	assert_int_equal(parse("250_ok\r\n", &r, &used), -1);
	assert_int_equal(parse("\r\n", &r, &used), -1);
	assert_int_equal(parse("\n", &r, &used), -1);
	assert_int_equal(parse("250-ok\r\n25x ok\r\n", &r, &used), -1);
}

static void
test_garbage_refused_before_line_end(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	/* No need to wait for a newline to know these are not replies. */
	assert_int_equal(parse("HTTP/1.1 400", &r, &used), -1);
	assert_int_equal(parse("25x", &r, &used), -1);
	assert_int_equal(parse("250x", &r, &used), -1);
	assert_int_equal(parse("250-a\n9", &r, &used), -1);
}

static void
test_line_length_limit(void **state)
{
	struct smtp_reply r;
	size_t used;
	char *buf = malloc(SMTP_LINE_MAX + 16);

	(void)state;
	assert_non_null(buf);
	/* 1000 bytes before the CRLF are allowed. */
	memcpy(buf, "250 ", 4);
	memset(buf + 4, 'x', SMTP_LINE_MAX - 4);
	memcpy(buf + SMTP_LINE_MAX, "\r\n", 2);
	assert_int_equal(
	    smtp_reply_parse(buf, SMTP_LINE_MAX + 2, &r, &used), 1);
	assert_int_equal(used, SMTP_LINE_MAX + 2);
	assert_int_equal(strlen(r.first_line), sizeof(r.first_line) - 1);
	/* Still waiting at exactly 1000 bytes with no line end yet. */
	assert_int_equal(smtp_reply_parse(buf, SMTP_LINE_MAX, &r, &used), 0);
	assert_int_equal(
	    smtp_reply_parse(buf, SMTP_LINE_MAX + 1, &r, &used), 0);

	/* 1001 bytes: refused, with or without the line end in the buffer. */
	memset(buf + 4, 'x', SMTP_LINE_MAX - 3);
	memcpy(buf + SMTP_LINE_MAX + 1, "\r\n", 2);
	assert_int_equal(
	    smtp_reply_parse(buf, SMTP_LINE_MAX + 3, &r, &used), -1);
	assert_int_equal(
	    smtp_reply_parse(buf, SMTP_LINE_MAX + 1, &r, &used), -1);
	buf[SMTP_LINE_MAX + 1] = '\n';
	assert_int_equal(
	    smtp_reply_parse(buf, SMTP_LINE_MAX + 2, &r, &used), -1);
	free(buf);
}

/* Builds n lines of code 250, the last one final. */
static char *
make_lines(size_t n, size_t *len)
{
	char *buf = malloc(n * 16 + 1);
	size_t off = 0;

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		off += (size_t)sprintf(
		    buf + off, "250%cline%zu\r\n", i + 1 == n ? ' ' : '-', i);
	*len = off;
	return buf;
}

static void
test_line_count_limit(void **state)
{
	struct smtp_reply r;
	size_t used, len;
	char *buf;

	(void)state;
	buf = make_lines(SMTP_REPLY_LINES_MAX, &len);
	assert_int_equal(smtp_reply_parse(buf, len, &r, &used), 1);
	assert_int_equal(r.n_lines, SMTP_REPLY_LINES_MAX);
	assert_int_equal(used, len);
	free(buf);

	buf = make_lines(SMTP_REPLY_LINES_MAX + 1, &len);
	assert_int_equal(smtp_reply_parse(buf, len, &r, &used), -1);
	free(buf);
}

static void
test_first_line_sanitized(void **state)
{
	struct smtp_reply r;
	size_t used;
	static const char buf[] = "554 no\0way\x1b[31m\xff\r\n";

	(void)state;
	assert_int_equal(smtp_reply_parse(buf, sizeof(buf) - 1, &r, &used), 1);
	assert_string_equal(r.first_line, "no?way?[31m?");
}

static void
test_crlf_inside_line(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	/* A lone CR is text, not a line end; only LF ends a line. */
	assert_int_equal(parse("250 a\rb\r\n", &r, &used), 1);
	assert_int_equal(used, 9);
	assert_string_equal(r.first_line, "a?b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_line),
	    cmocka_unit_test(test_bare_lf_and_code_only),
	    cmocka_unit_test(test_multiline_starttls),
	    cmocka_unit_test(test_starttls_keyword_rules),
	    cmocka_unit_test(test_incomplete_returns_zero),
	    cmocka_unit_test(test_split_across_feeds),
	    cmocka_unit_test(test_consumed_leaves_next_reply),
	    cmocka_unit_test(test_mismatched_codes),
	    cmocka_unit_test(test_malformed_codes),
	    cmocka_unit_test(test_garbage_refused_before_line_end),
	    cmocka_unit_test(test_line_length_limit),
	    cmocka_unit_test(test_line_count_limit),
	    cmocka_unit_test(test_first_line_sanitized),
	    cmocka_unit_test(test_crlf_inside_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
