/* engine.c -- process-wide probe machinery: event loop glue and TLS setup. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <unbound-event.h>
#include <unbound.h>

#include "cert_check.h"
#include "http_fetch.h"
#include "log.h"

#define CERT_POOL_CAP 512

/* One per socket curl asks us to watch. */
struct curl_sock {
	struct event *ev;
};

long long
engine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_curl_check_done(struct engine *e)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(e->curlm, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(e->curlm, easy);
		http_fetch_finish(easy, rc);
	}
}

static void
s_curl_event(evutil_socket_t fd, short kind, void *arg)
{
	struct engine *e = arg;
	int action = 0, running;

	if (kind & EV_READ)
		action |= CURL_CSELECT_IN;
	if (kind & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(e->curlm, fd, action, &running);
	s_curl_check_done(e);
}

static void
s_curl_timer_fired(evutil_socket_t fd, short kind, void *arg)
{
	struct engine *e = arg;
	int running;

	(void)fd;
	(void)kind;
	curl_multi_socket_action(e->curlm, CURL_SOCKET_TIMEOUT, 0, &running);
	s_curl_check_done(e);
}

static int
s_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct engine *e = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(e->curl_timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(e->curl_timer, &tv) == -1 ? -1 : 0;
}

static int
s_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct engine *e = userp;
	struct curl_sock *cs = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			event_free(cs->ev);
			free(cs);
		}
		curl_multi_assign(e->curlm, s, NULL);
		return 0;
	}
	if (cs == NULL) {
		if ((cs = calloc(1, sizeof(*cs))) == NULL)
			return -1;
		curl_multi_assign(e->curlm, s, cs);
	} else {
		event_free(cs->ev);
		cs->ev = NULL;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	cs->ev = event_new(e->base, s, kind, s_curl_event, e);
	if (cs->ev == NULL || event_add(cs->ev, NULL) == -1)
		return -1;
	return 0;
}

int
engine_curl_add(struct engine *engine, CURL *easy)
{
	return curl_multi_add_handle(engine->curlm, easy) == CURLM_OK ? 0 : -1;
}

/* "IP[:PORT]" or "[IPv6]:PORT" into unbound's "IP@PORT". */
static int
s_resolver_to_ub(const char *in, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL;
	size_t hlen;

	if (in[0] == '[') {
		const char *end = strchr(in, ']');
		if (end == NULL)
			return -1;
		hlen = (size_t)(end - in - 1);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, in + 1, hlen);
		host[hlen] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else {
		const char *colon = strchr(in, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			hlen = (size_t)(colon - in);
			port = colon + 1;
		} else {
			hlen = strlen(in); /* bare IPv6 or bare IPv4 */
		}
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, in, hlen);
		host[hlen] = '\0';
	}
	unsigned char bin[16];
	if (inet_pton(AF_INET, host, bin) != 1 &&
	    inet_pton(AF_INET6, host, bin) != 1)
		return -1;
	if (port != NULL) {
		char *endp;
		long p = strtol(port, &endp, 10);
		if (*port == '\0' || *endp != '\0' || p < 1 || p > 65535)
			return -1;
		if (snprintf(out, outlen, "%s@%ld", host, p) >= (int)outlen)
			return -1;
	} else if (snprintf(out, outlen, "%s", host) >= (int)outlen) {
		return -1;
	}
	return 0;
}

static const char *const no_default_zones[] = {
    "test. transparent",
    "invalid. transparent",
    "onion. transparent",
    "home.arpa. transparent",
};

static int
s_setup_resolver(struct engine *e, char *err, size_t errlen)
{
	int rc;

	e->ub = ub_ctx_create_event(e->base);
	if (e->ub == NULL) {
		snprintf(err, errlen, "cannot create the DNS resolver");
		return -1;
	}
	/* A forwarder on loopback (systemd-resolved, a local unbound, a lab)
	 * is normal for us; unbound refuses it by default. */
	if (ub_ctx_set_option(e->ub, "do-not-query-localhost:", "no") != 0) {
		snprintf(err, errlen, "cannot configure the DNS resolver");
		return -1;
	}
	/* The resolver we forward to is the authority on every name, test
	 * labs included: unbound's built-in answers for RFC 6761 names must
	 * not shadow it. */
	for (size_t i = 0;
	     i < sizeof(no_default_zones) / sizeof(no_default_zones[0]); i++) {
		if (ub_ctx_set_option(
			e->ub, "local-zone:", no_default_zones[i]) != 0) {
			snprintf(err, errlen, "cannot configure the resolver");
			return -1;
		}
	}
	if (e->cfg.resolver != NULL) {
		char fwd[INET6_ADDRSTRLEN + 16];
		if (s_resolver_to_ub(e->cfg.resolver, fwd, sizeof(fwd)) == -1) {
			snprintf(err, errlen,
			    "--resolver: '%s' is not IP[:PORT] or [IPv6]:PORT",
			    e->cfg.resolver);
			return -1;
		}
		if ((rc = ub_ctx_set_fwd(e->ub, fwd)) != 0) {
			snprintf(err, errlen, "--resolver %s: %s",
			    e->cfg.resolver, ub_strerror(rc));
			return -1;
		}
		snprintf(e->resolver_name, sizeof(e->resolver_name), "%s",
		    e->cfg.resolver);
	} else {
		if ((rc = ub_ctx_resolvconf(e->ub, NULL)) != 0) {
			snprintf(err, errlen, "/etc/resolv.conf: %s",
			    ub_strerror(rc));
			return -1;
		}
		snprintf(e->resolver_name, sizeof(e->resolver_name), "system");
	}
	return 0;
}

