/* test_cert_check.c -- cert_check against certificates built at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "../lib/testcert.h"
#include "cert_check.h"

#define DAY  86400L
#define HOST "mx.example.com"

/* Keys and a small PKI made once: key generation dominates run time. */
static struct {
	time_t now;
	EVP_PKEY *k_root, *k_inter, *k_leaf, *k_other;
	EVP_PKEY *k_urooot, *k_uinter;
	EVP_PKEY *k_rsa1024, *k_rsa2048, *k_ec224, *k_ed25519;
	X509 *root, *inter, *leaf;
	X509 *uroot, *uinter, *uleaf;
	X509_STORE *store;
} fx;

static X509 *
mk(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    int ca, time_t nb, time_t na)
{
	struct tc_opts o = {.cn = cn,
	    .san = san,
	    .key = key,
	    .issuer = issuer,
	    .issuer_key = ikey,
	    .ca = ca,
	    .not_before = nb,
	    .not_after = na};
	X509 *x = tc_cert(&o);

	assert_non_null(x);
	return x;
}

/* A leaf for HOST under fx.inter, valid from nb to na. */
static X509 *
mk_leaf(time_t nb, time_t na)
{
	return mk(
	    HOST, "DNS:" HOST, fx.k_leaf, fx.inter, fx.k_inter, 0, nb, na);
}

static int
setup(void **state)
{
	time_t now = time(NULL);

	(void)state;
	fx.now = now;
	fx.k_root = tc_key_ec("P-256");
	fx.k_inter = tc_key_ec("P-256");
	fx.k_leaf = tc_key_ec("P-256");
	fx.k_other = tc_key_ec("P-256");
	fx.k_urooot = tc_key_ec("P-256");
	fx.k_uinter = tc_key_ec("P-256");
	fx.k_rsa1024 = tc_key_rsa(1024);
	fx.k_rsa2048 = tc_key_rsa(2048);
	fx.k_ec224 = tc_key_ec("P-224");
	fx.k_ed25519 = tc_key_ed25519();
	if (!fx.k_root || !fx.k_inter || !fx.k_leaf || !fx.k_other ||
	    !fx.k_urooot || !fx.k_uinter || !fx.k_rsa1024 || !fx.k_rsa2048 ||
	    !fx.k_ec224 || !fx.k_ed25519)
		return -1;
	fx.root = mk("Test Root", NULL, fx.k_root, NULL, NULL, 1,
	    now - 365 * DAY, now + 3650 * DAY);
	fx.inter = mk("Test Intermediate", NULL, fx.k_inter, fx.root, fx.k_root,
	    1, now - 365 * DAY, now + 1825 * DAY);
	fx.leaf = mk(HOST, "DNS:" HOST ",DNS:*.mx.example.net", fx.k_leaf,
	    fx.inter, fx.k_inter, 0, now - 10 * DAY, now + 80 * DAY);
	fx.uroot = mk("Unknown Root", NULL, fx.k_urooot, NULL, NULL, 1,
	    now - 365 * DAY, now + 3650 * DAY);
	fx.uinter = mk("Unknown Intermediate", NULL, fx.k_uinter, fx.uroot,
	    fx.k_urooot, 1, now - 365 * DAY, now + 1825 * DAY);
	fx.uleaf = mk(HOST, "DNS:" HOST, fx.k_leaf, fx.uinter, fx.k_uinter, 0,
	    now - 10 * DAY, now + 80 * DAY);
	fx.store = X509_STORE_new();
	if (fx.store == NULL || X509_STORE_add_cert(fx.store, fx.root) != 1)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	X509_STORE_free(fx.store);
	X509_free(fx.root);
	X509_free(fx.inter);
	X509_free(fx.leaf);
	X509_free(fx.uroot);
	X509_free(fx.uinter);
	X509_free(fx.uleaf);
	EVP_PKEY_free(fx.k_root);
	EVP_PKEY_free(fx.k_inter);
	EVP_PKEY_free(fx.k_leaf);
	EVP_PKEY_free(fx.k_other);
	EVP_PKEY_free(fx.k_urooot);
	EVP_PKEY_free(fx.k_uinter);
	EVP_PKEY_free(fx.k_rsa1024);
	EVP_PKEY_free(fx.k_rsa2048);
	EVP_PKEY_free(fx.k_ec224);
	EVP_PKEY_free(fx.k_ed25519);
	return 0;
}

static size_t
count_code(const struct finding_list *l, enum finding_code code)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].code == code)
			n++;
	return n;
}

static const struct finding *
get_code(const struct finding_list *l, enum finding_code code)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].code == code)
			return &l->v[i];
	return NULL;
}

