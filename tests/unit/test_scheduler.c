/* test_scheduler.c -- round arithmetic, jitter, windows and task replacement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <event2/event.h>

#include "scheduler.h"

static void
test_round(void **state)
{
	(void)state;
	assert_int_equal(sched_round(0, 60), 0);
	assert_int_equal(sched_round(59, 60), 0);
	assert_int_equal(sched_round(60, 60), 1);
	assert_int_equal(sched_round(119, 60), 1);
	assert_int_equal(sched_round(1795932137, 20), 89796606);
	assert_int_equal(sched_round(1795932137, 3600), 498870);
	/* Before 1970 or without an interval there is no round to speak of. */
	assert_int_equal(sched_round(-5, 60), 0);
	assert_int_equal(sched_round(100, 0), 0);
	assert_int_equal(sched_round_start(0, 60), 0);
	assert_int_equal(sched_round_start(498870, 3600), 1795932000);
}

/* Every t lies in [start, start + interval) of its own round. */
static void
test_round_brackets(void **state)
{
	static const uint32_t ivs[] = {1, 7, 60, 300, 3600, 86400};

	(void)state;
	for (size_t i = 0; i < sizeof(ivs) / sizeof(ivs[0]); i++) {
		for (int64_t t = 1700000000; t < 1700000000 + 200000;
		     t += 997) {
			uint64_t r = sched_round(t, ivs[i]);
			int64_t start = sched_round_start(r, ivs[i]);
			assert_true(start <= t);
			assert_true(t < start + (int64_t)ivs[i]);
		}
	}
}

static void
test_jitter_stable_and_in_range(void **state)
{
	static const uint32_t ivs[] = {4, 5, 60, 300, 3600, 86400};
	const char *key = "Jp9p=!Zmpsvv!&>e8KONAApdKA63+./DhhnRsUu5";
	char other[64];
	uint32_t first, seen_other = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(ivs) / sizeof(ivs[0]); i++) {
		uint32_t j = sched_jitter(key, ivs[i]);
		assert_int_equal(j, sched_jitter(key, ivs[i]));
		assert_true(j < ivs[i] / 4);
		for (int k = 0; k < 500; k++) {
			snprintf(other, sizeof(other), "key-%d", k);
			assert_true(sched_jitter(other, ivs[i]) < ivs[i] / 4);
		}
	}
	/* Too short an interval to spread over: everyone starts at once. */
	assert_int_equal(sched_jitter(key, 1), 0);
	assert_int_equal(sched_jitter(key, 3), 0);
	/* Different vantages get different offsets. */
	first = sched_jitter("key-0", 3600);
	for (int k = 1; k < 100; k++) {
		snprintf(other, sizeof(other), "key-%d", k);
		if (sched_jitter(other, 3600) != first)
			seen_other++;
	}
	assert_true(seen_other > 90);
}

static void
test_window(void **state)
{
	const int64_t start = 1795932000; /* a round start for 3600 */

	(void)state;
	assert_false(sched_window_open(start, 3600, 100));
	assert_false(sched_window_open(start + 99, 3600, 100));
	assert_true(sched_window_open(start + 100, 3600, 100));
	assert_true(sched_window_open(start + 3599, 3600, 100));
	assert_false(sched_window_open(start + 3600, 3600, 100));
	assert_true(sched_window_open(start, 3600, 0));

	assert_int_equal(sched_next_open(start, 3600, 100), start + 100);
	assert_int_equal(sched_next_open(start + 99, 3600, 100), start + 100);
	/* Once open, the next opening is the next round's. */
	assert_int_equal(
	    sched_next_open(start + 100, 3600, 100), start + 3600 + 100);
	assert_int_equal(
	    sched_next_open(start + 3599, 3600, 100), start + 3600 + 100);
	assert_int_equal(sched_next_open(start, 3600, 0), start + 3600);
}

