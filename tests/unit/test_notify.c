/* test_notify.c -- the notifier against a real PostgreSQL, a webhook
 * receiver (libmicrohttpd) and syslog receivers, all on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#include <openssl/pem.h>

#include "notify.h"
#include "store_pg.h"
#include "pgschema.h"
#include "testcert.h"

/*
 * Environment: MTASTS_TEST_PG (required), MTASTS_TEST_SQLDIR (default
 * deploy/sql), MTASTS_TEST_PGDIR for the restart test (skipped without
 * it).  Each test has a schema of its own with the migrations applied;
 * incidents and events are inserted directly, as collector/incident.c
 * will write them.
 */

#define sql(t, ...)  pgschema_sql(&(t)->db, __VA_ARGS__)
#define q(t, ...)    pgschema_q(&(t)->db, __VA_ARGS__)
#define qn(t, query) pgschema_qn(&(t)->db, (query))

#define MAXREQ	  512
#define FACILITY  16 /* local0 */
#define HOSTNAME  "testhost"
#define TOKEN	  "s3cret-token"
#define EXTERNAL  "http://mtasts.test"
#define WAIT_S	  10.0
#define BIG_REPLY (1024 * 1024)

static struct {
	const char *conninfo;
	const char *sqldir;
	const char *pgdir;
	char *big_reply;
} fx;

/* ---- the webhook receiver ---- */

struct hook {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fail_first; /* answer 500 to the first N requests */
	int hang;	/* hold every request until released */
	int big;	/* answer 200 with BIG_REPLY bytes */
	int released;
	int nreq;
	char *body[MAXREQ];
	double at[MAXREQ];
	char auth[256], ctype[128];
};

struct upload {
	char *p;
	size_t len;
};

static double
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
s_msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static enum MHD_Result
hook_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *data,
    size_t *data_size, void **con_cls)
{
	struct hook *h = cls;
	struct upload *u = *con_cls;
	struct MHD_Response *resp;
	const char *v;
	enum MHD_Result ret;
	int status = 200, idx;

	(void)url;
	(void)method;
	(void)version;
	if (u == NULL) {
		if ((u = calloc(1, sizeof(*u))) == NULL)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*data_size > 0) {
		char *p;

		if (u->len + *data_size > 1024 * 1024)
			return MHD_NO;
		if ((p = realloc(u->p, u->len + *data_size + 1)) == NULL)
			return MHD_NO;
		memcpy(p + u->len, data, *data_size);
		u->p = p;
		u->len += *data_size;
		u->p[u->len] = '\0';
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&h->mu);
	idx = h->nreq;
	if (idx < MAXREQ) {
		h->body[idx] = u->p ? u->p : strdup("");
		u->p = NULL;
		h->at[idx] = s_now();
		h->nreq++;
	}
	if ((v = MHD_lookup_connection_value(
		 c, MHD_HEADER_KIND, "Authorization")) != NULL)
		snprintf(h->auth, sizeof(h->auth), "%s", v);
	if ((v = MHD_lookup_connection_value(
		 c, MHD_HEADER_KIND, "Content-Type")) != NULL)
		snprintf(h->ctype, sizeof(h->ctype), "%s", v);
	if (idx < h->fail_first)
		status = 500;
	if (h->hang) {
		double until = s_now() + 20;

		while (!h->released && s_now() < until) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		}
	}
	pthread_mutex_unlock(&h->mu);
	if (h->big)
		resp = MHD_create_response_from_buffer(
		    BIG_REPLY, fx.big_reply, MHD_RESPMEM_PERSISTENT);
	else
		resp = MHD_create_response_from_buffer(
		    2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
hook_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u != NULL) {
		free(u->p);
		free(u);
	}
	*con_cls = NULL;
}

/* Starts the receiver on 127.0.0.1 and a free port; HTTPS when key_pem
 * and cert_pem are given. */
static int
hook_start(struct hook *h, const char *key_pem, const char *cert_pem)
{
	struct sockaddr_in sin = {0};
	const union MHD_DaemonInfo *info;
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;

	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (key_pem != NULL)
		h->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL,
		    hook_handler, h, MHD_OPTION_SOCK_ADDR, &sin,
		    MHD_OPTION_NOTIFY_COMPLETED, hook_completed, NULL,
		    MHD_OPTION_HTTPS_MEM_KEY, key_pem,
		    MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
	else
		h->d = MHD_start_daemon(flags, 0, NULL, NULL, hook_handler, h,
		    MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_NOTIFY_COMPLETED,
		    hook_completed, NULL, MHD_OPTION_END);
	if (h->d == NULL)
		return -1;
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0)
		return -1;
	h->port = info->port;
	return 0;
}

