/* txt_record.h -- the "v=VERSION; name=value; ..." grammar that the
 * _mta-sts (RFC 8461 3.1) and _smtp._tls (RFC 8460 3) records share. */
#ifndef MTASTS_TXT_RECORD_H
#define MTASTS_TXT_RECORD_H

#include <stddef.h>

#define TXT_RECORD_NAME_MAX 32 /* ALPHA/DIGIT then *31 name characters */

/*
 * 1 when rec begins with version (e.g. "v=STSv1") followed by optional WSP
 * and then ';' or the end of the record.  rec need not be NUL-terminated.
 */
int txt_record_is(const char *rec, size_t len, const char *version);

/*
 * Called for each field with the name at rec[name..name+name_len) and *pos
 * just past its '='.  It reads the value, sets *pos past it, and returns 0,
 * or -1 with the reason in err.
 */
typedef int (*txt_record_field_cb)(const char *rec, size_t len, size_t name,
    size_t name_len, size_t *pos, void *arg, char *err, size_t errlen);

/*
 * Walks the fields of a record that txt_record_is() accepted: field
 * delimiters are *WSP ";" *WSP, a trailing one is allowed, and each field
 * name is (ALPHA / DIGIT) followed by name characters and '='.  Returns 0,
 * or -1 with the first reason in err.
 */
int txt_record_fields(const char *rec, size_t len, size_t version_len,
    txt_record_field_cb cb, void *arg, char *err, size_t errlen);

/*
 * Reads an extension value (%x21-3A / %x3C / %x3E-7E) at *pos, which must
 * end at ';', WSP or the end of the record; sets *pos past it and *vlen to
 * its length (possibly 0).  -1 with the reason in err on any other byte.
 */
int txt_record_value(const char *rec, size_t len, size_t name, size_t name_len,
    size_t *pos, size_t *vlen, char *err, size_t errlen);

/* The same, refusing an empty value. */
int txt_record_ext_value(const char *rec, size_t len, size_t name,
    size_t name_len, size_t *pos, char *err, size_t errlen);

#endif
