/* test_wire.c -- result_pb encoding and the wire decoders' checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "../lib/testcert.h"
#include "probe.h"
#include "result_pb.h"
#include "wire.h"

#define DAY 86400L

/* A small PKI made once: key generation dominates run time. */
static struct {
	EVP_PKEY *k_root, *k_inter, *k_leaf;
	X509 *root, *inter, *policy_leaf, *mx_leaf;
	unsigned char *der[3]; /* policy_leaf, inter, mx_leaf */
	int der_len[3];
} fx;

static X509 *
mk(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    int ca, long serial)
{
	time_t now = time(NULL);
	struct tc_opts o = {.cn = cn,
	    .san = san,
	    .key = key,
	    .issuer = issuer,
	    .issuer_key = ikey,
	    .ca = ca,
	    .serial = serial,
	    .not_before = now - DAY,
	    .not_after = now + 90 * DAY};

	return tc_cert(&o);
}

static int
setup(void **state)
{
	X509 *v[3];

	(void)state;
	fx.k_root = tc_key_ec("P-256");
	fx.k_inter = tc_key_ec("P-256");
	fx.k_leaf = tc_key_ec("P-256");
	if (fx.k_root == NULL || fx.k_inter == NULL || fx.k_leaf == NULL)
		return -1;
	fx.root = mk("Wire Root", NULL, fx.k_root, NULL, NULL, 1, 1);
	fx.inter = mk("Wire Inter", NULL, fx.k_inter, fx.root, fx.k_root, 1, 2);
	fx.policy_leaf = mk("mta-sts.example.com", "DNS:mta-sts.example.com",
	    fx.k_leaf, fx.inter, fx.k_inter, 0, 3);
	fx.mx_leaf =
	    mk("mx1.example.com", "DNS:mx1.example.com,DNS:mx2.example.com",
		fx.k_leaf, fx.inter, fx.k_inter, 0, 4);
	if (fx.root == NULL || fx.inter == NULL || fx.policy_leaf == NULL ||
	    fx.mx_leaf == NULL)
		return -1;
	v[0] = fx.policy_leaf;
	v[1] = fx.inter;
	v[2] = fx.mx_leaf;
	for (int i = 0; i < 3; i++) {
		fx.der[i] = NULL;
		if ((fx.der_len[i] = i2d_X509(v[i], &fx.der[i])) <= 0)
			return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		OPENSSL_free(fx.der[i]);
	X509_free(fx.root);
	X509_free(fx.inter);
	X509_free(fx.policy_leaf);
	X509_free(fx.mx_leaf);
	EVP_PKEY_free(fx.k_root);
	EVP_PKEY_free(fx.k_inter);
	EVP_PKEY_free(fx.k_leaf);
	return 0;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

static char **
strv(size_t n, const char *a, const char *b)
{
	char **v = calloc(n, sizeof(*v));

	assert_non_null(v);
	if (n > 0)
		v[0] = xstrdup(a);
	if (n > 1)
		v[1] = xstrdup(b);
	return v;
}

#define POLICY_BODY                                                            \
	"version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\n"           \
	"mx: *.example.com\r\nmax_age: 86400\r\n"
#define POLICY_SHA                                                             \
	"00112233445566778899aabbccddeeff"                                     \
	"0123456789abcdefFEDCBA9876543210"

/*
 * A result as a probe fills it: policy host chain leaf + intermediate, two
 * MX sharing one leaf (the first also sends the intermediate), findings.
 * Free with probe_result_free.
 */
static struct probe_result *
mk_result(void)
{
	struct probe_result *r = calloc(1, sizeof(*r));
	struct host_result *ph;

	assert_non_null(r);
	r->domain = xstrdup("example.com");
	r->vantage = xstrdup("fra1");
	r->resolver = xstrdup("127.0.0.1:53");
	r->started_at.tv_sec = 1700000000;
	r->started_at.tv_nsec = 123456789;
	r->duration_ms = 1234;
	r->completed = 1;

	r->sts_records = strv(1, "v=STSv1; id=20240101", NULL);
	r->n_sts_records = 1;
	snprintf(r->sts_id, sizeof(r->sts_id), "20240101");
	r->sts_valid = 1;

	r->policy_url =
	    xstrdup("https://mta-sts.example.com/.well-known/mta-sts.txt");
	r->http_status = 200;
	r->content_type = xstrdup("text/plain");
	snprintf(r->policy_sha256, sizeof(r->policy_sha256), "%s", POLICY_SHA);
	r->policy_raw = xstrdup(POLICY_BODY);
	r->policy_raw_len = strlen(POLICY_BODY);
	r->policy_parsed = 1;
	r->policy_valid = 1;
	r->policy.version_ok = 1;
	r->policy.mode = STS_MODE_TESTING;
	r->policy.max_age = 86400;
	r->policy.mx = strv(2, "mx1.example.com", "*.example.com");
	r->policy.n_mx = 2;

	ph = &r->policy_host;
	ph->host = xstrdup("mta-sts.example.com");
	ph->addrs = strv(2, "192.0.2.1", "2001:db8::1");
	ph->n_addrs = 2;
	snprintf(ph->ip, sizeof(ph->ip), "192.0.2.1");
	ph->tls_ok = 1;
	snprintf(ph->tls_version, sizeof(ph->tls_version), "TLSv1.3");
	snprintf(ph->cipher, sizeof(ph->cipher), "TLS_AES_128_GCM_SHA256");
	ph->handshake_ms = 42;
	ph->chain = tc_stack(fx.policy_leaf, fx.inter, NULL, NULL);
	assert_int_equal(sk_X509_num(ph->chain), 2);
	ph->evaluated = 1;
	ph->eval.verified = 1;
	ph->eval.ocsp_checked = 1;
	ph->eval.ocsp = OCSP_STATUS_GOOD;

	r->mx = calloc(3, sizeof(*r->mx));
	assert_non_null(r->mx);
	r->n_mx = 3; /* the third slot was never filled in: left out */
	r->mx[0].h.host = xstrdup("mx1.example.com");
	r->mx[0].h.addrs = strv(1, "192.0.2.25", NULL);
	r->mx[0].h.n_addrs = 1;
	snprintf(r->mx[0].h.ip, sizeof(r->mx[0].h.ip), "192.0.2.25");
	r->mx[0].h.tls_ok = 1;
	snprintf(
	    r->mx[0].h.tls_version, sizeof(r->mx[0].h.tls_version), "TLSv1.2");
	snprintf(r->mx[0].h.cipher, sizeof(r->mx[0].h.cipher),
	    "ECDHE-ECDSA-AES128-GCM-SHA256");
	r->mx[0].h.handshake_ms = 7;
	r->mx[0].h.chain = tc_stack(fx.mx_leaf, fx.inter, NULL, NULL);
	r->mx[0].h.evaluated = 1;
	r->mx[0].h.eval.verified = 1;
	r->mx[0].preference = 10;
	r->mx[0].connected = 1;
	r->mx[0].starttls = 1;
	r->mx[0].policy_match = 1;

	r->mx[1].h.host = xstrdup("mx2.example.com");
	r->mx[1].h.addrs = strv(1, "192.0.2.26", NULL);
	r->mx[1].h.n_addrs = 1;
	snprintf(r->mx[1].h.ip, sizeof(r->mx[1].h.ip), "192.0.2.26");
	r->mx[1].h.tls_ok = 1;
	snprintf(
	    r->mx[1].h.tls_version, sizeof(r->mx[1].h.tls_version), "TLSv1.3");
	snprintf(r->mx[1].h.cipher, sizeof(r->mx[1].h.cipher), "X");
	r->mx[1].h.chain = tc_stack(fx.mx_leaf, NULL, NULL, NULL);
	r->mx[1].h.evaluated = 1;
	r->mx[1].h.eval.verified = 0;
	r->mx[1].h.eval.ocsp_checked = 1;
	r->mx[1].h.eval.ocsp = OCSP_STATUS_REVOKED;
	snprintf(r->mx[1].h.error, sizeof(r->mx[1].h.error), "bad \xff byte");
	r->mx[1].preference = 20;
	r->mx[1].connected = 1;
	r->mx[1].starttls = 0;
	r->mx[1].policy_match = 0;

	r->tlsrpt_records =
	    strv(1, "v=TLSRPTv1; rua=mailto:tls@example.com", NULL);
	r->n_tlsrpt_records = 1;
	r->rua = strv(1, "mailto:tls@example.com", NULL);
	r->n_rua = 1;
	r->tlsrpt_valid = 1;

	assert_int_equal(finding_add(&r->findings, F_CERT_HOSTNAME_MISMATCH,
			     ROLE_MX, "mx2.example.com", "leaf has \xff"),
	    0);
	assert_int_equal(finding_add(&r->findings, F_POLICY_MODE_TESTING,
			     ROLE_DOMAIN, "example.com", "mode testing"),
	    0);
	assert_int_equal(finding_add(&r->findings, F_CERT_UNTRUSTED,
			     ROLE_POLICY_HOST, "mta-sts.example.com", "x"),
	    0);
	assert_int_equal(finding_add(&r->findings, F_TLSRPT_MISSING,
			     ROLE_DOMAIN, "example.com", "none"),
	    0);
	return r;
}

/* The certificate a chain reference names; fails when there is none. */
static const ProtobufCBinaryData *
resolve(const Mtastswatch__V1__ProbeResult *pr, const ProtobufCBinaryData *ref)
{
	unsigned char md[32];

	assert_int_equal(ref->len, 32);
	for (size_t i = 0; i < pr->n_certificates; i++) {
		const ProtobufCBinaryData *d = &pr->certificates[i]->der;
		assert_true(
		    EVP_Digest(d->data, d->len, md, NULL, EVP_sha256(), NULL));
		if (memcmp(md, ref->data, 32) == 0)
			return d;
	}
	fail_msg("chain reference without certificate");
	return NULL;
}

static void
assert_der(const ProtobufCBinaryData *d, int which)
{
	assert_int_equal(d->len, fx.der_len[which]);
	assert_memory_equal(d->data, fx.der[which], d->len);
}

static void
assert_finding(const Mtastswatch__V1__Finding *f, const char *code,
    Mtastswatch__V1__Severity sev, const char *subject, const char *detail,
    const char *rfc8460)
{
	assert_string_equal(f->code, code);
	assert_int_equal(f->severity, sev);
	assert_string_equal(f->subject, subject);
	assert_string_equal(f->detail, detail);
	assert_string_equal(f->rfc8460, rfc8460);
}

static void
test_result_round_trip(void **state)
{
	struct probe_result *r = mk_result();
	Mtastswatch__V1__AgentMessage *m;
	const Mtastswatch__V1__ProbeResult *pr;
	const Mtastswatch__V1__HostObservation *h;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	assert_int_equal(result_pb_encode(r, 7, 2833, &buf, &len), 0);
	assert_non_null(buf);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_string_equal(err, "");
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT);
	pr = m->result;
	assert_int_equal(pr->seq, 7);
	assert_int_equal(pr->round, 2833);
	assert_string_equal(pr->domain, "example.com");
	assert_string_equal(pr->vantage, "fra1");
	assert_string_equal(pr->resolver, "127.0.0.1:53");
	assert_int_equal(pr->started_at_ms, 1700000000123LL);
	assert_int_equal(pr->duration_ms, 1234);
	assert_true(pr->completed);

	assert_non_null(pr->sts_txt);
	assert_int_equal(pr->sts_txt->n_records, 1);
	assert_int_equal(pr->sts_txt->records[0].len, 20);
	assert_memory_equal(
	    pr->sts_txt->records[0].data, "v=STSv1; id=20240101", 20);
	assert_string_equal(pr->sts_txt->id, "20240101");
	assert_true(pr->sts_txt->valid);

	assert_non_null(pr->policy);
	assert_string_equal(pr->policy->url,
	    "https://mta-sts.example.com/.well-known/mta-sts.txt");
	assert_int_equal(pr->policy->http_status, 200);
	assert_string_equal(pr->policy->content_type, "text/plain");
	assert_int_equal(pr->policy->sha256.len, 32);
	assert_int_equal(pr->policy->sha256.data[0], 0x00);
	assert_int_equal(pr->policy->sha256.data[1], 0x11);
	assert_int_equal(pr->policy->sha256.data[15], 0xff);
	assert_int_equal(pr->policy->sha256.data[16], 0x01);
	assert_int_equal(pr->policy->sha256.data[24], 0xfe);
	assert_int_equal(pr->policy->sha256.data[31], 0x10);
	assert_string_equal(pr->policy->mode, "testing");
	assert_int_equal(pr->policy->n_mx, 2);
	assert_string_equal(pr->policy->mx[0], "mx1.example.com");
	assert_string_equal(pr->policy->mx[1], "*.example.com");
	assert_int_equal(pr->policy->max_age, 86400);
	assert_true(pr->policy->valid);
	assert_int_equal(pr->policy->raw.len, strlen(POLICY_BODY));
	assert_memory_equal(
	    pr->policy->raw.data, POLICY_BODY, strlen(POLICY_BODY));

	/* Three distinct DERs among five chain positions: three entries,
	 * each DER exactly once. */
	assert_int_equal(pr->n_certificates, 3);
	for (int i = 0; i < 3; i++) {
		int found = 0;
		for (size_t k = 0; k < pr->n_certificates; k++)
			if (pr->certificates[k]->der.len ==
				(size_t)fx.der_len[i] &&
			    memcmp(pr->certificates[k]->der.data, fx.der[i],
				(size_t)fx.der_len[i]) == 0)
				found++;
		assert_int_equal(found, 1);
	}

	h = pr->policy_host;
	assert_non_null(h);
	assert_string_equal(h->host, "mta-sts.example.com");
	assert_int_equal(h->n_addresses, 2);
	assert_string_equal(h->addresses[0], "192.0.2.1");
	assert_string_equal(h->addresses[1], "2001:db8::1");
	assert_string_equal(h->ip, "192.0.2.1");
	assert_true(h->tls_ok);
	assert_string_equal(h->tls_version, "TLSv1.3");
	assert_string_equal(h->cipher, "TLS_AES_128_GCM_SHA256");
	assert_true(h->verified);
	assert_int_equal(h->handshake_ms, 42);
	assert_string_equal(h->ocsp, "good");
	assert_string_equal(h->error, "");
	assert_int_equal(h->n_chain_sha256, 2);
	assert_der(resolve(pr, &h->chain_sha256[0]), 0);
	assert_der(resolve(pr, &h->chain_sha256[1]), 1);

	assert_int_equal(pr->n_mx, 2);
	h = pr->mx[0]->host;
	assert_string_equal(h->host, "mx1.example.com");
	assert_int_equal(h->n_addresses, 1);
	assert_string_equal(h->addresses[0], "192.0.2.25");
	assert_string_equal(h->ip, "192.0.2.25");
	assert_string_equal(h->tls_version, "TLSv1.2");
	assert_string_equal(h->cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
	assert_int_equal(h->handshake_ms, 7);
	assert_true(h->verified);
	assert_string_equal(h->ocsp, "");
	assert_int_equal(h->n_chain_sha256, 2);
	assert_der(resolve(pr, &h->chain_sha256[0]), 2);
	assert_der(resolve(pr, &h->chain_sha256[1]), 1);
	assert_int_equal(pr->mx[0]->preference, 10);
	assert_true(pr->mx[0]->starttls);
	assert_int_equal(pr->mx[0]->policy_match, 1);

	h = pr->mx[1]->host;
	assert_string_equal(h->host, "mx2.example.com");
	assert_false(h->verified);
	assert_string_equal(h->ocsp, "revoked");
	assert_string_equal(h->error, "bad \xef\xbf\xbd byte");
	assert_int_equal(h->n_chain_sha256, 1);
	assert_der(resolve(pr, &h->chain_sha256[0]), 2);
	/* The same leaf, referred to by the same digest. */
	assert_memory_equal(
	    h->chain_sha256[0].data, pr->mx[0]->host->chain_sha256[0].data, 32);
	assert_int_equal(pr->mx[1]->preference, 20);
	assert_false(pr->mx[1]->starttls);
	assert_int_equal(pr->mx[1]->policy_match, 0);

	assert_non_null(pr->tlsrpt);
	assert_int_equal(pr->tlsrpt->n_records, 1);
	assert_memory_equal(pr->tlsrpt->records[0].data,
	    "v=TLSRPTv1; rua=mailto:tls@example.com",
	    pr->tlsrpt->records[0].len);
	assert_int_equal(pr->tlsrpt->records[0].len, 38);
	assert_int_equal(pr->tlsrpt->n_rua, 1);
	assert_string_equal(pr->tlsrpt->rua[0], "mailto:tls@example.com");
	assert_true(pr->tlsrpt->valid);

	assert_int_equal(pr->n_findings, 4);
	assert_finding(pr->findings[0], "CERT_HOSTNAME_MISMATCH",
	    MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR, "mx2.example.com",
	    "leaf has \xef\xbf\xbd", "certificate-host-mismatch");
	assert_finding(pr->findings[1], "POLICY_MODE_TESTING",
	    MTASTSWATCH__V1__SEVERITY__SEVERITY_INFO, "example.com",
	    "mode testing", "");
	assert_finding(pr->findings[2], "CERT_UNTRUSTED",
	    MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR, "mta-sts.example.com",
	    "x", "sts-webpki-invalid");
	assert_finding(pr->findings[3], "TLSRPT_MISSING",
	    MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING, "example.com", "none",
	    "");

	wire_agent_free(&m);
	assert_null(m);
	free(buf);
	probe_result_free(&r);
}

/* A result with no policy fetched and no TLS: absent values stay absent. */
static void
test_result_sparse(void **state)
{
	struct probe_result *r = calloc(1, sizeof(*r));
	Mtastswatch__V1__AgentMessage *m;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	assert_non_null(r);
	r->domain = xstrdup("example.net");
	r->policy.max_age = -1;
	r->policy_parsed = 0;
	r->policy.mode = STS_MODE_ENFORCE; /* not parsed: must not show */
	snprintf(r->policy_sha256, sizeof(r->policy_sha256), "abc");
	assert_int_equal(result_pb_encode(r, 1, 0, &buf, &len), 0);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_string_equal(m->result->domain, "example.net");
	assert_null(m->result->policy_host);
	assert_int_equal(m->result->n_mx, 0);
	assert_int_equal(m->result->n_certificates, 0);
	assert_int_equal(m->result->n_findings, 0);
	assert_string_equal(m->result->policy->mode, "");
	assert_int_equal(m->result->policy->max_age, -1);
	assert_int_equal(m->result->policy->sha256.len, 0);
	assert_int_equal(m->result->policy->raw.len, 0);
	assert_false(m->result->policy->valid);
	assert_false(m->result->completed);
	wire_agent_free(&m);
	free(buf);
	probe_result_free(&r);
}

static void
test_result_encode_refuses(void **state)
{
	struct probe_result *r = mk_result();
	unsigned char *buf = (unsigned char *)"x";
	size_t len = 1;

	(void)state;
	assert_int_equal(result_pb_encode(r, 0, 1, &buf, &len), -1);
	assert_null(buf);
	assert_int_equal(len, 0);
	free(r->domain);
	r->domain = xstrdup("not_a_host");
	assert_int_equal(result_pb_encode(r, 1, 1, &buf, &len), -1);
	assert_null(buf);
	probe_result_free(&r);
}

/*
 * A minimal valid result built straight from protobuf-c structs, so that
 * each rejection test can break exactly one thing an agent never would.
 * It points into itself: never copy one.
 */
struct mini {
	Mtastswatch__V1__AgentMessage msg;
	Mtastswatch__V1__ProbeResult pr;
	Mtastswatch__V1__HostObservation ph;
	Mtastswatch__V1__Policy pol;
	Mtastswatch__V1__Certificate cert;
	Mtastswatch__V1__Certificate *certs[1];
	Mtastswatch__V1__Finding finding;
	Mtastswatch__V1__Finding *findings[1];
	ProtobufCBinaryData ref[1];
	unsigned char sha[32];
};

static void
mini_init(struct mini *m)
{
	memset(m, 0, sizeof(*m));
	mtastswatch__v1__agent_message__init(&m->msg);
	mtastswatch__v1__probe_result__init(&m->pr);
	mtastswatch__v1__host_observation__init(&m->ph);
	mtastswatch__v1__policy__init(&m->pol);
	mtastswatch__v1__certificate__init(&m->cert);
	mtastswatch__v1__finding__init(&m->finding);
	m->cert.der.data = fx.der[1];
	m->cert.der.len = (size_t)fx.der_len[1];
	m->certs[0] = &m->cert;
	assert_true(EVP_Digest(fx.der[1], (size_t)fx.der_len[1], m->sha, NULL,
	    EVP_sha256(), NULL));
	m->ref[0].data = m->sha;
	m->ref[0].len = 32;
	m->ph.host = "mta-sts.example.com";
	m->ph.chain_sha256 = m->ref;
	m->ph.n_chain_sha256 = 1;
	m->finding.code = "CERT_EXPIRED";
	m->finding.severity = MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR;
	m->finding.subject = "mta-sts.example.com";
	m->findings[0] = &m->finding;
	m->pol.raw.data = (uint8_t *)"version: STSv1\n";
	m->pol.raw.len = 15;
	m->pr.seq = 1;
	m->pr.domain = "example.com";
	m->pr.policy = &m->pol;
	m->pr.policy_host = &m->ph;
	m->pr.certificates = m->certs;
	m->pr.n_certificates = 1;
	m->pr.findings = m->findings;
	m->pr.n_findings = 1;
	m->msg.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_RESULT;
	m->msg.result = &m->pr;
}

static unsigned char *
pack(const ProtobufCMessage *msg, size_t *len)
{
	unsigned char *buf;

	assert_int_equal(wire_pack(msg, &buf, len), 0);
	return buf;
}

/* msg is refused by wire_agent_decode with a reason containing why. */
static void
expect_agent_reject(const Mtastswatch__V1__AgentMessage *msg, const char *why)
{
	Mtastswatch__V1__AgentMessage *m;
	unsigned char *buf;
	size_t len;
	char err[128];

	buf = pack(&msg->base, &len);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	free(buf);
	if (m != NULL) {
		wire_agent_free(&m);
		fail_msg("accepted, expected \"%s\"", why);
	}
	if (strstr(err, why) == NULL)
		fail_msg("refused with \"%s\", expected \"%s\"", err, why);
}

static void
expect_agent_ok(const Mtastswatch__V1__AgentMessage *msg)
{
	Mtastswatch__V1__AgentMessage *m;
	unsigned char *buf;
	size_t len;
	char err[128];

	buf = pack(&msg->base, &len);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	free(buf);
	if (m == NULL)
		fail_msg("refused: %s", err);
	wire_agent_free(&m);
}

static void
test_mini_accepted(void **state)
{
	struct mini m;

	(void)state;
	mini_init(&m);
	expect_agent_ok(&m.msg);
	/* A code this build does not know: a newer agent may add codes. */
	m.finding.code = "SOME_FUTURE_CODE_2";
	expect_agent_ok(&m.msg);
	/* Bytes fields carry anything, strings only UTF-8. */
	m.pol.raw.data = (uint8_t *)"\xff\xfe\x00";
	m.pol.raw.len = 3;
	expect_agent_ok(&m.msg);
}

static void
test_reject_empty(void **state)
{
	char err[128];

	(void)state;
	assert_null(wire_agent_decode("", 0, err, sizeof(err)));
	assert_string_equal(err, "empty message");
	assert_null(wire_agent_decode(NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "empty message");
	assert_null(wire_collector_decode("", 0, err, sizeof(err)));
	assert_string_equal(err, "empty message");
}

static void
test_reject_oversized(void **state)
{
	unsigned char *big = calloc(1, WIRE_MAX + 1);
	unsigned char *buf;
	char err[128], *reason;
	size_t len, n;
	Mtastswatch__V1__AgentMessage *m;

	(void)state;
	assert_non_null(big);
	assert_null(wire_agent_decode(big, WIRE_MAX + 1, err, sizeof(err)));
	assert_string_equal(err, "oversized message: 4194305 bytes");
	assert_null(wire_collector_decode(big, WIRE_MAX + 1, err, sizeof(err)));
	assert_string_equal(err, "oversized message: 4194305 bytes");
	free(big);

	/* A gap whose reason makes the message exactly WIRE_MAX is decoded;
	 * one byte more is not even encoded. */
	n = WIRE_MAX - 16;
	reason = malloc(WIRE_MAX);
	assert_non_null(reason);
	memset(reason, 'a', WIRE_MAX);
	reason[n] = '\0';
	assert_int_equal(wire_agent_encode_gap(1, 2, reason, &buf, &len), 0);
	free(buf);
	reason[n] = 'a';
	n += WIRE_MAX - len;
	reason[n] = '\0';
	assert_int_equal(wire_agent_encode_gap(1, 2, reason, &buf, &len), 0);
	assert_int_equal(len, WIRE_MAX);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(strlen(m->gap->reason), n);
	wire_agent_free(&m);
	free(buf);
	reason[n] = 'a';
	reason[n + 1] = '\0';
	assert_int_equal(wire_agent_encode_gap(1, 2, reason, &buf, &len), -1);
	assert_null(buf);
	free(reason);
}

/*
 * Field number 0 spelled as a two-byte varint tag: protobuf-c 1.4 keeps it
 * as an unknown field and would write it back as a tag it refuses, so a
 * message we accepted could not be forwarded (found by fuzz_wire).
 */
static void
test_reject_field_zero(void **state)
{
	static const unsigned char msg[] = {0x0a, 0x00, 0x81, 0x00, 0x0a, 0x00,
	    0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00};
	Mtastswatch__V1__AgentMessage *m;
	char err[128];

	(void)state;
	m = wire_agent_decode(msg, sizeof(msg), err, sizeof(err));
	assert_null(m);
	assert_non_null(strstr(err, "field number 0"));
}

static void
test_reject_garbage(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} garbage[] = {
	    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* varint */
	    {"\x0f", 1},		/* wire type 7 */
	    {"\x1a\x10\x08\x01", 4},	/* length past the end */
	    {"GET / HTTP/1.1\r\n", 16}, /* not protobuf at all */
	    {"\x1a\x02\x12\x05", 4},	/* nested length past the end */
	};
	struct mini mini;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		err[0] = '\0';
		assert_null(wire_agent_decode(
		    garbage[i].bytes, garbage[i].len, err, sizeof(err)));
		assert_string_equal(err, "malformed protobuf");
		assert_null(wire_collector_decode(
		    garbage[i].bytes, garbage[i].len, err, sizeof(err)));
		assert_string_equal(err, "malformed protobuf");
	}
	/* A valid result cut short by one byte. */
	mini_init(&mini);
	buf = pack(&mini.msg.base, &len);
	assert_null(wire_agent_decode(buf, len - 1, err, sizeof(err)));
	assert_string_equal(err, "malformed protobuf");
	free(buf);
	/* A body this build does not know (field 5). */
	assert_null(wire_agent_decode("\x2a\x00", 2, err, sizeof(err)));
	assert_string_equal(err, "message without known body");
}

static void
test_reject_seq0(void **state)
{
	struct mini m;

	(void)state;
	mini_init(&m);
	m.pr.seq = 0;
	expect_agent_reject(&m.msg, "result without seq");
}

static void
test_reject_domain(void **state)
{
	static const char *bad[] = {"", "com", "example.com.", ".example.com",
	    "a..example", "-a.example", "a-.example", "a_b.example",
	    "a b.example", "ex\xc3\xa4mple.com", "*.example.com"};
	static const char *good[] = {
	    "a.b", "xn--bcher-kva.example", "A-1.Example.COM", "0.example"};
	char label[70], longname[300];
	struct mini m;

	(void)state;
	mini_init(&m);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.pr.domain = (char *)bad[i];
		expect_agent_reject(&m.msg, "bad domain");
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		m.pr.domain = (char *)good[i];
		expect_agent_ok(&m.msg);
	}
	/* Labels of 63 and 64 characters. */
	memset(label, 'a', sizeof(label));
	snprintf(longname, sizeof(longname), "%.63s.example", label);
	m.pr.domain = longname;
	expect_agent_ok(&m.msg);
	snprintf(longname, sizeof(longname), "%.64s.example", label);
	expect_agent_reject(&m.msg, "bad domain");
	/* 253 characters, then 254. */
	snprintf(longname, sizeof(longname), "%.63s.%.63s.%.63s.%.61s", label,
	    label, label, label);
	assert_int_equal(strlen(longname), 253);
	expect_agent_ok(&m.msg);
	snprintf(longname, sizeof(longname), "%.63s.%.63s.%.63s.%.62s", label,
	    label, label, label);
	expect_agent_reject(&m.msg, "bad domain");
}

