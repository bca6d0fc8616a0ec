/* cert_check.c -- certificate facts, name matching, chain trust, findings. */
#include "cert_check.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

/* A hostile AIA or SAN list must not make us allocate without limit. */
#define CERT_SAN_MAX 1000
/* What one caIssuers download may hold; real bundles have a handful. */
#define CERT_LOAD_MAX 100
/* How many covered names a hostname mismatch detail quotes. */
#define CERT_MISMATCH_NAMES 5

static void
s_hex(const unsigned char *md, unsigned int n, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;

	for (unsigned int i = 0; i < n && o + 2 < outlen; i++) {
		out[o++] = digits[md[i] >> 4];
		out[o++] = digits[md[i] & 0x0f];
	}
	out[o] = '\0';
}

/* RFC 2253 form of name into buf; "" when it cannot be printed. */
static void
s_name_buf(const X509_NAME *name, char *buf, size_t buflen)
{
	BIO *bio;
	char *data;
	long n;

	buf[0] = '\0';
	if (name == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0) {
			if ((size_t)n >= buflen)
				n = (long)buflen - 1;
			memcpy(buf, data, (size_t)n);
			buf[n] = '\0';
		}
	}
	BIO_free(bio);
}

/* The same, allocated.  Calls malloc; NULL when out of memory. */
static char *
s_name_str(const X509_NAME *name)
{
	BIO *bio;
	char *data, *s;
	long n;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (name == NULL ||
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0)
		n = 0;
	else
		n = BIO_get_mem_data(bio, &data);
	s = n > 0 ? strndup(data, (size_t)n) : strdup("");
	BIO_free(bio);
	return s;
}

static int
s_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	/* A NULL time would make ASN1_TIME_to_tm report the current time. */
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static void
s_iso8601(time_t t, char *buf, size_t buflen)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buflen, "%lld", (long long)t);
}

/*
 * Self-signed in the sense that matters for trust: names match and the
 * certificate's own key verifies its signature.
 */
static int
s_self_signed(X509 *x)
{
	int rc = X509_self_signed(x, 1);

	ERR_clear_error();
	return rc == 1;
}

/*
 * Copies an IA5String URI into *out; leaves *out NULL when the string is
 * empty or holds a NUL (a name-confusion attempt).  -1 only when out of
 * memory.
 */
static int
s_ia5_dup(const ASN1_IA5STRING *s, char **out)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s);

	*out = NULL;
	if (p == NULL || n <= 0 || memchr(p, '\0', (size_t)n) != NULL)
		return 0;
	*out = strndup((const char *)p, (size_t)n);
	return *out != NULL ? 0 : -1;
}

static int
s_load_san(X509 *x, struct cert_info *out)
{
	GENERAL_NAMES *gens;
	int n, rc = 0;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return 0;
	n = sk_GENERAL_NAME_num(gens);
	out->san = calloc(n > 0 ? (size_t)n : 1, sizeof(*out->san));
	if (out->san == NULL) {
		GENERAL_NAMES_free(gens);
		return -1;
	}
	for (int i = 0; i < n && out->n_san < CERT_SAN_MAX; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *p;
		int len;

		if (g->type != GEN_DNS)
			continue;
		p = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		/* An embedded NUL is the classic name-confusion attack. */
		if (p == NULL || len < 0 || memchr(p, '\0', (size_t)len))
			continue;
		out->san[out->n_san] = strndup((const char *)p, (size_t)len);
		if (out->san[out->n_san] == NULL) {
			rc = -1;
			break;
		}
		out->n_san++;
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

static int
s_load_aia(X509 *x, struct cert_info *out)
{
	AUTHORITY_INFO_ACCESS *aia;
	int rc = 0;

	aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	if (aia == NULL)
		return 0;
	for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
		ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
		char **slot;
		int nid = OBJ_obj2nid(ad->method);

		if (nid == NID_ad_OCSP)
			slot = &out->ocsp_url;
		else if (nid == NID_ad_ca_issuers)
			slot = &out->ca_issuers_url;
		else
			continue;
		if (*slot != NULL || ad->location->type != GEN_URI)
			continue;
		if (s_ia5_dup(ad->location->d.uniformResourceIdentifier,
			slot) == -1) {
			rc = -1;
			break;
		}
	}
	AUTHORITY_INFO_ACCESS_free(aia);
	return rc;
}

static const char *
s_key_type(const EVP_PKEY *pkey)
{
	const char *name;

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		return "RSA";
	case EVP_PKEY_RSA_PSS:
		return "RSA-PSS";
	case EVP_PKEY_DSA:
		return "DSA";
	case EVP_PKEY_EC:
		return "EC";
	case EVP_PKEY_ED25519:
		return "ED25519";
	case EVP_PKEY_ED448:
		return "ED448";
	}
	name = EVP_PKEY_get0_type_name(pkey);
	return name != NULL ? name : "unknown";
}

