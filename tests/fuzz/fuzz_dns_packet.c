/* fuzz_dns_packet.c -- libFuzzer target for DNS answer decoding. */
#include <stddef.h>
#include <stdint.h>

#include "dns_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = {
	    DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX, DNS_TYPE_TXT};
	struct dns_answer a;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		(void)dns_answer_parse(data, size, types[i], &a);
		dns_answer_clear(&a);
	}
	return 0;
}
