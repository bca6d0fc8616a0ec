/* test_result_json.c -- the JSON of a probe result survives hostile bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "probe.h"
#include "result_json.h"

static void
test_text_cleaned(void **state)
{
	json_t *j;

	(void)state;
	/* A NUL, a lone continuation byte and an overlong '/' become U+FFFD;
	 * valid multi-byte text stays as it is. */
	j = result_json_text("a\0b\x80z\xc0\xaf\xc3\xa9", 9);
	assert_non_null(j);
	assert_string_equal(json_string_value(j),
	    "a\xef\xbf\xbd"
	    "b\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
	json_decref(j);
	j = result_json_text(NULL, 0);
	assert_true(json_is_null(j));
	json_decref(j);
}

static void
test_result_fields(void **state)
{
	struct probe_result *r = calloc(1, sizeof(*r));
	char *rec;
	json_t *j, *o;
	char *dump;

	(void)state;
	assert_non_null(r);
	r->domain = strdup("example.test");
	r->vantage = strdup("lab");
	r->resolver = strdup("system");
	r->completed = 1;
	r->policy.max_age = -1;
	r->sts_records = calloc(1, sizeof(char *));
	rec = strdup("v=STSv1; id=\xff\xfe");
	r->sts_records[0] = rec;
	r->n_sts_records = 1;
	assert_int_equal(finding_add(&r->findings, F_STS_TXT_INVALID,
			     ROLE_DOMAIN, "example.test", "bad byte \xff"),
	    0);
	j = result_json(r);
	assert_non_null(j);
	/* It encodes: jansson refuses invalid UTF-8, so this proves the
	 * cleaning reached every string. */
	dump = json_dumps(j, JSON_COMPACT);
	assert_non_null(dump);
	free(dump);
	o = json_object_get(j, "findings");
	assert_int_equal(json_array_size(o), 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(o, 0), "code")),
	    "STS_TXT_INVALID");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(o, 0), "rfc8460")),
	    "sts-policy-invalid");
	assert_true(json_is_null(
	    json_object_get(json_object_get(j, "policy"), "max_age")));
	assert_true(json_is_true(json_object_get(j, "completed")));
	json_decref(j);
	probe_result_free(&r);
	assert_null(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_cleaned),
	    cmocka_unit_test(test_result_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
