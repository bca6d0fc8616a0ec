/* test_digest_set.c -- the bounded digest set: bound, order out, probes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "digest_set.h"

/* A digest that spreads over the slots as SHA-256 output would. */
static void
dg(unsigned char *d, uint32_t n)
{
	uint64_t h = (uint64_t)n * UINT64_C(0x9e3779b97f4a7c15) + 1;

	for (int i = 0; i < DIGEST_SET_LEN; i++) {
		h ^= h >> 29;
		h *= UINT64_C(0xbf58476d1ce4e5b9);
		d[i] = (unsigned char)(h >> 56);
	}
	/* Unique whatever the mixing does. */
	memcpy(d + DIGEST_SET_LEN - sizeof(n), &n, sizeof(n));
}

static void
test_bad_sizes(void **state)
{
	(void)state;
	assert_null(digest_set_new(0));
	assert_null(digest_set_new((size_t)DIGEST_SET_MAX + 1));
	digest_set_free(NULL);
}

static void
test_add_has(void **state)
{
	struct digest_set *set = digest_set_new(8);
	unsigned char a[DIGEST_SET_LEN], b[DIGEST_SET_LEN];

	(void)state;
	assert_non_null(set);
	dg(a, 1);
	dg(b, 2);
	assert_false(digest_set_has(set, a));
	digest_set_add(set, a);
	digest_set_add(set, a);
	assert_true(digest_set_has(set, a));
	assert_false(digest_set_has(set, b));
	assert_int_equal(digest_set_count(set), 1);
	digest_set_clear(set);
	assert_false(digest_set_has(set, a));
	assert_int_equal(digest_set_count(set), 0);
	digest_set_add(set, b);
	assert_true(digest_set_has(set, b));
	digest_set_free(&set);
	assert_null(set);
}

/* Never more than max; the oldest goes first; the newest stay. */
static void
test_bound_oldest_out(void **state)
{
	enum { MAX = 100, ADDED = 1000 };
	struct digest_set *set = digest_set_new(MAX);
	unsigned char d[DIGEST_SET_LEN];

	(void)state;
	assert_non_null(set);
	for (uint32_t i = 0; i < ADDED; i++) {
		dg(d, i);
		digest_set_add(set, d);
		assert_true(digest_set_count(set) <= MAX);
		assert_true(digest_set_has(set, d));
	}
	assert_int_equal(digest_set_count(set), MAX);
	for (uint32_t i = 0; i < ADDED; i++) {
		dg(d, i);
		assert_int_equal(digest_set_has(set, d), i >= ADDED - MAX);
	}
	/* Re-adding a remembered digest does not push another out. */
	dg(d, ADDED - MAX);
	digest_set_add(set, d);
	dg(d, ADDED - MAX);
	assert_true(digest_set_has(set, d));
	assert_int_equal(digest_set_count(set), MAX);
	digest_set_free(&set);
}

/*
 * Digests made to share a home slot: the first PROBE_MAX-odd are kept,
 * the rest are left out (not remembered, never a wrong answer), and
 * lookups of absent digests in that cluster still say no.
 */
static void
test_colliding(void **state)
{
	enum { MAX = 64, N = 200 };
	struct digest_set *set = digest_set_new(MAX);
	unsigned char d[DIGEST_SET_LEN];
	size_t kept = 0;

	(void)state;
	assert_non_null(set);
	for (uint32_t i = 0; i < N; i++) {
		memset(d, 0, sizeof(d)); /* same first bytes: same home */
		memcpy(d + 8, &i, sizeof(i));
		digest_set_add(set, d);
		kept += digest_set_has(set, d);
	}
	assert_true(kept > 0 && kept < N);
	assert_true(digest_set_count(set) <= MAX);
	for (uint32_t i = N; i < 2 * N; i++) {
		memset(d, 0, sizeof(d));
		memcpy(d + 8, &i, sizeof(i));
		assert_false(digest_set_has(set, d));
	}
	/* Ordinary digests still fit, pushing the oldest out. */
	for (uint32_t i = 0; i < 2 * MAX; i++) {
		dg(d, 100000 + i);
		digest_set_add(set, d);
		assert_true(digest_set_has(set, d));
		assert_true(digest_set_count(set) <= MAX);
	}
	digest_set_free(&set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_add_has),
	    cmocka_unit_test(test_bound_oldest_out),
	    cmocka_unit_test(test_colliding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
