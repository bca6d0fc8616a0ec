/* cert_eval.c -- judge one host's chain: trust, AIA completion, OCSP. */
#include "cert_eval.h"

#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_fetch.h"
#include "log.h"

#define AIA_MAX (64 * 1024)

struct cert_eval {
	struct engine *engine;
	char *host;
	enum finding_role role;
	STACK_OF(X509) * chain; /* borrowed */
	STACK_OF(X509) * extra; /* owned: pool view + AIA certificates */
	unsigned char *staple;	/* owned copy */
	size_t staple_len;
	struct finding_list *list;
	struct cert_eval_out *out;
	struct http_fetch *fetch;
	struct event *kick;
	int trust_done; /* out->trust holds at least the first verdict */
	X509 *issuer;	/* owned: the leaf's issuer, once looked up */
	int issuer_looked;
	cert_eval_cb cb;
	void *arg;
};

static void s_ocsp_step(struct cert_eval *ev);

/* The issuer name of x in RFC 2253 form, as cert_info reports names. */
static void
s_issuer_name(X509 *x, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(
		b, X509_get_issuer_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, buf, (int)len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
}

static void
s_free(struct cert_eval *ev)
{
	http_fetch_cancel(&ev->fetch);
	if (ev->kick != NULL)
		event_free(ev->kick);
	if (ev->extra != NULL)
		sk_X509_pop_free(ev->extra, X509_free);
	X509_free(ev->issuer);
	free(ev->staple);
	free(ev->host);
	free(ev);
}

static int
s_is_cert_error(const struct finding *f)
{
	switch (f->code) {
	case F_CERT_EXPIRED:
	case F_CERT_NOT_YET_VALID:
	case F_CERT_HOSTNAME_MISMATCH:
	case F_CERT_CHAIN_INCOMPLETE:
	case F_CERT_UNTRUSTED:
	case F_CERT_REVOKED:
	case F_CERT_WEAK_KEY:
	case F_CERT_WEAK_SIGNATURE:
		return 1;
	default:
		return 0;
	}
}

/* Adds the findings from what is known so far; does not free. */
static void
s_conclude(struct cert_eval *ev)
{
	size_t before = ev->list->n;
	int bad = 0;

	if (cert_check_findings(ev->list, ev->role, ev->host, ev->chain,
		ev->out->trust, ev->out->trust_detail, time(NULL)) == -1)
		log_warnx("host=%s msg=\"out of memory\"", ev->host);
	if (ev->out->ocsp == OCSP_STATUS_REVOKED) {
		(void)finding_add(ev->list, F_CERT_REVOKED, ev->role, ev->host,
		    "OCSP%s says revoked: %s",
		    ev->out->ocsp_checked == 2 ? " (stapled)" : "",
		    ev->out->ocsp_detail);
	}
	for (size_t i = before; i < ev->list->n; i++)
		if (s_is_cert_error(&ev->list->v[i]))
			bad = 1;
	ev->out->verified = !bad;
}

static void
s_finish(struct cert_eval *ev)
{
	s_conclude(ev);
	ev->cb(ev->arg);
	s_free(ev);
}

static int
s_add_stack(STACK_OF(X509) * dst, STACK_OF(X509) * src)
{
	for (int i = 0; src != NULL && i < sk_X509_num(src); i++) {
		X509 *x = sk_X509_value(src, i);
		if (!X509_up_ref(x))
			return -1;
		if (!sk_X509_push(dst, x)) {
			X509_free(x);
			return -1;
		}
	}
	return 0;
}

/* The issuer of the leaf: among what was sent, what we added, or the store
 * (a leaf issued straight by a root).  Returns a new reference or NULL. */
static X509 *
s_lookup_issuer(struct cert_eval *ev, X509 *leaf)
{
	STACK_OF(X509) * lists[2] = {ev->chain, ev->extra};
	X509_STORE_CTX *ctx;
	X509 *issuer = NULL;

	for (int l = 0; l < 2; l++) {
		for (int i = 0; lists[l] != NULL && i < sk_X509_num(lists[l]);
		     i++) {
			X509 *c = sk_X509_value(lists[l], i);
			if (c != leaf &&
			    X509_check_issued(c, leaf) == X509_V_OK) {
				X509_up_ref(c);
				return c;
			}
		}
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL)
		return NULL;
	if (X509_STORE_CTX_init(ctx, ev->engine->store, leaf, NULL) == 1 &&
	    X509_STORE_CTX_get1_issuer(&issuer, ctx, leaf) != 1)
		issuer = NULL;
	X509_STORE_CTX_free(ctx);
	return issuer;
}

/*
 * The leaf's issuer, borrowed.  Looked up once: OCSP only runs after the
 * trust step, when the certificates we know of no longer change.
 */
static X509 *
s_issuer(struct cert_eval *ev)
{
	if (!ev->issuer_looked) {
		ev->issuer = s_lookup_issuer(ev, sk_X509_value(ev->chain, 0));
		ev->issuer_looked = 1;
	}
	return ev->issuer;
}

static STACK_OF(X509) * s_all_certs(struct cert_eval *ev)
{
	STACK_OF(X509) *all = sk_X509_new_null();

	if (all == NULL)
		return NULL;
	if (s_add_stack(all, ev->chain) == -1 ||
	    s_add_stack(all, ev->extra) == -1) {
		sk_X509_pop_free(all, X509_free);
		return NULL;
	}
	return all;
}

static void
s_judge_ocsp(
    struct cert_eval *ev, const unsigned char *der, size_t len, int stapled)
{
	X509 *leaf = sk_X509_value(ev->chain, 0);
	X509 *issuer = s_issuer(ev);
	STACK_OF(X509) *all = s_all_certs(ev);
	struct ocsp_result r;

	memset(&r, 0, sizeof(r));
	if (issuer != NULL && all != NULL &&
	    ocsp_check_response(der, len, leaf, issuer, all, ev->engine->store,
		time(NULL), &r) == 0) {
		ev->out->ocsp = r.status;
		ev->out->ocsp_checked = stapled ? 2 : 1;
		snprintf(ev->out->ocsp_detail, sizeof(ev->out->ocsp_detail),
		    "%s", r.detail);
	}
	if (all != NULL)
		sk_X509_pop_free(all, X509_free);
}

static void
s_ocsp_fetched(struct http_fetch_result *res, void *arg)
{
	struct cert_eval *ev = arg;

	ev->fetch = NULL;
	if (res->curl_code == CURLE_OK && res->status == 200 && res->body)
		s_judge_ocsp(ev, res->body, res->body_len, 0);
	else
		snprintf(ev->out->ocsp_detail, sizeof(ev->out->ocsp_detail),
		    "responder did not answer: %s",
		    res->error[0] ? res->error : "bad HTTP status");
	s_finish(ev);
}

static int
s_is_http_url(const char *u)
{
	return u != NULL && (strncmp(u, "http://", 7) == 0 ||
				strncmp(u, "https://", 8) == 0);
}

static void
s_ocsp_step(struct cert_eval *ev)
{
	X509 *leaf = sk_X509_value(ev->chain, 0);
	struct cert_info info;
	unsigned char *req = NULL;
	X509 *issuer;
	int len;

	/* Revocation only means something once we know who issued the leaf. */
	if (ev->out->trust == TRUST_UNTRUSTED) {
		s_finish(ev);
		return;
	}
	if (ev->staple != NULL) {
		s_judge_ocsp(ev, ev->staple, ev->staple_len, 1);
		if (ev->out->ocsp != OCSP_STATUS_UNKNOWN) {
			s_finish(ev);
			return;
		}
	}
	if (cert_info_load(leaf, &info) == -1) {
		s_finish(ev);
		return;
	}
	issuer = s_issuer(ev);
	if (s_is_http_url(info.ocsp_url) && issuer != NULL &&
	    (len = ocsp_request_der(leaf, issuer, &req)) > 0) {
		struct http_fetch_req hr = {
		    .url = info.ocsp_url,
		    .post_type = "application/ocsp-request",
		    .post = req,
		    .post_len = (size_t)len,
		    .max_body = OCSP_RESPONSE_MAX,
		    .timeout_ms = ev->engine->io_timeout_ms,
		    .connect_timeout_ms = ev->engine->connect_timeout_ms,
		};
		ev->fetch =
		    http_fetch_start(ev->engine, &hr, s_ocsp_fetched, ev);
	}
	OPENSSL_free(req);
	cert_info_free(&info);
	if (ev->fetch == NULL)
		s_finish(ev);
}

static void
s_aia_fetched(struct http_fetch_result *res, void *arg)
{
	struct cert_eval *ev = arg;
	struct chain_verdict v;
	STACK_OF(X509) *got = NULL;

	ev->fetch = NULL;
	if (res->curl_code == CURLE_OK && res->status == 200 && res->body)
		got = cert_load_any(res->body, res->body_len);
	if (got != NULL && s_add_stack(ev->extra, got) == 0 &&
	    cert_chain_verify(ev->engine->store, ev->chain, ev->extra, &v) ==
		0 &&
	    v.status == CHAIN_TRUSTED) {
		ev->out->trust = TRUST_INCOMPLETE;
		X509 *top =
		    sk_X509_value(ev->chain, sk_X509_num(ev->chain) - 1);
		char iss[256];
		s_issuer_name(top, iss, sizeof(iss));
		snprintf(ev->out->trust_detail, sizeof(ev->out->trust_detail),
		    "%s is not sent by the server (fetched from the AIA "
		    "caIssuers URL, senders without it in cache fail)",
		    iss);
	}
	if (got != NULL)
		sk_X509_pop_free(got, X509_free);
	s_ocsp_step(ev);
}

static void
s_trust_step(struct cert_eval *ev)
{
	struct chain_verdict v;
	X509 *top;
	struct cert_info info;

	if (cert_chain_verify(ev->engine->store, ev->chain, NULL, &v) == -1) {
		ev->out->trust = TRUST_UNTRUSTED;
		snprintf(ev->out->trust_detail, sizeof(ev->out->trust_detail),
		    "internal error while verifying");
		s_finish(ev);
		return;
	}
	snprintf(ev->out->trust_detail, sizeof(ev->out->trust_detail), "%s",
	    v.detail);
	ev->trust_done = 1;
	if (v.status == CHAIN_TRUSTED) {
		ev->out->trust = TRUST_OK;
		(void)cert_pool_add_chain(ev->engine->pool, ev->chain);
		s_ocsp_step(ev);
		return;
	}
	ev->out->trust = TRUST_UNTRUSTED;
	if (v.status != CHAIN_ISSUER_MISSING) {
		s_ocsp_step(ev);
		return;
	}
	/* Issuer missing: a sender with the right intermediate cached would
	 * accept it, one without would not.  Tell incomplete from untrusted
	 * by whether the chain completes with intermediates we know of. */
	if (s_add_stack(ev->extra, cert_pool_stack(ev->engine->pool)) == 0 &&
	    cert_chain_verify(ev->engine->store, ev->chain, ev->extra, &v) ==
		0 &&
	    v.status == CHAIN_TRUSTED) {
		top = sk_X509_value(ev->chain, sk_X509_num(ev->chain) - 1);
		char iss[256];
		s_issuer_name(top, iss, sizeof(iss));
		ev->out->trust = TRUST_INCOMPLETE;
		snprintf(ev->out->trust_detail, sizeof(ev->out->trust_detail),
		    "%s is not sent by the server (known from other chains, "
		    "senders without it in cache fail)",
		    iss);
		s_ocsp_step(ev);
		return;
	}
	top = sk_X509_value(ev->chain, sk_X509_num(ev->chain) - 1);
	if (cert_info_load(top, &info) == 0) {
		if (s_is_http_url(info.ca_issuers_url)) {
			struct http_fetch_req hr = {
			    .url = info.ca_issuers_url,
			    .max_body = AIA_MAX,
			    .timeout_ms = ev->engine->io_timeout_ms,
			    .connect_timeout_ms =
				ev->engine->connect_timeout_ms,
			};
			ev->fetch = http_fetch_start(
			    ev->engine, &hr, s_aia_fetched, ev);
		}
		cert_info_free(&info);
	}
	if (ev->fetch == NULL)
		s_ocsp_step(ev);
}

static void
s_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	s_trust_step(arg);
}

