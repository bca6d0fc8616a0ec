/* engine.h -- process-wide probe machinery: event loop, resolver, TLS. */
#ifndef MTASTS_ENGINE_H
#define MTASTS_ENGINE_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <curl/curl.h>

struct ub_ctx;
struct cert_pool;
struct dns_query;

struct engine_config {
	const char *resolver; /* "IP[:PORT]" or NULL for /etc/resolv.conf */
	const char *ca_file;  /* PEM trust anchors, NULL for the system store */
	const char *vantage;  /* name reported in results */
	int timeout_s;	      /* whole-probe timeout */
	int https_port;	      /* 443 unless a lab says otherwise */
	int smtp_port;	      /* 25 unless a lab says otherwise */
};

/*
 * Everything that is built once per process and shared by all probes: the
 * trust store and SSL_CTX are expensive to build and identical for every
 * probe, so no probe makes its own.  The engine does not own the event base.
 */
struct engine {
	struct event_base *base; /* borrowed */
	struct ub_ctx *ub;
	CURLM *curlm;
	struct event *curl_timer;
	SSL_CTX *ssl_ctx;	/* for our handshakes: STARTTLS, policy */
	X509_STORE *store;	/* trust anchors for our own verification */
	struct cert_pool *pool; /* intermediates seen in validated chains */
	char helo_name[256];
	char resolver_name[128];
	struct engine_config cfg; /* strings borrowed from the caller */
	int connect_timeout_ms;
	int io_timeout_ms;
	/* dns_query.c's: queries libunbound holds, and those waiting for
	 * room (FIFO), so a burst of probes cannot hold thousands of
	 * resolver states at once. */
	int dns_inflight;
	int dns_pumping;
	struct dns_query *dns_wait_head;
	struct dns_query *dns_wait_tail;
};

/*
 * Builds the engine on base.  Calls malloc; returns NULL with a reason in
 * err.  Free with engine_free(), which NULLs the caller's pointer.
 */
struct engine *engine_new(struct event_base *base,
    const struct engine_config *cfg, char *err, size_t errlen);
void engine_free(struct engine **engine);

/*
 * Applies our permissive TLS settings (TLS 1.0 and up, every cipher,
 * security level 0, OCSP stapling asked for) to a context: ours, or the
 * one curl builds for an https:// OCSP or AIA URL, so every connection
 * offers the same handshake.  0, or -1 when OpenSSL refuses them.
 */
int engine_ssl_ctx_relax(SSL_CTX *ctx);

/* Adds an easy handle to the engine's curl multi (see http_fetch.c). */
int engine_curl_add(struct engine *engine, CURL *easy);

/* Milliseconds of the monotonic clock. */
long long engine_now_ms(void);

#endif
