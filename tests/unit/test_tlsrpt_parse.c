/* test_tlsrpt_parse.c -- unit tests of the _smtp._tls TXT record parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tlsrpt_parse.h"

static int
parse(const char *rec, struct tlsrpt_record *out, char *err, size_t errlen)
{
	return tlsrpt_parse(rec, strlen(rec), out, err, errlen);
}

/* Expects rec to be refused with a reason containing want. */
static void
expect_invalid(const char *rec, const char *want)
{
	struct tlsrpt_record r;
	char err[256];

	assert_int_equal(parse(rec, &r, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("record \"%s\": reason \"%s\" lacks \"%s\"", rec, err,
		    want);
	tlsrpt_free(&r);
}

static void
test_is_tlsrpt(void **state)
{
	(void)state;
	assert_true(tlsrpt_is_tlsrpt("v=TLSRPTv1", 10));
	assert_true(tlsrpt_is_tlsrpt("v=TLSRPTv1;rua=x", 16));
	assert_true(tlsrpt_is_tlsrpt("v=TLSRPTv1 ;", 12));
	assert_false(tlsrpt_is_tlsrpt("v=TLSRPTv10;", 12));
	assert_false(tlsrpt_is_tlsrpt("v=TLSRPTv1 rua=x", 16));
	assert_false(tlsrpt_is_tlsrpt("v=tlsrptv1;", 11));
	assert_false(tlsrpt_is_tlsrpt("v=STSv1; id=1", 13));
	assert_false(tlsrpt_is_tlsrpt("", 0));
	assert_false(tlsrpt_is_tlsrpt(NULL, 0));
}

static void
test_valid_mailto(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", &r,
			     err, sizeof(err)),
	    0);
	assert_int_equal(r.n_rua, 1);
	assert_string_equal(r.rua[0], "mailto:tlsrpt@example.com");
	assert_string_equal(err, "");
	tlsrpt_free(&r);
	assert_null(r.rua);
	assert_int_equal(r.n_rua, 0);
}

