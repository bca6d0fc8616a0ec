/* dns_packet.c -- decoding of the DNS answers a probe asks for. */
#include "dns_packet.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *
dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_FAIL:
		return "fail";
	}
	return "fail";
}

void
dns_answer_clear(struct dns_answer *ans)
{
	for (size_t i = 0; i < ans->n_txt; i++)
		free(ans->txt[i]);
	free(ans->txt);
	free(ans->txt_len);
	free(ans->mx);
	for (size_t i = 0; i < ans->n_addr; i++)
		free(ans->addr[i]);
	free(ans->addr);
	memset(ans, 0, sizeof(*ans));
}

static void
s_lower_name(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	if (n > 0 && s[n - 1] == '.')
		s[n - 1] = '\0';
}

/* A TXT record is 1..n <length><bytes> strings; RFC 7208 3.3 and RFC 8461
 * 3.1 both join them with nothing in between. */
static int
s_add_txt(struct dns_answer *out, const unsigned char *rd, size_t rdlen)
{
	char *s = malloc(rdlen + 1);
	size_t n = 0, i = 0;

	if (s == NULL)
		return -1;
	while (i < rdlen) {
		size_t l = rd[i++];
		if (l > rdlen - i) {
			free(s);
			return -1;
		}
		memcpy(s + n, rd + i, l);
		n += l;
		i += l;
	}
	s[n] = '\0';
	out->txt[out->n_txt] = s;
	out->txt_len[out->n_txt] = n;
	out->n_txt++;
	return 0;
}

static int
s_add_addr(struct dns_answer *out, int af, const unsigned char *rd)
{
	char buf[INET6_ADDRSTRLEN];

	if (inet_ntop(af, rd, buf, sizeof(buf)) == NULL)
		return -1;
	if ((out->addr[out->n_addr] = strdup(buf)) == NULL)
		return -1;
	out->n_addr++;
	return 0;
}

int
dns_answer_parse(
    const unsigned char *pkt, size_t len, int qtype, struct dns_answer *out)
{
	ns_msg msg;
	ns_rr rr;
	int count;

	memset(out, 0, sizeof(*out));
	out->status = DNS_FAIL;
	if (len > 65535 || ns_initparse(pkt, (int)len, &msg) == -1) {
		snprintf(out->why, sizeof(out->why), "malformed DNS answer");
		return -1;
	}
	out->rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (out->rcode == ns_r_nxdomain) {
		out->status = DNS_NXDOMAIN;
		return 0;
	}
	if (out->rcode != ns_r_noerror) {
		snprintf(out->why, sizeof(out->why), "rcode %d", out->rcode);
		return 0;
	}
	count = ns_msg_count(msg, ns_s_an);
	out->txt = calloc(DNS_RECORDS_MAX, sizeof(*out->txt));
	out->txt_len = calloc(DNS_RECORDS_MAX, sizeof(*out->txt_len));
	out->mx = calloc(DNS_RECORDS_MAX, sizeof(*out->mx));
	out->addr = calloc(DNS_RECORDS_MAX, sizeof(*out->addr));
	if (out->txt == NULL || out->txt_len == NULL || out->mx == NULL ||
	    out->addr == NULL)
		goto fail;
	for (int i = 0; i < count; i++) {
		const unsigned char *rd;
		size_t rdlen;

		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			goto malformed;
		/* Records of other types (the CNAME chain, RRSIGs) are the
		 * resolver's business; the names were followed by it. */
		if ((int)ns_rr_type(rr) != qtype || ns_rr_class(rr) != ns_c_in)
			continue;
		rd = ns_rr_rdata(rr);
		rdlen = ns_rr_rdlen(rr);
		if (out->n_txt + out->n_mx + out->n_addr >= DNS_RECORDS_MAX)
			break;
		switch (qtype) {
		case DNS_TYPE_TXT:
			if (s_add_txt(out, rd, rdlen) == -1)
				goto malformed;
			break;
		case DNS_TYPE_A:
			if (rdlen != 4 || s_add_addr(out, AF_INET, rd) == -1)
				goto malformed;
			break;
		case DNS_TYPE_AAAA:
			if (rdlen != 16 || s_add_addr(out, AF_INET6, rd) == -1)
				goto malformed;
			break;
		case DNS_TYPE_MX: {
			struct dns_mx *mx = &out->mx[out->n_mx];
			if (rdlen < 3)
				goto malformed;
			mx->preference = ns_get16(rd);
			if (ns_name_uncompress(ns_msg_base(msg),
				ns_msg_end(msg), rd + 2, mx->host,
				sizeof(mx->host)) == -1)
				goto malformed;
			s_lower_name(mx->host);
			out->n_mx++;
			break;
		}
		default:
			break;
		}
	}
	out->status =
	    (out->n_txt + out->n_mx + out->n_addr) ? DNS_OK : DNS_NODATA;
	return 0;
malformed:
	dns_answer_clear(out);
	snprintf(out->why, sizeof(out->why), "malformed DNS record");
	out->status = DNS_FAIL;
	return -1;
fail:
	dns_answer_clear(out);
	snprintf(out->why, sizeof(out->why), "out of memory");
	out->status = DNS_FAIL;
	return -1;
}