static void
hook_stop(struct hook *h)
{
	int i;

	if (h->d == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->released = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	MHD_stop_daemon(h->d);
	h->d = NULL;
	for (i = 0; i < h->nreq && i < MAXREQ; i++)
		free(h->body[i]);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
}

static int
hook_count(struct hook *h)
{
	int n;

	pthread_mutex_lock(&h->mu);
	n = h->nreq;
	pthread_mutex_unlock(&h->mu);
	return n;
}

/* Waits until the receiver has n requests; 0, or -1 after WAIT_S. */
static int
hook_wait(struct hook *h, int n, double secs)
{
	double until = s_now() + secs;

	while (hook_count(h) < n) {
		if (s_now() > until)
			return -1;
		s_msleep(10);
	}
	return 0;
}

static json_t *
hook_json(struct hook *h, int i)
{
	json_error_t e;
	json_t *j;

	assert_true(i < hook_count(h));
	j = json_loads(h->body[i], 0, &e);
	if (j == NULL)
		print_error("body %d: %s: %s\n", i, e.text, h->body[i]);
	assert_non_null(j);
	return j;
}

/* ---- syslog receivers ---- */

static int
s_udp_listen(int *port)
{
	struct sockaddr_in sin = {0};
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_int_not_equal(fd, -1);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* One datagram (NUL-terminated), or -1 when none came within ms. */
static int
s_dgram(int fd, char *buf, size_t len, int ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	ssize_t r;

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	if ((r = recv(fd, buf, len - 1, 0)) < 0)
		return -1;
	buf[r] = '\0';
	return (int)r;
}

static int
s_tcp_listen(int *port)
{
	struct sockaddr_in sin = {0};
	socklen_t sl = sizeof(sin);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_int_not_equal(fd, -1);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
s_accept(int lfd, int ms)
{
	struct pollfd pfd = {lfd, POLLIN, 0};

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* A stream with RFC 6587 octet-counted frames. */
struct frames {
	int fd;
	char buf[65536];
	size_t len;
};

/* The next frame's message into out (NUL-terminated); its length, or -1
 * when none came within ms or the framing is wrong. */
static int
s_frame(struct frames *f, char *out, size_t outlen, int ms)
{
	double until = s_now() + ms / 1000.0;

	for (;;) {
		char *sp = memchr(f->buf, ' ', f->len);

		if (sp != NULL) {
			char *end;
			long n = strtol(f->buf, &end, 10);
			size_t hdr = (size_t)(sp - f->buf) + 1;

			if (end != sp || n <= 0 || (size_t)n >= outlen)
				return -1;
			if (f->len >= hdr + (size_t)n) {
				memcpy(out, f->buf + hdr, (size_t)n);
				out[n] = '\0';
				memmove(f->buf, f->buf + hdr + n,
				    f->len - hdr - (size_t)n);
				f->len -= hdr + (size_t)n;
				return (int)n;
			}
		}
		{
			struct pollfd pfd = {f->fd, POLLIN, 0};
			int left = (int)((until - s_now()) * 1000);
			ssize_t r;

			if (left <= 0 || poll(&pfd, 1, left) != 1)
				return -1;
			r = recv(
			    f->fd, f->buf + f->len, sizeof(f->buf) - f->len, 0);
			if (r <= 0)
				return -1;
			f->len += (size_t)r;
		}
	}
}

/* ---- fixture ---- */

struct t {
	struct pgschema db;
	struct hook hook;
	struct notify *n;
	int udp, udp_port;
};

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	struct store *st;
	char err[512];

	if (t == NULL)
		return -1;
	*state = t;
	t->udp = -1;
	if (pgschema_open(&t->db, fx.conninfo, "notify_test") == -1)
		return -1;
	/* The store applies the migrations, 003_incidents.sql among them. */
	if ((st = store_open(t->db.conninfo, fx.sqldir, err, sizeof(err))) ==
	    NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	store_close(&st);
	if (hook_start(&t->hook, NULL, NULL) == -1) {
		print_error("webhook receiver did not start\n");
		return -1;
	}
	t->udp = s_udp_listen(&t->udp_port);
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t == NULL)
		return 0;
	notify_stop(&t->n);
	hook_stop(&t->hook);
	if (t->udp != -1)
		close(t->udp);
	pgschema_close(&t->db);
	free(t);
	return 0;
}

/* Options for both sinks on this test's receivers; tests change them. */
static struct notify_opts
s_opts(struct t *t, int webhook, int syslog)
{
	static char url[128], target[128];
	struct notify_opts o = {0};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", t->hook.port);
	snprintf(target, sizeof(target), "udp://127.0.0.1:%d", t->udp_port);
	o.conninfo = t->db.conninfo;
	o.webhook_url = webhook ? url : NULL;
	o.webhook_timeout_s = 5;
	o.webhook_token = TOKEN;
	o.syslog = syslog ? target : NULL;
	o.syslog_format = NOTIFY_SYSLOG_RFC5424;
	o.syslog_facility = FACILITY;
	o.hostname = HOSTNAME;
	o.poll_ms = 50;
	o.external_url = EXTERNAL;
	return o;
}

static void
s_start(struct t *t, const struct notify_opts *o)
{
	char err[512] = "";

	t->n = notify_start(o, err, sizeof(err));
	if (t->n == NULL)
		print_error("notify_start: %s\n", err);
	assert_non_null(t->n);
}

/* Waits until query (a boolean) is true; fails the test after secs. */
static void
s_wait_sql(struct t *t, const char *query, double secs)
{
	double until = s_now() + secs;

	while (strcmp(q(t, "%s", query), "t") != 0) {
		if (s_now() > until) {
			print_error("timed out waiting for: %s\n", query);
			fail();
		}
		s_msleep(10);
	}
}

/* The sink's cursor row exists: events inserted from now on are its. */
static void
s_wait_cursor(struct t *t, const char *sink)
{
	char query[256];

	snprintf(query, sizeof(query),
	    "SELECT count(*) = 1 FROM notify_cursors WHERE sink = '%s'", sink);
	s_wait_sql(t, query, WAIT_S);
}

static void
s_wait_delivered(struct t *t, const char *sink, long event_id)
{
	char query[256];

	snprintf(query, sizeof(query),
	    "SELECT last_event_id >= %ld FROM notify_cursors WHERE sink = "
	    "'%s'",
	    event_id, sink);
	s_wait_sql(t, query, WAIT_S);
}

static long
s_incident(struct t *t, const char *domain, const char *code,
    const char *subject, const char *severity, const char *stage,
    const char *detail)
{
	char stagebuf[32];

	if (stage != NULL)
		snprintf(stagebuf, sizeof(stagebuf), "'%s'", stage);
	else
		snprintf(stagebuf, sizeof(stagebuf), "NULL");
	return strtol(q(t,
			  "INSERT INTO incidents (domain, code, subject, "
			  "severity, stage, detail, vantages, first_seen, "
			  "last_seen) VALUES ('%s', '%s', '%s', '%s', %s, "
			  "'%s', '{eu-1,us-1}', '2024-05-01T10:00:00Z', "
			  "now()) RETURNING id",
			  domain, code, subject, severity, stagebuf, detail),
	    NULL, 10);
}

static long
s_event(struct t *t, long incident, const char *kind, const char *severity,
    const char *stage)
{
	char stagebuf[32];

	if (stage != NULL)
		snprintf(stagebuf, sizeof(stagebuf), "'%s'", stage);
	else
		snprintf(stagebuf, sizeof(stagebuf), "NULL");
	if (strcmp(kind, "resolve") == 0)
		sql(t,
		    "UPDATE incidents SET state = 'resolved', resolved_at = "
		    "'2024-05-02T11:00:00Z' WHERE id = %ld",
		    incident);
	return strtol(q(t,
			  "INSERT INTO incident_events (incident_id, kind, "
			  "severity, stage) VALUES (%ld, '%s', '%s', %s) "
			  "RETURNING id",
			  incident, kind, severity, stagebuf),
	    NULL, 10);
}

static const char *
s_jget(json_t *obj, const char *path)
{
	char buf[256], *save = NULL, *part;
	json_t *cur = obj;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part != NULL;
	     part = strtok_r(NULL, ".", &save)) {
		if (json_is_array(cur))
			cur = json_array_get(cur, strtoul(part, NULL, 10));
		else
			cur = json_object_get(cur, part);
		if (cur == NULL)
			return NULL;
	}
	return json_string_value(cur);
}

/* ---- tests ---- */

/*
 * Five events of two incidents reach the webhook once each, in id order,
 * as Alertmanager envelopes with every field a receiver reads.
 */
static void
test_webhook_alertmanager(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 0);
	struct notify_counters c;
	long a, b, ev[5];
	char want[128];
	json_t *j, *alert;
	int i;

	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	assert_int_equal(qn(t, "SELECT last_event_id FROM notify_cursors"), 0);

	a = s_incident(t, "example.com", "CERT_EXPIRING", "mx1.example.com",
	    "warning", "30d", "expires in 29 days");
	b = s_incident(t, "", "AGENT_SILENT", "eu-1", "error", NULL,
	    "no result for 3 intervals");
	ev[0] = s_event(t, a, "open", "warning", "30d");
	ev[1] = s_event(t, b, "open", "error", NULL);
	ev[2] = s_event(t, a, "escalate", "error", "7d");
	sql(t,
	    "UPDATE incidents SET acked_at = now(), acked_by = 'alice', "
	    "ack_note = 'on it' WHERE id = %ld",
	    b);
	ev[3] = s_event(t, b, "ack", "error", NULL);
	ev[4] = s_event(t, a, "resolve", "error", "7d");
	notify_wake(t->n);

	assert_int_equal(hook_wait(&t->hook, 5, WAIT_S), 0);
	s_wait_delivered(t, "webhook", ev[4]);
	s_msleep(300); /* nothing comes twice */
	assert_int_equal(hook_count(&t->hook), 5);

	for (i = 0; i < 5; i++) {
		j = hook_json(&t->hook, i);
		snprintf(want, sizeof(want), "%ld", ev[i]);
		assert_string_equal(
		    s_jget(j, "alerts.0.annotations.event_id"), want);
		assert_string_equal(s_jget(j, "version"), "4");
		assert_string_equal(s_jget(j, "receiver"), "mtasts-watch");
		assert_string_equal(s_jget(j, "externalURL"), EXTERNAL);
		assert_int_equal(
		    json_integer_value(json_object_get(j, "truncatedAlerts")),
		    0);
		assert_int_equal(
		    json_array_size(json_object_get(j, "alerts")), 1);
		alert = json_array_get(json_object_get(j, "alerts"), 0);
		/* One alert: the common labels are its labels. */
		assert_true(json_equal(json_object_get(j, "commonLabels"),
		    json_object_get(alert, "labels")));
		assert_true(json_equal(json_object_get(j, "commonAnnotations"),
		    json_object_get(alert, "annotations")));
		assert_string_equal(
		    s_jget(j, "status"), s_jget(alert, "status"));
		assert_int_equal(strlen(s_jget(alert, "fingerprint")), 16);
		snprintf(want, sizeof(want), EXTERNAL "/incidents/%ld",
		    i == 1 || i == 3 ? b : a);
		assert_string_equal(s_jget(alert, "generatorURL"), want);
		assert_string_equal(
		    s_jget(alert, "startsAt"), "2024-05-01T10:00:00Z");
		json_decref(j);
	}

	/* The open of a, field by field. */
	j = hook_json(&t->hook, 0);
	assert_string_equal(s_jget(j, "status"), "firing");
	assert_string_equal(
	    s_jget(j, "alerts.0.labels.alertname"), "CERT_EXPIRING");
	assert_string_equal(s_jget(j, "alerts.0.labels.domain"), "example.com");
	assert_string_equal(
	    s_jget(j, "alerts.0.labels.subject"), "mx1.example.com");
	assert_string_equal(s_jget(j, "alerts.0.labels.severity"), "warning");
	assert_string_equal(s_jget(j, "alerts.0.labels.stage"), "30d");
	assert_string_equal(s_jget(j, "alerts.0.labels.vantages"), "eu-1,us-1");
	assert_string_equal(s_jget(j, "alerts.0.annotations.summary"),
	    "CERT_EXPIRING opened for example.com (mx1.example.com)");
	assert_string_equal(s_jget(j, "alerts.0.annotations.description"),
	    "expires in 29 days");
	assert_string_equal(s_jget(j, "alerts.0.annotations.event"), "open");
	assert_string_equal(
	    s_jget(j, "alerts.0.endsAt"), "0001-01-01T00:00:00Z");
	assert_string_equal(
	    s_jget(j, "groupLabels.alertname"), "CERT_EXPIRING");
	assert_string_equal(s_jget(j, "groupLabels.domain"), "example.com");
	assert_string_equal(s_jget(j, "groupKey"),
	    "{}:{alertname=\"CERT_EXPIRING\", domain=\"example.com\"}");
	snprintf(want, sizeof(want), "%s", s_jget(j, "alerts.0.fingerprint"));
	json_decref(j);

	/* The escalation: new severity and stage, same fingerprint. */
	j = hook_json(&t->hook, 2);
	assert_string_equal(s_jget(j, "alerts.0.labels.severity"), "error");
	assert_string_equal(s_jget(j, "alerts.0.labels.stage"), "7d");
	assert_string_equal(
	    s_jget(j, "alerts.0.annotations.event"), "escalate");
	assert_string_equal(s_jget(j, "alerts.0.fingerprint"), want);
	json_decref(j);

	/* The resolve: status resolved with a real endsAt. */
	j = hook_json(&t->hook, 4);
	assert_string_equal(s_jget(j, "status"), "resolved");
	assert_string_equal(s_jget(j, "alerts.0.status"), "resolved");
	assert_string_equal(
	    s_jget(j, "alerts.0.endsAt"), "2024-05-02T11:00:00Z");
	assert_string_equal(s_jget(j, "alerts.0.fingerprint"), want);
	json_decref(j);

	/* The agent-level incident: no domain label, another fingerprint,
	 * and the ack carries who and why. */
	j = hook_json(&t->hook, 1);
	assert_null(s_jget(j, "alerts.0.labels.domain"));
	assert_null(s_jget(j, "alerts.0.labels.stage"));
	assert_string_equal(s_jget(j, "alerts.0.labels.subject"), "eu-1");
	assert_string_not_equal(s_jget(j, "alerts.0.fingerprint"), want);
	json_decref(j);
	j = hook_json(&t->hook, 3);
	assert_string_equal(s_jget(j, "status"), "firing");
	assert_string_equal(s_jget(j, "alerts.0.annotations.event"), "ack");
	assert_string_equal(
	    s_jget(j, "alerts.0.annotations.acked_by"), "alice");
	assert_string_equal(
	    s_jget(j, "alerts.0.annotations.ack_note"), "on it");
	json_decref(j);

	assert_string_equal(t->hook.auth, "Bearer " TOKEN);
	assert_string_equal(t->hook.ctype, "application/json");
	assert_int_equal(
	    qn(t, "SELECT delivered FROM notify_cursors WHERE sink = "
		  "'webhook'"),
	    5);
	assert_string_equal(q(t, "SELECT attempts::text || coalesce("
				 "last_error, '-') FROM notify_cursors"),
	    "0-");
	notify_counters(t->n, &c);
	assert_int_equal(c.enabled[NOTIFY_SINK_WEBHOOK], 1);
	assert_int_equal(c.enabled[NOTIFY_SINK_SYSLOG], 0);
	assert_int_equal(c.delivered[NOTIFY_SINK_WEBHOOK], 5);
	assert_int_equal(c.failed[NOTIFY_SINK_WEBHOOK], 0);
	assert_int_equal(c.db_up[NOTIFY_SINK_WEBHOOK], 1);
	/* The syslog sink never ran: it has no cursor. */
	assert_int_equal(qn(t, "SELECT count(*) FROM notify_cursors"), 1);
}

/* RFC 5424 over UDP: PRI, header, structured data, BOM, order, and the
 * 2048-byte bound with fields far too long for it. */
static void
test_syslog_udp(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 0, 1);
	char buf[65536], want[512];
	long a, b, ev[4];
	int i, n;

	s_start(t, &o);
	s_wait_cursor(t, "syslog");
	a = s_incident(t, "example.com", "VANTAGE_POLICY_MISMATCH", "policy",
	    "warning", NULL, "eu-1 saw another policy");
	ev[0] = s_event(t, a, "open", "warning", NULL);
	ev[1] = s_event(t, a, "escalate", "error", NULL);
	ev[2] = s_event(t, a, "resolve", "error", NULL);
	b = strtol(q(t, "INSERT INTO incidents (domain, code, subject, "
			"severity, detail) VALUES ('example.org', "
			"'POLICY_FETCH_FAILED', repeat('\"', 900), 'error', "
			"repeat('x', 6000)) RETURNING id"),
	    NULL, 10);
	ev[3] = s_event(t, b, "open", "error", NULL);
	notify_wake(t->n);

	for (i = 0; i < 4; i++) {
		static const char *const pri[] = {
		    "<132>1 ", "<131>1 ", "<133>1 ", "<131>1 "};
		static const char *const kind[] = {
		    "open", "escalate", "resolve", "open"};

		n = s_dgram(t->udp, buf, sizeof(buf), (int)(WAIT_S * 1000));
		assert_true(n > 0);
		assert_true(n <= NOTIFY_SYSLOG_UDP_MAX);
		assert_memory_equal(buf, pri[i], strlen(pri[i]));
		snprintf(want, sizeof(want),
		    " " HOSTNAME " mtasts-collector %ld %s [mtastswatch@32473 "
		    "id=\"%ld\" event=\"%s\" ",
		    (long)getpid(), kind[i], i < 3 ? a : b, kind[i]);
		assert_non_null(strstr(buf, want));
		assert_non_null(strstr(buf, "] \xef\xbb\xbf"));
	}
	/* The long one: still whole structured data, cut free text. */
	assert_non_null(strstr(buf, "subject=\"\\\"\\\"\\\""));
	assert_non_null(strstr(buf, "\"] \xef\xbb\xbfPOLICY_FETCH_FAILED "));
	assert_non_null(strstr(buf, ": xxxx"));
	assert_int_equal(s_dgram(t->udp, buf, sizeof(buf), 300), -1);
	s_wait_delivered(t, "syslog", ev[3]);
	assert_int_equal(
	    qn(t, "SELECT delivered FROM notify_cursors WHERE sink = 'syslog'"),
	    4);
}

