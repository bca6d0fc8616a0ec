/* collector_config.c -- the collector's configuration file, parsed and checked.
 */
#include "collector_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "keys.h"

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
	K_COUNT
};

struct key_def {
	const char *name;
	int required;
	unsigned min, max; /* both 0 for strings */
};

static const struct key_def key_defs[K_COUNT] = {
    [K_BIND] = {"bind", 1, 0, 0},
    [K_SECRET_KEY] = {"secret_key", 1, 0, 0},
    [K_ALLOW_DIR] = {"allow_dir", 1, 0, 0},
    [K_DATABASE] = {"database", 1, 0, 0},
    [K_MIGRATIONS] = {"migrations", 0, 0, 0},
    [K_INTERVAL] = {"interval", 0, COLLECTOR_INTERVAL_MIN,
	COLLECTOR_INTERVAL_MAX},
    [K_CREDIT] = {"credit", 0, 1, COLLECTOR_CREDIT_MAX},
    [K_BATCH] = {"batch", 0, 1, COLLECTOR_BATCH_MAX},
    [K_RETENTION_DAYS] = {"retention_days", 0, 0, COLLECTOR_RETENTION_MAX},
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
	unsigned long section_line; /* of [collector], 0 when none yet */
	int in_collector;	    /* the current section is [collector] */
	int in_unknown;		    /* inside a section already reported */
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
			p->in_collector = 0;
			p->in_unknown = 1;
			return str;
		}
		*end = '\0';
		name = s_trim(s + 1);
		p->in_collector = strcmp(name, "collector") == 0;
		p->in_unknown = !p->in_collector;
		if (p->in_unknown)
			s_err(p, p->line,
			    "unknown section [%s]; the only one is [collector]",
			    name);
		else if (p->section_line != 0)
			s_err(p, p->line,
			    "[collector] again (first at line %lu)",
			    p->section_line);
		else
			p->section_line = p->line;
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
		if (strcmp(name, key_defs[k].name) == 0)
			break;
	if (k == K_COUNT) {
		s_err(p, line, "unknown key '%s'", name);
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
	unsigned long line =
	    p->key_line[k] != 0 ? p->key_line[k] : p->section_line;

	if (stat(dir, &st) == -1)
		s_err(p, line, "%s %s%s: %s", key_defs[k].name, dir, dflt,
		    strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		s_err(p, line, "%s %s%s: not a directory", key_defs[k].name,
		    dir, dflt);
}

/* What can only be judged once the whole file is read. */
static void
s_check(struct parse *p)
{
	struct collector_config *cfg = p->cfg;
	unsigned long at = p->section_line;
	char err[256];

	if (at == 0) {
		s_err(p, 0, "no [collector] section");
		return;
	}
	for (enum key k = 0; k < K_COUNT; k++)
		if (key_defs[k].required && p->key_line[k] == 0)
			s_err(p, at, "'%s' is required in [collector]",
			    key_defs[k].name);
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
