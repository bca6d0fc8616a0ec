/* test_spool.c -- the result spool against real files in a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#define BIG_CAP (64u * 1024 * 1024)

struct fx {
	char base[64];
	char dir[128];
};

/* Records spool_read hands over. */
struct got {
	uint64_t *seq;
	size_t n;
	size_t alloc;
	size_t bad;	   /* payloads that do not match their seq */
	size_t want_len;   /* when non-zero, the payload length expected */
	size_t stop_after; /* when non-zero, the callback stops here */
};

/* Payload byte i of the record with this seq: checkable after the fact. */
static uint8_t
pbyte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

static void
mk_payload(uint64_t seq, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pbyte(seq, i);
}

static int
collect(uint64_t seq, const void *payload, size_t len, void *arg)
{
	struct got *g = arg;
	const uint8_t *p = payload;
	size_t i;

	if (g->want_len != 0 && len != g->want_len)
		g->bad++;
	for (i = 0; i < len; i++) {
		if (p[i] != pbyte(seq, i)) {
			g->bad++;
			break;
		}
	}
	if (g->n == g->alloc) {
		g->alloc = g->alloc ? g->alloc * 2 : 64;
		g->seq = realloc(g->seq, g->alloc * sizeof(*g->seq));
		assert_non_null(g->seq);
	}
	g->seq[g->n++] = seq;
	return g->stop_after != 0 && g->n >= g->stop_after;
}

static void
got_reset(struct got *g)
{
	free(g->seq);
	memset(g, 0, sizeof(*g));
}

/* Asserts that g holds exactly seqs first..last, in order, all intact. */
static void
assert_got_range(const struct got *g, uint64_t first, uint64_t last)
{
	size_t i;

	assert_int_equal(g->bad, 0);
	assert_int_equal(g->n, last - first + 1);
	for (i = 0; i < g->n; i++)
		assert_int_equal(g->seq[i], first + i);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->base, sizeof(f->base), "/tmp/test_spool.XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->base);
	*state = f;
	return 0;
}

static void
rm_tree(const char *dir)
{
	struct dirent *de;
	char path[512];
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rm_tree(f->dir);
	rm_tree(f->base);
	free(f);
	return 0;
}

static struct spool *
xopen(const struct fx *f, uint64_t cap)
{
	char err[256] = "";
	struct spool *s = spool_open(f->dir, cap, err, sizeof(err));

	if (s == NULL)
		fail_msg("spool_open: %s", err);
	return s;
}

/* Appends a len-byte payload for the next seq and asserts that seq. */
static uint64_t
put(struct spool *s, size_t len)
{
	uint64_t last, seq = 0;
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	spool_stats(s, NULL, &last, NULL, NULL);
	mk_payload(last + 1, buf, len);
	assert_int_equal(spool_append(s, buf, len, &seq), 0);
	assert_int_equal(seq, last + 1);
	free(buf);
	return seq;
}

static void
seg_path(const struct fx *f, uint64_t first, char *path, size_t len)
{
	snprintf(
	    path, len, "%s/seg-%020llu.log", f->dir, (unsigned long long)first);
}

static long long
file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -1;
	return (long long)st.st_size;
}

static long long
seg_size(const struct fx *f, uint64_t first)
{
	char path[256];

	seg_path(f, first, path, sizeof(path));
	return file_size(path);
}

static int
count_segs(const struct fx *f)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	assert_non_null(d = opendir(f->dir));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "seg-", 4) == 0)
			n++;
	closedir(d);
	return n;
}

static void
flip_byte(const char *path, off_t off)
{
	uint8_t b;
	int fd;

	assert_int_not_equal(fd = open(path, O_RDWR), -1);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* The whole file at path; the caller frees.  *len gets its size. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	long long size = file_size(path);
	uint8_t *buf;
	int fd;

	assert_true(size > 0);
	assert_non_null(buf = malloc((size_t)size));
	assert_int_not_equal(fd = open(path, O_RDONLY), -1);
	assert_int_equal(read(fd, buf, (size_t)size), size);
	close(fd);
	*len = (size_t)size;
	return buf;
}

/* Puts a file back as it was: what a crash before an unlink leaves. */
static void
spit(const char *path, const uint8_t *buf, size_t len)
{
	int fd;

	assert_int_not_equal(
	    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), -1);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void
