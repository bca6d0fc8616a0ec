/* spool.h -- crash-safe store-and-forward queue of probe results. */
#ifndef MTASTS_SPOOL_H
#define MTASTS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Store-and-forward for one agent.  Every result gets a sequence number that
 * is never reused for this spool directory, is appended to a segment file,
 * becomes sendable once spool_sync() has made it durable, and is deleted
 * once the collector acknowledges it.  The spool is bounded in bytes: past
 * the cap the oldest results are dropped and reported as a gap, so that
 * every sequence number up to the last one is either delivered as a record
 * or covered by a gap report (at least once; a restart may repeat a gap).
 *
 * Layout of the directory:
 *   seg-<20-digit first seq>.log  records with consecutive seqs
 *   state                         high-water mark, acked seq, gaps, counters
 * A spool directory is locked (flock) by the process that opened it.
 *
 * Not thread-safe: one thread owns a struct spool.
 */

/* Largest payload spool_append() accepts. */
#define SPOOL_PAYLOAD_MAX (4u * 1024 * 1024)
/* Bytes in front of each payload: magic, length, seq, crc. */
#define SPOOL_REC_HDR 20
/* A segment is closed and a new one started past this size. */
#define SPOOL_SEGMENT_DEFAULT (1024u * 1024)
/* Gaps held at once; past it the newest gaps are merged (see spool.c). */
#define SPOOL_GAPS_MAX 1024

struct spool;

/* One decoded record; payload points into the buffer given to the decoder. */
struct spool_record {
	uint64_t seq;
	const uint8_t *payload;
	size_t len;  /* payload bytes */
	size_t size; /* SPOOL_REC_HDR + len: bytes the record occupies */
};

/*
 * Opens (creating dir with mode 0700 if missing) and recovers the spool:
 * validates every record, truncates a torn tail, turns corruption and lost
 * unsynced records into gaps, deletes acknowledged segments and enforces
 * cap_bytes.  Returns the spool (free it with spool_close), or NULL with the
 * reason in err; a corrupt state file is refused rather than guessed at, as
 * is a directory another process holds.  Calls malloc.
 */
struct spool *spool_open(
    const char *dir, uint64_t cap_bytes, char *err, size_t errlen);
/* Syncs, closes and frees *s, then sets *s to NULL.  NULL is fine. */
void spool_close(struct spool **s);

/* Segment rollover size (default SPOOL_SEGMENT_DEFAULT); for tests. */
void spool_set_segment_max(struct spool *s, uint64_t bytes);

/*
 * Appends one record and stores its sequence number in *seq.  The record is
 * not durable (and spool_read does not return it) until spool_sync().
 * Returns 0, or -1 with errno: EMSGSIZE when len > SPOOL_PAYLOAD_MAX, EFBIG
 * when the record alone exceeds the cap, an I/O error otherwise (the
 * segment is left as it was before the call).  May drop the oldest segments
 * to stay within the cap; that is not an error.
 */
int spool_append(struct spool *s, const void *buf, size_t len, uint64_t *seq);
/*
 * Makes everything appended so far durable (one fdatasync).  0 or -1.  Once
 * an fdatasync has failed every later call fails too (EIO): the kernel may
 * have dropped the data, so close and reopen the spool to re-read the disk.
 */
int spool_sync(struct spool *s);
/* Last seq made durable by spool_sync (or found on disk at open); 0: none. */
uint64_t spool_durable_last(const struct spool *s);

/*
 * The collector has committed sequences up to committed although this
 * spool never went that far (it was lost or wiped while the key stayed):
 * drops everything held, which the collector already has or has covered,
 * and continues numbering after committed, so that new results are not
 * mistaken for duplicates.  Does nothing when committed <= the last seq.
 * 0, or -1 when the state cannot be written.
 */
int spool_adopt(struct spool *s, uint64_t committed);

/*
 * Records everything <= upto as committed by the collector: persists the
 * acked seq and deletes segments that hold nothing newer.  An ack at or
 * below the current one changes nothing and returns 0; one above the last
 * appended seq returns -1 with errno EINVAL.  -1 with errno on I/O errors.
 */
int spool_ack(struct spool *s, uint64_t upto);

/*
 * Called for each record by spool_read.  payload is borrowed and valid only
 * during the call.  Return 0 to go on, non-zero to stop after this record.
 * The callback must not call other spool functions.
 */
typedef int (*spool_read_cb)(
    uint64_t seq, const void *payload, size_t len, void *arg);
/*
 * Passes up to max durable records with seq >= from_seq and seq > acked to
 * cb, in order.  Returns how many were passed (at most INT_MAX), or -1 on
 * an I/O error before the first record.  A
 * record found corrupt here is treated as at open: it and the rest of its
 * segment become a gap and reading goes on with the next segment.
 */
int spool_read(struct spool *s, uint64_t from_seq, size_t max, spool_read_cb cb,
    void *arg);

/*
 * Hands out the oldest gap not yet handed out since open or the last
 * spool_rewind_gaps: seqs first..last, of which count were lost (count may
 * be less than the range when gaps were merged).  Returns 1, or 0 when
 * there is none.  A gap stays stored (and comes back after a restart) until
 * it has been handed out and an ack reaches its last seq.
 */
int spool_take_gap(
    struct spool *s, uint64_t *first, uint64_t *last, uint64_t *count);
/* Makes every stored gap available to spool_take_gap again (reconnect). */
void spool_rewind_gaps(struct spool *s);

/*
 * first_seq: oldest unacked seq held (0 when none); last_seq: last seq
 * appended or reserved (0 when none ever); bytes: total size of the segment
 * files; dropped_total: seqs reported lost over the spool's life.  Any
 * pointer may be NULL.
 */
void spool_stats(const struct spool *s, uint64_t *first_seq, uint64_t *last_seq,
    uint64_t *bytes, uint64_t *dropped_total);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len);
/* Fills hdr for a record with this seq and payload. */
void spool_record_header(
    uint8_t hdr[SPOOL_REC_HDR], uint64_t seq, const void *payload, size_t len);
/*
 * Decodes the record at the start of buf (len bytes available).  Returns 1
 * with rec filled; 0 when more bytes are needed (rec->size is then the
 * total needed once the header is complete, else SPOOL_REC_HDR); -1 when
 * the bytes are not a valid record.  Never reads past buf + len.
 */
int spool_record_decode(const void *buf, size_t len, struct spool_record *rec);

#endif
