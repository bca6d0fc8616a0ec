/* notify.c -- delivers incident events to a webhook and to syslog. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "cef.h"
#include "errbuf.h"
#include "log.h"
#include "wire.h"

/*
 * Each sink runs the same loop on its own thread and connection: read its
 * cursor, read the events after it, deliver them one by one in id order
 * and move the cursor after each.  The cursor row is the only state that
 * matters across restarts; in memory there is only the id of an event
 * delivered while the database was unreachable (written first thing after
 * the reconnect, so a database restart sends nothing twice) and the gap
 * being waited for (below).
 *
 * Every blocking call is cut into slices of at most SLICE_MS that look at
 * the stop flag: libpq is driven asynchronously, HTTP goes through a curl
 * multi handle that notify_stop wakes, and the syslog sockets are
 * non-blocking.
 */

#define SLICE_MS	  100
#define PG_TIMEOUT_MS	  30000 /* one query or connect */
#define DB_BACKOFF_MAX_MS 30000
#define SYSLOG_TIMEOUT_MS 10000 /* TCP connect and write */
#define LAST_ERROR_MAX	  256
#define URL_MAX		  2048

enum syslog_kind { SYSLOG_UDP, SYSLOG_TCP, SYSLOG_UNIX };

static const char *const sink_names[NOTIFY_SINKS] = {"webhook", "syslog"};

struct notify;

struct sink {
	struct notify *n;
	enum notify_sink which;
	int enabled;
	int started;
	pthread_t thread;

	PGconn *conn;
	int locked;	   /* holds the per-sink advisory lock */
	int64_t pending;   /* delivered, cursor not yet written; 0: none */
	int64_t gap_id;	   /* the missing id waited for; 0: none */
	int64_t gap_since; /* monotonic ms */
	unsigned wake_seen;

	/* webhook */
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers;
	size_t body_seen;
	char curl_err[CURL_ERROR_SIZE];

	/* syslog */
	int fd;

	/* counters, under n->mu */
	uint64_t delivered, failed;
	uint32_t attempts;
	int64_t last_event_id;
	int db_up;
};

struct notify {
	char *conninfo;
	char *url, *token, *ca_file, *external_url, *receiver;
	unsigned timeout_s, poll_ms, gap_wait_ms;
	char *hostname;
	enum notify_syslog_format format;
	int facility;
	enum syslog_kind sl_kind;
	struct sockaddr_storage sl_addr;
	socklen_t sl_addrlen;
	int curl_inited;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int stop;
	unsigned wake_gen;

	struct sink sinks[NOTIFY_SINKS];
};

/* One event joined with its incident, as read from the database. */
struct event {
	int64_t id, incident_id;
	const char *kind, *severity, *stage, *domain, *code, *subject, *state;
	const char *detail, *vantages, *dissenters, *acked_by, *ack_note;
	time_t at, first_seen, last_seen, resolved_at;
};

static const char q_lock[] =
    "SELECT pg_try_advisory_lock(hashtextextended('mtastswatch_notify/' || "
    "current_schema() || '/' || $1, 0))";

/* A new sink starts at the newest event: turning it on replays nothing. */
static const char q_cursor_init[] =
    "INSERT INTO notify_cursors (sink, last_event_id) "
    "SELECT $1, coalesce(max(id), 0) FROM incident_events "
    "ON CONFLICT (sink) DO NOTHING";

static const char q_cursor[] =
    "SELECT last_event_id, attempts, ceil(greatest(0, extract(epoch FROM "
    "next_attempt - now())) * 1000)::bigint FROM notify_cursors "
    "WHERE sink = $1";

static const char q_delivered[] =
    "UPDATE notify_cursors SET last_event_id = $2::bigint, attempts = 0, "
    "next_attempt = now(), last_error = NULL, delivered = delivered + 1 "
    "WHERE sink = $1 AND last_event_id < $2::bigint";

/* Backoff 1 s doubling to 5 min, in database time so that it survives a
 * collector restart and needs no clock agreement. */
static const char q_failed[] =
    "UPDATE notify_cursors SET attempts = attempts + 1, "
    "next_attempt = now() + least($3::integer, $2::integer * "
    "power(2, least(attempts, 20))) * interval '1 second', "
    "last_error = $4 WHERE sink = $1 RETURNING attempts";

/*
 * state as of the event, not as of now: an incident never reopens (a
 * finding that comes back opens a new row), so it was resolved at the
 * event when its resolve event is this one or an earlier one.  Lengths are
 * bounded here already, in characters; the formatters bound them again in
 * bytes.
 */
static const char q_events[] =
    "SELECT e.id, e.kind, e.severity, coalesce(e.stage, ''), "
    "floor(extract(epoch FROM e.at))::bigint, i.id, left(i.domain, 1024), "
    "left(i.code, 1024), left(i.subject, 1024), "
    "CASE WHEN EXISTS (SELECT 1 FROM incident_events r WHERE "
    "r.incident_id = e.incident_id AND r.kind = 'resolve' AND "
    "r.id <= e.id) THEN 'resolved' ELSE 'open' END, "
    "left(i.detail, 4096), left(array_to_string(i.vantages, ','), 1024), "
    "left(array_to_string(i.dissenters, ','), 1024), "
    "floor(extract(epoch FROM i.first_seen))::bigint, "
    "floor(extract(epoch FROM i.last_seen))::bigint, "
    "coalesce(floor(extract(epoch FROM i.resolved_at))::bigint, 0), "
    "coalesce(left(i.acked_by, 256), ''), "
    "coalesce(left(i.ack_note, 1024), '') "
    "FROM incident_events e JOIN incidents i ON i.id = e.incident_id "
    "WHERE e.id > $1::bigint ORDER BY e.id LIMIT $2::integer";

/* ---- time, waiting, stopping ---- */

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_stopping(struct notify *n)
{
	return atomic_load(&n->stop);
}