/* CEF in RFC 5424 over TCP with octet counting; a receiver that closes
 * the connection gets the next event on a new one. */
static void
test_syslog_tcp_cef(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 0, 1);
	static struct frames f;
	char target[64], msg[16384], want[256];
	int lfd, port, n;
	long a, ev[3];

	lfd = s_tcp_listen(&port);
	snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
	o.syslog = target;
	o.syslog_format = NOTIFY_SYSLOG_CEF;
	o.syslog_facility = 1;
	s_start(t, &o);
	s_wait_cursor(t, "syslog");
	a = s_incident(t, "example.com", "MX_CERT_INVALID", "mx1.example.com",
	    "error", NULL, "chain|does=not\\verify");
	ev[0] = s_event(t, a, "open", "error", NULL);
	ev[1] = s_event(t, a, "resolve", "error", NULL);
	notify_wake(t->n);

	memset(&f, 0, sizeof(f));
	f.fd = s_accept(lfd, (int)(WAIT_S * 1000));
	assert_int_not_equal(f.fd, -1);
	n = s_frame(&f, msg, sizeof(msg), (int)(WAIT_S * 1000));
	assert_true(n > 0);
	assert_memory_equal(msg, "<11>1 ", 6);
	snprintf(want, sizeof(want),
	    " " HOSTNAME " mtasts-collector %ld open - CEF:0|mtasts-watch|"
	    "mtasts-collector|0.1|MX_CERT_INVALID|MX_CERT_INVALID opened for "
	    "example.com|9|",
	    (long)getpid());
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, " msg=chain|does\\=not\\\\verify"));
	snprintf(want, sizeof(want), " externalId=%ld ", a);
	assert_non_null(strstr(msg, want));
	n = s_frame(&f, msg, sizeof(msg), (int)(WAIT_S * 1000));
	assert_true(n > 0);
	assert_memory_equal(msg, "<13>1 ", 6);
	assert_non_null(strstr(msg, "|1|"));
	assert_non_null(strstr(msg, " act=resolve outcome=resolved "));
	s_wait_delivered(t, "syslog", ev[1]);

	/* The receiver goes away and comes back. */
	close(f.fd);
	s_msleep(100);
	ev[2] = s_event(t, a, "ack", "error", NULL);
	notify_wake(t->n);
	memset(&f, 0, sizeof(f));
	f.fd = s_accept(lfd, (int)(WAIT_S * 1000));
	assert_int_not_equal(f.fd, -1);
	n = s_frame(&f, msg, sizeof(msg), (int)(WAIT_S * 1000));
	assert_true(n > 0);
	assert_non_null(strstr(msg, " act=ack "));
	s_wait_delivered(t, "syslog", ev[2]);
	close(f.fd);
	close(lfd);
}

