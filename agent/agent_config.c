/* agent_config.c -- reads and checks the agent daemon's INI configuration. */
#include "agent_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

enum key_id {
	K_NAME,
	K_REGION,
	K_SECRET_KEY,
	K_COLLECTOR_KEY,
	K_ENDPOINT,
	K_RESOLVER,
	K_CA_FILE,
	K_CONCURRENCY,
	K_TIMEOUT,
	K_SPOOL_DIR,
	K_SPOOL_CAP,
	K_HEARTBEAT,
	K_ACK_TIMEOUT,
	K_HTTPS_PORT,
	K_SMTP_PORT,
	K_COUNT
};

static const struct {
	const char *name;
	int required;
	int repeatable;
} keys[K_COUNT] = {
    [K_NAME] = {"name", 0, 0},
    [K_REGION] = {"region", 0, 0},
    [K_SECRET_KEY] = {"secret_key", 1, 0},
    [K_COLLECTOR_KEY] = {"collector_key", 1, 0},
    [K_ENDPOINT] = {"endpoint", 1, 1},
    [K_RESOLVER] = {"resolver", 0, 0},
    [K_CA_FILE] = {"ca_file", 0, 0},
    [K_CONCURRENCY] = {"concurrency", 0, 0},
    [K_TIMEOUT] = {"timeout", 0, 0},
    [K_SPOOL_DIR] = {"spool_dir", 1, 0},
    [K_SPOOL_CAP] = {"spool_cap", 0, 0},
    [K_HEARTBEAT] = {"heartbeat", 0, 0},
    [K_ACK_TIMEOUT] = {"ack_timeout", 0, 0},
    [K_HTTPS_PORT] = {"https_port", 0, 0},
    [K_SMTP_PORT] = {"smtp_port", 0, 0},
};

/* State shared by the line reader and the inih handler. */
struct parse {
	FILE *fp;
	const char *path;
	unsigned long lineno;	   /* line last handed to inih */
	unsigned long section;	   /* line of the [agent] header, 0 if none */
	int in_agent;		   /* the current section is [agent] */
	unsigned long syntax_line; /* last line the reader reported */
	int syntax_errors;	   /* how many lines the reader reported */
	unsigned long key_line[K_COUNT];
	struct agent_config *cfg;
	struct agent_config_errors *errs;
	char *buf;
	size_t bufcap;
	int oom;
};

static void s_err(struct parse *p, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_err(struct parse *p, unsigned long line, const char *fmt, ...)
{
	char msg[512], *full;
	char **v;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		n = asprintf(&full, "%s:%lu: %s", p->path, line, msg);
	else
		n = asprintf(&full, "%s: %s", p->path, msg);
	if (n == -1) {
		p->oom = 1;
		return;
	}
	v = realloc(p->errs->v, (p->errs->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(full);
		p->oom = 1;
		return;
	}
	v[p->errs->n++] = full;
	p->errs->v = v;
}

/*
 * The ini_reader.  inih counts lines too, but only tells the handler about
 * them in a build option Debian does not enable, so we count here and the
 * handler reads p->lineno.  Leading blanks are removed so that inih never
 * treats a line as the continuation of the previous value, and lines inih
 * would reject are reported here, so that every syntax error is found and
 * not only the first.
 */
static char *
s_reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t n;
	char *s, *close;

	if ((n = getline(&p->buf, &p->bufcap, p->fp)) == -1)
		return NULL;
	p->lineno++;
	s = p->buf;
	while (*s == ' ' || *s == '\t')
		s++;
	if (strlen(s) + 1 > (size_t)num || (size_t)n != strlen(p->buf)) {
		s_err(p, p->lineno, "line too long or holds a NUL byte");
		p->syntax_line = p->lineno;
		p->syntax_errors++;
		s = "\n";
	} else if (*s == '[') {
		close = strchr(s, ']');
		if (close == NULL) {
			s_err(p, p->lineno, "section header without ']'");
			p->syntax_line = p->lineno;
			p->syntax_errors++;
		} else {
			*close = '\0';
			p->in_agent = strcmp(s + 1, "agent") == 0;
			if (p->in_agent && p->section == 0)
				p->section = p->lineno;
			if (!p->in_agent)
				s_err(p, p->lineno, "unknown section [%s]",
				    s + 1);
			*close = ']';
		}
	} else if (*s != '\0' && *s != '\n' && *s != '\r' && *s != '#' &&
		   *s != ';' && strpbrk(s, "=:") == NULL) {
		s_err(p, p->lineno, "expected 'key = value'");
		p->syntax_line = p->lineno;
		p->syntax_errors++;
	}
	memcpy(str, s, strlen(s) + 1);
	return str;
}

static int
s_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int
agent_config_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1024;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1024 * 1024;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1024 * 1024 * 1024;
		end++;
		break;
	default:
		return -1;
	}
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}

