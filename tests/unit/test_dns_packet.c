/* test_dns_packet.c -- decoding of wire-format DNS answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "dns_packet.h"

struct pkt {
	unsigned char b[2048];
	size_t n;
};

static void
put16(struct pkt *p, unsigned v)
{
	p->b[p->n++] = (unsigned char)(v >> 8);
	p->b[p->n++] = (unsigned char)v;
}

static void
put_name(struct pkt *p, const char *name)
{
	while (*name) {
		size_t l = strcspn(name, ".");
		p->b[p->n++] = (unsigned char)l;
		memcpy(p->b + p->n, name, l);
		p->n += l;
		name += l;
		if (*name == '.')
			name++;
	}
	p->b[p->n++] = 0;
}

/* Header and question; ancount answers follow via put_rr. */
static void
begin(struct pkt *p, int rcode, unsigned ancount, const char *qname,
    unsigned qtype)
{
	p->n = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | (unsigned)rcode);
	put16(p, 1);
	put16(p, ancount);
	put16(p, 0);
	put16(p, 0);
	put_name(p, qname);
	put16(p, qtype);
	put16(p, 1);
}

static void
put_rr(struct pkt *p, const char *name, unsigned type, const void *rdata,
    size_t rdlen)
{
	put_name(p, name);
	put16(p, type);
	put16(p, 1);
	put16(p, 0);
	put16(p, 300);
	put16(p, (unsigned)rdlen);
	memcpy(p->b + p->n, rdata, rdlen);
	p->n += rdlen;
}

static void
test_txt_strings_joined(void **state)
{
	struct pkt p;
	struct dns_answer a;
	const unsigned char rd[] = "\x09v=STSv1; \x07id=2026";

	(void)state;
	begin(&p, 0, 1, "_mta-sts.a.test", DNS_TYPE_TXT);
	put_rr(&p, "_mta-sts.a.test", DNS_TYPE_TXT, rd, sizeof(rd) - 1);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n_txt, 1);
	assert_string_equal(a.txt[0], "v=STSv1; id=2026");
	assert_int_equal(a.txt_len[0], 16);
	dns_answer_clear(&a);
}

static void
test_txt_after_cname(void **state)
{
	struct pkt p;
	struct dns_answer a;
	unsigned char target[64];
	struct pkt t;
	const unsigned char rd[] = "\x07v=STSv1";

	(void)state;
	t.n = 0;
	put_name(&t, "sts.b.test");
	memcpy(target, t.b, t.n);
	begin(&p, 0, 2, "_mta-sts.a.test", DNS_TYPE_TXT);
	put_rr(&p, "_mta-sts.a.test", 5, target, t.n);
	put_rr(&p, "sts.b.test", DNS_TYPE_TXT, rd, sizeof(rd) - 1);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), 0);
	assert_int_equal(a.n_txt, 1);
	assert_string_equal(a.txt[0], "v=STSv1");
	dns_answer_clear(&a);
}

static void
test_mx_decoded_lowercase(void **state)
{
	struct pkt p, t;
	struct dns_answer a;
	unsigned char rd[64];

	(void)state;
	t.n = 0;
	put16(&t, 10);
	put_name(&t, "MX1.A.Test");
	memcpy(rd, t.b, t.n);
	begin(&p, 0, 1, "a.test", DNS_TYPE_MX);
	put_rr(&p, "a.test", DNS_TYPE_MX, rd, t.n);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_MX, &a), 0);
	assert_int_equal(a.n_mx, 1);
	assert_int_equal(a.mx[0].preference, 10);
	assert_string_equal(a.mx[0].host, "mx1.a.test");
	dns_answer_clear(&a);
}

static void
test_null_mx(void **state)
{
	struct pkt p;
	struct dns_answer a;
	const unsigned char rd[] = {0, 0, 0};

	(void)state;
	begin(&p, 0, 1, "a.test", DNS_TYPE_MX);
	put_rr(&p, "a.test", DNS_TYPE_MX, rd, 3);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_MX, &a), 0);
	assert_int_equal(a.n_mx, 1);
	assert_string_equal(a.mx[0].host, "");
	dns_answer_clear(&a);
}

static void
test_addresses(void **state)
{
	struct pkt p;
	struct dns_answer a;
	const unsigned char v4[4] = {127, 0, 9, 1};
	const unsigned char v6[16] = {[15] = 1};

	(void)state;
	begin(&p, 0, 1, "h.test", DNS_TYPE_A);
	put_rr(&p, "h.test", DNS_TYPE_A, v4, 4);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_A, &a), 0);
	assert_string_equal(a.addr[0], "127.0.9.1");
	dns_answer_clear(&a);
	begin(&p, 0, 1, "h.test", DNS_TYPE_AAAA);
	put_rr(&p, "h.test", DNS_TYPE_AAAA, v6, 16);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_AAAA, &a), 0);
	assert_string_equal(a.addr[0], "::1");
	dns_answer_clear(&a);
}

static void
test_status_kinds(void **state)
{
	struct pkt p;
	struct dns_answer a;

	(void)state;
	begin(&p, 3, 0, "x.test", DNS_TYPE_TXT);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	dns_answer_clear(&a);
	begin(&p, 0, 0, "x.test", DNS_TYPE_TXT);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), 0);
	assert_int_equal(a.status, DNS_NODATA);
	dns_answer_clear(&a);
	begin(&p, 2, 0, "x.test", DNS_TYPE_TXT);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), 0);
	assert_int_equal(a.status, DNS_FAIL);
	dns_answer_clear(&a);
}

static void
test_malformed(void **state)
{
	struct pkt p;
	struct dns_answer a;
	const unsigned char bad_txt[] = "\x20short";
	const unsigned char v4[3] = {1, 2, 3};

	(void)state;
	/* A string length past the end of the rdata. */
	begin(&p, 0, 1, "a.test", DNS_TYPE_TXT);
	put_rr(&p, "a.test", DNS_TYPE_TXT, bad_txt, sizeof(bad_txt) - 1);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_TXT, &a), -1);
	assert_int_equal(a.status, DNS_FAIL);
	assert_string_equal(a.why, "malformed DNS record");
	dns_answer_clear(&a);
	/* An A record of three bytes. */
	begin(&p, 0, 1, "a.test", DNS_TYPE_A);
	put_rr(&p, "a.test", DNS_TYPE_A, v4, 3);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_A, &a), -1);
	dns_answer_clear(&a);
	/* Truncated packet. */
	assert_int_equal(dns_answer_parse(p.b, 7, DNS_TYPE_A, &a), -1);
	assert_int_equal(a.status, DNS_FAIL);
	dns_answer_clear(&a);
}

static void
test_record_cap(void **state)
{
	static struct pkt p;
	struct dns_answer a;
	const unsigned char v4[4] = {127, 0, 0, 1};

	(void)state;
	begin(&p, 0, 70, "h.test", DNS_TYPE_A);
	for (int i = 0; i < 70; i++)
		put_rr(&p, "h.test", DNS_TYPE_A, v4, 4);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_A, &a), 0);
	assert_int_equal(a.n_addr, DNS_RECORDS_MAX);
	dns_answer_clear(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_txt_strings_joined),
	    cmocka_unit_test(test_txt_after_cname),
	    cmocka_unit_test(test_mx_decoded_lowercase),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_status_kinds),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_record_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
