/* http_fetch.c -- bounded HTTP(S) requests on the engine's curl multi. */
#include "http_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/ssl.h>

struct http_fetch {
	struct engine *engine;
	CURL *easy;
	struct curl_slist *resolve;
	size_t max_body;
	http_fetch_cb cb;
	void *arg;
	struct http_fetch_result res;
};

static int ssl_ex_index = -1;

static size_t
s_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_fetch *f = userdata;
	size_t n = size * nmemb;
	size_t room = f->max_body - f->res.body_len;

	if (n > room) {
		/* Keep what fits so the report can show the start of it;
		 * returning short aborts the transfer (no unbounded reads). */
		n = room;
		f->res.too_large = 1;
	}
	if (n > 0) {
		unsigned char *b =
		    realloc(f->res.body, f->res.body_len + n + 1);
		if (b == NULL)
			return 0;
		memcpy(b + f->res.body_len, ptr, n);
		f->res.body = b;
		f->res.body_len += n;
		b[f->res.body_len] = '\0';
	}
	return f->res.too_large ? 0 : size * nmemb;
}

/*
 * The chain must come from the very connection the policy came over, so it
 * is taken when curl's handshake ends, through OpenSSL's info callback.
 */
static void
s_ssl_info(const SSL *ssl, int where, int ret)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	struct http_fetch *f;
	STACK_OF(X509) * chain;
	const unsigned char *staple;
	long len;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE) || ctx == NULL)
		return;
	f = SSL_CTX_get_ex_data(ctx, ssl_ex_index);
	if (f == NULL || f->res.tls_done)
		return;
	f->res.tls_done = 1;
	snprintf(f->res.tls_version, sizeof(f->res.tls_version), "%s",
	    SSL_get_version(ssl));
	snprintf(f->res.cipher, sizeof(f->res.cipher), "%s",
	    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	chain = SSL_get_peer_cert_chain(ssl);
	if (chain != NULL)
		f->res.chain = X509_chain_up_ref(chain);
	len = SSL_get_tlsext_status_ocsp_resp((SSL *)ssl, &staple);
	if (len > 0 && len <= 65536 && staple != NULL) {
		f->res.ocsp_staple = malloc((size_t)len);
		if (f->res.ocsp_staple != NULL) {
			memcpy(f->res.ocsp_staple, staple, (size_t)len);
			f->res.ocsp_staple_len = (size_t)len;
		}
	}
}

static CURLcode
s_ssl_ctx(CURL *easy, void *sslctx, void *userptr)
{
	SSL_CTX *ctx = sslctx;

	(void)easy;
	if (engine_ssl_ctx_relax(ctx) == -1)
		return CURLE_SSL_CIPHER;
	SSL_CTX_set_ex_data(ctx, ssl_ex_index, userptr);
	SSL_CTX_set_info_callback(ctx, s_ssl_info);
	return CURLE_OK;
}

static void
s_free(struct http_fetch *f)
{
	struct http_fetch_result *r = &f->res;

	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	curl_slist_free_all(f->resolve);
	free(r->content_type);
	free(r->location);
	free(r->body);
	free(r->ocsp_staple);
	if (r->chain != NULL)
		sk_X509_pop_free(r->chain, X509_free);
	free(f);
}

struct http_fetch *
http_fetch_start(struct engine *engine, const struct http_fetch_req *req,
    http_fetch_cb cb, void *arg)
{
	struct http_fetch *f;
	CURL *c;

	if (ssl_ex_index == -1) {
		ssl_ex_index =
		    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (ssl_ex_index == -1)
			return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->engine = engine;
	f->cb = cb;
	f->arg = arg;
	f->max_body = req->max_body;
	if ((f->easy = c = curl_easy_init()) == NULL)
		goto fail;
	if (req->resolve != NULL &&
	    (f->resolve = curl_slist_append(NULL, req->resolve)) == NULL)
		goto fail;

	if (curl_easy_setopt(c, CURLOPT_URL, req->url) != CURLE_OK)
		goto fail;
	curl_easy_setopt(c, CURLOPT_PRIVATE, f);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->res.error);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(
	    c, CURLOPT_PROTOCOLS_STR, req->https_only ? "https" : "http,https");
	/* RFC 8461 3.3: redirects must not be followed. */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mtasts-watch/0.1");
	/* curl's receive buffer is held from the connect on, also while a
	 * slow server keeps us waiting; policies are small and the body is
	 * bounded by max_body whatever the chunk size. */
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 4096L);
	/* A fresh connection and no TLS session: every probe must see the
	 * server's own chain, never a cached one. */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	/* We verify the chain ourselves so that a bad certificate still yields
	 * the policy body and the chain. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_0);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, s_ssl_ctx);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, f);
	if (f->resolve != NULL)
		curl_easy_setopt(c, CURLOPT_RESOLVE, f->resolve);
	if (req->post_type != NULL) {
		char hdr[128];
		struct curl_slist *h;
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", req->post_type);
		/* Appended to the resolve list's owner so one free covers it.
		 */
		h = curl_slist_append(NULL, hdr);
		if (h == NULL)
			goto fail;
		if (f->resolve == NULL) {
			f->resolve = h;
		} else {
			struct curl_slist *last = f->resolve;
			while (last->next != NULL)
				last = last->next;
			last->next = h;
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->post_len);
		curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, req->post);
	}
	if (engine_curl_add(engine, c) == -1)
		goto fail;
	return f;
fail:
	s_free(f);
	return NULL;
}

void
http_fetch_cancel(struct http_fetch **fp)
{
	struct http_fetch *f = *fp;

	if (f == NULL)
		return;
	curl_multi_remove_handle(f->engine->curlm, f->easy);
	s_free(f);
	*fp = NULL;
}

void
http_fetch_finish(CURL *easy, CURLcode rc)
{
	struct http_fetch *f = NULL;
	struct http_fetch_result *r;
	char *s = NULL;
	curl_off_t t_conn = 0, t_app = 0;

	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f) !=
		CURLE_OK ||
	    f == NULL)
		return;
	r = &f->res;
	r->curl_code = rc;
	if (r->error[0] == '\0' && rc != CURLE_OK)
		snprintf(
		    r->error, sizeof(r->error), "%s", curl_easy_strerror(rc));
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &s) == CURLE_OK &&
	    s != NULL)
		r->content_type = strdup(s);
	s = NULL;
	if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &s) == CURLE_OK &&
	    s != NULL)
		r->location = strdup(s);
	s = NULL;
	if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &s) == CURLE_OK &&
	    s != NULL)
		snprintf(r->ip, sizeof(r->ip), "%s", s);
	curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &t_conn);
	curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &t_app);
	if (t_app > t_conn)
		r->handshake_ms = (long)((t_app - t_conn) / 1000);
	f->cb(r, f->arg);
	s_free(f);
}