static void
test_name_match_table(void **state)
{
	static const struct {
		const char *pat, *host;
		int want;
	} t[] = {
	    {"mx.example.com", "mx.example.com", 1},
	    {"MX.Example.COM", "mx.example.com", 1},
	    {"mx.example.com", "MX.EXAMPLE.COM", 1},
	    {"mx.example.com.", "mx.example.com", 1},
	    {"mx.example.com", "mx.example.com.", 1},
	    {"mx.example.com.", "mx.example.com.", 1},
	    {"mx.example.com", "mx2.example.com", 0},
	    {"mx.example.com", "example.com", 0},
	    {"example.com", "mx.example.com", 0},
	    {"*.example.com", "mx.example.com", 1},
	    {"*.EXAMPLE.com", "Mx.example.COM.", 1},
	    {"*.example.com", "example.com", 0},
	    {"*.example.com", "a.b.example.com", 0},
	    {"*.example.com", ".example.com", 0},
	    {"*.example.com", "mx.example.org", 0},
	    {"*.com", "example.com", 0},
	    {"*.com", "com", 0},
	    {"*.com.", "example.com", 0},
	    {"*", "example", 0},
	    {"f*.example.com", "foo.example.com", 0},
	    {"f*.example.com", "f.example.com", 0},
	    {"f*.example.com", "f*.example.com", 1},
	    {"*mx.example.com", "mx.example.com", 0},
	    {"mx.*.example.com", "mx.a.example.com", 0},
	    {"*.*.example.com", "a.b.example.com", 0},
	    {"xn--bcher-kva.example", "xn--bcher-kva.example", 1},
	    {"XN--BCHER-KVA.example", "xn--bcher-kva.example", 1},
	    {"*.xn--bcher-kva.example", "mx.xn--bcher-kva.example", 1},
	    {"xn--bcher-kva.example", "bücher.example", 0},
	    {"", "", 0},
	    {".", ".", 0},
	    {"mx..example.com", "mx..example.com", 0},
	    {"mx.example.com..", "mx.example.com.", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int got = cert_name_match(t[i].pat, t[i].host);

		if (got != t[i].want)
			fail_msg(
			    "cert_name_match(\"%s\", \"%s\") = %d, want %d",
			    t[i].pat, t[i].host, got, t[i].want);
	}
	assert_int_equal(cert_name_match(NULL, "a.b"), 0);
	assert_int_equal(cert_name_match("a.b", NULL), 0);
}

static void
test_host_match_cn_fallback(void **state)
{
	time_t now = fx.now;
	X509 *cn_only, *cn_and_san, *cn_ip_san, *wild;

	(void)state;
	cn_only =
	    mk(HOST, NULL, fx.k_leaf, fx.inter, fx.k_inter, 0, now, now + DAY);
	cn_and_san = mk(HOST, "DNS:other.example.com", fx.k_leaf, fx.inter,
	    fx.k_inter, 0, now, now + DAY);
	cn_ip_san = mk(HOST, "IP:192.0.2.1", fx.k_leaf, fx.inter, fx.k_inter, 0,
	    now, now + DAY);
	wild = mk("other.example.org", "DNS:a.example.org,DNS:*.example.com",
	    fx.k_leaf, fx.inter, fx.k_inter, 0, now, now + DAY);

	assert_int_equal(cert_host_match(cn_only, HOST), 1);
	assert_int_equal(cert_host_match(cn_only, "MX.example.com."), 1);
	assert_int_equal(cert_host_match(cn_only, "mx2.example.com"), 0);
	/* A dNSName SAN silences the CN. */
	assert_int_equal(cert_host_match(cn_and_san, HOST), 0);
	assert_int_equal(cert_host_match(cn_and_san, "other.example.com"), 1);
	/* Only dNSName entries count as "having a SAN". */
	assert_int_equal(cert_host_match(cn_ip_san, HOST), 1);
	assert_int_equal(cert_host_match(wild, "mx.example.com"), 1);
	assert_int_equal(cert_host_match(wild, "a.example.org"), 1);
	assert_int_equal(cert_host_match(wild, "other.example.org"), 0);
	assert_int_equal(cert_host_match(wild, "example.com"), 0);
	assert_int_equal(cert_host_match(NULL, HOST), 0);

	X509_free(cn_only);
	X509_free(cn_and_san);
	X509_free(cn_ip_san);
	X509_free(wild);
}

static void
test_days_left(void **state)
{
	time_t now = 1700000000;

	(void)state;
	assert_int_equal(cert_days_left(now, now), 0);
	assert_int_equal(cert_days_left(now + 1, now), 0);
	assert_int_equal(cert_days_left(now + DAY - 1, now), 0);
	assert_int_equal(cert_days_left(now + DAY, now), 1);
	assert_int_equal(cert_days_left(now + 10 * DAY + 5, now), 10);
	assert_int_equal(cert_days_left(now - 1, now), -1);
	assert_int_equal(cert_days_left(now - DAY + 1, now), -1);
	assert_int_equal(cert_days_left(now - DAY, now), -1);
	assert_int_equal(cert_days_left(now - DAY - 1, now), -2);
	assert_int_equal(cert_days_left(now - 3 * DAY, now), -3);
	assert_int_equal(cert_days_left(now - 3 * DAY - 7, now), -4);
	assert_int_equal(cert_days_left(0, now), -(1700000000L / DAY) - 1);
}

static void
test_key_weak(void **state)
{
	time_t now = fx.now;
	char why[128];
	X509 *rsa1024, *rsa2048, *ec224, *ed;

	(void)state;
	rsa1024 = mk(
	    HOST, NULL, fx.k_rsa1024, fx.inter, fx.k_inter, 0, now, now + DAY);
	rsa2048 = mk(
	    HOST, NULL, fx.k_rsa2048, fx.inter, fx.k_inter, 0, now, now + DAY);
	ec224 =
	    mk(HOST, NULL, fx.k_ec224, fx.inter, fx.k_inter, 0, now, now + DAY);
	ed = mk(
	    HOST, NULL, fx.k_ed25519, fx.inter, fx.k_inter, 0, now, now + DAY);

	assert_int_equal(cert_key_weak(rsa1024, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "RSA key of 1024 bits"));
	assert_int_equal(cert_key_weak(ec224, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "EC key of 224 bits"));
	assert_int_equal(cert_key_weak(rsa2048, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(cert_key_weak(fx.leaf, why, sizeof(why)), 0);
	assert_int_equal(cert_key_weak(ed, why, sizeof(why)), 0);
	/* why is optional. */
	assert_int_equal(cert_key_weak(rsa1024, NULL, 0), 1);

	X509_free(rsa1024);
	X509_free(rsa2048);
	X509_free(ec224);
	X509_free(ed);
}

static X509 *
mk_md(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, int ca,
    const EVP_MD *md)
{
	struct tc_opts o = {.cn = cn,
	    .key = key,
	    .issuer = issuer,
	    .issuer_key = ikey,
	    .ca = ca,
	    .md = md,
	    .not_before = fx.now - DAY,
	    .not_after = fx.now + 100 * DAY};
	X509 *x = tc_cert(&o);

	assert_non_null(x);
	return x;
}

static void
test_sig_weak(void **state)
{
	char why[128];
	X509 *sha1_leaf, *md5_leaf, *sha1_root, *rsa_leaf, *sha1_rsa_leaf;

	(void)state;
	sha1_leaf = mk_md(HOST, fx.k_leaf, fx.inter, fx.k_inter, 0, EVP_sha1());
	md5_leaf =
	    mk_md(HOST, fx.k_rsa2048, fx.root, fx.k_rsa2048, 0, EVP_md5());
	sha1_root = mk_md("SHA1 Root", fx.k_rsa2048, NULL, NULL, 1, EVP_sha1());
	rsa_leaf =
	    mk_md(HOST, fx.k_leaf, sha1_root, fx.k_rsa2048, 0, EVP_sha256());
	sha1_rsa_leaf =
	    mk_md(HOST, fx.k_leaf, sha1_root, fx.k_rsa2048, 0, EVP_sha1());

	assert_int_equal(cert_sig_weak(sha1_leaf, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "ecdsa-with-SHA1"));
	assert_int_equal(cert_sig_weak(sha1_rsa_leaf, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "sha1WithRSAEncryption"));
	assert_int_equal(cert_sig_weak(md5_leaf, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "md5WithRSAEncryption"));
	/* Nobody checks a root's own signature. */
	assert_int_equal(cert_sig_weak(sha1_root, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(cert_sig_weak(rsa_leaf, why, sizeof(why)), 0);
	assert_int_equal(cert_sig_weak(fx.leaf, why, sizeof(why)), 0);

	X509_free(sha1_leaf);
	X509_free(md5_leaf);
	X509_free(sha1_root);
	X509_free(rsa_leaf);
	X509_free(sha1_rsa_leaf);
}

static void
test_info_load(void **state)
{
	struct tc_opts o = {.cn = HOST,
	    .san = "DNS:" HOST ",IP:192.0.2.7,DNS:*.mx.example.net",
	    .aia = "OCSP;URI:http://ocsp.example.net/,"
		   "caIssuers;URI:http://ca.example.net/i.der",
	    .key = fx.k_rsa2048,
	    .issuer = fx.inter,
	    .issuer_key = fx.k_inter,
	    .serial = 0x1234abcdL,
	    .not_before = 1700000000,
	    .not_after = 1700000000 + 90 * DAY};
	struct cert_info info, rinfo;
	unsigned char *der = NULL, md[32];
	char hex[65];
	unsigned int mdlen;
	int derlen;
	X509 *x;

	(void)state;
	x = tc_cert(&o);
	assert_non_null(x);
	assert_int_equal(cert_info_load(x, &info), 0);

	/* The fingerprint is of the DER, computed here independently. */
	derlen = i2d_X509(x, &der);
	assert_true(derlen > 0);
	assert_int_equal(
	    EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
	assert_string_equal(info.sha256, hex);
	assert_int_equal(strlen(info.spki_sha256), 64);
	assert_string_not_equal(info.spki_sha256, info.sha256);

	assert_string_equal(info.subject, "CN=" HOST);
	assert_string_equal(info.issuer, "CN=Test Intermediate");
	assert_string_equal(info.serial, "1234ABCD");
	assert_int_equal(info.not_before, 1700000000);
	assert_int_equal(info.not_after, 1700000000 + 90 * DAY);
	assert_int_equal(info.n_san, 2);
	assert_string_equal(info.san[0], HOST);
	assert_string_equal(info.san[1], "*.mx.example.net");
	assert_string_equal(info.key_type, "RSA");
	assert_int_equal(info.key_bits, 2048);
	assert_string_equal(info.sig_alg, "ecdsa-with-SHA256");
	assert_int_equal(info.self_signed, 0);
	assert_non_null(info.ocsp_url);
	assert_string_equal(info.ocsp_url, "http://ocsp.example.net/");
	assert_non_null(info.ca_issuers_url);
	assert_string_equal(info.ca_issuers_url, "http://ca.example.net/i.der");
	cert_info_free(&info);
	assert_null(info.subject);
	assert_null(info.san);
	cert_info_free(&info); /* idempotent */

	assert_int_equal(cert_info_load(fx.root, &rinfo), 0);
	assert_int_equal(rinfo.self_signed, 1);
	assert_string_equal(rinfo.key_type, "EC");
	assert_int_equal(rinfo.key_bits, 256);
	assert_null(rinfo.ocsp_url);
	assert_int_equal(rinfo.n_san, 0);
	cert_info_free(&rinfo);
	X509_free(x);

	/* An RSA-signed certificate names its algorithm the OpenSSL way. */
	o.key = fx.k_leaf;
	o.issuer = NULL;
	o.issuer_key = fx.k_rsa2048;
	o.aia = NULL;
	x = tc_cert(&o);
	assert_non_null(x);
	assert_int_equal(cert_info_load(x, &info), 0);
	assert_string_equal(info.sig_alg, "sha256WithRSAEncryption");
	assert_string_equal(info.key_type, "EC");
	/* Issuer name equals subject but the EC key did not sign it. */
	assert_int_equal(info.self_signed, 0);
	cert_info_free(&info);
	X509_free(x);
}

static void
test_info_san_nul_and_cap(void **state)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	struct tc_opts o = {.cn = HOST,
	    .key = fx.k_leaf,
	    .issuer = fx.inter,
	    .issuer_key = fx.k_inter,
	    .not_before = fx.now,
	    .not_after = fx.now + DAY};
	static const char *const names[] = {
	    "good.example.com", "evil.example.com\0.mx.example.com", HOST};
	static const int lens[] = {16, 33, (int)sizeof(HOST) - 1};
	struct cert_info info;
	char *san, *p;
	X509 *x;

	(void)state;
	assert_non_null(gens);
	for (int i = 0; i < 3; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();

		assert_non_null(g);
		assert_non_null(s);
		assert_int_equal(ASN1_STRING_set(s, names[i], lens[i]), 1);
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
	}
	o.gens = gens;
	x = tc_cert(&o);
	GENERAL_NAMES_free(gens);
	assert_non_null(x);
	assert_int_equal(cert_info_load(x, &info), 0);
	assert_int_equal(info.n_san, 2);
	assert_string_equal(info.san[0], "good.example.com");
	assert_string_equal(info.san[1], HOST);
	cert_info_free(&info);
	/* The NUL entry must not match what follows the NUL either. */
	assert_int_equal(cert_host_match(x, "evil.example.com"), 0);
	assert_int_equal(cert_host_match(x, HOST), 1);
	X509_free(x);

	/* 1005 names: only the first 1000 are kept. */
	san = malloc(1005 * 24);
	assert_non_null(san);
	p = san;
	for (int i = 0; i < 1005; i++)
		p += sprintf(p, "%sDNS:h%d.example.com", i ? "," : "", i);
	o.gens = NULL;
	o.san = san;
	x = tc_cert(&o);
	free(san);
	assert_non_null(x);
	assert_int_equal(cert_info_load(x, &info), 0);
	assert_int_equal(info.n_san, 1000);
	assert_string_equal(info.san[999], "h999.example.com");
	cert_info_free(&info);
	X509_free(x);
}

static void
verify(STACK_OF(X509) * sent, STACK_OF(X509) * extra, struct chain_verdict *v)
{
	assert_int_equal(cert_chain_verify(fx.store, sent, extra, v), 0);
}

static void
test_chain_trusted(void **state)
{
	struct chain_verdict v;
	STACK_OF(X509) *full = tc_stack(fx.leaf, fx.inter, fx.root, NULL);
	STACK_OF(X509) *two = tc_stack(fx.leaf, fx.inter, NULL, NULL);

	(void)state;
	verify(full, NULL, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	assert_int_equal(v.verify_error, 0);
	verify(two, NULL, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	tc_stack_free(full);
	tc_stack_free(two);
}

static void
test_chain_issuer_missing_then_extra(void **state)
{
	struct chain_verdict v;
	STACK_OF(X509) *sent = tc_stack(fx.leaf, NULL, NULL, NULL);
	STACK_OF(X509) *extra = tc_stack(fx.inter, NULL, NULL, NULL);

	(void)state;
	verify(sent, NULL, &v);
	assert_int_equal(v.status, CHAIN_ISSUER_MISSING);
	assert_int_equal(
	    v.verify_error, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_non_null(strstr(v.detail, "CN=Test Intermediate"));
	verify(sent, extra, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	assert_int_equal(v.verify_error, 0);
	tc_stack_free(sent);
	tc_stack_free(extra);
}

static void
test_chain_self_signed_leaf(void **state)
{
	struct chain_verdict v;
	X509 *self = mk(HOST, "DNS:" HOST, fx.k_leaf, NULL, NULL, 0,
	    fx.now - DAY, fx.now + DAY);
	STACK_OF(X509) *sent = tc_stack(self, NULL, NULL, NULL);

	(void)state;
	verify(sent, NULL, &v);
	assert_int_equal(v.status, CHAIN_UNTRUSTED);
	assert_int_equal(
	    v.verify_error, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
	assert_non_null(strstr(v.detail, "self-signed"));
	assert_non_null(strstr(v.detail, "CN=" HOST));
	tc_stack_free(sent);
	X509_free(self);
}

static void
test_chain_unknown_root(void **state)
{
	struct chain_verdict v;
	STACK_OF(X509) *nosent = tc_stack(fx.uleaf, fx.uinter, NULL, NULL);
	STACK_OF(X509) *sent = tc_stack(fx.uleaf, fx.uinter, fx.uroot, NULL);

	(void)state;
	verify(nosent, NULL, &v);
	assert_int_equal(v.status, CHAIN_ISSUER_MISSING);
	assert_non_null(strstr(v.detail, "CN=Unknown Root"));
	verify(sent, NULL, &v);
	assert_int_equal(v.status, CHAIN_UNTRUSTED);
	assert_int_equal(v.verify_error, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
	assert_non_null(strstr(v.detail, "CN=Unknown Root"));
	tc_stack_free(nosent);
	tc_stack_free(sent);
}

static void
test_chain_bad_signature_and_purpose(void **state)
{
	struct chain_verdict v;
	struct tc_opts o = {.cn = HOST,
	    .san = "DNS:" HOST,
	    .eku = "clientAuth",
	    .key = fx.k_leaf,
	    .issuer = fx.inter,
	    .issuer_key = fx.k_inter,
	    .not_before = fx.now - DAY,
	    .not_after = fx.now + DAY};
	/* Names fx.inter as issuer but is signed by a stranger's key. */
	X509 *forged = mk(HOST, "DNS:" HOST, fx.k_leaf, fx.inter, fx.k_other, 0,
	    fx.now - DAY, fx.now + DAY);
	X509 *client = tc_cert(&o);
	STACK_OF(X509) *a = tc_stack(forged, fx.inter, NULL, NULL);
	STACK_OF(X509) *b = tc_stack(client, fx.inter, NULL, NULL);

	(void)state;
	assert_non_null(client);
	verify(a, NULL, &v);
	assert_int_equal(v.status, CHAIN_UNTRUSTED);
	assert_int_equal(v.verify_error, X509_V_ERR_CERT_SIGNATURE_FAILURE);
	verify(b, NULL, &v);
	assert_int_equal(v.status, CHAIN_UNTRUSTED);
	assert_int_equal(v.verify_error, X509_V_ERR_INVALID_PURPOSE);
	tc_stack_free(a);
	tc_stack_free(b);
	X509_free(forged);
	X509_free(client);
}

static void
test_chain_ignores_time_and_strength(void **state)
{
	struct chain_verdict v;
	X509 *expired = mk_leaf(fx.now - 100 * DAY, fx.now - 3 * DAY);
	X509 *weak = mk(HOST, "DNS:" HOST, fx.k_rsa1024, fx.inter, fx.k_inter,
	    0, fx.now - DAY, fx.now + DAY);
	X509 *sha1 =
	    mk_md(HOST, fx.k_leaf, fx.inter, fx.k_inter, 0, EVP_sha1());
	STACK_OF(X509) *a = tc_stack(expired, fx.inter, NULL, NULL);
	STACK_OF(X509) *b = tc_stack(weak, fx.inter, NULL, NULL);
	STACK_OF(X509) *c = tc_stack(sha1, fx.inter, NULL, NULL);
	struct finding_list list = {0};
	X509_STORE *strict;

	(void)state;
	verify(a, NULL, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	verify(b, NULL, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	verify(c, NULL, &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);

	/* Even a store asking for security level 2 leaves strength to us. */
	strict = X509_STORE_new();
	assert_non_null(strict);
	assert_int_equal(X509_STORE_add_cert(strict, fx.root), 1);
	X509_VERIFY_PARAM_set_auth_level(X509_STORE_get0_param(strict), 2);
	assert_int_equal(cert_chain_verify(strict, b, NULL, &v), 0);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	assert_int_equal(cert_chain_verify(strict, c, NULL, &v), 0);
	assert_int_equal(v.status, CHAIN_TRUSTED);
	X509_STORE_free(strict);

	/* The date is judged by the findings instead. */
	assert_int_equal(cert_check_findings(
			     &list, ROLE_MX, HOST, a, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 1);
	assert_int_equal(list.v[0].code, F_CERT_EXPIRED);
	assert_string_equal(list.v[0].subject, HOST);
	assert_int_equal(list.v[0].role, ROLE_MX);
	assert_non_null(strstr(list.v[0].detail, "expired 3 days ago"));
	assert_non_null(strstr(list.v[0].detail, "CN=" HOST));
	finding_list_clear(&list);

	tc_stack_free(a);
	tc_stack_free(b);
	tc_stack_free(c);
	X509_free(expired);
	X509_free(weak);
	X509_free(sha1);
}

static void
test_chain_bad_args(void **state)
{
	struct chain_verdict v;
	STACK_OF(X509) *empty = sk_X509_new_null();

	(void)state;
	assert_int_equal(cert_chain_verify(fx.store, empty, NULL, &v), -1);
	assert_int_equal(cert_chain_verify(fx.store, NULL, NULL, &v), -1);
	sk_X509_free(empty);
}

/* Findings for a leaf valid until now + days (+ extra seconds). */
static void
expiring_case(long days, long extra, int want, enum severity sev)
{
	struct finding_list list = {0};
	X509 *leaf = mk_leaf(fx.now - 60 * DAY, fx.now + days * DAY + extra);
	STACK_OF(X509) *sent = tc_stack(leaf, fx.inter, NULL, NULL);
	const struct finding *f;
	char want_detail[64];

	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(count_code(&list, F_CERT_EXPIRING), want);
	assert_int_equal(list.n, (size_t)want);
	if (want) {
		f = get_code(&list, F_CERT_EXPIRING);
		assert_int_equal(f->severity, sev);
		snprintf(want_detail, sizeof(want_detail), "expires in %ld day",
		    days);
		assert_non_null(strstr(f->detail, want_detail));
		assert_non_null(strstr(f->detail, "notAfter 20"));
	}
	finding_list_clear(&list);
	tc_stack_free(sent);
	X509_free(leaf);
}

static void
test_findings_expiring(void **state)
{
	(void)state;
	expiring_case(10, 0, 1, SEV_WARNING);
	expiring_case(3, 0, 1, SEV_ERROR);
	expiring_case(30, 0, 1, SEV_WARNING);
	expiring_case(30, DAY - 1, 1, SEV_WARNING);
	expiring_case(31, 0, 0, SEV_INFO);
	expiring_case(8, 0, 1, SEV_WARNING);
	expiring_case(7, DAY - 1, 1, SEV_ERROR);
	expiring_case(0, 60, 1, SEV_ERROR);
	expiring_case(80, 0, 0, SEV_INFO);
}

static void
test_findings_expiring_soonest(void **state)
{
	struct finding_list list = {0};
	X509 *leaf = mk_leaf(fx.now - 60 * DAY, fx.now + 20 * DAY);
	X509 *inter = mk("Test Intermediate", NULL, fx.k_inter, fx.root,
	    fx.k_root, 1, fx.now - 900 * DAY, fx.now + 3 * DAY + 10);
	STACK_OF(X509) *sent = tc_stack(leaf, inter, NULL, NULL);
	const struct finding *f;

	(void)state;
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 1);
	f = get_code(&list, F_CERT_EXPIRING);
	assert_non_null(f);
	assert_int_equal(f->severity, SEV_ERROR);
	assert_non_null(strstr(f->detail, "CN=Test Intermediate"));
	assert_non_null(strstr(f->detail, "expires in 3 days"));
	finding_list_clear(&list);
	tc_stack_free(sent);
	X509_free(leaf);
	X509_free(inter);
}

static void
test_findings_dates(void **state)
{
	struct finding_list list = {0};
	X509 *future = mk_leaf(fx.now + 2 * DAY, fx.now + 90 * DAY);
	X509 *old_root = mk("Old Root", NULL, fx.k_other, NULL, NULL, 1,
	    fx.now - 900 * DAY, fx.now - 5 * DAY);
	X509 *exp_inter = mk("Test Intermediate", NULL, fx.k_inter, fx.root,
	    fx.k_root, 1, fx.now - 900 * DAY, fx.now - 1 * DAY);
	X509 *just = mk_leaf(fx.now - 90 * DAY, fx.now - 60);
	STACK_OF(X509) *a = tc_stack(future, fx.inter, NULL, NULL);
	STACK_OF(X509) *b = tc_stack(fx.leaf, fx.inter, old_root, NULL);
	STACK_OF(X509) *c = tc_stack(fx.leaf, exp_inter, fx.root, NULL);
	STACK_OF(X509) *d = tc_stack(just, fx.inter, NULL, NULL);
	X509 *self = mk(HOST, "DNS:" HOST, fx.k_leaf, NULL, NULL, 0,
	    fx.now - 400 * DAY, fx.now - 10 * DAY);
	STACK_OF(X509) *e = tc_stack(self, NULL, NULL, NULL);
	const struct finding *f;

	(void)state;
	assert_int_equal(cert_check_findings(&list, ROLE_POLICY_HOST, HOST, a,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 1);
	assert_int_equal(list.v[0].code, F_CERT_NOT_YET_VALID);
	assert_int_equal(list.v[0].role, ROLE_POLICY_HOST);
	finding_list_clear(&list);

	/* An expired self-signed root sent along is not the host's fault. */
	assert_int_equal(cert_check_findings(
			     &list, ROLE_MX, HOST, b, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 0);

	/* An expired intermediate is. */
	assert_int_equal(cert_check_findings(
			     &list, ROLE_MX, HOST, c, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 1);
	f = get_code(&list, F_CERT_EXPIRED);
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "CN=Test Intermediate"));
	assert_non_null(strstr(f->detail, "expired 1 day ago"));
	finding_list_clear(&list);

	assert_int_equal(cert_check_findings(
			     &list, ROLE_MX, HOST, d, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(count_code(&list, F_CERT_EXPIRED), 1);
	assert_int_equal(count_code(&list, F_CERT_EXPIRING), 0);
	assert_non_null(strstr(list.v[0].detail, "less than a day ago"));
	finding_list_clear(&list);

	/* A self-signed leaf is still the host's certificate. */
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, e,
			     TRUST_UNTRUSTED, "self-signed", fx.now),
	    0);
	assert_int_equal(list.n, 2);
	assert_int_equal(count_code(&list, F_CERT_EXPIRED), 1);
	assert_int_equal(count_code(&list, F_CERT_UNTRUSTED), 1);
	finding_list_clear(&list);

	tc_stack_free(a);
	tc_stack_free(b);
	tc_stack_free(c);
	tc_stack_free(d);
	tc_stack_free(e);
	X509_free(self);
	X509_free(future);
	X509_free(old_root);
	X509_free(exp_inter);
	X509_free(just);
}

static void
test_findings_clean_and_mismatch(void **state)
{
	struct finding_list list = {0};
	STACK_OF(X509) *sent = tc_stack(fx.leaf, fx.inter, fx.root, NULL);
	const struct finding *f;

	(void)state;
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 0);
	assert_int_equal(cert_check_findings(&list, ROLE_MX, "a.mx.example.net",
			     sent, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 0);

	assert_int_equal(cert_check_findings(&list, ROLE_MX, "mail.other.org",
			     sent, TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 1);
	f = get_code(&list, F_CERT_HOSTNAME_MISMATCH);
	assert_non_null(f);
	assert_string_equal(f->subject, "mail.other.org");
	assert_non_null(strstr(f->detail, "mail.other.org"));
	assert_non_null(strstr(f->detail, HOST ", *.mx.example.net"));
	finding_list_clear(&list);
	tc_stack_free(sent);
}

static void
test_findings_trust(void **state)
{
	struct finding_list list = {0};
	STACK_OF(X509) *sent = tc_stack(fx.leaf, NULL, NULL, NULL);
	const struct finding *f;

	(void)state;
	assert_int_equal(
	    cert_check_findings(&list, ROLE_MX, HOST, sent, TRUST_INCOMPLETE,
		"issuer CN=Test Intermediate", fx.now),
	    0);
	assert_int_equal(list.n, 1);
	f = get_code(&list, F_CERT_CHAIN_INCOMPLETE);
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "issuer CN=Test Intermediate"));
	finding_list_clear(&list);

	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_UNTRUSTED, "self-signed", fx.now),
	    0);
	assert_int_equal(list.n, 1);
	f = get_code(&list, F_CERT_UNTRUSTED);
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "self-signed"));
	/* A second call for the same host adds nothing new. */
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_UNTRUSTED, "again", fx.now),
	    0);
	assert_int_equal(list.n, 1);
	finding_list_clear(&list);

	/* No certificates at all still reports the trust verdict. */
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, NULL,
			     TRUST_UNTRUSTED, NULL, fx.now),
	    0);
	assert_int_equal(count_code(&list, F_CERT_UNTRUSTED), 1);
	finding_list_clear(&list);
	tc_stack_free(sent);
}

static void
test_findings_weak_dedupe(void **state)
{
	struct finding_list list = {0};
	X509 *wroot =
	    mk_md("Weak Root", fx.k_rsa1024, NULL, NULL, 1, EVP_sha1());
	X509 *winter = mk_md("Weak Intermediate", fx.k_rsa1024, wroot,
	    fx.k_rsa1024, 1, EVP_sha1());
	struct tc_opts o = {.cn = "weak leaf",
	    .san = "DNS:" HOST,
	    .key = fx.k_ec224,
	    .issuer = winter,
	    .issuer_key = fx.k_rsa1024,
	    .md = EVP_sha1(),
	    .not_before = fx.now - DAY,
	    .not_after = fx.now + 100 * DAY};
	X509 *wleaf = tc_cert(&o);
	STACK_OF(X509) *sent = tc_stack(wleaf, winter, wroot, NULL);
	STACK_OF(X509) *root_only = tc_stack(fx.leaf, fx.inter, wroot, NULL);
	const struct finding *f;

	(void)state;
	assert_non_null(wleaf);
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, sent,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 2);
	f = get_code(&list, F_CERT_WEAK_KEY);
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "CN=weak leaf"));
	assert_non_null(strstr(f->detail, "224"));
	f = get_code(&list, F_CERT_WEAK_SIGNATURE);
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "CN=weak leaf"));
	assert_non_null(strstr(f->detail, "sha1WithRSAEncryption"));
	finding_list_clear(&list);

	/* A weak self-signed root sent along raises nothing. */
	assert_int_equal(cert_check_findings(&list, ROLE_MX, HOST, root_only,
			     TRUST_OK, NULL, fx.now),
	    0);
	assert_int_equal(list.n, 0);

	tc_stack_free(sent);
	tc_stack_free(root_only);
	X509_free(wroot);
	X509_free(winter);
	X509_free(wleaf);
}