struct cert_eval *
cert_eval_start(struct engine *engine, const char *host, enum finding_role role,
    STACK_OF(X509) * chain, const unsigned char *staple, size_t staple_len,
    struct finding_list *list, struct cert_eval_out *out, cert_eval_cb cb,
    void *arg)
{
	struct cert_eval *ev;
	struct timeval now = {0, 0};

	if (chain == NULL || sk_X509_num(chain) < 1)
		return NULL;
	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return NULL;
	ev->engine = engine;
	ev->role = role;
	ev->chain = chain;
	ev->list = list;
	ev->out = out;
	ev->cb = cb;
	ev->arg = arg;
	memset(out, 0, sizeof(*out));
	if ((ev->host = strdup(host)) == NULL ||
	    (ev->extra = sk_X509_new_null()) == NULL)
		goto fail;
	if (staple != NULL && staple_len > 0) {
		if ((ev->staple = malloc(staple_len)) == NULL)
			goto fail;
		memcpy(ev->staple, staple, staple_len);
		ev->staple_len = staple_len;
	}
	/* Run from the loop: the callback must never fire inside start. */
	ev->kick = evtimer_new(engine->base, s_kick, ev);
	if (ev->kick == NULL || evtimer_add(ev->kick, &now) == -1)
		goto fail;
	return ev;
fail:
	s_free(ev);
	return NULL;
}

void
cert_eval_flush(struct cert_eval **evp)
{
	struct cert_eval *ev = *evp;
	struct chain_verdict v;

	if (ev == NULL)
		return;
	*evp = NULL;
	http_fetch_cancel(&ev->fetch);
	if (!ev->trust_done) {
		ev->out->trust = TRUST_UNTRUSTED;
		if (cert_chain_verify(ev->engine->store, ev->chain, NULL, &v) ==
		    0) {
			if (v.status == CHAIN_TRUSTED)
				ev->out->trust = TRUST_OK;
			snprintf(ev->out->trust_detail,
			    sizeof(ev->out->trust_detail), "%s", v.detail);
		}
	}
	s_conclude(ev);
	s_free(ev);
}

void
cert_eval_cancel(struct cert_eval **evp)
{
	if (*evp == NULL)
		return;
	s_free(*evp);
	*evp = NULL;
}
