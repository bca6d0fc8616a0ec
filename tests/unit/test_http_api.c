/* test_http_api.c -- the HTTP API, spoken to with libcurl, against a real
 * PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "../lib/testcert.h"
#include "compare.h"
#include "http_api.h"
#include "store_pg.h"
#include "pgschema.h"

#define sql(t, ...) pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)   pgschema_q(&(t)->db, __VA_ARGS__)

/*
 * Environment: MTASTS_TEST_PG (required), MTASTS_TEST_SQLDIR (default
 * deploy/sql).  Each test has its own schema holding example.com
 * (watched, one round compared from two agents that both saw the same
 * certificate), idle.example (watched, never probed) and two incidents;
 * the API is started on 127.0.0.1 port 0 (the kernel picks) and spoken
 * to over real HTTP.
 */

#define DAY	 86400L
#define INTERVAL 300
#define DOMAIN	 "example.com"
#define TOKEN	 "test-token-0123456789abcdef"

static struct {
	const char *conninfo;
	const char *sqldir;
	time_t now;
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *der;
	int len;
	unsigned char sha[32];
} fx;

struct t {
	struct pgschema db;
	struct store *st;
	struct http_api *api;
	unsigned port;
	long long inc_open, inc_info;
};

struct resp {
	long status;
	char *body;
	size_t len;
	char ctype[128];
	char www_auth[128];
	char allow[64];
	char retry_after[16];
	CURLcode rc;
};

/* ---- fixtures ---- */

static int
group_setup(void **state)
{
	struct tc_opts o = {0};

	(void)state;
	fx.now = time(NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (fx.key = tc_key_ec("P-256")) == NULL)
		return -1;
	o.cn = "mx1." DOMAIN;
	o.san = "DNS:mx1." DOMAIN ",DNS:mta-sts." DOMAIN;
	o.key = fx.key;
	o.serial = 77;
	o.not_before = fx.now - DAY;
	o.not_after = fx.now + 40 * DAY;
	if ((fx.cert = tc_cert(&o)) == NULL)
		return -1;
	fx.der = NULL;
	if ((fx.len = i2d_X509(fx.cert, &fx.der)) <= 0)
		return -1;
	EVP_Digest(fx.der, (size_t)fx.len, fx.sha, NULL, EVP_sha256(), NULL);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	OPENSSL_free(fx.der);
	X509_free(fx.cert);
	EVP_PKEY_free(fx.key);
	curl_global_cleanup();
	return 0;
}

static int
s_put(struct t *t, int64_t agent, uint64_t seq, int64_t round)
{
	Mtastswatch__V1__ProbeResult r = MTASTSWATCH__V1__PROBE_RESULT__INIT;
	Mtastswatch__V1__Policy pol = MTASTSWATCH__V1__POLICY__INIT;
	Mtastswatch__V1__HostObservation ph =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	Mtastswatch__V1__HostObservation mxh =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	Mtastswatch__V1__MxObservation
	    mx = MTASTSWATCH__V1__MX_OBSERVATION__INIT,
	    *mxp = &mx;
	Mtastswatch__V1__Certificate c = MTASTSWATCH__V1__CERTIFICATE__INIT,
				     *cp = &c;
	ProtobufCBinaryData chain = {32, fx.sha};
	Mtastswatch__V1__ProbeResult *ptr = &r;
	struct timespec rt = {.tv_sec = fx.now, .tv_nsec = 0};
	char *pmx = "mx1." DOMAIN;
	uint64_t committed;

	r.seq = seq;
	r.domain = DOMAIN;
	r.round = (uint64_t)round;
	r.started_at_ms = round * INTERVAL * 1000;
	r.completed = 1;
	pol.http_status = 200;
	pol.mode = "testing";
	pol.mx = &pmx;
	pol.n_mx = 1;
	pol.max_age = 86400;
	pol.valid = 1;
	r.policy = &pol;
	c.der.data = fx.der;
	c.der.len = (size_t)fx.len;
	r.certificates = &cp;
	r.n_certificates = 1;
	ph.host = "mta-sts." DOMAIN;
	ph.tls_ok = 1;
	ph.verified = 1;
	ph.chain_sha256 = &chain;
	ph.n_chain_sha256 = 1;
	r.policy_host = &ph;
	mxh.host = "mx1." DOMAIN;
	mxh.tls_ok = 1;
	mxh.verified = 1;
	mxh.chain_sha256 = &chain;
	mxh.n_chain_sha256 = 1;
	mx.host = &mxh;
	mx.preference = 10;
	mx.starttls = 1;
	mx.policy_match = 1;
	r.mx = &mxp;
	r.n_mx = 1;
	return store_write_batch(t->st, agent, &ptr, 1, &rt, &committed);
}

