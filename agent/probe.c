/* probe.c -- one complete single-vantage MTA-STS check of a domain. */
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dns_query.h"
#include "https_get.h"
#include "log.h"
#include "mx_match.h"
#include "smtp_starttls.h"
#include "sts_txt.h"
#include "tlsrpt_parse.h"

#define POLICY_PATH "/.well-known/mta-sts.txt"

struct host_ops;
struct probe;

/* The argument of one address lookup: which host, which family. */
struct addr_lookup {
	struct host_ops *ops;
	int v6;
};

/* A host's address lookups and TLS session, while they run.  Everything a
 * callback needs lives here, so cancelling frees nothing of its own. */
struct host_ops {
	struct probe *p; /* back pointer for callbacks */
	struct host_result *h;
	void (*resolved)(
	    struct probe *p, struct host_ops *ops, struct host_result *h);
	struct addr_lookup lookup[2];
	struct dns_query *qa;
	struct dns_query *qaaaa;
	enum dns_status a_status;
	enum dns_status aaaa_status;
	char dns_why[128];
	int lookups_left;
	struct smtp_starttls *smtp;
	struct cert_eval *eval;
};

struct probe {
	struct engine *engine;
	struct probe_result *res;
	probe_done_cb cb;
	void *arg;
	long long started_ms;
	int pending; /* operations still running */
	struct event *deadline;
	struct event *kick;

	struct dns_query *q_sts;
	struct dns_query *q_tlsrpt;
	struct dns_query *q_mx;
	int mx_known; /* the MX lookup ended */
	struct host_ops policy_ops;
	struct https_get *fetch;
	struct host_ops mx_ops[PROBE_MX_MAX];
};

static void s_done_one(struct probe *p);

static char *
s_name(const char *prefix, const char *domain)
{
	char *s;

	if (asprintf(&s, "%s%s", prefix, domain) == -1)
		return NULL;
	return s;
}

static void
s_host_result_clear(struct host_result *h)
{
	free(h->host);
	for (size_t i = 0; i < h->n_addrs; i++)
		free(h->addrs[i]);
	free(h->addrs);
	if (h->chain != NULL)
		sk_X509_pop_free(h->chain, X509_free);
}

static void
s_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
probe_result_free(struct probe_result **resp)
{
	struct probe_result *r = *resp;

	if (r == NULL)
		return;
	free(r->domain);
	free(r->vantage);
	free(r->resolver);
	s_strv_free(r->sts_records, r->n_sts_records);
	free(r->policy_url);
	free(r->content_type);
	free(r->policy_raw);
	policy_free(&r->policy);
	s_host_result_clear(&r->policy_host);
	for (size_t i = 0; i < r->n_mx; i++)
		s_host_result_clear(&r->mx[i].h);
	free(r->mx);
	s_strv_free(r->tlsrpt_records, r->n_tlsrpt_records);
	s_strv_free(r->rua, r->n_rua);
	finding_list_clear(&r->findings);
	free(r);
	*resp = NULL;
}

