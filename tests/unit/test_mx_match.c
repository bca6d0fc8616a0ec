/* test_mx_match.c -- unit tests of host name normalizing and mx matching. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "mx_match.h"

static void
test_normalize_lowercases_and_strips_dot(void **state)
{
	char out[DNSNAME_MAX];

	(void)state;
	assert_int_equal(
	    dnsname_normalize("MX1.Example.COM.", out, sizeof(out)), 0);
	assert_string_equal(out, "mx1.example.com");
	assert_int_equal(dnsname_normalize("a.b", out, sizeof(out)), 0);
	assert_string_equal(out, "a.b");
}

static void
test_normalize_strips_only_one_dot(void **state)
{
	char out[DNSNAME_MAX];

	(void)state;
	assert_int_equal(dnsname_normalize("a.b..", out, sizeof(out)), 0);
	assert_string_equal(out, "a.b.");
}

static void
test_normalize_rejects_empty(void **state)
{
	char out[DNSNAME_MAX];

	(void)state;
	assert_int_equal(dnsname_normalize("", out, sizeof(out)), -1);
	assert_int_equal(dnsname_normalize(".", out, sizeof(out)), -1);
	assert_int_equal(dnsname_normalize(NULL, out, sizeof(out)), -1);
}

static void
test_normalize_rejects_too_long(void **state)
{
	char out[8];

	(void)state;
	/* Seven characters and the NUL fit; eight do not. */
	assert_int_equal(dnsname_normalize("abcdefg", out, sizeof(out)), 0);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(dnsname_normalize("abcdefgh", out, sizeof(out)), -1);
	assert_int_equal(dnsname_normalize("abcdefg.", out, sizeof(out)), 0);
	assert_int_equal(dnsname_normalize("a", out, 0), -1);
}

static void
test_pattern_valid_names(void **state)
{
	(void)state;
	assert_true(mx_pattern_valid("mx.example.com"));
	assert_true(mx_pattern_valid("MX.Example.COM"));
	assert_true(mx_pattern_valid("example.com"));
	assert_true(mx_pattern_valid("*.example.com"));
	assert_true(mx_pattern_valid("mx-1.ex-ample.com"));
	assert_true(mx_pattern_valid("xn--bcher-kva.example"));
	assert_true(mx_pattern_valid("1mx.example.com"));
	assert_true(mx_pattern_valid("123.example.com"));
}

static void
test_pattern_invalid_wildcards(void **state)
{
	(void)state;
	assert_false(mx_pattern_valid("*example.com"));
	assert_false(mx_pattern_valid("a.*.b"));
	assert_false(mx_pattern_valid("*.*.example.com"));
	assert_false(mx_pattern_valid("mx*.example.com"));
	assert_false(mx_pattern_valid("*"));
	assert_false(mx_pattern_valid("*."));
	/* The wildcard must still be followed by two labels. */
	assert_false(mx_pattern_valid("*.com"));
}

static void
test_pattern_invalid_addresses(void **state)
{
	(void)state;
	assert_false(mx_pattern_valid("192.0.2.1"));
	assert_false(mx_pattern_valid("[192.0.2.1]"));
	assert_false(mx_pattern_valid("2001:db8::1"));
	assert_false(mx_pattern_valid("[IPv6:2001:db8::1]"));
	assert_false(mx_pattern_valid("*.0.2.1"));
}

static void
test_pattern_invalid_utf8(void **state)
{
	(void)state;
	/* "bücher.example" as UTF-8: the A-label is required. */
	assert_false(mx_pattern_valid("b\xc3\xbc"
				      "cher.example"));
}

static void
test_pattern_invalid_shapes(void **state)
{
	(void)state;
	assert_false(mx_pattern_valid(NULL));
	assert_false(mx_pattern_valid(""));
	assert_false(mx_pattern_valid("localhost"));
	assert_false(mx_pattern_valid("example.com."));
	assert_false(mx_pattern_valid(".example.com"));
	assert_false(mx_pattern_valid("a..example.com"));
	assert_false(mx_pattern_valid("-mx.example.com"));
	assert_false(mx_pattern_valid("mx-.example.com"));
	assert_false(mx_pattern_valid("mx_1.example.com"));
	assert_false(mx_pattern_valid("mx .example.com"));
	assert_false(mx_pattern_valid(" mx.example.com"));
}