/* unix:/PATH, a datagram socket like /dev/log. */
static void
test_syslog_unix(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 0, 1);
	struct sockaddr_un sun = {0};
	char target[128], buf[8192];
	long a;
	int fd;

	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/ntf-log-%ld.sock",
	    (long)getpid());
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	snprintf(target, sizeof(target), "unix:%s", sun.sun_path);
	o.syslog = target;
	s_start(t, &o);
	s_wait_cursor(t, "syslog");
	a = s_incident(
	    t, "example.net", "TLSRPT_MISSING", "", "info", NULL, "");
	s_event(t, a, "open", "info", NULL);
	notify_wake(t->n);
	assert_true(s_dgram(fd, buf, sizeof(buf), (int)(WAIT_S * 1000)) > 0);
	assert_memory_equal(buf, "<134>1 ", 7);
	assert_non_null(strstr(buf, "code=\"TLSRPT_MISSING\""));
	close(fd);
	unlink(sun.sun_path);
}

/* Cursor row of sink: attempts, or -1 when there is none. */
static long
s_attempts(struct t *t, const char *sink)
{
	char query[128];
	const char *v;

	snprintf(query, sizeof(query),
	    "SELECT attempts FROM notify_cursors WHERE sink = '%s'", sink);
	v = q(t, "%s", query);
	return strcmp(v, "<none>") == 0 ? -1 : strtol(v, NULL, 10);
}