/*
 * Sleeps up to ms, less when stopping and, with wakeable, when
 * notify_wake was called since the sink began its round.
 */
static void
s_sleep(struct sink *s, int64_t ms, int wakeable)
{
	struct notify *n = s->n;
	struct timespec ts;
	int64_t until = s_now_ms() + ms;

	pthread_mutex_lock(&n->mu);
	while (!s_stopping(n) && !(wakeable && n->wake_gen != s->wake_seen)) {
		int64_t left = until - s_now_ms();

		if (left <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&n->cv, &n->mu, &ts);
	}
	pthread_mutex_unlock(&n->mu);
}

/* poll() on one descriptor in slices, until ready, stop or deadline.
 * 1 ready, 0 deadline or stop, -1 error. */
static int
s_wait_fd(struct notify *n, int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int rc;

	for (;;) {
		int64_t left = deadline - s_now_ms();

		if (s_stopping(n) || left <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		rc = poll(&pfd, 1, left < SLICE_MS ? (int)left : SLICE_MS);
		if (rc == -1 && errno != EINTR)
			return -1;
		if (rc > 0)
			return 1;
	}
}

/* ---- the database, asynchronously ---- */

static void
s_counters_db(struct sink *s, int up)
{
	pthread_mutex_lock(&s->n->mu);
	s->db_up = up;
	pthread_mutex_unlock(&s->n->mu);
}

static void
s_db_drop(struct sink *s)
{
	PQfinish(s->conn);
	s->conn = NULL;
	s->locked = 0;
	s_counters_db(s, 0);
}

/* libpq's messages span lines; a log event is one line. */
static const char *
s_oneline(const char *in, char *buf, size_t len)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < len; in++) {
		char c = *in == '\n' || *in == '\r' || *in == '\t' ? ' ' : *in;

		if (c == ' ' && (o == 0 || buf[o - 1] == ' '))
			continue;
		buf[o++] = c;
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

/*
 * Runs one statement; the result (tuples or command ok), or NULL after
 * logging why.  A failure other than an SQL error, a timeout or a stop
 * drops the connection, which the loop then reopens.
 */
static PGresult *
s_db(struct sink *s, const char *sql, int nparams, const char *const *params)
{
	PGresult *res, *last = NULL;
	int64_t deadline = s_now_ms() + PG_TIMEOUT_MS;
	ExecStatusType st;
	char msg[512];

	if (s->conn == NULL)
		return NULL;
	if (!PQsendQueryParams(
		s->conn, sql, nparams, NULL, params, NULL, NULL, 0))
		goto broken;
	for (;;) {
		while (PQisBusy(s->conn)) {
			int rc = s_wait_fd(
			    s->n, PQsocket(s->conn), POLLIN, deadline);

			if (rc != 1) {
				if (!s_stopping(s->n))
					log_warnx("notify: sink=%s database "
						  "query %s",
					    sink_names[s->which],
					    rc == 0 ? "timed out" : "failed");
				PQclear(last);
				s_db_drop(s);
				return NULL;
			}
			if (!PQconsumeInput(s->conn))
				goto broken;
		}
		if ((res = PQgetResult(s->conn)) == NULL)
			break;
		PQclear(last);
		last = res;
	}
	st = PQresultStatus(last);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return last;
	if (PQstatus(s->conn) != CONNECTION_OK)
		goto broken;
	log_warnx("notify: sink=%s database error: %s", sink_names[s->which],
	    s_oneline(
		last ? PQresultErrorMessage(last) : PQerrorMessage(s->conn),
		msg, sizeof(msg)));
	PQclear(last);
	return NULL;
broken:
	log_warnx("notify: sink=%s database connection lost: %s",
	    sink_names[s->which],
	    s_oneline(PQerrorMessage(s->conn), msg, sizeof(msg)));
	PQclear(last);
	s_db_drop(s);
	return NULL;
}

/* A statement whose result only says whether it worked. */
static int
s_db_ok(struct sink *s, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = s_db(s, sql, nparams, params);

	PQclear(res);
	return res == NULL ? -1 : 0;
}

/* PQconnectStart/PQconnectPoll in slices.  0, or -1 (logged). */
static int
s_db_connect(struct sink *s)
{
	int64_t deadline = s_now_ms() + PG_TIMEOUT_MS;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	char msg[512];

	if ((s->conn = PQconnectStart(s->n->conninfo)) == NULL) {
		log_warnx("notify: out of memory");
		return -1;
	}
	if (PQstatus(s->conn) == CONNECTION_BAD)
		goto fail;
	while (st != PGRES_POLLING_OK) {
		int rc;

		if (st == PGRES_POLLING_FAILED)
			goto fail;
		rc = s_wait_fd(s->n, PQsocket(s->conn),
		    st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (rc != 1) {
			if (rc == 0 && !s_stopping(s->n))
				log_warnx("notify: sink=%s database connect "
					  "timed out",
				    sink_names[s->which]);
			PQfinish(s->conn);
			s->conn = NULL;
			return -1;
		}
		st = PQconnectPoll(s->conn);
	}
	return 0;
fail:
	log_warnx("notify: sink=%s database connect failed: %s",
	    sink_names[s->which],
	    s_oneline(PQerrorMessage(s->conn), msg, sizeof(msg)));
	PQfinish(s->conn);
	s->conn = NULL;
	return -1;
}

static int
s_record_delivered(struct sink *s, int64_t id)
{
	char idbuf[32];
	const char *p[2] = {sink_names[s->which], idbuf};

	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	return s_db_ok(s, q_delivered, 2, p);
}

/*
 * After a connect: the advisory lock (1 held, 0 another collector has
 * it), then the cursor row.  -1 on a database failure.
 */
static int
s_db_prepare(struct sink *s)
{
	const char *p[1] = {sink_names[s->which]};
	PGresult *res;
	int got;

	if ((res = s_db(s, q_lock, 1, p)) == NULL)
		return -1;
	got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got)
		return 0;
	s->locked = 1;
	if (s_db_ok(s, q_cursor_init, 1, p) == -1)
		return -1;
	return 1;
}

/* ---- text helpers ---- */

/* Length of s cut to at most max bytes at a UTF-8 character boundary. */
static size_t
s_utf8_cut(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

static void
s_rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "0001-01-01T00:00:00Z");
}

