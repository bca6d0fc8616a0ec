/* collector_config.c -- the collector's configuration file, parsed and checked.
 */
#include "collector_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <ini.h>

#include "keys.h"

enum section { SEC_COLLECTOR, SEC_HTTP, SEC_NOTIFY, SEC_COUNT };

static const char *const section_names[SEC_COUNT] = {
    [SEC_COLLECTOR] = "collector",
    [SEC_HTTP] = "http",
    [SEC_NOTIFY] = "notify",
};

enum key {
	K_BIND,
	K_SECRET_KEY,
	K_ALLOW_DIR,
	K_DATABASE,
	K_MIGRATIONS,
	K_INTERVAL,
	K_CREDIT,
	K_BATCH,
	K_RETENTION_DAYS,
	K_QUORUM,
	K_PROPAGATION_WINDOW,
	K_HTTP_BIND,
	K_HTTP_TOKEN_FILE,
	K_WEBHOOK_URL,
	K_WEBHOOK_TOKEN_FILE,
	K_WEBHOOK_TIMEOUT,
	K_WEBHOOK_CA_FILE,
	K_EXTERNAL_URL,
	K_SYSLOG,
	K_SYSLOG_FORMAT,
	K_SYSLOG_FACILITY,
	K_COUNT
};

struct key_def {
	enum section section;
	const char *name;
	int required;
	unsigned min, max; /* both 0 for strings */
};

static const struct key_def key_defs[K_COUNT] = {
    [K_BIND] = {SEC_COLLECTOR, "bind", 1, 0, 0},
    [K_SECRET_KEY] = {SEC_COLLECTOR, "secret_key", 1, 0, 0},
    [K_ALLOW_DIR] = {SEC_COLLECTOR, "allow_dir", 1, 0, 0},
    [K_DATABASE] = {SEC_COLLECTOR, "database", 1, 0, 0},
    [K_MIGRATIONS] = {SEC_COLLECTOR, "migrations", 0, 0, 0},
    [K_INTERVAL] = {SEC_COLLECTOR, "interval", 0, COLLECTOR_INTERVAL_MIN,
	COLLECTOR_INTERVAL_MAX},
    [K_CREDIT] = {SEC_COLLECTOR, "credit", 0, 1, COLLECTOR_CREDIT_MAX},
    [K_BATCH] = {SEC_COLLECTOR, "batch", 0, 1, COLLECTOR_BATCH_MAX},
    [K_RETENTION_DAYS] = {SEC_COLLECTOR, "retention_days", 0, 0,
	COLLECTOR_RETENTION_MAX},
    [K_QUORUM] = {SEC_COLLECTOR, "quorum", 0, 1, COLLECTOR_QUORUM_MAX},
    [K_PROPAGATION_WINDOW] = {SEC_COLLECTOR, "propagation_window", 0, 0,
	COLLECTOR_PROPAGATION_WINDOW_MAX},
    [K_HTTP_BIND] = {SEC_HTTP, "bind", 1, 0, 0},
    [K_HTTP_TOKEN_FILE] = {SEC_HTTP, "token_file", 0, 0, 0},
    [K_WEBHOOK_URL] = {SEC_NOTIFY, "webhook_url", 0, 0, 0},
    [K_WEBHOOK_TOKEN_FILE] = {SEC_NOTIFY, "webhook_token_file", 0, 0, 0},
    [K_WEBHOOK_TIMEOUT] = {SEC_NOTIFY, "webhook_timeout", 0, 1,
	COLLECTOR_WEBHOOK_TIMEOUT_MAX},
    [K_WEBHOOK_CA_FILE] = {SEC_NOTIFY, "webhook_ca_file", 0, 0, 0},
    [K_EXTERNAL_URL] = {SEC_NOTIFY, "external_url", 0, 0, 0},
    [K_SYSLOG] = {SEC_NOTIFY, "syslog", 0, 0, 0},
    [K_SYSLOG_FORMAT] = {SEC_NOTIFY, "syslog_format", 0, 0, 0},
    [K_SYSLOG_FACILITY] = {SEC_NOTIFY, "syslog_facility", 0, 0, 0},
};

/*
 * State shared by the line reader and the inih handler.  inih 55 tells
 * the handler no line number, so the reader counts lines itself; inih
 * calls the handler for a line before it reads the next one, so p->line is
 * the line of the key being handled.
 */