static int
s_start(struct t *t, const char *conninfo, const char *token)
{
	struct http_api_opts o = {0};
	char err[256];

	o.bind = "127.0.0.1:0";
	o.conninfo = conninfo;
	o.token = token;
	if ((t->api = http_api_start(&o, err, sizeof(err))) == NULL) {
		print_error("http_api_start: %s\n", err);
		return -1;
	}
	t->port = http_api_port(t->api);
	return t->port > 0 ? 0 : -1;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char err[512];
	int64_t a1, a2, round = fx.now / INTERVAL;
	PGconn *cmp;

	if (t == NULL)
		return -1;
	*state = t;
	if (pgschema_open(&t->db, fx.conninfo, "http_test") == -1)
		return -1;
	if ((t->st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err))) ==
	    NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	if (store_agent_upsert(t->st, "HTTPKEY1", "agent-1", "eu", &a1) != 0 ||
	    store_agent_upsert(t->st, "HTTPKEY2", "agent-2", "us", &a2) != 0 ||
	    store_domain_add(t->st, DOMAIN, NULL) != 0 ||
	    store_domain_add(t->st, "idle.example", NULL) != 0 ||
	    s_put(t, a1, 1, round) != 0 || s_put(t, a2, 1, round) != 0)
		return -1;
	cmp = PQconnectdb(t->db.conninfo);
	if (PQstatus(cmp) != CONNECTION_OK ||
	    compare_round(cmp, DOMAIN, round, NULL, NULL) != 0) {
		PQfinish(cmp);
		return -1;
	}
	PQfinish(cmp);
	t->inc_open =
	    strtoll(q(t,
			"INSERT INTO incidents (domain, code, subject, "
			"severity, detail) VALUES ('%s', "
			"'CERT_EXPIRING', 'mx1.%s', 'warning', "
			"'expires in 40 days') RETURNING id",
			DOMAIN, DOMAIN),
		NULL, 10);
	t->inc_info =
	    strtoll(q(t,
			"INSERT INTO incidents (domain, code, subject, "
			"severity, state, resolved_at) VALUES ('%s', "
			"'POLICY_MODE_TESTING', 'mta-sts.%s', 'info', "
			"'resolved', now()) RETURNING id",
			DOMAIN, DOMAIN),
		NULL, 10);
	return 0;
}

static int
setup_api(void **state)
{
	struct t *t;

	if (setup(state) == -1)
		return -1;
	t = *state;
	return s_start(t, t->db.conninfo, NULL);
}

static int
setup_api_token(void **state)
{
	struct t *t;

	if (setup(state) == -1)
		return -1;
	t = *state;
	return s_start(t, t->db.conninfo, TOKEN);
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	http_api_stop(&t->api);
	assert_null(t->api);
	store_close(&t->st);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/* ---- the client ---- */

static size_t
s_body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static void
s_header_value(
    const char *line, size_t n, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	line += nl + 1;
	n -= nl + 1;
	while (n > 0 && *line == ' ') {
		line++;
		n--;
	}
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		n--;
	snprintf(out, outlen, "%.*s", (int)n, line);
}

static size_t
s_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;

	s_header_value(p, size * n, "Content-Type", r->ctype, sizeof(r->ctype));
	s_header_value(
	    p, size * n, "WWW-Authenticate", r->www_auth, sizeof(r->www_auth));
	s_header_value(p, size * n, "Allow", r->allow, sizeof(r->allow));
	s_header_value(
	    p, size * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
	return size * n;
}

struct chunked {
	size_t left;
};

static size_t
s_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct chunked *ch = arg;
	size_t k = size * n < ch->left ? size * n : ch->left;

	memset(buf, ' ', k);
	ch->left -= k;
	return k;
}

/* Headers the next requests add, or replace (a Host, a Content-Type). */
static const char *extra_headers[3];