/*
 * 500, 500, then 200: the event is posted three times, 1 s then 2 s
 * apart, the backoff is visible in notify_cursors, and it is delivered
 * once.
 */
static void
test_webhook_retry(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 0);
	struct notify_counters c;
	double until;
	long a, ev, seen_max = 0;
	int saw1 = 0, saw2 = 0;
	char err[256] = "";
	json_t *j;
	int i;

	t->hook.fail_first = 2;
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	a = s_incident(t, "example.com", "POLICY_FETCH_FAILED", "policy",
	    "error", NULL, "HTTP 503");
	ev = s_event(t, a, "open", "error", NULL);
	notify_wake(t->n);

	until = s_now() + WAIT_S;
	while (hook_count(&t->hook) < 3 && s_now() < until) {
		long at = s_attempts(t, "webhook");

		if (at == 1 && !saw1) {
			saw1 = 1;
			snprintf(err, sizeof(err), "%s",
			    q(t, "SELECT last_error FROM notify_cursors"));
			/* Retried no earlier than 1 s from now. */
			assert_string_equal(
			    q(t, "SELECT next_attempt > now() + interval "
				 "'500 ms' FROM notify_cursors"),
			    "t");
		}
		if (at == 2)
			saw2 = 1;
		if (at > seen_max)
			seen_max = at;
		s_msleep(20);
	}
	assert_int_equal(hook_count(&t->hook), 3);
	s_wait_delivered(t, "webhook", ev);
	assert_true(saw1);
	assert_true(saw2);
	assert_int_equal(seen_max, 2);
	{
		char want[64];

		snprintf(want, sizeof(want), "event %ld: HTTP 500", ev);
		assert_string_equal(err, want);
	}
	/* Backoff: 1 s, then 2 s (the poll adds a little). */
	assert_true(t->hook.at[1] - t->hook.at[0] >= 0.95);
	assert_true(t->hook.at[1] - t->hook.at[0] < 1.9);
	assert_true(t->hook.at[2] - t->hook.at[1] >= 1.95);
	assert_true(t->hook.at[2] - t->hook.at[1] < 3.5);
	for (i = 0; i < 3; i++) {
		char want[32];

		j = hook_json(&t->hook, i);
		snprintf(want, sizeof(want), "%ld", ev);
		assert_string_equal(
		    s_jget(j, "alerts.0.annotations.event_id"), want);
		json_decref(j);
	}
	assert_string_equal(q(t, "SELECT attempts || ' ' || coalesce("
				 "last_error, '-') || ' ' || delivered "
				 "FROM notify_cursors"),
	    "0 - 1");
	s_msleep(200);
	assert_int_equal(hook_count(&t->hook), 3);
	notify_counters(t->n, &c);
	assert_int_equal(c.delivered[NOTIFY_SINK_WEBHOOK], 1);
	assert_int_equal(c.failed[NOTIFY_SINK_WEBHOOK], 2);
	assert_int_equal(c.attempts[NOTIFY_SINK_WEBHOOK], 0);
}

/* A 2xx with a body far past NOTIFY_RESPONSE_MAX is still a delivery
 * (read up to the bound, then cut). */
static void
test_webhook_big_reply(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 0);
	long a, ev;

	t->hook.big = 1;
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	a = s_incident(t, "example.com", "X", "s", "info", NULL, "");
	ev = s_event(t, a, "open", "info", NULL);
	notify_wake(t->n);
	s_wait_delivered(t, "webhook", ev);
	assert_int_equal(hook_count(&t->hook), 1);
	assert_int_equal(s_attempts(t, "webhook"), 0);
}

/*
 * A backlog of 250 events (more than one batch of NOTIFY_BATCH) reaches
 * both sinks complete and in order; prints the rate.
 */
