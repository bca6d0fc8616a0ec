/* fuzz_tlsrpt_parse.c -- libFuzzer target for the _smtp._tls record parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlsrpt_record r;
	char err[256];
	int rc;

	rc = tlsrpt_parse((const char *)data, size, &r, err, sizeof(err));
	if (r.n_rua > TLSRPT_RUA_MAX)
		abort();
	if (rc == 0 && (r.n_rua == 0 || err[0] != '\0'))
		abort();
	if (rc == -1 && err[0] == '\0')
		abort();
	/* Every stored URI is a non-empty copy of bytes of the record. */
	for (size_t i = 0; i < r.n_rua; i++) {
		if (r.rua[i][0] == '\0' || strlen(r.rua[i]) > size)
			abort();
	}
	tlsrpt_free(&r);
	return 0;
}