static void
test_valid_list_with_spaces(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	assert_int_equal(parse("v=TLSRPTv1 ; rua=mailto:a@example.com \t, "
			       "https://reports.example.com/tlsrpt ;",
			     &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.n_rua, 2);
	assert_string_equal(r.rua[0], "mailto:a@example.com");
	assert_string_equal(r.rua[1], "https://reports.example.com/tlsrpt");
	tlsrpt_free(&r);
}

static void
test_valid_schemes_case_and_query(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	assert_int_equal(parse("v=TLSRPTv1;rua=MAILTO:x@example.com?subject="
			       "tls%20report,HTTPS://u@h.example:8443",
			     &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.n_rua, 2);
	tlsrpt_free(&r);
}

static void
test_valid_extension_and_first_rua_wins(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	assert_int_equal(parse("v=TLSRPTv1; ext_1=yes; rua=mailto:a@b.example;"
			       " rua=mailto:c@d.example",
			     &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.n_rua, 1);
	assert_string_equal(r.rua[0], "mailto:a@b.example");
	tlsrpt_free(&r);
}

static void
test_missing_rua(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1", "missing rua field");
	expect_invalid("v=TLSRPTv1;", "missing rua field");
	expect_invalid(
	    "v=TLSRPTv1; RUA=mailto:a@b.example", "missing rua field");
}

static void
test_not_tlsrpt(void **state)
{
	(void)state;
	expect_invalid("", "v=TLSRPTv1");
	expect_invalid("v=TLSRPTv2; rua=mailto:a@b.example", "v=TLSRPTv1");
}

static void
test_bad_schemes(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1; rua=http://reports.example.com/",
	    "\"http://reports.example.com/\" is neither mailto: nor https:");
	expect_invalid(
	    "v=TLSRPTv1; rua=ftp://x.example", "\"ftp://x.example\"");
	expect_invalid("v=TLSRPTv1; rua=a@b.example", "\"a@b.example\"");
	/* The second URI is the bad one and is named. */
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a@b.example,gopher://x", "\"gopher://x\"");
}

static void
test_bad_mailto(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1; rua=mailto:", "\"mailto:\"");
	expect_invalid("v=TLSRPTv1; rua=mailto:nobody", "with an address");
	expect_invalid("v=TLSRPTv1; rua=mailto:@b.example", "with an address");
	expect_invalid("v=TLSRPTv1; rua=mailto:a@", "with an address");
	expect_invalid("v=TLSRPTv1; rua=mailto:a?x=@b", "with an address");
}

static void
test_bad_https(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1; rua=https:", "has no //host");
	expect_invalid("v=TLSRPTv1; rua=https:/x.example", "has no //host");
	expect_invalid("v=TLSRPTv1; rua=https://", "has no //host");
	expect_invalid("v=TLSRPTv1; rua=https:///path", "has no //host");
	expect_invalid("v=TLSRPTv1; rua=https://u@/p", "has no //host");
	expect_invalid("v=TLSRPTv1; rua=https://:443/", "has no //host");
}

static void
test_bad_lists(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1; rua=", "empty URI");
	expect_invalid("v=TLSRPTv1; rua=;", "empty URI");
	expect_invalid("v=TLSRPTv1; rua=mailto:a@b.example,", "empty URI");
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a@b.example,,mailto:c@d.ex", "empty URI");
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a@b.example mailto:c@d.ex", "expected ';'");
}

static void
test_bad_uri_bytes(void **state)
{
	(void)state;
	expect_invalid("v=TLSRPTv1; rua=mailto:a!b@c.example", "0x21");
	expect_invalid("v=TLSRPTv1; rua=mailto:a<b@c.example", "0x3c");
	expect_invalid("v=TLSRPTv1; rua=mailto:a\x01"
		       "b@c.example",
	    "0x01");
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a%zzb@c.example", "percent-encoding");
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a@c.example%2", "percent-encoding");
}

static void
test_too_many_rua(void **state)
{
	struct tlsrpt_record r;
	char rec[2048], err[256];
	size_t off;

	(void)state;
	off = (size_t)snprintf(rec, sizeof(rec), "v=TLSRPTv1; rua=");
	for (int i = 0; i < TLSRPT_RUA_MAX; i++)
		off += (size_t)snprintf(rec + off, sizeof(rec) - off,
		    "%smailto:r%d@example.com", i ? "," : "", i);
	assert_int_equal(parse(rec, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n_rua, TLSRPT_RUA_MAX);
	tlsrpt_free(&r);

	snprintf(rec + off, sizeof(rec) - off, ",mailto:extra@example.com");
	assert_int_equal(parse(rec, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 16 rua URIs"));
	assert_int_equal(r.n_rua, TLSRPT_RUA_MAX);
	tlsrpt_free(&r);
}

static void
test_bad_fields(void **state)
{
	char rec[128];

	(void)state;
	expect_invalid("v=TLSRPTv1;; rua=mailto:a@b.example", "field name");
	expect_invalid("v=TLSRPTv1; rua=mailto:a@b.example; x", "no '='");
	expect_invalid("v=TLSRPTv1; rua=mailto:a@b.example; x=", "empty value");
	expect_invalid("v=TLSRPTv1; rua=mailto:a@b.example; x=a=b", "0x3d");
	expect_invalid(
	    "v=TLSRPTv1; rua=mailto:a@b.example; -x=1", "field name");
	strcpy(rec, "v=TLSRPTv1; rua=mailto:a@b.example; ");
	memset(rec + 36, 'n', 33);
	strcpy(rec + 69, "=1");
	expect_invalid(rec, "longer than 32");
}

static void
test_invalid_keeps_what_was_read(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	assert_int_equal(parse("v=TLSRPTv1; rua=mailto:a@b.example,"
			       "http://x.example",
			     &r, err, sizeof(err)),
	    -1);
	assert_int_equal(r.n_rua, 2);
	assert_string_equal(r.rua[1], "http://x.example");
	tlsrpt_free(&r);
}

static void
test_nul_byte(void **state)
{
	struct tlsrpt_record r;
	char err[256];
	static const char rec[] = "v=TLSRPTv1; rua=mailto:a@b\0.example";

	(void)state;
	assert_int_equal(
	    tlsrpt_parse(rec, sizeof(rec) - 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x00"));
	tlsrpt_free(&r);
}

static void
test_free_null_and_twice(void **state)
{
	struct tlsrpt_record r;
	char err[256];

	(void)state;
	tlsrpt_free(NULL);
	assert_int_equal(
	    parse("v=TLSRPTv1;rua=mailto:a@b.example", &r, err, sizeof(err)),
	    0);
	tlsrpt_free(&r);
	tlsrpt_free(&r);
	assert_null(r.rua);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_tlsrpt),
	    cmocka_unit_test(test_valid_mailto),
	    cmocka_unit_test(test_valid_list_with_spaces),
	    cmocka_unit_test(test_valid_schemes_case_and_query),
	    cmocka_unit_test(test_valid_extension_and_first_rua_wins),
	    cmocka_unit_test(test_missing_rua),
	    cmocka_unit_test(test_not_tlsrpt),
	    cmocka_unit_test(test_bad_schemes),
	    cmocka_unit_test(test_bad_mailto),
	    cmocka_unit_test(test_bad_https),
	    cmocka_unit_test(test_bad_lists),
	    cmocka_unit_test(test_bad_uri_bytes),
	    cmocka_unit_test(test_too_many_rua),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_invalid_keeps_what_was_read),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_free_null_and_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