/*
 * Our handshakes must complete wherever any sender's could, so that we can
 * say exactly why a strict sender would refuse: offer TLS 1.0 to 1.3 at
 * security level 0, verify nothing during the handshake (cert_check.c does it
 * afterwards against the store) and keep no session cache (each probe must
 * see the real chain).
 */
static SSL_CTX *
s_ssl_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	if (engine_ssl_ctx_relax(ctx) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* Thousands of handshakes wait on slow servers at once: their record
	 * buffers are freed whenever they are empty, not held throughout. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

int
engine_ssl_ctx_relax(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0") != 1)
		return -1;
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_options(
	    ctx, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_NO_TICKET);
	/* Ask for a stapled OCSP response; absence is not an error. */
	SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
	return 0;
}

struct engine *
engine_new(struct event_base *base, const struct engine_config *cfg, char *err,
    size_t errlen)
{
	struct engine *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->base = base;
	e->cfg = *cfg;
	if (e->cfg.timeout_s <= 0)
		e->cfg.timeout_s = 30;
	if (e->cfg.https_port <= 0)
		e->cfg.https_port = 443;
	if (e->cfg.smtp_port <= 0)
		e->cfg.smtp_port = 25;
	/* Each step gets a share of the probe's budget so that one slow step
	 * still leaves time to report the others. */
	e->connect_timeout_ms = e->cfg.timeout_s * 1000 / 3;
	if (e->connect_timeout_ms > 10000)
		e->connect_timeout_ms = 10000;
	e->io_timeout_ms = e->connect_timeout_ms;

	if (gethostname(e->helo_name, sizeof(e->helo_name)) == -1 ||
	    e->helo_name[0] == '\0')
		snprintf(e->helo_name, sizeof(e->helo_name), "localhost");
	e->helo_name[sizeof(e->helo_name) - 1] = '\0';

	if (s_setup_resolver(e, err, errlen) == -1)
		goto fail;

	if ((e->store = X509_STORE_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg->ca_file != NULL) {
		if (X509_STORE_load_file(e->store, cfg->ca_file) != 1) {
			snprintf(err, errlen, "--ca-file %s: cannot load PEM",
			    cfg->ca_file);
			goto fail;
		}
	} else if (X509_STORE_set_default_paths(e->store) != 1) {
		snprintf(err, errlen, "cannot load the system trust store");
		goto fail;
	}
	if ((e->ssl_ctx = s_ssl_ctx_new()) == NULL) {
		snprintf(err, errlen, "cannot create the TLS context");
		goto fail;
	}
	if ((e->pool = cert_pool_new(CERT_POOL_CAP)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	if ((e->curlm = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "cannot create the HTTP client");
		goto fail;
	}
	e->curl_timer = evtimer_new(base, s_curl_timer_fired, e);
	if (e->curl_timer == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	curl_multi_setopt(e->curlm, CURLMOPT_SOCKETFUNCTION, s_curl_socket);
	curl_multi_setopt(e->curlm, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->curlm, CURLMOPT_TIMERFUNCTION, s_curl_timer);
	curl_multi_setopt(e->curlm, CURLMOPT_TIMERDATA, e);
	return e;
fail:
	engine_free(&e);
	return NULL;
}

void
engine_free(struct engine **enginep)
{
	struct engine *e = *enginep;

	if (e == NULL)
		return;
	if (e->curlm != NULL)
		curl_multi_cleanup(e->curlm);
	if (e->curl_timer != NULL)
		event_free(e->curl_timer);
	if (e->ub != NULL)
		ub_ctx_delete(e->ub);
	SSL_CTX_free(e->ssl_ctx);
	X509_STORE_free(e->store);
	cert_pool_free(&e->pool);
	free(e);
	*enginep = NULL;
}
