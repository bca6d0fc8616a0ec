/* http_api.c -- the HTTP JSON API, /metrics and the plots, on one
 * libmicrohttpd thread with a database connection of its own. */
#include "http_api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "collector_config.h"
#include "errbuf.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pgconn.h"
#include "plot.h"
#include "report_query.h"

#define API_PREFIX     "/api/v1/"
#define PLOT_PREFIX    "/domains/"
#define PLOT_SUFFIX    "/plot.svg"
#define ACK_SUFFIX     "/ack"
#define ACK_BY_DEFAULT "api"
#define RETRY_AFTER_S  "5"

#define CT_JSON	   "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_SVG	   "image/svg+xml"
#define CT_HTML	   "text/html; charset=utf-8"
/* The plot and the index are documents of ours: nothing in them needs a
 * script, a frame or anything from elsewhere. */
#define CSP_SVG	 "default-src 'none'; style-src 'unsafe-inline'"
#define CSP_HTML "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"

struct http_api {
	struct MHD_Daemon *mhd;
	char *conninfo;
	int has_token;
	unsigned char token_hash[32]; /* SHA-256 of the token */
	long silent_after_s;
	unsigned port;
	struct notify *notify; /* borrowed: woken after an ack */
	PGconn *conn;	       /* the MHD thread's own: see s_db */
	pthread_mutex_t mu;
	struct ingest_counters counters; /* under mu */
	int have_counters;		 /* under mu */
};

/* Per request: the body of a POST as it arrives. */
struct req {
	char body[HTTP_API_BODY_MAX + 1];
	size_t len;
};

struct hdr {
	const char *name, *value;
};

/* ---- responses ---- */

/* Queues body (malloc'd; taken, also on failure) with the headers every
 * answer carries and the extra ones. */
static enum MHD_Result
s_send(struct MHD_Connection *c, unsigned status, const char *ctype, char *body,
    size_t len, const struct hdr *extra, size_t nextra)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) ==
		MHD_NO ||
	    MHD_add_response_header(
		r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_NO ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") ==
		MHD_NO) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	for (size_t i = 0; i < nextra; i++) {
		if (MHD_add_response_header(r, extra[i].name, extra[i].value) ==
		    MHD_NO) {
			MHD_destroy_response(r);
			return MHD_NO;
		}
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A JSON document (borrowed) and a newline. */
static enum MHD_Result
s_json(struct MHD_Connection *c, unsigned status, const json_t *v,
    const struct hdr *extra, size_t nextra)
{
	char *s = json_dumps(v, JSON_COMPACT), *p;
	size_t n;

	if (s == NULL)
		return MHD_NO;
	n = strlen(s);
	if ((p = realloc(s, n + 2)) == NULL) {
		free(s);
		return MHD_NO;
	}
	p[n] = '\n';
	p[n + 1] = '\0';
	return s_send(c, status, CT_JSON, p, n + 1, extra, nextra);
}

/* {"error": msg}, with the header its status calls for. */
static enum MHD_Result
s_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct hdr h[1];
	size_t nh = 0;
	json_t *v = json_pack("{s:s}", "error", msg);
	enum MHD_Result ret;

	if (v == NULL)
		return MHD_NO;
	if (status == MHD_HTTP_UNAUTHORIZED)
		h[nh++] = (struct hdr){MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    "Bearer realm=\"mtasts-watch\""};
	else if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		h[nh++] =
		    (struct hdr){MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S};
	ret = s_json(c, status, v, h, nh);
	json_decref(v);
	return ret;
}

static enum MHD_Result
s_not_allowed(struct MHD_Connection *c, const char *allow)
{
	struct hdr h[1] = {{MHD_HTTP_HEADER_ALLOW, allow}};
	json_t *v = json_pack("{s:s}", "error", "method not allowed");
	enum MHD_Result ret;

	if (v == NULL)
		return MHD_NO;
	ret = s_json(c, MHD_HTTP_METHOD_NOT_ALLOWED, v, h, 1);
	json_decref(v);
	return ret;
}

