/* test_policy_parse.c -- unit tests of the MTA-STS policy body parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_parse.h"

#define HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"

static int
parse(const char *body, struct sts_policy *out, char *err, size_t errlen)
{
	return policy_parse(body, strlen(body), out, err, errlen);
}

/* Expects body to be refused with exactly the reason want. */
static void
expect_error(const char *body, const char *want)
{
	struct sts_policy p;
	char err[256];

	assert_int_equal(parse(body, &p, err, sizeof(err)), -1);
	if (strcmp(err, want) != 0)
		fail_msg("body \"%s\": reason \"%s\", wanted \"%s\"", body, err,
		    want);
	policy_free(&p);
}

static void
test_valid_lf(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse(HEAD "mx: mail.example.com\n"
				    "mx: *.example.net\n",
			     &p, err, sizeof(err)),
	    0);
	assert_string_equal(err, "");
	assert_true(p.version_ok);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 86400);
	assert_int_equal(p.n_mx, 2);
	assert_string_equal(p.mx[0], "mail.example.com");
	assert_string_equal(p.mx[1], "*.example.net");
	policy_free(&p);
	assert_null(p.mx);
	assert_int_equal(p.n_mx, 0);
}

/* Senders skip blank lines; so do we (no false alarm). */
static void
test_blank_lines_skipped(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\n\nmode: none\nmax_age: 1\n", &p,
			     err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_NONE);
	policy_free(&p);
	assert_int_equal(
	    parse(HEAD "mx: a.example\r\n\r\n", &p, err, sizeof(err)), 0);
	assert_int_equal(p.n_mx, 1);
	policy_free(&p);
}

static void
test_valid_crlf_no_final_newline(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\r\nmode: testing\r\n"
			       "max_age: 604800\r\nmx: mx.example.com",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_int_equal(p.max_age, 604800);
	assert_string_equal(p.mx[0], "mx.example.com");
	policy_free(&p);
}

static void
test_valid_mixed_line_ends_and_wsp(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version:STSv1\r\nmode:\t enforce \t\n"
			       "max_age:   60\r\nmx: MX.Example.COM  \r\n",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 60);
	/* mx is stored lower-cased, without the trailing blanks. */
	assert_string_equal(p.mx[0], "mx.example.com");
	policy_free(&p);
}

static void
test_mode_none_needs_no_mx(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 0\n", &p,
			     err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_NONE);
	assert_int_equal(p.max_age, 0);
	assert_int_equal(p.n_mx, 0);
	policy_free(&p);
}

static void
test_missing_mx(void **state)
{
	(void)state;
	expect_error(HEAD, "no mx field (required unless mode is none)");
	expect_error("version: STSv1\nmode: testing\nmax_age: 1\n",
	    "no mx field (required unless mode is none)");
}

static void
test_missing_fields(void **state)
{
	(void)state;
	expect_error("mode: enforce\nmax_age: 1\nmx: a.example\n",
	    "missing version field");
	expect_error("version: STSv1\nmax_age: 1\nmx: a.example\n",
	    "missing mode field");
	expect_error("version: STSv1\nmode: enforce\nmx: a.example\n",
	    "missing max_age field");
	/* Field names are case-sensitive. */
	expect_error("Version: STSv1\nmode: enforce\nmax_age: 1\n"
		     "mx: a.example\n",
	    "missing version field");
}

static void
test_empty_body(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(policy_parse("", 0, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "empty policy");
	assert_int_equal(p.max_age, -1);
	assert_int_equal(p.mode, STS_MODE_UNSET);
	policy_free(&p);
	assert_int_equal(policy_parse(NULL, 0, &p, NULL, 0), -1);
	policy_free(&p);
	policy_free(NULL);
	assert_int_equal(p.max_age, -1);
}

static void
test_max_age_bounds(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\nmode: none\n"
			       "max_age: 31557600\n",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.max_age, 31557600);
	policy_free(&p);

	assert_int_equal(parse("version: STSv1\nmode: none\n"
			       "max_age: 0000000042\n",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.max_age, 42);
	policy_free(&p);

	expect_error("version: STSv1\nmode: none\nmax_age: 31557601\n",
	    "line 3: max_age above 31557600");
	expect_error("version: STSv1\nmode: none\nmax_age: 99999999999\n",
	    "line 3: max_age must be at most 10 digits");
	expect_error("version: STSv1\nmode: none\nmax_age: 00000000001\n",
	    "line 3: max_age must be at most 10 digits");
	expect_error("version: STSv1\nmode: none\nmax_age: 9999999999\n",
	    "line 3: max_age above 31557600");
}

static void
test_max_age_not_digits(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	expect_error("version: STSv1\nmode: none\nmax_age: -1\n",
	    "line 3: max_age must be digits");
	expect_error("version: STSv1\nmode: none\nmax_age: +5\n",
	    "line 3: max_age must be digits");
	expect_error("version: STSv1\nmode: none\nmax_age: 1 2\n",
	    "line 3: max_age must be digits");
	expect_error("version: STSv1\nmode: none\nmax_age: 1d\n",
	    "line 3: max_age must be digits");
	assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: x\n", &p,
			     err, sizeof(err)),
	    -1);
	assert_int_equal(p.max_age, -1);
	policy_free(&p);
}

