/* fuzz_mx_match.c -- libFuzzer target for name normalizing and mx matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mx_match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The input is "pattern\nhost": the two are matched both ways, and the
 * host is normalized into a buffer just large enough to catch overruns.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pattern, *host, *nl, out[DNSNAME_MAX];
	char *patterns[1];

	pattern = malloc(size + 1);
	if (pattern == NULL)
		return 0;
	memcpy(pattern, data, size);
	pattern[size] = '\0';
	nl = strchr(pattern, '\n');
	if (nl != NULL) {
		*nl = '\0';
		host = nl + 1;
	} else
		host = pattern + strlen(pattern);

	if (dnsname_normalize(host, out, sizeof(out)) == 0) {
		if (out[0] == '\0' || strlen(out) >= sizeof(out))
			abort();
		/* Normalizing twice changes nothing more, unless a second
		 * trailing dot is left to strip. */
		if (out[strlen(out) - 1] != '.' &&
		    mx_match(pattern, host) != mx_match(pattern, out))
			abort();
	}
	if (mx_pattern_valid(pattern)) {
		/* A valid pattern without a wildcard matches itself. */
		if (pattern[0] != '*' && !mx_match(pattern, pattern))
			abort();
	} else if (mx_match(pattern, host)) {
		abort();
	}
	patterns[0] = pattern;
	if (mx_match_any(patterns, 1, host) != mx_match(pattern, host))
		abort();
	free(pattern);
	return 0;
}
