/* test_sts_txt.c -- unit tests of the _mta-sts TXT record parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sts_txt.h"

/* Parses a C string; err is left in the caller's buffer. */
static int
parse(const char *rec, struct sts_txt *out, char *err, size_t errlen)
{
	return sts_txt_parse(rec, strlen(rec), out, err, errlen);
}

static void
test_is_sts(void **state)
{
	(void)state;
	assert_true(sts_txt_is_sts("v=STSv1", 7));
	assert_true(sts_txt_is_sts("v=STSv1;", 8));
	assert_true(sts_txt_is_sts("v=STSv1; id=1", 13));
	assert_true(sts_txt_is_sts("v=STSv1 \t; id=1", 15));
	assert_false(sts_txt_is_sts("v=STSv10; id=1", 14));
	assert_false(sts_txt_is_sts("v=STSv1 id=1", 12));
	assert_false(sts_txt_is_sts("v=stsv1; id=1", 13));
	assert_false(sts_txt_is_sts(" v=STSv1; id=1", 14));
	assert_false(sts_txt_is_sts("v=spf1 -all", 11));
	assert_false(sts_txt_is_sts("v=STS", 5));
	assert_false(sts_txt_is_sts("", 0));
	assert_false(sts_txt_is_sts(NULL, 0));
}

static void
test_is_sts_uses_len_not_nul(void **state)
{
	(void)state;
	/* The record is cut after "v=STSv1": the rest is not looked at. */
	assert_true(sts_txt_is_sts("v=STSv1X", 7));
	assert_false(sts_txt_is_sts("v=STSv1", 6));
}