read_all(struct spool *s, uint64_t from, struct got *g)
{
	int n = spool_read(s, from, SIZE_MAX, collect, g);

	assert_int_equal(n, (int)g->n);
}

static void
assert_gap(struct spool *s, uint64_t first, uint64_t last, uint64_t count)
{
	uint64_t a = 0, b = 0, c = 0;

	assert_int_equal(spool_take_gap(s, &a, &b, &c), 1);
	assert_int_equal(a, first);
	assert_int_equal(b, last);
	assert_int_equal(c, count);
}

static void
assert_no_gap(struct spool *s)
{
	uint64_t a, b, c;

	assert_int_equal(spool_take_gap(s, &a, &b, &c), 0);
}

static void
test_crc32c_vector(void **state)
{
	const char *v = "123456789";

	(void)state;
	/* The published CRC-32C check value. */
	assert_int_equal(spool_crc32c(0, v, 9), 0xe3069283u);
	assert_int_equal(
	    spool_crc32c(spool_crc32c(0, v, 4), v + 4, 5), 0xe3069283u);
	assert_int_equal(spool_crc32c(0, "", 0), 0);
}

static void
test_record_decode(void **state)
{
	uint8_t buf[SPOOL_REC_HDR + 9], copy[sizeof(buf)];
	struct spool_record rec;
	size_t i;

	(void)state;
	mk_payload(42, buf + SPOOL_REC_HDR, 9);
	spool_record_header(buf, 42, buf + SPOOL_REC_HDR, 9);
	assert_int_equal(spool_record_decode(buf, sizeof(buf), &rec), 1);
	assert_int_equal(rec.seq, 42);
	assert_int_equal(rec.len, 9);
	assert_int_equal(rec.size, sizeof(buf));
	assert_ptr_equal(rec.payload, buf + SPOOL_REC_HDR);

	/* Short input asks for more, saying how much once it can. */
	assert_int_equal(spool_record_decode(buf, 10, &rec), 0);
	assert_int_equal(rec.size, SPOOL_REC_HDR);
	assert_int_equal(spool_record_decode(buf, sizeof(buf) - 1, &rec), 0);
	assert_int_equal(rec.size, sizeof(buf));

	/* Every single flipped byte is caught. */
	for (i = 0; i < sizeof(buf); i++) {
		memcpy(copy, buf, sizeof(buf));
		copy[i] ^= 0x01;
		assert_int_not_equal(
		    spool_record_decode(copy, sizeof(copy), &rec), 1);
	}

	/* Wrong magic is refused as soon as it is visible. */
	memcpy(copy, buf, sizeof(buf));
	copy[0] ^= 0xff;
	assert_int_equal(spool_record_decode(copy, 4, &rec), -1);

	/* Oversized length and seq 0 are refused even with a valid CRC. */
	spool_record_header(copy, 0, buf + SPOOL_REC_HDR, 9);
	memcpy(copy + SPOOL_REC_HDR, buf + SPOOL_REC_HDR, 9);
	assert_int_equal(spool_record_decode(copy, sizeof(copy), &rec), -1);
	memcpy(copy, buf, sizeof(buf));
	copy[4] = 0x01;
	copy[5] = 0x00;
	copy[6] = 0x40; /* 4 MiB + 1 */
	copy[7] = 0x00;
	assert_int_equal(spool_record_decode(copy, sizeof(copy), &rec), -1);
}

static void
test_append_sync_read(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	uint64_t first, last, bytes, dropped;
	struct stat st;
	int i;

	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	for (i = 1; i <= 5; i++)
		put(s, (size_t)i * 10);
	/* Nothing is sendable before the sync. */
	assert_int_equal(spool_durable_last(s), 0);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 0);

	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(spool_durable_last(s), 5);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 5);
	spool_stats(s, &first, &last, &bytes, &dropped);
	assert_int_equal(first, 1);
	assert_int_equal(last, 5);
	assert_int_equal(bytes, 5 * SPOOL_REC_HDR + 150);
	assert_int_equal(dropped, 0);
	assert_int_equal(seg_size(f, 1), 5 * SPOOL_REC_HDR + 150);
	assert_int_equal(count_segs(f), 1);

	spool_close(&s);
	assert_null(s);
	got_reset(&g);
}