int
probe_domain_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!(c == '-' || c == '_' || (c >= '0' && c <= '9') ||
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* Copies a TXT answer's records into a string vector. */
static int
s_copy_records(const struct dns_answer *ans, char ***out, size_t *n)
{
	if (ans->n_txt == 0)
		return 0;
	*out = calloc(ans->n_txt, sizeof(**out));
	if (*out == NULL)
		return -1;
	for (size_t i = 0; i < ans->n_txt; i++) {
		(*out)[i] = malloc(ans->txt_len[i] + 1);
		if ((*out)[i] == NULL)
			return -1;
		memcpy((*out)[i], ans->txt[i], ans->txt_len[i] + 1);
		(*n)++;
	}
	return 0;
}

/* A record that starts like an STS record but breaks the version rule is
 * ignored by senders; say so rather than just "missing". */
static int
s_has_sts_typo(const struct dns_answer *ans)
{
	for (size_t i = 0; i < ans->n_txt; i++)
		if (ans->txt_len[i] >= 7 &&
		    strncasecmp(ans->txt[i], "v=STSv1", 7) == 0 &&
		    !sts_txt_is_sts(ans->txt[i], ans->txt_len[i]))
			return 1;
	return 0;
}

static void
s_on_sts_txt(struct dns_answer *ans, void *arg)
{
	struct probe *p = arg;
	struct probe_result *r = p->res;
	char name[300], err[160];
	size_t n_sts = 0, first = 0, others;

	snprintf(name, sizeof(name), "_mta-sts.%s", r->domain);
	if (ans->status == DNS_FAIL) {
		(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_DOMAIN,
		    name,
		    "TXT lookup of %s failed: %s (not the same as no record)",
		    name, ans->why);
		s_done_one(p);
		return;
	}
	(void)s_copy_records(ans, &r->sts_records, &r->n_sts_records);
	for (size_t i = 0; i < ans->n_txt; i++) {
		if (sts_txt_is_sts(ans->txt[i], ans->txt_len[i])) {
			if (n_sts++ == 0)
				first = i;
		}
	}
	others = ans->n_txt - n_sts;
	if (n_sts == 0) {
		const char *why = "no TXT record there";
		if (ans->status == DNS_NXDOMAIN)
			why = "the name does not exist";
		else if (s_has_sts_typo(ans))
			why = "a record begins with v=STSv1 but not with "
			      "\"v=STSv1;\", so senders ignore it";
		else if (others)
			why = "only records of other kinds, which are ignored";
		(void)finding_add(&r->findings, F_STS_TXT_MISSING, ROLE_DOMAIN,
		    r->domain, "no v=STSv1 TXT record at %s (%s)", name, why);
	} else if (n_sts > 1) {
		(void)finding_add(&r->findings, F_STS_TXT_MULTIPLE, ROLE_DOMAIN,
		    r->domain,
		    "%zu v=STSv1 records at %s; senders treat the domain as "
		    "having no policy (RFC 8461 3.1)",
		    n_sts, name);
	} else {
		struct sts_txt t;
		memset(&t, 0, sizeof(t));
		if (sts_txt_parse(ans->txt[first], ans->txt_len[first], &t, err,
			sizeof(err)) == 0) {
			r->sts_valid = 1;
		} else {
			(void)finding_add(&r->findings, F_STS_TXT_INVALID,
			    ROLE_DOMAIN, r->domain, "%s: %s", name, err);
		}
		snprintf(r->sts_id, sizeof(r->sts_id), "%s", t.id);
	}
	s_done_one(p);
}

static void
s_on_tlsrpt_txt(struct dns_answer *ans, void *arg)
{
	struct probe *p = arg;
	struct probe_result *r = p->res;
	char name[300], err[160];
	size_t n_rpt = 0, first = 0;

	snprintf(name, sizeof(name), "_smtp._tls.%s", r->domain);
	if (ans->status == DNS_FAIL) {
		(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_DOMAIN,
		    name, "TXT lookup of %s failed: %s", name, ans->why);
		s_done_one(p);
		return;
	}
	(void)s_copy_records(ans, &r->tlsrpt_records, &r->n_tlsrpt_records);
	for (size_t i = 0; i < ans->n_txt; i++)
		if (tlsrpt_is_tlsrpt(ans->txt[i], ans->txt_len[i]) &&
		    n_rpt++ == 0)
			first = i;
	if (n_rpt == 0) {
		(void)finding_add(&r->findings, F_TLSRPT_MISSING, ROLE_DOMAIN,
		    r->domain, "no v=TLSRPTv1 TXT record at %s", name);
	} else if (n_rpt > 1) {
		(void)finding_add(&r->findings, F_TLSRPT_INVALID, ROLE_DOMAIN,
		    r->domain,
		    "%zu v=TLSRPTv1 records at %s; senders then assume no "
		    "reporting (RFC 8460 3)",
		    n_rpt, name);
	} else {
		struct tlsrpt_record t;
		memset(&t, 0, sizeof(t));
		if (tlsrpt_parse(ans->txt[first], ans->txt_len[first], &t, err,
			sizeof(err)) == 0)
			r->tlsrpt_valid = 1;
		else
			(void)finding_add(&r->findings, F_TLSRPT_INVALID,
			    ROLE_DOMAIN, r->domain, "%s: %s", name, err);
		r->rua = t.rua;
		r->n_rua = t.n_rua;
		t.rua = NULL;
		t.n_rua = 0;
		tlsrpt_free(&t);
	}
	s_done_one(p);
}

/* ---- the policy host ---- */

static int
s_media_type_is_text_plain(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	return n == 10 && strncasecmp(ct, "text/plain", 10) == 0;
}

static void
s_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		out[0] = '\0';
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
s_policy_findings(struct probe *p)
{
	struct probe_result *r = p->res;
	const char *host = r->policy_host.host;
	char err[200];

	r->policy_parsed = 1;
	if (policy_parse(r->policy_raw, r->policy_raw_len, &r->policy, err,
		sizeof(err)) == 0)
		r->policy_valid = 1;
	else
		(void)finding_add(&r->findings, F_POLICY_SYNTAX,
		    ROLE_POLICY_HOST, host, "%s", err);
	if (r->policy.mode == STS_MODE_TESTING)
		(void)finding_add(&r->findings, F_POLICY_MODE_TESTING,
		    ROLE_POLICY_HOST, host,
		    "mode testing: failures are reported, mail is still "
		    "delivered without TLS");
	else if (r->policy.mode == STS_MODE_NONE)
		(void)finding_add(&r->findings, F_POLICY_MODE_NONE,
		    ROLE_POLICY_HOST, host,
		    "mode none: senders apply no MTA-STS protection");
	if (r->policy.max_age >= 0 && r->policy.max_age < 86400)
		(void)finding_add(&r->findings, F_POLICY_MAX_AGE_LOW,
		    ROLE_POLICY_HOST, host,
		    "max_age %ld is under one day; senders re-fetch often and "
		    "a short outage lets the policy lapse",
		    r->policy.max_age);
}

static void
s_take_tls_facts(struct host_result *h, const char *ip, int ok,
    const char *version, const char *cipher, long ms, STACK_OF(X509) * *chain)
{
	snprintf(h->ip, sizeof(h->ip), "%s", ip);
	h->tls_ok = ok;
	snprintf(h->tls_version, sizeof(h->tls_version), "%s", version);
	snprintf(h->cipher, sizeof(h->cipher), "%s", cipher);
	h->handshake_ms = ms;
	h->chain = *chain;
	*chain = NULL;
	if (strcmp(version, "TLSv1.3") == 0)
		h->tls_version_num = TLS1_3_VERSION;
	else if (strcmp(version, "TLSv1.2") == 0)
		h->tls_version_num = TLS1_2_VERSION;
	else if (strcmp(version, "TLSv1.1") == 0)
		h->tls_version_num = TLS1_1_VERSION;
	else if (strcmp(version, "TLSv1") == 0)
		h->tls_version_num = TLS1_VERSION;
}

static void
s_on_eval_done(void *arg)
{
	struct host_ops *ops = arg;

	ops->eval = NULL;
	s_done_one(ops->p);
}

static void
s_start_eval(struct probe *p, struct host_ops *ops, struct host_result *h,
    enum finding_role role, const unsigned char *staple, size_t staple_len)
{
	struct probe_result *r = p->res;

	if (h->tls_ok && h->tls_version_num != 0 &&
	    h->tls_version_num < TLS1_2_VERSION)
		(void)finding_add(&r->findings, F_TLS_VERSION_WEAK, role,
		    h->host,
		    "the best version %s accepts is %s; senders require TLS "
		    "1.2 or later",
		    h->host, h->tls_version);
	if (h->chain == NULL || sk_X509_num(h->chain) == 0)
		return;
	ops->eval = cert_eval_start(p->engine, h->host, role, h->chain, staple,
	    staple_len, &r->findings, &h->eval, s_on_eval_done, ops);
	if (ops->eval != NULL) {
		h->evaluated = 1;
		p->pending++;
	}
}

static void
s_on_policy(struct https_get_result *res, void *arg)
{
	struct probe *p = arg;
	struct probe_result *r = p->res;
	struct host_result *h = &r->policy_host;
	const char *url = r->policy_url;

	p->fetch = NULL;
	r->http_status = res->status;
	if (res->content_type != NULL) {
		r->content_type = res->content_type;
		res->content_type = NULL;
	}
	if (res->tls.ok) {
		s_take_tls_facts(h, res->ip, 1, res->tls.version,
		    res->tls.cipher, res->tls.handshake_ms, &res->tls.chain);
	} else {
		snprintf(h->ip, sizeof(h->ip), "%s", res->ip);
		snprintf(h->error, sizeof(h->error), "%s", res->error);
	}
	if (res->body != NULL) {
		r->policy_raw = (char *)res->body;
		r->policy_raw_len = res->body_len;
		res->body = NULL;
		s_sha256_hex(
		    r->policy_raw, r->policy_raw_len, r->policy_sha256);
	}

	if (res->kind != HTTPS_OK && res->status == 0) {
		/* A timeout is not a TLS failure, even in the handshake. */
		if (res->kind == HTTPS_TLS) {
			(void)finding_add(&r->findings, F_TLS_HANDSHAKE_FAILED,
			    ROLE_POLICY_HOST, h->host,
			    "no TLS session with %s (%s): %s", h->host,
			    res->ip[0] ? res->ip : "no address", res->error);
		}
		(void)finding_add(&r->findings, F_POLICY_FETCH_FAILED,
		    ROLE_POLICY_HOST, h->host, "%s: %s", url, res->error);
	} else if (res->too_large && res->status == 200) {
		(void)finding_add(&r->findings, F_POLICY_TOO_LARGE,
		    ROLE_POLICY_HOST, h->host,
		    "%s sent more than %d bytes; senders stop reading there",
		    url, POLICY_BODY_MAX);
	} else if (res->status >= 300 && res->status < 400) {
		(void)finding_add(&r->findings, F_POLICY_REDIRECT,
		    ROLE_POLICY_HOST, h->host,
		    "%s answered %ld%s%s; redirects must not be followed "
		    "(RFC 8461 3.3)",
		    url, res->status, res->location ? " to " : "",
		    res->location ? res->location : "");
	} else if (res->status != 200) {
		(void)finding_add(&r->findings, F_POLICY_HTTP_STATUS,
		    ROLE_POLICY_HOST, h->host, "%s answered %ld (%s)", url,
		    res->status,
		    res->status == 404 ? "not found: the host serves no policy"
		    : res->status >= 500 ? "server error"
					 : "not 200 OK");
	} else if (res->kind != HTTPS_OK) {
		/* 200, then the body broke off: a sender has no policy. */
		(void)finding_add(&r->findings, F_POLICY_FETCH_FAILED,
		    ROLE_POLICY_HOST, h->host, "%s: body incomplete: %s", url,
		    res->error);
	} else if (!s_media_type_is_text_plain(r->content_type)) {
		(void)finding_add(&r->findings, F_POLICY_CONTENT_TYPE,
		    ROLE_POLICY_HOST, h->host,
		    "%s is served as '%s'; senders require text/plain", url,
		    r->content_type ? r->content_type : "(no Content-Type)");
	} else {
		s_policy_findings(p);
	}
	if (res->tls.ok)
		s_start_eval(p, &p->policy_ops, h, ROLE_POLICY_HOST,
		    res->tls.ocsp_staple, res->tls.ocsp_staple_len);
	s_done_one(p);
}

static void
s_start_policy_fetch(struct probe *p)
{
	struct host_result *h = &p->res->policy_host;
	struct https_get_req req;

	memset(&req, 0, sizeof(req));
	req.host = h->host;
	req.port = p->engine->cfg.https_port;
	req.path = POLICY_PATH;
	req.addrs = h->addrs;
	req.n_addrs = h->n_addrs;
	req.max_body = POLICY_BODY_MAX;
	req.connect_timeout_ms = p->engine->connect_timeout_ms;
	req.io_timeout_ms = p->engine->io_timeout_ms;
	/* Time for a connect, then for a read. */
	req.timeout_ms =
	    p->engine->connect_timeout_ms + p->engine->io_timeout_ms;
	p->fetch = https_get_start(p->engine, &req, s_on_policy, p);
	if (p->fetch != NULL)
		p->pending++;
}

/* ---- address lookups shared by the policy host and the MX hosts ---- */

static void
s_add_addrs(struct host_result *h, const struct dns_answer *ans)
{
	char **v;

	if (ans->n_addr == 0)
		return;
	v = realloc(h->addrs, (h->n_addrs + ans->n_addr) * sizeof(*v));
	if (v == NULL)
		return;
	h->addrs = v;
	for (size_t i = 0; i < ans->n_addr && h->n_addrs < PROBE_ADDRS_MAX; i++)
		if ((h->addrs[h->n_addrs] = strdup(ans->addr[i])) != NULL)
			h->n_addrs++;
}

/* IPv4 first, in answer order: the order senders commonly try, and one
 * that does not depend on which lookup answered first. */
static void
s_v4_first(struct host_result *h)
{
	char *tmp[PROBE_ADDRS_MAX];
	size_t n = 0;

	for (int v6 = 0; v6 < 2; v6++)
		for (size_t i = 0; i < h->n_addrs; i++)
			if ((strchr(h->addrs[i], ':') != NULL) == v6)
				tmp[n++] = h->addrs[i];
	if (n > 0)
		memcpy(h->addrs, tmp, n * sizeof(*tmp));
}

static void
s_on_addr(struct dns_answer *ans, void *arg)
{
	struct addr_lookup *lk = arg;
	struct host_ops *ops = lk->ops;
	struct probe *p = ops->p;

	if (lk->v6)
		ops->aaaa_status = ans->status;
	else
		ops->a_status = ans->status;
	if (ans->status == DNS_FAIL)
		snprintf(ops->dns_why, sizeof(ops->dns_why), "%s", ans->why);
	s_add_addrs(ops->h, ans);
	if (--ops->lookups_left == 0) {
		s_v4_first(ops->h);
		ops->resolved(p, ops, ops->h);
	}
	s_done_one(p);
}

static int
s_lookup_addrs(struct probe *p, struct host_ops *ops, struct host_result *h,
    void (*resolved)(struct probe *, struct host_ops *, struct host_result *))
{
	struct dns_query **slots[2] = {&ops->qa, &ops->qaaaa};
	int types[2] = {DNS_TYPE_A, DNS_TYPE_AAAA};

	ops->h = h;
	ops->resolved = resolved;
	ops->lookups_left = 2;
	for (int i = 0; i < 2; i++) {
		ops->lookup[i].ops = ops;
		ops->lookup[i].v6 = i;
		p->pending++;
		if (dns_query_start(p->engine, h->host, types[i],
			p->engine->io_timeout_ms, s_on_addr, &ops->lookup[i],
			slots[i]) == -1) {
			p->pending--;
			return -1;
		}
	}
	return 0;
}

/* Why a host has no address, in words, or NULL when it simply has none. */
static const char *
s_no_addr_reason(const struct host_ops *ops, int *dns_failed)
{
	*dns_failed = ops->a_status == DNS_FAIL || ops->aaaa_status == DNS_FAIL;
	if (*dns_failed)
		return ops->dns_why;
	if (ops->a_status == DNS_NXDOMAIN)
		return "NXDOMAIN";
	return "no A or AAAA record";
}

static void
s_policy_host_resolved(
    struct probe *p, struct host_ops *ops, struct host_result *h)
{
	struct probe_result *r = p->res;
	int failed;
	const char *why;

	if (h->n_addrs > 0) {
		s_start_policy_fetch(p);
		if (p->fetch == NULL)
			(void)finding_add(&r->findings, F_POLICY_FETCH_FAILED,
			    ROLE_POLICY_HOST, h->host,
			    "could not start the fetch (out of memory)");
		return;
	}
	why = s_no_addr_reason(ops, &failed);
	if (failed)
		(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_POLICY_HOST,
		    h->host, "address lookup of %s failed: %s", h->host, why);
	snprintf(h->error, sizeof(h->error), "%s does not resolve: %s", h->host,
	    why);
	(void)finding_add(&r->findings, F_POLICY_FETCH_FAILED, ROLE_POLICY_HOST,
	    h->host, "%s does not resolve (%s)", h->host, why);
}

/* ---- MX hosts ---- */

static void
s_on_smtp(struct smtp_result *sr, void *arg)
{
	struct host_ops *ops = arg;
	struct probe *p = ops->p;
	struct probe_result *r = p->res;
	struct mx_result *mx = &r->mx[ops - p->mx_ops];
	struct host_result *h = &mx->h;

	ops->smtp = NULL;
	mx->starttls = sr->starttls;
	mx->connected = sr->stage > SMTP_STAGE_GREETING;
	snprintf(h->ip, sizeof(h->ip), "%s", sr->ip);
	switch (sr->stage) {
	case SMTP_STAGE_CONNECT:
	case SMTP_STAGE_GREETING:
		snprintf(h->error, sizeof(h->error), "%s", sr->error);
		(void)finding_add(&r->findings, F_MX_CONNECT_FAILED, ROLE_MX,
		    h->host, "no SMTP session with %s port %d: %s", h->host,
		    p->engine->cfg.smtp_port, sr->error);
		break;
	case SMTP_STAGE_EHLO:
	case SMTP_STAGE_NO_STARTTLS:
		snprintf(h->error, sizeof(h->error), "%s", sr->error);
		(void)finding_add(&r->findings, F_MX_STARTTLS_MISSING, ROLE_MX,
		    h->host, "%s (%s): %s", h->host, sr->ip, sr->error);
		break;
	case SMTP_STAGE_STARTTLS:
		snprintf(h->error, sizeof(h->error), "%s", sr->error);
		(void)finding_add(&r->findings, F_TLS_HANDSHAKE_FAILED, ROLE_MX,
		    h->host, "%s (%s): %s", h->host, sr->ip, sr->error);
		break;
	case SMTP_STAGE_TLS:
		if (!sr->tls.ok) {
			snprintf(
			    h->error, sizeof(h->error), "%s", sr->tls.error);
			(void)finding_add(&r->findings, F_TLS_HANDSHAKE_FAILED,
			    ROLE_MX, h->host, "%s (%s): %s", h->host, sr->ip,
			    sr->tls.error);
			break;
		}
		s_take_tls_facts(h, sr->ip, 1, sr->tls.version, sr->tls.cipher,
		    sr->tls.handshake_ms, &sr->tls.chain);
		s_start_eval(p, ops, h, ROLE_MX, sr->tls.ocsp_staple,
		    sr->tls.ocsp_staple_len);
		break;
	}
	s_done_one(p);
}

static void
s_mx_host_resolved(struct probe *p, struct host_ops *ops, struct host_result *h)
{
	struct probe_result *r = p->res;
	int failed;
	const char *why;

	if (h->n_addrs == 0) {
		why = s_no_addr_reason(ops, &failed);
		if (failed)
			(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_MX,
			    h->host, "address lookup of %s failed: %s", h->host,
			    why);
		snprintf(
		    h->error, sizeof(h->error), "does not resolve: %s", why);
		(void)finding_add(&r->findings, F_MX_CONNECT_FAILED, ROLE_MX,
		    h->host, "%s does not resolve (%s)", h->host, why);
		return;
	}
	ops->smtp = smtp_starttls_start(
	    p->engine, h->host, h->addrs, h->n_addrs, s_on_smtp, ops);
	if (ops->smtp == NULL)
		return;
	p->pending++;
}

static int
s_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference - y->preference;
	return strcmp(x->host, y->host);
}

