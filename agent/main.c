/* main.c -- mtasts-agent: the command line shell around the probe engine. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "daemon.h"
#include "engine.h"
#include "keygen.h"
#include "log.h"
#include "probe.h"
#include "result_json.h"
#include "result_text.h"

#define VERSION	     "0.1.0"
#define DOMAINS_MAX  1000000
#define LINE_MAX_LEN 1024

struct domain_list {
	char **v;
	size_t n;
	size_t cap;
};

struct run {
	struct engine *engine;
	struct event_base *base;
	struct domain_list domains;
	size_t next;
	size_t running;
	size_t done;
	size_t with_errors;
	int concurrency;
	int json;
	int colour;
	int progress;
	int internal_error;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mtasts-agent probe [--resolver IP[:PORT]] [--ca-file PEM]\n"
	    "                          [--vantage NAME] [--timeout SECS]\n"
	    "                          [--concurrency N] [--json] [-f FILE|-]\n"
	    "                          [--https-port N] [--smtp-port N] "
	    "DOMAIN...\n"
	    "       mtasts-agent run --config FILE [-n]\n"
	    "       mtasts-agent keygen DIR [--name NAME] [--region REGION]\n"
	    "       mtasts-agent version\n"
	    "exit: 0 no error finding, 1 at least one, 2 usage or internal "
	    "failure\n");
}

static int
s_domains_add(struct domain_list *l, const char *name)
{
	if (l->n == DOMAINS_MAX) {
		fprintf(stderr, "mtasts-agent: more than %d domains\n",
		    DOMAINS_MAX);
		return -1;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n] = strdup(name)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static void
s_domains_free(struct domain_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* One domain per line; blank lines and # comments are skipped. */
static int
s_read_domains(const char *path, struct domain_list *l)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[LINE_MAX_LEN + 2];
	unsigned long lineno = 0;
	int rc = 0;

	if (fp == NULL) {
		fprintf(
		    stderr, "mtasts-agent: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *s = line, *e;
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			fprintf(stderr, "mtasts-agent: %s:%lu: line too long\n",
			    path, lineno);
			rc = -1;
			break;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strcspn(s, " \t\r\n#");
		*e = '\0';
		if (*s == '\0')
			continue;
		if (s_domains_add(l, s) == -1) {
			rc = -1;
			break;
		}
	}
	if (ferror(fp)) {
		fprintf(stderr, "mtasts-agent: %s: read error\n", path);
		rc = -1;
	}
	if (fp != stdin)
		fclose(fp);
	return rc;
}

static int
s_parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr,
		    "mtasts-agent: %s: '%s' is not a number in "
		    "%d..%d\n",
		    opt, s, lo, hi);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static void s_start_more(struct run *run);

static void
s_progress(struct run *run)
{
	if (!run->progress)
		return;
	fprintf(stderr, "\r%zu/%zu done, %zu with errors ", run->done,
	    run->domains.n, run->with_errors);
	if (run->done == run->domains.n)
		fputc('\n', stderr);
}

static void
s_on_result(struct probe_result *res, void *arg)
{
	struct run *run = arg;

	run->running--;
	run->done++;
	if (finding_list_count(&res->findings, SEV_ERROR) > 0)
		run->with_errors++;
	if (run->progress)
		fputs("\r\033[K", stderr);
	if (run->json) {
		json_t *j = result_json(res);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s == NULL) {
			fprintf(stderr, "mtasts-agent: %s: cannot encode\n",
			    res->domain);
			run->internal_error = 1;
		} else {
			puts(s);
		}
		free(s);
		json_decref(j);
	} else {
		result_text_print(stdout, res, run->colour);
	}
	fflush(stdout);
	probe_result_free(&res);
	s_progress(run);
	s_start_more(run);
}