/* tcp://HOST:PORT or ipc://PATH, as zmq_connect takes them. */
static int
s_endpoint_valid(const char *e)
{
	const char *colon;
	char *end;
	long port;

	if (strncmp(e, "ipc://", 6) == 0)
		return e[6] != '\0';
	if (strncmp(e, "tcp://", 6) != 0)
		return 0;
	colon = strrchr(e + 6, ':');
	if (colon == NULL || colon == e + 6)
		return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && end != colon + 1 && *end == '\0' && port > 0 &&
	       port <= 65535;
}

/* IP, IP:PORT, [IPv6]:PORT or IPv6, as the engine takes it. */
static int
s_resolver_valid(const char *r)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *port = NULL, *close;
	int tmp;

	if (r[0] == '[') {
		if ((close = strchr(r, ']')) == NULL ||
		    (size_t)(close - r - 1) >= sizeof(host))
			return 0;
		memcpy(host, r + 1, close - r - 1);
		host[close - r - 1] = '\0';
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return 0;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return 0;
	} else if (inet_pton(AF_INET6, r, addr) == 1) {
		return 1;
	} else {
		const char *colon = strchr(r, ':');
		size_t len = colon ? (size_t)(colon - r) : strlen(r);
		if (len >= sizeof(host))
			return 0;
		memcpy(host, r, len);
		host[len] = '\0';
		if (colon != NULL)
			port = colon + 1;
		if (inet_pton(AF_INET, host, addr) != 1)
			return 0;
	}
	return port == NULL || s_parse_int(port, 1, 65535, &tmp) == 0;
}

