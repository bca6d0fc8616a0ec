/* daemon.c -- the agent daemon: scheduler, probes, spool and sender in one
 * loop. */
#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <czmq.h>
#include <event2/event.h>

#include "agent_config.h"
#include "engine.h"
#include "log.h"
#include "probe.h"
#include "result_pb.h"
#include "scheduler.h"
#include "sender.h"
#include "spool.h"

/*
 * Results are made durable in groups: one fdatasync per 64 results or
 * 200 ms, whichever comes first, instead of one per result.
 */
#define SYNC_BATCH    64
#define SYNC_DELAY_MS 200

/* One probe in flight, so that shutdown can abandon it. */
struct running {
	struct running *prev, *next;
	struct agentd *d;
	struct probe *probe;
	uint32_t interval_s; /* of the task set it was started under */
};

struct agentd {
	struct event_base *base;
	struct agent_config *cfg;
	/* What the engine and spool were built with: they need a restart to
	 * change, so a reload compares against these. */
	struct engine_config ecfg;
	char *e_resolver, *e_ca_file, *e_vantage;
	char *spool_dir;
	uint64_t spool_cap;
	char *jitter_key;

	struct engine *engine;
	struct spool *spool;
	struct sender *sender;
	struct sched *sched;
	struct running *probes;
	struct event *ev_term, *ev_int, *ev_hup, *ev_sync;
	unsigned pending_sync;
	int sync_armed;
};

static void
s_usage(FILE *fp)
{
	fprintf(fp, "usage: mtasts-agent run --config FILE [-n]\n");
}

static void
s_sync(struct agentd *d)
{
	struct timeval tv = {0, SYNC_DELAY_MS * 1000};

	if (d->pending_sync == 0)
		return;
	if (spool_sync(d->spool) == -1) {
		/* Unsynced results are never sent: try again shortly. */
		log_warn(
		    "spool: event=sync_failed pending=%u", d->pending_sync);
		if (!d->sync_armed && evtimer_add(d->ev_sync, &tv) == 0)
			d->sync_armed = 1;
		return;
	}
	d->pending_sync = 0;
	sender_kick(d->sender);
}

static void
s_on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agentd *d = arg;

	(void)fd;
	(void)what;
	d->sync_armed = 0;
	s_sync(d);
}

/*
 * Encodes and spools one result.  Its seq must be inside the encoding
 * before spool_append assigns it; spool.h promises seqs are consecutive
 * and spool_stats' last_seq is the last one appended or reserved, so the
 * next is last_seq + 1, which spool_append then confirms.
 */
static void
s_store(struct agentd *d, const struct probe_result *res, uint32_t interval_s)
{
	struct timeval tv = {0, SYNC_DELAY_MS * 1000};
	uint64_t last, seq, got, round;
	unsigned char *buf;
	size_t len;

	round = sched_round((int64_t)res->started_at.tv_sec, interval_s);
	spool_stats(d->spool, NULL, &last, NULL, NULL);
	seq = last + 1;
	if (result_pb_encode(res, seq, round, &buf, &len) == -1) {
		log_warnx("result: domain=%s event=encode_failed", res->domain);
		return;
	}
	if (spool_append(d->spool, buf, len, &got) == -1) {
		log_warn("spool: domain=%s event=append_failed bytes=%zu",
		    res->domain, len);
		free(buf);
		return;
	}
	free(buf);
	if (got != seq)
		log_warnx("spool: domain=%s event=seq_mismatch encoded=%" PRIu64
			  " stored=%" PRIu64,
		    res->domain, seq, got);
	log_debug("result: domain=%s seq=%" PRIu64 " round=%" PRIu64
		  " bytes=%zu completed=%d",
	    res->domain, got, round, len, res->completed);
	if (++d->pending_sync >= SYNC_BATCH)
		s_sync(d);
	else if (!d->sync_armed && evtimer_add(d->ev_sync, &tv) == 0)
		d->sync_armed = 1;
}

static void
s_on_result(struct probe_result *res, void *arg)
{
	struct running *r = arg;
	struct agentd *d = r->d;
	uint32_t interval_s = r->interval_s;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		d->probes = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	free(r);
	s_store(d, res, interval_s);
	probe_result_free(&res);
	sched_probe_done(d->sched);
}

