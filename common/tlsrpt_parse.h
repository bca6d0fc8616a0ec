/* tlsrpt_parse.h -- the _smtp._tls TXT record (RFC 8460 section 3). */
#ifndef MTASTS_TLSRPT_PARSE_H
#define MTASTS_TLSRPT_PARSE_H

#include <stddef.h>

#define TLSRPT_RUA_MAX 16

struct tlsrpt_record {
	char **rua; /* owned; each URI as written */
	size_t n_rua;
};

/* 1 when rec begins with "v=TLSRPTv1" followed by a delimiter or its end. */
int tlsrpt_is_tlsrpt(const char *rec, size_t len);

/*
 * Parses one record.  Valid means: the grammar of RFC 8460 section 3, a rua
 * field present, and every rua URI of scheme mailto: or https:.  Returns 0
 * when valid, -1 otherwise with the reason in err; out holds what could be
 * read either way.  Calls malloc: release out with tlsrpt_free().
 */
int tlsrpt_parse(const char *rec, size_t len, struct tlsrpt_record *out,
    char *err, size_t errlen);
void tlsrpt_free(struct tlsrpt_record *rec);

#endif
