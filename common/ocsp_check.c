/* ocsp_check.c -- builds OCSP requests and judges OCSP responses. */
#include "ocsp_check.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>

/* Clock skew tolerated between us and the responder, as OpenSSL's tools. */
#define OCSP_SKEW_SECS 300

int
ocsp_request_der(X509 *leaf, X509 *issuer, unsigned char **der)
{
	OCSP_REQUEST *req = NULL;
	OCSP_CERTID *id;
	unsigned char *out = NULL;
	int len = -1;

	if (der == NULL)
		return -1;
	*der = NULL;
	if (leaf == NULL || issuer == NULL)
		return -1;
	/*
	 * SHA-1 CertIDs are what every responder indexes by; a SHA-256 one
	 * is answered "unauthorized" by several large CAs.  No nonce either:
	 * responders serve pre-signed answers from caches and drop it.
	 */
	if ((id = OCSP_cert_to_id(EVP_sha1(), leaf, issuer)) == NULL)
		goto done;
	if ((req = OCSP_REQUEST_new()) == NULL ||
	    OCSP_request_add0_id(req, id) == NULL) {
		OCSP_CERTID_free(id);
		goto done;
	}
	/* req owns id from here on. */
	len = i2d_OCSP_REQUEST(req, &out);
	if (len <= 0) {
		len = -1;
		goto done;
	}
	*der = out;
done:
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	return len;
}

static void
s_time_str(const ASN1_GENERALIZEDTIME *t, char *buf, size_t buflen)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buflen, "an unreadable time");
}

/* The reason OpenSSL gave last, for a detail. */
static const char *
s_ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "no reason given";
}

/*
 * OCSP_check_validity() compares with the wall clock; the caller's now is
 * what the header promises (and what tests and replays need), so the same
 * rules are applied here against now: thisUpdate not in the future,
 * nextUpdate (when present) not past and not before thisUpdate, each with
 * OCSP_SKEW_SECS of slack and no maximum age.
 */
static const char *
s_check_validity(const ASN1_GENERALIZEDTIME *thisupd,
    const ASN1_GENERALIZEDTIME *nextupd, time_t now)
{
	time_t t;

	if (thisupd == NULL || !ASN1_TIME_check(thisupd))
		return "thisUpdate is malformed";
	t = now + OCSP_SKEW_SECS;
	if (X509_cmp_time(thisupd, &t) != -1)
		return "thisUpdate is in the future";
	if (nextupd == NULL)
		return NULL;
	if (!ASN1_TIME_check(nextupd))
		return "nextUpdate is malformed";
	t = now - OCSP_SKEW_SECS;
	if (X509_cmp_time(nextupd, &t) != 1)
		return "nextUpdate has passed";
	if (ASN1_TIME_compare(nextupd, thisupd) < 0)
		return "nextUpdate is before thisUpdate";
	return NULL;
}

/*
 * The single response for leaf.  Responders answer with the hash of the
 * CertID they were asked with, so a SHA-256 one is looked for as well.
 * Returns the CertID it matched (caller frees) or NULL.
 */
static OCSP_CERTID *
s_find(OCSP_BASICRESP *bs, X509 *leaf, X509 *issuer, int *status, int *reason,
    ASN1_GENERALIZEDTIME **rev, ASN1_GENERALIZEDTIME **thisupd,
    ASN1_GENERALIZEDTIME **nextupd, int *oom)
{
	const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};
	OCSP_CERTID *id;

	*oom = 0;
	for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
		if ((id = OCSP_cert_to_id(mds[i], leaf, issuer)) == NULL) {
			*oom = 1;
			return NULL;
		}
		if (OCSP_resp_find_status(
			bs, id, status, reason, rev, thisupd, nextupd) == 1)
			return id;
		OCSP_CERTID_free(id);
	}
	return NULL;
}

int
ocsp_check_response(const unsigned char *der, size_t len, X509 *leaf,
    X509 *issuer, STACK_OF(X509) * chain, X509_STORE *store, time_t now,
    struct ocsp_result *out)
{
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
	const unsigned char *p = der;
	const char *bad;
	char t1[32], t2[32];
	int rc = 0, st, status = -1, reason = -1, oom;

	if (out == NULL || leaf == NULL)
		return -1;
	/* stapled is the caller's to set; everything else is ours. */
	out->status = OCSP_STATUS_UNKNOWN;
	out->detail[0] = '\0';
	if (issuer == NULL || store == NULL) {
		snprintf(out->detail, sizeof(out->detail),
		    "issuer or trust store unknown; response not checked");
		return 0;
	}
	if (der == NULL || len == 0) {
		snprintf(out->detail, sizeof(out->detail), "empty response");
		return 0;
	}
	if (len > OCSP_RESPONSE_MAX) {
		snprintf(out->detail, sizeof(out->detail),
		    "response of %zu bytes exceeds %d", len, OCSP_RESPONSE_MAX);
		return 0;
	}
	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	if (resp == NULL) {
		snprintf(out->detail, sizeof(out->detail),
		    "response is not DER OCSP: %s", s_ssl_reason());
		goto done;
	}
	st = OCSP_response_status(resp);
	if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		snprintf(out->detail, sizeof(out->detail),
		    "responder answered %s (%d)", OCSP_response_status_str(st),
		    st);
		goto done;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		snprintf(out->detail, sizeof(out->detail),
		    "response holds no basic OCSP response");
		goto done;
	}
	/*
	 * Only the issuer, or a responder it certified for OCSP signing,
	 * may speak for the leaf; OCSP_basic_verify checks exactly that.
	 */
	ERR_clear_error();
	if (OCSP_basic_verify(bs, chain, store, 0) != 1) {
		snprintf(out->detail, sizeof(out->detail),
		    "response signature not verified: %s", s_ssl_reason());
		goto done;
	}
	id = s_find(
	    bs, leaf, issuer, &status, &reason, &rev, &thisupd, &nextupd, &oom);
	if (id == NULL) {
		if (oom) {
			rc = -1;
			goto done;
		}
		snprintf(out->detail, sizeof(out->detail),
		    "response does not cover the certificate");
		goto done;
	}
	if ((bad = s_check_validity(thisupd, nextupd, now)) != NULL) {
		snprintf(out->detail, sizeof(out->detail),
		    "response is not current: %s", bad);
		goto done;
	}
	s_time_str(thisupd, t1, sizeof(t1));
	switch (status) {
	case V_OCSP_CERTSTATUS_GOOD:
		out->status = OCSP_STATUS_GOOD;
		if (nextupd != NULL)
			s_time_str(nextupd, t2, sizeof(t2));
		else
			snprintf(t2, sizeof(t2), "none");
		snprintf(out->detail, sizeof(out->detail),
		    "good (thisUpdate %s, nextUpdate %s)", t1, t2);
		break;
	case V_OCSP_CERTSTATUS_REVOKED:
		out->status = OCSP_STATUS_REVOKED;
		s_time_str(rev, t2, sizeof(t2));
		snprintf(out->detail, sizeof(out->detail),
		    "revoked at %s, reason %s (thisUpdate %s)", t2,
		    reason >= 0 ? OCSP_crl_reason_str(reason) : "not given",
		    t1);
		break;
	default:
		snprintf(out->detail, sizeof(out->detail),
		    "responder does not know the certificate (thisUpdate %s)",
		    t1);
		break;
	}
done:
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return rc;
}