static int
s_start_probe(const char *domain, uint32_t interval_s, void *arg)
{
	struct agentd *d = arg;
	struct running *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->d = d;
	r->interval_s = interval_s;
	if ((r->probe = probe_start(d->engine, domain, s_on_result, r)) ==
	    NULL) {
		free(r);
		return -1;
	}
	r->next = d->probes;
	if (d->probes != NULL)
		d->probes->prev = r;
	d->probes = r;
	return 0;
}

static void
s_on_tasks(uint64_t version, uint32_t interval_s, char *const *domains,
    size_t n, void *arg)
{
	struct agentd *d = arg;

	(void)sched_set_tasks(d->sched, version, interval_s, domains, n);
}

static int
s_str_changed(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * SIGHUP: the new file is parsed into a new config and checked whole; on
 * any error the old one stays.  What the engine and spool were built with
 * needs a restart, and the log says so.
 */
static void
s_reload(struct agentd *d)
{
	struct agent_config_errors errs;
	struct agent_config *cfg;

	log_info("reload: event=start config=%s", d->cfg->path);
	if ((cfg = agent_config_load(d->cfg->path, &errs)) == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			log_warnx(
			    "reload: event=error error=\"%s\"", errs.v[i]);
		log_warnx("reload: event=failed errors=%zu kept=old", errs.n);
		agent_config_errors_free(&errs);
		return;
	}
	if (s_str_changed(cfg->resolver, d->e_resolver))
		log_warnx("reload: key=resolver event=needs_restart");
	if (s_str_changed(cfg->ca_file, d->e_ca_file))
		log_warnx("reload: key=ca_file event=needs_restart");
	if (s_str_changed(cfg->name, d->e_vantage))
		log_warnx("reload: key=name event=needs_restart "
			  "note=\"hello uses the new name on reconnect\"");
	if (cfg->timeout_s != d->ecfg.timeout_s)
		log_warnx("reload: key=timeout event=needs_restart");
	if (cfg->https_port != d->ecfg.https_port ||
	    cfg->smtp_port != d->ecfg.smtp_port)
		log_warnx("reload: key=https_port,smtp_port "
			  "event=needs_restart");
	if (s_str_changed(cfg->spool_dir, d->spool_dir))
		log_warnx("reload: key=spool_dir event=needs_restart");
	if (cfg->spool_cap != d->spool_cap)
		log_warnx("reload: key=spool_cap event=needs_restart");
	if (s_str_changed(cfg->public_txt, d->jitter_key))
		log_warnx("reload: key=secret_key event=changed note=\"used "
			  "from the next connection; round jitter after a "
			  "restart\"");
	if (sender_reconfigure(d->sender, cfg) == -1) {
		log_warnx("reload: event=failed reason=out_of_memory kept=old");
		agent_config_free(&cfg);
		return;
	}
	sched_set_concurrency(d->sched, cfg->concurrency);
	agent_config_free(&d->cfg);
	d->cfg = cfg;
	log_info("reload: event=ok endpoints=%zu concurrency=%d heartbeat=%d "
		 "ack_timeout=%d",
	    cfg->n_endpoints, cfg->concurrency, cfg->heartbeat_s,
	    cfg->ack_timeout_s);
}

/* libevent runs these from the loop, not from the signal handler. */
static void
s_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct agentd *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		s_reload(d);
		return;
	}
	log_info("shutdown: event=signal signal=%d", (int)sig);
	event_base_loopbreak(d->base);
}

