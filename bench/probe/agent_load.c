/* agent_load.c -- drives one of the agent's own probe stages in a loop. */
/*
 * Each mode runs N operations, at most C at once, through the very module
 * the agent's probes use, on one engine and one event loop as in
 * `mtasts-agent probe`:
 *
 *   tls      IP PORT SNI_FMT    TCP connect + tls_conn handshake, chain kept
 *   starttls IP PORT HOST_FMT   smtp_starttls: greeting, EHLO, STARTTLS, TLS
 *   fetch    IP PORT HOST_FMT   https_get of https://HOST:PORT/.well-known/
 *                               mta-sts.txt on address IP (the policy fetch)
 *   dns      RESOLVER QUERIES   dns_query on the engine's libunbound, one per
 *                               "NAME TYPE" line (dnsperf's format)
 *
 * HOST_FMT holds one %d, replaced by 1 + i mod M (M the fourth number), so
 * the SNI names differ as across domains.  Prints one JSON object: count,
 * successes, wall seconds, rate, and the process's CPU seconds (getrusage).
 * Everything it talks to is given on the command line (loopback farms).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "dns_query.h"
#include "engine.h"
#include "https_get.h"
#include "net.h"
#include "smtp_starttls.h"
#include "tls_conn.h"

#define QUERIES_MAX 1000000

enum mode { M_TLS, M_STARTTLS, M_FETCH, M_DNS };

struct query {
	char *name;
	int qtype;
};

struct load {
	enum mode mode;
	struct event_base *base;
	struct engine *engine;
	const char *ip;
	int port;
	const char *fmt;
	long names;
	long nq; /* queries read */
	long n, started, done, ok, failed_to_start;
	long conc, running;
	struct query *q;
	char last_error[256];
};

/* One operation in flight; freed by its completion. */
struct op {
	struct load *load;
	int fd;
	struct dns_query *dq;
};

static void s_start_more(struct load *l);

static void
s_done(struct load *l, int ok, const char *err)
{
	l->running--;
	l->done++;
	if (ok)
		l->ok++;
	else if (err != NULL)
		snprintf(l->last_error, sizeof(l->last_error), "%s", err);
	s_start_more(l);
}

/* The socket is closed from the loop: tls_conn still sends its
 * close_notify on it after our callback returns. */
static void
s_close_later(evutil_socket_t fd, short what, void *arg)
{
	struct op *o = arg;
	struct load *l = o->load;

	(void)fd;
	(void)what;
	close(o->fd);
	free(o);
	s_start_more(l);
}

static void
s_on_tls(struct tls_result *r, void *arg)
{
	struct op *o = arg;
	struct load *l = o->load;
	struct timeval zero = {0, 0};
	int ok = r->ok && r->chain != NULL && sk_X509_num(r->chain) > 0;

	l->running--;
	l->done++;
	if (ok)
		l->ok++;
	else
		snprintf(l->last_error, sizeof(l->last_error), "%s", r->error);
	if (event_base_once(l->base, -1, EV_TIMEOUT, s_close_later, o, &zero) ==
	    -1) {
		/* Leak the descriptor rather than reuse it under tls_conn. */
		free(o);
		s_start_more(l);
	}
}

static void
s_on_smtp(struct smtp_result *r, void *arg)
{
	struct op *o = arg;
	struct load *l = o->load;
	int ok =
	    r->stage == SMTP_STAGE_TLS && r->tls.ok && r->tls.chain != NULL;

	free(o);
	s_done(l, ok, r->error[0] ? r->error : r->tls.error);
}

static void
s_on_fetch(struct https_get_result *r, void *arg)
{
	struct op *o = arg;
	struct load *l = o->load;
	int ok = r->kind == HTTPS_OK && r->status == 200 && r->tls.ok &&
		 r->tls.chain != NULL && r->body_len > 0;

	free(o);
	s_done(l, ok, r->error);
}

static void
s_on_dns(struct dns_answer *ans, void *arg)
{
	struct op *o = arg;
	struct load *l = o->load;

	free(o);
	s_done(l, ans->status != DNS_FAIL, ans->why);
}

static int
s_start_one(struct load *l, long i)
{
	char host[256];
	struct op *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return -1;
	o->load = l;
	o->fd = -1;
	if (l->mode != M_DNS)
		snprintf(host, sizeof(host), l->fmt, (int)(1 + i % l->names));
	switch (l->mode) {
	case M_TLS: {
		char err[128];
		o->fd = net_connect_start(l->ip, l->port, err, sizeof(err));
		if (o->fd == -1)
			break;
		/* The handshake's first step waits for writability, which is
		 * also when the connect completes. */
		if (tls_conn_start(l->engine, o->fd, host,
			l->engine->io_timeout_ms, s_on_tls, o) != NULL)
			return 0;
		close(o->fd);
		break;
	}
	case M_STARTTLS: {
		char *addrs[1] = {(char *)l->ip};
		if (smtp_starttls_start(
			l->engine, host, addrs, 1, s_on_smtp, o) != NULL)
			return 0;
		break;
	}
	case M_FETCH: {
		char *addrs[1] = {(char *)l->ip};
		struct https_get_req req;
		memset(&req, 0, sizeof(req));
		req.host = host;
		req.port = l->port;
		req.path = "/.well-known/mta-sts.txt";
		req.addrs = addrs;
		req.n_addrs = 1;
		req.max_body = 65536;
		req.connect_timeout_ms = 10000;
		req.io_timeout_ms = 10000;
		req.timeout_ms = 20000;
		if (https_get_start(l->engine, &req, s_on_fetch, o) != NULL)
			return 0;
		break;
	}
	case M_DNS:
		if (dns_query_start(l->engine, l->q[i].name, l->q[i].qtype,
			l->engine->io_timeout_ms, s_on_dns, o, &o->dq) == 0)
			return 0;
		break;
	}
	free(o);
	return -1;
}