/* ---- webhook ---- */

/* A JSON string of at most max bytes of s, valid UTF-8 whatever s is. */
static json_t *
s_jstr(const char *s, size_t max)
{
	char *clean = wire_utf8_clean(s, strlen(s));
	json_t *j;

	if (clean == NULL)
		return NULL;
	j = json_stringn(clean, s_utf8_cut(clean, max));
	free(clean);
	return j;
}

/* Sets key to a bounded string; -1 when out of memory. */
static int
s_jset(json_t *obj, const char *key, const char *value, size_t max)
{
	json_t *j = s_jstr(value, max);

	return j == NULL || json_object_set_new(obj, key, j) == -1 ? -1 : 0;
}

/* Stable per incident, 16 hex digits like Alertmanager's: FNV-1a 64. */
static void
s_fingerprint(int64_t incident_id, char out[17])
{
	char key[64];
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	snprintf(
	    key, sizeof(key), "mtasts-watch/incident/%" PRId64, incident_id);
	for (i = 0; key[i] != '\0'; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	snprintf(out, 17, "%016" PRIx64, h);
}

static const char *
s_verb(const char *kind)
{
	if (strcmp(kind, "open") == 0)
		return "opened";
	if (strcmp(kind, "escalate") == 0)
		return "escalated";
	if (strcmp(kind, "resolve") == 0)
		return "resolved";
	if (strcmp(kind, "ack") == 0)
		return "acknowledged";
	return kind;
}

/*
 * The Alertmanager webhook payload (version 4) of one event: one alert,
 * whose labels identify the incident and whose fingerprint stays the same
 * across its events.  Calls malloc; the caller frees the string.
 */
static char *
s_webhook_payload(const struct notify *n, const struct event *ev)
{
	json_t *root = json_object(), *alert = json_object();
	json_t *labels = json_object(), *ann = json_object();
	json_t *group = json_object(), *alerts = json_array();
	char buf[CEF_TEXT_MAX * 2 + 64], fp[17], starts[32], ends[32];
	const char *status =
	    strcmp(ev->state, "resolved") == 0 ? "resolved" : "firing";
	const char *ext = n->external_url ? n->external_url : "";
	char *out = NULL;
	int bad = 0;

	if (root == NULL || alert == NULL || labels == NULL || ann == NULL ||
	    group == NULL || alerts == NULL)
		goto done;

	bad |= s_jset(labels, "alertname", ev->code, CEF_TEXT_MAX);
	if (ev->domain[0] != '\0')
		bad |= s_jset(labels, "domain", ev->domain, CEF_TEXT_MAX);
	bad |= s_jset(labels, "subject", ev->subject, CEF_TEXT_MAX);
	bad |= s_jset(labels, "severity", ev->severity, CEF_TEXT_MAX);
	if (ev->stage[0] != '\0')
		bad |= s_jset(labels, "stage", ev->stage, CEF_TEXT_MAX);
	if (ev->vantages[0] != '\0')
		bad |= s_jset(labels, "vantages", ev->vantages, CEF_TEXT_MAX);

	snprintf(buf, sizeof(buf), "%s %s for %s", ev->code, s_verb(ev->kind),
	    ev->domain[0] != '\0' ? ev->domain : ev->subject);
	if (ev->domain[0] != '\0' && ev->subject[0] != '\0') {
		size_t l = strlen(buf);

		snprintf(buf + l, sizeof(buf) - l, " (%s)", ev->subject);
	}
	bad |= s_jset(ann, "summary", buf, sizeof(buf));
	bad |= s_jset(ann, "description", ev->detail, NOTIFY_DETAIL_MAX);
	bad |= s_jset(ann, "event", ev->kind, 32);
	snprintf(buf, sizeof(buf), "%" PRId64, ev->incident_id);
	bad |= s_jset(ann, "incident_id", buf, 32);
	snprintf(buf, sizeof(buf), "%" PRId64, ev->id);
	bad |= s_jset(ann, "event_id", buf, 32);
	if (ev->dissenters[0] != '\0')
		bad |= s_jset(ann, "dissenters", ev->dissenters, CEF_TEXT_MAX);
	if (strcmp(ev->kind, "ack") == 0) {
		if (ev->acked_by[0] != '\0')
			bad |= s_jset(ann, "acked_by", ev->acked_by, 256);
		if (ev->ack_note[0] != '\0')
			bad |=
			    s_jset(ann, "ack_note", ev->ack_note, CEF_TEXT_MAX);
	}

	s_rfc3339(ev->first_seen, starts, sizeof(starts));
	if (strcmp(status, "resolved") == 0)
		s_rfc3339(ev->resolved_at ? ev->resolved_at : ev->at, ends,
		    sizeof(ends));
	else
		snprintf(ends, sizeof(ends), "0001-01-01T00:00:00Z");
	s_fingerprint(ev->incident_id, fp);

	bad |= s_jset(alert, "status", status, 16);
	bad |= json_object_set(alert, "labels", labels);
	bad |= json_object_set(alert, "annotations", ann);
	bad |= s_jset(alert, "startsAt", starts, sizeof(starts));
	bad |= s_jset(alert, "endsAt", ends, sizeof(ends));
	if (ext[0] != '\0')
		snprintf(buf, sizeof(buf), "%s/incidents/%" PRId64, ext,
		    ev->incident_id);
	else
		buf[0] = '\0';
	bad |= s_jset(alert, "generatorURL", buf, sizeof(buf));
	bad |= s_jset(alert, "fingerprint", fp, sizeof(fp));
	bad |= json_array_append(alerts, alert);

	bad |= s_jset(group, "alertname", ev->code, CEF_TEXT_MAX);
	if (ev->domain[0] != '\0')
		bad |= s_jset(group, "domain", ev->domain, CEF_TEXT_MAX);

	bad |= s_jset(root, "version", "4", 8);
	snprintf(buf, sizeof(buf), "{}:{alertname=\"%s\", domain=\"%s\"}",
	    ev->code, ev->domain);
	bad |= s_jset(root, "groupKey", buf, sizeof(buf));
	bad |= json_object_set_new(root, "truncatedAlerts", json_integer(0));
	bad |= s_jset(root, "status", status, 16);
	bad |= s_jset(
	    root, "receiver", n->receiver ? n->receiver : "mtasts-watch", 256);
	bad |= json_object_set(root, "groupLabels", group);
	bad |= json_object_set(root, "commonLabels", labels);
	bad |= json_object_set(root, "commonAnnotations", ann);
	bad |= s_jset(root, "externalURL", ext, URL_MAX);
	bad |= json_object_set(root, "alerts", alerts);
	if (!bad)
		out = json_dumps(root, JSON_COMPACT);
done:
	json_decref(root);
	json_decref(alert);
	json_decref(labels);
	json_decref(ann);
	json_decref(group);
	json_decref(alerts);
	return out;
}

/* Response bodies are not used; the status says it all.  Past the bound
 * the transfer is cut (the status line has been read by then). */
static size_t
s_discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;

	(void)ptr;
	s->body_seen += size * nmemb;
	return s->body_seen > NOTIFY_RESPONSE_MAX ? 0 : size * nmemb;
}