static void
s_load_serial(X509 *x, char *out, size_t outlen)
{
	BIGNUM *bn;
	char *hex;

	out[0] = '\0';
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	if (bn == NULL)
		return;
	if ((hex = BN_bn2hex(bn)) != NULL) {
		/* Longer than RFC 5280 allows: keep the prefix, do not fail. */
		snprintf(out, outlen, "%s", hex);
		OPENSSL_free(hex);
	}
	BN_free(bn);
}

int
cert_info_load(X509 *x, struct cert_info *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	EVP_PKEY *pkey;
	const char *sig;

	memset(out, 0, sizeof(*out));
	if (x == NULL)
		return -1;
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1)
		goto fail;
	s_hex(md, mdlen, out->sha256, sizeof(out->sha256));
	if (X509_pubkey_digest(x, EVP_sha256(), md, &mdlen) == 1)
		s_hex(md, mdlen, out->spki_sha256, sizeof(out->spki_sha256));
	if ((out->subject = s_name_str(X509_get_subject_name(x))) == NULL)
		goto fail;
	if ((out->issuer = s_name_str(X509_get_issuer_name(x))) == NULL)
		goto fail;
	s_load_serial(x, out->serial, sizeof(out->serial));
	/* Unreadable dates stay 0; the findings code reads them itself. */
	(void)s_asn1_time(X509_get0_notBefore(x), &out->not_before);
	(void)s_asn1_time(X509_get0_notAfter(x), &out->not_after);
	if (s_load_san(x, out) == -1)
		goto fail;
	if ((pkey = X509_get0_pubkey(x)) != NULL) {
		snprintf(out->key_type, sizeof(out->key_type), "%s",
		    s_key_type(pkey));
		out->key_bits = EVP_PKEY_get_bits(pkey);
	} else {
		snprintf(out->key_type, sizeof(out->key_type), "unknown");
	}
	sig = OBJ_nid2ln(X509_get_signature_nid(x));
	snprintf(out->sig_alg, sizeof(out->sig_alg), "%s",
	    sig != NULL ? sig : "unknown");
	out->self_signed = s_self_signed(x);
	if (s_load_aia(x, out) == -1)
		goto fail;
	ERR_clear_error();
	return 0;
fail:
	ERR_clear_error();
	cert_info_free(out);
	return -1;
}

void
cert_info_free(struct cert_info *info)
{
	if (info == NULL)
		return;
	free(info->subject);
	free(info->issuer);
	for (size_t i = 0; i < info->n_san; i++)
		free(info->san[i]);
	free(info->san);
	free(info->ocsp_url);
	free(info->ca_issuers_url);
	memset(info, 0, sizeof(*info));
}

/* ASCII only: IDNA names are compared as their A-labels. */
static int
s_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
s_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s_lower((unsigned char)a[i]) !=
		    s_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Drops one trailing dot; 0 when the name is empty or has an empty label. */
static int
s_trim(const char *s, size_t *len)
{
	size_t n = *len;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || s[0] == '.' || memchr(s, '\0', n) != NULL)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (s[i] == '.' && s[i - 1] == '.')
			return 0;
	*len = n;
	return 1;
}