static void
test_backlog(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 1);
	char buf[8192], want[64];
	long a, first, last, id;
	double t0, took, until;
	int i, got = 0;
	json_t *j;

	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	s_wait_cursor(t, "syslog");
	a = s_incident(t, "example.com", "X", "s", "info", NULL, "");
	t0 = s_now();
	first = strtol(q(t,
			   "WITH ins AS (INSERT INTO incident_events "
			   "(incident_id, kind, severity) SELECT %ld, "
			   "'escalate', 'warning' FROM generate_series(1, "
			   "250) RETURNING id) SELECT min(id) FROM ins",
			   a),
	    NULL, 10);
	last = first + 249;
	notify_wake(t->n);
	/* Read the datagrams as they come: 250 do not fit in a default
	 * socket buffer. */
	until = s_now() + 30;
	while (got < 250 && s_now() < until) {
		if (s_dgram(t->udp, buf, sizeof(buf), 1000) <= 0)
			continue;
		snprintf(want, sizeof(want), "id=\"%ld\"", a);
		assert_non_null(strstr(buf, want));
		got++;
	}
	assert_int_equal(got, 250);
	s_wait_delivered(t, "syslog", last);
	s_wait_delivered(t, "webhook", last);
	took = s_now() - t0;
	print_message("backlog: 250 events to both sinks in %.2f s\n", took);
	assert_int_equal(hook_count(&t->hook), 250);
	for (i = 0; i < 250; i++) {
		j = hook_json(&t->hook, i);
		id = strtol(
		    s_jget(j, "alerts.0.annotations.event_id"), NULL, 10);
		assert_int_equal(id, first + i);
		json_decref(j);
	}
	assert_int_equal(s_dgram(t->udp, buf, sizeof(buf), 200), -1);
}

/*
 * A sink seen for the first time starts after the newest event; one that
 * was stopped resumes where it was.
 */
static void
test_no_replay(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 1);
	char buf[8192], want[64];
	long a, old, ev, more[2];
	json_t *j;
	int i;

	a = s_incident(
	    t, "example.com", "STS_ID_CHANGED", "sts", "info", NULL, "");
	s_event(t, a, "open", "info", NULL);
	s_event(t, a, "resolve", "info", NULL);
	old = s_event(t, a, "ack", "info", NULL);

	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	s_wait_cursor(t, "syslog");
	assert_int_equal(qn(t, "SELECT count(*) FROM notify_cursors WHERE "
			       "last_event_id = (SELECT max(id) FROM "
			       "incident_events)"),
	    2);
	(void)old;
	a = s_incident(
	    t, "example.com", "STS_ID_CHANGED", "sts", "info", NULL, "");
	ev = s_event(t, a, "open", "info", NULL);
	notify_wake(t->n);
	s_wait_delivered(t, "webhook", ev);
	s_wait_delivered(t, "syslog", ev);
	assert_int_equal(hook_count(&t->hook), 1);
	j = hook_json(&t->hook, 0);
	snprintf(want, sizeof(want), "%ld", ev);
	assert_string_equal(s_jget(j, "alerts.0.annotations.event_id"), want);
	json_decref(j);
	assert_true(s_dgram(t->udp, buf, sizeof(buf), 1000) > 0);
	assert_int_equal(s_dgram(t->udp, buf, sizeof(buf), 200), -1);

	/* Stopped: what happens meanwhile is delivered after the start. */
	notify_stop(&t->n);
	more[0] = s_event(t, a, "escalate", "warning", NULL);
	more[1] = s_event(t, a, "resolve", "warning", NULL);
	s_start(t, &o);
	s_wait_delivered(t, "webhook", more[1]);
	s_wait_delivered(t, "syslog", more[1]);
	assert_int_equal(hook_count(&t->hook), 3);
	for (i = 0; i < 2; i++) {
		j = hook_json(&t->hook, 1 + i);
		snprintf(want, sizeof(want), "%ld", more[i]);
		assert_string_equal(
		    s_jget(j, "alerts.0.annotations.event_id"), want);
		json_decref(j);
		assert_true(s_dgram(t->udp, buf, sizeof(buf), 1000) > 0);
		assert_non_null(
		    strstr(buf, i == 0 ? " escalate [" : " resolve ["));
	}
}

/*
 * A webhook that never answers: syslog still gets everything, the
 * webhook cursor stays, and notify_stop returns within a second.
 */
static void
test_hanging_webhook(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 1);
	char buf[8192];
	double t0, took;
	long a, ev[3];
	int i;

	t->hook.hang = 1;
	o.webhook_timeout_s = 60;
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	s_wait_cursor(t, "syslog");
	a = s_incident(
	    t, "example.com", "MX_STARTTLS_MISSING", "mx1", "error", NULL, "");
	ev[0] = s_event(t, a, "open", "error", NULL);
	assert_int_equal(hook_wait(&t->hook, 1, WAIT_S), 0);
	/* The webhook now hangs on ev[0]; the rest comes later. */
	ev[1] = s_event(t, a, "escalate", "error", NULL);
	ev[2] = s_event(t, a, "resolve", "error", NULL);
	notify_wake(t->n);
	for (i = 0; i < 3; i++)
		assert_true(s_dgram(t->udp, buf, sizeof(buf),
				(int)(WAIT_S * 1000)) > 0);
	s_wait_delivered(t, "syslog", ev[2]);
	assert_int_equal(hook_count(&t->hook), 1);
	assert_string_equal(q(t,
				"SELECT last_event_id < %ld FROM "
				"notify_cursors WHERE sink = 'webhook'",
				ev[0]),
	    "t");

	t0 = s_now();
	notify_stop(&t->n);
	took = s_now() - t0;
	print_message("notify_stop with a hanging webhook: %.3f s\n", took);
	assert_true(took < 1.0);
	assert_null(t->n);
}

