/* test_ocsp_check.c -- OCSP requests and responses made and signed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ocsp.h>

#include "../lib/testcert.h"
#include "ocsp_check.h"

#define DAY 86400L

/*
 * OCSP_basic_verify checks the signer's chain against the wall clock, so
 * everything here is dated around the real now.
 */
static struct {
	time_t now;
	EVP_PKEY *k_ca, *k_leaf, *k_resp, *k_evil;
	X509 *ca, *leaf, *other_leaf, *responder, *no_eku, *evil;
	X509_STORE *store;
} fx;

static int
setup(void **state)
{
	time_t now = time(NULL);
	struct tc_opts o = {
	    .not_before = now - 30 * DAY, .not_after = now + 365 * DAY};

	(void)state;
	fx.now = now;
	fx.k_ca = tc_key_ec("P-256");
	fx.k_leaf = tc_key_ec("P-256");
	fx.k_resp = tc_key_ec("P-256");
	fx.k_evil = tc_key_ec("P-256");
	if (!fx.k_ca || !fx.k_leaf || !fx.k_resp || !fx.k_evil)
		return -1;
	o.cn = "OCSP Test CA";
	o.key = fx.k_ca;
	o.ca = 1;
	fx.ca = tc_cert(&o);
	o.ca = 0;
	o.issuer = fx.ca;
	o.issuer_key = fx.k_ca;
	o.cn = "mx.example.com";
	o.san = "DNS:mx.example.com";
	o.key = fx.k_leaf;
	o.serial = 1001;
	fx.leaf = tc_cert(&o);
	o.cn = "mx2.example.com";
	o.san = "DNS:mx2.example.com";
	o.serial = 1002;
	fx.other_leaf = tc_cert(&o);
	o.san = NULL;
	o.cn = "OCSP Responder";
	o.key = fx.k_resp;
	o.eku = "OCSPSigning";
	o.serial = 1003;
	fx.responder = tc_cert(&o);
	o.cn = "Not A Responder";
	o.eku = "serverAuth";
	o.serial = 1004;
	fx.no_eku = tc_cert(&o);
	/* Same name as the CA, own key: a forgery nobody vouches for. */
	o.cn = "OCSP Test CA";
	o.key = fx.k_evil;
	o.issuer = NULL;
	o.issuer_key = NULL;
	o.eku = NULL;
	o.ca = 1;
	o.serial = 666;
	fx.evil = tc_cert(&o);
	fx.store = X509_STORE_new();
	if (!fx.ca || !fx.leaf || !fx.other_leaf || !fx.responder ||
	    !fx.no_eku || !fx.evil || !fx.store ||
	    X509_STORE_add_cert(fx.store, fx.ca) != 1)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	X509_STORE_free(fx.store);
	X509_free(fx.ca);
	X509_free(fx.leaf);
	X509_free(fx.other_leaf);
	X509_free(fx.responder);
	X509_free(fx.no_eku);
	X509_free(fx.evil);
	EVP_PKEY_free(fx.k_ca);
	EVP_PKEY_free(fx.k_leaf);
	EVP_PKEY_free(fx.k_resp);
	EVP_PKEY_free(fx.k_evil);
	return 0;
}

struct resp_opts {
	X509 *about;	     /* NULL: fx.leaf */
	const EVP_MD *id_md; /* NULL: SHA-1 */
	int cert_status;     /* V_OCSP_CERTSTATUS_* */
	int reason;	     /* OCSP_REVOKED_STATUS_* or -1 */
	time_t revoked_at;
	time_t thisupd;
	time_t nextupd; /* 0: no nextUpdate */
	X509 *signer;	/* NULL: fx.ca */
	EVP_PKEY *signer_key;
};