static void
test_reopen_continues_seq(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {.want_len = 33};

	put(s, 33);
	put(s, 33);
	put(s, 33);
	spool_close(&s);

	s = xopen(f, BIG_CAP);
	assert_int_equal(spool_durable_last(s), 3);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 3);
	assert_int_equal(put(s, 33), 4);
	/* A restarted process starts its own segment. */
	assert_int_equal(count_segs(f), 2);
	assert_true(seg_size(f, 4) > 0);
	assert_no_gap(s);
	spool_close(&s);
	got_reset(&g);
}

static void
test_ack_deletes_and_persists(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	uint64_t first;
	int i;

	/* 50-byte records, two per 100-byte segment. */
	spool_set_segment_max(s, 100);
	for (i = 0; i < 10; i++)
		put(s, 30);
	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(count_segs(f), 5);

	assert_int_equal(spool_ack(s, 5), 0);
	assert_int_equal(seg_size(f, 1), -1);
	assert_int_equal(seg_size(f, 3), -1);
	assert_int_equal(seg_size(f, 5), 100);
	assert_int_equal(count_segs(f), 3);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 6);
	read_all(s, 1, &g);
	assert_got_range(&g, 6, 10);
	spool_close(&s);
	got_reset(&g);

	s = xopen(f, BIG_CAP);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 6);
	read_all(s, 1, &g);
	assert_got_range(&g, 6, 10);
	assert_int_equal(count_segs(f), 3);
	spool_close(&s);
	got_reset(&g);
}

static void
test_seq_never_reused(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	uint64_t first, last, bytes;
	int i;

	for (i = 0; i < 4; i++)
		put(s, 8);
	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(spool_ack(s, 4), 0);
	assert_int_equal(count_segs(f), 0);
	spool_stats(s, &first, &last, &bytes, NULL);
	assert_int_equal(first, 0);
	assert_int_equal(last, 4);
	assert_int_equal(bytes, 0);
	spool_close(&s);

	s = xopen(f, BIG_CAP);
	spool_stats(s, &first, &last, NULL, NULL);
	assert_int_equal(first, 0);
	assert_int_equal(last, 4);
	assert_int_equal(put(s, 8), 5);
	assert_int_equal(spool_sync(s), 0);
	read_all(s, 1, &g);
	assert_got_range(&g, 5, 5);
	assert_no_gap(s);
	spool_close(&s);
	got_reset(&g);
}

static void
test_torn_tail_truncated(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];

	put(s, 40);
	put(s, 40);
	put(s, 40);
	spool_close(&s);
	seg_path(f, 1, path, sizeof(path));
	assert_int_equal(file_size(path), 180);
	assert_int_equal(truncate(path, 150), 0);

	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 120);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 2);
	assert_no_gap(s);
	/* Record 3 was never whole on disk, so its seq is free again. */
	assert_int_equal(put(s, 40), 3);
	spool_close(&s);
	got_reset(&g);
}

static void
test_garbage_tail_truncated(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	uint8_t junk[37];
	char path[256];
	uint64_t dropped;
	int fd;

	put(s, 40);
	put(s, 40);
	put(s, 40);
	spool_close(&s);
	seg_path(f, 1, path, sizeof(path));
	memset(junk, 0xa5, sizeof(junk));
	assert_int_not_equal(fd = open(path, O_WRONLY | O_APPEND), -1);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	assert_int_equal(file_size(path), 180 + 37);

	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 180);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 3);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, NULL, &dropped);
	assert_int_equal(dropped, 0);
	assert_int_equal(put(s, 40), 4);
	spool_close(&s);
	got_reset(&g);
}

