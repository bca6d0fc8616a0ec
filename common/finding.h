/* finding.h -- the stable finding codes and the list a probe fills. */
#ifndef MTASTS_FINDING_H
#define MTASTS_FINDING_H

#include <stddef.h>

/*
 * The codes are a public interface: SOC pipelines key on their names.  Add
 * new codes at the end; never rename or renumber one.  docs/findings.md
 * documents each.
 */
enum finding_code {
	F_DNS_FAILURE,
	F_STS_TXT_MISSING,
	F_STS_TXT_MULTIPLE,
	F_STS_TXT_INVALID,
	F_POLICY_FETCH_FAILED,
	F_POLICY_REDIRECT,
	F_POLICY_HTTP_STATUS,
	F_POLICY_CONTENT_TYPE,
	F_POLICY_TOO_LARGE,
	F_POLICY_SYNTAX,
	F_POLICY_MODE_TESTING,
	F_POLICY_MODE_NONE,
	F_POLICY_MAX_AGE_LOW,
	F_POLICY_MX_UNUSED,
	F_TLS_HANDSHAKE_FAILED,
	F_TLS_VERSION_WEAK,
	F_CERT_EXPIRED,
	F_CERT_NOT_YET_VALID,
	F_CERT_EXPIRING,
	F_CERT_HOSTNAME_MISMATCH,
	F_CERT_CHAIN_INCOMPLETE,
	F_CERT_UNTRUSTED,
	F_CERT_REVOKED,
	F_CERT_WEAK_KEY,
	F_CERT_WEAK_SIGNATURE,
	F_MX_MISSING,
	F_MX_NOT_IN_POLICY,
	F_MX_CONNECT_FAILED,
	F_MX_STARTTLS_MISSING,
	F_TLSRPT_MISSING,
	F_TLSRPT_INVALID,
	F__COUNT
};

enum severity { SEV_INFO, SEV_WARNING, SEV_ERROR };

/* Whom a finding is about; it selects the RFC 8460 result type. */
enum finding_role { ROLE_DOMAIN, ROLE_POLICY_HOST, ROLE_MX };

struct finding {
	enum finding_code code;
	enum severity severity;
	enum finding_role role;
	char *subject; /* owned: host or domain the finding is about */
	char *detail;  /* owned: one human sentence */
};

/* A growable list; the list owns every finding and its strings. */
struct finding_list {
	struct finding *v;
	size_t n;
	size_t cap;
};

const char *finding_code_name(enum finding_code code);
/* Returns -1 when name is not a known code. */
int finding_code_from_name(const char *name);
enum severity finding_default_severity(enum finding_code code);
const char *finding_severity_name(enum severity sev);
/* The RFC 8460 result type a sender would report, or NULL when none. */
const char *finding_rfc8460_type(
    enum finding_code code, enum finding_role role);

/*
 * Appends a finding with the code's default severity.  detail is a printf
 * format.  Calls malloc; returns 0, or -1 when out of memory.
 */
int finding_add(struct finding_list *list, enum finding_code code,
    enum finding_role role, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same with an explicit severity (CERT_EXPIRING escalates). */
int finding_add_sev(struct finding_list *list, enum finding_code code,
    enum severity sev, enum finding_role role, const char *subject,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Counts the findings of at least severity sev. */
size_t finding_list_count(const struct finding_list *list, enum severity sev);
/* 1 when code is present (for subject, or for any subject when NULL). */
int finding_list_has(const struct finding_list *list, enum finding_code code,
    const char *subject);
/* Frees every finding; the list is empty and reusable afterwards. */
void finding_list_clear(struct finding_list *list);

#endif
