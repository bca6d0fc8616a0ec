/* finding.c -- finding code catalogue and the per-probe finding list. */
#include "finding.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct code_desc {
	const char *name;
	enum severity severity;
	/* RFC 8460 result type when the subject is an MX host. */
	const char *rpt_mx;
	/* The same when the subject is the policy host. */
	const char *rpt_policy;
};

#define FETCH	"sts-policy-fetch-error"
#define INVALID "sts-policy-invalid"
#define WEBPKI	"sts-webpki-invalid"

static const struct code_desc codes[F__COUNT] = {
    [F_DNS_FAILURE] = {"DNS_FAILURE", SEV_ERROR, NULL, NULL},
    [F_STS_TXT_MISSING] = {"STS_TXT_MISSING", SEV_ERROR, NULL, NULL},
    [F_STS_TXT_MULTIPLE] = {"STS_TXT_MULTIPLE", SEV_ERROR, INVALID, INVALID},
    [F_STS_TXT_INVALID] = {"STS_TXT_INVALID", SEV_ERROR, INVALID, INVALID},
    [F_POLICY_FETCH_FAILED] = {"POLICY_FETCH_FAILED", SEV_ERROR, FETCH, FETCH},
    [F_POLICY_REDIRECT] = {"POLICY_REDIRECT", SEV_ERROR, FETCH, FETCH},
    [F_POLICY_HTTP_STATUS] = {"POLICY_HTTP_STATUS", SEV_ERROR, FETCH, FETCH},
    [F_POLICY_CONTENT_TYPE] = {"POLICY_CONTENT_TYPE", SEV_ERROR, INVALID,
	INVALID},
    [F_POLICY_TOO_LARGE] = {"POLICY_TOO_LARGE", SEV_ERROR, FETCH, FETCH},
    [F_POLICY_SYNTAX] = {"POLICY_SYNTAX", SEV_ERROR, INVALID, INVALID},
    [F_POLICY_MODE_TESTING] = {"POLICY_MODE_TESTING", SEV_INFO, NULL, NULL},
    [F_POLICY_MODE_NONE] = {"POLICY_MODE_NONE", SEV_WARNING, NULL, NULL},
    [F_POLICY_MAX_AGE_LOW] = {"POLICY_MAX_AGE_LOW", SEV_WARNING, NULL, NULL},
    [F_POLICY_MX_UNUSED] = {"POLICY_MX_UNUSED", SEV_WARNING, NULL, NULL},
    [F_TLS_HANDSHAKE_FAILED] = {"TLS_HANDSHAKE_FAILED", SEV_ERROR,
	"validation-failure", FETCH},
    [F_TLS_VERSION_WEAK] = {"TLS_VERSION_WEAK", SEV_ERROR, "validation-failure",
	WEBPKI},
    [F_CERT_EXPIRED] = {"CERT_EXPIRED", SEV_ERROR, "certificate-expired",
	WEBPKI},
    [F_CERT_NOT_YET_VALID] = {"CERT_NOT_YET_VALID", SEV_ERROR,
	"certificate-expired", WEBPKI},
    [F_CERT_EXPIRING] = {"CERT_EXPIRING", SEV_WARNING, NULL, NULL},
    [F_CERT_HOSTNAME_MISMATCH] = {"CERT_HOSTNAME_MISMATCH", SEV_ERROR,
	"certificate-host-mismatch", WEBPKI},
    [F_CERT_CHAIN_INCOMPLETE] = {"CERT_CHAIN_INCOMPLETE", SEV_ERROR,
	"certificate-not-trusted", WEBPKI},
    [F_CERT_UNTRUSTED] = {"CERT_UNTRUSTED", SEV_ERROR,
	"certificate-not-trusted", WEBPKI},
    [F_CERT_REVOKED] = {"CERT_REVOKED", SEV_ERROR, "validation-failure",
	WEBPKI},
    [F_CERT_WEAK_KEY] = {"CERT_WEAK_KEY", SEV_ERROR, "validation-failure",
	WEBPKI},
    [F_CERT_WEAK_SIGNATURE] = {"CERT_WEAK_SIGNATURE", SEV_ERROR,
	"validation-failure", WEBPKI},
    [F_MX_MISSING] = {"MX_MISSING", SEV_ERROR, NULL, NULL},
    [F_MX_NOT_IN_POLICY] = {"MX_NOT_IN_POLICY", SEV_ERROR, "validation-failure",
	NULL},
    [F_MX_CONNECT_FAILED] = {"MX_CONNECT_FAILED", SEV_ERROR, NULL, NULL},
    [F_MX_STARTTLS_MISSING] = {"MX_STARTTLS_MISSING", SEV_ERROR,
	"starttls-not-supported", NULL},
    [F_TLSRPT_MISSING] = {"TLSRPT_MISSING", SEV_WARNING, NULL, NULL},
    [F_TLSRPT_INVALID] = {"TLSRPT_INVALID", SEV_ERROR, NULL, NULL},
};