static int
s_set_str(struct parse *p, char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL) {
		p->oom = 1;
		return -1;
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static int
s_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	struct agent_config *cfg = p->cfg;
	unsigned long line = p->lineno;
	int k;

	if (line == p->syntax_line)
		return 1;
	if (section[0] == '\0') {
		s_err(p, line, "'%s' outside a section; put it under [agent]",
		    name);
		return 1;
	}
	/* The unknown section was reported once, at its header. */
	if (!p->in_agent)
		return 1;
	for (k = 0; k < K_COUNT; k++)
		if (strcmp(name, keys[k].name) == 0)
			break;
	if (k == K_COUNT) {
		s_err(p, line, "unknown key '%s'", name);
		return 1;
	}
	if (p->key_line[k] != 0 && !keys[k].repeatable) {
		s_err(p, line, "'%s' already set at line %lu", name,
		    p->key_line[k]);
		return 1;
	}
	p->key_line[k] = line;
	if (value[0] == '\0') {
		s_err(p, line, "'%s' has an empty value", name);
		return 1;
	}
	switch (k) {
	case K_NAME:
		s_set_str(p, &cfg->name, value);
		break;
	case K_REGION:
		s_set_str(p, &cfg->region, value);
		break;
	case K_SECRET_KEY:
		s_set_str(p, &cfg->secret_key, value);
		break;
	case K_COLLECTOR_KEY:
		s_set_str(p, &cfg->collector_key, value);
		break;
	case K_ENDPOINT:
		if (!s_endpoint_valid(value)) {
			s_err(p, line,
			    "endpoint '%s' is not tcp://HOST:PORT or "
			    "ipc://PATH",
			    value);
		} else if (cfg->n_endpoints == AGENT_ENDPOINTS_MAX) {
			s_err(p, line, "more than %d endpoints",
			    AGENT_ENDPOINTS_MAX);
		} else if ((cfg->endpoints[cfg->n_endpoints] = strdup(value)) ==
			   NULL) {
			p->oom = 1;
		} else {
			cfg->n_endpoints++;
		}
		break;
	case K_RESOLVER:
		if (!s_resolver_valid(value))
			s_err(p, line,
			    "resolver '%s' is not IP, IP:PORT or "
			    "[IPv6]:PORT",
			    value);
		else
			s_set_str(p, &cfg->resolver, value);
		break;
	case K_CA_FILE:
		s_set_str(p, &cfg->ca_file, value);
		break;
	case K_SPOOL_DIR:
		s_set_str(p, &cfg->spool_dir, value);
		break;
	case K_CONCURRENCY:
		if (s_parse_int(value, 1, 100000, &cfg->concurrency) == -1)
			s_err(p, line, "concurrency '%s' is not in 1..100000",
			    value);
		break;
	case K_TIMEOUT:
		if (s_parse_int(value, 1, 3600, &cfg->timeout_s) == -1)
			s_err(p, line, "timeout '%s' is not in 1..3600 seconds",
			    value);
		break;
	case K_HEARTBEAT:
		if (s_parse_int(value, 1, 3600, &cfg->heartbeat_s) == -1)
			s_err(p, line,
			    "heartbeat '%s' is not in 1..3600 seconds", value);
		break;
	case K_ACK_TIMEOUT:
		if (s_parse_int(value, 1, 3600, &cfg->ack_timeout_s) == -1)
			s_err(p, line,
			    "ack_timeout '%s' is not in 1..3600 seconds",
			    value);
		break;
	case K_HTTPS_PORT:
		if (s_parse_int(value, 1, 65535, &cfg->https_port) == -1)
			s_err(p, line, "https_port '%s' is not in 1..65535",
			    value);
		break;
	case K_SMTP_PORT:
		if (s_parse_int(value, 1, 65535, &cfg->smtp_port) == -1)
			s_err(p, line, "smtp_port '%s' is not in 1..65535",
			    value);
		break;
	case K_SPOOL_CAP:
		if (agent_config_parse_size(value, &cfg->spool_cap) == -1)
			s_err(p, line,
			    "spool_cap '%s' is not a size (digits, then K, M "
			    "or G)",
			    value);
		else if (cfg->spool_cap < AGENT_SPOOL_CAP_MIN)
			s_err(p, line, "spool_cap '%s' is below 1M", value);
		break;
	}
	return 1;
}

static int
s_z85_zero(const char *txt)
{
	return strspn(txt, "0") == strlen(txt);
}

