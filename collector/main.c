/* main.c -- mtasts-collector: the daemon shell (args, config, signals, loop).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>
#include <curl/curl.h>

#include "collector_config.h"
#include "analysis.h"
#include "http_api.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "store_pg.h"
#include "wire.h"

#define ZAP_DOMAIN	 "mtasts-watch"
#define HEARTBEAT_IVL_MS 5000
#define HEARTBEAT_TTL_MS 15000
#define LINGER_MS	 1000 /* for the last Acks at shutdown */
#define DRAIN_MAX	 1000 /* frames read per wakeup, then timers */
#define STATS_EVERY_MS	 (300 * 1000)
#define RID_MAX		 255

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_hup;

struct collector {
	struct collector_config *cfg;
	struct keys_allow *allow;
	struct store *store;
	struct store *wstore; /* the ingest writer thread's own connection */
	struct ingest *ingest;
	zactor_t *auth;
	zsock_t *router;
	void *router_handle;	   /* the libzmq socket under router */
	struct http_api *http;	   /* NULL: [http] is not configured */
	struct notify *notify;	   /* its threads deliver incident events */
	struct analysis *analysis; /* compares rounds, folds incidents */
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: mtasts-collector --config FILE [-n] [-d]\n"
		    "       mtasts-collector keygen DIR\n"
		    "  -n  check the configuration and exit\n"
		    "  -d  debug logging\n");
}

static void
s_on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static int
s_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: zmq_poll must return so that the loop sees flags. */
	sa.sa_handler = s_on_signal;
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1)
		return -1;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		return -1;
	return 0;
}

/*
 * Threads that ZeroMQ and zauth start inherit the mask in force, so the
 * three signals are blocked while they are made: only the main thread
 * takes them, and its zmq_poll returns at once.
 */
static void
s_block(int block)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static int64_t
s_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return (int64_t)time(NULL) * 1000;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, returning early on SIGTERM/SIGINT. */
static void
s_nap(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	if (!got_term)
		nanosleep(&ts, NULL);
}

/*
 * The database must be reachable before the collector says it is ready;
 * until it is, retry with the same backoff as a lost connection.
 */
static struct store *
s_store_open(const struct collector_config *cfg)
{
	int64_t backoff = INGEST_BACKOFF_MIN_MS;
	char err[512];
	struct store *st;

	while (!got_term) {
		if ((st = store_open(cfg->database, cfg->migrations, err,
			 sizeof(err))) != NULL)
			return st;
		for (char *p = err; *p != '\0'; p++)
			if (*p == '\n' || *p == '\t' || *p == '"')
				*p = ' ';
		log_warnx("database unavailable error=\"%s\" retry_ms=%" PRId64,
		    err, backoff);
		s_nap(backoff);
		backoff = backoff * 2 > INGEST_BACKOFF_MAX_MS
			      ? INGEST_BACKOFF_MAX_MS
			      : backoff * 2;
	}
	return NULL;
}

static void
s_ingest_config(const struct collector_config *cfg, struct ingest_config *ic)
{
	ic->interval_s = cfg->interval_s;
	ic->credit = cfg->credit;
	ic->batch = cfg->batch;
	ic->retention_days = cfg->retention_days;
}

/* The ingest send callback: never blocks (ZMQ_DONTWAIT, ROUTER_MANDATORY). */
static int
s_send(const void *rid, size_t rid_len, const unsigned char *buf, size_t len,
    void *arg)
{
	void *sock = arg;

	if (zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
		return -1;
	if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) == -1)
		return -1;
	return 0;
}

/* Tells zauth which certificates are allowed; 0 or -1. */
static int
s_auth_curve(zactor_t *auth, const char *dir)
{
	if (zstr_sendx(auth, "CURVE", dir, NULL) == -1)
		return -1;
	return zsock_wait(auth) == -1 ? -1 : 0;
}

/*
 * The HTTP API, the notifiers and the analysis run on threads of their
 * own with their own database connections, so neither a slow report, a
 * hanging webhook nor a long fold ever holds up ingest.  A failure to
 * start one is logged and leaves the collector running without it:
 * results matter more.  Bit flags name them for a reload.
 */
enum { SVC_HTTP = 1, SVC_NOTIFY = 2, SVC_ANALYSIS = 4, SVC_ALL = 7 };

