/* dns_packet.h -- decoding of the DNS answers a probe asks for. */
#ifndef MTASTS_DNS_PACKET_H
#define MTASTS_DNS_PACKET_H

#include <stddef.h>

#define DNS_TYPE_A    1
#define DNS_TYPE_MX   15
#define DNS_TYPE_TXT  16
#define DNS_TYPE_AAAA 28

#define DNS_RECORDS_MAX 64 /* further records of a type are ignored */

enum dns_status {
	DNS_OK,	      /* records of the asked type are in *answer */
	DNS_NODATA,   /* the name exists, no record of that type */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_FAIL      /* SERVFAIL, REFUSED, timeout, malformed answer */
};

struct dns_mx {
	char host[256]; /* lower-case, no trailing dot; "" for a null MX */
	int preference;
};

struct dns_answer {
	enum dns_status status;
	int rcode;
	char why[128]; /* for DNS_FAIL: what went wrong */
	/* TXT: each record's strings joined without separators. */
	char **txt;
	size_t *txt_len;
	size_t n_txt;
	struct dns_mx *mx;
	size_t n_mx;
	char **addr; /* A/AAAA as text */
	size_t n_addr;
};

/*
 * Decodes a wire-format answer to a query of qtype into out, following the
 * CNAME chain the resolver included.  Never reads beyond len.  Calls
 * malloc: release with dns_answer_clear().  Returns 0, or -1 when the
 * packet is malformed (out->status is then DNS_FAIL).
 */
int dns_answer_parse(
    const unsigned char *pkt, size_t len, int qtype, struct dns_answer *out);
void dns_answer_clear(struct dns_answer *ans);
const char *dns_status_name(enum dns_status status);

#endif