static void
test_corrupt_old_segment_gap(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];
	uint64_t dropped;
	uint8_t *damaged;
	size_t damaged_len;
	int i;

	spool_set_segment_max(s, 100);
	for (i = 0; i < 6; i++)
		put(s, 30);
	spool_close(&s);
	/* Segment 3..4: damage the payload of record 4, the second one. */
	seg_path(f, 3, path, sizeof(path));
	flip_byte(path, 50 + SPOOL_REC_HDR + 5);
	damaged = slurp(path, &damaged_len);

	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 50);
	assert_gap(s, 4, 4, 1);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, NULL, &dropped);
	assert_int_equal(dropped, 1);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.seq[2], 3);
	assert_int_equal(g.seq[3], 5);
	assert_int_equal(g.seq[4], 6);
	assert_int_equal(g.bad, 0);
	assert_int_equal(put(s, 30), 7);
	spool_close(&s);
	got_reset(&g);

	/*
	 * As if the first open had crashed after persisting the gap but
	 * before truncating: the damage is found again, not counted twice.
	 * The gap was handed out but not acked, so it comes back.
	 */
	spit(path, damaged, damaged_len);
	free(damaged);
	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 50);
	assert_gap(s, 4, 4, 1);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, NULL, &dropped);
	assert_int_equal(dropped, 1);
	/* Acked past after being handed out: gone for good. */
	assert_int_equal(spool_ack(s, 5), 0);
	spool_close(&s);
	s = xopen(f, BIG_CAP);
	assert_no_gap(s);
	spool_close(&s);
}

static void
test_corrupt_first_record_old_segment(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];
	int i;

	spool_set_segment_max(s, 100);
	for (i = 0; i < 6; i++)
		put(s, 30);
	spool_close(&s);
	seg_path(f, 3, path, sizeof(path));
	flip_byte(path, 9); /* inside the seq of record 3 */

	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), -1);
	assert_gap(s, 3, 4, 2);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 5);
	spool_close(&s);
	got_reset(&g);
}

static void
test_corrupt_newest_segment_middle(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];
	int i;

	for (i = 0; i < 6; i++)
		put(s, 30);
	spool_close(&s);
	seg_path(f, 1, path, sizeof(path));
	flip_byte(path, 2 * 50 + SPOOL_REC_HDR);

	/* Valid records follow the damage: not a torn write, so no reuse. */
	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 100);
	assert_gap(s, 3, 6, 4);
	assert_int_equal(put(s, 30), 7);
	assert_int_equal(spool_sync(s), 0);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 7);
	assert_int_equal(g.bad, 0);
	spool_close(&s);
	got_reset(&g);
}

static void
test_unsynced_loss_reported(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	char path[256];
	int i;

	for (i = 0; i < 10; i++)
		put(s, 30);
	assert_int_equal(spool_sync(s), 0);
	/* The state file now says seqs up to 10 were handed out. */
	assert_int_equal(spool_ack(s, 5), 0);
	spool_close(&s);
	/* As if 6..10 had never reached the disk before a power cut. */
	seg_path(f, 1, path, sizeof(path));
	assert_int_equal(truncate(path, 5 * 50), 0);

	s = xopen(f, BIG_CAP);
	assert_int_equal(count_segs(f), 0);
	assert_int_equal(put(s, 30), 11);
	assert_int_equal(spool_sync(s), 0);
	/* An ack past a gap nobody took does not make it vanish. */
	assert_int_equal(spool_ack(s, 11), 0);
	spool_close(&s);
	s = xopen(f, BIG_CAP);
	assert_gap(s, 6, 10, 5);
	assert_no_gap(s);
	assert_int_equal(spool_ack(s, 11), 0);
	spool_close(&s);
	s = xopen(f, BIG_CAP);
	assert_no_gap(s);
	spool_close(&s);
}

