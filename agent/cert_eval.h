/* cert_eval.h -- judge one host's chain: trust, AIA completion, OCSP. */
#ifndef MTASTS_CERT_EVAL_H
#define MTASTS_CERT_EVAL_H

#include <openssl/x509.h>

#include "cert_check.h"
#include "engine.h"
#include "finding.h"
#include "ocsp_check.h"

struct cert_eval_out {
	enum chain_trust trust;
	char trust_detail[256];
	int verified; /* a strict sender would accept this chain for host */
	enum ocsp_status ocsp;
	int ocsp_checked; /* an OCSP answer (stapled or fetched) was judged */
	char ocsp_detail[256];
};

typedef void (*cert_eval_cb)(void *arg);

struct cert_eval;

/*
 * Judges chain (borrowed; must stay valid until the callback or cancel) as
 * served by host, appending findings to list (borrowed) and the verdict to
 * out.  May fetch the AIA caIssuers certificate and ask the OCSP responder,
 * so it completes through cb from the event loop.  Returns NULL when it
 * could not start.
 */
struct cert_eval *cert_eval_start(struct engine *engine, const char *host,
    enum finding_role role, STACK_OF(X509) * chain, const unsigned char *staple,
    size_t staple_len, struct finding_list *list, struct cert_eval_out *out,
    cert_eval_cb cb, void *arg);
/*
 * Concludes now with what is known (no AIA or OCSP answer awaited), adding
 * the findings, without calling the callback.  NULLs *ev.
 */
void cert_eval_flush(struct cert_eval **ev);
/* Abandons it: no callback, no findings.  NULLs *ev. */
void cert_eval_cancel(struct cert_eval **ev);

#endif