static void
s_on_mx(struct dns_answer *ans, void *arg)
{
	struct probe *p = arg;
	struct probe_result *r = p->res;

	p->mx_known = 1;
	if (ans->status == DNS_FAIL) {
		(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_DOMAIN,
		    r->domain, "MX lookup of %s failed: %s", r->domain,
		    ans->why);
		s_done_one(p);
		return;
	}
	if (ans->n_mx == 0) {
		(void)finding_add(&r->findings, F_MX_MISSING, ROLE_DOMAIN,
		    r->domain, "%s has no MX records (%s)", r->domain,
		    ans->status == DNS_NXDOMAIN ? "the domain does not exist"
						: "no MX in the answer");
		s_done_one(p);
		return;
	}
	if (ans->n_mx == 1 && ans->mx[0].host[0] == '\0') {
		(void)finding_add(&r->findings, F_MX_MISSING, ROLE_DOMAIN,
		    r->domain,
		    "%s has a null MX (RFC 7505): it accepts no mail",
		    r->domain);
		s_done_one(p);
		return;
	}
	qsort(ans->mx, ans->n_mx, sizeof(*ans->mx), s_mx_cmp);
	/* Every MX is matched against the policy; only the first
	 * PROBE_MX_MAX by preference are connected to. */
	size_t n = ans->n_mx;
	if ((r->mx = calloc(n, sizeof(*r->mx))) == NULL) {
		s_done_one(p);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct mx_result *mx = &r->mx[i];
		if (ans->mx[i].host[0] == '\0')
			continue;
		mx->preference = ans->mx[i].preference;
		mx->policy_match = -1;
		if ((mx->h.host = strdup(ans->mx[i].host)) == NULL)
			break;
		r->n_mx = i + 1;
	}
	for (size_t i = 0; i < r->n_mx; i++) {
		if (r->mx[i].h.host == NULL)
			continue;
		if (i >= PROBE_MX_MAX) {
			snprintf(r->mx[i].h.error, sizeof(r->mx[i].h.error),
			    "not probed: only the first %d MX hosts are",
			    PROBE_MX_MAX);
			continue;
		}
		(void)s_lookup_addrs(
		    p, &p->mx_ops[i], &r->mx[i].h, s_mx_host_resolved);
	}
	s_done_one(p);
}