static void
test_cap_drops_oldest(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 200);
	struct got g = {0};
	uint64_t first, last, bytes, dropped;
	int i;

	/* 50-byte records, two per segment, four within the cap. */
	spool_set_segment_max(s, 100);
	for (i = 0; i < 4; i++)
		put(s, 30);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, &bytes, &dropped);
	assert_int_equal(bytes, 200);
	assert_int_equal(dropped, 0);

	put(s, 30);
	assert_int_equal(seg_size(f, 1), -1);
	assert_gap(s, 1, 2, 2);
	assert_no_gap(s);
	put(s, 30);
	put(s, 30);
	/* The first gap was handed out already, so this one stands alone. */
	assert_gap(s, 3, 4, 2);
	assert_no_gap(s);
	spool_stats(s, &first, &last, &bytes, &dropped);
	assert_int_equal(first, 5);
	assert_int_equal(last, 7);
	assert_int_equal(bytes, 150);
	assert_int_equal(dropped, 4);
	assert_int_equal(spool_sync(s), 0);
	read_all(s, 1, &g);
	assert_got_range(&g, 5, 7);
	got_reset(&g);

	/* Acked seqs are not reported when their segment is dropped. */
	assert_int_equal(spool_ack(s, 5), 0);
	put(s, 30);
	put(s, 30);
	assert_int_equal(seg_size(f, 5), -1);
	spool_stats(s, NULL, NULL, &bytes, &dropped);
	assert_int_equal(bytes, 150);
	assert_int_equal(dropped, 5);
	spool_close(&s);

	/* The untaken gap survives a restart; the acked ones do not. */
	s = xopen(f, 200);
	assert_gap(s, 6, 6, 1);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, NULL, &dropped);
	assert_int_equal(dropped, 5);
	spool_rewind_gaps(s);
	assert_gap(s, 6, 6, 1);
	spool_close(&s);
}

static void
test_cap_merges_adjacent_gaps(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 200);
	struct got g = {0};
	uint64_t bytes, dropped;
	uint8_t *old;
	size_t old_len;
	char path[256];
	int i;

	spool_set_segment_max(s, 100);
	put(s, 30);
	put(s, 30);
	seg_path(f, 1, path, sizeof(path));
	old = slurp(path, &old_len);
	for (i = 0; i < 7; i++)
		put(s, 30);
	/* Segments 1-2, 3-4 and 5-6 went, nobody took a gap in between. */
	assert_gap(s, 1, 6, 6);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, &bytes, &dropped);
	assert_int_equal(bytes, 150);
	assert_int_equal(dropped, 6);
	assert_int_equal(count_segs(f), 2);
	spool_close(&s);

	/*
	 * A crash between persisting the gap and the unlink.  A larger cap
	 * now, so that only the gap can explain the segment going.
	 */
	spit(path, old, old_len);
	free(old);
	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), -1);
	assert_gap(s, 1, 6, 6);
	assert_no_gap(s);
	spool_stats(s, NULL, NULL, &bytes, &dropped);
	assert_int_equal(bytes, 150);
	assert_int_equal(dropped, 6);
	read_all(s, 1, &g);
	assert_got_range(&g, 7, 9);
	spool_close(&s);
	got_reset(&g);
}

static void
test_cap_smaller_than_segment(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 120);
	struct got g = {0};
	uint64_t bytes;
	int i;

	/* Segments roll at the cap, so the active one never exceeds it. */
	for (i = 0; i < 5; i++) {
		put(s, 30);
		spool_stats(s, NULL, NULL, &bytes, NULL);
		assert_true(bytes <= 120);
	}
	assert_int_equal(spool_sync(s), 0);
	read_all(s, 1, &g);
	assert_got_range(&g, 5, 5);
	assert_gap(s, 1, 4, 4);
	spool_close(&s);
	got_reset(&g);
}

static void
test_gap_list_full(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 2 * SPOOL_REC_HDR);
	uint64_t a, b, c, dropped, sum, n = SPOOL_GAPS_MAX + 20;
	uint8_t covered[SPOOL_GAPS_MAX + 21] = {0};
	uint64_t i, j, first = 0;

	/* Empty payloads, one record per segment, each append drops one. */
	log_set_level(LOG_LEVEL_ERROR); /* a thousand gap lines otherwise */
	spool_set_segment_max(s, SPOOL_REC_HDR);
	for (i = 0; i < n + 2; i++) {
		put(s, 0);
		/* Taking each gap keeps the next from merging into it. */
		while (spool_take_gap(s, &a, &b, &c) == 1) {
			assert_true(a >= 1 && b <= n && c <= b - a + 1);
			for (j = a; j <= b; j++)
				covered[j] = 1;
		}
	}
	/* Past the limit gaps are re-sent widened: all covered, none lost. */
	for (j = 1; j <= n; j++)
		assert_int_equal(covered[j], 1);
	spool_stats(s, NULL, NULL, NULL, &dropped);
	assert_int_equal(dropped, n);
	spool_close(&s);

	/* The widened list still loads; each lost seq is counted once. */
	s = xopen(f, 2 * SPOOL_REC_HDR);
	for (sum = 0, i = 0; spool_take_gap(s, &a, &b, &c) == 1; i++) {
		if (i == 0)
			first = a;
		sum += c;
	}
	assert_int_equal(i, SPOOL_GAPS_MAX);
	assert_int_equal(sum, n);
	assert_int_equal(first, 1);
	assert_int_equal(b, n);
	spool_close(&s);
	log_set_level(LOG_LEVEL_WARN);
}