struct parse {
	const char *path;
	FILE *fp;
	char *buf;
	size_t cap;
	unsigned long line;
	/* Line of each section's header, 0 when not (yet) seen. */
	unsigned long section_line[SEC_COUNT];
	enum section cur; /* the current section, when !in_unknown */
	int in_unknown;	  /* inside a section already reported */
	int oom;
	unsigned long key_line[K_COUNT];
	struct collector_config *cfg;
	struct collector_config_errors *errs;
};

static void s_err(struct parse *p, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_err(struct parse *p, unsigned long line, const char *fmt, ...)
{
	char msg[512];
	char *full, **v;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0) {
		if (asprintf(&full, "%s:%lu: %s", p->path, line, msg) == -1)
			full = NULL;
	} else if (asprintf(&full, "%s: %s", p->path, msg) == -1) {
		full = NULL;
	}
	if (full == NULL) {
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

static char *
s_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * The ini_reader: hands inih one line at a time, with leading blanks
 * removed (so that inih never treats a line as the continuation of the
 * previous value), and reports syntax errors and unknown sections itself,
 * giving inih an empty line instead, so that every error is reported with
 * its line rather than only the first.
 */
static char *
s_read(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t n;
	char *s;

	if ((n = getline(&p->buf, &p->cap, p->fp)) == -1)
		return NULL;
	p->line++;
	str[0] = '\0';
	if ((size_t)n != strlen(p->buf)) {
		s_err(p, p->line, "line holds a NUL byte");
		return str;
	}
	s = p->buf;
	if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* a UTF-8 byte order mark */
	s = s_trim(s);
	if (strlen(s) + 1 >= (size_t)num) {
		s_err(p, p->line, "line too long (at most %d bytes)", num - 2);
		return str;
	}
	if (*s == '\0' || *s == '#' || *s == ';') {
		snprintf(str, (size_t)num, "%s\n", s);
		return str;
	}
	if (*s == '[') {
		char *end = strchr(s, ']'), *name;

		if (end == NULL) {
			s_err(p, p->line, "section header without ']'");
			/* Keys below belong to no section we know. */
			p->in_unknown = 1;
			return str;
		}
		*end = '\0';
		name = s_trim(s + 1);
		p->in_unknown = 1;
		for (enum section sec = 0; sec < SEC_COUNT; sec++) {
			if (strcmp(name, section_names[sec]) == 0) {
				p->cur = sec;
				p->in_unknown = 0;
			}
		}
		if (p->in_unknown)
			s_err(p, p->line,
			    "unknown section [%s]; known: [collector], "
			    "[http], [notify]",
			    name);
		else if (p->section_line[p->cur] != 0)
			s_err(p, p->line, "[%s] again (first at line %lu)",
			    name, p->section_line[p->cur]);
		else
			p->section_line[p->cur] = p->line;
		snprintf(str, (size_t)num, "[%s]\n", name);
		return str;
	}
	if (strpbrk(s, "=:") == NULL) {
		s_err(p, p->line, "expected 'key = value'");
		return str;
	}
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

static int
s_number(const char *value, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)value[0]))
		return -1;
	errno = 0;
	v = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0' || v > 0xffffffffUL)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static char **
s_string_slot(struct collector_config *cfg, enum key k)
{
	switch (k) {
	case K_BIND:
		return &cfg->bind;
	case K_SECRET_KEY:
		return &cfg->secret_key;
	case K_ALLOW_DIR:
		return &cfg->allow_dir;
	case K_DATABASE:
		return &cfg->database;
	case K_MIGRATIONS:
		return &cfg->migrations;
	case K_HTTP_BIND:
		return &cfg->http_bind;
	case K_HTTP_TOKEN_FILE:
		return &cfg->http_token_file;
	case K_WEBHOOK_URL:
		return &cfg->webhook_url;
	case K_WEBHOOK_TOKEN_FILE:
		return &cfg->webhook_token_file;
	case K_WEBHOOK_CA_FILE:
		return &cfg->webhook_ca_file;
	case K_EXTERNAL_URL:
		return &cfg->external_url;
	case K_SYSLOG:
		return &cfg->syslog;
	case K_SYSLOG_FORMAT:
		return &cfg->syslog_format;
	case K_SYSLOG_FACILITY:
		return &cfg->syslog_facility_name;
	default:
		return NULL;
	}
}

static unsigned *
s_number_slot(struct collector_config *cfg, enum key k)
{
	switch (k) {
	case K_INTERVAL:
		return &cfg->interval_s;
	case K_CREDIT:
		return &cfg->credit;
	case K_BATCH:
		return &cfg->batch;
	case K_RETENTION_DAYS:
		return &cfg->retention_days;
	case K_QUORUM:
		return &cfg->quorum;
	case K_PROPAGATION_WINDOW:
		return &cfg->propagation_window_s;
	case K_WEBHOOK_TIMEOUT:
		return &cfg->webhook_timeout_s;
	default:
		return NULL;
	}
}

static int
s_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	unsigned long line = p->line;
	enum key k;
	char **str;

	if (p->in_unknown)
		return 1; /* the section header was reported */
	if (section[0] == '\0') {
		s_err(p, line,
		    "'%s' outside a section; put it under [collector]", name);
		return 1;
	}
	for (k = 0; k < K_COUNT; k++)
		if (key_defs[k].section == p->cur &&
		    strcmp(name, key_defs[k].name) == 0)
			break;
	if (k == K_COUNT) {
		s_err(p, line, "unknown key '%s' in [%s]", name,
		    section_names[p->cur]);
		return 1;
	}
	if (p->key_line[k] != 0) {
		s_err(p, line, "'%s' already set at line %lu", name,
		    p->key_line[k]);
		return 1;
	}
	p->key_line[k] = line;
	if (value[0] == '\0') {
		s_err(p, line, "'%s' has an empty value", name);
		return 1;
	}
	if ((str = s_string_slot(p->cfg, k)) != NULL) {
		if (k == K_BIND && strstr(value, "://") == NULL) {
			s_err(p, line,
			    "bind '%s' is not a ZeroMQ endpoint "
			    "(tcp://ADDRESS:PORT)",
			    value);
			return 1;
		}
		free(*str);
		if ((*str = strdup(value)) == NULL)
			p->oom = 1;
		return 1;
	}
	if (s_number(value, s_number_slot(p->cfg, k)) == -1 ||
	    *s_number_slot(p->cfg, k) < key_defs[k].min ||
	    *s_number_slot(p->cfg, k) > key_defs[k].max) {
		s_err(p, line, "%s '%s' is not a number in %u..%u", name, value,
		    key_defs[k].min, key_defs[k].max);
		return 1;
	}
	return 1;
}

