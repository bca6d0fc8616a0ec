/* spool.c -- crash-safe store-and-forward queue of probe results. */
#include "spool.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * Design notes (the why; spool.h has the contract).
 *
 * Records.  [u32 magic][u32 len][u64 seq][u32 crc][payload], little-endian.
 * The CRC-32C covers len and seq as well as the payload: a flipped length
 * bit is then caught by the checksum itself instead of only by whatever the
 * misplaced next header happens to contain.  Seqs inside one segment are
 * consecutive (the name holds the first), which recovery checks, so a record
 * copied or replayed into the wrong place is also caught.  A process never
 * appends to a segment it did not create: after a restart the next seq may
 * jump (see below), and a fresh segment keeps the consecutive rule.
 *
 * Durability.  spool_append is one writev(2); spool_sync is one fdatasync of
 * the segment being written (plus the directory when a segment was created
 * since).  A segment is fdatasync'ed when it is closed at rollover, so only
 * the active segment can ever hold unsynced records.  spool_read returns
 * durable records only, so nothing the collector has seen can vanish in a
 * crash and have its seq handed out again.
 *
 * State file.  The high-water mark (last seq handed out), the acked seq,
 * the gap list and the dropped counter, written atomically (tmp, fsync,
 * rename, fsync dir) before any unlink that depends on it.  It is written on
 * ack, on drop and when recovery changes something, never per append, so
 * the mark can lag: seqs appended after the last state write and lost
 * before a sync may be reused, which is harmless because they were never
 * durable and hence never sent.  Seqs at or below the mark that are missing
 * after a crash were appended but lost; they are reported as a gap rather
 * than reused or silently skipped.  An unreadable state file makes open
 * fail: guessing could reuse seqs the collector already holds.
 *
 * Recovery.  The newest segment is the only one a crash can tear; its bad
 * tail is truncated.  When valid records follow the damage it was not a
 * torn write but corruption, and their seqs become a gap so they are not
 * reused.  Damage in an older segment cuts it there: the rest of its seqs
 * (up to the next segment's first) become a gap and the file is truncated
 * after the gap is persisted.  If a crash falls between the two, the next
 * open finds the same damage and the same gap, which is not added twice.
 *
 * Cap.  The cap counts segment bytes (not the small state file).  A record
 * larger than the cap is refused (EFBIG).  Segments roll over at the
 * smaller of the segment size and the cap, so the segment being written
 * never exceeds the cap by itself and dropping older segments always brings
 * the total back under it; the question of deleting the segment being
 * written never arises.  A dropped segment's unacked seqs become a gap,
 * persisted before the unlink.  If that state write fails the segment is
 * still dropped (the cap protects the disk; the gap stays in memory and the
 * write is retried by spool_sync), except when it is the only segment left,
 * whose seqs are then the only record of the high-water mark.
 *
 * Gaps.  A gap is handed out by spool_take_gap once per process (again
 * after spool_rewind_gaps) and forgotten only when it has been handed out
 * and an ack has reached its last seq, so a gap report lost with a
 * connection or a crash is sent again: at least once, possibly twice.
 * Adjacent drops merge into one gap; past SPOOL_GAPS_MAX gaps the new one is
 * merged into its neighbour (the count stays exact, the range widens).
 */

#define REC_MAGIC     0x5253544du /* "MTSR" on disk */
#define STATE_MAGIC   0x5353544du /* "MTSS" on disk */
#define STATE_VERSION 1u
#define STATE_FIXED   (4 + 4 + 8 + 8 + 8 + 4)
#define STATE_GAP     24
#define STATE_MAX     (STATE_FIXED + SPOOL_GAPS_MAX * STATE_GAP + 4)
#define STATE_NAME    "state"
#define STATE_TMP     "state.tmp"
#define READ_CHUNK    (64 * 1024)
#define SEG_NAME_LEN  28 /* "seg-" + 20 digits + ".log" */

struct seg {
	uint64_t first; /* seq of the first record; also in the name */
	uint64_t last;	/* seq of the last record; first - 1 while empty */
	uint64_t size;	/* bytes of valid records */
	uint64_t fsize; /* bytes found on disk at open */
};

struct gap {
	uint64_t first;
	uint64_t last;
	uint64_t count;
	int taken; /* handed out since open or rewind; not persisted */
};

/* A window over one file, refilled READ_CHUNK bytes at a time. */
struct reader {
	int fd; /* borrowed */
	uint64_t off;
	uint8_t *buf;
	size_t len;
	size_t cap;
};

struct spool {
	char *dir;
	int dirfd; /* holds the flock */
	uint64_t cap;
	uint64_t seg_max;
	struct seg *segs; /* oldest first */
	size_t nsegs;
	size_t segs_alloc;
	int active_fd;	  /* writes go to segs[nsegs - 1] when not -1 */
	int active_dirty; /* appended since its last fdatasync */
	int dir_dirty;	  /* segment created since the last dir fsync */
	int state_dirty;  /* a state write failed; spool_sync retries it */
	int sync_failed;  /* an fdatasync failed; no sync is trusted again */
	uint64_t next_seq;
	uint64_t durable;
	uint64_t acked;
	uint64_t dropped_total;
	uint64_t bytes;
	struct gap gaps[SPOOL_GAPS_MAX]; /* sorted by first */
	size_t ngaps;
	/* spool_read keeps one segment open and remembers where it stopped. */
	int rd_fd;
	uint64_t rd_id; /* first seq of the segment rd_fd reads */
	struct reader rd;
	uint64_t hint_id;
	uint64_t hint_seq;
	uint64_t hint_off;
};

/* CRC-32C (Castagnoli, reflected 0x82f63b78), one entry per byte value. */
/* clang-format off */
static const uint32_t crc32c_table[256] = {
	0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u,
	0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu,
	0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
	0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u,
	0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
	0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
	0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
	0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu,
	0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
	0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
	0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u,
	0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
	0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u,
	0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
	0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
	0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u,
	0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u,
	0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
	0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u,
	0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
	0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
	0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u,
	0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu, 0xc8ac71e8u,
	0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
	0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
	0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u,
	0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
	0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
	0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u,
	0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
	0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u,
	0x3cdb9bddu, 0xceb018deu, 0xdde0eb2au, 0x2f8b6829u,
	0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
	0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u,
	0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
	0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
	0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u,
	0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu,
	0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
	0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
	0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u,
	0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
	0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du,
	0xef087a76u, 0x1d63f975u, 0x0e330a81u, 0xfc588982u,
	0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
	0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u,
	0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u,
	0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
	0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
	0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
	0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
	0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u,
	0xd3d3e1abu, 0x21b862a8u, 0x32e8915cu, 0xc083125fu,
	0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
	0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
	0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
	0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
	0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u,
	0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u,
	0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
	0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u,
	0x34f4f86au, 0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu,
	0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
	0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};
/* clang-format on */

static void
s_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
s_put64(uint8_t *p, uint64_t v)
{
	s_put32(p, (uint32_t)v);
	s_put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
s_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
s_get64(const uint8_t *p)
{
	return (uint64_t)s_get32(p) | (uint64_t)s_get32(p + 4) << 32;
}

uint32_t
spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len-- > 0)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint32_t
s_record_crc(const uint8_t *hdr, const void *payload, size_t len)
{
	/* len and seq: bytes 4..15 of the header. */
	return spool_crc32c(spool_crc32c(0, hdr + 4, 12), payload, len);
}

void
spool_record_header(
    uint8_t hdr[SPOOL_REC_HDR], uint64_t seq, const void *payload, size_t len)
{
	s_put32(hdr, REC_MAGIC);
	s_put32(hdr + 4, (uint32_t)len);
	s_put64(hdr + 8, seq);
	s_put32(hdr + 16, s_record_crc(hdr, payload, len));
}

int
spool_record_decode(const void *buf, size_t len, struct spool_record *rec)
{
	const uint8_t *p = buf;
	uint32_t plen;

	memset(rec, 0, sizeof(*rec));
	rec->size = SPOOL_REC_HDR;
	if (len >= 4 && s_get32(p) != REC_MAGIC)
		return -1;
	if (len < SPOOL_REC_HDR)
		return 0;
	plen = s_get32(p + 4);
	if (plen > SPOOL_PAYLOAD_MAX || s_get64(p + 8) == 0)
		return -1;
	rec->size = SPOOL_REC_HDR + (size_t)plen;
	if (len < rec->size)
		return 0;
	if (s_record_crc(p, p + SPOOL_REC_HDR, plen) != s_get32(p + 16))
		return -1;
	rec->seq = s_get64(p + 8);
	rec->payload = p + SPOOL_REC_HDR;
	rec->len = plen;
	return 1;
}

static void
s_reader_reset(struct reader *r, int fd)
{
	r->fd = fd;
	r->off = 0;
	r->len = 0;
}

/*
 * Makes bytes [off, off + need) of r->fd available at *p without reading at
 * or past end.  Returns 0, 1 when they are not all there, -1 on an error.
 * *p stays valid until the next call.
 */
static int
s_reader_get(struct reader *r, uint64_t off, size_t need, uint64_t end,
    const uint8_t **p)
{
	size_t want, room;
	uint8_t *nbuf;
	ssize_t n;

	if (off >= r->off && off - r->off <= r->len &&
	    r->len - (off - r->off) >= need) {
		*p = r->buf + (off - r->off);
		return 0;
	}
	if (off > end || need > end - off)
		return 1;
	if (off >= r->off && off - r->off < r->len) {
		/* Keep the overlapping bytes: a record often spans chunks. */
		memmove(
		    r->buf, r->buf + (off - r->off), r->len - (off - r->off));
		r->len -= off - r->off;
	} else
		r->len = 0;
	r->off = off;
	want = need < READ_CHUNK ? READ_CHUNK : need;
	if (want > r->cap) {
		if ((nbuf = realloc(r->buf, want)) == NULL)
			return -1;
		r->buf = nbuf;
		r->cap = want;
	}
	while (r->len < need) {
		room = r->cap - r->len;
		if (room > end - (off + r->len))
			room = end - (off + r->len);
		n = pread(r->fd, r->buf + r->len, room, (off_t)(off + r->len));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			return 1;
		r->len += (size_t)n;
	}
	*p = r->buf;
	return 0;
}

/*
 * Decodes the record at off, reading no further than end.  Returns 1 with
 * rec filled, 0 when there is no valid record there, -1 on an I/O error.
 */
static int
s_reader_record(
    struct reader *r, uint64_t off, uint64_t end, struct spool_record *rec)
{
	const uint8_t *p;
	int rc;

	if ((rc = s_reader_get(r, off, SPOOL_REC_HDR, end, &p)) != 0)
		return rc == 1 ? 0 : -1;
	if (spool_record_decode(p, SPOOL_REC_HDR, rec) == -1)
		return 0;
	if ((rc = s_reader_get(r, off, rec->size, end, &p)) != 0)
		return rc == 1 ? 0 : -1;
	return spool_record_decode(p, rec->size, rec) == 1 ? 1 : 0;
}

static void
s_seg_name(char *name, size_t len, uint64_t first)
{
	snprintf(name, len, "seg-%020" PRIu64 ".log", first);
}

/* 0 with *first when name is a segment name, -1 otherwise. */
static int
s_seg_parse(const char *name, uint64_t *first)
{
	uint64_t v = 0;
	unsigned d;
	size_t i;

	if (strlen(name) != SEG_NAME_LEN || strncmp(name, "seg-", 4) != 0 ||
	    strcmp(name + 24, ".log") != 0)
		return -1;
	for (i = 4; i < 24; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		d = (unsigned)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == 0)
		return -1;
	*first = v;
	return 0;
}

static int
s_seg_push(struct spool *s, uint64_t first, uint64_t fsize)
{
	struct seg *n;
	size_t alloc;

	if (s->nsegs == s->segs_alloc) {
		alloc = s->segs_alloc ? s->segs_alloc * 2 : 16;
		if ((n = reallocarray(s->segs, alloc, sizeof(*n))) == NULL)
			return -1;
		s->segs = n;
		s->segs_alloc = alloc;
	}
	s->segs[s->nsegs].first = first;
	s->segs[s->nsegs].last = first - 1;
	s->segs[s->nsegs].size = 0;
	s->segs[s->nsegs].fsize = fsize;
	s->nsegs++;
	return 0;
}

static int
s_seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static void
s_rd_forget(struct spool *s)
{
	if (s->rd_fd != -1)
		close(s->rd_fd);
	s->rd_fd = -1;
	s->rd_id = 0;
	s_reader_reset(&s->rd, -1);
	s->hint_id = 0;
}

/*
 * Deletes segment i from disk and from the list.  A failed unlink is only
 * logged: whatever made the segment deletable is already persisted, so the
 * next open deletes it again.
 */
static void
s_seg_unlink(struct spool *s, size_t i)
{
	char name[64];

	s_seg_name(name, sizeof(name), s->segs[i].first);
	if (i == s->nsegs - 1 && s->active_fd != -1) {
		close(s->active_fd);
		s->active_fd = -1;
		s->active_dirty = 0;
	}
	if (s->rd_id == s->segs[i].first || s->hint_id == s->segs[i].first)
		s_rd_forget(s);
	if (unlinkat(s->dirfd, name, 0) == -1 && errno != ENOENT)
		log_warn("spool: dir=%s segment=%s event=unlink_failed", s->dir,
		    name);
	s->bytes -= s->segs[i].size;
	memmove(&s->segs[i], &s->segs[i + 1],
	    (s->nsegs - i - 1) * sizeof(s->segs[0]));
	s->nsegs--;
}

/*
 * Stops writing to the active segment.  It is synced first, so that every
 * segment but the active one is always durable; an empty one is deleted.
 */
static int
s_active_close(struct spool *s)
{
	if (s->active_fd == -1)
		return 0;
	if (s->segs[s->nsegs - 1].size == 0) {
		s_seg_unlink(s, s->nsegs - 1);
		return 0;
	}
	if (s->active_dirty && fdatasync(s->active_fd) == -1) {
		log_warn("spool: dir=%s event=fdatasync_failed", s->dir);
		s->sync_failed = 1;
		return -1;
	}
	close(s->active_fd);
	s->active_fd = -1;
	s->active_dirty = 0;
	return 0;
}

static int
s_active_open(struct spool *s)
{
	char name[64];
	int fd;

	s_seg_name(name, sizeof(name), s->next_seq);
	fd = openat(s->dirfd, name,
	    O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warn("spool: dir=%s segment=%s event=create_failed", s->dir,
		    name);
		return -1;
	}
	if (s_seg_push(s, s->next_seq, 0) == -1) {
		close(fd);
		unlinkat(s->dirfd, name, 0);
		errno = ENOMEM;
		return -1;
	}
	s->active_fd = fd;
	s->dir_dirty = 1;
	return 0;
}

static int
s_write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes the state file atomically.  On failure the state is marked dirty
 * so that spool_sync tries again, and -1 is returned with errno.
 */
static int
s_state_write(struct spool *s)
{
	uint8_t buf[STATE_MAX], *p = buf;
	size_t i;
	int fd, saved;

	s_put32(p, STATE_MAGIC);
	s_put32(p + 4, STATE_VERSION);
	s_put64(p + 8, s->next_seq - 1);
	s_put64(p + 16, s->acked);
	s_put64(p + 24, s->dropped_total);
	s_put32(p + 32, (uint32_t)s->ngaps);
	p += STATE_FIXED;
	for (i = 0; i < s->ngaps; i++, p += STATE_GAP) {
		s_put64(p, s->gaps[i].first);
		s_put64(p + 8, s->gaps[i].last);
		s_put64(p + 16, s->gaps[i].count);
	}
	s_put32(p, spool_crc32c(0, buf, (size_t)(p - buf)));
	p += 4;

	fd = openat(s->dirfd, STATE_TMP,
	    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		goto fail;
	if (s_write_all(fd, buf, (size_t)(p - buf)) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) == -1)
		goto fail;
	if (renameat(s->dirfd, STATE_TMP, s->dirfd, STATE_NAME) == -1)
		goto fail;
	if (fsync(s->dirfd) == -1)
		goto fail;
	s->state_dirty = 0;
	return 0;
fail:
	saved = errno;
	log_warn("spool: dir=%s event=state_write_failed", s->dir);
	unlinkat(s->dirfd, STATE_TMP, 0);
	s->state_dirty = 1;
	errno = saved;
	return -1;
}

/* Loads the state file into s and *hwm; a missing file is a fresh spool. */
static int
s_state_load(struct spool *s, uint64_t *hwm, char *err, size_t errlen)
{
	uint8_t *buf;
	const uint8_t *p;
	size_t len = 0, i;
	ssize_t n;
	uint32_t ngaps;
	int fd;

	*hwm = 0;
	if ((fd = openat(s->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s/%s: %s", s->dir, STATE_NAME,
		    strerror(errno));
		return -1;
	}
	if ((buf = malloc(STATE_MAX + 1)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (len < STATE_MAX + 1) {
		n = read(fd, buf + len, STATE_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s/%s: %s", s->dir, STATE_NAME,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len < STATE_FIXED + 4 || s_get32(buf) != STATE_MAGIC ||
	    s_get32(buf + 4) != STATE_VERSION)
		goto corrupt;
	ngaps = s_get32(buf + 32);
	if (ngaps > SPOOL_GAPS_MAX ||
	    len != STATE_FIXED + (size_t)ngaps * STATE_GAP + 4 ||
	    spool_crc32c(0, buf, len - 4) != s_get32(buf + len - 4))
		goto corrupt;
	*hwm = s_get64(buf + 8);
	s->acked = s_get64(buf + 16);
	s->dropped_total = s_get64(buf + 24);
	if (s->acked > *hwm)
		goto corrupt;
	p = buf + STATE_FIXED;
	for (i = 0; i < ngaps; i++, p += STATE_GAP) {
		s->gaps[i].first = s_get64(p);
		s->gaps[i].last = s_get64(p + 8);
		s->gaps[i].count = s_get64(p + 16);
		s->gaps[i].taken = 0;
		if (s->gaps[i].first == 0 ||
		    s->gaps[i].last < s->gaps[i].first ||
		    s->gaps[i].last > *hwm || s->gaps[i].count == 0 ||
		    s->gaps[i].count - 1 > s->gaps[i].last - s->gaps[i].first ||
		    (i > 0 && s->gaps[i].first < s->gaps[i - 1].first))
			goto corrupt;
	}
	s->ngaps = ngaps;
	free(buf);
	close(fd);
	return 0;
corrupt:
	snprintf(err, errlen,
	    "%s/%s: corrupt state file; refusing to guess sequence numbers",
	    s->dir, STATE_NAME);
fail:
	free(buf);
	close(fd);
	return -1;
}

/*
 * Records seqs first..last (count of them lost) as a gap unless a stored gap
 * already covers them, as when recovery repeats what a crash interrupted.
 * Returns 1 when the list changed.
 */
static int
s_gap_add(struct spool *s, uint64_t first, uint64_t last, uint64_t count,
    const char *reason)
{
	struct gap *g;
	size_t i, at;

	for (i = 0; i < s->ngaps; i++)
		if (s->gaps[i].first <= first && last <= s->gaps[i].last)
			return 0;
	log_warnx("spool: dir=%s event=gap first=%" PRIu64 " last=%" PRIu64
		  " count=%" PRIu64 " reason=%s",
	    s->dir, first, last, count, reason);
	s->dropped_total += count;
	for (at = 0; at < s->ngaps && s->gaps[at].first < first; at++)
		;
	g = at > 0 ? &s->gaps[at - 1] : NULL;
	if (g != NULL && !g->taken && g->last + 1 == first &&
	    (at == s->ngaps || last < s->gaps[at].first)) {
		g->last = last;
		g->count += count;
		return 1;
	}
	if (s->ngaps == SPOOL_GAPS_MAX) {
		/* Widen a neighbour: exact count, vaguer range, sent anew. */
		g = g != NULL ? g : &s->gaps[0];
		g->first = first < g->first ? first : g->first;
		g->last = last > g->last ? last : g->last;
		g->count += count;
		g->taken = 0;
		return 1;
	}
	memmove(&s->gaps[at + 1], &s->gaps[at],
	    (s->ngaps - at) * sizeof(s->gaps[0]));
	s->gaps[at].first = first;
	s->gaps[at].last = last;
	s->gaps[at].count = count;
	s->gaps[at].taken = 0;
	s->ngaps++;
	return 1;
}

/* Forgets gaps handed out and acked past; returns 1 when any went. */
static int
s_gaps_purge(struct spool *s)
{
	size_t i, j;

	for (i = j = 0; i < s->ngaps; i++) {
		if (s->gaps[i].taken && s->gaps[i].last <= s->acked)
			continue;
		s->gaps[j++] = s->gaps[i];
	}
	if (j == s->ngaps)
		return 0;
	s->ngaps = j;
	return 1;
}

static int
s_gap_covers(const struct spool *s, uint64_t first, uint64_t last)
{
	size_t i;

	for (i = 0; i < s->ngaps; i++)
		if (s->gaps[i].first <= first && last <= s->gaps[i].last)
			return 1;
	return 0;
}

/* Drops the oldest segments while the spool is over its cap. */
static void
s_enforce_cap(struct spool *s)
{
	struct seg *g;
	uint64_t lo;

	while (s->bytes > s->cap && s->nsegs > 0) {
		/* Cannot happen while rollover respects the cap; a guard. */
		if (s->nsegs == 1 && s->active_fd != -1)
			break;
		g = &s->segs[0];
		lo = g->first > s->acked ? g->first : s->acked + 1;
		if (g->size > 0 && g->last >= lo &&
		    s_gap_add(s, lo, g->last, g->last - lo + 1, "cap") &&
		    s_state_write(s) == -1 && s->nsegs == 1)
			break;
		s_seg_unlink(s, 0);
	}
}

/*
 * Cuts segment i at off, where the record with seq cur should be but is
 * not: cur and the rest of the segment's seqs become a gap, persisted before
 * the file is truncated.  Used when spool_read meets damage.
 */
static void
s_seg_cut(struct spool *s, size_t i, uint64_t off, uint64_t cur)
{
	struct seg *g = &s->segs[i];
	char name[64];
	int fd;

	s_seg_name(name, sizeof(name), g->first);
	log_warnx("spool: dir=%s segment=%s event=corrupt offset=%" PRIu64
		  " seq=%" PRIu64,
	    s->dir, name, off, cur);
	if (g->last >= cur &&
	    s_gap_add(s, cur, g->last, g->last - cur + 1, "corrupt"))
		s_state_write(s);
	s->bytes -= g->size - off;
	g->size = off;
	g->last = cur - 1;
	s_rd_forget(s);
	fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd == -1 || ftruncate(fd, (off_t)off) == -1)
		log_warn("spool: dir=%s segment=%s event=truncate_failed",
		    s->dir, name);
	if (fd != -1)
		close(fd);
	if (i == s->nsegs - 1 && s->active_fd != -1) {
		/* Appends must not continue after a hole in the seqs. */
		if (s_active_close(s) == -1) {
			close(s->active_fd);
			s->active_fd = -1;
			s->active_dirty = 0;
		}
	} else if (g->size == 0)
		s_seg_unlink(s, i);
}

/*
 * Validates segment g from its start.  Leaves the valid prefix in g->size
 * and g->last; sets *bad when other bytes follow it and *later to the
 * highest seq of a valid record found past the damage (0 when none).
 */
static int
s_seg_scan(struct spool *s, struct seg *g, int *bad, uint64_t *later, char *err,
    size_t errlen)
{
	struct reader r = {.fd = -1};
	struct spool_record rec;
	struct stat st;
	char name[64];
	uint64_t off = 0, pos;
	int fd, rc;

	*bad = 0;
	*later = 0;
	s_seg_name(name, sizeof(name), g->first);
	if ((fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(
		    err, errlen, "%s/%s: %s", s->dir, name, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	g->fsize = (uint64_t)st.st_size;
	s_reader_reset(&r, fd);
	while (off < g->fsize) {
		if ((rc = s_reader_record(&r, off, g->fsize, &rec)) == -1)
			goto ioerr;
		if (rc == 0 || rec.seq != g->last + 1) {
			*bad = 1;
			break;
		}
		off += rec.size;
		g->last = rec.seq;
	}
	g->size = off;
	/* Look past the damage for records whose seqs must not be reused. */
	for (pos = off + 1; *bad && pos + SPOOL_REC_HDR <= g->fsize; pos++) {
		if ((rc = s_reader_record(&r, pos, g->fsize, &rec)) == -1)
			goto ioerr;
		if (rc == 1 && rec.seq > g->last) {
			if (rec.seq > *later)
				*later = rec.seq;
			pos += rec.size - 1;
		}
	}
	free(r.buf);
	close(fd);
	return 0;
ioerr:
	snprintf(err, errlen, "%s/%s: %s", s->dir, name, strerror(errno));
	free(r.buf);
	close(fd);
	return -1;
}

static int
s_seg_list(struct spool *s, char *err, size_t errlen)
{
	struct dirent *de;
	uint64_t first;
	DIR *d;

	if ((d = opendir(s->dir)) == NULL) {
		snprintf(err, errlen, "%s: %s", s->dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, STATE_TMP) == 0) {
			/* A state write that a crash interrupted. */
			unlinkat(s->dirfd, STATE_TMP, 0);
			continue;
		}
		if (s_seg_parse(de->d_name, &first) == -1)
			continue;
		if (s_seg_push(s, first, 0) == -1) {
			snprintf(err, errlen, "out of memory");
			closedir(d);
			return -1;
		}
	}
	if (errno != 0) {
		snprintf(err, errlen, "%s: %s", s->dir, strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	if (s->nsegs > 0)
		qsort(s->segs, s->nsegs, sizeof(s->segs[0]), s_seg_cmp);
	return 0;
}

/* Makes what a crashed or stopped process left consistent; see the top. */
static int
s_recover(struct spool *s, uint64_t hwm, char *err, size_t errlen)
{
	struct seg *g;
	char name[64];
	uint64_t known = s->acked, hi, lo;
	size_t i;
	int bad, changed = 0, fd;
	uint64_t later;

	for (i = 0; i < s->nsegs; i++) {
		g = &s->segs[i];
		if (s_seg_scan(s, g, &bad, &later, err, errlen) == -1)
			return -1;
		if (i > 0 && s->segs[i - 1].size > 0 &&
		    g->first <= s->segs[i - 1].last) {
			snprintf(err, errlen,
			    "%s: segments overlap at seq %" PRIu64, s->dir,
			    g->first);
			return -1;
		}
		lo = g->last + 1;
		if (bad && i + 1 < s->nsegs) {
			hi = s->segs[i + 1].first - 1;
			if (hi >= lo)
				changed |= s_gap_add(
				    s, lo, hi, hi - lo + 1, "corrupt");
		} else if (bad && later >= lo) {
			changed |=
			    s_gap_add(s, lo, later, later - lo + 1, "corrupt");
			known = later > known ? later : known;
		}
		if (g->size > 0 && g->last > known)
			known = g->last;
	}
	for (i = 0; i < s->ngaps; i++)
		if (s->gaps[i].last > known)
			known = s->gaps[i].last;
	if (hwm > known) {
		/* Handed out (the mark says so) but lost before a sync. */
		changed |=
		    s_gap_add(s, known + 1, hwm, hwm - known, "unsynced");
		known = hwm;
	}
	s->next_seq = known + 1;
	s->durable = known;
	if (changed && s_state_write(s) == -1) {
		snprintf(err, errlen, "%s/%s: %s", s->dir, STATE_NAME,
		    strerror(errno));
		return -1;
	}

	for (i = s->nsegs; i-- > 0;) {
		g = &s->segs[i];
		s->bytes += g->size;
		if (g->size == 0 || g->last <= s->acked ||
		    s_gap_covers(s, g->first, g->last)) {
			s_seg_unlink(s, i);
			continue;
		}
		if (g->fsize == g->size)
			continue;
		s_seg_name(name, sizeof(name), g->first);
		log_warnx(
		    "spool: dir=%s segment=%s event=truncate from=%" PRIu64
		    " to=%" PRIu64,
		    s->dir, name, g->fsize, g->size);
		fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (fd == -1 || ftruncate(fd, (off_t)g->size) == -1) {
			snprintf(err, errlen, "%s/%s: truncate: %s", s->dir,
			    name, strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
		close(fd);
	}

	/*
	 * The newest segment may hold records that outlived the process only
	 * in the page cache; they are sendable from now on, so make them
	 * durable, together with its directory entry.
	 */
	if (s->nsegs > 0) {
		s_seg_name(name, sizeof(name), s->segs[s->nsegs - 1].first);
		fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (fd == -1 || fdatasync(fd) == -1) {
			snprintf(err, errlen, "%s/%s: sync: %s", s->dir, name,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
		close(fd);
	}
	if (fsync(s->dirfd) == -1) {
		snprintf(err, errlen, "%s: sync: %s", s->dir, strerror(errno));
		return -1;
	}
	s_enforce_cap(s);
	return 0;
}

/* Makes a new directory's own entry durable. */
static void
s_sync_parent(const char *dir)
{
	char *parent, *slash;
	int fd;

	if ((parent = strdup(dir)) == NULL)
		return;
	for (slash = parent + strlen(parent);
	     slash > parent + 1 && slash[-1] == '/';)
		*--slash = '\0';
	if ((slash = strrchr(parent, '/')) == NULL)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(fd);
		close(fd);
	}
	free(parent);
}

static void
s_free(struct spool *s)
{
	if (s->active_fd != -1)
		close(s->active_fd);
	if (s->rd_fd != -1)
		close(s->rd_fd);
	if (s->dirfd != -1)
		close(s->dirfd);
	free(s->rd.buf);
	free(s->segs);
	free(s->dir);
	free(s);
}

struct spool *
spool_open(const char *dir, uint64_t cap_bytes, char *err, size_t errlen)
{
	struct spool *s;
	uint64_t hwm;

	if (cap_bytes < SPOOL_REC_HDR) {
		snprintf(err, errlen, "spool cap %" PRIu64 " is too small",
		    cap_bytes);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->dir = strdup(dir)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->dirfd = s->active_fd = s->rd_fd = -1;
	s->rd.fd = -1;
	s->cap = cap_bytes;
	s->seg_max = SPOOL_SEGMENT_DEFAULT;
	if (mkdir(dir, 0700) == 0)
		s_sync_parent(dir);
	else if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	/* Two writers would hand out the same seqs. */
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "%s: %s", dir,
		    errno == EWOULDBLOCK ? "in use by another process"
					 : strerror(errno));
		goto fail;
	}
	if (s_state_load(s, &hwm, err, errlen) == -1 ||
	    s_seg_list(s, err, errlen) == -1 ||
	    s_recover(s, hwm, err, errlen) == -1)
		goto fail;
	log_info("spool: dir=%s event=open next_seq=%" PRIu64 " acked=%" PRIu64
		 " segments=%zu bytes=%" PRIu64 " gaps=%zu",
	    s->dir, s->next_seq, s->acked, s->nsegs, s->bytes, s->ngaps);
	return s;
fail:
	s_free(s);
	return NULL;
}

void
spool_close(struct spool **sp)
{
	struct spool *s = *sp;

	if (s == NULL)
		return;
	if (spool_sync(s) == -1 || s_active_close(s) == -1)
		log_warnx("spool: dir=%s event=close_unsynced", s->dir);
	s_free(s);
	*sp = NULL;
}

void
spool_set_segment_max(struct spool *s, uint64_t bytes)
{
	s->seg_max = bytes > 0 ? bytes : 1;
}

int
spool_append(struct spool *s, const void *buf, size_t len, uint64_t *seq)
{
	uint8_t hdr[SPOOL_REC_HDR];
	struct iovec iov[2];
	struct seg *g;
	uint64_t rec, limit;
	ssize_t n;
	int saved;

	if (len > SPOOL_PAYLOAD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	rec = SPOOL_REC_HDR + (uint64_t)len;
	if (rec > s->cap) {
		errno = EFBIG;
		return -1;
	}
	limit = s->seg_max < s->cap ? s->seg_max : s->cap;
	if (s->active_fd != -1 && s->segs[s->nsegs - 1].size > 0 &&
	    s->segs[s->nsegs - 1].size + rec > limit && s_active_close(s) == -1)
		return -1;
	if (s->active_fd == -1 && s_active_open(s) == -1)
		return -1;
	g = &s->segs[s->nsegs - 1];

	spool_record_header(hdr, s->next_seq, buf, len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)buf;
	iov[1].iov_len = len;
	do
		n = writev(s->active_fd, iov, len > 0 ? 2 : 1);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)rec) {
		saved = n == -1 ? errno : ENOSPC;
		log_warn("spool: dir=%s event=write_failed seq=%" PRIu64,
		    s->dir, s->next_seq);
		if (ftruncate(s->active_fd, (off_t)g->size) == -1) {
			/*
			 * The tail is garbage now; never write after it.  The
			 * next open cuts it off as damage in an older segment.
			 */
			log_warn("spool: dir=%s event=truncate_failed", s->dir);
			if (s_active_close(s) == -1) {
				close(s->active_fd);
				s->active_fd = -1;
			}
		}
		errno = saved;
		return -1;
	}
	g->size += rec;
	g->last = s->next_seq;
	s->bytes += rec;
	s->active_dirty = 1;
	*seq = s->next_seq++;
	s_enforce_cap(s);
	return 0;
}

int
spool_sync(struct spool *s)
{
	/*
	 * After a failed fdatasync Linux may have dropped the dirty pages and
	 * report the next one as a success, so no later sync is believed:
	 * the owner closes and reopens the spool, which re-reads the disk.
	 */
	if (s->sync_failed) {
		errno = EIO;
		return -1;
	}
	if (s->state_dirty && s_state_write(s) == -1)
		return -1;
	if (s->active_fd != -1 && s->active_dirty) {
		if (fdatasync(s->active_fd) == -1) {
			log_warn(
			    "spool: dir=%s event=fdatasync_failed", s->dir);
			s->sync_failed = 1;
			return -1;
		}
		s->active_dirty = 0;
	}
	if (s->dir_dirty) {
		if (fsync(s->dirfd) == -1) {
			log_warn("spool: dir=%s event=fsync_failed", s->dir);
			return -1;
		}
		s->dir_dirty = 0;
	}
	s->durable = s->next_seq - 1;
	return 0;
}

int
spool_adopt(struct spool *s, uint64_t committed)
{
	uint64_t last = s->next_seq - 1;

	if (committed <= last)
		return 0;
	/*
	 * Every record and gap we hold is below what the collector already
	 * committed for this key, so none of it is needed; continuing after
	 * committed keeps new results from being taken for duplicates.
	 */
	s->acked = committed;
	s->next_seq = committed + 1;
	s->durable = committed;
	s->ngaps = 0;
	if (s_state_write(s) == -1)
		return -1;
	while (s->nsegs > 0)
		s_seg_unlink(s, 0);
	log_warnx("spool: dir=%s event=adopt last=%" PRIu64
		  " committed=%" PRIu64,
	    s->dir, last, committed);
	return 0;
}

uint64_t
spool_durable_last(const struct spool *s)
{
	return s->durable;
}

int
spool_ack(struct spool *s, uint64_t upto)
{
	int advanced;

	if (upto > s->next_seq - 1) {
		errno = EINVAL;
		return -1;
	}
	if (upto < s->acked)
		return 0;
	advanced = upto > s->acked;
	s->acked = upto;
	if (!s_gaps_purge(s) && !advanced)
		return 0;
	/* Persisted first: a deleted segment must not be needed again. */
	if (s_state_write(s) == -1)
		return -1;
	while (s->nsegs > 0 && s->segs[0].last <= s->acked)
		s_seg_unlink(s, 0);
	return 0;
}

/*
 * Reads segment i for spool_read.  Returns 1 when reading should stop (cb
 * said so, max reached, durable end reached), 0 when the segment is done
 * (or was cut), -1 on an I/O error.
 */
static int
s_read_seg(struct spool *s, size_t i, uint64_t *start, size_t max, size_t *n,
    spool_read_cb cb, void *arg)
{
	struct seg *g = &s->segs[i];
	struct spool_record rec;
	char name[64];
	uint64_t off = 0, cur = g->first;
	int fd, rc;

	if (g->first > s->durable)
		return 1;
	if (s->rd_fd == -1 || s->rd_id != g->first) {
		s_rd_forget(s);
		s_seg_name(name, sizeof(name), g->first);
		if ((fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC)) == -1) {
			log_warn("spool: dir=%s segment=%s event=open_failed",
			    s->dir, name);
			return -1;
		}
		s->rd_fd = fd;
		s->rd_id = g->first;
		s_reader_reset(&s->rd, fd);
	}
	/* Continuing where the last read stopped saves rescanning. */
	if (s->hint_id == g->first && s->hint_seq <= *start &&
	    s->hint_off <= g->size) {
		off = s->hint_off;
		cur = s->hint_seq;
	}
	while (cur <= g->last && cur <= s->durable && *n < max) {
		if ((rc = s_reader_record(&s->rd, off, g->size, &rec)) == -1) {
			log_warn("spool: dir=%s event=read_failed", s->dir);
			return -1;
		}
		if (rc == 0 || rec.seq != cur) {
			s_seg_cut(s, i, off, cur);
			return 0;
		}
		off += rec.size;
		cur++;
		if (rec.seq < *start)
			continue;
		(*n)++;
		*start = cur;
		s->hint_id = g->first;
		s->hint_seq = cur;
		s->hint_off = off;
		if (cb(rec.seq, rec.payload, rec.len, arg) != 0)
			return 1;
	}
	if (cur <= g->last)
		return 1;
	if (*start < cur)
		*start = cur;
	return 0;
}

int
spool_read(
    struct spool *s, uint64_t from_seq, size_t max, spool_read_cb cb, void *arg)
{
	uint64_t start = from_seq > s->acked ? from_seq : s->acked + 1;
	size_t i = 0, n = 0;
	int rc;

	if (max > INT_MAX)
		max = INT_MAX;
	while (i < s->nsegs && n < max && start <= s->durable) {
		if (s->segs[i].size == 0 || s->segs[i].last < start) {
			i++;
			continue;
		}
		if ((rc = s_read_seg(s, i, &start, max, &n, cb, arg)) == -1)
			return n > 0 ? (int)n : -1;
		if (rc == 1)
			break;
	}
	return (int)n;
}

int
spool_take_gap(
    struct spool *s, uint64_t *first, uint64_t *last, uint64_t *count)
{
	size_t i;

	for (i = 0; i < s->ngaps; i++) {
		if (s->gaps[i].taken)
			continue;
		s->gaps[i].taken = 1;
		*first = s->gaps[i].first;
		*last = s->gaps[i].last;
		*count = s->gaps[i].count;
		return 1;
	}
	return 0;
}

void
spool_rewind_gaps(struct spool *s)
{
	size_t i;

	for (i = 0; i < s->ngaps; i++)
		s->gaps[i].taken = 0;
}

void
spool_stats(const struct spool *s, uint64_t *first_seq, uint64_t *last_seq,
    uint64_t *bytes, uint64_t *dropped_total)
{
	uint64_t first = 0;
	size_t i;

	for (i = 0; i < s->nsegs; i++) {
		if (s->segs[i].size > 0 && s->segs[i].last > s->acked) {
			first = s->segs[i].first > s->acked ? s->segs[i].first
							    : s->acked + 1;
			break;
		}
	}
	if (first_seq != NULL)
		*first_seq = first;
	if (last_seq != NULL)
		*last_seq = s->next_seq - 1;
	if (bytes != NULL)
		*bytes = s->bytes;
	if (dropped_total != NULL)
		*dropped_total = s->dropped_total;
}