/* A DER OCSPResponse; caller frees with OPENSSL_free. */
static int
make_resp(const struct resp_opts *o, unsigned char **der)
{
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_RESPONSE *resp;
	OCSP_CERTID *id;
	ASN1_TIME *tu, *nu = NULL, *rev = NULL;
	int len;

	assert_non_null(bs);
	id = OCSP_cert_to_id(o->id_md ? o->id_md : EVP_sha1(),
	    o->about ? o->about : fx.leaf, fx.ca);
	assert_non_null(id);
	tu = ASN1_TIME_set(NULL, o->thisupd);
	assert_non_null(tu);
	if (o->nextupd) {
		nu = ASN1_TIME_set(NULL, o->nextupd);
		assert_non_null(nu);
	}
	if (o->cert_status == V_OCSP_CERTSTATUS_REVOKED) {
		rev = ASN1_TIME_set(NULL, o->revoked_at);
		assert_non_null(rev);
	}
	assert_non_null(OCSP_basic_add1_status(
	    bs, id, o->cert_status, o->reason, rev, tu, nu));
	assert_int_equal(
	    OCSP_basic_sign(bs, o->signer ? o->signer : fx.ca,
		o->signer_key ? o->signer_key : fx.k_ca, EVP_sha256(), NULL, 0),
	    1);
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	assert_non_null(resp);
	*der = NULL;
	len = i2d_OCSP_RESPONSE(resp, der);
	assert_true(len > 0);
	OCSP_RESPONSE_free(resp);
	OCSP_BASICRESP_free(bs);
	OCSP_CERTID_free(id);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	ASN1_TIME_free(rev);
	return len;
}

static struct resp_opts
good_opts(void)
{
	struct resp_opts o = {.cert_status = V_OCSP_CERTSTATUS_GOOD,
	    .reason = -1,
	    .thisupd = fx.now - 3600,
	    .nextupd = fx.now + 7 * DAY};

	return o;
}

/* Checks o's response at now against fx and returns the result. */
static struct ocsp_result
check(const struct resp_opts *o, time_t now)
{
	struct ocsp_result r;
	unsigned char *der;
	int len = make_resp(o, &der);

	memset(&r, 0x5a, sizeof(r));
	r.stapled = 1;
	assert_int_equal(ocsp_check_response(der, (size_t)len, fx.leaf, fx.ca,
			     NULL, fx.store, now, &r),
	    0);
	/* stapled is the caller's; the check must leave it alone. */
	assert_int_equal(r.stapled, 1);
	assert_non_null(memchr(r.detail, '\0', sizeof(r.detail)));
	OPENSSL_free(der);
	return r;
}

static void
test_request(void **state)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	OCSP_REQUEST *req;
	OCSP_CERTID *want;
	int len;

	(void)state;
	len = ocsp_request_der(fx.leaf, fx.ca, &der);
	assert_true(len > 0);
	assert_non_null(der);
	p = der;
	req = d2i_OCSP_REQUEST(NULL, &p, len);
	assert_non_null(req);
	assert_ptr_equal(p, der + len);
	assert_int_equal(OCSP_request_onereq_count(req), 1);
	want = OCSP_cert_to_id(EVP_sha1(), fx.leaf, fx.ca);
	assert_non_null(want);
	assert_int_equal(
	    OCSP_id_cmp(
		OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0)), want),
	    0);
	OCSP_CERTID_free(want);
	OCSP_REQUEST_free(req);
	OPENSSL_free(der);

	der = (unsigned char *)"x";
	assert_int_equal(ocsp_request_der(fx.leaf, NULL, &der), -1);
	assert_null(der);
	assert_int_equal(ocsp_request_der(fx.leaf, fx.ca, NULL), -1);
}

static void
test_good(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;

	(void)state;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);
	assert_non_null(strstr(r.detail, "good"));

	/* Without nextUpdate a response never goes stale. */
	o.nextupd = 0;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);
	assert_non_null(strstr(r.detail, "nextUpdate none"));

	/* A SHA-256 CertID is understood too. */
	o = good_opts();
	o.id_md = EVP_sha256();
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);
}

static void
test_revoked(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;
	char when[32];
	struct tm tm;

	(void)state;
	o.cert_status = V_OCSP_CERTSTATUS_REVOKED;
	o.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
	o.revoked_at = fx.now - 2 * DAY;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_REVOKED);
	assert_non_null(gmtime_r(&o.revoked_at, &tm));
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	assert_non_null(strstr(r.detail, when));
	assert_non_null(strstr(r.detail, "keyCompromise"));

	o.reason = -1;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_REVOKED);
	assert_non_null(strstr(r.detail, "reason not given"));
}

