/* txt_record.c -- the "v=VERSION; name=value; ..." grammar that the
 * _mta-sts (RFC 8461 3.1) and _smtp._tls (RFC 8460 3) records share. */
#include "txt_record.h"

#include <string.h>

#include "abnf.h"
#include "errbuf.h"

/* ext-value: %x21-3A / %x3C / %x3E-7E, i.e. VCHAR but ";" and "=". */
static int
s_is_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

int
txt_record_is(const char *rec, size_t len, const char *version)
{
	size_t vlen = strlen(version), pos;

	if (rec == NULL || len < vlen || memcmp(rec, version, vlen) != 0)
		return 0;
	pos = abnf_skip_wsp(rec, len, vlen);
	return pos == len || rec[pos] == ';';
}

/* Reads a field name and its '=' at *pos; *pos ends just past the '='. */
static int
s_field_name(const char *rec, size_t len, size_t *pos, size_t *name_len,
    char *err, size_t errlen)
{
	size_t start = *pos, p = *pos;
	unsigned char c = (unsigned char)rec[p];

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
	*name_len = p - start;
	if (p == len || rec[p] != '=') {
		errbuf_set(err, errlen,
		    "field \"%.*s\" has no '=' at offset %zu",
		    (int)(*name_len > TXT_RECORD_NAME_MAX ? TXT_RECORD_NAME_MAX
							  : *name_len),
		    rec + start, p);
		return -1;
	}
	if (*name_len > TXT_RECORD_NAME_MAX) {
		errbuf_set(err, errlen, "field name longer than %d characters",
		    TXT_RECORD_NAME_MAX);
		return -1;
	}
	*pos = p + 1;
	return 0;
}

int
txt_record_fields(const char *rec, size_t len, size_t version_len,
    txt_record_field_cb cb, void *arg, char *err, size_t errlen)
{
	size_t pos = version_len, name, name_len;

	for (;;) {
		pos = abnf_skip_wsp(rec, len, pos);
		if (pos == len)
			return 0;
		if (rec[pos] != ';') {
			errbuf_set(err, errlen,
			    "invalid byte 0x%02x at offset %zu, "
			    "expected ';'",
			    (unsigned char)rec[pos], pos);
			return -1;
		}
		pos = abnf_skip_wsp(rec, len, pos + 1);
		if (pos == len)
			return 0; /* the optional trailing delimiter */
		name = pos;
		if (s_field_name(rec, len, &pos, &name_len, err, errlen) ==
			-1 ||
		    cb(rec, len, name, name_len, &pos, arg, err, errlen) == -1)
			return -1;
	}
}

int
txt_record_value(const char *rec, size_t len, size_t name, size_t name_len,
    size_t *pos, size_t *vlen, char *err, size_t errlen)
{
	size_t p = *pos;

	while (p < len && s_is_value_char((unsigned char)rec[p]))
		p++;
	if (p < len && rec[p] != ';' && !abnf_is_wsp((unsigned char)rec[p])) {
		errbuf_set(err, errlen,
		    "invalid byte 0x%02x at offset %zu in "
		    "field \"%.*s\"",
		    (unsigned char)rec[p], p, (int)name_len, rec + name);
		return -1;
	}
	*vlen = p - *pos;
	*pos = p;
	return 0;
}

int
txt_record_ext_value(const char *rec, size_t len, size_t name, size_t name_len,
    size_t *pos, char *err, size_t errlen)
{
	size_t vlen;

	if (txt_record_value(
		rec, len, name, name_len, pos, &vlen, err, errlen) == -1)
		return -1;
	if (vlen == 0) {
		errbuf_set(err, errlen, "field \"%.*s\" has an empty value",
		    (int)name_len, rec + name);
		return -1;
	}
	return 0;
}