/* ---- completion ---- */

/* Cross-checks that need both the policy and the MX set (RFC 8461 4.1). */
static void
s_match_mx(struct probe *p)
{
	struct probe_result *r = p->res;
	struct sts_policy *pol = &r->policy;
	int applies;

	applies =
	    r->policy_parsed && r->policy_valid &&
	    (pol->mode == STS_MODE_ENFORCE || pol->mode == STS_MODE_TESTING);
	if (!applies)
		return;
	for (size_t i = 0; i < r->n_mx; i++) {
		struct mx_result *mx = &r->mx[i];
		if (mx->h.host == NULL)
			continue;
		mx->policy_match = mx_match_any(pol->mx, pol->n_mx, mx->h.host);
		if (!mx->policy_match)
			(void)finding_add(&r->findings, F_MX_NOT_IN_POLICY,
			    ROLE_MX, mx->h.host,
			    "MX %s matches no mx: line of the policy; senders "
			    "%s mail to it",
			    mx->h.host,
			    pol->mode == STS_MODE_ENFORCE
				? "will not deliver"
				: "report failures for");
	}
	if (!p->mx_known)
		return;
	for (size_t j = 0; j < pol->n_mx; j++) {
		int used = 0;
		for (size_t i = 0; i < r->n_mx && !used; i++)
			if (r->mx[i].h.host != NULL &&
			    mx_match(pol->mx[j], r->mx[i].h.host))
				used = 1;
		if (!used && r->n_mx > 0)
			(void)finding_add(&r->findings, F_POLICY_MX_UNUSED,
			    ROLE_POLICY_HOST, r->policy_host.host,
			    "policy pattern mx: %s matches none of the "
			    "domain's MX hosts",
			    pol->mx[j]);
	}
}

