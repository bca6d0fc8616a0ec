/* result_pb.c -- a probe result as the protobuf AgentMessage of the wire. */
#include "result_pb.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "abnf.h"
#include "finding.h"
#include "policy_parse.h"
#include "wire.h"

/*
 * Every block the protobuf-c structs point at is allocated through one
 * arena and released at once after packing, so no error path has to know
 * which parts were built.  Strings of r are borrowed when already UTF-8.
 */
struct arena {
	void **v;
	size_t n;
	size_t cap;
	int failed; /* an allocation failed: the encoding is abandoned */
};

struct encoder {
	struct arena arena;
	/* The certificates of the result, each distinct DER once. */
	Mtastswatch__V1__Certificate *cert[WIRE_CERTS_MAX];
	unsigned char sha[WIRE_CERTS_MAX][WIRE_SHA256_LEN];
	size_t n_certs;
};

/* Remembers p (malloc'd) for arena_free; frees it when that fails. */
static void *
s_track(struct arena *a, void *p)
{
	if (p == NULL) {
		a->failed = 1;
		return NULL;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		void **v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			free(p);
			a->failed = 1;
			return NULL;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = p;
	return p;
}

/* n zeroed elements of size each; NULL when n is 0 or out of memory. */
static void *
s_alloc(struct arena *a, size_t n, size_t size)
{
	if (n == 0)
		return NULL;
	return s_track(a, calloc(n, size));
}

static void
s_arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* s as a wire string: "" for NULL, s itself when UTF-8, else a clean copy
 * (and "" when that copy cannot be made: the arena is then failed). */
static char *
s_str(struct arena *a, const char *s)
{
	char *clean;

	if (s == NULL)
		return "";
	if (wire_utf8_valid(s, strlen(s)))
		return (char *)s;
	if ((clean = s_track(a, wire_utf8_clean(s, strlen(s)))) == NULL)
		return "";
	return clean;
}

/* The strings v[0..n) as a repeated string field. */
static char **
s_strv(struct arena *a, char *const *v, size_t n, size_t *out_n)
{
	char **out = s_alloc(a, n, sizeof(*out));

	*out_n = 0;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = s_str(a, v[i]);
	*out_n = n;
	return out;
}

/* The strings v[0..n) as a repeated bytes field (TXT records). */
static ProtobufCBinaryData *
s_bytesv(struct arena *a, char *const *v, size_t n, size_t *out_n)
{
	ProtobufCBinaryData *out = s_alloc(a, n, sizeof(*out));

	*out_n = 0;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i].data = (uint8_t *)v[i];
		out[i].len = v[i] != NULL ? strlen(v[i]) : 0;
	}
	*out_n = n;
	return out;
}

/*
 * The index of x among the result's certificates, adding it when new.
 * Returns -1 when it cannot be sent (too large, the table is full, out of
 * memory).
 */
static int
s_cert_index(struct encoder *e, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len;
	Mtastswatch__V1__Certificate *c;
	unsigned char *der, *p;
	int der_len;

	if (!X509_digest(x, EVP_sha256(), md, &md_len) ||
	    md_len != WIRE_SHA256_LEN)
		return -1;
	for (size_t i = 0; i < e->n_certs; i++)
		if (memcmp(e->sha[i], md, WIRE_SHA256_LEN) == 0)
			return (int)i;
	if (e->n_certs == WIRE_CERTS_MAX)
		return -1;
	der_len = i2d_X509(x, NULL);
	if (der_len <= 0 || der_len > WIRE_CERT_DER_MAX)
		return -1;
	if ((der = s_alloc(&e->arena, (size_t)der_len, 1)) == NULL ||
	    (c = s_alloc(&e->arena, 1, sizeof(*c))) == NULL)
		return -1;
	p = der;
	if (i2d_X509(x, &p) != der_len)
		return -1;
	mtastswatch__v1__certificate__init(c);
	c->der.data = der;
	c->der.len = (size_t)der_len;
	memcpy(e->sha[e->n_certs], md, WIRE_SHA256_LEN);
	e->cert[e->n_certs] = c;
	return (int)e->n_certs++;
}

static const char *
s_ocsp_name(const struct host_result *h)
{
	if (!h->evaluated || !h->eval.ocsp_checked)
		return NULL;
	switch (h->eval.ocsp) {
	case OCSP_STATUS_GOOD:
		return "good";
	case OCSP_STATUS_REVOKED:
		return "revoked";
	case OCSP_STATUS_UNKNOWN:
		return "unknown";
	}
	return NULL;
}

