/* result_json.c -- a probe result as the JSON object of the CLI. */
#include "result_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert_check.h"
#include "policy_parse.h"
#include "wire.h"

json_t *
result_json_text(const char *str, size_t len)
{
	char *clean;
	json_t *j;

	if (str == NULL)
		return json_null();
	/* The same cleaning as on the wire, so JSON and protobuf agree. */
	if ((clean = wire_utf8_clean(str, len)) == NULL)
		return NULL;
	j = json_string(clean);
	free(clean);
	return j;
}

static json_t *
s_str(const char *s)
{
	return s == NULL ? json_null() : result_json_text(s, strlen(s));
}

static json_t *
s_time(time_t t)
{
	char buf[32];
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *
s_strv(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, s_str(v[i]));
	return a;
}

static json_t *
s_chain(STACK_OF(X509) * chain)
{
	json_t *a = json_array();

	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		struct cert_info ci;
		json_t *c;

		if (cert_info_load(sk_X509_value(chain, i), &ci) == -1)
			continue;
		c = json_object();
		json_object_set_new(c, "sha256", json_string(ci.sha256));
		json_object_set_new(
		    c, "spki_sha256", json_string(ci.spki_sha256));
		json_object_set_new(c, "subject", s_str(ci.subject));
		json_object_set_new(c, "issuer", s_str(ci.issuer));
		json_object_set_new(c, "serial", json_string(ci.serial));
		json_object_set_new(c, "not_before", s_time(ci.not_before));
		json_object_set_new(c, "not_after", s_time(ci.not_after));
		json_object_set_new(c, "san", s_strv(ci.san, ci.n_san));
		json_object_set_new(c, "key_type", json_string(ci.key_type));
		json_object_set_new(c, "key_bits", json_integer(ci.key_bits));
		json_object_set_new(c, "sig_alg", json_string(ci.sig_alg));
		json_object_set_new(c, "ocsp_url", s_str(ci.ocsp_url));
		json_object_set_new(
		    c, "ca_issuers_url", s_str(ci.ca_issuers_url));
		json_array_append_new(a, c);
		cert_info_free(&ci);
	}
	return a;
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

static void
s_host_fields(json_t *o, const struct host_result *h)
{
	json_object_set_new(o, "host", s_str(h->host));
	json_object_set_new(
	    o, "ip", h->ip[0] ? json_string(h->ip) : json_null());
	json_object_set_new(o, "addresses", s_strv(h->addrs, h->n_addrs));
	json_object_set_new(o, "tls_version",
	    h->tls_ok ? json_string(h->tls_version) : json_null());
	json_object_set_new(
	    o, "cipher", h->tls_ok ? json_string(h->cipher) : json_null());
	json_object_set_new(o, "verified",
	    json_boolean(h->tls_ok && h->evaluated && h->eval.verified));
	json_object_set_new(o, "handshake_ms",
	    h->tls_ok ? json_integer(h->handshake_ms) : json_null());
	json_object_set_new(o, "ocsp", s_str(s_ocsp_name(h)));
	json_object_set_new(o, "chain", s_chain(h->chain));
	json_object_set_new(
	    o, "error", h->error[0] ? s_str(h->error) : json_null());
}

static json_t *
s_findings(const struct finding_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->n; i++) {
		const struct finding *f = &l->v[i];
		const char *rpt = finding_rfc8460_type(f->code, f->role);
		json_t *o = json_object();
		json_object_set_new(
		    o, "code", json_string(finding_code_name(f->code)));
		json_object_set_new(o, "severity",
		    json_string(finding_severity_name(f->severity)));
		json_object_set_new(o, "subject", s_str(f->subject));
		json_object_set_new(o, "detail", s_str(f->detail));
		json_object_set_new(o, "rfc8460", s_str(rpt));
		json_array_append_new(a, o);
	}
	return a;
}

json_t *
result_json(const struct probe_result *r)
{
	json_t *o = json_object(), *sts, *pol, *ph, *mxa, *rpt;
	char started[64];
	struct tm tm;

	if (o == NULL)
		return NULL;
	gmtime_r(&r->started_at.tv_sec, &tm);
	snprintf(started, sizeof(started),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    r->started_at.tv_nsec / 1000000);

	json_object_set_new(o, "domain", s_str(r->domain));
	json_object_set_new(o, "vantage", s_str(r->vantage));
	json_object_set_new(o, "started_at", json_string(started));
	json_object_set_new(o, "duration_ms", json_integer(r->duration_ms));
	json_object_set_new(o, "completed", json_boolean(r->completed));
	json_object_set_new(o, "resolver", s_str(r->resolver));

	sts = json_object();
	json_object_set_new(
	    sts, "records", s_strv(r->sts_records, r->n_sts_records));
	json_object_set_new(
	    sts, "id", r->sts_id[0] ? json_string(r->sts_id) : json_null());
	json_object_set_new(sts, "valid", json_boolean(r->sts_valid));
	json_object_set_new(o, "sts_txt", sts);

	pol = json_object();
	json_object_set_new(pol, "url", s_str(r->policy_url));
	json_object_set_new(pol, "http_status",
	    r->http_status ? json_integer(r->http_status) : json_null());
	json_object_set_new(pol, "content_type", s_str(r->content_type));
	json_object_set_new(pol, "sha256",
	    r->policy_sha256[0] ? json_string(r->policy_sha256) : json_null());
	json_object_set_new(pol, "mode",
	    r->policy_parsed && r->policy.mode != STS_MODE_UNSET
		? json_string(policy_mode_name(r->policy.mode))
		: json_null());
	json_object_set_new(pol, "mx", s_strv(r->policy.mx, r->policy.n_mx));
	json_object_set_new(pol, "max_age",
	    r->policy_parsed && r->policy.max_age >= 0
		? json_integer(r->policy.max_age)
		: json_null());
	json_object_set_new(
	    pol, "valid", json_boolean(r->policy_parsed && r->policy_valid));
	json_object_set_new(pol, "raw",
	    r->policy_raw ? result_json_text(r->policy_raw, r->policy_raw_len)
			  : json_null());
	json_object_set_new(o, "policy", pol);

	ph = json_object();
	s_host_fields(ph, &r->policy_host);
	json_object_set_new(o, "policy_host", ph);

	mxa = json_array();
	for (size_t i = 0; i < r->n_mx; i++) {
		const struct mx_result *mx = &r->mx[i];
		json_t *m;
		if (mx->h.host == NULL)
			continue;
		m = json_object();
		s_host_fields(m, &mx->h);
		json_object_set_new(
		    m, "preference", json_integer(mx->preference));
		json_object_set_new(m, "starttls", json_boolean(mx->starttls));
		json_object_set_new(m, "policy_match",
		    mx->policy_match < 0 ? json_null()
					 : json_boolean(mx->policy_match));
		json_array_append_new(mxa, m);
	}
	json_object_set_new(o, "mx", mxa);

	rpt = json_object();
	json_object_set_new(
	    rpt, "records", s_strv(r->tlsrpt_records, r->n_tlsrpt_records));
	json_object_set_new(rpt, "rua", s_strv(r->rua, r->n_rua));
	json_object_set_new(rpt, "valid", json_boolean(r->tlsrpt_valid));
	json_object_set_new(o, "tlsrpt", rpt);

	json_object_set_new(o, "findings", s_findings(&r->findings));
	return o;
}
