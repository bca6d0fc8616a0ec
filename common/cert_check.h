/* cert_check.h -- what a sending MTA would decide about a host's chain. */
#ifndef MTASTS_CERT_CHECK_H
#define MTASTS_CERT_CHECK_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "finding.h"

#define CERT_EXPIRING_WARN_DAYS	 30
#define CERT_EXPIRING_ERROR_DAYS 7

/* The facts of one certificate, as reported in the JSON chain array. */
struct cert_info {
	char sha256[65];      /* lower-case hex of the DER */
	char spki_sha256[65]; /* of the DER SubjectPublicKeyInfo */
	char *subject;	      /* owned; RFC 2253 one-line form */
	char *issuer;	      /* owned */
	char serial[130];     /* upper-case hex, no separators */
	time_t not_before;
	time_t not_after;
	char **san; /* owned; dNSName entries as written */
	size_t n_san;
	char key_type[16]; /* "RSA", "EC", "ED25519", "DSA", ... */
	int key_bits;
	char sig_alg[64]; /* e.g. "sha256WithRSAEncryption" */
	int self_signed;  /* subject == issuer and self-signature verifies */
	char *ocsp_url;	  /* owned; first AIA OCSP URI or NULL */
	char *ca_issuers_url; /* owned; first AIA caIssuers URI or NULL */
};

/* Fills out from x.  Calls malloc; returns 0 or -1; free with cert_info_free.
 */
int cert_info_load(X509 *x, struct cert_info *out);
void cert_info_free(struct cert_info *info);

/*
 * 1 when the DNS name pattern (from a SAN or CN) covers host.  Both are
 * compared case-insensitively, a trailing dot ignored.  A wildcard is only
 * "*" as the whole leftmost label, covers exactly one label, and never a
 * public suffix-like single label ("*.com" matches nothing).
 */
int cert_name_match(const char *pattern, const char *host);

/*
 * 1 when the leaf covers host: any SAN dNSName matches; the subject CN is
 * consulted only when the certificate has no SAN dNSName at all.
 */
int cert_host_match(X509 *leaf, const char *host);

/* Whole days from now until t; negative once t has passed. */
long cert_days_left(time_t t, time_t now);

/* 1 when x's key is RSA/DSA < 2048 bits or EC < 256 bits; why says which. */
int cert_key_weak(X509 *x, char *why, size_t whylen);
/* 1 when x is not self-signed and is signed with SHA-1 or MD5. */
int cert_sig_weak(X509 *x, char *why, size_t whylen);

enum chain_status {
	CHAIN_TRUSTED,	      /* reaches a trust anchor */
	CHAIN_ISSUER_MISSING, /* stops at a certificate whose issuer is unknown
			       */
	CHAIN_UNTRUSTED /* self-signed root not trusted, bad signature... */
};

struct chain_verdict {
	enum chain_status status;
	int verify_error; /* X509_V_ERR_* of the trust failure, 0 if trusted */
	char detail[256]; /* for the finding: the OpenSSL reason and cert */
};

/*
 * Verifies sent (leaf first, as the server sent it) against store, with the
 * optional extra certificates as further untrusted intermediates.  Validity
 * dates, names and key strength are not judged here (cert_check_findings
 * does that, so each failure gets its own code).  Returns 0 with out set, or
 * -1 on an internal error.
 */
int cert_chain_verify(X509_STORE *store, STACK_OF(X509) * sent,
    STACK_OF(X509) * extra, struct chain_verdict *out);

enum chain_trust {
	TRUST_OK,
	TRUST_INCOMPLETE, /* validates once a missing intermediate is added */
	TRUST_UNTRUSTED
};

/*
 * Appends the findings a sender would raise about host's chain: CERT_EXPIRED,
 * CERT_NOT_YET_VALID, CERT_EXPIRING (warning <= 30 days, error <= 7),
 * CERT_HOSTNAME_MISMATCH (leaf only), CERT_CHAIN_INCOMPLETE or
 * CERT_UNTRUSTED (from trust and trust_detail), CERT_WEAK_KEY and
 * CERT_WEAK_SIGNATURE (any certificate sent that is not a self-signed
 * root).  Returns 0, or -1 when out of memory.
 */
int cert_check_findings(struct finding_list *list, enum finding_role role,
    const char *host, STACK_OF(X509) * sent, enum chain_trust trust,
    const char *trust_detail, time_t now);

/*
 * Decodes what an AIA caIssuers URL served: DER, PEM (one or more), or a
 * PKCS#7 certs-only bundle.  Returns a new stack (caller frees with
 * sk_X509_pop_free(s, X509_free)) or NULL when nothing could be decoded.
 */
STACK_OF(X509) * cert_load_any(const unsigned char *buf, size_t len);

/*
 * A bounded pool of intermediates learned from chains that validated, used
 * to tell a missing intermediate from an untrusted chain.  Oldest entries
 * are dropped past the cap.
 */
struct cert_pool;
struct cert_pool *cert_pool_new(size_t cap);
/* Adds every non-self-signed CA certificate of chain (after the leaf). */
int cert_pool_add_chain(struct cert_pool *pool, STACK_OF(X509) * chain);
/* Borrowed view, valid until the next add or free. */
STACK_OF(X509) * cert_pool_stack(struct cert_pool *pool);
void cert_pool_free(struct cert_pool **pool);

#endif
