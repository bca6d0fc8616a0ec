/* sts_txt.c -- parser of the _mta-sts TXT record (RFC 8461 section 3.1). */
#include "sts_txt.h"

#include "abnf.h"
#include "errbuf.h"
#include "txt_record.h"

#include <string.h>

#define STS_VERSION	"v=STSv1"
#define STS_VERSION_LEN (sizeof(STS_VERSION) - 1)

int
sts_txt_is_sts(const char *rec, size_t len)
{
	return txt_record_is(rec, len, STS_VERSION);
}

struct sts_parse {
	struct sts_txt *out;
	int have_id;
};

/* One sts-field: the id goes to out unless an earlier one was taken. */
static int
s_field(const char *rec, size_t len, size_t name, size_t name_len, size_t *pos,
    void *arg, char *err, size_t errlen)
{
	struct sts_parse *sp = arg;
	size_t vstart = *pos, vlen;

	/* sts-id is case-sensitive (%s"id="), so "ID=" is an extension. */
	if (!(name_len == 2 && memcmp(rec + name, "id", 2) == 0))
		return txt_record_ext_value(
		    rec, len, name, name_len, pos, err, errlen);
	if (txt_record_value(
		rec, len, name, name_len, pos, &vlen, err, errlen) == -1)
		return -1;
	if (vlen == 0 || vlen > STS_TXT_ID_MAX) {
		errbuf_set(err, errlen, "id must be 1-%d letters or digits",
		    STS_TXT_ID_MAX);
		return -1;
	}
	for (size_t i = vstart; i < *pos; i++) {
		if (!abnf_is_alnum((unsigned char)rec[i])) {
			errbuf_set(err, errlen,
			    "id must be 1-%d letters or digits",
			    STS_TXT_ID_MAX);
			return -1;
		}
	}
	/*
	 * RFC 8461 does not say which of two ids counts.  Keeping the first
	 * gives every reader of the same record the same id, and is the rule
	 * policy_parse.c applies to repeated fields.
	 */
	if (!sp->have_id) {
		memcpy(sp->out->id, rec + vstart, vlen);
		sp->out->id[vlen] = '\0';
		sp->have_id = 1;
	}
	return 0;
}

int
sts_txt_parse(
    const char *rec, size_t len, struct sts_txt *out, char *err, size_t errlen)
{
	struct sts_parse sp = {out, 0};

	memset(out, 0, sizeof(*out));
	errbuf_set(err, errlen, "%s", "");
	if (!sts_txt_is_sts(rec, len)) {
		errbuf_set(
		    err, errlen, "record does not begin with \"v=STSv1;\"");
		return -1;
	}
	if (txt_record_fields(
		rec, len, STS_VERSION_LEN, s_field, &sp, err, errlen) == -1)
		return -1;
	if (!sp.have_id) {
		errbuf_set(err, errlen, "missing id field");
		return -1;
	}
	return 0;
}