static void
s_check_dir(struct parse *p, enum key k, const char *dir)
{
	struct stat st;

	const char *dflt = p->key_line[k] == 0 ? " (the default)" : "";
	unsigned long line = p->key_line[k] != 0
				 ? p->key_line[k]
				 : p->section_line[key_defs[k].section];

	if (stat(dir, &st) == -1)
		s_err(p, line, "%s %s%s: %s", key_defs[k].name, dir, dflt,
		    strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		s_err(p, line, "%s %s%s: not a directory", key_defs[k].name,
		    dir, dflt);
}

/*
 * Reads a bearer token: one line, no blanks, and a file that group or
 * others cannot read, since whoever reads it can act as the operator.
 */
static char *
s_token(struct parse *p, enum key k, const char *path)
{
	char buf[COLLECTOR_TOKEN_MAX + 2], *tok = NULL;
	struct stat st;
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		s_err(p, p->key_line[k], "%s %s: %s", key_defs[k].name, path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || (st.st_mode & 077) != 0) {
		s_err(p, p->key_line[k],
		    "%s %s: group or others may read it (chmod 600)",
		    key_defs[k].name, path);
		fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	if (ferror(fp)) {
		s_err(p, p->key_line[k], "%s %s: read error", key_defs[k].name,
		    path);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n < COLLECTOR_TOKEN_MIN || n > COLLECTOR_TOKEN_MAX ||
	    strlen(buf) != n || strpbrk(buf, " \t\r\n") != NULL) {
		s_err(p, p->key_line[k],
		    "%s %s: want one line of %d..%d printable characters",
		    key_defs[k].name, path, COLLECTOR_TOKEN_MIN,
		    COLLECTOR_TOKEN_MAX);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isgraph((unsigned char)buf[i])) {
			s_err(p, p->key_line[k], "%s %s: not printable ASCII",
			    key_defs[k].name, path);
			return NULL;
		}
	}
	if ((tok = strdup(buf)) == NULL)
		p->oom = 1;
	explicit_bzero(buf, sizeof(buf));
	return tok;
}

/*
 * [http] bind is "IP:PORT" or "[IPv6]:PORT"; anything but a loopback
 * address needs a token, since the API tells who is vulnerable.
 */
static void
s_check_http(struct parse *p)
{
	struct collector_config *cfg = p->cfg;
	char host[64];
	unsigned port;

	if (cfg->http_bind == NULL)
		return;
	if (collector_config_split_hostport(
		cfg->http_bind, host, sizeof(host), &port) == -1) {
		s_err(p, p->key_line[K_HTTP_BIND],
		    "bind '%s' is not IP:PORT or [IPv6]:PORT", cfg->http_bind);
		return;
	}
	if (cfg->http_token_file != NULL)
		cfg->http_token =
		    s_token(p, K_HTTP_TOKEN_FILE, cfg->http_token_file);
	else if (strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0)
		s_err(p, p->key_line[K_HTTP_BIND],
		    "bind %s is not a loopback address: set token_file",
		    cfg->http_bind);
}

static const struct {
	const char *name;
	int code;
} facilities[] = {
    {"kern", 0},
    {"user", 1},
    {"mail", 2},
    {"daemon", 3},
    {"auth", 4},
    {"syslog", 5},
    {"lpr", 6},
    {"news", 7},
    {"uucp", 8},
    {"cron", 9},
    {"authpriv", 10},
    {"ftp", 11},
    {"local0", 16},
    {"local1", 17},
    {"local2", 18},
    {"local3", 19},
    {"local4", 20},
    {"local5", 21},
    {"local6", 22},
    {"local7", 23},
};

static void
s_check_notify(struct parse *p)
{
	struct collector_config *cfg = p->cfg;
	const char *u = cfg->webhook_url, *f = cfg->syslog_facility_name;
	unsigned n;

	if (u != NULL && strncmp(u, "http://", 7) != 0 &&
	    strncmp(u, "https://", 8) != 0)
		s_err(p, p->key_line[K_WEBHOOK_URL],
		    "webhook_url '%s' is not an http:// or https:// URL", u);
	if (cfg->webhook_token_file != NULL)
		cfg->webhook_token =
		    s_token(p, K_WEBHOOK_TOKEN_FILE, cfg->webhook_token_file);
	if (cfg->syslog != NULL && strncmp(cfg->syslog, "udp://", 6) != 0 &&
	    strncmp(cfg->syslog, "tcp://", 6) != 0 &&
	    strncmp(cfg->syslog, "unix:", 5) != 0)
		s_err(p, p->key_line[K_SYSLOG],
		    "syslog '%s': want udp://HOST:PORT, tcp://HOST:PORT or "
		    "unix:PATH",
		    cfg->syslog);
	if (cfg->syslog_format != NULL &&
	    strcmp(cfg->syslog_format, "rfc5424") != 0 &&
	    strcmp(cfg->syslog_format, "cef") != 0)
		s_err(p, p->key_line[K_SYSLOG_FORMAT],
		    "syslog_format '%s': want rfc5424 or cef",
		    cfg->syslog_format);
	if (f == NULL)
		return;
	/* A number 0..23 too, as syslog.conf(5) users may write it. */
	if (s_number(f, &n) == 0 && n <= 23) {
		cfg->syslog_facility = (int)n;
		return;
	}
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]);
	     i++) {
		if (strcmp(f, facilities[i].name) == 0) {
			cfg->syslog_facility = facilities[i].code;
			return;
		}
	}
	s_err(p, p->key_line[K_SYSLOG_FACILITY],
	    "syslog_facility '%s': want 0..23 or a name (daemon, mail, "
	    "local0..local7, ...)",
	    f);
}