/* ---- the database ---- */

/* libpq's message on one line, quotes made harmless, for the log. */
static const char *
s_oneline(const char *m, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", m != NULL ? m : "");
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t' || *p == '"')
			*p = *p == '"' ? '\'' : ' ';
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return buf;
}

/*
 * The connection of the MHD thread, opened on first use and reopened when
 * it was lost; NULL when the database cannot be reached now.  libpq's own
 * defaults come first so that the conninfo can override them.
 */
static PGconn *
s_db(struct http_api *api)
{
	char err[512];

	if (api->conn != NULL && PQstatus(api->conn) == CONNECTION_OK)
		return api->conn;
	if (api->conn != NULL) {
		PQfinish(api->conn);
		api->conn = NULL;
	}
	/* A report that runs away is cut off by the server. */
	api->conn = pgconn_open(api->conninfo, "mtasts-collector-api",
	    HTTP_API_QUERY_TIMEOUT_MS, err, sizeof(err));
	if (api->conn == NULL)
		log_warnx("http: event=db_unavailable error=\"%s\"", err);
	return api->conn;
}

/* After a failed query: 503 when the connection went, 500 otherwise. */
static enum MHD_Result
s_db_failed(struct http_api *api, struct MHD_Connection *c, const char *what,
    const char *err)
{
	char line[512];

	if (api->conn == NULL || PQstatus(api->conn) != CONNECTION_OK) {
		log_warnx("http: event=db_lost query=%s error=\"%s\"", what,
		    s_oneline(err, line, sizeof(line)));
		return s_error(
		    c, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable");
	}
	log_warnx("http: event=query_failed query=%s error=\"%s\"", what,
	    s_oneline(err, line, sizeof(line)));
	return s_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "query failed");
}

/* ---- authentication ---- */

/*
 * Without a token the API is bound to loopback, where a web page in the
 * operator's browser is the threat: DNS rebinding makes the browser send
 * the page's own host name, so only loopback names are accepted then.
 * With a token, the token is the guard.  A request without Host (HTTP/1.0)
 * names no other site and passes.
 */
static int
s_host_ok(const struct http_api *api, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	char host[64];
	size_t n;
	unsigned char a[16];

	if (api->has_token || h == NULL)
		return 1;
	if (h[0] == '[') {
		const char *e = strchr(h, ']');

		if (e == NULL || (size_t)(e - h - 1) >= sizeof(host))
			return 0;
		n = (size_t)(e - h - 1);
		memcpy(host, h + 1, n);
		host[n] = '\0';
		return inet_pton(AF_INET6, host, a) == 1 &&
		       strcmp(host, "::1") == 0;
	}
	n = strcspn(h, ":");
	if (n >= sizeof(host))
		return 0;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

/*
 * A browser sends a cross-site POST without asking first only with a
 * form-like Content-Type; requiring application/json makes it ask
 * (CORS preflight), which this API never answers.
 */
static int
s_json_body(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	static const char want[] = "application/json";

	return ct != NULL && strncasecmp(ct, want, sizeof(want) - 1) == 0 &&
	       (ct[sizeof(want) - 1] == '\0' || ct[sizeof(want) - 1] == ';' ||
		   ct[sizeof(want) - 1] == ' ');
}

/* 1 when the request carries the token (or none is set). */
static int
s_authorized(const struct http_api *api, struct MHD_Connection *c)
{
	const char *h;
	unsigned char got[32];
	size_t n;

	if (!api->has_token)
		return 1;
	h = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	/* Hashing first makes the comparison constant-time whatever the
	 * lengths: nothing about the token leaks through timing. */
	if (EVP_Digest(h, n, got, NULL, EVP_sha256(), NULL) != 1)
		return 0;
	return CRYPTO_memcmp(got, api->token_hash, sizeof(got)) == 0;
}

/* ---- routes ---- */

/*
 * The first path segment after prefix, when the path is exactly prefix
 * SEGMENT suffix; copied into out.  0, or -1.
 */
static int
s_segment(const char *url, const char *prefix, const char *suffix, char *out,
    size_t outlen)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), ul = strlen(url), n;

	if (ul <= pl + sl || strncmp(url, prefix, pl) != 0 ||
	    strcmp(url + ul - sl, suffix) != 0)
		return -1;
	n = ul - pl - sl;
	if (n >= outlen || memchr(url + pl, '/', n) != NULL)
		return -1;
	memcpy(out, url + pl, n);
	out[n] = '\0';
	return 0;
}