static void
test_valid_minimal(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(
	    parse("v=STSv1; id=20160831085700Z", &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "20160831085700Z");
	assert_string_equal(err, "");
}

static void
test_valid_no_space_and_trailing_delim(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1;id=abc;", &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "abc");
	assert_int_equal(parse("v=STSv1;id=abc ; ", &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "abc");
}

static void
test_valid_spaces_around_delim(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(
	    parse("v=STSv1 \t ;\t id=x1 ; ext=v ", &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "x1");
}

static void
test_valid_extensions(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1; a_b-c.d=!\"#:<>~; id=1; "
			       "z9=http://x/?a",
			     &t, err, sizeof(err)),
	    0);
	assert_string_equal(t.id, "1");
	/* "ID" is not "id": an extension, so id is still missing. */
	assert_int_equal(parse("v=STSv1; ID=abc", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "missing id field");
}

static void
test_id_32_and_33(void **state)
{
	struct sts_txt t;
	char err[128];
	char rec[64];

	(void)state;
	strcpy(rec, "v=STSv1; id=");
	memset(rec + 12, 'A', 32);
	rec[44] = '\0';
	assert_int_equal(parse(rec, &t, err, sizeof(err)), 0);
	assert_int_equal(strlen(t.id), 32);

	rec[44] = 'B';
	rec[45] = '\0';
	assert_int_equal(parse(rec, &t, err, sizeof(err)), -1);
	assert_string_equal(err, "id must be 1-32 letters or digits");
	assert_string_equal(t.id, "");
}

static void
test_id_bad_chars(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(
	    parse("v=STSv1; id=abc-def", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "id must be 1-32 letters or digits");
	assert_int_equal(parse("v=STSv1; id=", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "id must be 1-32 letters or digits");
	assert_int_equal(parse("v=STSv1; id=;", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "id must be 1-32 letters or digits");
}

static void
test_id_first_wins(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(
	    parse("v=STSv1; id=first; id=second", &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "first");
	/* A later id must still follow the grammar. */
	assert_int_equal(
	    parse("v=STSv1; id=first; id=bad!", &t, err, sizeof(err)), -1);
	assert_string_equal(t.id, "first");
}

static void
test_missing_id(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "missing id field");
	assert_int_equal(parse("v=STSv1;", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "missing id field");
	assert_int_equal(parse("v=STSv1; foo=bar", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "missing id field");
}

static void
test_not_sts(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "v=STSv1"));
	assert_int_equal(parse("v=STSv2; id=1", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "v=STSv1"));
	assert_int_equal(parse("v=STSv1 id=1", &t, err, sizeof(err)), -1);
}

static void
test_double_delimiter(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1;; id=1", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x3b"));
	assert_non_null(strstr(err, "field name"));
}

static void
test_missing_delimiter_between_fields(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1; id=1 a=b", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected ';'"));
	/* The id read before the error is kept for the report. */
	assert_string_equal(t.id, "1");
}

static void
test_field_without_equals(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1; id=1; foo", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "has no '='"));
	assert_int_equal(
	    parse("v=STSv1; id=1; fo o=1", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "has no '='"));
}

static void
test_bad_extension_name(void **state)
{
	struct sts_txt t;
	char err[128];
	char rec[128];

	(void)state;
	assert_int_equal(
	    parse("v=STSv1; id=1; _x=1", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "field name"));
	assert_int_equal(parse("v=STSv1; id=1; =1", &t, err, sizeof(err)), -1);

	/* 32 characters of name are allowed, 33 are not. */
	strcpy(rec, "v=STSv1; id=1; ");
	memset(rec + 15, 'n', 32);
	strcpy(rec + 47, "=v");
	assert_int_equal(parse(rec, &t, err, sizeof(err)), 0);
	memset(rec + 15, 'n', 33);
	strcpy(rec + 48, "=v");
	assert_int_equal(parse(rec, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 32"));
}

static void
test_bad_extension_value(void **state)
{
	struct sts_txt t;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=STSv1; id=1; a=", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty value"));
	assert_int_equal(
	    parse("v=STSv1; id=1; a=b=c", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x3d"));
	assert_int_equal(
	    parse("v=STSv1; id=1; a=\x7f", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x7f"));
	assert_int_equal(
	    parse("v=STSv1; id=1; a=\xc3\xa9", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0xc3"));
}

static void
test_nul_and_control_bytes(void **state)
{
	struct sts_txt t;
	char err[128];
	static const char rec[] = "v=STSv1; id=ab\0cd";

	(void)state;
	assert_int_equal(
	    sts_txt_parse(rec, sizeof(rec) - 1, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x00"));
	assert_int_equal(parse("v=STSv1;\r\nid=1", &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0x0d"));
}

static void
test_len_bounds_the_record(void **state)
{
	struct sts_txt t;
	char err[128];
	static const char rec[] = "v=STSv1; id=abcdef";

	(void)state;
	/* Only "v=STSv1; id=abc" is given; no NUL follows it. */
	assert_int_equal(sts_txt_parse(rec, 15, &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "abc");
}

static void
test_small_or_null_err(void **state)
{
	struct sts_txt t;
	char err[8];

	(void)state;
	assert_int_equal(parse("v=STSv1", &t, NULL, 0), -1);
	assert_int_equal(parse("v=STSv1", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "missing");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_sts),
	    cmocka_unit_test(test_is_sts_uses_len_not_nul),
	    cmocka_unit_test(test_valid_minimal),
	    cmocka_unit_test(test_valid_no_space_and_trailing_delim),
	    cmocka_unit_test(test_valid_spaces_around_delim),
	    cmocka_unit_test(test_valid_extensions),
	    cmocka_unit_test(test_id_32_and_33),
	    cmocka_unit_test(test_id_bad_chars),
	    cmocka_unit_test(test_id_first_wins),
	    cmocka_unit_test(test_missing_id),
	    cmocka_unit_test(test_not_sts),
	    cmocka_unit_test(test_double_delimiter),
	    cmocka_unit_test(test_missing_delimiter_between_fields),
	    cmocka_unit_test(test_field_without_equals),
	    cmocka_unit_test(test_bad_extension_name),
	    cmocka_unit_test(test_bad_extension_value),
	    cmocka_unit_test(test_nul_and_control_bytes),
	    cmocka_unit_test(test_len_bounds_the_record),
	    cmocka_unit_test(test_small_or_null_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