static uint32_t
s_u32(long v)
{
	if (v < 0)
		return 0;
	return (unsigned long)v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static Mtastswatch__V1__HostObservation *
s_host(struct encoder *e, const struct host_result *h)
{
	Mtastswatch__V1__HostObservation *o;
	int n_chain;

	if ((o = s_alloc(&e->arena, 1, sizeof(*o))) == NULL)
		return NULL;
	mtastswatch__v1__host_observation__init(o);
	o->host = s_str(&e->arena, h->host);
	o->addresses = s_strv(&e->arena, h->addrs, h->n_addrs, &o->n_addresses);
	o->ip = s_str(&e->arena, h->ip);
	o->tls_ok = h->tls_ok != 0;
	if (h->tls_ok) {
		o->tls_version = s_str(&e->arena, h->tls_version);
		o->cipher = s_str(&e->arena, h->cipher);
		o->handshake_ms = s_u32(h->handshake_ms);
	}
	o->verified = h->tls_ok && h->evaluated && h->eval.verified;
	o->ocsp = s_str(&e->arena, s_ocsp_name(h));
	o->error = s_str(&e->arena, h->error);
	n_chain = h->chain != NULL ? sk_X509_num(h->chain) : 0;
	if (n_chain > 0) {
		o->chain_sha256 = s_alloc(
		    &e->arena, (size_t)n_chain, sizeof(*o->chain_sha256));
		if (o->chain_sha256 == NULL)
			return NULL;
	}
	/* The chain is cut at the first certificate that cannot travel, so
	 * what is sent is still a prefix of what the server sent. */
	for (int i = 0; i < n_chain; i++) {
		int k = s_cert_index(e, sk_X509_value(h->chain, i));
		if (k == -1)
			break;
		o->chain_sha256[i].data = e->sha[k];
		o->chain_sha256[i].len = WIRE_SHA256_LEN;
		o->n_chain_sha256++;
	}
	return o;
}

/* The policy digest (64 hex digits) as 32 bytes; empty when there is none. */
static void
s_digest(struct arena *a, const char *hex, ProtobufCBinaryData *out)
{
	unsigned char *d;

	out->data = NULL;
	out->len = 0;
	if (strlen(hex) != 2 * WIRE_SHA256_LEN)
		return;
	if ((d = s_alloc(a, WIRE_SHA256_LEN, 1)) == NULL)
		return;
	for (size_t i = 0; i < WIRE_SHA256_LEN; i++) {
		int hi = abnf_hex_value((unsigned char)hex[2 * i]),
		    lo = abnf_hex_value((unsigned char)hex[2 * i + 1]);
		if (hi == -1 || lo == -1)
			return;
		d[i] = (unsigned char)(hi << 4 | lo);
	}
	out->data = d;
	out->len = WIRE_SHA256_LEN;
}

static Mtastswatch__V1__Severity
s_severity(enum severity sev)
{
	switch (sev) {
	case SEV_INFO:
		return MTASTSWATCH__V1__SEVERITY__SEVERITY_INFO;
	case SEV_WARNING:
		return MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING;
	case SEV_ERROR:
		return MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR;
	}
	return MTASTSWATCH__V1__SEVERITY__SEVERITY_UNSPECIFIED;
}

static int
s_findings(struct encoder *e, const struct finding_list *l,
    Mtastswatch__V1__ProbeResult *pr)
{
	size_t n = l->n < WIRE_FINDINGS_MAX ? l->n : WIRE_FINDINGS_MAX;
	Mtastswatch__V1__Finding *fv;

	if (n == 0)
		return 0;
	fv = s_alloc(&e->arena, n, sizeof(*fv));
	pr->findings = s_alloc(&e->arena, n, sizeof(*pr->findings));
	if (fv == NULL || pr->findings == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct finding *f = &l->v[i];

		mtastswatch__v1__finding__init(&fv[i]);
		fv[i].code = s_str(&e->arena, finding_code_name(f->code));
		fv[i].severity = s_severity(f->severity);
		fv[i].subject = s_str(&e->arena, f->subject);
		fv[i].detail = s_str(&e->arena, f->detail);
		fv[i].rfc8460 =
		    s_str(&e->arena, finding_rfc8460_type(f->code, f->role));
		pr->findings[i] = &fv[i];
	}
	pr->n_findings = n;
	return 0;
}

static int
s_mx(struct encoder *e, const struct probe_result *r,
    Mtastswatch__V1__ProbeResult *pr)
{
	Mtastswatch__V1__MxObservation *mv;

	if (r->n_mx == 0)
		return 0;
	mv = s_alloc(&e->arena, r->n_mx, sizeof(*mv));
	pr->mx = s_alloc(&e->arena, r->n_mx, sizeof(*pr->mx));
	if (mv == NULL || pr->mx == NULL)
		return -1;
	/* As in the JSON, an MX slot never filled in is left out. */
	for (size_t i = 0; i < r->n_mx && pr->n_mx < WIRE_MX_MAX; i++) {
		const struct mx_result *mx = &r->mx[i];
		Mtastswatch__V1__MxObservation *m = &mv[pr->n_mx];

		if (mx->h.host == NULL)
			continue;
		mtastswatch__v1__mx_observation__init(m);
		if ((m->host = s_host(e, &mx->h)) == NULL)
			return -1;
		m->preference = s_u32(mx->preference);
		m->starttls = mx->starttls != 0;
		m->policy_match = mx->policy_match < 0 ? -1
				  : mx->policy_match   ? 1
						       : 0;
		pr->mx[pr->n_mx++] = m;
	}
	return 0;
}

static void
s_policy(
    struct encoder *e, const struct probe_result *r, Mtastswatch__V1__Policy *p)
{
	int parsed = r->policy_parsed != 0;

	p->url = s_str(&e->arena, r->policy_url);
	p->http_status = s_u32(r->http_status);
	p->content_type = s_str(&e->arena, r->content_type);
	s_digest(&e->arena, r->policy_sha256, &p->sha256);
	p->mode = s_str(&e->arena, parsed && r->policy.mode != STS_MODE_UNSET
				       ? policy_mode_name(r->policy.mode)
				       : NULL);
	p->mx = s_strv(&e->arena, r->policy.mx, r->policy.n_mx, &p->n_mx);
	p->max_age =
	    parsed && r->policy.max_age >= 0 ? (int64_t)r->policy.max_age : -1;
	p->valid = parsed && r->policy_valid;
	if (r->policy_raw != NULL) {
		p->raw.data = (uint8_t *)r->policy_raw;
		p->raw.len = r->policy_raw_len < WIRE_POLICY_RAW_MAX
				 ? r->policy_raw_len
				 : WIRE_POLICY_RAW_MAX;
	}
}

int
result_pb_encode(const struct probe_result *r, uint64_t seq, uint64_t round,
    unsigned char **buf, size_t *len)
{
	Mtastswatch__V1__AgentMessage m = MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__ProbeResult pr = MTASTSWATCH__V1__PROBE_RESULT__INIT;
	Mtastswatch__V1__StsTxt sts = MTASTSWATCH__V1__STS_TXT__INIT;
	Mtastswatch__V1__Policy pol = MTASTSWATCH__V1__POLICY__INIT;
	Mtastswatch__V1__TlsRpt rpt = MTASTSWATCH__V1__TLS_RPT__INIT;
	struct encoder *e;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (seq == 0 || !wire_host_valid(r->domain))
		return -1;
	/* About 2 KiB of digests: kept off the stack of event callbacks. */
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;

	pr.seq = seq;
	pr.round = round;
	pr.domain = r->domain;
	pr.vantage = s_str(&e->arena, r->vantage);
	pr.resolver = s_str(&e->arena, r->resolver);
	pr.started_at_ms = (int64_t)r->started_at.tv_sec * 1000 +
			   r->started_at.tv_nsec / 1000000;
	pr.duration_ms = s_u32(r->duration_ms);
	pr.completed = r->completed != 0;

	sts.records = s_bytesv(
	    &e->arena, r->sts_records, r->n_sts_records, &sts.n_records);
	sts.id = s_str(&e->arena, r->sts_id);
	sts.valid = r->sts_valid != 0;
	pr.sts_txt = &sts;

	s_policy(e, r, &pol);
	pr.policy = &pol;

	if (r->policy_host.host != NULL &&
	    (pr.policy_host = s_host(e, &r->policy_host)) == NULL)
		goto out;
	if (s_mx(e, r, &pr) == -1)
		goto out;

	rpt.records = s_bytesv(
	    &e->arena, r->tlsrpt_records, r->n_tlsrpt_records, &rpt.n_records);
	rpt.rua = s_strv(&e->arena, r->rua, r->n_rua, &rpt.n_rua);
	rpt.valid = r->tlsrpt_valid != 0;
	pr.tlsrpt = &rpt;

	if (s_findings(e, &r->findings, &pr) == -1)
		goto out;

	pr.n_certificates = e->n_certs;
	pr.certificates = e->cert;

	m.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT;
	m.result = &pr;
	if (!e->arena.failed)
		rc = wire_pack(&m.base, buf, len);
out:
	s_arena_free(&e->arena);
	free(e);
	return rc;
}