static void
test_cert_status_unknown(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;

	(void)state;
	o.cert_status = V_OCSP_CERTSTATUS_UNKNOWN;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "does not know"));

	/* An answer about another certificate says nothing about ours. */
	o = good_opts();
	o.about = fx.other_leaf;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "does not cover"));
}

static void
test_signers(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;

	(void)state;
	/* A delegated responder with the OCSPSigning EKU may answer. */
	o.signer = fx.responder;
	o.signer_key = fx.k_resp;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);

	/* A certificate of the same CA without it may not. */
	o.signer = fx.no_eku;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "not verified"));

	/* Nor may a stranger, even saying "revoked". */
	o.signer = fx.evil;
	o.signer_key = fx.k_evil;
	o.cert_status = V_OCSP_CERTSTATUS_REVOKED;
	o.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
	o.revoked_at = fx.now - DAY;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "not verified"));
}

static void
test_validity(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;

	(void)state;
	o.thisupd = fx.now - 2 * DAY;
	o.nextupd = fx.now - DAY;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "nextUpdate has passed"));

	/* Within the five minutes of skew it is still current. */
	o.nextupd = fx.now - 200;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);

	o = good_opts();
	o.thisupd = fx.now + DAY;
	o.nextupd = fx.now + 7 * DAY;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "in the future"));

	o.thisupd = fx.now + 200;
	r = check(&o, fx.now);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);

	/* The caller's now is what counts, not the wall clock. */
	o = good_opts();
	r = check(&o, fx.now + 30 * DAY);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	r = check(&o, fx.now - DAY);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "in the future"));
}

static void
test_bad_bytes(void **state)
{
	struct resp_opts o = good_opts();
	struct ocsp_result r;
	OCSP_RESPONSE *resp;
	unsigned char *der = NULL, *big, junk[512];
	uint32_t x = 7;
	int len;

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1664525u + 1013904223u;
		junk[i] = (unsigned char)(x >> 24);
	}
	junk[0] = 0x30;
	assert_int_equal(ocsp_check_response(junk, sizeof(junk), fx.leaf, fx.ca,
			     NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "not DER OCSP"));

	assert_int_equal(ocsp_check_response(junk, 0, fx.leaf, fx.ca, NULL,
			     fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "empty"));

	/* A real response cut short. */
	len = make_resp(&o, &der);
	assert_int_equal(ocsp_check_response(der, (size_t)len - 20, fx.leaf,
			     fx.ca, NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	/* One byte flipped in the signature. */
	der[len - 5] ^= 0x01;
	assert_int_equal(ocsp_check_response(der, (size_t)len, fx.leaf, fx.ca,
			     NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	der[len - 5] ^= 0x01;
	assert_int_equal(ocsp_check_response(der, (size_t)len, fx.leaf, fx.ca,
			     NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_GOOD);

	/* Oversized input is refused before it is decoded. */
	big = calloc(1, OCSP_RESPONSE_MAX + 1);
	assert_non_null(big);
	memcpy(big, der, (size_t)len);
	assert_int_equal(ocsp_check_response(big, OCSP_RESPONSE_MAX + 1,
			     fx.leaf, fx.ca, NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "exceeds"));
	free(big);
	OPENSSL_free(der);

	/* A responder saying "try later" has given no answer. */
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, NULL);
	assert_non_null(resp);
	der = NULL;
	len = i2d_OCSP_RESPONSE(resp, &der);
	assert_true(len > 0);
	assert_int_equal(ocsp_check_response(der, (size_t)len, fx.leaf, fx.ca,
			     NULL, fx.store, fx.now, &r),
	    0);
	assert_int_equal(r.status, OCSP_STATUS_UNKNOWN);
	assert_non_null(strstr(r.detail, "trylater"));
	OPENSSL_free(der);
	OCSP_RESPONSE_free(resp);

	assert_int_equal(ocsp_check_response(junk, sizeof(junk), NULL, fx.ca,
			     NULL, fx.store, fx.now, &r),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request),
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_revoked),
	    cmocka_unit_test(test_cert_status_unknown),
	    cmocka_unit_test(test_signers),
	    cmocka_unit_test(test_validity),
	    cmocka_unit_test(test_bad_bytes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