static const char *
s_arg(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* A decimal in [lo, hi]; 0 or -1. */
static int
s_number(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (s == NULL || s[0] < '0' || s[0] > '9' || strlen(s) > 10)
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* A list as {"items": [...]}; takes rows. */
static enum MHD_Result
s_items(struct MHD_Connection *c, json_t *rows)
{
	json_t *v = json_pack("{s:o}", "items", rows);
	enum MHD_Result ret;

	if (v == NULL)
		return MHD_NO;
	ret = s_json(c, MHD_HTTP_OK, v, NULL, 0);
	json_decref(v);
	return ret;
}

static enum MHD_Result
s_status(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	char err[256];
	json_t *rows;

	if (report_status(conn, time(NULL), &rows, err, sizeof(err)) == -1)
		return s_db_failed(api, c, "status", err);
	return s_items(c, rows);
}

static enum MHD_Result
s_agents(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	char err[256];
	json_t *rows;

	if (report_agents(conn, time(NULL), api->silent_after_s, &rows, err,
		sizeof(err)) == -1)
		return s_db_failed(api, c, "agents", err);
	return s_items(c, rows);
}

static enum MHD_Result
s_incidents(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	struct report_incident_filter f = {0};
	const char *open = s_arg(c, "open"), *since = s_arg(c, "since");
	const char *sev = s_arg(c, "severity"), *limit = s_arg(c, "limit");
	time_t now = time(NULL);
	char err[256];
	json_t *rows;
	long lim = 0;

	if (open != NULL) {
		if (strcmp(open, "1") == 0 || strcmp(open, "true") == 0)
			f.open_only = 1;
		else if (strcmp(open, "0") != 0 && strcmp(open, "false") != 0)
			return s_error(c, MHD_HTTP_BAD_REQUEST,
			    "open: want 1, true, 0 or false");
	}
	if (since != NULL) {
		char t[65];

		/* An unencoded '+' of a UTC offset arrives as a space. */
		snprintf(t, sizeof(t), "%s", since);
		for (char *p = t + (strlen(t) > 19 ? 19 : strlen(t));
		     *p != '\0'; p++)
			if (*p == ' ')
				*p = '+';
		if (strlen(since) >= sizeof(t) ||
		    report_parse_time(t, now, &f.since) == -1)
			return s_error(c, MHD_HTTP_BAD_REQUEST,
			    "since: want RFC 3339 or N followed by s, m, h, d "
			    "or w");
	}
	if (sev != NULL && (f.min_severity = report_parse_severity(sev)) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST,
		    "severity: want info, warning or error");
	if (limit != NULL && s_number(limit, 1, REPORT_ROWS_MAX, &lim) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST, "limit: out of range");
	f.limit = (unsigned)lim;
	if (report_incidents(conn, &f, &rows, err, sizeof(err)) == -1)
		return s_db_failed(api, c, "incidents", err);
	return s_items(c, rows);
}

static enum MHD_Result
s_expiring(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	const char *days_s = s_arg(c, "days"), *limit = s_arg(c, "limit");
	long days = REPORT_EXPIRING_DAYS_DEFAULT, lim = 0;
	char err[256];
	json_t *rows;

	if (days_s != NULL && s_number(days_s, 0, REPORT_DAYS_MAX, &days) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST, "days: out of range");
	if (limit != NULL && s_number(limit, 1, REPORT_ROWS_MAX, &lim) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST, "limit: out of range");
	if (report_expiring(conn, (int)days, time(NULL), (unsigned)lim, &rows,
		err, sizeof(err)) == -1)
		return s_db_failed(api, c, "expiring", err);
	return s_items(c, rows);
}

static enum MHD_Result
s_domain(struct http_api *api, struct MHD_Connection *c, PGconn *conn,
    const char *domain)
{
	char err[256];
	json_t *v;
	enum MHD_Result ret;
	int rc;

	rc = report_domain(conn, domain, time(NULL), &v, err, sizeof(err));
	if (rc == -1)
		return s_db_failed(api, c, "domain", err);
	if (rc == 1)
		return s_error(c, MHD_HTTP_NOT_FOUND, "unknown domain");
	ret = s_json(c, MHD_HTTP_OK, v, NULL, 0);
	json_decref(v);
	return ret;
}

static enum MHD_Result
s_plot(struct http_api *api, struct MHD_Connection *c, PGconn *conn,
    const char *domain)
{
	struct hdr h[1] = {{"Content-Security-Policy", CSP_SVG}};
	char err[256], *svg = NULL;
	size_t len = 0;
	int rc;

	rc = plot_domain_svg(conn, domain, &svg, &len, err, sizeof(err));
	if (rc == -1)
		return s_db_failed(api, c, "plot", err);
	if (rc == 1)
		return s_error(c, MHD_HTTP_NOT_FOUND, "unknown domain");
	return s_send(c, MHD_HTTP_OK, CT_SVG, svg, len, h, 1);
}

static enum MHD_Result
s_metrics(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	struct ingest_counters ic;
	char err[256], *text = NULL;
	size_t len = 0;
	int have;

	pthread_mutex_lock(&api->mu);
	ic = api->counters;
	have = api->have_counters;
	pthread_mutex_unlock(&api->mu);
	if (metrics_render(conn, have ? &ic : NULL, time(NULL), &text, &len,
		err, sizeof(err)) == -1)
		return s_db_failed(api, c, "metrics", err);
	/* A partial exposition says so itself (database_success 0); the
	 * connection is checked again before the next request. */
	if (err[0] != '\0') {
		char line[512];

		log_warnx("http: event=metrics_partial error=\"%s\"",
		    s_oneline(err, line, sizeof(line)));
	}
	return s_send(c, MHD_HTTP_OK, CT_METRICS, text, len, NULL, 0);
}

static void
s_html_text(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '&':
			fputs("&amp;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			fputc(*s, fp);
		}
	}
}

/* A small page: links to the status and to each domain and its plot. */
static enum MHD_Result
s_index(struct http_api *api, struct MHD_Connection *c, PGconn *conn)
{
	struct hdr h[1] = {{"Content-Security-Policy", CSP_HTML}};
	char err[256], *buf = NULL;
	size_t len = 0, i;
	json_t *names, *e;
	FILE *fp;

	if (report_domain_names(conn, &names, err, sizeof(err)) == -1)
		return s_db_failed(api, c, "index", err);
	if ((fp = open_memstream(&buf, &len)) == NULL) {
		json_decref(names);
		return MHD_NO;
	}
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	      "<title>mtasts-watch</title></head><body>\n"
	      "<h1>mtasts-watch</h1>\n<p><a href=\"/api/v1/status\">status"
	      "</a> &middot; <a href=\"/api/v1/incidents?open=1\">open "
	      "incidents</a> &middot; <a href=\"/api/v1/expiring\">expiring"
	      "</a> &middot; <a href=\"/api/v1/agents\">agents</a> &middot; "
	      "<a href=\"/metrics\">metrics</a></p>\n<ul>\n",
	    fp);
	json_array_foreach(names, i, e)
	{
		const char *d = json_string_value(e);

		if (d == NULL)
			continue;
		fputs("<li><a href=\"/api/v1/domains/", fp);
		s_html_text(fp, d);
		fputs("\">", fp);
		s_html_text(fp, d);
		fputs("</a> (<a href=\"/domains/", fp);
		s_html_text(fp, d);
		fputs("/plot.svg\">plot</a>)</li>\n", fp);
	}
	fputs("</ul>\n</body></html>\n", fp);
	json_decref(names);
	if (fclose(fp) == EOF || buf == NULL) {
		free(buf);
		return MHD_NO;
	}
	return s_send(c, MHD_HTTP_OK, CT_HTML, buf, len, h, 1);
}