static int
s_start(struct agentd *d)
{
	char err[512];

	if ((d->base = event_base_new()) == NULL) {
		log_warnx("start: event=failed reason=\"event loop\"");
		return -1;
	}
	if ((d->e_vantage = strdup(d->cfg->name)) == NULL ||
	    (d->cfg->resolver != NULL &&
		(d->e_resolver = strdup(d->cfg->resolver)) == NULL) ||
	    (d->cfg->ca_file != NULL &&
		(d->e_ca_file = strdup(d->cfg->ca_file)) == NULL) ||
	    (d->spool_dir = strdup(d->cfg->spool_dir)) == NULL ||
	    (d->jitter_key = strdup(d->cfg->public_txt)) == NULL) {
		log_warnx("start: event=failed reason=out_of_memory");
		return -1;
	}
	d->spool_cap = d->cfg->spool_cap;
	d->ecfg.resolver = d->e_resolver;
	d->ecfg.ca_file = d->e_ca_file;
	d->ecfg.vantage = d->e_vantage;
	d->ecfg.timeout_s = d->cfg->timeout_s;
	d->ecfg.https_port = d->cfg->https_port;
	d->ecfg.smtp_port = d->cfg->smtp_port;
	if ((d->engine = engine_new(d->base, &d->ecfg, err, sizeof(err))) ==
	    NULL) {
		log_warnx("start: event=failed what=engine reason=\"%s\"", err);
		return -1;
	}
	if ((d->spool = spool_open(
		 d->spool_dir, d->spool_cap, err, sizeof(err))) == NULL) {
		log_warnx("start: event=failed what=spool dir=%s reason=\"%s\"",
		    d->spool_dir, err);
		return -1;
	}
	if ((d->ev_sync = evtimer_new(d->base, s_on_sync_timer, d)) == NULL ||
	    (d->ev_term = evsignal_new(d->base, SIGTERM, s_on_signal, d)) ==
		NULL ||
	    (d->ev_int = evsignal_new(d->base, SIGINT, s_on_signal, d)) ==
		NULL ||
	    (d->ev_hup = evsignal_new(d->base, SIGHUP, s_on_signal, d)) ==
		NULL ||
	    evsignal_add(d->ev_term, NULL) == -1 ||
	    evsignal_add(d->ev_int, NULL) == -1 ||
	    evsignal_add(d->ev_hup, NULL) == -1) {
		log_warnx("start: event=failed reason=\"events\"");
		return -1;
	}
	if ((d->sched = sched_new(d->base, d->jitter_key, d->cfg->concurrency,
		 s_start_probe, d)) == NULL) {
		log_warnx("start: event=failed what=scheduler");
		return -1;
	}
	if ((d->sender = sender_new(d->base, d->spool, d->cfg, s_on_tasks, d,
		 err, sizeof(err))) == NULL) {
		log_warnx("start: event=failed what=sender reason=\"%s\"", err);
		return -1;
	}
	return 0;
}

static void
s_stop(struct agentd *d)
{
	struct running *r, *next;
	size_t abandoned = 0;

	if (d->sched != NULL)
		sched_stop(d->sched);
	/* A probe cut short would be a false finding: drop it instead. */
	for (r = d->probes; r != NULL; r = next) {
		next = r->next;
		probe_cancel(&r->probe);
		free(r);
		abandoned++;
	}
	d->probes = NULL;
	if (d->spool != NULL && spool_sync(d->spool) == -1)
		log_warn("shutdown: event=spool_sync_failed");
	sender_free(&d->sender);
	sched_free(&d->sched);
	spool_close(&d->spool);
	engine_free(&d->engine);
	if (d->ev_sync != NULL)
		event_free(d->ev_sync);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->base != NULL)
		event_base_free(d->base);
	free(d->e_resolver);
	free(d->e_ca_file);
	free(d->e_vantage);
	free(d->spool_dir);
	free(d->jitter_key);
	agent_config_free(&d->cfg);
	log_info("shutdown: event=done abandoned_probes=%zu", abandoned);
}

int
daemon_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct agentd d = {0};
	struct agent_config_errors errs;
	const char *path = NULL;
	int c, check_only = 0, rc = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'h':
			s_usage(stdout);
			return 0;
		default:
			s_usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		s_usage(stderr);
		return 2;
	}
	/* Checked whole before anything starts, as -n checks it. */
	if ((d.cfg = agent_config_load(path, &errs)) == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.v[i]);
		agent_config_errors_free(&errs);
		return 1;
	}
	if (check_only) {
		fprintf(stderr, "configuration OK\n");
		agent_config_free(&d.cfg);
		return 0;
	}
	log_set_level(LOG_LEVEL_INFO);
	/* CZMQ must not install its own SIGINT/SIGTERM handlers. */
	zsys_handler_set(NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("start: event=failed reason=\"libcurl init\"");
		agent_config_free(&d.cfg);
		return 2;
	}
	if (s_start(&d) == 0) {
		log_info("ready endpoint=%s endpoints=%zu name=%s key=%s "
			 "spool_dir=%s",
		    sender_endpoint(d.sender), d.cfg->n_endpoints, d.cfg->name,
		    d.cfg->public_txt, d.spool_dir);
		if (event_base_dispatch(d.base) == -1)
			log_warnx("shutdown: event=loop_failed");
		else
			rc = 0;
	}
	s_stop(&d);
	curl_global_cleanup();
	return rc;
}
