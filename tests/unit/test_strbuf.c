/* test_strbuf.c -- unit tests of the growing string buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/*
 * The out-of-memory test asks for more than any allocator gives; under
 * ASan that must come back as NULL, as it does from glibc, rather than
 * abort the program.
 */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* Nothing added: "" (callers print it), never NULL. */
static void
test_empty(void **state)
{
	struct strbuf b;
	size_t len = 99;
	char *s;

	(void)state;
	strbuf_init(&b, 0);
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);
	s = strbuf_steal(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	/* Capped at one byte: room for the NUL alone, still "". */
	strbuf_init(&b, 1);
	strbuf_add(&b, "");
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);
	s = strbuf_steal(&b, NULL);
	assert_string_equal(s, "");
	free(s);
}

static void
test_add(void **state)
{
	struct strbuf b;
	size_t len;
	char *s;

	(void)state;
	strbuf_init(&b, 0);
	strbuf_add(&b, "abc");
	strbuf_addn(&b, "de\0f", 4);
	strbuf_add(&b, "");
	strbuf_printf(&b, "-%d-%s", 42, "x");
	s = strbuf_steal(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 12);
	assert_memory_equal(s, "abcde\0f-42-x", 13);
	free(s);
}

/* max counts the NUL: max - 1 bytes of text fit, one more does not. */
static void
test_cap(void **state)
{
	struct strbuf b;
	size_t len;
	char *s;

	(void)state;
	strbuf_init(&b, 8);
	strbuf_add(&b, "1234");
	strbuf_add(&b, "567");
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);
	s = strbuf_steal(&b, &len);
	assert_string_equal(s, "1234567");
	assert_int_equal(len, 7);
	free(s);

	/* One byte over, in one add: nothing of it goes in. */
	strbuf_init(&b, 8);
	strbuf_add(&b, "12345678");
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	/* Sticky: a later add that would fit changes nothing (the length is
	 * looked at directly: a failed buffer hands nothing out). */
	strbuf_add(&b, "1");
	strbuf_printf(&b, "%d", 2);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	assert_int_equal(b.len, 0);
	len = 99;
	assert_null(strbuf_steal(&b, &len));
	assert_int_equal(len, 0);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);

	/* One byte over after the cap was reached exactly. */
	strbuf_init(&b, 8);
	strbuf_add(&b, "1234567");
	strbuf_addn(&b, "8", 1);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);

	/* printf is held to the cap as well, to the byte. */
	strbuf_init(&b, 6);
	strbuf_printf(&b, "%s", "12345");
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);
	strbuf_printf(&b, "%d", 6);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);
}

/* Growing in small steps up to a cap that is no power of two: the text is
 * whole and the allocation never passes the cap. */
static void
test_grow_to_cap(void **state)
{
	struct strbuf b;
	size_t len;
	char *s;

	(void)state;
	strbuf_init(&b, 1000);
	for (int i = 0; i < 333; i++)
		strbuf_add(&b, "abc");
	assert_int_equal(strbuf_failed(&b), STRBUF_OK);
	assert_true(b.cap <= 1000);
	strbuf_add(&b, "abc");
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);

	strbuf_init(&b, 1000);
	for (int i = 0; i < 333; i++)
		strbuf_add(&b, "abc");
	s = strbuf_steal(&b, &len);
	assert_int_equal(len, 999);
	assert_int_equal(strlen(s), 999);
	assert_memory_equal(s + 996, "abc", 4);
	free(s);
}

/* Longer than any stack buffer a printf helper might use, and across the
 * first allocation with part of it filled (the short first pass). */
static void
test_printf_long(void **state)
{
	static char big[20001];
	struct strbuf b;
	size_t len;
	char *s;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	strbuf_init(&b, 0);
	strbuf_add(&b, "head:");
	strbuf_printf(&b, "%s:%d", big, 7);
	strbuf_printf(&b, "%.300s|", big);
	s = strbuf_steal(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 5 + 20000 + 2 + 301);
	assert_int_equal(strlen(s), len);
	assert_memory_equal(s, "head:xxx", 8);
	assert_memory_equal(s + 5 + 20000, ":7xx", 4);
	assert_int_equal(s[len - 1], '|');
	free(s);

	/* A short first pass must not leave its truncated text behind. */
	strbuf_init(&b, 0);
	strbuf_add(&b, "abc");
	strbuf_printf(&b, "%.400s", big);
	strbuf_add(&b, "!");
	s = strbuf_steal(&b, &len);
	assert_int_equal(len, 404);
	assert_int_equal(s[3], 'x');
	assert_int_equal(s[403], '!');
	free(s);
}

/* Steal hands the string over and leaves b empty and usable; free on an
 * empty or stolen buffer is harmless. */
static void
test_steal_free(void **state)
{
	struct strbuf b;
	char *s1, *s2;

	(void)state;
	strbuf_init(&b, 100);
	strbuf_free(&b);
	strbuf_add(&b, "one");
	s1 = strbuf_steal(&b, NULL);
	strbuf_free(&b);
	strbuf_add(&b, "two");
	s2 = strbuf_steal(&b, NULL);
	assert_string_equal(s1, "one");
	assert_string_equal(s2, "two");
	assert_ptr_not_equal(s1, s2);
	free(s1);
	free(s2);
	/* free keeps the cap. */
	strbuf_add(&b, "x");
	strbuf_free(&b);
	for (int i = 0; i < 100; i++)
		strbuf_add(&b, "y");
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);
}

/* An allocation that fails is told apart from the cap, and sticks. */
static void
test_nomem(void **state)
{
	struct strbuf b;

	(void)state;
	strbuf_init(&b, 0);
	strbuf_add(&b, "abc");
	/* Never copied: the allocation fails first. */
	strbuf_addn(&b, "abc", SIZE_MAX / 4);
	assert_int_equal(strbuf_failed(&b), STRBUF_NOMEM);
	strbuf_add(&b, "d");
	assert_int_equal(strbuf_failed(&b), STRBUF_NOMEM);
	assert_null(strbuf_steal(&b, NULL));
	assert_int_equal(strbuf_failed(&b), STRBUF_NOMEM);
	/* Past what size_t can count: over any cap. */
	strbuf_init(&b, 0);
	strbuf_add(&b, "abc");
	strbuf_addn(&b, "abc", SIZE_MAX - 2);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);
}

/* A caller's own failure (json_dumps, say) stops the buffer like an add
 * would, and the first reason wins. */
static void
test_mark_failed(void **state)
{
	struct strbuf b;

	(void)state;
	strbuf_init(&b, 0);
	strbuf_add(&b, "abc");
	strbuf_mark_failed(&b, STRBUF_NOMEM);
	strbuf_add(&b, "d");
	assert_int_equal(strbuf_failed(&b), STRBUF_NOMEM);
	assert_null(strbuf_steal(&b, NULL));
	strbuf_init(&b, 2);
	strbuf_add(&b, "ab");
	strbuf_mark_failed(&b, STRBUF_NOMEM);
	assert_int_equal(strbuf_failed(&b), STRBUF_FULL);
	strbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_grow_to_cap),
	    cmocka_unit_test(test_printf_long),
	    cmocka_unit_test(test_steal_free),
	    cmocka_unit_test(test_nomem),
	    cmocka_unit_test(test_mark_failed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