const char *
finding_code_name(enum finding_code code)
{
	if ((unsigned)code >= F__COUNT)
		return "UNKNOWN";
	return codes[code].name;
}

int
finding_code_from_name(const char *name)
{
	for (int i = 0; i < F__COUNT; i++)
		if (strcmp(codes[i].name, name) == 0)
			return i;
	return -1;
}

enum severity
finding_default_severity(enum finding_code code)
{
	if ((unsigned)code >= F__COUNT)
		return SEV_ERROR;
	return codes[code].severity;
}

const char *
finding_severity_name(enum severity sev)
{
	switch (sev) {
	case SEV_INFO:
		return "info";
	case SEV_WARNING:
		return "warning";
	case SEV_ERROR:
		return "error";
	}
	return "error";
}

const char *
finding_rfc8460_type(enum finding_code code, enum finding_role role)
{
	if ((unsigned)code >= F__COUNT)
		return NULL;
	switch (role) {
	case ROLE_POLICY_HOST:
		return codes[code].rpt_policy;
	case ROLE_MX:
		return codes[code].rpt_mx;
	case ROLE_DOMAIN:
		/* Domain-level findings concern the policy itself. */
		return codes[code].rpt_policy;
	}
	return NULL;
}

static int
s_vadd(struct finding_list *list, enum finding_code code, enum severity sev,
    enum finding_role role, const char *subject, const char *fmt, va_list ap)
{
	struct finding *f;
	char *detail;

	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		struct finding *v = realloc(list->v, cap * sizeof(*v));
		if (v == NULL)
			goto oom;
		list->v = v;
		list->cap = cap;
	}
	if (vasprintf(&detail, fmt, ap) == -1)
		goto oom;
	f = &list->v[list->n];
	f->subject = strdup(subject ? subject : "");
	if (f->subject == NULL) {
		free(detail);
		goto oom;
	}
	f->code = code;
	f->severity = sev;
	f->role = role;
	f->detail = detail;
	list->n++;
	return 0;
oom:
	/* Callers cannot do better than this; the loss must not be silent. */
	log_warnx("msg=\"out of memory, finding dropped\" code=%s subject=%s",
	    finding_code_name(code), subject ? subject : "");
	return -1;
}

int
finding_add(struct finding_list *list, enum finding_code code,
    enum finding_role role, const char *subject, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = s_vadd(
	    list, code, finding_default_severity(code), role, subject, fmt, ap);
	va_end(ap);
	return rc;
}

int
finding_add_sev(struct finding_list *list, enum finding_code code,
    enum severity sev, enum finding_role role, const char *subject,
    const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = s_vadd(list, code, sev, role, subject, fmt, ap);
	va_end(ap);
	return rc;
}

size_t
finding_list_count(const struct finding_list *list, enum severity sev)
{
	size_t n = 0;

	for (size_t i = 0; i < list->n; i++)
		if (list->v[i].severity >= sev)
			n++;
	return n;
}

int
finding_list_has(const struct finding_list *list, enum finding_code code,
    const char *subject)
{
	for (size_t i = 0; i < list->n; i++) {
		if (list->v[i].code != code)
			continue;
		if (subject == NULL || strcmp(list->v[i].subject, subject) == 0)
			return 1;
	}
	return 0;
}

void
finding_list_clear(struct finding_list *list)
{
	for (size_t i = 0; i < list->n; i++) {
		free(list->v[i].subject);
		free(list->v[i].detail);
	}
	free(list->v);
	list->v = NULL;
	list->n = 0;
	list->cap = 0;
}