/* Runs DIR/restart.sh, which pg_start.sh wrote, and waits for it. */
static int
s_restart_server(void)
{
	char path[1024];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/restart.sh", fx.pgdir);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The database restarts between events: both sinks reconnect and every
 * event arrives, in order, once. */
static void
test_database_restart(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 1);
	struct notify_counters c;
	char buf[8192], want[64];
	long a, ev[4];
	json_t *j;
	int i;

	if (fx.pgdir == NULL || fx.pgdir[0] == '\0') {
		print_message("MTASTS_TEST_PGDIR unset: restart not tested\n");
		skip();
	}
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	s_wait_cursor(t, "syslog");
	a = s_incident(
	    t, "example.com", "CERT_EXPIRING", "mx1", "warning", "30d", "");
	ev[0] = s_event(t, a, "open", "warning", "30d");
	ev[1] = s_event(t, a, "escalate", "warning", "14d");
	notify_wake(t->n);
	s_wait_delivered(t, "webhook", ev[1]);
	s_wait_delivered(t, "syslog", ev[1]);

	assert_int_equal(s_restart_server(), 0);
	PQreset(t->db.admin);
	assert_int_equal(PQstatus(t->db.admin), CONNECTION_OK);
	pgschema_sql(&t->db, "SET search_path = %s", t->db.schema);
	ev[2] = s_event(t, a, "escalate", "error", "7d");
	ev[3] = s_event(t, a, "resolve", "error", "7d");
	s_wait_delivered(t, "webhook", ev[3]);
	s_wait_delivered(t, "syslog", ev[3]);
	s_msleep(200);

	assert_int_equal(hook_count(&t->hook), 4);
	for (i = 0; i < 4; i++) {
		j = hook_json(&t->hook, i);
		snprintf(want, sizeof(want), "%ld", ev[i]);
		assert_string_equal(
		    s_jget(j, "alerts.0.annotations.event_id"), want);
		json_decref(j);
		assert_true(s_dgram(t->udp, buf, sizeof(buf), 1000) > 0);
	}
	assert_int_equal(s_dgram(t->udp, buf, sizeof(buf), 200), -1);
	notify_counters(t->n, &c);
	assert_int_equal(c.db_up[NOTIFY_SINK_WEBHOOK], 1);
	assert_int_equal(c.db_up[NOTIFY_SINK_SYSLOG], 1);
	assert_int_equal(c.delivered[NOTIFY_SINK_SYSLOG], 4);
}

/*
 * An event whose transaction commits after a later one: the sink waits
 * at the hole instead of skipping it; a hole that never fills (rolled
 * back) is passed after gap_wait_ms.
 */
static void
test_commit_order_gap(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 0);
	PGconn *other;
	PGresult *res;
	char want[64], query[256];
	long a, late, early, gone, after;
	double t0;
	json_t *j;

	o.gap_wait_ms = 1500;
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	a = s_incident(t, "example.com", "X", "s", "info", NULL, "");

	other = PQconnectdb(t->db.conninfo);
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	PQclear(PQexec(other, "BEGIN"));
	snprintf(query, sizeof(query),
	    "INSERT INTO incident_events (incident_id, kind, severity) "
	    "VALUES (%ld, 'open', 'info') RETURNING id",
	    a);
	res = PQexec(other, query);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	early = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	late = s_event(t, a, "ack", "info", NULL);
	assert_int_equal(late, early + 1);
	notify_wake(t->n);
	s_msleep(700);
	assert_int_equal(hook_count(&t->hook), 0);
	PQclear(PQexec(other, "COMMIT"));
	notify_wake(t->n);
	assert_int_equal(hook_wait(&t->hook, 2, WAIT_S), 0);
	j = hook_json(&t->hook, 0);
	snprintf(want, sizeof(want), "%ld", early);
	assert_string_equal(s_jget(j, "alerts.0.annotations.event_id"), want);
	json_decref(j);
	j = hook_json(&t->hook, 1);
	snprintf(want, sizeof(want), "%ld", late);
	assert_string_equal(s_jget(j, "alerts.0.annotations.event_id"), want);
	json_decref(j);

	/* A hole for good. */
	PQclear(PQexec(other, "BEGIN"));
	res = PQexec(other, query);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	gone = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQclear(PQexec(other, "ROLLBACK"));
	PQfinish(other);
	t0 = s_now();
	after = s_event(t, a, "resolve", "info", NULL);
	assert_int_equal(after, gone + 1);
	notify_wake(t->n);
	assert_int_equal(hook_wait(&t->hook, 3, WAIT_S), 0);
	assert_true(s_now() - t0 >= 1.4);
	j = hook_json(&t->hook, 2);
	snprintf(want, sizeof(want), "%ld", after);
	assert_string_equal(s_jget(j, "alerts.0.annotations.event_id"), want);
	json_decref(j);
}

/* PEM of a key or certificate, malloc'd. */
static char *
s_pem(EVP_PKEY *key, X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	assert_non_null(b);
	if (key != NULL)
		assert_int_equal(
		    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL),
		    1);
	else
		assert_int_equal(PEM_write_bio_X509(b, x), 1);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	assert_non_null(out);
	BIO_free(b);
	return out;
}

/*
 * HTTPS: with webhook_ca_file naming the receiver's private CA the event
 * is delivered; with the system store it is refused and retried, with
 * the certificate problem in last_error.
 */