int
collector_config_split_hostport(
    const char *in, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = in;
	size_t hl;
	unsigned char addr[16];
	char *end;
	unsigned long v;

	if (*in == '[') {
		const char *close = strchr(in, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = in + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(in, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - in);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(*in == '[' ? AF_INET6 : AF_INET, host, addr) != 1)
		return -1;
	if (!isdigit((unsigned char)colon[1]))
		return -1;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* What can only be judged once the whole file is read. */
static void
s_check(struct parse *p)
{
	struct collector_config *cfg = p->cfg;
	unsigned long at = p->section_line[SEC_COLLECTOR];
	char err[256];

	if (at == 0) {
		s_err(p, 0, "no [collector] section");
		return;
	}
	for (enum key k = 0; k < K_COUNT; k++) {
		enum section sec = key_defs[k].section;

		/* A key is required only in a section that is there. */
		if (key_defs[k].required && p->key_line[k] == 0 &&
		    p->section_line[sec] != 0)
			s_err(p, p->section_line[sec],
			    "'%s' is required in [%s]", key_defs[k].name,
			    section_names[sec]);
	}
	s_check_http(p);
	s_check_notify(p);
	if (cfg->secret_key != NULL) {
		cfg->cert = keys_load_secret(cfg->secret_key, err, sizeof(err));
		if (cfg->cert == NULL)
			s_err(p, p->key_line[K_SECRET_KEY], "secret_key %s: %s",
			    cfg->secret_key, err);
		else
			snprintf(cfg->public_txt, sizeof(cfg->public_txt), "%s",
			    zcert_public_txt(cfg->cert));
	}
	if (cfg->allow_dir != NULL)
		s_check_dir(p, K_ALLOW_DIR, cfg->allow_dir);
	if (cfg->migrations != NULL)
		s_check_dir(p, K_MIGRATIONS, cfg->migrations);
}

struct collector_config *
collector_config_load(const char *path, struct collector_config_errors *errs)
{
	struct parse p;
	struct collector_config *cfg;
	int rc;

	errs->v = NULL;
	errs->n = 0;
	memset(&p, 0, sizeof(p));
	p.path = path;
	p.errs = errs;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->path = strdup(path)) == NULL) {
		free(cfg);
		s_err(&p, 0, "out of memory");
		return NULL;
	}
	cfg->interval_s = COLLECTOR_INTERVAL_DEFAULT;
	cfg->credit = COLLECTOR_CREDIT_DEFAULT;
	cfg->batch = COLLECTOR_BATCH_DEFAULT;
	cfg->retention_days = COLLECTOR_RETENTION_DEFAULT;
	cfg->webhook_timeout_s = COLLECTOR_WEBHOOK_TIMEOUT_DEFAULT;
	cfg->syslog_facility = COLLECTOR_SYSLOG_FACILITY_DEFAULT;
	p.cfg = cfg;
	if ((p.fp = fopen(path, "r")) == NULL) {
		s_err(&p, 0, "%s", strerror(errno));
		collector_config_free(&cfg);
		return NULL;
	}
	rc = ini_parse_stream(s_read, &p, s_handler, &p);
	if (ferror(p.fp))
		s_err(&p, 0, "read error");
	else if (rc > 0 && p.errs->n == 0)
		s_err(&p, (unsigned long)rc, "syntax error");
	fclose(p.fp);
	free(p.buf);
	if (cfg->migrations == NULL &&
	    (cfg->migrations = strdup(COLLECTOR_MIGRATIONS_DEFAULT)) == NULL)
		p.oom = 1;
	if (!p.oom)
		s_check(&p);
	if (p.oom && errs->n == 0)
		s_err(&p, 0, "out of memory");
	if (p.oom || errs->n > 0) {
		/* Something must tell the caller why, even out of memory. */
		collector_config_free(&cfg);
		return NULL;
	}
	return cfg;
}

void
collector_config_free(struct collector_config **cfg)
{
	struct collector_config *c;

	if (cfg == NULL || (c = *cfg) == NULL)
		return;
	free(c->path);
	free(c->bind);
	free(c->secret_key);
	free(c->allow_dir);
	free(c->database);
	free(c->migrations);
	free(c->http_bind);
	free(c->http_token_file);
	free(c->webhook_url);
	free(c->webhook_token_file);
	free(c->webhook_ca_file);
	free(c->external_url);
	free(c->syslog);
	free(c->syslog_format);
	free(c->syslog_facility_name);
	if (c->http_token != NULL)
		explicit_bzero(c->http_token, strlen(c->http_token));
	free(c->http_token);
	if (c->webhook_token != NULL)
		explicit_bzero(c->webhook_token, strlen(c->webhook_token));
	free(c->webhook_token);
	zcert_destroy(&c->cert);
	free(c);
	*cfg = NULL;
}

void
collector_config_errors_free(struct collector_config_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}
