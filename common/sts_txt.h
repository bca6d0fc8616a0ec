/* sts_txt.h -- the _mta-sts TXT record (RFC 8461 section 3.1). */
#ifndef MTASTS_STS_TXT_H
#define MTASTS_STS_TXT_H

#include <stddef.h>

#define STS_TXT_ID_MAX 32

struct sts_txt {
	char id[STS_TXT_ID_MAX + 1]; /* empty when no valid id was found */
};

/*
 * 1 when rec begins with "v=STSv1" followed by a field delimiter (or ends
 * there): only such records count; others at _mta-sts are ignored.
 */
int sts_txt_is_sts(const char *rec, size_t len);

/*
 * Parses one record, already joined from its character-strings.  rec need
 * not be NUL-terminated and may contain any byte.  Returns 0 when the record
 * follows the grammar, -1 otherwise with a one-line reason in err.
 */
int sts_txt_parse(
    const char *rec, size_t len, struct sts_txt *out, char *err, size_t errlen);

#endif