static void
test_reject_chain_ref(void **state)
{
	struct mini m;
	unsigned char other[32];

	(void)state;
	mini_init(&m);
	memcpy(other, m.sha, sizeof(other));
	other[31] ^= 1;
	m.ref[0].data = other;
	expect_agent_reject(
	    &m.msg, "policy host chain ref 0 without certificate");
	m.ref[0].data = m.sha;
	m.ref[0].len = 31;
	expect_agent_reject(&m.msg, "policy host chain ref 0: 31 bytes");
	/* A reference from an MX is checked as well. */
	{
		Mtastswatch__V1__MxObservation mx =
		    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
		Mtastswatch__V1__HostObservation h =
		    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
		Mtastswatch__V1__MxObservation *mxv[1] = {&mx};
		ProtobufCBinaryData ref = {32, other};

		m.ref[0].len = 32;
		h.host = "mx.example.com";
		h.chain_sha256 = &ref;
		h.n_chain_sha256 = 1;
		mx.host = &h;
		m.pr.mx = mxv;
		m.pr.n_mx = 1;
		expect_agent_reject(
		    &m.msg, "mx 0 chain ref 0 without certificate");
		ref.data = m.sha;
		expect_agent_ok(&m.msg);
		mx.host = NULL;
		expect_agent_reject(&m.msg, "mx 0 without host");
	}
	/* Without its certificate the policy host's reference dangles. */
	mini_init(&m);
	m.pr.n_certificates = 0;
	expect_agent_reject(&m.msg, "without certificate");
}