/*
 * One request; method NULL is GET.  body NULL sends none; chunked > 0
 * sends that many bytes with Transfer-Encoding: chunked instead.
 */
static void
http(struct t *t, const char *method, const char *path, const char *token,
    const char *body, size_t chunked, struct resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct chunked ch = {chunked};
	char url[512], auth[256];

	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", t->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (chunked > 0) {
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, s_read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, &ch);
	} else if (body != NULL) {
		if (extra_headers[0] == NULL ||
		    strncmp(extra_headers[0], "Content-Type:", 13) != 0)
			h = curl_slist_append(
			    h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	for (size_t i = 0; i < 3 && extra_headers[i] != NULL; i++)
		h = curl_slist_append(h, extra_headers[i]);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static json_t *
body_json(const struct resp *r)
{
	json_t *v;

	assert_non_null(r->body);
	v = json_loads(r->body, 0, NULL);
	if (v == NULL)
		print_error("not JSON: %s\n", r->body);
	assert_non_null(v);
	return v;
}

static void
want_error(struct t *t, const char *path, long status)
{
	struct resp r;
	json_t *v;

	http(t, NULL, path, NULL, NULL, 0, &r);
	assert_int_equal(r.rc, CURLE_OK);
	if (r.status != status)
		print_error("%s: %ld %s\n", path, r.status, r.body);
	assert_int_equal(r.status, status);
	assert_string_equal(r.ctype, "application/json");
	v = body_json(&r);
	assert_true(json_is_string(json_object_get(v, "error")));
	json_decref(v);
	free(r.body);
}

static size_t
items(const json_t *v)
{
	const json_t *it = json_object_get(v, "items");

	assert_true(json_is_array(it));
	return json_array_size(it);
}

/* ---- tests ---- */

static void
test_reports(void **state)
{
	struct t *t = *state;
	struct resp r;
	json_t *v;
	const json_t *row;

	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "application/json");
	v = body_json(&r);
	assert_int_equal(items(v), 2);
	row = json_array_get(json_object_get(v, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(row, "mtasts"), "domain")),
	    DOMAIN);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(row, "mtasts"), "mode")),
	    "testing");
	json_decref(v);
	free(r.body);

	/* Upper case and a trailing dot name the same domain. */
	http(t, NULL, "/api/v1/domains/EXAMPLE.com.", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(v, "mtasts"), "domain")),
	    DOMAIN);
	assert_int_equal(json_array_size(json_object_get(
			     json_object_get(v, "mtasts"), "hosts")),
	    2);
	json_decref(v);
	free(r.body);

	http(t, NULL, "/api/v1/incidents", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_int_equal(items(v), 2);
	json_decref(v);
	free(r.body);
	http(t, NULL, "/api/v1/incidents?open=1", NULL, NULL, 0, &r);
	v = body_json(&r);
	assert_int_equal(items(v), 1);
	row = json_array_get(json_object_get(v, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(row, "rule"), "name")),
	    "CERT_EXPIRING");
	json_decref(v);
	free(r.body);
	http(t, NULL, "/api/v1/incidents?severity=warning&since=7d", NULL, NULL,
	    0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_int_equal(items(v), 1);
	json_decref(v);
	free(r.body);

	/* A UTC offset whose '+' was not percent-encoded still parses. */
	http(t, NULL, "/api/v1/incidents?since=2000-01-01T01:00:00+01:00", NULL,
	    NULL, 0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_int_equal(items(v), 2);
	json_decref(v);
	free(r.body);

	http(t, NULL, "/api/v1/expiring?days=60", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_int_equal(items(v), 2); /* policy host and MX, one leaf */
	json_decref(v);
	free(r.body);
	http(t, NULL, "/api/v1/expiring", NULL, NULL, 0, &r);
	v = body_json(&r);
	assert_int_equal(items(v), 0); /* 40 days left, default 30 */
	json_decref(v);
	free(r.body);

	http(t, NULL, "/api/v1/agents", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_int_equal(items(v), 2);
	json_decref(v);
	free(r.body);
}

static void
test_pages(void **state)
{
	struct t *t = *state;
	struct http_api *api = t->api;
	struct ingest_counters ic;
	struct resp r;

	memset(&ic, 0, sizeof(ic));
	ic.results_stored = 424242;
	http(t, NULL, "/metrics", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(
	    r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	/* Before the first copy the ingest counters are left out. */
	assert_null(strstr(r.body, "424242"));
	free(r.body);
	http_api_set_counters(api, &ic);
	http(t, NULL, "/metrics", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(
	    r.body, "mtastswatch_collector_results_stored_total 424242"));
	free(r.body);

	http(t, NULL, "/domains/example.com/plot.svg", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "image/svg+xml");
	assert_non_null(strstr(r.body, "<svg"));
	free(r.body);
	want_error(t, "/domains/nowhere.example/plot.svg", 404);
	want_error(t, "/domains/bad_name/plot.svg", 400);

	http(t, NULL, "/", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "text/html; charset=utf-8");
	assert_non_null(
	    strstr(r.body, "<a href=\"/domains/example.com/plot.svg\">"));
	assert_non_null(strstr(r.body, "<a href=\"/api/v1/status\">"));
	assert_non_null(strstr(r.body, "idle.example"));
	free(r.body);
}

static void
test_errors(void **state)
{
	struct t *t = *state;
	struct resp r;

	want_error(t, "/api/v1/domains/nowhere.example", 404);
	want_error(t, "/api/v1/domains/bad_name", 400);
	want_error(t, "/api/v1/domains/localhost", 400);
	want_error(t, "/api/v1/domains/a.example/more", 404);
	want_error(t, "/api/v1/domains/x%27%3B%20DROP", 400);
	want_error(t, "/api/v1/nothing", 404);
	want_error(t, "/api/v1/incidents?severity=critical", 400);
	want_error(t, "/api/v1/incidents?since=yesterday", 400);
	want_error(t, "/api/v1/incidents?open=maybe", 400);
	want_error(t, "/api/v1/incidents?limit=0", 400);
	want_error(t, "/api/v1/expiring?days=-1", 400);
	want_error(t, "/api/v1/expiring?days=99999999999", 400);

	http(t, "DELETE", "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET");
	free(r.body);
	http(t, NULL, "/api/v1/incidents/1/ack", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "POST");
	free(r.body);
	http(t, NULL, "/api/v1/status", NULL, "{}", 0, &r); /* a POST */
	assert_int_equal(r.status, 405);
	free(r.body);
}

static void
test_ack(void **state)
{
	struct t *t = *state;
	char path[128];
	struct resp r;
	json_t *v;
	char *big;

	snprintf(path, sizeof(path), "/api/v1/incidents/%lld/ack", t->inc_open);
	http(t, NULL, path, NULL, "{\"by\": \"alice\", \"note\": \"on it\"}", 0,
	    &r);
	assert_int_equal(r.status, 200);
	v = body_json(&r);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(v, "mtasts"), "ack"), "by")),
	    "alice");
	json_decref(v);
	free(r.body);
	assert_string_equal(q(t,
				"SELECT acked_by || '/' || ack_note FROM "
				"incidents WHERE id = %lld",
				t->inc_open),
	    "alice/on it");
	assert_string_equal(q(t,
				"SELECT count(*) FROM incident_events WHERE "
				"kind = 'ack' AND incident_id = %lld",
				t->inc_open),
	    "1");

	/* An empty body acks as "api". */
	snprintf(path, sizeof(path), "/api/v1/incidents/%lld/ack", t->inc_info);
	http(t, NULL, path, NULL, "", 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	assert_string_equal(
	    q(t, "SELECT acked_by FROM incidents WHERE id = %lld", t->inc_info),
	    "api");

	http(t, NULL, "/api/v1/incidents/999999/ack", NULL, "{}", 0, &r);
	assert_int_equal(r.status, 404);
	free(r.body);
	http(t, NULL, "/api/v1/incidents/12x/ack", NULL, "{}", 0, &r);
	assert_int_equal(r.status, 400);
	free(r.body);
	http(t, NULL, path, NULL, "not json", 0, &r);
	assert_int_equal(r.status, 400);
	free(r.body);
	http(t, NULL, path, NULL, "{\"by\": 5}", 0, &r);
	assert_int_equal(r.status, 400);
	free(r.body);
	http(t, NULL, path, NULL, "[1, 2]", 0, &r);
	assert_int_equal(r.status, 400);
	free(r.body);

	/* Bodies over the limit: refused by Content-Length before being
	 * read, and a chunked one cut off. */
	big = malloc(HTTP_API_BODY_MAX * 2 + 1);
	assert_non_null(big);
	memset(big, ' ', HTTP_API_BODY_MAX * 2);
	big[0] = '{';
	big[HTTP_API_BODY_MAX * 2 - 1] = '}';
	big[HTTP_API_BODY_MAX * 2] = '\0';
	http(t, NULL, path, NULL, big, 0, &r);
	assert_int_equal(r.status, 413);
	free(r.body);
	free(big);
	http(t, NULL, path, NULL, NULL, HTTP_API_BODY_MAX * 4, &r);
	assert_true(r.rc != CURLE_OK || r.status != 200);
	free(r.body);
	/* Neither reached the database. */
	assert_string_equal(q(t, "SELECT count(*) FROM incident_events WHERE "
				 "kind = 'ack'"),
	    "2");
	/* And the server still answers. */
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
}

/*
 * Without a token only loopback Host names pass (DNS rebinding), and an
 * ack must say application/json (a cross-site form POST cannot).
 */
static void
test_browser_guards(void **state)
{
	struct t *t = *state;
	struct resp r;
	char path[64];

	extra_headers[0] = "Host: attacker.example:8350";
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 403);
	free(r.body);
	extra_headers[0] = "Host: localhost:8350";
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	extra_headers[0] = "Host: [::1]:8350";
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	extra_headers[0] = "Host: 127.0.0.2";
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);

	snprintf(path, sizeof(path), "/api/v1/incidents/%lld/ack", t->inc_open);
	extra_headers[0] = "Content-Type: text/plain";
	http(t, NULL, path, NULL, "{\"by\": \"page\"}", 0, &r);
	assert_int_equal(r.status, 415);
	free(r.body);
	extra_headers[0] = "Content-Type: application/x-www-form-urlencoded";
	http(t, NULL, path, NULL, "by=page", 0, &r);
	assert_int_equal(r.status, 415);
	free(r.body);
	extra_headers[0] = NULL;
	assert_string_equal(q(t, "SELECT count(*) FROM incidents WHERE "
				 "acked_by = 'page'"),
	    "0");
	http(t, NULL, path, NULL, "{\"by\": \"me\"}", 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
}

static void
test_token(void **state)
{
	struct t *t = *state;
	char path[128];
	struct resp r;
	json_t *v;

	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 401);
	assert_true(strncmp(r.www_auth, "Bearer", 6) == 0);
	assert_string_equal(r.ctype, "application/json");
	v = body_json(&r);
	assert_true(json_is_string(json_object_get(v, "error")));
	json_decref(v);
	free(r.body);
	http(t, NULL, "/api/v1/status", "wrong-token-0123456789abcdef", NULL, 0,
	    &r);
	assert_int_equal(r.status, 401);
	free(r.body);
	http(t, NULL, "/api/v1/status", TOKEN "x", NULL, 0, &r);
	assert_int_equal(r.status, 401);
	free(r.body);
	http(t, NULL, "/api/v1/status", TOKEN, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	http(t, NULL, "/metrics", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 401);
	free(r.body);
	http(t, NULL, "/", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 401);
	free(r.body);

	/* The ack needs it too, and nothing is written without it. */
	snprintf(path, sizeof(path), "/api/v1/incidents/%lld/ack", t->inc_open);
	http(t, NULL, path, NULL, "{\"by\": \"mallory\"}", 0, &r);
	assert_int_equal(r.status, 401);
	free(r.body);
	assert_string_equal(
	    q(t, "SELECT count(*) FROM incidents WHERE acked_at IS NOT NULL"),
	    "0");
	http(t, NULL, path, TOKEN, "{\"by\": \"alice\"}", 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
}

static void
test_db_down(void **state)
{
	struct t *t = *state;
	struct resp r;

	http_api_stop(&t->api);
	assert_int_equal(s_start(t,
			     "host=/nonexistent-mtasts port=1 dbname=x "
			     "connect_timeout=2",
			     NULL),
	    0);
	http(t, NULL, "/api/v1/status", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.retry_after, "5");
	free(r.body);
	want_error(t, "/api/v1/domains/example.com", 503);
	want_error(t, "/metrics", 503);
	/* Parameters are still checked first. */
	want_error(t, "/api/v1/domains/bad_name", 400);
}

/* The API's connection killed under it: the next request reconnects. */
static void
test_reconnect(void **state)
{
	struct t *t = *state;
	struct resp r;

	http(t, NULL, "/api/v1/agents", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	assert_string_equal(q(t, "SELECT count(pg_terminate_backend(pid)) FROM "
				 "pg_stat_activity WHERE application_name = "
				 "'mtasts-collector-api' AND datname = "
				 "current_database()"),
	    "1");
	http(t, NULL, "/api/v1/agents", NULL, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
}

struct bg {
	struct t *t;
	struct resp r;
};

static void *
s_bg_get(void *arg)
{
	struct bg *b = arg;

	http(b->t, NULL, "/api/v1/incidents", NULL, NULL, 0, &b->r);
	return NULL;
}

static double
s_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * A report stuck behind a lock holds its HTTP thread, never the caller:
 * http_api_set_counters (what the ZeroMQ loop calls) returns at once.
 */
static void
test_slow_query_does_not_block(void **state)
{
	struct t *t = *state;
	struct ingest_counters ic;
	struct bg b = {t, {0}};
	pthread_t th;
	double t0, waited;
	int blocked = 0;
	/* Another connection: inside the locking transaction the statistics
	 * views would stay as they were when it began. */
	PGconn *watch = PQconnectdb(t->db.conninfo);

	assert_int_equal(PQstatus(watch), CONNECTION_OK);
	memset(&ic, 0, sizeof(ic));
	sql(t, "BEGIN");
	sql(t, "LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(pthread_create(&th, NULL, s_bg_get, &b), 0);
	for (int i = 0; i < 250 && !blocked; i++) {
		PGresult *res = PQexec(watch,
		    "SELECT count(*) FROM pg_stat_activity WHERE "
		    "application_name = 'mtasts-collector-api' AND "
		    "wait_event_type = 'Lock'");

		blocked = PQresultStatus(res) == PGRES_TUPLES_OK &&
			  strcmp(PQgetvalue(res, 0, 0), "0") != 0;
		PQclear(res);
		if (!blocked)
			usleep(20000);
	}
	PQfinish(watch);
	assert_true(blocked);
	t0 = s_ms();
	for (int i = 0; i < 1000; i++) {
		ic.results_stored = (uint64_t)i;
		http_api_set_counters(t->api, &ic);
	}
	waited = s_ms() - t0;
	sql(t, "COMMIT");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(b.r.status, 200);
	free(b.r.body);
	/* A thousand copies under the mutex: well under a millisecond each,
	 * nowhere near the query's wait. */
	assert_true(waited < 100.0);
}

static void
test_start_refusals(void **state)
{
	struct http_api_opts o = {0};
	struct http_api *api;
	char err[256];

	(void)state;
	o.conninfo = "dbname=x";
	o.bind = "0.0.0.0:0";
	assert_null(http_api_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "token"));
	o.bind = "[::]:0";
	assert_null(http_api_start(&o, err, sizeof(err)));
	o.bind = "192.0.2.1:8350";
	assert_null(http_api_start(&o, err, sizeof(err)));
	o.bind = "localhost:8350";
	assert_null(http_api_start(&o, err, sizeof(err)));
	o.bind = "127.0.0.1";
	assert_null(http_api_start(&o, err, sizeof(err)));
	o.bind = "127.0.0.1:0";
	o.conninfo = NULL;
	assert_null(http_api_start(&o, err, sizeof(err)));

	/* IPv6 loopback, where the machine has it. */
	o.conninfo = "dbname=x";
	o.bind = "[::1]:0";
	if ((api = http_api_start(&o, err, sizeof(err))) != NULL) {
		assert_true(http_api_port(api) > 0);
		http_api_stop(&api);
	}
	http_api_stop(&api);
	http_api_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reports, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(test_pages, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(test_ack, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(
		test_browser_guards, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(
		test_token, setup_api_token, teardown),
	    cmocka_unit_test_setup_teardown(test_db_down, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(
		test_reconnect, setup_api, teardown),
	    cmocka_unit_test_setup_teardown(
		test_slow_query_does_not_block, setup_api, teardown),
	    cmocka_unit_test(test_start_refusals),
	};

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_http_api: MTASTS_TEST_PG is not set; start a "
		    "cluster first:\n  eval \"$(sh tests/lib/pg_start.sh "
		    "/tmp/pgm)\"\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