static void
test_webhook_https(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 0);
	struct tc_opts co = {0};
	EVP_PKEY *cakey, *key;
	X509 *ca, *leaf;
	char *key_pem, *cert_pem, *ca_pem, url[128], capath[128];
	long a, ev[2];
	FILE *f;

	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		print_message("libmicrohttpd without TLS: https not tested\n");
		skip();
	}
	cakey = tc_key_ec("P-256");
	key = tc_key_ec("P-256");
	assert_non_null(cakey);
	assert_non_null(key);
	co.cn = "Notify Test CA";
	co.key = cakey;
	co.ca = 1;
	co.not_before = time(NULL) - 3600;
	co.not_after = time(NULL) + 86400;
	ca = tc_cert(&co);
	assert_non_null(ca);
	co.cn = "127.0.0.1";
	co.san = "IP:127.0.0.1";
	co.key = key;
	co.ca = 0;
	co.issuer = ca;
	co.issuer_key = cakey;
	co.serial = 2;
	leaf = tc_cert(&co);
	assert_non_null(leaf);
	key_pem = s_pem(key, NULL);
	cert_pem = s_pem(NULL, leaf);
	ca_pem = s_pem(NULL, ca);
	snprintf(capath, sizeof(capath), "/tmp/ntf-ca-%ld.pem", (long)getpid());
	f = fopen(capath, "w");
	assert_non_null(f);
	fputs(ca_pem, f);
	assert_int_equal(fclose(f), 0);

	hook_stop(&t->hook);
	memset(&t->hook, 0, sizeof(t->hook));
	assert_int_equal(hook_start(&t->hook, key_pem, cert_pem), 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hook", t->hook.port);
	o.webhook_url = url;
	o.webhook_ca_file = capath;
	s_start(t, &o);
	s_wait_cursor(t, "webhook");
	a = s_incident(t, "example.com", "X", "s", "info", NULL, "");
	ev[0] = s_event(t, a, "open", "info", NULL);
	notify_wake(t->n);
	s_wait_delivered(t, "webhook", ev[0]);
	assert_int_equal(hook_count(&t->hook), 1);
	notify_stop(&t->n);

	/* The same receiver is a stranger to the system store. */
	o.webhook_ca_file = NULL;
	s_start(t, &o);
	ev[1] = s_event(t, a, "resolve", "info", NULL);
	notify_wake(t->n);
	s_wait_sql(t,
	    "SELECT attempts >= 1 FROM notify_cursors WHERE sink = 'webhook'",
	    WAIT_S);
	assert_string_equal(
	    q(t, "SELECT last_error ~* 'certificate|SSL' FROM notify_cursors"),
	    "t");
	assert_int_equal(hook_count(&t->hook), 1);
	assert_true(qn(t, "SELECT last_event_id FROM notify_cursors") < ev[1]);

	unlink(capath);
	free(key_pem);
	free(cert_pem);
	free(ca_pem);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
}

/* A database that is not there: start works, stop is prompt. */
static void
test_database_down_stop(void **state)
{
	struct t *t = *state;
	struct notify_opts o = s_opts(t, 1, 1);
	struct notify_counters c;
	double t0;

	o.conninfo = "host=/nonexistent-ntf port=5 dbname=x user=x";
	s_start(t, &o);
	s_msleep(300);
	notify_counters(t->n, &c);
	assert_int_equal(c.db_up[NOTIFY_SINK_WEBHOOK], 0);
	assert_int_equal(c.db_up[NOTIFY_SINK_SYSLOG], 0);
	t0 = s_now();
	notify_stop(&t->n);
	assert_true(s_now() - t0 < 1.0);
	assert_int_equal(hook_count(&t->hook), 0);
}

static void
test_bad_options(void **state)
{
	struct t *t = *state;
	struct notify_opts o;
	struct notify_counters c;
	struct notify *n;
	char err[256];
	size_t i;
	static const char *const bad_urls[] = {
	    "ftp://127.0.0.1/", "127.0.0.1:80", "http://a b/", "http://x/\n"};
	static const char *const bad_targets[] = {"udp://127.0.0.1",
	    "udp://127.0.0.1:0", "udp://127.0.0.1:70000", "tcp://[::1:514",
	    "tcp://::1:514", "udp://:514", "syslog://127.0.0.1:514",
	    "unix:dev/log", "udp://127.0.0.1:5x4"};

	(void)state;
	for (i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		o = s_opts(t, 1, 0);
		o.webhook_url = bad_urls[i];
		err[0] = '\0';
		assert_null(notify_start(&o, err, sizeof(err)));
		assert_non_null(strstr(err, "webhook_url"));
	}
	for (i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
		o = s_opts(t, 0, 1);
		o.syslog = bad_targets[i];
		err[0] = '\0';
		n = notify_start(&o, err, sizeof(err));
		if (n != NULL)
			print_error("accepted %s\n", bad_targets[i]);
		assert_null(n);
		assert_non_null(strstr(err, "syslog"));
	}
	o = s_opts(t, 0, 1);
	o.syslog_facility = 24;
	assert_null(notify_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "syslog_facility"));
	o.syslog_facility = -1;
	assert_null(notify_start(&o, err, sizeof(err)));
	o = s_opts(t, 0, 1);
	o.syslog_format = (enum notify_syslog_format)7;
	assert_null(notify_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "syslog_format"));
	o = s_opts(t, 1, 0);
	o.webhook_timeout_s = NOTIFY_WEBHOOK_TIMEOUT_MAX + 1;
	assert_null(notify_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "webhook_timeout"));
	o = s_opts(t, 1, 0);
	o.webhook_ca_file = "/nonexistent/ca.pem";
	assert_null(notify_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "webhook_ca_file"));
	o = s_opts(t, 1, 0);
	o.webhook_token = "abc\r\nX-Evil: 1";
	assert_null(notify_start(&o, err, sizeof(err)));
	o = s_opts(t, 1, 1);
	o.conninfo = NULL;
	assert_null(notify_start(&o, err, sizeof(err)));
	assert_null(notify_start(NULL, err, sizeof(err)));

	/* No sink: a notifier that does nothing. */
	o = s_opts(t, 0, 0);
	n = notify_start(&o, err, sizeof(err));
	assert_non_null(n);
	notify_counters(n, &c);
	assert_int_equal(c.enabled[0] + c.enabled[1], 0);
	notify_wake(n);
	notify_stop(&n);
	assert_null(n);
	notify_stop(&n);
	notify_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_webhook_alertmanager, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syslog_udp, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_syslog_tcp_cef, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syslog_unix, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_webhook_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_webhook_big_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backlog, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_replay, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_hanging_webhook, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_database_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_commit_order_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_webhook_https, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_database_down_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};
	int rc;

	fx.conninfo = getenv("MTASTS_TEST_PG");
	fx.sqldir = getenv("MTASTS_TEST_SQLDIR");
	fx.pgdir = getenv("MTASTS_TEST_PGDIR");
	if (fx.sqldir == NULL || fx.sqldir[0] == '\0')
		fx.sqldir = "deploy/sql";
	if (fx.conninfo == NULL || fx.conninfo[0] == '\0') {
		fprintf(stderr,
		    "test_notify: MTASTS_TEST_PG is not set; start a cluster "
		    "first:\n  eval \"$(sh tests/lib/pg_start.sh "
		    "/tmp/pgn)\"\n");
		return 1;
	}
	if ((fx.big_reply = malloc(BIG_REPLY)) == NULL)
		return 1;
	memset(fx.big_reply, 'r', BIG_REPLY);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(fx.big_reply);
	return rc;
}