static void
test_pattern_label_and_name_limits(void **state)
{
	char name[400];

	(void)state;
	/* A 63-byte label is allowed, 64 is not. */
	memset(name, 'a', 63);
	strcpy(name + 63, ".com");
	assert_true(mx_pattern_valid(name));
	memset(name, 'a', 64);
	strcpy(name + 64, ".com");
	assert_false(mx_pattern_valid(name));

	/* 4 x 63-byte labels and dots: 63*4+3 = 255 > 253. */
	memset(name, 0, sizeof(name));
	for (int i = 0; i < 4; i++) {
		memset(name + i * 64, 'a', 63);
		if (i < 3)
			name[i * 64 + 63] = '.';
	}
	assert_int_equal(strlen(name), 255);
	assert_false(mx_pattern_valid(name));
	/* Trim to exactly 253: still valid. */
	name[253] = '\0';
	assert_true(mx_pattern_valid(name));
}

static void
test_match_exact(void **state)
{
	(void)state;
	assert_true(mx_match("mx.example.com", "mx.example.com"));
	assert_true(mx_match("mx.example.com", "MX.EXAMPLE.COM"));
	assert_true(mx_match("MX.example.com", "mx.example.com."));
	assert_false(mx_match("mx.example.com", "mx2.example.com"));
	assert_false(mx_match("mx.example.com", "x.mx.example.com"));
	assert_false(mx_match("mx.example.com", "example.com"));
}

static void
test_match_wildcard_one_label(void **state)
{
	(void)state;
	assert_true(mx_match("*.b.c", "a.b.c"));
	assert_true(mx_match("*.b.c", "A.B.C."));
	assert_false(mx_match("*.b.c", "b.c"));
	assert_false(mx_match("*.b.c", "x.a.b.c"));
	assert_false(mx_match("*.b.c", ".b.c"));
	assert_false(mx_match("*.b.c", "ab.c"));
	assert_false(mx_match("*.b.c", "a.xb.c"));
}

static void
test_match_invalid_inputs(void **state)
{
	(void)state;
	/* An address-shaped pattern never matches, not even itself. */
	assert_false(mx_match("192.0.2.1", "192.0.2.1"));
	assert_false(mx_match("*example.com", "mx.example.com"));
	assert_false(mx_match("mx.example.com", ""));
	assert_false(mx_match("mx.example.com", "."));
	assert_false(mx_match(NULL, "mx.example.com"));
	assert_false(mx_match("mx.example.com", NULL));
}

static void
test_match_any(void **state)
{
	char *patterns[] = {"mx1.example.com", "*.backup.example.net"};

	(void)state;
	assert_true(mx_match_any(patterns, 2, "mx1.example.com"));
	assert_true(mx_match_any(patterns, 2, "b1.backup.example.net"));
	assert_false(mx_match_any(patterns, 2, "backup.example.net"));
	assert_false(mx_match_any(patterns, 2, "mx2.example.com"));
	assert_false(mx_match_any(patterns, 0, "mx1.example.com"));
	assert_false(mx_match_any(NULL, 0, "mx1.example.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize_lowercases_and_strips_dot),
	    cmocka_unit_test(test_normalize_strips_only_one_dot),
	    cmocka_unit_test(test_normalize_rejects_empty),
	    cmocka_unit_test(test_normalize_rejects_too_long),
	    cmocka_unit_test(test_pattern_valid_names),
	    cmocka_unit_test(test_pattern_invalid_wildcards),
	    cmocka_unit_test(test_pattern_invalid_addresses),
	    cmocka_unit_test(test_pattern_invalid_utf8),
	    cmocka_unit_test(test_pattern_invalid_shapes),
	    cmocka_unit_test(test_pattern_label_and_name_limits),
	    cmocka_unit_test(test_match_exact),
	    cmocka_unit_test(test_match_wildcard_one_label),
	    cmocka_unit_test(test_match_invalid_inputs),
	    cmocka_unit_test(test_match_any),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