static void
test_reject_not_der(void **state)
{
	struct mini m;
	unsigned char *der = malloc(WIRE_CERT_DER_MAX + 1);

	(void)state;
	assert_non_null(der);
	mini_init(&m);
	m.cert.der.data = (uint8_t *)"hello, not a certificate";
	m.cert.der.len = 24;
	expect_agent_reject(&m.msg, "certificate 0: not DER");
	/* A real DER with one byte of trailing garbage. */
	memcpy(der, fx.der[1], (size_t)fx.der_len[1]);
	der[fx.der_len[1]] = 0;
	m.cert.der.data = der;
	m.cert.der.len = (size_t)fx.der_len[1] + 1;
	expect_agent_reject(&m.msg, "certificate 0: not DER");
	/* A DER cut short. */
	m.cert.der.len = (size_t)fx.der_len[1] - 1;
	expect_agent_reject(&m.msg, "certificate 0: not DER");
	m.cert.der.len = 0;
	expect_agent_reject(&m.msg, "certificate 0: 0 bytes");
	m.cert.der.len = WIRE_CERT_DER_MAX + 1;
	expect_agent_reject(&m.msg, "certificate 0: 65537 bytes");
	free(der);
}

static void
test_reject_finding_code(void **state)
{
	static const char *bad[] = {"", "cert_expired", "CERT-EXPIRED",
	    "CERT EXPIRED", "CERT_EXPIRED\n", "\xc3\x84"};
	char code[80];
	struct mini m;

	(void)state;
	mini_init(&m);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.finding.code = (char *)bad[i];
		expect_agent_reject(&m.msg, "finding 0: bad code");
	}
	memset(code, 'A', sizeof(code));
	code[64] = '\0';
	m.finding.code = code;
	expect_agent_ok(&m.msg);
	code[64] = 'A';
	code[65] = '\0';
	expect_agent_reject(&m.msg, "finding 0: bad code");
}