static void
test_load_der(void **state)
{
	unsigned char *a = NULL, *b = NULL, *both;
	int alen, blen;
	STACK_OF(X509) * sk;

	(void)state;
	alen = i2d_X509(fx.leaf, &a);
	blen = i2d_X509(fx.inter, &b);
	assert_true(alen > 0 && blen > 0);
	sk = cert_load_any(a, (size_t)alen);
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 1);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), fx.leaf), 0);
	tc_stack_free(sk);

	/* Truncated DER decodes to nothing. */
	assert_null(cert_load_any(a, (size_t)alen - 10));
	assert_null(cert_load_any(a, 1));

	both = malloc((size_t)alen + (size_t)blen);
	assert_non_null(both);
	memcpy(both, a, (size_t)alen);
	memcpy(both + alen, b, (size_t)blen);
	sk = cert_load_any(both, (size_t)alen + (size_t)blen);
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), fx.inter), 0);
	tc_stack_free(sk);
	free(both);
	OPENSSL_free(a);
	OPENSSL_free(b);
}

static void
test_load_pem(void **state)
{
	BIO *bio = BIO_new(BIO_s_mem());
	STACK_OF(X509) * sk;
	char *data;
	long n;

	(void)state;
	assert_non_null(bio);
	BIO_puts(bio, "intermediates for example.net\n");
	assert_int_equal(PEM_write_bio_X509(bio, fx.inter), 1);
	BIO_puts(bio, "-----BEGIN PRIVATE KEY-----\nAAAA\n"
		      "-----END PRIVATE KEY-----\n");
	assert_int_equal(PEM_write_bio_X509(bio, fx.root), 1);
	n = BIO_get_mem_data(bio, &data);
	sk = cert_load_any((unsigned char *)data, (size_t)n);
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), fx.inter), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), fx.root), 0);
	tc_stack_free(sk);
	/* Cut in the middle of the first block: nothing usable. */
	assert_null(cert_load_any((unsigned char *)data, 200));
	BIO_free(bio);
}