static int
s_match_n(const char *pat, size_t plen, const char *host, size_t hlen)
{
	const char *dot;
	size_t rest;

	if (!s_trim(pat, &plen) || !s_trim(host, &hlen))
		return 0;
	if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
		pat += 2;
		plen -= 2;
		/*
		 * "*.com" would cover a whole public suffix; we demand two
		 * labels after the wildcard, as browsers and senders do.
		 */
		if (memchr(pat, '.', plen) == NULL)
			return 0;
		dot = memchr(host, '.', hlen);
		if (dot == NULL || dot == host)
			return 0;
		rest = hlen - (size_t)(dot + 1 - host);
		return rest == plen && s_ieq(dot + 1, pat, plen);
	}
	/* Any other '*' is not a wildcard and only matches itself. */
	return plen == hlen && s_ieq(pat, host, plen);
}

int
cert_name_match(const char *pattern, const char *host)
{
	if (pattern == NULL || host == NULL)
		return 0;
	return s_match_n(pattern, strlen(pattern), host, strlen(host));
}

static int
s_cn_match(X509 *leaf, const char *host)
{
	X509_NAME *name = X509_get_subject_name(leaf);
	int idx = -1, matched = 0;

	while (!matched && (idx = X509_NAME_get_index_by_NID(
				name, NID_commonName, idx)) >= 0) {
		X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));

		if (n > 0)
			matched = s_match_n(
			    (const char *)utf8, (size_t)n, host, strlen(host));
		OPENSSL_free(utf8);
	}
	return matched;
}

int
cert_host_match(X509 *leaf, const char *host)
{
	GENERAL_NAMES *gens;
	int has_dns = 0, matched = 0;

	if (leaf == NULL || host == NULL)
		return 0;
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && !matched; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *p;
		int len;

		if (g->type != GEN_DNS)
			continue;
		has_dns = 1;
		p = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (p != NULL && len > 0)
			matched = s_match_n(
			    (const char *)p, (size_t)len, host, strlen(host));
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	/* RFC 6125: the CN is a fallback only for certificates without one. */
	if (!has_dns)
		matched = s_cn_match(leaf, host);
	return matched;
}

long
cert_days_left(time_t t, time_t now)
{
	long long d, q;

	if (__builtin_sub_overflow((long long)t, (long long)now, &d))
		return t > now ? LONG_MAX : LONG_MIN;
	/*
	 * C division truncates toward zero, but a notAfter one second ago is
	 * already a day in the past: round toward minus infinity.
	 */
	q = d / 86400;
	if (d % 86400 != 0 && d < 0)
		q--;
	if (q > LONG_MAX)
		return LONG_MAX;
	if (q < LONG_MIN)
		return LONG_MIN;
	return (long)q;
}

int
cert_key_weak(X509 *x, char *why, size_t whylen)
{
	EVP_PKEY *pkey;
	int bits, min;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	/* A key OpenSSL cannot decode is not judged here; the handshake is. */
	if (x == NULL || (pkey = X509_get0_pubkey(x)) == NULL) {
		ERR_clear_error();
		return 0;
	}
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
	case EVP_PKEY_DSA:
		min = 2048;
		break;
	case EVP_PKEY_EC:
		min = 256;
		break;
	default:
		return 0;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits >= min)
		return 0;
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s key of %d bits (minimum %d)",
		    s_key_type(pkey), bits, min);
	return 1;
}

int
cert_sig_weak(X509 *x, char *why, size_t whylen)
{
	int signid, mdnid = NID_undef, pknid = NID_undef;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	/* Nobody checks a root's self-signature; its digest does not matter. */
	if (x == NULL || s_self_signed(x))
		return 0;
	signid = X509_get_signature_nid(x);
	if (signid == NID_rsassaPss) {
		/* The PSS digest lives in the parameters, not in the OID. */
		if (X509_get_signature_info(x, &mdnid, NULL, NULL, NULL) != 1)
			mdnid = NID_undef;
	} else if (OBJ_find_sigid_algs(signid, &mdnid, &pknid) != 1) {
		mdnid = NID_undef;
	}
	ERR_clear_error();
	switch (mdnid) {
	case NID_sha1:
	case NID_md5:
	case NID_md5_sha1:
	case NID_md4:
	case NID_md2:
		break;
	default:
		return 0;
	}
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "signed with %s", OBJ_nid2ln(signid));
	return 1;
}