static void
test_reject_limits(void **state)
{
	Mtastswatch__V1__Finding **fv =
	    calloc(WIRE_FINDINGS_MAX + 1, sizeof(*fv));
	Mtastswatch__V1__Certificate **cv =
	    calloc(WIRE_CERTS_MAX + 1, sizeof(*cv));
	Mtastswatch__V1__MxObservation mx =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;
	Mtastswatch__V1__HostObservation h =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	Mtastswatch__V1__MxObservation **mv =
	    calloc(WIRE_MX_MAX + 1, sizeof(*mv));
	unsigned char *raw = calloc(1, WIRE_POLICY_RAW_MAX + 1);
	unsigned char sha[16] = {0};
	struct mini m;

	(void)state;
	assert_non_null(fv);
	assert_non_null(cv);
	assert_non_null(mv);
	assert_non_null(raw);
	mini_init(&m);
	for (size_t i = 0; i <= WIRE_FINDINGS_MAX; i++)
		fv[i] = &m.finding;
	m.pr.findings = fv;
	m.pr.n_findings = WIRE_FINDINGS_MAX;
	expect_agent_ok(&m.msg);
	m.pr.n_findings = WIRE_FINDINGS_MAX + 1;
	expect_agent_reject(&m.msg, "257 findings");

	mini_init(&m);
	for (size_t i = 0; i <= WIRE_CERTS_MAX; i++)
		cv[i] = &m.cert;
	m.pr.certificates = cv;
	m.pr.n_certificates = WIRE_CERTS_MAX;
	expect_agent_ok(&m.msg);
	m.pr.n_certificates = WIRE_CERTS_MAX + 1;
	expect_agent_reject(&m.msg, "65 certificates");

	mini_init(&m);
	h.host = "mx.example.com";
	mx.host = &h;
	for (size_t i = 0; i <= WIRE_MX_MAX; i++)
		mv[i] = &mx;
	m.pr.mx = mv;
	m.pr.n_mx = WIRE_MX_MAX;
	expect_agent_ok(&m.msg);
	m.pr.n_mx = WIRE_MX_MAX + 1;
	expect_agent_reject(&m.msg, "65 mx");

	mini_init(&m);
	m.pol.raw.data = raw;
	m.pol.raw.len = WIRE_POLICY_RAW_MAX;
	expect_agent_ok(&m.msg);
	m.pol.raw.len = WIRE_POLICY_RAW_MAX + 1;
	expect_agent_reject(&m.msg, "policy body: 65537 bytes");

	mini_init(&m);
	m.pol.sha256.data = sha;
	m.pol.sha256.len = sizeof(sha);
	expect_agent_reject(&m.msg, "policy sha256: 16 bytes");

	free(fv);
	free(cv);
	free(mv);
	free(raw);
}

