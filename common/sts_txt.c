/* sts_txt.c -- parser of the _mta-sts TXT record (RFC 8461 section 3.1). */
#include "sts_txt.h"

#include "abnf.h"
#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define STS_VERSION	"v=STSv1"
#define STS_VERSION_LEN (sizeof(STS_VERSION) - 1)
#define EXT_NAME_MAX	32

/* sts-ext-value: %x21-3A / %x3C / %x3E-7E, i.e. VCHAR but ";" and "=". */
static int
s_is_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

int
sts_txt_is_sts(const char *rec, size_t len)
{
	size_t pos;

	if (rec == NULL || len < STS_VERSION_LEN ||
	    memcmp(rec, STS_VERSION, STS_VERSION_LEN) != 0)
		return 0;
	pos = abnf_skip_wsp(rec, len, STS_VERSION_LEN);
	return pos == len || rec[pos] == ';';
}

/*
 * Reads one sts-field at rec[*pos] and advances *pos past it.  The id goes
 * to out unless an earlier one was already taken.
 */
static int
s_parse_field(const char *rec, size_t len, size_t *pos, struct sts_txt *out,
    int *have_id, char *err, size_t errlen)
{
	size_t start = *pos, p = *pos, name_len, vstart, vlen;
	unsigned char c;

	c = (unsigned char)rec[p];
	if (!abnf_is_alnum(c)) {
		errbuf_set(err, errlen,
		    "invalid byte 0x%02x at offset %zu, "
		    "expected a field name",
		    c, p);
		return -1;
	}
	while (p < len && (abnf_is_alnum((unsigned char)rec[p]) ||
			      rec[p] == '_' || rec[p] == '-' || rec[p] == '.'))
		p++;
	name_len = p - start;
	if (p == len || rec[p] != '=') {
		errbuf_set(err, errlen,
		    "field \"%.*s\" has no '=' at offset %zu",
		    (int)(name_len > EXT_NAME_MAX ? EXT_NAME_MAX : name_len),
		    rec + start, p);
		return -1;
	}
	if (name_len > EXT_NAME_MAX) {
		errbuf_set(err, errlen, "field name longer than %d characters",
		    EXT_NAME_MAX);
		return -1;
	}
	vstart = ++p;
	while (p < len && s_is_value_char((unsigned char)rec[p]))
		p++;
	vlen = p - vstart;
	if (p < len && rec[p] != ';' && !abnf_is_wsp((unsigned char)rec[p])) {
		errbuf_set(err, errlen,
		    "invalid byte 0x%02x at offset %zu in "
		    "field \"%.*s\"",
		    (unsigned char)rec[p], p, (int)name_len, rec + start);
		return -1;
	}
	*pos = p;

	/* sts-id is case-sensitive (%s"id="), so "ID=" is an extension. */
	if (name_len == 2 && memcmp(rec + start, "id", 2) == 0) {
		if (vlen == 0 || vlen > STS_TXT_ID_MAX) {
			errbuf_set(err, errlen,
			    "id must be 1-%d letters or digits",
			    STS_TXT_ID_MAX);
			return -1;
		}
		for (size_t i = vstart; i < p; i++) {
			if (!abnf_is_alnum((unsigned char)rec[i])) {
				errbuf_set(err, errlen,
				    "id must be 1-%d letters "
				    "or digits",
				    STS_TXT_ID_MAX);
				return -1;
			}
		}
		/*
		 * RFC 8461 does not say which of two ids counts.  Keeping the
		 * first gives every reader of the same record the same id,
		 * and is the rule policy_parse.c applies to repeated fields.
		 */
		if (!*have_id) {
			memcpy(out->id, rec + vstart, vlen);
			out->id[vlen] = '\0';
			*have_id = 1;
		}
		return 0;
	}
	if (vlen == 0) {
		errbuf_set(err, errlen, "field \"%.*s\" has an empty value",
		    (int)name_len, rec + start);
		return -1;
	}
	return 0;
}

int
sts_txt_parse(
    const char *rec, size_t len, struct sts_txt *out, char *err, size_t errlen)
{
	size_t pos;
	int have_id = 0;

	memset(out, 0, sizeof(*out));
	errbuf_set(err, errlen, "%s", "");
	if (!sts_txt_is_sts(rec, len)) {
		errbuf_set(
		    err, errlen, "record does not begin with \"v=STSv1;\"");
		return -1;
	}
	pos = STS_VERSION_LEN;
	for (;;) {
		pos = abnf_skip_wsp(rec, len, pos);
		if (pos == len)
			break;
		if (rec[pos] != ';') {
			errbuf_set(err, errlen,
			    "invalid byte 0x%02x at offset %zu, "
			    "expected ';'",
			    (unsigned char)rec[pos], pos);
			return -1;
		}
		pos = abnf_skip_wsp(rec, len, pos + 1);
		if (pos == len)
			break; /* the optional trailing delimiter */
		if (s_parse_field(rec, len, &pos, out, &have_id, err, errlen) ==
		    -1)
			return -1;
	}
	if (!have_id) {
		errbuf_set(err, errlen, "missing id field");
		return -1;
	}
	return 0;
}
