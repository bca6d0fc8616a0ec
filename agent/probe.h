/* probe.h -- one complete single-vantage MTA-STS check of a domain. */
#ifndef MTASTS_PROBE_H
#define MTASTS_PROBE_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "cert_eval.h"
#include "dns_packet.h"
#include "engine.h"
#include "finding.h"
#include "policy_parse.h"

#define PROBE_MX_MAX	10    /* MX hosts connected to per domain */
#define PROBE_ADDRS_MAX 8     /* addresses kept per host */
#define POLICY_BODY_MAX 65536 /* RFC 8461 3.3: 64 KiB */

/* What was learnt about one TLS endpoint (policy host or MX). */
struct host_result {
	char *host;   /* owned */
	char **addrs; /* owned: A then AAAA answers */
	size_t n_addrs;
	char ip[64]; /* the address the TLS session ran on */
	int tls_ok;
	int tls_version_num;
	char tls_version[16];
	char cipher[64];
	long handshake_ms;
	STACK_OF(X509) * chain; /* owned, as sent */
	int evaluated;		/* eval below is meaningful */
	struct cert_eval_out eval;
	char error[320]; /* why no TLS facts, "" otherwise */
};

struct mx_result {
	struct host_result h;
	int preference;
	int connected;	  /* TCP and a 220 greeting */
	int starttls;	  /* offered in EHLO */
	int policy_match; /* -1 when no policy applies */
};

/* Everything one probe of one domain found.  Owned by whoever the probe's
 * callback hands it to; free with probe_result_free(). */
struct probe_result {
	char *domain;
	char *vantage;
	char *resolver;
	struct timespec started_at; /* wall clock */
	long duration_ms;
	int completed; /* 0 when the whole-probe timeout cut it short */

	char **sts_records; /* every TXT at _mta-sts, joined */
	size_t n_sts_records;
	char sts_id[33];
	int sts_valid;

	char *policy_url;
	long http_status;
	char *content_type;
	char policy_sha256[65];
	char *policy_raw; /* NUL-terminated; may hold other NULs */
	size_t policy_raw_len;
	int policy_parsed; /* policy below was parsed from a 200 text/plain */
	int policy_valid;
	struct sts_policy policy;
	struct host_result policy_host;

	struct mx_result *mx;
	size_t n_mx;

	char **tlsrpt_records;
	size_t n_tlsrpt_records;
	char **rua;
	size_t n_rua;
	int tlsrpt_valid;

	struct finding_list findings;
};

void probe_result_free(struct probe_result **res);

/* Takes ownership of res. */
typedef void (*probe_done_cb)(struct probe_result *res, void *arg);

struct probe;

/*
 * Starts probing domain (a host name; copied).  The result arrives through
 * cb from the event loop, always exactly once unless the probe is
 * cancelled.  Returns NULL when the probe could not start (out of memory).
 */
struct probe *probe_start(
    struct engine *engine, const char *domain, probe_done_cb cb, void *arg);
/* Abandons a running probe; no callback. NULLs *probe. */
void probe_cancel(struct probe **probe);

/* 1 when name is a syntactically valid domain to probe. */
int probe_domain_valid(const char *name);

#endif