static void
test_reject_utf8(void **state)
{
	char *mx[1] = {"mx.\xe2\x82"};
	char *addr[1] = {"\xc0\x80"};
	struct mini m;

	(void)state;
	mini_init(&m);
	m.finding.detail = "caf\xc3\xa9 \xe2\x9c\x93"; /* valid */
	expect_agent_ok(&m.msg);
	m.finding.detail = "bad \xff";
	expect_agent_reject(&m.msg, "invalid UTF-8 in Finding.detail");
	mini_init(&m);
	m.pol.mx = mx;
	m.pol.n_mx = 1;
	expect_agent_reject(&m.msg, "invalid UTF-8 in Policy.mx");
	mini_init(&m);
	m.ph.addresses = addr; /* overlong NUL */
	m.ph.n_addresses = 1;
	expect_agent_reject(
	    &m.msg, "invalid UTF-8 in HostObservation.addresses");
	mini_init(&m);
	m.ph.error = "\xed\xa0\x80"; /* a surrogate */
	expect_agent_reject(&m.msg, "invalid UTF-8 in HostObservation.error");
	mini_init(&m);
	m.pr.vantage = "\xf4\x90\x80\x80"; /* past U+10FFFF */
	expect_agent_reject(&m.msg, "invalid UTF-8 in ProbeResult.vantage");
}