static void
s_free_probe(struct probe *p)
{
	dns_query_cancel(&p->q_sts);
	dns_query_cancel(&p->q_tlsrpt);
	dns_query_cancel(&p->q_mx);
	dns_query_cancel(&p->policy_ops.qa);
	dns_query_cancel(&p->policy_ops.qaaaa);
	cert_eval_cancel(&p->policy_ops.eval);
	https_get_cancel(&p->fetch);
	for (size_t i = 0; i < PROBE_MX_MAX; i++) {
		struct host_ops *o = &p->mx_ops[i];
		dns_query_cancel(&o->qa);
		dns_query_cancel(&o->qaaaa);
		smtp_starttls_cancel(&o->smtp);
		cert_eval_cancel(&o->eval);
	}
	if (p->deadline != NULL)
		event_free(p->deadline);
	if (p->kick != NULL)
		event_free(p->kick);
	probe_result_free(&p->res);
	free(p);
}

static void
s_finish(struct probe *p)
{
	struct probe_result *r = p->res;

	s_match_mx(p);
	r->duration_ms = (long)(engine_now_ms() - p->started_ms);
	p->res = NULL;
	p->cb(r, p->arg);
	s_free_probe(p);
}

static void
s_done_one(struct probe *p)
{
	if (--p->pending == 0)
		s_finish(p);
}