static void
test_ack_bounds(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	uint64_t first;

	put(s, 10);
	put(s, 10);
	put(s, 10);
	assert_int_equal(spool_sync(s), 0);
	errno = 0;
	assert_int_equal(spool_ack(s, 4), -1);
	assert_int_equal(errno, EINVAL);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 1);

	assert_int_equal(spool_ack(s, 2), 0);
	assert_int_equal(spool_ack(s, 1), 0);
	assert_int_equal(spool_ack(s, 0), 0);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 3);
	spool_close(&s);

	s = xopen(f, BIG_CAP);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 3);
	assert_int_equal(spool_ack(s, 4), -1);
	assert_int_equal(spool_ack(s, 3), 0);
	spool_stats(s, &first, NULL, NULL, NULL);
	assert_int_equal(first, 0);
	spool_close(&s);
}

static void
test_payload_limits(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 16u * 1024 * 1024);
	struct got g = {.want_len = SPOOL_PAYLOAD_MAX};
	uint8_t *big = malloc(SPOOL_PAYLOAD_MAX + 1);
	uint64_t seq = 0, last;

	assert_non_null(big);
	mk_payload(1, big, SPOOL_PAYLOAD_MAX + 1);
	errno = 0;
	assert_int_equal(spool_append(s, big, SPOOL_PAYLOAD_MAX + 1, &seq), -1);
	assert_int_equal(errno, EMSGSIZE);
	spool_stats(s, NULL, &last, NULL, NULL);
	assert_int_equal(last, 0);

	assert_int_equal(spool_append(s, big, SPOOL_PAYLOAD_MAX, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(spool_sync(s), 0);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 1);
	spool_close(&s);
	got_reset(&g);

	/* A record bigger than the whole cap can never be kept. */
	s = xopen(f, 100);
	errno = 0;
	assert_int_equal(spool_append(s, big, 81, &seq), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(spool_append(s, big, 80, &seq), 0);
	assert_int_equal(seq, 2);
	spool_close(&s);
	free(big);
}

static void
test_read_from_middle(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	int i;

	spool_set_segment_max(s, 200);
	for (i = 0; i < 20; i++)
		put(s, 17 + (size_t)i);
	assert_int_equal(spool_sync(s), 0);

	assert_int_equal(spool_read(s, 7, 5, collect, &g), 5);
	assert_got_range(&g, 7, 11);
	got_reset(&g);
	assert_int_equal(spool_read(s, 12, 100, collect, &g), 9);
	assert_got_range(&g, 12, 20);
	got_reset(&g);
	/* Going back after going forward (a reconnect). */
	assert_int_equal(spool_read(s, 2, 3, collect, &g), 3);
	assert_got_range(&g, 2, 4);
	got_reset(&g);
	g.stop_after = 3;
	assert_int_equal(spool_read(s, 1, 100, collect, &g), 3);
	assert_got_range(&g, 1, 3);
	got_reset(&g);
	assert_int_equal(spool_read(s, 21, 100, collect, &g), 0);
	assert_int_equal(spool_read(s, 1, 0, collect, &g), 0);

	assert_int_equal(spool_ack(s, 5), 0);
	assert_int_equal(spool_read(s, 3, 2, collect, &g), 2);
	assert_got_range(&g, 6, 7);
	got_reset(&g);

	/* Appends in between do not disturb a reader; unsynced stay hidden. */
	assert_int_equal(spool_read(s, 18, 2, collect, &g), 2);
	assert_int_equal(put(s, 5), 21);
	assert_int_equal(spool_read(s, 20, 5, collect, &g), 1);
	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(spool_read(s, 21, 5, collect, &g), 1);
	assert_got_range(&g, 18, 21);
	spool_close(&s);
	got_reset(&g);
}

static void
test_read_finds_damage(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];
	int i;

	for (i = 0; i < 4; i++)
		put(s, 30);
	assert_int_equal(spool_sync(s), 0);
	seg_path(f, 1, path, sizeof(path));
	flip_byte(path, 2 * 50 + SPOOL_REC_HDR + 3);

	read_all(s, 1, &g);
	assert_got_range(&g, 1, 2);
	assert_gap(s, 3, 4, 1 + 1);
	assert_int_equal(file_size(path), 100);
	/* Writing goes on in a new segment, after the lost seqs. */
	assert_int_equal(put(s, 30), 5);
	assert_int_equal(spool_sync(s), 0);
	assert_true(seg_size(f, 5) > 0);
	got_reset(&g);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.seq[2], 5);
	spool_close(&s);
	got_reset(&g);

	s = xopen(f, BIG_CAP);
	assert_gap(s, 3, 4, 2);
	read_all(s, 1, &g);
	assert_int_equal(g.n, 3);
	spool_close(&s);
	got_reset(&g);
}

