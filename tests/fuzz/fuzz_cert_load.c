/* fuzz_cert_load.c -- libFuzzer target for cert_load_any and cert_info_load. */
#include <stddef.h>
#include <stdint.h>

#include "cert_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *sk = cert_load_any(data, size);
	struct cert_info info;
	char why[128];

	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);

		if (cert_info_load(x, &info) == 0)
			cert_info_free(&info);
		/* The other per-certificate readers see the same input. */
		(void)cert_host_match(x, "mx.example.com");
		(void)cert_key_weak(x, why, sizeof(why));
		(void)cert_sig_weak(x, why, sizeof(why));
	}
	sk_X509_pop_free(sk, X509_free);
	return 0;
}