/* The whole probe ran out of time: say what was still running. */
static void
s_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	struct probe_result *r = p->res;
	const char *msg = "the probe timed out";

	(void)fd;
	(void)what;
	r->completed = 0;
	if (p->q_sts || p->q_tlsrpt || p->q_mx || p->policy_ops.qa ||
	    p->policy_ops.qaaaa)
		(void)finding_add(&r->findings, F_DNS_FAILURE, ROLE_DOMAIN,
		    r->domain, "DNS lookups did not finish: %s", msg);
	if (p->fetch != NULL)
		(void)finding_add(&r->findings, F_POLICY_FETCH_FAILED,
		    ROLE_POLICY_HOST, r->policy_host.host, "%s: %s",
		    r->policy_url, msg);
	cert_eval_flush(&p->policy_ops.eval);
	for (size_t i = 0; i < r->n_mx && i < PROBE_MX_MAX; i++) {
		struct host_ops *o = &p->mx_ops[i];
		if (o->smtp != NULL || o->qa != NULL || o->qaaaa != NULL)
			(void)finding_add(&r->findings, F_MX_CONNECT_FAILED,
			    ROLE_MX, r->mx[i].h.host, "%s", msg);
		cert_eval_flush(&o->eval);
	}
	s_match_mx(p);
	r->duration_ms = (long)(engine_now_ms() - p->started_ms);
	p->res = NULL;
	p->cb(r, p->arg);
	s_free_probe(p);
}