static void
s_start_more(struct load *l)
{
	while (l->running < l->conc && l->started < l->n) {
		long i = l->started++;
		l->running++;
		if (s_start_one(l, i) == -1) {
			l->running--;
			l->done++;
			l->failed_to_start++;
		}
	}
	if (l->done >= l->n)
		event_base_loopbreak(l->base);
}

static int
s_qtype(const char *s)
{
	if (strcmp(s, "A") == 0)
		return DNS_TYPE_A;
	if (strcmp(s, "AAAA") == 0)
		return DNS_TYPE_AAAA;
	if (strcmp(s, "MX") == 0)
		return DNS_TYPE_MX;
	if (strcmp(s, "TXT") == 0)
		return DNS_TYPE_TXT;
	return -1;
}

static long
s_read_queries(const char *path, struct query **out)
{
	FILE *fp = fopen(path, "r");
	char line[512], name[300], type[16];
	struct query *q = NULL;
	long n = 0, cap = 0;

	if (fp == NULL) {
		fprintf(stderr, "agent_load: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL && n < QUERIES_MAX) {
		if (sscanf(line, "%299s %15s", name, type) != 2 ||
		    s_qtype(type) == -1)
			continue;
		if (n == cap) {
			long nc = cap ? cap * 2 : 1024;
			struct query *v = realloc(q, (size_t)nc * sizeof(*v));
			if (v == NULL)
				break;
			q = v;
			cap = nc;
		}
		if ((q[n].name = strdup(name)) == NULL)
			break;
		q[n].qtype = s_qtype(type);
		n++;
	}
	fclose(fp);
	*out = q;
	return n;
}

static double
s_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
s_tv(struct timeval tv)
{
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: agent_load tls|starttls|fetch IP PORT HOST_FMT M N CONC "
	    "CA_FILE\n"
	    "       agent_load dns RESOLVER QUERIES N CONC\n");
}

int
main(int argc, char **argv)
{
	struct load l;
	struct engine_config cfg;
	struct rusage ru0, ru1;
	char err[256];
	double t0, t1;
	int rc = 1;

	memset(&l, 0, sizeof(l));
	memset(&cfg, 0, sizeof(cfg));
	if (argc < 2) {
		usage();
		return 2;
	}
	cfg.timeout_s = 30;
	cfg.vantage = "bench";
	if (strcmp(argv[1], "dns") == 0) {
		if (argc != 6) {
			usage();
			return 2;
		}
		l.mode = M_DNS;
		cfg.resolver = argv[2];
		l.n = l.nq = s_read_queries(argv[3], &l.q);
		if (l.n <= 0)
			return 2;
		if (atol(argv[4]) > 0 && atol(argv[4]) < l.n)
			l.n = atol(argv[4]);
		l.conc = atol(argv[5]);
	} else {
		if (argc != 9) {
			usage();
			return 2;
		}
		if (strcmp(argv[1], "tls") == 0)
			l.mode = M_TLS;
		else if (strcmp(argv[1], "starttls") == 0)
			l.mode = M_STARTTLS;
		else if (strcmp(argv[1], "fetch") == 0)
			l.mode = M_FETCH;
		else {
			usage();
			return 2;
		}
		l.ip = argv[2];
		l.port = atoi(argv[3]);
		l.fmt = argv[4];
		l.names = atol(argv[5]);
		l.n = atol(argv[6]);
		l.conc = atol(argv[7]);
		cfg.ca_file = argv[8];
		cfg.resolver = "127.0.0.1:53"; /* never asked */
		if (l.mode == M_STARTTLS)
			cfg.smtp_port = l.port;
		if (l.port < 1 || l.port > 65535 || l.names < 1 ||
		    strstr(l.fmt, "%d") == NULL) {
			usage();
			return 2;
		}
	}
	if (l.n < 1 || l.n > 10000000 || l.conc < 1 || l.conc > 100000) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	if ((l.base = event_base_new()) == NULL)
		goto out;
	if ((l.engine = engine_new(l.base, &cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "agent_load: %s\n", err);
		goto out;
	}
	getrusage(RUSAGE_SELF, &ru0);
	t0 = s_now();
	s_start_more(&l);
	if (l.done < l.n && event_base_dispatch(l.base) == -1)
		goto out;
	t1 = s_now();
	getrusage(RUSAGE_SELF, &ru1);
	{
		double wall = t1 - t0;
		double user = s_tv(ru1.ru_utime) - s_tv(ru0.ru_utime);
		double sys = s_tv(ru1.ru_stime) - s_tv(ru0.ru_stime);
		printf("{\"mode\": \"%s\", \"n\": %ld, \"ok\": %ld, "
		       "\"conc\": %ld, \"wall_s\": %.4f, \"rate\": %.1f, "
		       "\"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, "
		       "\"cpu_us_per_op\": %.1f, \"last_error\": \"",
		    argv[1], l.n, l.ok, l.conc, wall,
		    wall > 0 ? l.ok / wall : 0, user, sys,
		    l.n ? (user + sys) * 1e6 / (double)l.n : 0);
		for (const char *p = l.last_error; *p; p++)
			if (*p != '"' && *p != '\\' && (unsigned char)*p >= 32)
				putchar(*p);
		printf("\"}\n");
	}
	rc = l.ok == l.n ? 0 : 1;
out:
	engine_free(&l.engine);
	if (l.base != NULL)
		event_base_free(l.base);
	for (long i = 0; l.q != NULL && i < l.nq; i++)
		free(l.q[i].name);
	free(l.q);
	curl_global_cleanup();
	return rc;
}
