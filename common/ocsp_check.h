/* ocsp_check.h -- OCSP request and response handling (RFC 6960). */
#ifndef MTASTS_OCSP_CHECK_H
#define MTASTS_OCSP_CHECK_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#define OCSP_RESPONSE_MAX (64 * 1024)

enum ocsp_status {
	OCSP_STATUS_UNKNOWN = 0, /* no answer, unusable answer, or "unknown" */
	OCSP_STATUS_GOOD,
	OCSP_STATUS_REVOKED
};

struct ocsp_result {
	enum ocsp_status status;
	int stapled;	  /* the answer came stapled in the handshake */
	char detail[256]; /* reason, revocation time, or why it is unusable */
};

/*
 * DER OCSP request for leaf, issued by issuer.  Returns the length and sets
 * *der (caller frees with OPENSSL_free), or -1.
 */
int ocsp_request_der(X509 *leaf, X509 *issuer, unsigned char **der);

/*
 * Checks a DER OCSP response for leaf: the response must be successful,
 * signed by the issuer or a responder it delegated to (verified against
 * store and the chain), and current at now (5 minutes of skew).  A response
 * that fails those checks yields OCSP_STATUS_UNKNOWN with the reason: only a
 * verified "revoked" is ever reported as revoked.  Returns 0, or -1 on an
 * internal error.
 */
int ocsp_check_response(const unsigned char *der, size_t len, X509 *leaf,
    X509 *issuer, STACK_OF(X509) * chain, X509_STORE *store, time_t now,
    struct ocsp_result *out);

#endif