static void
test_agent_other_messages(void **state)
{
	struct wire_hello hello = {.name = "fra1",
	    .region = "eu-central",
	    .version = "0.1.0",
	    .build = NULL,
	    .clock_ms = 1700000000000LL,
	    .spool_first = 5,
	    .spool_last = 9};
	Mtastswatch__V1__AgentMessage *m,
	    msg = MTASTSWATCH__V1__AGENT_MESSAGE__INIT;
	Mtastswatch__V1__Gap gap = MTASTSWATCH__V1__GAP__INIT;
	Mtastswatch__V1__Hello h = MTASTSWATCH__V1__HELLO__INIT;
	Mtastswatch__V1__Heartbeat hb = MTASTSWATCH__V1__HEARTBEAT__INIT;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	assert_int_equal(wire_agent_encode_hello(&hello, &buf, &len), 0);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HELLO);
	assert_string_equal(m->hello->name, "fra1");
	assert_string_equal(m->hello->region, "eu-central");
	assert_string_equal(m->hello->version, "0.1.0");
	assert_string_equal(m->hello->build, "");
	assert_int_equal(m->hello->clock_ms, 1700000000000LL);
	assert_int_equal(m->hello->spool_first, 5);
	assert_int_equal(m->hello->spool_last, 9);
	assert_int_equal(m->hello->proto_minor, WIRE_PROTO_MINOR);
	wire_agent_free(&m);
	free(buf);
	hello.spool_first = 0;
	assert_int_equal(wire_agent_encode_hello(&hello, &buf, &len), -1);
	assert_null(buf);

	assert_int_equal(
	    wire_agent_encode_heartbeat(-5, 0, 0, 3, &buf, &len), 0);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HEARTBEAT);
	assert_int_equal(m->heartbeat->clock_ms, -5);
	assert_int_equal(m->heartbeat->spool_first, 0);
	assert_int_equal(m->heartbeat->spool_last, 0);
	assert_int_equal(m->heartbeat->in_flight, 3);
	wire_agent_free(&m);
	free(buf);
	assert_int_equal(
	    wire_agent_encode_heartbeat(1, 9, 5, 0, &buf, &len), -1);

	assert_int_equal(
	    wire_agent_encode_gap(10, 12, "spool \xff full", &buf, &len), 0);
	m = wire_agent_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__AGENT_MESSAGE__BODY_GAP);
	assert_int_equal(m->gap->first, 10);
	assert_int_equal(m->gap->last, 12);
	assert_string_equal(m->gap->reason, "spool \xef\xbf\xbd full");
	wire_agent_free(&m);
	free(buf);
	assert_int_equal(wire_agent_encode_gap(0, 12, NULL, &buf, &len), -1);
	assert_int_equal(wire_agent_encode_gap(13, 12, NULL, &buf, &len), -1);

	/* What the encoders refuse, the decoder refuses too. */
	msg.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_GAP;
	msg.gap = &gap;
	gap.first = 13;
	gap.last = 12;
	expect_agent_reject(&msg, "gap with bad range");
	gap.first = 0;
	gap.last = 0;
	expect_agent_reject(&msg, "gap with bad range");
	msg.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HELLO;
	msg.hello = &h;
	expect_agent_ok(&msg);
	h.spool_last = 4;
	expect_agent_reject(&msg, "hello with bad spool range");
	msg.body_case = MTASTSWATCH__V1__AGENT_MESSAGE__BODY_HEARTBEAT;
	msg.heartbeat = &hb;
	hb.spool_first = 5;
	hb.spool_last = 4;
	expect_agent_reject(&msg, "heartbeat with bad spool range");
}

