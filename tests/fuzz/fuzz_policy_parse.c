/* fuzz_policy_parse.c -- libFuzzer target for the MTA-STS policy parser. */
#include <stdint.h>
#include <stdlib.h>

#include "mx_match.h"
#include "policy_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_policy p;
	char err[256];
	int rc;

	rc = policy_parse((const char *)data, size, &p, err, sizeof(err));
	if (p.n_mx > POLICY_MX_MAX || p.max_age > POLICY_MAX_AGE_LIMIT ||
	    p.max_age < -1)
		abort();
	if (rc == -1 && err[0] == '\0')
		abort();
	/* What a valid policy promises to the code that enforces it. */
	if (rc == 0) {
		if (!p.version_ok || p.mode == STS_MODE_UNSET ||
		    p.max_age < 0 || err[0] != '\0')
			abort();
		if (p.mode != STS_MODE_NONE && p.n_mx == 0)
			abort();
		for (size_t i = 0; i < p.n_mx; i++) {
			if (!mx_pattern_valid(p.mx[i]))
				abort();
		}
	}
	(void)policy_mode_name(p.mode);
	policy_free(&p);
	return 0;
}