/* What the verify callback learned; lives in the ctx's app data slot. */
struct verify_state {
	int error;
	int depth;
	char subject[96];
	char issuer[96];
};

static int
s_ignored_error(int err)
{
	switch (err) {
	/* Dates are reported by cert_check_findings with their own codes. */
	case X509_V_ERR_CERT_NOT_YET_VALID:
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
	case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
	/* So are key and digest strength. */
	case X509_V_ERR_EE_KEY_TOO_SMALL:
	case X509_V_ERR_CA_KEY_TOO_SMALL:
	case X509_V_ERR_CA_MD_TOO_WEAK:
		return 1;
	}
	return 0;
}

static int
s_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct verify_state *st = X509_STORE_CTX_get_app_data(ctx);
	int err;
	X509 *cur;

	if (ok)
		return 1;
	err = X509_STORE_CTX_get_error(ctx);
	if (st == NULL || s_ignored_error(err))
		return 1;
	if (st->error == X509_V_OK) {
		st->error = err;
		st->depth = X509_STORE_CTX_get_error_depth(ctx);
		cur = X509_STORE_CTX_get_current_cert(ctx);
		if (cur != NULL) {
			s_name_buf(X509_get_subject_name(cur), st->subject,
			    sizeof(st->subject));
			s_name_buf(X509_get_issuer_name(cur), st->issuer,
			    sizeof(st->issuer));
		}
	}
	/* Keep going so that later date or key errors cannot mask it. */
	return 1;
}

static void
s_classify(const struct verify_state *st, struct chain_verdict *out)
{
	const char *reason = X509_verify_cert_error_string(st->error);

	out->verify_error = st->error;
	switch (st->error) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
		out->status = CHAIN_ISSUER_MISSING;
		snprintf(out->detail, sizeof(out->detail),
		    "%s: issuer %s of %s was not sent and is not trusted",
		    reason, st->issuer[0] ? st->issuer : "(empty)",
		    st->subject[0] ? st->subject : "(empty subject)");
		break;
	default:
		out->status = CHAIN_UNTRUSTED;
		snprintf(out->detail, sizeof(out->detail), "%s at depth %d: %s",
		    reason, st->depth,
		    st->subject[0] ? st->subject : "(empty subject)");
		break;
	}
}

int
cert_chain_verify(X509_STORE *store, STACK_OF(X509) * sent,
    STACK_OF(X509) * extra, struct chain_verdict *out)
{
	struct verify_state st;
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	X509 *leaf;
	int rc = -1, vr;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	if (store == NULL || sent == NULL || sk_X509_num(sent) < 1)
		return -1;
	leaf = sk_X509_value(sent, 0);
	/* Borrowed pointers: the stack is freed without freeing the certs. */
	if ((untrusted = sk_X509_new_null()) == NULL)
		goto done;
	for (int i = 1; i < sk_X509_num(sent); i++)
		if (!sk_X509_push(untrusted, sk_X509_value(sent, i)))
			goto done;
	for (int i = 0; i < sk_X509_num(extra); i++)
		if (!sk_X509_push(untrusted, sk_X509_value(extra, i)))
			goto done;
	if ((ctx = X509_STORE_CTX_new()) == NULL)
		goto done;
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
		goto done;
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME);
	X509_VERIFY_PARAM_set_auth_level(param, 0);
	if (X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1)
		goto done;
	X509_STORE_CTX_set_app_data(ctx, &st);
	X509_STORE_CTX_set_verify_cb(ctx, s_verify_cb);
	vr = X509_verify_cert(ctx);
	if (st.error == X509_V_OK && vr != 1) {
		/* Failed without asking the callback: take the ctx's word. */
		st.error = X509_STORE_CTX_get_error(ctx);
		if (st.error == X509_V_OK)
			goto done;
		st.depth = X509_STORE_CTX_get_error_depth(ctx);
		s_name_buf(X509_get_subject_name(leaf), st.subject,
		    sizeof(st.subject));
		s_name_buf(
		    X509_get_issuer_name(leaf), st.issuer, sizeof(st.issuer));
	}
	if (st.error == X509_V_OK) {
		out->status = CHAIN_TRUSTED;
		snprintf(out->detail, sizeof(out->detail), "ok");
	} else {
		s_classify(&st, out);
	}
	rc = 0;
done:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return rc;
}

/* Has list already a finding with code about host in that role? */
static int
s_has(const struct finding_list *list, enum finding_code code,
    enum finding_role role, const char *host)
{
	for (size_t i = 0; i < list->n; i++)
		if (list->v[i].code == code && list->v[i].role == role &&
		    strcmp(list->v[i].subject, host) == 0)
			return 1;
	return 0;
}

/* "a, b, c (and 4 more)" of the names the leaf covers. */
static void
s_covered_names(X509 *leaf, char *buf, size_t buflen)
{
	struct cert_info info;
	size_t o = 0;
	int n;

	buf[0] = '\0';
	if (cert_info_load(leaf, &info) == -1)
		return;
	for (size_t i = 0; i < info.n_san && i < CERT_MISMATCH_NAMES; i++) {
		n = snprintf(
		    buf + o, buflen - o, "%s%s", i ? ", " : "", info.san[i]);
		if (n < 0 || (size_t)n >= buflen - o)
			goto out;
		o += (size_t)n;
	}
	if (info.n_san > CERT_MISMATCH_NAMES)
		snprintf(buf + o, buflen - o, " (and %zu more)",
		    info.n_san - CERT_MISMATCH_NAMES);
	else if (info.n_san == 0)
		snprintf(buf, buflen, "no DNS names, subject %s",
		    info.subject[0] ? info.subject : "(empty)");
out:
	cert_info_free(&info);
}

static const char *
s_or_empty(const char *subject)
{
	return subject[0] ? subject : "(empty subject)";
}

/* "expired 3 days ago"; ago counts whole days since notAfter. */
static int
s_add_expired(struct finding_list *list, enum finding_role role,
    const char *host, const char *subject, long ago, const char *when)
{
	if (ago <= 0)
		return finding_add(list, F_CERT_EXPIRED, role, host,
		    "certificate %s expired less than a day ago (notAfter %s)",
		    s_or_empty(subject), when);
	return finding_add(list, F_CERT_EXPIRED, role, host,
	    "certificate %s expired %ld day%s ago (notAfter %s)",
	    s_or_empty(subject), ago, ago == 1 ? "" : "s", when);
}

/*
 * One CERT_EXPIRING per host, about the certificate that runs out first:
 * an intermediate due in 3 days matters more than a leaf due in 20.
 */
static int
s_add_expiring(struct finding_list *list, enum finding_role role,
    const char *host, X509 *x, long days, time_t na)
{
	enum severity sev =
	    days <= CERT_EXPIRING_ERROR_DAYS ? SEV_ERROR : SEV_WARNING;
	char subject[160], when[32];

	s_name_buf(X509_get_subject_name(x), subject, sizeof(subject));
	s_iso8601(na, when, sizeof(when));
	return finding_add_sev(list, F_CERT_EXPIRING, sev, role, host,
	    "certificate %s expires in %ld day%s (notAfter %s)",
	    s_or_empty(subject), days, days == 1 ? "" : "s", when);
}

