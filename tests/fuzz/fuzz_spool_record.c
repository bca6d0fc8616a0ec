/* fuzz_spool_record.c -- libFuzzer target for the spool record decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_record rec, again;
	uint8_t hdr[SPOOL_REC_HDR];
	int rc;

	rc = spool_record_decode(data, size, &rec);
	if (rc < -1 || rc > 1)
		abort();
	/* "Need more" always means more than was given. */
	if (rc == 0 && rec.size <= size)
		abort();
	if (rc != 1)
		return 0;
	/* A record decodes only if encoding it again gives the same bytes. */
	if (rec.size != SPOOL_REC_HDR + rec.len || rec.size > size ||
	    rec.len > SPOOL_PAYLOAD_MAX || rec.seq == 0 ||
	    rec.payload != data + SPOOL_REC_HDR)
		abort();
	spool_record_header(hdr, rec.seq, rec.payload, rec.len);
	if (memcmp(hdr, data, SPOOL_REC_HDR) != 0)
		abort();
	/* Every shorter prefix asks for more; it never decodes. */
	if (spool_record_decode(data, rec.size - 1, &again) != 0)
		abort();
	return 0;
}