/* Checks that need the whole file: required keys and the key files. */
static void
s_check(struct parse *p)
{
	struct agent_config *cfg = p->cfg;
	unsigned long line;
	struct stat st;
	zcert_t *cert;

	for (int k = 0; k < K_COUNT; k++)
		if (keys[k].required && p->key_line[k] == 0)
			s_err(p, p->section, "'%s' is required in [agent]",
			    keys[k].name);

	if (cfg->secret_key != NULL) {
		line = p->key_line[K_SECRET_KEY];
		if (stat(cfg->secret_key, &st) == -1) {
			s_err(p, line, "secret_key %s: %s", cfg->secret_key,
			    strerror(errno));
		} else if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
			/* A readable secret lets anyone be this vantage. */
			s_err(p, line,
			    "secret_key %s is readable by group or others "
			    "(mode %04o); chmod 600 it",
			    cfg->secret_key, (unsigned)(st.st_mode & 07777));
		} else if ((cfg->cert = zcert_load(cfg->secret_key)) == NULL ||
			   s_z85_zero(zcert_secret_txt(cfg->cert))) {
			s_err(p, line,
			    "secret_key %s: not a CURVE secret certificate "
			    "(make one with 'mtasts-agent keygen')",
			    cfg->secret_key);
		} else {
			snprintf(cfg->public_txt, sizeof(cfg->public_txt), "%s",
			    zcert_public_txt(cfg->cert));
		}
	}
	if (cfg->collector_key != NULL) {
		line = p->key_line[K_COLLECTOR_KEY];
		if (access(cfg->collector_key, R_OK) == -1) {
			s_err(p, line, "collector_key %s: %s",
			    cfg->collector_key, strerror(errno));
		} else if ((cert = zcert_load(cfg->collector_key)) == NULL ||
			   s_z85_zero(zcert_public_txt(cert))) {
			s_err(p, line,
			    "collector_key %s: not a CURVE certificate",
			    cfg->collector_key);
			zcert_destroy(&cert);
		} else {
			snprintf(cfg->collector_public_txt,
			    sizeof(cfg->collector_public_txt), "%s",
			    zcert_public_txt(cert));
			zcert_destroy(&cert);
		}
	}
	if (cfg->ca_file != NULL && access(cfg->ca_file, R_OK) == -1)
		s_err(p, p->key_line[K_CA_FILE], "ca_file %s: %s", cfg->ca_file,
		    strerror(errno));
	if (cfg->spool_dir != NULL && stat(cfg->spool_dir, &st) == 0 &&
	    !S_ISDIR(st.st_mode))
		s_err(p, p->key_line[K_SPOOL_DIR],
		    "spool_dir %s is not a directory", cfg->spool_dir);
	if (cfg->name == NULL) {
		/* The host name is what an operator would type anyway. */
		char host[HOST_NAME_MAX + 1];
		if (gethostname(host, sizeof(host)) == -1)
			snprintf(host, sizeof(host), "agent");
		host[HOST_NAME_MAX] = '\0';
		s_set_str(p, &cfg->name, host);
	}
	if (cfg->region == NULL)
		s_set_str(p, &cfg->region, "");
}

struct agent_config *
agent_config_load(const char *path, struct agent_config_errors *errs)
{
	struct agent_config *cfg;
	struct parse p = {.path = path, .errs = errs};
	int rc;

	errs->v = NULL;
	errs->n = 0;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->path = strdup(path)) == NULL) {
		free(cfg);
		s_err(&p, 0, "out of memory");
		return NULL;
	}
	cfg->concurrency = AGENT_CONCURRENCY_DEFAULT;
	cfg->timeout_s = AGENT_TIMEOUT_DEFAULT;
	cfg->spool_cap = AGENT_SPOOL_CAP_DEFAULT;
	cfg->heartbeat_s = AGENT_HEARTBEAT_DEFAULT;
	cfg->ack_timeout_s = AGENT_ACK_TIMEOUT_DEFAULT;
	cfg->https_port = 443;
	cfg->smtp_port = 25;
	p.cfg = cfg;
	if ((p.fp = fopen(path, "r")) == NULL) {
		s_err(&p, 0, "%s", strerror(errno));
		agent_config_free(&cfg);
		return NULL;
	}
	rc = ini_parse_stream(s_reader, &p, s_handler, &p);
	if (ferror(p.fp))
		s_err(&p, 0, "read error");
	fclose(p.fp);
	free(p.buf);
	/* inih found a syntax error our reader did not: report it too. */
	if (rc > 0 && p.syntax_errors == 0)
		s_err(&p, (unsigned long)rc, "syntax error");
	else if (rc < 0)
		p.oom = 1;
	s_check(&p);
	if (p.oom)
		s_err(&p, 0, "out of memory");
	if (errs->n > 0) {
		agent_config_free(&cfg);
		return NULL;
	}
	return cfg;
}

void
agent_config_free(struct agent_config **cfgp)
{
	struct agent_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->name);
	free(cfg->region);
	free(cfg->secret_key);
	free(cfg->collector_key);
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		free(cfg->endpoints[i]);
	free(cfg->resolver);
	free(cfg->ca_file);
	free(cfg->spool_dir);
	zcert_destroy(&cfg->cert);
	free(cfg);
	*cfgp = NULL;
}

void
agent_config_errors_free(struct agent_config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}