int
cert_check_findings(struct finding_list *list, enum finding_role role,
    const char *host, STACK_OF(X509) * sent, enum chain_trust trust,
    const char *trust_detail, time_t now)
{
	char subject[160], when[32], why[96], names[256];
	X509 *leaf = NULL;
	int n = sk_X509_num(sent), soon_idx = -1;
	long soon_days = 0;
	time_t soon_na = 0;

	if (list == NULL || host == NULL)
		return -1;
	if (n > 0)
		leaf = sk_X509_value(sent, 0);
	for (int i = 0; i < n; i++) {
		X509 *x = sk_X509_value(sent, i);
		time_t nb, na;
		long days;

		/*
		 * A root sent along is ignored by senders: its dates and
		 * strength are never used.  The leaf always counts.
		 */
		if (i > 0 && s_self_signed(x))
			continue;
		s_name_buf(X509_get_subject_name(x), subject, sizeof(subject));
		if (s_asn1_time(X509_get0_notBefore(x), &nb) == 0 && now < nb &&
		    !s_has(list, F_CERT_NOT_YET_VALID, role, host)) {
			s_iso8601(nb, when, sizeof(when));
			if (finding_add(list, F_CERT_NOT_YET_VALID, role, host,
				"certificate %s is not valid before %s",
				s_or_empty(subject), when) == -1)
				return -1;
		}
		if (s_asn1_time(X509_get0_notAfter(x), &na) == 0) {
			s_iso8601(na, when, sizeof(when));
			days = cert_days_left(na, now);
			if (now > na) {
				if (!s_has(list, F_CERT_EXPIRED, role, host) &&
				    s_add_expired(list, role, host, subject,
					cert_days_left(now, na), when) == -1)
					return -1;
			} else if (days <= CERT_EXPIRING_WARN_DAYS &&
				   (soon_idx < 0 || days < soon_days)) {
				soon_idx = i;
				soon_days = days;
				soon_na = na;
			}
		}
		if (!s_has(list, F_CERT_WEAK_KEY, role, host) &&
		    cert_key_weak(x, why, sizeof(why)) &&
		    finding_add(list, F_CERT_WEAK_KEY, role, host,
			"certificate %s has a weak %s", s_or_empty(subject),
			why) == -1)
			return -1;
		if (!s_has(list, F_CERT_WEAK_SIGNATURE, role, host) &&
		    cert_sig_weak(x, why, sizeof(why)) &&
		    finding_add(list, F_CERT_WEAK_SIGNATURE, role, host,
			"certificate %s is %s", s_or_empty(subject), why) == -1)
			return -1;
	}
	if (soon_idx >= 0 && !s_has(list, F_CERT_EXPIRING, role, host) &&
	    s_add_expiring(list, role, host, sk_X509_value(sent, soon_idx),
		soon_days, soon_na) == -1)
		return -1;
	if (leaf != NULL && !cert_host_match(leaf, host) &&
	    !s_has(list, F_CERT_HOSTNAME_MISMATCH, role, host)) {
		s_covered_names(leaf, names, sizeof(names));
		if (finding_add(list, F_CERT_HOSTNAME_MISMATCH, role, host,
			"certificate does not cover %s; it covers %s", host,
			names[0] ? names : "nothing readable") == -1)
			return -1;
	}
	if (trust_detail == NULL || trust_detail[0] == '\0')
		trust_detail = "no detail";
	if (trust == TRUST_INCOMPLETE &&
	    !s_has(list, F_CERT_CHAIN_INCOMPLETE, role, host) &&
	    finding_add(list, F_CERT_CHAIN_INCOMPLETE, role, host,
		"chain is missing an intermediate: %s", trust_detail) == -1)
		return -1;
	if (trust == TRUST_UNTRUSTED &&
	    !s_has(list, F_CERT_UNTRUSTED, role, host) &&
	    finding_add(list, F_CERT_UNTRUSTED, role, host,
		"chain is not trusted: %s", trust_detail) == -1)
		return -1;
	return 0;
}

static int
s_push_owned(STACK_OF(X509) * sk, X509 *x)
{
	if (!sk_X509_push(sk, x)) {
		X509_free(x);
		return -1;
	}
	return 0;
}

/* One or more concatenated DER certificates. */
static int
s_load_der(STACK_OF(X509) * sk, const unsigned char *buf, size_t len)
{
	const unsigned char *p = buf, *end = buf + len;
	X509 *x;

	while (p < end && sk_X509_num(sk) < CERT_LOAD_MAX) {
		x = d2i_X509(NULL, &p, (long)(end - p));
		if (x == NULL)
			break;
		if (s_push_owned(sk, x) == -1)
			return -1;
	}
	return 0;
}