/* The ack POST, once the whole body is in. */
static enum MHD_Result
s_ack(struct http_api *api, struct MHD_Connection *c, const char *id_s,
    const struct req *rq)
{
	const char *by = ACK_BY_DEFAULT, *note = NULL;
	char err[256];
	json_t *body = NULL, *v = NULL;
	enum MHD_Result ret;
	PGconn *conn;
	int64_t id;
	int rc;

	if (report_parse_id(id_s, &id) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST, "bad incident id");
	if (rq->len > 0) {
		body =
		    json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			return s_error(c, MHD_HTTP_BAD_REQUEST,
			    "body: want a JSON object");
		}
		if (json_object_get(body, "by") != NULL)
			by = json_string_value(json_object_get(body, "by"));
		if (json_object_get(body, "note") != NULL &&
		    !json_is_null(json_object_get(body, "note")))
			note = json_string_value(json_object_get(body, "note"));
		if (by == NULL ||
		    (json_object_get(body, "note") != NULL &&
			!json_is_null(json_object_get(body, "note")) &&
			note == NULL) ||
		    strlen(by) > REPORT_ACK_BY_MAX ||
		    (note != NULL && strlen(note) > REPORT_ACK_NOTE_MAX)) {
			json_decref(body);
			return s_error(c, MHD_HTTP_BAD_REQUEST,
			    "by and note: short strings");
		}
	}
	/* Not retried: an ack that may have committed is not sent twice. */
	if ((conn = s_db(api)) == NULL) {
		json_decref(body);
		return s_error(
		    c, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable");
	}
	rc = report_ack(conn, id, by, note, &v, err, sizeof(err));
	json_decref(body);
	if (rc == -1)
		return s_db_failed(api, c, "ack", err);
	if (rc == 1)
		return s_error(c, MHD_HTTP_NOT_FOUND, "no such incident");
	log_info("http: event=ack incident=%lld", (long long)id);
	/* The ack is an event: deliver it now, not at the next poll. */
	notify_wake(api->notify);
	ret = s_json(c, MHD_HTTP_OK, v, NULL, 0);
	json_decref(v);
	return ret;
}

