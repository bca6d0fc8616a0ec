/* http_fetch.c -- OCSP and AIA requests on the engine's curl multi. */
#include "http_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

struct http_fetch {
	struct engine *engine;
	CURL *easy;
	struct curl_slist *headers;
	size_t max_body;
	http_fetch_cb cb;
	void *arg;
	struct http_fetch_result res;
};

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

static CURLcode
s_ssl_ctx(CURL *easy, void *sslctx, void *userptr)
{
	SSL_CTX *ctx = sslctx;

	(void)easy;
	(void)userptr;
	/* An https:// OCSP or AIA URL gets the same lenient handshake. */
	if (engine_ssl_ctx_relax(ctx) == -1)
		return CURLE_SSL_CIPHER;
	return CURLE_OK;
}

static void
s_free(struct http_fetch *f)
{
	struct http_fetch_result *r = &f->res;

	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	curl_slist_free_all(f->headers);
	free(r->body);
	free(f);
}

struct http_fetch *
http_fetch_start(struct engine *engine, const struct http_fetch_req *req,
    http_fetch_cb cb, void *arg)
{
	struct http_fetch *f;
	CURL *c;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->engine = engine;
	f->cb = cb;
	f->arg = arg;
	f->max_body = req->max_body;
	if ((f->easy = c = curl_easy_init()) == NULL)
		goto fail;

	if (curl_easy_setopt(c, CURLOPT_URL, req->url) != CURLE_OK)
		goto fail;
	curl_easy_setopt(c, CURLOPT_PRIVATE, f);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->res.error);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
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
	if (req->post_type != NULL) {
		char hdr[128];
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", req->post_type);
		if ((f->headers = curl_slist_append(NULL, hdr)) == NULL)
			goto fail;
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->headers);
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
	f->cb(r, f->arg);
	s_free(f);
}