static void
s_http_start(struct collector *c)
{
	const struct collector_config *cfg = c->cfg;
	struct http_api_opts ho = {0};
	char err[256];

	if (cfg->http_bind == NULL)
		return;
	ho.bind = cfg->http_bind;
	ho.conninfo = cfg->database;
	ho.token = cfg->http_token;
	ho.silent_after_s = 2L * cfg->interval_s;
	ho.notify = c->notify;
	if ((c->http = http_api_start(&ho, err, sizeof(err))) == NULL)
		log_warnx("http: event=start_failed bind=%s error=\"%s\"",
		    cfg->http_bind, err);
	else
		log_warnx("http: event=listening bind=%s port=%u",
		    cfg->http_bind, http_api_port(c->http));
}

static void
s_notify_start(struct collector *c)
{
	const struct collector_config *cfg = c->cfg;
	struct notify_opts no = {0};
	char err[256];

	no.conninfo = cfg->database;
	no.webhook_url = cfg->webhook_url;
	no.webhook_timeout_s = cfg->webhook_timeout_s;
	no.webhook_token = cfg->webhook_token;
	no.webhook_ca_file = cfg->webhook_ca_file;
	no.syslog = cfg->syslog;
	no.syslog_format =
	    cfg->syslog_format != NULL && strcmp(cfg->syslog_format, "cef") == 0
		? NOTIFY_SYSLOG_CEF
		: NOTIFY_SYSLOG_RFC5424;
	no.syslog_facility = cfg->syslog_facility;
	no.external_url = cfg->external_url;
	if ((c->notify = notify_start(&no, err, sizeof(err))) == NULL)
		log_warnx("notify: event=start_failed error=\"%s\"", err);
}

static void
s_analysis_start(struct collector *c)
{
	const struct collector_config *cfg = c->cfg;
	struct analysis_opts ao = {0};
	char err[256];

	ao.conninfo = cfg->database;
	ao.interval_s = cfg->interval_s;
	ao.quorum = cfg->quorum;
	ao.window_s = cfg->propagation_window_s;
	ao.notify = c->notify;
	if ((c->analysis = analysis_start(&ao, err, sizeof(err))) == NULL)
		log_warnx("analysis: event=start_failed error=\"%s\"", err);
}

static void
s_services_start(struct collector *c, int which)
{
	/* Signals stay with the main thread, whatever each module does. */
	s_block(1);
	if (which & SVC_NOTIFY)
		s_notify_start(c);
	if (which & SVC_HTTP)
		s_http_start(c);
	if (which & SVC_ANALYSIS)
		s_analysis_start(c);
	s_block(0);
}

static void
s_services_stop(struct collector *c, int which)
{
	/* The analysis wakes the notifiers: it goes first. */
	if (which & SVC_ANALYSIS)
		analysis_stop(&c->analysis);
	if (which & SVC_HTTP)
		http_api_stop(&c->http);
	if (which & SVC_NOTIFY)
		notify_stop(&c->notify);
}

static int
s_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * The services whose settings differ between two configurations.  Only
 * those restart on a reload: restarting a notifier abandons a delivery in
 * flight (sent again later), and a restarted API refuses requests for a
 * moment, so a SIGHUP from configuration management that changed nothing
 * must not cost either.
 */
static int
s_services_changed(
    const struct collector_config *o, const struct collector_config *n)
{
	int which = 0;

	if (!s_same(o->database, n->database))
		return SVC_ALL;
	if (!s_same(o->http_bind, n->http_bind) ||
	    !s_same(o->http_token, n->http_token) ||
	    o->interval_s != n->interval_s)
		which |= SVC_HTTP;
	if (!s_same(o->webhook_url, n->webhook_url) ||
	    !s_same(o->webhook_token, n->webhook_token) ||
	    o->webhook_timeout_s != n->webhook_timeout_s ||
	    !s_same(o->webhook_ca_file, n->webhook_ca_file) ||
	    !s_same(o->external_url, n->external_url) ||
	    !s_same(o->syslog, n->syslog) ||
	    !s_same(o->syslog_format, n->syslog_format) ||
	    o->syslog_facility != n->syslog_facility)
		which |= SVC_ALL; /* the others hold the notifier */
	if (o->interval_s != n->interval_s || o->quorum != n->quorum ||
	    o->propagation_window_s != n->propagation_window_s)
		which |= SVC_ANALYSIS;
	return which;
}

