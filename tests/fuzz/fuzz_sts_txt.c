/* fuzz_sts_txt.c -- libFuzzer target for the _mta-sts TXT record parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts_txt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_txt t;
	char err[128];
	size_t id_len;
	int rc;

	rc = sts_txt_parse((const char *)data, size, &t, err, sizeof(err));
	id_len = strnlen(t.id, sizeof(t.id));
	/* The id is always terminated, and a valid record always has one. */
	if (id_len > STS_TXT_ID_MAX || memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (rc == 0 && (id_len == 0 || err[0] != '\0' ||
			   !sts_txt_is_sts((const char *)data, size)))
		abort();
	if (rc == -1 && err[0] == '\0')
		abort();
	return 0;
}