static void
test_collector_round_trip(void **state)
{
	char *domains[3] = {"example.com", "example.org", "mail.example.net"};
	char *bad[2] = {"example.com", "bad_domain.example"};
	Mtastswatch__V1__CollectorMessage *m,
	    msg = MTASTSWATCH__V1__COLLECTOR_MESSAGE__INIT;
	Mtastswatch__V1__TaskSet t = MTASTSWATCH__V1__TASK_SET__INIT;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	assert_int_equal(
	    wire_collector_encode_ack(UINT64_C(1) << 40, 32, &buf, &len), 0);
	m = wire_collector_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_ACK);
	assert_int_equal(m->ack->committed_seq, UINT64_C(1) << 40);
	assert_int_equal(m->ack->credit, 32);
	wire_collector_free(&m);
	assert_null(m);
	free(buf);

	/* An ack of nothing is still a message (the body is present). */
	assert_int_equal(wire_collector_encode_ack(0, 0, &buf, &len), 0);
	m = wire_collector_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(m->ack->committed_seq, 0);
	wire_collector_free(&m);
	free(buf);

	assert_int_equal(
	    wire_collector_encode_tasks(17, 3600, domains, 3, &buf, &len), 0);
	m = wire_collector_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS);
	assert_int_equal(m->tasks->version, 17);
	assert_int_equal(m->tasks->interval_s, 3600);
	assert_int_equal(m->tasks->n_domains, 3);
	assert_string_equal(m->tasks->domains[0], "example.com");
	assert_string_equal(m->tasks->domains[1], "example.org");
	assert_string_equal(m->tasks->domains[2], "mail.example.net");
	wire_collector_free(&m);
	free(buf);
	assert_int_equal(
	    wire_collector_encode_tasks(18, 3600, NULL, 0, &buf, &len), 0);
	m = wire_collector_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(m->tasks->n_domains, 0);
	wire_collector_free(&m);
	free(buf);
	assert_int_equal(
	    wire_collector_encode_tasks(17, 3600, bad, 2, &buf, &len), -1);
	assert_null(buf);
	assert_int_equal(
	    wire_collector_encode_tasks(17, 0, domains, 3, &buf, &len), -1);

	assert_int_equal(
	    wire_collector_encode_reject("unknown key", &buf, &len), 0);
	m = wire_collector_decode(buf, len, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(
	    m->body_case, MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_REJECT);
	assert_string_equal(m->reject->reason, "unknown key");
	wire_collector_free(&m);
	free(buf);

	/* A collector that skipped the checks is refused by the agent. */
	msg.body_case = MTASTSWATCH__V1__COLLECTOR_MESSAGE__BODY_TASKS;
	msg.tasks = &t;
	t.interval_s = 60;
	t.domains = bad;
	t.n_domains = 2;
	buf = pack(&msg.base, &len);
	assert_null(wire_collector_decode(buf, len, err, sizeof(err)));
	assert_string_equal(err, "task 1: bad domain");
	free(buf);
	t.n_domains = 1;
	t.interval_s = 0;
	buf = pack(&msg.base, &len);
	assert_null(wire_collector_decode(buf, len, err, sizeof(err)));
	assert_string_equal(err, "task set without interval");
	free(buf);
	assert_null(wire_collector_decode("\x22\x00", 2, err, sizeof(err)));
	assert_string_equal(err, "message without known body");
}