static int
s_start(struct collector *c)
{
	struct ingest_config ic;
	char err[256];

	if ((c->allow = keys_allow_load(c->cfg->allow_dir, err, sizeof(err))) ==
	    NULL) {
		log_warnx("start failed reason=\"%s\"", err);
		return -1;
	}
	if (keys_allow_count(c->allow) == 0)
		log_warnx("allow_dir=%s holds no agent certificate; every "
			  "agent is refused",
		    c->cfg->allow_dir);
	if ((c->store = s_store_open(c->cfg)) == NULL ||
	    (c->wstore = s_store_open(c->cfg)) == NULL)
		return -1;
	/* After the migrations: they read the tables those made. */
	s_services_start(c, SVC_ALL);

	s_block(1);
	zsys_set_logstream(stderr);
	zsys_set_logident("mtasts-collector");
	/*
	 * zauth checks each CURVE handshake against the certificates in
	 * allow_dir (re-read when the directory changes) and passes their
	 * metadata on as message properties; verbose, it logs the key of
	 * every client it turns away, which is what an operator needs when a
	 * new agent does not connect.
	 */
	if ((c->auth = zactor_new(zauth, NULL)) == NULL) {
		s_block(0);
		log_warnx("start failed reason=\"cannot start zauth\"");
		return -1;
	}
	zstr_sendx(c->auth, "VERBOSE", NULL);
	zsock_wait(c->auth);
	if (s_auth_curve(c->auth, c->cfg->allow_dir) == -1) {
		s_block(0);
		log_warnx("start failed reason=\"zauth CURVE setup\"");
		return -1;
	}
	c->router = zsock_new(ZMQ_ROUTER);
	s_block(0);
	if (c->router == NULL) {
		log_warnx("start failed reason=\"cannot make a socket\"");
		return -1;
	}
	c->router_handle = zsock_resolve(c->router);
	zcert_apply(c->cfg->cert, c->router);
	zsock_set_curve_server(c->router, 1);
	zsock_set_zap_domain(c->router, ZAP_DOMAIN);
	zsock_set_router_mandatory(c->router, 1);
	zsock_set_router_handover(c->router, 1);
	zsock_set_maxmsgsize(c->router, WIRE_MAX);
	zsock_set_heartbeat_ivl(c->router, HEARTBEAT_IVL_MS);
	zsock_set_heartbeat_timeout(c->router, HEARTBEAT_TTL_MS);
	zsock_set_sndtimeo(c->router, 0);
	zsock_set_linger(c->router, LINGER_MS);
	if (zsock_bind(c->router, "%s", c->cfg->bind) == -1) {
		log_warnx("start failed reason=\"bind\" bind=%s error=\"%s\"",
		    c->cfg->bind, zmq_strerror(zmq_errno()));
		return -1;
	}
	s_ingest_config(c->cfg, &ic);
	if ((c->ingest = ingest_new(c->store, &ic, s_send, c->router_handle)) ==
	    NULL) {
		log_warnx("start failed reason=\"out of memory\"");
		return -1;
	}
	/* Batches are written while the next ones are decoded. */
	if (ingest_start_writer(c->ingest, c->wstore) == -1) {
		log_warnx("start failed reason=\"cannot start the writer\"");
		return -1;
	}
	ingest_set_allow(c->ingest, c->allow);
	/* Partitions, retention and the first task set before "ready". */
	ingest_tick(c->ingest, s_now_ms());
	return 0;
}

static void
s_stop(struct collector *c)
{
	s_services_stop(c, SVC_ALL);
	/* Joins the writer thread, which uses wstore until then. */
	ingest_destroy(&c->ingest);
	zsock_destroy(&c->router);
	zactor_destroy(&c->auth);
	store_close(&c->wstore);
	store_close(&c->store);
	keys_allow_free(&c->allow);
	collector_config_free(&c->cfg);
}

/*
 * SIGHUP: a new configuration replaces the old only when it is valid
 * whole; the socket, key and database stay as started.
 */