/* Overwrites the record at off with a valid one bearing another seq. */
static void
plant_record(const char *path, off_t off, uint64_t seq, size_t len)
{
	uint8_t rec[SPOOL_REC_HDR + 64];
	int fd;

	assert_true(len <= 64);
	mk_payload(seq, rec + SPOOL_REC_HDR, len);
	spool_record_header(rec, seq, rec + SPOOL_REC_HDR, len);
	assert_int_not_equal(fd = open(path, O_WRONLY), -1);
	assert_int_equal(pwrite(fd, rec, SPOOL_REC_HDR + len, off),
	    (ssize_t)(SPOOL_REC_HDR + len));
	close(fd);
}

static void
test_misplaced_record_is_damage(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	char path[256];
	int i;

	for (i = 0; i < 4; i++)
		put(s, 30);
	assert_int_equal(spool_sync(s), 0);
	seg_path(f, 1, path, sizeof(path));
	/* Intact, but seq 9 has no business where seq 3 belongs. */
	plant_record(path, 100, 9, 30);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 2);
	assert_gap(s, 3, 4, 2);
	spool_close(&s);
	got_reset(&g);

	/* The same found by recovery. */
	rm_tree(f->dir);
	s = xopen(f, BIG_CAP);
	for (i = 0; i < 4; i++)
		put(s, 30);
	spool_close(&s);
	plant_record(path, 100, 9, 30);
	s = xopen(f, BIG_CAP);
	assert_int_equal(file_size(path), 100);
	assert_gap(s, 3, 4, 2);
	read_all(s, 1, &g);
	assert_got_range(&g, 1, 2);
	spool_close(&s);
	got_reset(&g);
}

static void
test_many_records(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	struct got g = {0};
	uint64_t from = 1;
	int i, n;

	spool_set_segment_max(s, 64 * 1024);
	for (i = 0; i < 10000; i++) {
		put(s, (size_t)(i % 200));
		if (i % 100 == 99)
			assert_int_equal(spool_sync(s), 0);
	}
	assert_int_equal(spool_durable_last(s), 10000);
	assert_true(count_segs(f) > 10);
	/* Sent in batches, as the sender would. */
	while ((n = spool_read(s, from, 999, collect, &g)) > 0)
		from = g.seq[g.n - 1] + 1;
	assert_int_equal(n, 0);
	assert_got_range(&g, 1, 10000);
	got_reset(&g);

	assert_int_equal(spool_ack(s, 5000), 0);
	spool_close(&s);
	s = xopen(f, BIG_CAP);
	read_all(s, 1, &g);
	assert_got_range(&g, 5001, 10000);
	assert_no_gap(s);
	spool_close(&s);
	got_reset(&g);
}