enum route {
	R_NONE,
	R_INDEX,
	R_METRICS,
	R_STATUS,
	R_INCIDENTS,
	R_EXPIRING,
	R_AGENTS,
	R_DOMAIN,
	R_PLOT,
	R_ACK
};

/* Which route url is; *arg gets its path parameter (domain or id). */
static enum route
s_route(const char *url, char *arg, size_t arglen)
{
	static const struct {
		const char *path;
		enum route r;
	} fixed[] = {{"/", R_INDEX}, {"/metrics", R_METRICS},
	    {API_PREFIX "status", R_STATUS},
	    {API_PREFIX "incidents", R_INCIDENTS},
	    {API_PREFIX "expiring", R_EXPIRING},
	    {API_PREFIX "agents", R_AGENTS}};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0)
			return fixed[i].r;
	if (s_segment(url, API_PREFIX "domains/", "", arg, arglen) == 0)
		return R_DOMAIN;
	if (s_segment(url, PLOT_PREFIX, PLOT_SUFFIX, arg, arglen) == 0)
		return R_PLOT;
	if (s_segment(url, API_PREFIX "incidents/", ACK_SUFFIX, arg, arglen) ==
	    0)
		return R_ACK;
	return R_NONE;
}

/* A GET route with a connection; once more on a fresh connection when
 * the first went away under the query (a database restart). */