static void
test_load_pkcs7(void **state)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	STACK_OF(X509) * sk;
	BIO *bio;
	char *pem;
	long pemlen;
	int len;

	(void)state;
	assert_non_null(p7);
	assert_int_equal(PKCS7_set_type(p7, NID_pkcs7_signed), 1);
	assert_int_equal(PKCS7_content_new(p7, NID_pkcs7_data), 1);
	assert_int_equal(PKCS7_add_certificate(p7, fx.inter), 1);
	assert_int_equal(PKCS7_add_certificate(p7, fx.root), 1);
	len = i2d_PKCS7(p7, &der);
	assert_true(len > 0);
	sk = cert_load_any(der, (size_t)len);
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), fx.inter), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), fx.root), 0);
	tc_stack_free(sk);
	assert_null(cert_load_any(der, (size_t)len / 2));
	OPENSSL_free(der);

	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS7(bio, p7), 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	sk = cert_load_any((unsigned char *)pem, (size_t)pemlen);
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	tc_stack_free(sk);
	BIO_free(bio);
	PKCS7_free(p7);
}

static void
test_load_garbage(void **state)
{
	static const char bad_pem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n"
				      "-----END CERTIFICATE-----\n";
	unsigned char buf[4096];
	uint32_t r = 12345;

	(void)state;
	assert_null(cert_load_any(NULL, 10));
	assert_null(cert_load_any((const unsigned char *)"x", 0));
	assert_null(cert_load_any((const unsigned char *)"hello", 5));
	assert_null(
	    cert_load_any((const unsigned char *)bad_pem, strlen(bad_pem)));
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			r = r * 1103515245u + 12345u;
			buf[i] = (unsigned char)(r >> 16);
		}
		/* A DER SEQUENCE header makes the decoder try harder. */
		buf[0] = 0x30;
		buf[1] = 0x82;
		assert_null(cert_load_any(buf, sizeof(buf)));
	}
}

