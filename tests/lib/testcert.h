/* testcert.h -- builds keys and certificates in memory for the tests. */
#ifndef MTASTS_TESTCERT_H
#define MTASTS_TESTCERT_H

#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Header-only so that unit tests and fuzz targets share it unchanged. */
#define TC_UNUSED __attribute__((unused))

struct tc_opts {
	const char *cn;	 /* subject CN; NULL gives an empty subject */
	const char *san; /* "DNS:a,DNS:b" or NULL */
	const char *aia; /* "OCSP;URI:...,caIssuers;URI:..." or NULL */
	const char *eku; /* "serverAuth", "OCSPSigning", ... or NULL */
	EVP_PKEY *key;	 /* the subject's key */
	X509 *issuer;	 /* NULL: self-signed with key */
	EVP_PKEY *issuer_key;
	const EVP_MD *md; /* NULL: SHA-256, or none for Ed25519/Ed448 */
	int ca;
	long serial; /* 0: 1 */
	time_t not_before;
	time_t not_after;
	GENERAL_NAMES *gens; /* borrowed: SAN built by hand, overrides san */
};

static TC_UNUSED EVP_PKEY *
tc_key_ec(const char *curve)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static TC_UNUSED EVP_PKEY *
tc_key_rsa(size_t bits)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
}

static TC_UNUSED EVP_PKEY *
tc_key_ed25519(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static TC_UNUSED int
tc_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A new certificate (caller frees with X509_free), or NULL. */
static TC_UNUSED X509 *
tc_cert(const struct tc_opts *o)
{
	X509 *x = X509_new();
	X509 *issuer;
	EVP_PKEY *ikey;
	X509_NAME *name;
	const EVP_MD *md = o->md;
	int id;

	if (x == NULL)
		return NULL;
	issuer = o->issuer != NULL ? o->issuer : x;
	ikey = o->issuer_key != NULL ? o->issuer_key : o->key;
	id = EVP_PKEY_get_base_id(ikey);
	if (md == NULL && id != EVP_PKEY_ED25519 && id != EVP_PKEY_ED448)
		md = EVP_sha256();
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(
		X509_get_serialNumber(x), o->serial ? o->serial : 1) ||
	    (o->cn != NULL &&
		!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		    (const unsigned char *)o->cn, -1, -1, 0)) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(issuer)) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), o->not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), o->not_after) ||
	    !X509_set_pubkey(x, o->key))
		goto fail;
	if (!tc_add_ext(x, issuer, NID_basic_constraints,
		o->ca ? "critical,CA:TRUE" : "CA:FALSE"))
		goto fail;
	if (!tc_add_ext(x, issuer, NID_key_usage,
		o->ca ? "critical,keyCertSign,cRLSign,digitalSignature"
		      : "critical,digitalSignature,keyEncipherment"))
		goto fail;
	if (o->eku != NULL && !tc_add_ext(x, issuer, NID_ext_key_usage, o->eku))
		goto fail;
	if (o->gens != NULL) {
		if (!X509_add1_ext_i2d(x, NID_subject_alt_name, o->gens, 0, 0))
			goto fail;
	} else if (o->san != NULL &&
		   !tc_add_ext(x, issuer, NID_subject_alt_name, o->san)) {
		goto fail;
	}
	if (o->aia != NULL && !tc_add_ext(x, issuer, NID_info_access, o->aia))
		goto fail;
	if (X509_sign(x, ikey, md) <= 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* A stack holding new references to up to four certificates. */
static TC_UNUSED
    STACK_OF(X509) *
    tc_stack(X509 *a, X509 *b, X509 *c, X509 *d)
{
	X509 *v[4] = {a, b, c, d};
	STACK_OF(X509) *sk = sk_X509_new_null();

	for (int i = 0; sk != NULL && i < 4 && v[i] != NULL; i++) {
		if (!X509_up_ref(v[i]))
			break;
		if (!sk_X509_push(sk, v[i]))
			X509_free(v[i]);
	}
	return sk;
}

static TC_UNUSED void
tc_stack_free(STACK_OF(X509) * sk)
{
	sk_X509_pop_free(sk, X509_free);
}

#endif