static void
test_due(void **state)
{
	const int64_t start = 1795932000;

	(void)state;
	assert_true(sched_due(-1, start, 3600));
	assert_false(sched_due(start + 10, start + 20, 3600));
	assert_false(sched_due(start, start + 3599, 3600));
	assert_true(sched_due(start - 1, start, 3600));
	assert_true(sched_due(start + 10, start + 3600, 3600));
	/* A shorter interval puts the same two times in different rounds. */
	assert_true(sched_due(start + 10, start + 400, 300));
}

/* The stateful scheduler, with a start function that only records. */
struct rec {
	char names[16][32];
	int n;
	uint32_t interval;
};

static int
s_record(const char *domain, uint32_t interval_s, void *arg)
{
	struct rec *r = arg;

	if (r->n < 16)
		snprintf(r->names[r->n++], sizeof(r->names[0]), "%s", domain);
	r->interval = interval_s;
	return 0;
}

static int
s_has(const struct rec *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->names[i], name) == 0)
			return 1;
	return 0;
}

/* A key whose window opens at the round start, so it is open now. */
static void
s_key_jitter0(char *key, size_t len, uint32_t interval)
{
	for (int k = 0;; k++) {
		snprintf(key, len, "k%d", k);
		if (sched_jitter(key, interval) == 0)
			return;
	}
}

static void
test_tasks_mid_round(void **state)
{
	struct event_base *base = event_base_new();
	char *first[] = {"b.example", "a.example", "a.example"};
	char *second[] = {"a.example", "b.example", "c.example"};
	struct rec r = {0};
	struct sched *s;
	char key[32];
	uint64_t before;

	(void)state;
	assert_non_null(base);
	s_key_jitter0(key, sizeof(key), 3600);
	assert_non_null(s = sched_new(base, key, 64, s_record, &r));
	before = sched_round(time(NULL), 3600);
	assert_int_equal(sched_set_tasks(s, 1, 3600, first, 3), 0);
	/* Duplicates merged: each domain once. */
	assert_int_equal(r.n, 2);
	assert_true(s_has(&r, "a.example"));
	assert_true(s_has(&r, "b.example"));
	assert_int_equal(r.interval, 3600);
	for (int i = 0; i < r.n; i++)
		sched_probe_done(s);
	/* Mid-round: only the new domain is probed, the others are done. */
	r.n = 0;
	assert_int_equal(sched_set_tasks(s, 2, 3600, second, 3), 0);
	if (sched_round(time(NULL), 3600) == before) {
		assert_int_equal(r.n, 1);
		assert_string_equal(r.names[0], "c.example");
	}
	/* The same set again starts nothing. */
	r.n = 0;
	assert_int_equal(sched_set_tasks(s, 2, 3600, second, 3), 0);
	if (sched_round(time(NULL), 3600) == before)
		assert_int_equal(r.n, 0);
	sched_free(&s);
	assert_null(s);
	event_base_free(base);
}

static void
test_concurrency(void **state)
{
	struct event_base *base = event_base_new();
	char *doms[] = {"a.example", "b.example", "c.example"};
	struct rec r = {0};
	struct sched *s;
	char key[32];

	(void)state;
	s_key_jitter0(key, sizeof(key), 3600);
	assert_non_null(s = sched_new(base, key, 1, s_record, &r));
	assert_int_equal(sched_set_tasks(s, 1, 3600, doms, 3), 0);
	assert_int_equal(r.n, 1);
	sched_probe_done(s);
	assert_int_equal(r.n, 2);
	sched_set_concurrency(s, 8);
	assert_int_equal(r.n, 3);
	/* In sorted order, so that every vantage walks the list alike. */
	assert_string_equal(r.names[0], "a.example");
	assert_string_equal(r.names[1], "b.example");
	assert_string_equal(r.names[2], "c.example");
	sched_free(&s);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round),
	    cmocka_unit_test(test_round_brackets),
	    cmocka_unit_test(test_jitter_stable_and_in_range),
	    cmocka_unit_test(test_window),
	    cmocka_unit_test(test_due),
	    cmocka_unit_test(test_tasks_mid_round),
	    cmocka_unit_test(test_concurrency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