static void
s_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	s_done_one(arg);
}

struct probe *
probe_start(
    struct engine *engine, const char *domain, probe_done_cb cb, void *arg)
{
	struct probe *p;
	struct probe_result *r;
	char norm[DNSNAME_MAX], *name;
	struct timeval tv = {engine->cfg.timeout_s, 0};
	struct timeval zero = {0, 0};

	if (dnsname_normalize(domain, norm, sizeof(norm)) == -1)
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->res = r = calloc(1, sizeof(*r))) == NULL) {
		free(p);
		return NULL;
	}
	p->engine = engine;
	p->cb = cb;
	p->arg = arg;
	p->policy_ops.p = p;
	for (size_t i = 0; i < PROBE_MX_MAX; i++)
		p->mx_ops[i].p = p;
	p->started_ms = engine_now_ms();
	clock_gettime(CLOCK_REALTIME, &r->started_at);
	r->completed = 1;
	r->http_status = 0;
	r->policy.max_age = -1;
	if ((r->domain = strdup(norm)) == NULL ||
	    (r->vantage = strdup(engine->cfg.vantage ? engine->cfg.vantage
						     : "local")) == NULL ||
	    (r->resolver = strdup(engine->resolver_name)) == NULL ||
	    (r->policy_host.host = s_name("mta-sts.", norm)) == NULL)
		goto fail;
	if (engine->cfg.https_port == 443)
		r->policy_url = s_name(r->policy_host.host, POLICY_PATH);
	else if (asprintf(&r->policy_url, "%s:%d%s", r->policy_host.host,
		     engine->cfg.https_port, POLICY_PATH) == -1)
		r->policy_url = NULL;
	if (r->policy_url == NULL)
		goto fail;
	name = r->policy_url;
	if ((r->policy_url = s_name("https://", name)) == NULL) {
		r->policy_url = name;
		goto fail;
	}
	free(name);

	p->deadline = evtimer_new(engine->base, s_deadline, p);
	if (p->deadline == NULL || evtimer_add(p->deadline, &tv) == -1)
		goto fail;

	/* The pending count starts at one for this function itself, so no
	 * callback that fires early can finish the probe under our feet. */
	p->pending = 1;
	char *sts = s_name("_mta-sts.", norm);
	char *rpt = s_name("_smtp._tls.", norm);
	if (sts == NULL || rpt == NULL) {
		free(sts);
		free(rpt);
		goto fail;
	}
	p->pending += 3;
	if (dns_query_start(engine, sts, DNS_TYPE_TXT, engine->io_timeout_ms,
		s_on_sts_txt, p, &p->q_sts) == -1)
		p->pending--;
	if (dns_query_start(engine, rpt, DNS_TYPE_TXT, engine->io_timeout_ms,
		s_on_tlsrpt_txt, p, &p->q_tlsrpt) == -1)
		p->pending--;
	if (dns_query_start(engine, norm, DNS_TYPE_MX, engine->io_timeout_ms,
		s_on_mx, p, &p->q_mx) == -1)
		p->pending--;
	free(sts);
	free(rpt);
	(void)s_lookup_addrs(
	    p, &p->policy_ops, &r->policy_host, s_policy_host_resolved);
	/* Our own reference is dropped from the loop, so the callback never
	 * runs inside this function even if every lookup failed at once. */
	p->kick = evtimer_new(engine->base, s_kick, p);
	if (p->kick == NULL || evtimer_add(p->kick, &zero) == -1) {
		p->cb = NULL;
		goto fail;
	}
	return p;
fail:
	s_free_probe(p);
	return NULL;
}

void
probe_cancel(struct probe **pp)
{
	if (*pp == NULL)
		return;
	s_free_probe(*pp);
	*pp = NULL;
}