static void
test_version_and_mode_values(void **state)
{
	(void)state;
	expect_error("version: STSv2\nmode: none\nmax_age: 1\n",
	    "line 1: version must be STSv1");
	expect_error("version: stsv1\nmode: none\nmax_age: 1\n",
	    "line 1: version must be STSv1");
	expect_error("version: STSv1\nmode: Enforce\nmax_age: 1\n",
	    "line 2: mode must be enforce, testing or none");
	expect_error("version: STSv1\nmode: report\nmax_age: 1\n",
	    "line 2: mode must be enforce, testing or none");
}

static void
test_repeated_fields_keep_first(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\nmode: testing\n"
			       "mode: enforce\nmax_age: 10\nmax_age: 20\n"
			       "version: STSv9\nmode: bogus\nmx: a.example\n",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_int_equal(p.max_age, 10);
	assert_true(p.version_ok);
	policy_free(&p);

	/* A bad first value is not rescued by a good later one. */
	expect_error("version: STSv1\nmode: bogus\nmode: enforce\n"
		     "max_age: 1\nmx: a.example\n",
	    "line 2: mode must be enforce, testing or none");
}

static void
test_unknown_keys_ignored(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse(HEAD "mx: a.example\nfoo: bar baz\n"
				    "x_y-z.1: \xc3\xa9t\xc3\xa9\n"
				    "Mode: none\n",
			     &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	policy_free(&p);
}

static void
test_mx_invalid(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	expect_error(HEAD "mx: *example.com\n",
	    "line 4: mx \"*example.com\" has a wildcard other than a leading "
	    "\"*.\"");
	expect_error(HEAD "mx: a.*.b\n",
	    "line 4: mx \"a.*.b\" has a wildcard other than a leading \"*.\"");
	expect_error(HEAD "mx: 192.0.2.1\n",
	    "line 4: mx \"192.0.2.1\" is an IP address, not a host name");
	expect_error(HEAD "mx: [192.0.2.1]\n",
	    "line 4: mx \"[192.0.2.1]\" is an IP address, not a host name");
	expect_error(HEAD "mx: 2001:db8::25\n",
	    "line 4: mx \"2001:db8::25\" is an IP address, not a host name");
	expect_error(HEAD "mx: b\xc3\xbc"
			  "cher.example\n",
	    "line 4: mx \"b\xc3\xbc"
	    "cher.example\" is not ASCII (use the A-label, xn--...)");
	expect_error(HEAD "mx: localhost\n",
	    "line 4: mx \"localhost\" needs at least two labels");
	expect_error(HEAD "mx: *.org\n",
	    "line 4: mx \"*.org\" needs at least two labels after \"*.\"");
	expect_error(HEAD "mx: mx_1.example.com\n",
	    "line 4: mx \"mx_1.example.com\" is not a valid host name");
	expect_error(HEAD "mx: example.com.\n",
	    "line 4: mx \"example.com.\" is not a valid host name");

	/* The bad mx is still shown to the report, with the good ones. */
	assert_int_equal(
	    parse(HEAD "mx: ok.example\nmx: 192.0.2.1\n", &p, err, sizeof(err)),
	    -1);
	assert_int_equal(p.n_mx, 2);
	assert_string_equal(p.mx[1], "192.0.2.1");
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	policy_free(&p);
}

static void
test_mx_valid_wildcard(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(
	    parse(HEAD "mx: *.example.com\n", &p, err, sizeof(err)), 0);
	assert_string_equal(p.mx[0], "*.example.com");
	policy_free(&p);
}

static void
test_mx_limit(void **state)
{
	struct sts_policy p;
	char err[256], *body;
	size_t cap = 64 + (POLICY_MX_MAX + 1) * 32, off;

	(void)state;
	body = malloc(cap);
	assert_non_null(body);
	off = (size_t)snprintf(body, cap, "%s", HEAD);
	for (int i = 0; i < POLICY_MX_MAX; i++)
		off += (size_t)snprintf(
		    body + off, cap - off, "mx: mx%d.example.com\n", i);
	assert_int_equal(parse(body, &p, err, sizeof(err)), 0);
	assert_int_equal(p.n_mx, POLICY_MX_MAX);
	assert_string_equal(p.mx[POLICY_MX_MAX - 1], "mx255.example.com");
	policy_free(&p);

	snprintf(body + off, cap - off, "mx: one.too.many\n");
	assert_int_equal(parse(body, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "line 260: more than 256 mx lines");
	assert_int_equal(p.n_mx, POLICY_MX_MAX);
	policy_free(&p);
	free(body);
}

static void
test_malformed_lines(void **state)
{
	(void)state;
	expect_error(HEAD "mx a.example\n", "line 4: no ':' after the field "
					    "name");
	expect_error(HEAD ": a.example\n", "line 4: empty field name");
	expect_error(HEAD " mx: a.example\n",
	    "line 4: line must begin with a field name");
	expect_error(
	    HEAD "mx : a.example\n", "line 4: invalid byte 0x20 in field name");
	expect_error(HEAD "_mx: a.example\n",
	    "line 4: line must begin with a field name");
	expect_error(HEAD "mx:\n", "line 4: field \"mx\" has an empty value");
	expect_error(
	    HEAD "mx:   \r\n", "line 4: field \"mx\" has an empty value");
	expect_error("version: STSv1\rmode: none\nmax_age: 1\n",
	    "line 1: control character 0x0d");
	expect_error(HEAD "mx: a.\x1b"
			  "example\n",
	    "line 4: control character 0x1b");
	expect_error(
	    HEAD "mx: a.example\x7f\n", "line 4: control character 0x7f");
}

static void
test_long_field_name(void **state)
{
	char body[256];

	(void)state;
	strcpy(body, HEAD "mx: a.example\n");
	memset(body + strlen(body), 'k', 33);
	strcpy(body + strlen(HEAD "mx: a.example\n") + 33, ": v\n");
	expect_error(body, "line 5: field name longer than 32 characters");

	/* 32 characters are fine. */
	strcpy(body, HEAD "mx: a.example\n");
	memset(body + strlen(body), 'k', 32);
	strcpy(body + strlen(HEAD "mx: a.example\n") + 32, ": v\n");
	{
		struct sts_policy p;
		char err[256];

		assert_int_equal(parse(body, &p, err, sizeof(err)), 0);
		policy_free(&p);
	}
}

static void
test_nul_byte(void **state)
{
	struct sts_policy p;
	char err[256];
	static const char body[] = "version: STSv1\nmode: none\nmax_age: 1\0\n";

	(void)state;
	assert_int_equal(
	    policy_parse(body, sizeof(body) - 1, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "line 3: NUL byte");
	policy_free(&p);
}

static void
test_first_error_wins_and_out_is_filled(void **state)
{
	struct sts_policy p;
	char err[256];

	(void)state;
	assert_int_equal(parse("version: STSv1\nmax_age: 99999999\n"
			       "mode: testing\nbad line\nmx: mx.example\n",
			     &p, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "line 2: max_age above 31557600");
	assert_int_equal(p.max_age, -1);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_int_equal(p.n_mx, 1);
	policy_free(&p);
}

static void
test_len_bounds_the_body(void **state)
{
	struct sts_policy p;
	char err[256];
	static const char body[] = "version: STSv1\nmode: none\nmax_age: 12345";

	(void)state;
	/* The body is cut after "max_age: 12": no NUL is needed. */
	assert_int_equal(
	    policy_parse(body, sizeof(body) - 4, &p, err, sizeof(err)), 0);
	assert_int_equal(p.max_age, 12);
	policy_free(&p);
}

static void
test_small_err_buffer(void **state)
{
	struct sts_policy p;
	char err[5];

	(void)state;
	assert_int_equal(parse("x\n", &p, err, sizeof(err)), -1);
	assert_string_equal(err, "line");
	policy_free(&p);
	assert_int_equal(parse("x\n", &p, NULL, 0), -1);
	policy_free(&p);
}

static void
test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(policy_mode_name(STS_MODE_ENFORCE), "enforce");
	assert_string_equal(policy_mode_name(STS_MODE_TESTING), "testing");
	assert_string_equal(policy_mode_name(STS_MODE_NONE), "none");
	assert_string_equal(policy_mode_name(STS_MODE_UNSET), "unset");
	assert_string_equal(policy_mode_name((enum sts_mode)42), "unset");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_lf),
	    cmocka_unit_test(test_blank_lines_skipped),
	    cmocka_unit_test(test_valid_crlf_no_final_newline),
	    cmocka_unit_test(test_valid_mixed_line_ends_and_wsp),
	    cmocka_unit_test(test_mode_none_needs_no_mx),
	    cmocka_unit_test(test_missing_mx),
	    cmocka_unit_test(test_missing_fields),
	    cmocka_unit_test(test_empty_body),
	    cmocka_unit_test(test_max_age_bounds),
	    cmocka_unit_test(test_max_age_not_digits),
	    cmocka_unit_test(test_version_and_mode_values),
	    cmocka_unit_test(test_repeated_fields_keep_first),
	    cmocka_unit_test(test_unknown_keys_ignored),
	    cmocka_unit_test(test_mx_invalid),
	    cmocka_unit_test(test_mx_valid_wildcard),
	    cmocka_unit_test(test_mx_limit),
	    cmocka_unit_test(test_malformed_lines),
	    cmocka_unit_test(test_long_field_name),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_first_error_wins_and_out_is_filled),
	    cmocka_unit_test(test_len_bounds_the_body),
	    cmocka_unit_test(test_small_err_buffer),
	    cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
