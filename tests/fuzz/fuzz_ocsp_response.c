/* fuzz_ocsp_response.c -- libFuzzer target for ocsp_check_response. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../lib/testcert.h"
#include "ocsp_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Made once: key generation would dwarf the parsing being fuzzed. */
static X509 *issuer, *leaf;
static X509_STORE *store;

static void
s_init(void)
{
	time_t now = time(NULL);
	EVP_PKEY *k_ca = tc_key_ec("P-256"), *k_leaf = tc_key_ec("P-256");
	struct tc_opts o = {.cn = "Fuzz CA",
	    .key = k_ca,
	    .ca = 1,
	    .not_before = now - 86400,
	    .not_after = now + 86400 * 365};

	if (k_ca == NULL || k_leaf == NULL)
		abort();
	issuer = tc_cert(&o);
	o.cn = "mx.example.com";
	o.key = k_leaf;
	o.issuer = issuer;
	o.issuer_key = k_ca;
	o.ca = 0;
	leaf = tc_cert(&o);
	store = X509_STORE_new();
	if (issuer == NULL || leaf == NULL || store == NULL ||
	    X509_STORE_add_cert(store, issuer) != 1)
		abort();
	EVP_PKEY_free(k_ca);
	EVP_PKEY_free(k_leaf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ocsp_result r = {0};

	if (store == NULL)
		s_init();
	(void)ocsp_check_response(
	    data, size, leaf, issuer, NULL, store, time(NULL), &r);
	return 0;
}