static int
s_load_pkcs7(STACK_OF(X509) * sk, PKCS7 *p7)
{
	STACK_OF(X509) *certs = NULL;

	if (p7 == NULL)
		return 0;
	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		certs = p7->d.sign->cert;
	for (int i = 0;
	     i < sk_X509_num(certs) && sk_X509_num(sk) < CERT_LOAD_MAX; i++) {
		X509 *x = sk_X509_value(certs, i);

		if (!X509_up_ref(x) || s_push_owned(sk, x) == -1) {
			PKCS7_free(p7);
			return -1;
		}
	}
	PKCS7_free(p7);
	return 0;
}

/* Certificates carry no passphrase; never let OpenSSL prompt for one. */
static int
s_no_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static int
s_load_pem(STACK_OF(X509) * sk, const unsigned char *buf, size_t len)
{
	BIO *bio;
	X509 *x;
	int rc = 0;

	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return -1;
	while (sk_X509_num(sk) < CERT_LOAD_MAX &&
	       (x = PEM_read_bio_X509(bio, NULL, s_no_pass, NULL)) != NULL)
		if ((rc = s_push_owned(sk, x)) == -1)
			break;
	BIO_free(bio);
	if (rc == -1 || sk_X509_num(sk) > 0)
		return rc;
	/* Some CAs serve "-----BEGIN PKCS7-----" instead. */
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return -1;
	rc = s_load_pkcs7(sk, PEM_read_bio_PKCS7(bio, NULL, s_no_pass, NULL));
	BIO_free(bio);
	return rc;
}

STACK_OF(X509) * cert_load_any(const unsigned char *buf, size_t len)
{
	STACK_OF(X509) * sk;
	const unsigned char *p;
	int rc;

	if (buf == NULL || len == 0 || len > INT_MAX)
		return NULL;
	if ((sk = sk_X509_new_null()) == NULL)
		return NULL;
	rc = s_load_der(sk, buf, len);
	if (rc == 0 && sk_X509_num(sk) == 0) {
		p = buf;
		rc = s_load_pkcs7(sk, d2i_PKCS7(NULL, &p, (long)len));
	}
	if (rc == 0 && sk_X509_num(sk) == 0)
		rc = s_load_pem(sk, buf, len);
	ERR_clear_error();
	if (rc == -1 || sk_X509_num(sk) == 0) {
		sk_X509_pop_free(sk, X509_free);
		return NULL;
	}
	return sk;
}

struct cert_pool {
	STACK_OF(X509) * certs; /* oldest first */
	size_t cap;
};

struct cert_pool *
cert_pool_new(size_t cap)
{
	struct cert_pool *pool;

	if (cap == 0 || cap > INT_MAX ||
	    (pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	if ((pool->certs = sk_X509_new_null()) == NULL) {
		free(pool);
		return NULL;
	}
	pool->cap = cap;
	return pool;
}

static int
s_pool_has(const struct cert_pool *pool, const X509 *x)
{
	for (int i = 0; i < sk_X509_num(pool->certs); i++)
		if (X509_cmp(sk_X509_value(pool->certs, i), x) == 0)
			return 1;
	return 0;
}

int
cert_pool_add_chain(struct cert_pool *pool, STACK_OF(X509) * chain)
{
	int rc = 0;

	if (pool == NULL)
		return -1;
	for (int i = 1; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		/* Roots come from the store; leaves never issue anything. */
		if (X509_check_ca(x) == 0 || s_self_signed(x) ||
		    s_pool_has(pool, x))
			continue;
		while ((size_t)sk_X509_num(pool->certs) >= pool->cap)
			X509_free(sk_X509_shift(pool->certs));
		if (!X509_up_ref(x) || s_push_owned(pool->certs, x) == -1) {
			rc = -1;
			break;
		}
	}
	ERR_clear_error();
	return rc;
}

STACK_OF(X509) * cert_pool_stack(struct cert_pool *pool)
{
	return pool != NULL ? pool->certs : NULL;
}

void
cert_pool_free(struct cert_pool **pool)
{
	if (pool == NULL || *pool == NULL)
		return;
	sk_X509_pop_free((*pool)->certs, X509_free);
	free(*pool);
	*pool = NULL;
}
