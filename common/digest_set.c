/* digest_set.c -- a bounded set of SHA-256 digests, oldest out first. */
#include "digest_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Linear probing over at least twice as many slots as digests, each slot
 * naming a digest of the ring (index + 1, 0 for empty).  The ring holds
 * the digests in the order they came, so the oldest is the next one
 * overwritten.  A digest is only ever placed within PROBE_MAX slots of its
 * home, so a lookup looks at no more than that: the bound that keeps
 * digests an agent picked to collide from costing more than a few compares.
 */
#define PROBE_MAX 32

struct digest_set {
	size_t max;   /* digests in the ring */
	size_t used;  /* ring entries written so far, up to max */
	size_t next;  /* the ring entry overwritten next once full */
	size_t count; /* digests reachable through slot */
	size_t mask;  /* slots - 1 */
	unsigned char (*ring)[DIGEST_SET_LEN];
	uint32_t *slot;
};

/* SHA-256 output is uniform: its first bytes are a good hash already. */
static size_t
s_home(const struct digest_set *set, const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)h & set->mask;
}

/* The slot naming d, or -1. */
static long
s_find(const struct digest_set *set, const unsigned char *d)
{
	size_t pos = s_home(set, d);

	for (int i = 0; i < PROBE_MAX; i++, pos = (pos + 1) & set->mask) {
		uint32_t v = set->slot[pos];

		if (v == 0)
			return -1;
		if (memcmp(set->ring[v - 1], d, DIGEST_SET_LEN) == 0)
			return (long)pos;
	}
	return -1;
}

/* Empties slot pos, moving later entries of its cluster back. */
static void
s_remove_at(struct digest_set *set, size_t pos)
{
	size_t j = pos;

	set->slot[pos] = 0;
	set->count--;
	for (;;) {
		size_t home;

		j = (j + 1) & set->mask;
		if (set->slot[j] == 0)
			return;
		home = s_home(set, set->ring[set->slot[j] - 1]);
		/* Movable when pos lies between its home and j. */
		if (((j - home) & set->mask) >= ((j - pos) & set->mask)) {
			set->slot[pos] = set->slot[j];
			set->slot[j] = 0;
			pos = j;
		}
	}
}

struct digest_set *
digest_set_new(size_t max)
{
	struct digest_set *set;
	size_t slots = 16;

	if (max == 0 || max > DIGEST_SET_MAX)
		return NULL;
	while (slots < 2 * max)
		slots *= 2;
	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->max = max;
	set->mask = slots - 1;
	set->ring = calloc(max, sizeof(*set->ring));
	set->slot = calloc(slots, sizeof(*set->slot));
	if (set->ring == NULL || set->slot == NULL) {
		digest_set_free(&set);
		return NULL;
	}
	return set;
}

void
digest_set_free(struct digest_set **set)
{
	if (set == NULL || *set == NULL)
		return;
	free((*set)->ring);
	free((*set)->slot);
	free(*set);
	*set = NULL;
}

int
digest_set_has(const struct digest_set *set, const unsigned char *d)
{
	return s_find(set, d) != -1;
}

void
digest_set_add(struct digest_set *set, const unsigned char *d)
{
	size_t idx, pos;
	long old;

	if (s_find(set, d) != -1)
		return;
	if (set->used < set->max) {
		idx = set->used++;
	} else {
		idx = set->next;
		set->next = (set->next + 1) % set->max;
		/* The entry may have found no slot when it came. */
		old = s_find(set, set->ring[idx]);
		if (old != -1 && set->slot[old] == idx + 1)
			s_remove_at(set, (size_t)old);
	}
	memcpy(set->ring[idx], d, DIGEST_SET_LEN);
	pos = s_home(set, d);
	for (int i = 0; i < PROBE_MAX; i++, pos = (pos + 1) & set->mask) {
		if (set->slot[pos] == 0) {
			set->slot[pos] = (uint32_t)(idx + 1);
			set->count++;
			return;
		}
	}
	/* A cluster this long is no accident: leave d out. */
	memset(set->ring[idx], 0, DIGEST_SET_LEN);
}

void
digest_set_clear(struct digest_set *set)
{
	memset(set->slot, 0, (set->mask + 1) * sizeof(*set->slot));
	set->used = set->next = set->count = 0;
}

size_t
digest_set_count(const struct digest_set *set)
{
	return set->count;
}