/* Child side of test_sigkill: append and sync forever, report durable. */
static void
sigkill_child(const struct fx *f, int out)
{
	char err[256];
	struct spool *s = spool_open(f->dir, BIG_CAP, err, sizeof(err));
	uint8_t buf[64];
	uint64_t seq, durable;
	int i;

	if (s == NULL)
		_exit(2);
	spool_set_segment_max(s, 4096);
	for (;;) {
		for (i = 0; i < 37; i++) {
			spool_stats(s, NULL, &seq, NULL, NULL);
			mk_payload(seq + 1, buf, sizeof(buf));
			if (spool_append(s, buf, sizeof(buf), &seq) == -1)
				_exit(3);
		}
		if (spool_sync(s) == -1)
			_exit(4);
		durable = spool_durable_last(s);
		if (write(out, &durable, sizeof(durable)) != sizeof(durable))
			_exit(5);
	}
}

static void
test_sigkill(void **state)
{
	struct fx *f = *state;
	struct got g = {0};
	struct spool *s;
	uint64_t durable = 0, last;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	assert_int_not_equal(pid = fork(), -1);
	if (pid == 0) {
		close(fds[0]);
		sigkill_child(f, fds[1]);
	}
	close(fds[1]);
	while (durable < 3000 &&
	       read(fds[0], &durable, sizeof(durable)) == sizeof(durable))
		;
	/* Killed mid-append, by its pid. */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fds[0]);
	assert_true(WIFSIGNALED(status));
	assert_true(durable >= 3000);

	s = xopen(f, BIG_CAP);
	spool_stats(s, NULL, &last, NULL, NULL);
	assert_true(last >= durable);
	read_all(s, 1, &g);
	/* Everything it synced, and whatever else was whole, in order. */
	assert_got_range(&g, 1, last);
	assert_no_gap(s);
	assert_int_equal(put(s, 64), last + 1);
	spool_close(&s);
	got_reset(&g);
}

static void
test_second_open_refused(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	char err[256] = "";

	assert_null(spool_open(f->dir, BIG_CAP, err, sizeof(err)));
	assert_non_null(strstr(err, "in use"));
	spool_close(&s);
	spool_close(&s);
	s = xopen(f, BIG_CAP);
	spool_close(&s);
}

static void
test_corrupt_state_refused(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, BIG_CAP);
	char err[256] = "", path[256];

	put(s, 10);
	put(s, 10);
	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(spool_ack(s, 2), 0);
	spool_close(&s);
	snprintf(path, sizeof(path), "%s/state", f->dir);
	flip_byte(path, 9);
	assert_null(spool_open(f->dir, BIG_CAP, err, sizeof(err)));
	assert_non_null(strstr(err, "corrupt state"));
	flip_byte(path, 9);
	s = xopen(f, BIG_CAP);
	assert_int_equal(put(s, 10), 3);
	spool_close(&s);
}

/* A wiped spool behind the collector's watermark continues after it. */
static void
test_adopt_committed(void **state)
{
	struct fx *f = *state;
	struct spool *s = xopen(f, 1 << 20);
	uint64_t first, last, gfirst, glast, gcount;

	put(s, 10);
	put(s, 10);
	assert_int_equal(spool_sync(s), 0);
	/* Not beyond the spool: nothing changes. */
	assert_int_equal(spool_adopt(s, 2), 0);
	spool_stats(s, NULL, &last, NULL, NULL);
	assert_int_equal(last, 2);
	assert_int_equal(spool_adopt(s, 40), 0);
	spool_stats(s, &first, &last, NULL, NULL);
	assert_int_equal(last, 40);
	assert_int_equal(spool_durable_last(s), 40);
	assert_int_equal(put(s, 10), 41);
	assert_int_equal(spool_sync(s), 0);
	spool_close(&s);
	/* Nothing below the watermark comes back as a gap or a record. */
	s = xopen(f, 1 << 20);
	assert_int_equal(spool_take_gap(s, &gfirst, &glast, &gcount), 0);
	assert_int_equal(put(s, 10), 42);
	spool_close(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_vector),
	    cmocka_unit_test(test_record_decode),
	    cmocka_unit_test_setup_teardown(
		test_append_sync_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_reopen_continues_seq, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ack_deletes_and_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_seq_never_reused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_adopt_committed, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_torn_tail_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_garbage_tail_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_old_segment_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_first_record_old_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_newest_segment_middle, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unsynced_loss_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cap_drops_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cap_merges_adjacent_gaps, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cap_smaller_than_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_gap_list_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ack_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_payload_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_read_from_middle, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_read_finds_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_misplaced_record_is_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_second_open_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_state_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