static enum MHD_Result
s_get(struct http_api *api, struct MHD_Connection *c, enum route r,
    const char *arg)
{
	char domain[REPORT_DOMAIN_MAX + 1];
	PGconn *conn;

	if ((r == R_DOMAIN || r == R_PLOT) &&
	    report_parse_domain(arg, domain, sizeof(domain)) == -1)
		return s_error(c, MHD_HTTP_BAD_REQUEST, "not a domain name");
	for (int attempt = 0;; attempt++) {
		int had = api->conn != NULL;

		if ((conn = s_db(api)) == NULL)
			return s_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "database unavailable");
		/* A connection that was idle may have died unnoticed. */
		if (had && attempt == 0) {
			PGresult *res = PQexec(conn, "SELECT 1");
			int ok = PQresultStatus(res) == PGRES_TUPLES_OK;

			PQclear(res);
			if (!ok)
				continue;
		}
		break;
	}
	switch (r) {
	case R_INDEX:
		return s_index(api, c, conn);
	case R_METRICS:
		return s_metrics(api, c, conn);
	case R_STATUS:
		return s_status(api, c, conn);
	case R_INCIDENTS:
		return s_incidents(api, c, conn);
	case R_EXPIRING:
		return s_expiring(api, c, conn);
	case R_AGENTS:
		return s_agents(api, c, conn);
	case R_DOMAIN:
		return s_domain(api, c, conn, domain);
	case R_PLOT:
		return s_plot(api, c, conn, domain);
	default:
		return s_error(c, MHD_HTTP_NOT_FOUND, "not found");
	}
}

static enum MHD_Result
s_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_api *api = cls;
	struct req *rq = *con_cls;
	char arg[REPORT_DOMAIN_MAX + 2];
	enum route r;

	(void)version;
	r = s_route(url, arg, sizeof(arg));
	if (rq == NULL) {
		/* Headers are in: answer everything that needs no body
		 * before reading a byte of it. */
		const char *cl = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
		int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

		if (r == R_NONE)
			return s_error(c, MHD_HTTP_NOT_FOUND, "not found");
		if (r == R_ACK && !post)
			return s_not_allowed(c, MHD_HTTP_METHOD_POST);
		if (r != R_ACK && !get)
			return s_not_allowed(c, MHD_HTTP_METHOD_GET);
		if (!s_host_ok(api, c))
			return s_error(c, MHD_HTTP_FORBIDDEN,
			    "Host is not a loopback name");
		if (!s_authorized(api, c))
			return s_error(c, MHD_HTTP_UNAUTHORIZED,
			    "missing or wrong bearer token");
		if (get)
			return s_get(api, c, r, arg);
		if (!s_json_body(c))
			return s_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			    "POST wants Content-Type: application/json");
		if (report_parse_id(arg, &(int64_t){0}) == -1)
			return s_error(
			    c, MHD_HTTP_BAD_REQUEST, "bad incident id");
		if (cl != NULL && (strlen(cl) > 9 || strtoul(cl, NULL, 10) >
							 HTTP_API_BODY_MAX))
			return s_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "request body too large");
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* A chunked body gives no length up front: past the limit
		 * the connection is dropped, since a response cannot be
		 * queued in the middle of a body. */
		if (*upload_data_size > HTTP_API_BODY_MAX - rq->len)
			return MHD_NO;
		memcpy(rq->body + rq->len, upload_data, *upload_data_size);
		rq->len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return s_ack(api, c, arg, rq);
}

