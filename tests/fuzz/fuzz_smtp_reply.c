/* fuzz_smtp_reply.c -- libFuzzer target for the ESMTP reply parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A reply read in pieces must give what it gives read at once. */
static void
check_prefixes(const char *buf, size_t used, const struct smtp_reply *whole)
{
	struct smtp_reply r;
	size_t cuts[3] = {used - 1, used / 2, 1}, n;

	for (size_t i = 0; i < 3; i++) {
		if (cuts[i] >= used)
			continue;
		if (smtp_reply_parse(buf, cuts[i], &r, &n) != 0)
			abort();
	}
	if (smtp_reply_parse(buf, used, &r, &n) != 1 || n != used ||
	    r.code != whole->code || r.n_lines != whole->n_lines ||
	    r.has_starttls != whole->has_starttls ||
	    strcmp(r.first_line, whole->first_line) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct smtp_reply r;
	size_t used;
	int rc;

	/* Walk the input as a stream of replies, as the agent reads one. */
	while (size > 0) {
		rc = smtp_reply_parse(buf, size, &r, &used);
		if (rc != 1)
			break;
		if (used == 0 || used > size || r.code < 100 || r.code > 559 ||
		    r.n_lines == 0 || r.n_lines > SMTP_REPLY_LINES_MAX ||
		    memchr(r.first_line, '\0', sizeof(r.first_line)) == NULL)
			abort();
		check_prefixes(buf, used, &r);
		buf += used;
		size -= used;
	}
	return 0;
}