static X509 *
mk_inter(const char *cn)
{
	return mk(cn, NULL, fx.k_other, fx.root, fx.k_root, 1, fx.now - DAY,
	    fx.now + 100 * DAY);
}

static void
test_pool(void **state)
{
	struct cert_pool *pool = cert_pool_new(2);
	X509 *i2 = mk_inter("Intermediate 2"), *i3 = mk_inter("Intermediate 3");
	STACK_OF(X509) *c1 = tc_stack(fx.leaf, fx.inter, fx.root, NULL);
	STACK_OF(X509) *c2 = tc_stack(fx.leaf, i2, NULL, NULL);
	STACK_OF(X509) *c3 = tc_stack(fx.leaf, i3, NULL, NULL);
	STACK_OF(X509) *nonca = tc_stack(fx.inter, fx.leaf, NULL, NULL);
	STACK_OF(X509) *lonely = tc_stack(fx.leaf, NULL, NULL, NULL);
	STACK_OF(X509) * pk;
	struct chain_verdict v;

	(void)state;
	assert_non_null(pool);
	pk = cert_pool_stack(pool);
	assert_int_equal(sk_X509_num(pk), 0);

	/* Only the intermediate: the leaf is index 0, the root self-signed. */
	assert_int_equal(cert_pool_add_chain(pool, c1), 0);
	pk = cert_pool_stack(pool);
	assert_int_equal(sk_X509_num(pk), 1);
	assert_int_equal(X509_cmp(sk_X509_value(pk, 0), fx.inter), 0);
	assert_int_equal(cert_pool_add_chain(pool, c1), 0);
	assert_int_equal(sk_X509_num(cert_pool_stack(pool)), 1);

	/* A non-CA certificate after the leaf is never pooled. */
	assert_int_equal(cert_pool_add_chain(pool, nonca), 0);
	assert_int_equal(sk_X509_num(cert_pool_stack(pool)), 1);

	/* The pool fills a gap for a host that forgot its intermediate. */
	verify(lonely, cert_pool_stack(pool), &v);
	assert_int_equal(v.status, CHAIN_TRUSTED);

	assert_int_equal(cert_pool_add_chain(pool, c2), 0);
	assert_int_equal(cert_pool_add_chain(pool, c3), 0);
	pk = cert_pool_stack(pool);
	assert_int_equal(sk_X509_num(pk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(pk, 0), i2), 0);
	assert_int_equal(X509_cmp(sk_X509_value(pk, 1), i3), 0);
	verify(lonely, cert_pool_stack(pool), &v);
	assert_int_equal(v.status, CHAIN_ISSUER_MISSING);

	assert_int_equal(cert_pool_add_chain(pool, NULL), 0);
	assert_int_equal(cert_pool_add_chain(NULL, c1), -1);
	cert_pool_free(&pool);
	assert_null(pool);
	cert_pool_free(&pool);
	assert_null(cert_pool_new(0));

	tc_stack_free(c1);
	tc_stack_free(c2);
	tc_stack_free(c3);
	tc_stack_free(nonca);
	tc_stack_free(lonely);
	X509_free(i2);
	X509_free(i3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_match_table),
	    cmocka_unit_test(test_host_match_cn_fallback),
	    cmocka_unit_test(test_days_left),
	    cmocka_unit_test(test_key_weak),
	    cmocka_unit_test(test_sig_weak),
	    cmocka_unit_test(test_info_load),
	    cmocka_unit_test(test_info_san_nul_and_cap),
	    cmocka_unit_test(test_chain_trusted),
	    cmocka_unit_test(test_chain_issuer_missing_then_extra),
	    cmocka_unit_test(test_chain_self_signed_leaf),
	    cmocka_unit_test(test_chain_unknown_root),
	    cmocka_unit_test(test_chain_bad_signature_and_purpose),
	    cmocka_unit_test(test_chain_ignores_time_and_strength),
	    cmocka_unit_test(test_chain_bad_args),
	    cmocka_unit_test(test_findings_expiring),
	    cmocka_unit_test(test_findings_expiring_soonest),
	    cmocka_unit_test(test_findings_dates),
	    cmocka_unit_test(test_findings_clean_and_mismatch),
	    cmocka_unit_test(test_findings_trust),
	    cmocka_unit_test(test_findings_weak_dedupe),
	    cmocka_unit_test(test_load_der),
	    cmocka_unit_test(test_load_pem),
	    cmocka_unit_test(test_load_pkcs7),
	    cmocka_unit_test(test_load_garbage),
	    cmocka_unit_test(test_pool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