/* Appends field 99 (length-delimited "abc"), which no schema has. */
static size_t
append_unknown(unsigned char *p)
{
	static const unsigned char field[] = {0x9a, 0x06, 0x03, 'a', 'b', 'c'};

	memcpy(p, field, sizeof(field));
	return sizeof(field);
}

static void
test_unknown_field_accepted(void **state)
{
	struct mini mini;
	Mtastswatch__V1__AgentMessage *m;
	Mtastswatch__V1__CollectorMessage *cm;
	unsigned char *buf, *ext;
	size_t len, inner, o;
	char err[128];

	(void)state;
	mini_init(&mini);

	/* At the top level, after the body. */
	buf = pack(&mini.msg.base, &len);
	ext = malloc(len + 6);
	assert_non_null(ext);
	memcpy(ext, buf, len);
	o = len + append_unknown(ext + len);
	free(buf);
	m = wire_agent_decode(ext, o, err, sizeof(err));
	free(ext);
	assert_non_null(m);
	assert_int_equal(m->base.n_unknown_fields, 1);
	assert_int_equal(m->result->seq, 1);
	assert_string_equal(m->result->domain, "example.com");
	wire_agent_free(&m);

	/* Inside the ProbeResult: re-wrap it as field 3 by hand. */
	inner = protobuf_c_message_get_packed_size(&mini.pr.base);
	assert_true(inner + 6 < 16384); /* a two-byte length varint */
	ext = malloc(inner + 6 + 3);
	assert_non_null(ext);
	ext[0] = 0x1a;
	ext[1] = (unsigned char)(((inner + 6) & 0x7f) | 0x80);
	ext[2] = (unsigned char)((inner + 6) >> 7);
	o = 3 + protobuf_c_message_pack(&mini.pr.base, ext + 3);
	assert_int_equal(o, 3 + inner);
	o += append_unknown(ext + o);
	m = wire_agent_decode(ext, o, err, sizeof(err));
	free(ext);
	if (m == NULL)
		fail_msg("refused: %s", err);
	assert_int_equal(m->base.n_unknown_fields, 0);
	assert_int_equal(m->result->base.n_unknown_fields, 1);
	assert_int_equal(m->result->n_certificates, 1);
	assert_int_equal(m->result->policy_host->n_chain_sha256, 1);
	wire_agent_free(&m);

	/* And in a collector message. */
	assert_int_equal(wire_collector_encode_ack(3, 4, &buf, &len), 0);
	ext = malloc(len + 6);
	assert_non_null(ext);
	memcpy(ext, buf, len);
	o = len + append_unknown(ext + len);
	free(buf);
	cm = wire_collector_decode(ext, o, err, sizeof(err));
	free(ext);
	assert_non_null(cm);
	assert_int_equal(cm->base.n_unknown_fields, 1);
	assert_int_equal(cm->ack->committed_seq, 3);
	assert_int_equal(cm->ack->credit, 4);
	wire_collector_free(&cm);
}

static void
test_utf8_helpers(void **state)
{
	char *s;

	(void)state;
	assert_true(wire_utf8_valid("", 0));
	assert_true(wire_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(wire_utf8_valid("\xf0\x9f\x98", 3));
	assert_false(wire_utf8_valid("\xe0\x80\xaf", 3)); /* overlong '/' */
	s = wire_utf8_clean("a\0b\xc3", 4);
	assert_non_null(s);
	assert_string_equal(s, "a\xef\xbf\xbd"
			       "b\xef\xbf\xbd");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_result_round_trip),
	    cmocka_unit_test(test_result_sparse),
	    cmocka_unit_test(test_result_encode_refuses),
	    cmocka_unit_test(test_mini_accepted),
	    cmocka_unit_test(test_reject_empty),
	    cmocka_unit_test(test_reject_oversized),
	    cmocka_unit_test(test_reject_garbage),
	    cmocka_unit_test(test_reject_field_zero),
	    cmocka_unit_test(test_reject_seq0),
	    cmocka_unit_test(test_reject_domain),
	    cmocka_unit_test(test_reject_chain_ref),
	    cmocka_unit_test(test_reject_not_der),
	    cmocka_unit_test(test_reject_finding_code),
	    cmocka_unit_test(test_reject_limits),
	    cmocka_unit_test(test_reject_utf8),
	    cmocka_unit_test(test_agent_other_messages),
	    cmocka_unit_test(test_collector_round_trip),
	    cmocka_unit_test(test_unknown_field_accepted),
	    cmocka_unit_test(test_utf8_helpers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
