/* tlsrpt_parse.c -- parser of the _smtp._tls TXT record (RFC 8460 sec. 3). */
#include "tlsrpt_parse.h"

#include "abnf.h"
#include "errbuf.h"
#include "txt_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TLSRPT_VERSION	   "v=TLSRPTv1"
#define TLSRPT_VERSION_LEN (sizeof(TLSRPT_VERSION) - 1)
#define URI_SHOWN_MAX	   80 /* longest URI quoted in a reason */

/*
 * Bytes RFC 3986 allows in a URI, less "," and "!" which RFC 8460 requires
 * to be percent-encoded (they separate URIs in DMARC-style lists), and less
 * ";" which ends the field.
 */
static int
s_is_uri_char(unsigned char c)
{
	if (c < 0x21 || c > 0x7e)
		return 0;
	return strchr("\"<>\\^`{|},!;", c) == NULL;
}

int
tlsrpt_is_tlsrpt(const char *rec, size_t len)
{
	return txt_record_is(rec, len, TLSRPT_VERSION);
}

/* Checks the scheme and the part a report can be sent to. */
static int
s_uri_valid(const char *uri, size_t len, char *err, size_t errlen)
{
	const char *p, *end = uri + len, *at, *host_end;
	int shown = (int)(len > URI_SHOWN_MAX ? URI_SHOWN_MAX : len);

	/* Schemes are case-insensitive (RFC 3986 section 3.1). */
	if (len >= 7 && strncasecmp(uri, "mailto:", 7) == 0) {
		p = uri + 7;
		host_end = memchr(p, '?', (size_t)(end - p));
		if (host_end == NULL)
			host_end = end;
		at = memchr(p, '@', (size_t)(host_end - p));
		if (at == NULL || at == p || at + 1 == host_end) {
			errbuf_set(err, errlen,
			    "rua URI \"%.*s\" is not a mailto: "
			    "with an address",
			    shown, uri);
			return -1;
		}
		return 0;
	}
	if (len >= 6 && strncasecmp(uri, "https:", 6) == 0) {
		p = uri + 6;
		if (end - p < 3 || p[0] != '/' || p[1] != '/') {
			errbuf_set(err, errlen,
			    "rua URI \"%.*s\" has no //host", shown, uri);
			return -1;
		}
		p += 2;
		host_end = p;
		while (host_end < end && *host_end != '/' && *host_end != '?' &&
		       *host_end != '#')
			host_end++;
		/* Skip any userinfo; what follows must name a host. */
		for (const char *q = p; q < host_end; q++) {
			if (*q == '@')
				p = q + 1;
		}
		if (p == host_end || *p == ':') {
			errbuf_set(err, errlen,
			    "rua URI \"%.*s\" has no //host", shown, uri);
			return -1;
		}
		return 0;
	}
	errbuf_set(err, errlen,
	    "rua URI \"%.*s\" is neither mailto: nor https:", shown, uri);
	return -1;
}

/*
 * Reads the URI list of a rua field starting at rec[*pos].  URIs are stored
 * in out only when store is set: the first rua field wins, as a repeated id
 * does in sts_txt.c.
 */
static int
s_parse_rua(const char *rec, size_t len, size_t *pos, int store,
    struct tlsrpt_record *out, size_t *n_seen, char *err, size_t errlen)
{
	size_t p = *pos, start;
	unsigned char c;
	char *copy;

	for (;;) {
		start = p;
		while (p < len && s_is_uri_char((unsigned char)rec[p])) {
			if (rec[p] == '%' &&
			    (len - p < 3 ||
				!abnf_is_hex((unsigned char)rec[p + 1]) ||
				!abnf_is_hex((unsigned char)rec[p + 2]))) {
				errbuf_set(err, errlen,
				    "bad percent-encoding at "
				    "offset %zu in rua",
				    p);
				return -1;
			}
			p++;
		}
		if (p < len) {
			c = (unsigned char)rec[p];
			if (c != ';' && c != ',' && !abnf_is_wsp(c)) {
				errbuf_set(err, errlen,
				    "invalid byte 0x%02x at "
				    "offset %zu in rua",
				    c, p);
				return -1;
			}
		}
		if (p == start) {
			errbuf_set(
			    err, errlen, "empty URI in rua at offset %zu", p);
			return -1;
		}
		if (++*n_seen > TLSRPT_RUA_MAX) {
			errbuf_set(err, errlen, "more than %d rua URIs",
			    TLSRPT_RUA_MAX);
			return -1;
		}
		if (store) {
			copy = strndup(rec + start, p - start);
			if (copy == NULL) {
				errbuf_set(err, errlen, "out of memory");
				return -1;
			}
			out->rua[out->n_rua++] = copy;
		}
		if (s_uri_valid(rec + start, p - start, err, errlen) == -1)
			return -1;

		/* A "," after optional WSP continues the list. */
		*pos = p;
		p = abnf_skip_wsp(rec, len, p);
		if (p == len || rec[p] != ',')
			return 0;
		p = abnf_skip_wsp(rec, len, p + 1);
	}
}

struct tlsrpt_parse {
	struct tlsrpt_record *out;
	int have_rua;
};

static int
s_field(const char *rec, size_t len, size_t name, size_t name_len, size_t *pos,
    void *arg, char *err, size_t errlen)
{
	struct tlsrpt_parse *tp = arg;
	size_t n_seen = 0;
	int rc;

	/* tlsrpt-rua is case-sensitive (%s"rua="): "RUA=" is an extension. */
	if (name_len == 3 && memcmp(rec + name, "rua", 3) == 0) {
		rc = s_parse_rua(rec, len, pos, !tp->have_rua, tp->out, &n_seen,
		    err, errlen);
		tp->have_rua = 1;
		return rc;
	}
	return txt_record_ext_value(rec, len, name, name_len, pos, err, errlen);
}

int
tlsrpt_parse(const char *rec, size_t len, struct tlsrpt_record *out, char *err,
    size_t errlen)
{
	struct tlsrpt_parse tp = {out, 0};

	memset(out, 0, sizeof(*out));
	errbuf_set(err, errlen, "%s", "");
	if (!tlsrpt_is_tlsrpt(rec, len)) {
		errbuf_set(err, errlen,
		    "record does not begin with "
		    "\"v=TLSRPTv1;\"");
		return -1;
	}
	out->rua = calloc(TLSRPT_RUA_MAX, sizeof(*out->rua));
	if (out->rua == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	if (txt_record_fields(
		rec, len, TLSRPT_VERSION_LEN, s_field, &tp, err, errlen) == -1)
		return -1;
	if (!tp.have_rua) {
		errbuf_set(err, errlen, "missing rua field");
		return -1;
	}
	return 0;
}

void
tlsrpt_free(struct tlsrpt_record *rec)
{
	if (rec == NULL)
		return;
	for (size_t i = 0; i < rec->n_rua; i++)
		free(rec->rua[i]);
	free(rec->rua);
	memset(rec, 0, sizeof(*rec));
}