static int
s_webhook_init(struct sink *s, char *err, size_t errlen)
{
	struct notify *n = s->n;
	char auth[NOTIFY_TOKEN_MAX + 32];
	struct curl_slist *h;
	CURL *c;

	if ((s->multi = curl_multi_init()) == NULL ||
	    (s->easy = curl_easy_init()) == NULL) {
		errbuf_set(err, errlen, "webhook: curl init failed");
		return -1;
	}
	c = s->easy;
	/* Expect: off, or curl waits for a 100 that small receivers never
	 * send before it posts the body. */
	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) ==
	    NULL)
		goto oom;
	s->headers = h;
	if ((h = curl_slist_append(s->headers, "Expect:")) == NULL)
		goto oom;
	s->headers = h;
	if (n->token != NULL) {
		snprintf(
		    auth, sizeof(auth), "Authorization: Bearer %s", n->token);
		if ((h = curl_slist_append(s->headers, auth)) == NULL)
			goto oom;
		s->headers = h;
	}
	if (curl_easy_setopt(c, CURLOPT_URL, n->url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK) {
		errbuf_set(err, errlen, "webhook: curl refuses the URL");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mtasts-watch-notify");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->timeout_s * 1000);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(n->timeout_s < 10 ? n->timeout_s : 10) * 1000);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->curl_err);
	if (n->ca_file != NULL &&
	    curl_easy_setopt(c, CURLOPT_CAINFO, n->ca_file) != CURLE_OK) {
		errbuf_set(err, errlen, "webhook: curl refuses the CA file");
		return -1;
	}
	return 0;
oom:
	errbuf_set(err, errlen, "webhook: out of memory");
	return -1;
}

/*
 * POSTs one event.  0 on a 2xx answer; -1 with the reason in why (also
 * when stopping, which the caller checks first).
 */
static int
s_webhook_send(struct sink *s, const struct event *ev, char *why, size_t wl)
{
	char *body = s_webhook_payload(s->n, ev);
	CURLcode result = CURLE_OK;
	CURLMsg *msg;
	long status = 0;
	int running = 1, left, done = 0;

	if (body == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	s->body_seen = 0;
	s->curl_err[0] = '\0';
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) {
		free(body);
		snprintf(why, wl, "curl_multi_add_handle failed");
		return -1;
	}
	/* CURLOPT_TIMEOUT_MS bounds the loop; notify_stop wakes the poll. */
	while (!done && !s_stopping(s->n)) {
		if (curl_multi_perform(s->multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(s->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE) {
				result = msg->data.result;
				done = 1;
			}
		if (!done && running == 0)
			break;
		if (!done &&
		    curl_multi_poll(s->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(s->multi, s->easy);
	free(body);
	if (!done) {
		snprintf(why, wl, "%s",
		    s_stopping(s->n) ? "stopped" : "curl multi failed");
		return -1;
	}
	/* A body cut at the bound still came with the receiver's status. */
	if (result != CURLE_OK &&
	    !(result == CURLE_WRITE_ERROR && status != 0)) {
		snprintf(why, wl, "%s",
		    s->curl_err[0] ? s->curl_err : curl_easy_strerror(result));
		return -1;
	}
	if (status < 200 || status > 299) {
		snprintf(why, wl, "HTTP %ld", status);
		return -1;
	}
	return 0;
}

/* ---- syslog ---- */

static void
s_syslog_close(struct sink *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

static int
s_syslog_open(struct sink *s, char *why, size_t wl)
{
	struct notify *n = s->n;
	int type = n->sl_kind == SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM;
	int64_t deadline = s_now_ms() + SYSLOG_TIMEOUT_MS;
	int fd, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	fd = socket(
	    n->sl_addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(why, wl, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&n->sl_addr, n->sl_addrlen) == 0) {
		s->fd = fd;
		return 0;
	}
	if (errno != EINPROGRESS) {
		snprintf(why, wl, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	rc = s_wait_fd(n, fd, POLLOUT, deadline);
	if (rc != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1 ||
	    soerr != 0) {
		snprintf(why, wl, "connect: %s",
		    rc == 0	 ? "timed out"
		    : soerr != 0 ? strerror(soerr)
				 : strerror(errno));
		close(fd);
		return -1;
	}
	s->fd = fd;
	return 0;
}

/*
 * A stream peer that closed (or sent something, which syslog receivers
 * never do) is found before writing, so the message does not vanish into
 * a half-closed connection.
 */
static void
s_syslog_check_peer(struct sink *s)
{
	struct pollfd pfd = {s->fd, POLLIN, 0};
	char junk[512];

	if (poll(&pfd, 1, 0) == 1) {
		ssize_t r = recv(s->fd, junk, sizeof(junk), MSG_DONTWAIT);

		if (r == 0 || (r == -1 && errno != EAGAIN))
			s_syslog_close(s);
	}
}

static int
s_send_all(struct sink *s, const char *p, size_t len, char *why, size_t wl)
{
	int64_t deadline = s_now_ms() + SYSLOG_TIMEOUT_MS;

	while (len > 0) {
		ssize_t w = send(s->fd, p, len, MSG_NOSIGNAL);

		if (w >= 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN ||
		    s_wait_fd(s->n, s->fd, POLLOUT, deadline) != 1) {
			snprintf(why, wl, "send: %s",
			    errno == EAGAIN ? "timed out" : strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Copies s cut to max bytes into buf (of max + 1 bytes at least). */
static const char *
s_cut_into(const char *s, size_t max, char *buf)
{
	size_t l = s_utf8_cut(s, max);

	memcpy(buf, s, l);
	buf[l] = '\0';
	return buf;
}

/*
 * Formats ev into buf (room for max + 1 bytes): the free-text fields are
 * halved until the message fits in max, which for UDP is the RFC 5426
 * size every receiver takes.  The length, or -1.
 */
static int
s_syslog_format(
    const struct notify *n, const struct event *ev, char *buf, size_t max)
{
	static const size_t cap = CEF_TEXT_MAX;
	char subject[CEF_TEXT_MAX + 1], detail[CEF_TEXT_MAX + 1];
	char vant[CEF_TEXT_MAX + 1], diss[CEF_TEXT_MAX + 1];
	struct cef_incident ci = {0};
	size_t limit = cap;
	int len;

	ci.id = ev->incident_id;
	ci.kind = ev->kind;
	ci.domain = ev->domain;
	ci.code = ev->code;
	ci.severity = ev->severity;
	ci.state = ev->state;
	ci.stage = ev->stage;
	ci.first_seen = ev->first_seen;
	ci.last_seen = ev->last_seen;
	ci.at = ev->at;
	for (;;) {
		ci.subject = s_cut_into(ev->subject, limit, subject);
		ci.detail = s_cut_into(ev->detail, limit, detail);
		ci.vantages = s_cut_into(ev->vantages, limit, vant);
		ci.dissenters = s_cut_into(ev->dissenters, limit, diss);
		len = cef_syslog5424(&ci, n->facility, n->hostname,
		    n->format == NOTIFY_SYSLOG_CEF, buf, max + 1);
		if (len < 0)
			return -1;
		if ((size_t)len <= max)
			return len;
		if (limit <= 16)
			break;
		limit /= 2;
	}
	/* Only a domain or code of absurd length gets here. */
	return (int)s_utf8_cut(buf, max);
}

static int
s_syslog_send(struct sink *s, const struct event *ev, char *why, size_t wl)
{
	struct notify *n = s->n;
	size_t max = n->sl_kind == SYSLOG_UDP ? NOTIFY_SYSLOG_UDP_MAX
					      : NOTIFY_SYSLOG_STREAM_MAX;
	char buf[NOTIFY_SYSLOG_STREAM_MAX + 16];
	char frame[NOTIFY_SYSLOG_STREAM_MAX + 32];
	int len, flen;

	if ((len = s_syslog_format(n, ev, buf, max)) < 0) {
		snprintf(why, wl, "cannot format the message");
		return -1;
	}
	if (s->fd != -1 && n->sl_kind == SYSLOG_TCP)
		s_syslog_check_peer(s);
	if (s->fd == -1 && s_syslog_open(s, why, wl) == -1)
		return -1;
	if (n->sl_kind != SYSLOG_TCP) {
		/* One datagram per message; a receiver that is not there
		 * shows up as ECONNREFUSED on this or the next send. */
		if (send(s->fd, buf, (size_t)len, MSG_NOSIGNAL) == -1) {
			snprintf(why, wl, "send: %s", strerror(errno));
			s_syslog_close(s);
			return -1;
		}
		return 0;
	}
	/* RFC 6587 section 3.4.1 octet counting: "LEN SP MSG". */
	flen = snprintf(frame, sizeof(frame), "%d ", len);
	memcpy(frame + flen, buf, (size_t)len);
	if (s_send_all(s, frame, (size_t)(flen + len), why, wl) == -1) {
		/* A partial frame leaves the stream unusable. */
		s_syslog_close(s);
		return -1;
	}
	return 0;
}

/* ---- the sink loop ---- */

static void
s_event_from_row(const PGresult *res, int r, struct event *ev)
{
	ev->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	ev->kind = PQgetvalue(res, r, 1);
	ev->severity = PQgetvalue(res, r, 2);
	ev->stage = PQgetvalue(res, r, 3);
	ev->at = (time_t)strtoll(PQgetvalue(res, r, 4), NULL, 10);
	ev->incident_id = strtoll(PQgetvalue(res, r, 5), NULL, 10);
	ev->domain = PQgetvalue(res, r, 6);
	ev->code = PQgetvalue(res, r, 7);
	ev->subject = PQgetvalue(res, r, 8);
	ev->state = PQgetvalue(res, r, 9);
	ev->detail = PQgetvalue(res, r, 10);
	ev->vantages = PQgetvalue(res, r, 11);
	ev->dissenters = PQgetvalue(res, r, 12);
	ev->first_seen = (time_t)strtoll(PQgetvalue(res, r, 13), NULL, 10);
	ev->last_seen = (time_t)strtoll(PQgetvalue(res, r, 14), NULL, 10);
	ev->resolved_at = (time_t)strtoll(PQgetvalue(res, r, 15), NULL, 10);
	ev->acked_by = PQgetvalue(res, r, 16);
	ev->ack_note = PQgetvalue(res, r, 17);
}

static void
s_record_failed(struct sink *s, const struct event *ev, const char *why)
{
	char base[16], cap[16], msg[LAST_ERROR_MAX];
	const char *p[4] = {sink_names[s->which], base, cap, msg};
	PGresult *res;

	snprintf(base, sizeof(base), "%d", NOTIFY_BACKOFF_MIN_S);
	snprintf(cap, sizeof(cap), "%d", NOTIFY_BACKOFF_MAX_S);
	snprintf(msg, sizeof(msg), "event %" PRId64 ": %s", ev->id, why);
	/* why may come from a peer: keep last_error valid UTF-8. */
	msg[s_utf8_cut(msg, sizeof(msg) - 1)] = '\0';
	if (!wire_utf8_valid(msg, strlen(msg)))
		snprintf(
		    msg, sizeof(msg), "event %" PRId64 ": (not UTF-8)", ev->id);
	res = s_db(s, q_failed, 4, p);
	log_warnx("notify: sink=%s event=%" PRId64 " attempt=%s error=%s",
	    sink_names[s->which], ev->id,
	    res && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?", why);
	PQclear(res);
}

/*
 * Delivers the events of res in order, stopping at the first failure, at
 * a hole in the ids still worth waiting for, or when stopping.  cursor:
 * the id before the first row.  Returns 1 when it stopped at a hole.
 */
static int
s_deliver_rows(struct sink *s, const PGresult *res, int64_t cursor)
{
	char why[512];
	struct event ev;
	int r, rc;

	for (r = 0; r < PQntuples(res) && !s_stopping(s->n); r++) {
		s_event_from_row(res, r, &ev);
		if (ev.id != cursor + 1) {
			int64_t now = s_now_ms();

			if (s->gap_id != cursor + 1) {
				s->gap_id = cursor + 1;
				s->gap_since = now;
			}
			if (now - s->gap_since < s->n->gap_wait_ms)
				return 1;
			log_warnx("notify: sink=%s events %" PRId64 "..%" PRId64
				  " never committed; skipped",
			    sink_names[s->which], cursor + 1, ev.id - 1);
		}
		s->gap_id = 0;
		why[0] = '\0';
		if (s->which == NOTIFY_SINK_WEBHOOK)
			rc = s_webhook_send(s, &ev, why, sizeof(why));
		else
			rc = s_syslog_send(s, &ev, why, sizeof(why));
		if (s_stopping(s->n))
			return 0;
		pthread_mutex_lock(&s->n->mu);
		if (rc == 0) {
			s->delivered++;
			s->attempts = 0;
			s->last_event_id = ev.id;
		} else {
			s->failed++;
			s->attempts++;
		}
		pthread_mutex_unlock(&s->n->mu);
		if (rc != 0) {
			s_record_failed(s, &ev, why);
			return 0;
		}
		log_debug("notify: sink=%s event=%" PRId64 " delivered",
		    sink_names[s->which], ev.id);
		s->pending = ev.id;
		if (s_record_delivered(s, ev.id) == -1)
			return 0;
		s->pending = 0;
		cursor = ev.id;
	}
	return 0;
}

/*
 * One round: the cursor of an event delivered while the database was
 * away, the cursor, then the events after it.  Returns how long to sleep
 * and sets *wakeable when new events should cut the sleep short; -1 on a
 * database failure.
 */
static int64_t
s_round(struct sink *s, int *wakeable)
{
	const char *p[2] = {sink_names[s->which], NULL};
	char idbuf[32], batch[16];
	PGresult *res;
	int64_t cursor, wait_ms;
	int rows, gap;

	*wakeable = 0;
	if (s->pending != 0) {
		if (s_record_delivered(s, s->pending) == -1)
			return -1;
		s->pending = 0;
	}
	if ((res = s_db(s, q_cursor, 1, p)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		/* Someone deleted the row: start afresh, no replay. */
		PQclear(res);
		return s_db_ok(s, q_cursor_init, 1, p) == -1 ? -1 : 0;
	}
	cursor = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	wait_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	pthread_mutex_lock(&s->n->mu);
	s->last_event_id = cursor;
	s->attempts = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	pthread_mutex_unlock(&s->n->mu);
	PQclear(res);
	/* Backing off: look again at least every 5 s, so that an operator
	 * who resets the row is heard. */
	if (wait_ms > 0)
		return wait_ms < 5000 ? wait_ms : 5000;

	snprintf(idbuf, sizeof(idbuf), "%" PRId64, cursor);
	snprintf(batch, sizeof(batch), "%d", NOTIFY_BATCH);
	p[0] = idbuf;
	p[1] = batch;
	if ((res = s_db(s, q_events, 2, p)) == NULL)
		return -1;
	rows = PQntuples(res);
	gap = rows > 0 ? s_deliver_rows(s, res, cursor) : 0;
	PQclear(res);
	if (rows == NOTIFY_BATCH && !gap)
		return 0; /* more to read */
	if (gap)
		return s->n->poll_ms < 1000 ? s->n->poll_ms : 1000;
	*wakeable = 1;
	return s->n->poll_ms;
}

static void *
s_sink_main(void *arg)
{
	struct sink *s = arg;
	struct notify *n = s->n;
	int64_t db_backoff = 1000, sleep_ms;
	int wakeable, rc;

	while (!s_stopping(n)) {
		pthread_mutex_lock(&n->mu);
		s->wake_seen = n->wake_gen;
		pthread_mutex_unlock(&n->mu);
		if (s->conn == NULL) {
			if (s_db_connect(s) == -1) {
				s_sleep(s, db_backoff, 0);
				db_backoff = db_backoff * 2 < DB_BACKOFF_MAX_MS
						 ? db_backoff * 2
						 : DB_BACKOFF_MAX_MS;
				continue;
			}
			s_counters_db(s, 1);
		}
		if (!s->locked) {
			if ((rc = s_db_prepare(s)) == 0) {
				/* Another collector delivers this sink. */
				s_sleep(s, n->poll_ms, 0);
				continue;
			}
			sleep_ms = rc == 1 ? s_round(s, &wakeable) : -1;
		} else {
			sleep_ms = s_round(s, &wakeable);
		}
		if (sleep_ms < 0) {
			/* An SQL error (schema not migrated?) or a lost
			 * connection: back off, do not spin on it. */
			s_sleep(s, db_backoff, 0);
			db_backoff = db_backoff * 2 < DB_BACKOFF_MAX_MS
					 ? db_backoff * 2
					 : DB_BACKOFF_MAX_MS;
			continue;
		}
		db_backoff = 1000;
		if (sleep_ms > 0)
			s_sleep(s, sleep_ms, wakeable);
	}
	s_db_drop(s);
	return NULL;
}

/* ---- options ---- */

static int
s_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* "udp://H:P", "tcp://H:P" (H may be [v6]) or "unix:/PATH". */
static int
s_parse_syslog(struct notify *n, const char *t, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[256];
	const char *rest, *colon, *port;
	size_t hl;
	int rc;

	if (strncmp(t, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&n->sl_addr;

		if (t[5] != '/' || strlen(t + 5) >= sizeof(sun->sun_path)) {
			errbuf_set(err, errlen,
			    "syslog: unix: needs an absolute path shorter "
			    "than %zu bytes",
			    sizeof(sun->sun_path));
			return -1;
		}
		n->sl_kind = SYSLOG_UNIX;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, t + 5, strlen(t + 5) + 1);
		n->sl_addrlen = sizeof(*sun);
		return 0;
	}
	if (strncmp(t, "udp://", 6) == 0)
		n->sl_kind = SYSLOG_UDP;
	else if (strncmp(t, "tcp://", 6) == 0)
		n->sl_kind = SYSLOG_TCP;
	else {
		errbuf_set(err, errlen,
		    "syslog: \"%s\" is not udp://HOST:PORT, tcp://HOST:PORT "
		    "or unix:/PATH",
		    t);
		return -1;
	}
	rest = t + 6;
	if (rest[0] == '[') {
		const char *close = strchr(rest, ']');

		if (close == NULL || close[1] != ':')
			goto syntax;
		hl = (size_t)(close - rest - 1);
		rest++;
		port = close + 2;
	} else {
		if ((colon = strrchr(rest, ':')) == NULL ||
		    strchr(rest, ':') != colon)
			goto syntax;
		hl = (size_t)(colon - rest);
		port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(host) || port[0] == '\0' ||
	    strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) < 1 || atoi(port) > 65535)
		goto syntax;
	memcpy(host, rest, hl);
	host[hl] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = n->sl_kind == SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		errbuf_set(
		    err, errlen, "syslog: %s: %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(&n->sl_addr, ai->ai_addr, ai->ai_addrlen);
	n->sl_addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
syntax:
	errbuf_set(err, errlen,
	    "syslog: \"%s\": expected HOST:PORT, port 1..65535", t);
	return -1;
}

static int
s_dup(char **dst, const char *src)
{
	if (src == NULL || src[0] == '\0')
		return 0;
	return (*dst = strdup(src)) == NULL ? -1 : 0;
}

static int
s_check_opts(
    struct notify *n, const struct notify_opts *o, char *err, size_t errlen)
{
	int web = o->webhook_url != NULL && o->webhook_url[0] != '\0';
	int sys = o->syslog != NULL && o->syslog[0] != '\0';

	if ((web || sys) && (o->conninfo == NULL || o->conninfo[0] == '\0')) {
		errbuf_set(err, errlen, "notify: no database conninfo");
		return -1;
	}
	if (web) {
		if ((strncasecmp(o->webhook_url, "http://", 7) != 0 &&
			strncasecmp(o->webhook_url, "https://", 8) != 0) ||
		    strlen(o->webhook_url) > URL_MAX ||
		    !s_printable(o->webhook_url)) {
			errbuf_set(err, errlen,
			    "webhook_url: an http:// or https:// URL of at "
			    "most %d printable bytes",
			    URL_MAX);
			return -1;
		}
		if (o->webhook_timeout_s > NOTIFY_WEBHOOK_TIMEOUT_MAX) {
			errbuf_set(err, errlen,
			    "webhook_timeout: at most %d seconds",
			    NOTIFY_WEBHOOK_TIMEOUT_MAX);
			return -1;
		}
		if (o->webhook_token != NULL &&
		    (strlen(o->webhook_token) > NOTIFY_TOKEN_MAX ||
			!s_printable(o->webhook_token))) {
			errbuf_set(err, errlen,
			    "webhook token: printable ASCII, at most %d bytes",
			    NOTIFY_TOKEN_MAX);
			return -1;
		}
		if (o->webhook_ca_file != NULL && o->webhook_ca_file[0] &&
		    access(o->webhook_ca_file, R_OK) == -1) {
			errbuf_set(err, errlen, "webhook_ca_file: %s: %s",
			    o->webhook_ca_file, strerror(errno));
			return -1;
		}
	}
	if (sys) {
		if (o->syslog_facility < 0 || o->syslog_facility > 23) {
			errbuf_set(err, errlen, "syslog_facility: 0..23");
			return -1;
		}
		if (o->syslog_format != NOTIFY_SYSLOG_RFC5424 &&
		    o->syslog_format != NOTIFY_SYSLOG_CEF) {
			errbuf_set(
			    err, errlen, "syslog_format: rfc5424 or cef");
			return -1;
		}
		if (s_parse_syslog(n, o->syslog, err, errlen) == -1)
			return -1;
	}
	if (o->external_url != NULL && strlen(o->external_url) > URL_MAX) {
		errbuf_set(
		    err, errlen, "external_url: at most %d bytes", URL_MAX);
		return -1;
	}
	n->sinks[NOTIFY_SINK_WEBHOOK].enabled = web;
	n->sinks[NOTIFY_SINK_SYSLOG].enabled = sys;
	return 0;
}

static void
s_free(struct notify *n)
{
	int i;

	for (i = 0; i < NOTIFY_SINKS; i++) {
		struct sink *s = &n->sinks[i];

		curl_easy_cleanup(s->easy);
		curl_multi_cleanup(s->multi);
		curl_slist_free_all(s->headers);
		s_syslog_close(s);
	}
	if (n->curl_inited)
		curl_global_cleanup();
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n->conninfo);
	free(n->url);
	free(n->token);
	free(n->ca_file);
	free(n->external_url);
	free(n->receiver);
	free(n->hostname);
	free(n);
}

struct notify *
notify_start(const struct notify_opts *opts, char *err, size_t errlen)
{
	struct notify *n;
	pthread_condattr_t ca;
	char host[256];
	int i;

	if ((n = calloc(1, sizeof(*n))) == NULL) {
		errbuf_set(err, errlen, "notify: out of memory");
		return NULL;
	}
	for (i = 0; i < NOTIFY_SINKS; i++) {
		n->sinks[i].n = n;
		n->sinks[i].which = (enum notify_sink)i;
		n->sinks[i].fd = -1;
	}
	atomic_init(&n->stop, 0);
	if (pthread_condattr_init(&ca) != 0) {
		free(n);
		errbuf_set(err, errlen, "notify: pthread_condattr_init failed");
		return NULL;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&n->mu, NULL) != 0) {
		pthread_condattr_destroy(&ca);
		free(n);
		errbuf_set(err, errlen, "notify: pthread_mutex_init failed");
		return NULL;
	}
	if (pthread_cond_init(&n->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&n->mu);
		free(n);
		errbuf_set(err, errlen, "notify: pthread_cond_init failed");
		return NULL;
	}
	pthread_condattr_destroy(&ca);

	if (opts == NULL) {
		errbuf_set(err, errlen, "notify: no options");
		goto fail;
	}
	if (s_check_opts(n, opts, err, errlen) == -1)
		goto fail;
	n->timeout_s = opts->webhook_timeout_s ? opts->webhook_timeout_s
					       : NOTIFY_WEBHOOK_TIMEOUT_DEFAULT;
	n->poll_ms = opts->poll_ms ? opts->poll_ms : NOTIFY_POLL_DEFAULT_MS;
	n->gap_wait_ms =
	    opts->gap_wait_ms ? opts->gap_wait_ms : NOTIFY_GAP_WAIT_DEFAULT_MS;
	n->format = opts->syslog_format;
	n->facility = opts->syslog_facility;
	if (opts->hostname == NULL || opts->hostname[0] == '\0') {
		if (gethostname(host, sizeof(host)) == -1)
			snprintf(host, sizeof(host), "-");
		host[sizeof(host) - 1] = '\0';
	} else {
		snprintf(host, sizeof(host), "%s", opts->hostname);
	}
	if (s_dup(&n->conninfo, opts->conninfo) == -1 ||
	    s_dup(&n->url, opts->webhook_url) == -1 ||
	    s_dup(&n->token, opts->webhook_token) == -1 ||
	    s_dup(&n->ca_file, opts->webhook_ca_file) == -1 ||
	    s_dup(&n->external_url, opts->external_url) == -1 ||
	    s_dup(&n->receiver, opts->receiver) == -1 ||
	    s_dup(&n->hostname, host) == -1) {
		errbuf_set(err, errlen, "notify: out of memory");
		goto fail;
	}
	if (n->sinks[NOTIFY_SINK_WEBHOOK].enabled) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			errbuf_set(err, errlen, "notify: curl_global_init");
			goto fail;
		}
		n->curl_inited = 1;
		if (s_webhook_init(
			&n->sinks[NOTIFY_SINK_WEBHOOK], err, errlen) == -1)
			goto fail;
	}
	for (i = 0; i < NOTIFY_SINKS; i++) {
		struct sink *s = &n->sinks[i];
		int rc;

		if (!s->enabled)
			continue;
		if ((rc = pthread_create(&s->thread, NULL, s_sink_main, s)) !=
		    0) {
			errbuf_set(err, errlen, "notify: pthread_create: %s",
			    strerror(rc));
			goto fail;
		}
		s->started = 1;
	}
	return n;
fail:
	notify_stop(&n);
	return NULL;
}

void
notify_stop(struct notify **np)
{
	struct notify *n;
	int i;

	if (np == NULL || (n = *np) == NULL)
		return;
	*np = NULL;
	pthread_mutex_lock(&n->mu);
	atomic_store(&n->stop, 1);
	pthread_cond_broadcast(&n->cv);
	pthread_mutex_unlock(&n->mu);
	for (i = 0; i < NOTIFY_SINKS; i++)
		if (n->sinks[i].multi != NULL)
			curl_multi_wakeup(n->sinks[i].multi);
	for (i = 0; i < NOTIFY_SINKS; i++)
		if (n->sinks[i].started)
			pthread_join(n->sinks[i].thread, NULL);
	s_free(n);
}

void
notify_wake(struct notify *n)
{
	if (n == NULL)
		return;
	pthread_mutex_lock(&n->mu);
	n->wake_gen++;
	pthread_cond_broadcast(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

void
notify_counters(struct notify *n, struct notify_counters *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	if (n == NULL)
		return;
	pthread_mutex_lock(&n->mu);
	for (i = 0; i < NOTIFY_SINKS; i++) {
		const struct sink *s = &n->sinks[i];

		out->enabled[i] = s->enabled;
		out->delivered[i] = s->delivered;
		out->failed[i] = s->failed;
		out->attempts[i] = s->attempts;
		out->last_event_id[i] = s->last_event_id;
		out->db_up[i] = s->db_up;
	}
	pthread_mutex_unlock(&n->mu);
}