static void
s_reload(struct collector *c)
{
	struct collector_config_errors errs;
	struct collector_config *cfg;
	struct keys_allow *allow;
	struct ingest_config ic;
	char err[256];
	int changed;

	if ((cfg = collector_config_load(c->cfg->path, &errs)) == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			log_warnx("reload failed error=\"%s\"", errs.v[i]);
		log_warnx("reload failed; keeping the running configuration");
		collector_config_errors_free(&errs);
		return;
	}
	if (strcmp(cfg->database, c->cfg->database) != 0) {
		/* Ingest stays on the old database until a restart, so the
		 * threads must too: keep its conninfo in the new config. */
		char *keep = strdup(c->cfg->database);

		if (keep == NULL) {
			log_warnx("reload failed error=\"out of memory\"");
			collector_config_free(&cfg);
			return;
		}
		free(cfg->database);
		cfg->database = keep;
		log_warnx("reload: database changed; takes a restart");
	}
	if ((allow = keys_allow_load(cfg->allow_dir, err, sizeof(err))) ==
	    NULL) {
		log_warnx("reload failed error=\"%s\"; keeping the running "
			  "configuration",
		    err);
		collector_config_free(&cfg);
		return;
	}
	if (s_auth_curve(c->auth, cfg->allow_dir) == -1) {
		log_warnx("reload failed error=\"zauth CURVE\"; keeping the "
			  "running configuration");
		keys_allow_free(&allow);
		collector_config_free(&cfg);
		return;
	}
	if (strcmp(cfg->bind, c->cfg->bind) != 0)
		log_warnx(
		    "reload: bind changed to %s; takes a restart", cfg->bind);
	if (strcmp(cfg->public_txt, c->cfg->public_txt) != 0)
		log_warnx("reload: secret_key changed; takes a restart");
	ingest_set_allow(c->ingest, allow);
	keys_allow_free(&c->allow);
	c->allow = allow;
	s_ingest_config(cfg, &ic);
	ingest_set_config(c->ingest, &ic);
	/* [http], [notify], interval, quorum and the window take effect at
	 * once; cursors and folds live in the database. */
	changed = s_services_changed(c->cfg, cfg);
	s_services_stop(c, changed);
	/* The running socket still uses the old key; keep it for the log. */
	collector_config_free(&c->cfg);
	c->cfg = cfg;
	s_services_start(c, changed);
	log_warnx("reloaded config=%s allowed_agents=%zu interval=%u credit=%u "
		  "batch=%u retention_days=%u",
	    cfg->path, keys_allow_count(allow), cfg->interval_s, cfg->credit,
	    cfg->batch, cfg->retention_days);
}

/* Reads one frame; 1 when one was read, 0 when none is waiting. */
static int
s_recv_one(struct collector *c, int64_t now)
{
	struct ingest_peer peer;
	zmq_msg_t rid, body;
	int extra = 0, more;

	zmq_msg_init(&rid);
	if (zmq_msg_recv(&rid, c->router_handle, ZMQ_DONTWAIT) == -1) {
		zmq_msg_close(&rid);
		if (errno != EAGAIN && errno != EINTR)
			log_warnx(
			    "receive failed error=\"%s\"", zmq_strerror(errno));
		return 0;
	}
	memset(&peer, 0, sizeof(peer));
	peer.rid = zmq_msg_data(&rid);
	peer.rid_len = zmq_msg_size(&rid);
	if (!zmq_msg_more(&rid)) {
		/* A ROUTER always prefixes the routing id; guard anyway. */
		ingest_refuse(c->ingest, &peer, INGEST_REFUSE_FRAMES,
		    "no payload frame", now);
		zmq_msg_close(&rid);
		return 1;
	}
	zmq_msg_init(&body);
	/* The rest of a multipart message is already here: no wait. */
	if (zmq_msg_recv(&body, c->router_handle, 0) == -1) {
		zmq_msg_close(&body);
		zmq_msg_close(&rid);
		return 1;
	}
	/* Metadata: what CURVE authenticated and zauth attached. */
	peer.key = zmq_msg_gets(&body, "User-Id");
	peer.name = zmq_msg_gets(&body, "name");
	peer.region = zmq_msg_gets(&body, "region");
	more = zmq_msg_more(&body);
	while (more) {
		zmq_msg_t m;

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, c->router_handle, 0) == -1) {
			zmq_msg_close(&m);
			break;
		}
		extra = 1;
		more = zmq_msg_more(&m);
		zmq_msg_close(&m);
	}
	if (peer.rid_len == 0 || peer.rid_len > RID_MAX)
		ingest_refuse(c->ingest, &peer, INGEST_REFUSE_FRAMES,
		    "bad routing id", now);
	else if (extra)
		ingest_refuse(c->ingest, &peer, INGEST_REFUSE_FRAMES,
		    "more than one payload frame", now);
	else
		ingest_receive(c->ingest, &peer, zmq_msg_data(&body),
		    zmq_msg_size(&body), now);
	zmq_msg_close(&body);
	zmq_msg_close(&rid);
	return 1;
}