static void
s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_warnx("http: event=mhd message=\"%s\"", buf);
}

/* ---- start and stop ---- */

struct http_api *
http_api_start(const struct http_api_opts *opts, char *err, size_t errlen)
{
	const char *bind = opts->bind != NULL && opts->bind[0] != '\0'
			       ? opts->bind
			       : HTTP_API_BIND_DEFAULT;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned port, flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	int loopback;
	const union MHD_DaemonInfo *info;
	struct http_api *api;
	sigset_t all, old;

	if (opts->conninfo == NULL || opts->conninfo[0] == '\0') {
		errbuf_set(err, errlen, "http: no database conninfo");
		return NULL;
	}
	memset(&ss, 0, sizeof(ss));
	if (collector_config_split_hostport(bind, host, sizeof(host), &port) ==
		-1 ||
	    port > 65535) {
		errbuf_set(err, errlen,
		    "http: bind %s: want IP:PORT or [IPv6]:PORT", bind);
		return NULL;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		flags |= MHD_USE_IPv6;
	} else {
		errbuf_set(
		    err, errlen, "http: bind %s: not a numeric address", bind);
		return NULL;
	}
	if (!loopback && (opts->token == NULL || opts->token[0] == '\0')) {
		errbuf_set(err, errlen,
		    "http: bind %s is not a loopback address: a token is "
		    "required",
		    bind);
		return NULL;
	}
	if ((api = calloc(1, sizeof(*api))) == NULL ||
	    (api->conninfo = strdup(opts->conninfo)) == NULL) {
		free(api);
		errbuf_set(err, errlen, "http: out of memory");
		return NULL;
	}
	if (opts->token != NULL && opts->token[0] != '\0') {
		api->has_token = 1;
		if (EVP_Digest(opts->token, strlen(opts->token),
			api->token_hash, NULL, EVP_sha256(), NULL) != 1) {
			free(api->conninfo);
			free(api);
			errbuf_set(err, errlen, "http: cannot hash the token");
			return NULL;
		}
	}
	api->silent_after_s = opts->silent_after_s;
	api->notify = opts->notify;
	if (pthread_mutex_init(&api->mu, NULL) != 0) {
		free(api->conninfo);
		free(api);
		errbuf_set(err, errlen, "http: mutex");
		return NULL;
	}
	/* The thread inherits the mask: signals stay with the caller. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	/* The logger goes first, so that MHD reports nothing elsewhere. */
	api->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    s_handler, api, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, api,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_API_CONN_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_API_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_API_HEADER_MAX,
	    MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_NOTIFY_COMPLETED,
	    s_completed, api, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (api->mhd == NULL) {
		pthread_mutex_destroy(&api->mu);
		free(api->conninfo);
		free(api);
		errbuf_set(err, errlen, "http: cannot listen on %s", bind);
		return NULL;
	}
	info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
	api->port = info != NULL ? info->port : port;
	log_info("http: event=ready bind=%s port=%u token=%s", bind, api->port,
	    api->has_token ? "yes" : "no");
	return api;
}

void
http_api_stop(struct http_api **apip)
{
	struct http_api *api;

	if (apip == NULL || (api = *apip) == NULL)
		return;
	MHD_stop_daemon(api->mhd);
	PQfinish(api->conn);
	pthread_mutex_destroy(&api->mu);
	OPENSSL_cleanse(api->token_hash, sizeof(api->token_hash));
	free(api->conninfo);
	free(api);
	*apip = NULL;
}

void
http_api_set_counters(struct http_api *api, const struct ingest_counters *ic)
{
	if (api == NULL || ic == NULL)
		return;
	pthread_mutex_lock(&api->mu);
	api->counters = *ic;
	api->have_counters = 1;
	pthread_mutex_unlock(&api->mu);
}

unsigned
http_api_port(const struct http_api *api)
{
	return api != NULL ? api->port : 0;
}