static void
s_start_more(struct run *run)
{
	while (run->running < (size_t)run->concurrency &&
	       run->next < run->domains.n) {
		const char *d = run->domains.v[run->next++];
		if (!probe_domain_valid(d)) {
			fprintf(stderr,
			    "mtasts-agent: '%s' is not a valid "
			    "domain name; skipped\n",
			    d);
			run->internal_error = 1;
			run->done++;
			continue;
		}
		if (probe_start(run->engine, d, s_on_result, run) == NULL) {
			fprintf(stderr,
			    "mtasts-agent: %s: cannot start the "
			    "probe\n",
			    d);
			run->internal_error = 1;
			run->done++;
			continue;
		}
		run->running++;
	}
	if (run->running == 0 && run->next >= run->domains.n)
		event_base_loopbreak(run->base);
}

static int
cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"resolver", required_argument, NULL, 'r'},
	    {"ca-file", required_argument, NULL, 'c'},
	    {"vantage", required_argument, NULL, 'v'},
	    {"timeout", required_argument, NULL, 't'},
	    {"concurrency", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"file", required_argument, NULL, 'f'},
	    {"https-port", required_argument, NULL, 'H'},
	    {"smtp-port", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct engine_config cfg = {.timeout_s = 30, .vantage = "local"};
	struct run run = {.concurrency = 64};
	char err[256];
	int c, rc = 2, found_error;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cfg.resolver = optarg;
			break;
		case 'c':
			cfg.ca_file = optarg;
			break;
		case 'v':
			cfg.vantage = optarg;
			break;
		case 't':
			if (s_parse_int("--timeout", optarg, 1, 3600,
				&cfg.timeout_s) == -1)
				goto out;
			break;
		case 'n':
			if (s_parse_int("--concurrency", optarg, 1, 100000,
				&run.concurrency) == -1)
				goto out;
			break;
		case 'j':
			run.json = 1;
			break;
		case 'f':
			if (s_read_domains(optarg, &run.domains) == -1)
				goto out;
			break;
		case 'H':
			if (s_parse_int("--https-port", optarg, 1, 65535,
				&cfg.https_port) == -1)
				goto out;
			break;
		case 'S':
			if (s_parse_int("--smtp-port", optarg, 1, 65535,
				&cfg.smtp_port) == -1)
				goto out;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	for (int i = optind; i < argc; i++)
		if (s_domains_add(&run.domains, argv[i]) == -1)
			goto out;
	if (run.domains.n == 0) {
		fprintf(stderr, "mtasts-agent: no domain given\n");
		usage(stderr);
		goto out;
	}
	run.colour = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	run.progress = isatty(STDERR_FILENO) && run.domains.n > 1;

	if ((run.base = event_base_new()) == NULL) {
		fprintf(stderr, "mtasts-agent: cannot create the event loop\n");
		goto out;
	}
	run.engine = engine_new(run.base, &cfg, err, sizeof(err));
	if (run.engine == NULL) {
		fprintf(stderr, "mtasts-agent: %s\n", err);
		goto out;
	}
	s_start_more(&run);
	if (run.running > 0 && event_base_dispatch(run.base) == -1) {
		fprintf(stderr, "mtasts-agent: event loop failed\n");
		run.internal_error = 1;
	}
	found_error = run.with_errors > 0;
	rc = run.internal_error ? 2 : found_error ? 1 : 0;
out:
	engine_free(&run.engine);
	if (run.base != NULL)
		event_base_free(run.base);
	s_domains_free(&run.domains);
	return rc;
}

int
main(int argc, char **argv)
{
	int rc;

	log_set_name("mtasts-agent");
	/* A peer that resets while we write must cost a probe, not us. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0) {
		printf("mtasts-agent %s\n", VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return daemon_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "keygen") == 0)
		return keygen_cmd(argc - 1, argv + 1);
	if (strcmp(argv[1], "probe") != 0) {
		fprintf(
		    stderr, "mtasts-agent: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "mtasts-agent: cannot initialise libcurl\n");
		return 2;
	}
	rc = cmd_probe(argc - 1, argv + 1);
	curl_global_cleanup();
	return rc;
}