static int
s_run(struct collector *c)
{
	int64_t next_stats = s_now_ms() + STATS_EVERY_MS;
	int64_t next_counters = 0;

	log_warnx("ready bind=%s", zsock_endpoint(c->router));
	while (!got_term) {
		/* The router, and the writer's "writes finished". */
		zmq_pollitem_t items[2] = {
		    {c->router_handle, 0, ZMQ_POLLIN, 0},
		    {NULL, ingest_fd(c->ingest), ZMQ_POLLIN, 0},
		};
		int64_t now;

		if (got_hup) {
			got_hup = 0;
			s_reload(c);
		}
		now = s_now_ms();
		/* At most a second: the counters for /metrics ride on it. */
		if (zmq_poll(items, items[1].fd >= 0 ? 2 : 1,
			ingest_timeout(c->ingest, now)) == -1) {
			if (errno == EINTR)
				continue;
			log_warnx(
			    "poll failed error=\"%s\"", zmq_strerror(errno));
			return -1;
		}
		if (items[0].revents & ZMQ_POLLIN)
			for (int i = 0; i < DRAIN_MAX && !got_term; i++)
				if (s_recv_one(c, s_now_ms()) == 0)
					break;
		now = s_now_ms();
		ingest_tick(c->ingest, now);
		if (c->http != NULL && now >= next_counters) {
			struct ingest_counters ic;

			next_counters = now + 1000;
			ingest_counters_get(c->ingest, &ic);
			http_api_set_counters(c->http, &ic);
		}
		if (now >= next_stats) {
			next_stats = now + STATS_EVERY_MS;
			ingest_log_stats(c->ingest);
		}
	}
	/* What is queued is written and acknowledged before we go. */
	ingest_flush_all(c->ingest, s_now_ms());
	ingest_log_stats(c->ingest);
	log_warnx("shutdown");
	return 0;
}

static int
s_keygen(int argc, char **argv)
{
	char err[512];

	if (argc != 3) {
		usage(stderr);
		return 2;
	}
	if (keys_generate(argv[2], err, sizeof(err)) == -1) {
		fprintf(stderr, "mtasts-collector: keygen: %s\n", err);
		return 1;
	}
	printf("%s/collector.key\n%s/collector.key_secret\n", argv[2], argv[2]);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector_config_errors errs;
	struct collector c;
	const char *path = NULL;
	int check_only = 0, debug = 0, ch, rc = 2;

	log_set_name("mtasts-collector");
	/* CZMQ must not install its own SIGINT/SIGTERM handlers. */
	zsys_handler_set(NULL);
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return s_keygen(argc, argv);
	while ((ch = getopt_long(argc, argv, "c:ndh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	memset(&c, 0, sizeof(c));
	/* Checked whole before anything starts, as -n checks it. */
	if ((c.cfg = collector_config_load(path, &errs)) == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.v[i]);
		collector_config_errors_free(&errs);
		return 1;
	}
	if (check_only) {
		fprintf(stderr, "configuration OK\n");
		collector_config_free(&c.cfg);
		return 0;
	}
	log_set_level(debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (s_signals() == -1) {
		log_warn("sigaction");
		collector_config_free(&c.cfg);
		return 2;
	}
	/*
	 * Once, before any thread: curl's global state is not thread-safe
	 * to set up, and the notifiers' own init/cleanup pairs (restarted on
	 * reload) then only move its reference count.
	 */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("curl_global_init failed");
		collector_config_free(&c.cfg);
		return 2;
	}
	log_warnx("starting config=%s key=%s bind=%s", path, c.cfg->public_txt,
	    c.cfg->bind);
	if (s_start(&c) == 0)
		rc = s_run(&c) == 0 ? 0 : 2;
	else if (got_term)
		rc = 0; /* stopped while waiting for the database */
	s_stop(&c);
	curl_global_cleanup();
	return rc;
}
