/* test_collector_config.c -- the collector's configuration file and keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector_config.h"
#include "keys.h"

/* A directory per test run with a key pair, an allow_dir and migrations. */
static struct {
	char dir[64];
	char conf[128];
	char secret[128];
	char allow[128];
	char migrations[128];
} fx;

static int
setup(void **state)
{
	char err[256];

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_ccfg.XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	if (keys_generate(fx.dir, err, sizeof(err)) == -1) {
		fprintf(stderr, "keygen: %s\n", err);
		return -1;
	}
	snprintf(fx.conf, sizeof(fx.conf), "%s/c.conf", fx.dir);
	snprintf(
	    fx.secret, sizeof(fx.secret), "%s/collector.key_secret", fx.dir);
	snprintf(fx.allow, sizeof(fx.allow), "%s/allow", fx.dir);
	snprintf(fx.migrations, sizeof(fx.migrations), "%s/sql", fx.dir);
	if (mkdir(fx.allow, 0755) == -1 || mkdir(fx.migrations, 0755) == -1)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes the config file; "@S@", "@A@", "@M@" become the fixture paths. */
static void
write_conf(const char *text)
{
	FILE *fp = fopen(fx.conf, "w");

	assert_non_null(fp);
	for (const char *p = text; *p != '\0'; p++) {
		if (strncmp(p, "@S@", 3) == 0) {
			fputs(fx.secret, fp);
			p += 2;
		} else if (strncmp(p, "@A@", 3) == 0) {
			fputs(fx.allow, fp);
			p += 2;
		} else if (strncmp(p, "@M@", 3) == 0) {
			fputs(fx.migrations, fp);
			p += 2;
		} else {
			fputc(*p, fp);
		}
	}
	assert_int_equal(fclose(fp), 0);
}

/* 1 when some error is exactly "CONF:line: ..." and contains text. */
static int
has_error(const struct collector_config_errors *errs, unsigned long line,
    const char *text)
{
	char prefix[192];

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%lu: ", fx.conf, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", fx.conf);
	for (size_t i = 0; i < errs->n; i++)
		if (strncmp(errs->v[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs->v[i], text) != NULL)
			return 1;
	return 0;
}

static void
dump(const struct collector_config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "  %s\n", errs->v[i]);
}

/* Loads a config that must fail; the errors are left in errs. */
static void
load_bad(const char *text, struct collector_config_errors *errs)
{
	struct collector_config *cfg;

	write_conf(text);
	cfg = collector_config_load(fx.conf, errs);
	if (cfg != NULL)
		collector_config_free(&cfg);
	assert_null(cfg);
	assert_true(errs->n > 0);
}

#define BASE                                                                   \
	"[collector]\n"                                                        \
	"bind = tcp://127.0.0.1:7350\n"                                        \
	"secret_key = @S@\n"                                                   \
	"allow_dir = @A@\n"                                                    \
	"database = host=/tmp dbname=mtasts\n"                                 \
	"migrations = @M@\n"

static void
test_valid(void **state)
{
	struct collector_config_errors errs;
	struct collector_config *cfg;

	(void)state;
	write_conf("# the collector\n"
		   "\n"
		   "[collector]\n"
		   "  bind = tcp://127.0.0.1:7350   ; inline comment\n"
		   "secret_key = @S@\n"
		   "allow_dir = @A@\n"
		   "database = host=/tmp port=5432 dbname=mtasts\n"
		   "migrations = @M@\n"
		   "interval = 600\n"
		   "credit = 32\n"
		   "batch = 50\n"
		   "retention_days = 0\n");
	cfg = collector_config_load(fx.conf, &errs);
	if (cfg == NULL)
		dump(&errs);
	assert_non_null(cfg);
	assert_int_equal(errs.n, 0);
	assert_string_equal(cfg->bind, "tcp://127.0.0.1:7350");
	assert_string_equal(cfg->database, "host=/tmp port=5432 dbname=mtasts");
	assert_string_equal(cfg->allow_dir, fx.allow);
	assert_string_equal(cfg->migrations, fx.migrations);
	assert_int_equal(cfg->interval_s, 600);
	assert_int_equal(cfg->credit, 32);
	assert_int_equal(cfg->batch, 50);
	assert_int_equal(cfg->retention_days, 0);
	assert_non_null(cfg->cert);
	assert_int_equal(strlen(cfg->public_txt), COLLECTOR_Z85_KEY_LEN);
	collector_config_free(&cfg);
	assert_null(cfg);
	collector_config_free(&cfg); /* NULL is fine */
}

static void
test_defaults(void **state)
{
	struct collector_config_errors errs;
	struct collector_config *cfg;

	(void)state;
	write_conf(BASE);
	cfg = collector_config_load(fx.conf, &errs);
	if (cfg == NULL)
		dump(&errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->interval_s, COLLECTOR_INTERVAL_DEFAULT);
	assert_int_equal(cfg->credit, COLLECTOR_CREDIT_DEFAULT);
	assert_int_equal(cfg->batch, COLLECTOR_BATCH_DEFAULT);
	assert_int_equal(cfg->retention_days, COLLECTOR_RETENTION_DEFAULT);
	collector_config_free(&cfg);
}

/* Every kind of error, each at its line, all from one file. */
static void
test_every_error(void **state)
{
	struct collector_config_errors errs;

	(void)state;
	load_bad("stray = 1\n"			 /* 1 */
		 "[collector\n"			 /* 2 */
		 "[other]\n"			 /* 3 */
		 "ignored = 1\n"		 /* 4 */
		 "[collector]\n"		 /* 5 */
		 "bind = tcp://127.0.0.1:7350\n" /* 6 */
		 "bind = tcp://127.0.0.1:7351\n" /* 7 */
		 "no equals sign here\n"	 /* 8 */
		 "colour = blue\n"		 /* 9 */
		 "database =\n"			 /* 10 */
		 "secret_key = @S@\n"		 /* 11 */
		 "allow_dir = @A@\n"		 /* 12 */
		 "interval = soon\n"		 /* 13 */
		 "credit = -1\n"		 /* 14 */
		 "batch = 12x\n"		 /* 15 */
		 "migrations = @M@\n",		 /* 16 */
	    &errs);
	if (errs.n != 10)
		dump(&errs);
	/* Line 1 is before any section: inih hands it over as such. */
	assert_true(has_error(&errs, 1, "outside a section"));
	assert_true(has_error(&errs, 2, "without ']'"));
	assert_true(has_error(&errs, 3, "unknown section [other]"));
	assert_true(has_error(&errs, 7, "already set at line 6"));
	assert_true(has_error(&errs, 8, "expected 'key = value'"));
	assert_true(has_error(&errs, 9, "unknown key 'colour'"));
	assert_true(has_error(&errs, 10, "empty value"));
	assert_true(has_error(&errs, 13, "interval 'soon' is not a number"));
	assert_true(has_error(&errs, 14, "credit '-1'"));
	assert_true(has_error(&errs, 15, "batch '12x'"));
	/* The key under the unknown section is not reported twice. */
	assert_false(has_error(&errs, 4, ""));
	assert_int_equal(errs.n, 10);
	collector_config_errors_free(&errs);
	assert_int_equal(errs.n, 0);
}

static void
test_bad_bind(void **state)
{
	struct collector_config_errors errs;

	(void)state;
	load_bad("[collector]\n"
		 "bind = 127.0.0.1:7350\n"
		 "secret_key = @S@\n"
		 "allow_dir = @A@\n"
		 "database = dbname=x\n"
		 "migrations = @M@\n",
	    &errs);
	assert_true(has_error(&errs, 2, "not a ZeroMQ endpoint"));
	collector_config_errors_free(&errs);
}

static void
test_ranges(void **state)
{
	struct collector_config_errors errs;

	(void)state;
	load_bad(BASE "interval = 9\n"		  /* 7 */
		      "credit = 0\n"		  /* 8 */
		      "batch = 10001\n"		  /* 9 */
		      "retention_days = 36501\n", /* 10 */
	    &errs);
	assert_true(has_error(&errs, 7,
	    "interval '9' is not a number in "
	    "10..86400"));
	assert_true(has_error(&errs, 8, "credit '0' is not a number in 1.."));
	assert_true(has_error(&errs, 9, "batch '10001'"));
	assert_true(has_error(&errs, 10, "retention_days '36501'"));
	assert_int_equal(errs.n, 4);
	collector_config_errors_free(&errs);

	load_bad(BASE "interval = 86401\n"
		      "credit = 99999999999999999999\n",
	    &errs);
	assert_true(has_error(&errs, 7, "interval '86401'"));
	assert_true(has_error(&errs, 8, "credit '99999999999999999999'"));
	collector_config_errors_free(&errs);

	/* The bounds themselves are fine. */
	write_conf(BASE "interval = 10\ncredit = 1\nbatch = 10000\n"
			"retention_days = 36500\n");
	{
		struct collector_config *cfg =
		    collector_config_load(fx.conf, &errs);
		if (cfg == NULL)
			dump(&errs);
		assert_non_null(cfg);
		assert_int_equal(cfg->interval_s, 10);
		collector_config_free(&cfg);
	}
}

static void
test_missing_required(void **state)
{
	struct collector_config_errors errs;

	(void)state;
	load_bad("# nothing but the section\n"
		 "[collector]\n"
		 "interval = 60\n",
	    &errs);
	/* Reported at the [collector] line, every one of them. */
	assert_true(has_error(&errs, 2, "'bind' is required"));
	assert_true(has_error(&errs, 2, "'secret_key' is required"));
	assert_true(has_error(&errs, 2, "'allow_dir' is required"));
	assert_true(has_error(&errs, 2, "'database' is required"));
	collector_config_errors_free(&errs);

	load_bad("# empty\n", &errs);
	assert_true(has_error(&errs, 0, "no [collector] section"));
	collector_config_errors_free(&errs);
}

static void
test_secret_mode(void **state)
{
	struct collector_config_errors errs;

	(void)state;
	assert_int_equal(chmod(fx.secret, 0644), 0);
	load_bad(BASE, &errs);
	assert_true(has_error(&errs, 3, "group or others may access it"));
	assert_true(has_error(&errs, 3, "0644"));
	collector_config_errors_free(&errs);

	assert_int_equal(chmod(fx.secret, 0640), 0);
	load_bad(BASE, &errs);
	assert_true(has_error(&errs, 3, "0640"));
	collector_config_errors_free(&errs);
	assert_int_equal(chmod(fx.secret, 0600), 0);
}

static void
test_bad_paths(void **state)
{
	struct collector_config_errors errs;
	char pub[160];

	(void)state;
	load_bad("[collector]\n"
		 "bind = tcp://127.0.0.1:1\n"
		 "secret_key = /nonexistent/key_secret\n" /* 3 */
		 "allow_dir = @S@\n"			  /* 4 */
		 "database = dbname=x\n"
		 "migrations = /nonexistent/sql\n", /* 6 */
	    &errs);
	assert_true(has_error(&errs, 3, "secret_key /nonexistent/key_secret"));
	assert_true(has_error(&errs, 4, "not a directory"));
	assert_true(has_error(&errs, 6, "migrations /nonexistent/sql"));
	collector_config_errors_free(&errs);

	/*
	 * A public certificate is not a secret key.  (Not collector.key
	 * itself: zcert_load would find collector.key_secret beside it.)
	 */
	{
		zcert_t *c = zcert_new();
		snprintf(pub, sizeof(pub), "%s/lonely.pub", fx.dir);
		assert_int_equal(zcert_save_public(c, pub), 0);
		zcert_destroy(&c);
		assert_int_equal(chmod(pub, 0600), 0);
	}
	{
		char text[512];
		snprintf(text, sizeof(text),
		    "[collector]\nbind = tcp://127.0.0.1:1\nsecret_key = %s\n"
		    "allow_dir = @A@\ndatabase = dbname=x\nmigrations = @M@\n",
		    pub);
		load_bad(text, &errs);
	}
	assert_true(has_error(&errs, 3, "holds no secret key"));
	collector_config_errors_free(&errs);
}

static void
test_long_line(void **state)
{
	struct collector_config_errors errs;
	char text[1024];

	(void)state;
	snprintf(text, sizeof(text), BASE "# %0300d\n", 0);
	load_bad(text, &errs);
	assert_true(has_error(&errs, 7, "line too long"));
	assert_int_equal(errs.n, 1);
	collector_config_errors_free(&errs);
}

static void
test_missing_file(void **state)
{
	struct collector_config_errors errs;
	struct collector_config *cfg;

	(void)state;
	cfg = collector_config_load("/nonexistent/c.conf", &errs);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.v[0], "/nonexistent/c.conf: "));
	collector_config_errors_free(&errs);
}

/* Writes a token file with the given mode; returns its path. */
static const char *
write_token(const char *name, const char *text, mode_t mode)
{
	static char path[4][160];
	static int next;
	char *p = path[next++ % 4];
	FILE *fp;

	snprintf(p, sizeof(path[0]), "%s/%s", fx.dir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

static void
test_http_notify(void **state)
{
	struct collector_config_errors errs;
	struct collector_config *cfg;
	char text[2048];
	const char *tok;

	(void)state;
	tok = write_token("tok", "0123456789abcdef0123\n", 0600);
	snprintf(text, sizeof(text),
	    BASE "quorum = 3\n"
		 "propagation_window = 600\n"
		 "[http]\n"
		 "bind = [::]:8350\n"
		 "token_file = %s\n"
		 "[notify]\n"
		 "webhook_url = http://127.0.0.1:9093/hook\n"
		 "webhook_timeout = 5\n"
		 "syslog = udp://127.0.0.1:514\n"
		 "syslog_format = cef\n"
		 "syslog_facility = local3\n",
	    tok);
	write_conf(text);
	cfg = collector_config_load(fx.conf, &errs);
	if (cfg == NULL)
		dump(&errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->quorum, 3);
	assert_int_equal(cfg->propagation_window_s, 600);
	assert_string_equal(cfg->http_bind, "[::]:8350");
	assert_string_equal(cfg->http_token, "0123456789abcdef0123");
	assert_string_equal(cfg->webhook_url, "http://127.0.0.1:9093/hook");
	assert_int_equal(cfg->webhook_timeout_s, 5);
	assert_string_equal(cfg->syslog_format, "cef");
	assert_int_equal(cfg->syslog_facility, 19);
	assert_null(cfg->webhook_token);
	collector_config_free(&cfg);

	/* Defaults: no API, no sinks, local0. */
	write_conf(BASE);
	cfg = collector_config_load(fx.conf, &errs);
	assert_non_null(cfg);
	assert_null(cfg->http_bind);
	assert_null(cfg->webhook_url);
	assert_null(cfg->syslog);
	assert_int_equal(cfg->syslog_facility, 16);
	assert_int_equal(cfg->webhook_timeout_s, 10);
	collector_config_free(&cfg);

	/* The facility as a number. */
	write_conf(BASE "[notify]\nsyslog_facility = 23\n");
	cfg = collector_config_load(fx.conf, &errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->syslog_facility, 23);
	collector_config_free(&cfg);
	load_bad(BASE "[notify]\nsyslog_facility = 24\n", &errs);
	if (!has_error(&errs, 8, "want 0..23 or a name")) {
		dump(&errs);
		fail();
	}
	collector_config_errors_free(&errs);

	/* Every mistake, each at its line. */
	tok = write_token("loose", "0123456789abcdef0123\n", 0644);
	snprintf(text, sizeof(text),
	    BASE "[http]\n"		      /* 7 */
		 "bind = 0.0.0.0:8350\n"      /* 8 */
		 "listen = 1\n"		      /* 9 */
		 "[notify]\n"		      /* 10 */
		 "webhook_url = ftp://x/\n"   /* 11 */
		 "syslog = 127.0.0.1:514\n"   /* 12 */
		 "syslog_format = json\n"     /* 13 */
		 "syslog_facility = local9\n" /* 14 */
		 "webhook_timeout = 0\n"      /* 15 */
		 "webhook_token_file = %s\n"  /* 16 */
		 "[http]\n",		      /* 17 */
	    tok);
	load_bad(text, &errs);
	if (!has_error(&errs, 8, "not a loopback address") ||
	    !has_error(&errs, 9, "unknown key 'listen' in [http]") ||
	    !has_error(&errs, 11, "not an http:// or https:// URL") ||
	    !has_error(&errs, 12, "want udp://") ||
	    !has_error(&errs, 13, "want rfc5424 or cef") ||
	    !has_error(&errs, 14, "syslog_facility 'local9'") ||
	    !has_error(&errs, 15, "webhook_timeout '0'") ||
	    !has_error(&errs, 16, "group or others may read it") ||
	    !has_error(&errs, 17, "[http] again")) {
		dump(&errs);
		fail();
	}
	collector_config_errors_free(&errs);

	/* [http] without bind; a bind that is not an address; short token. */
	tok = write_token("short", "abc\n", 0600);
	snprintf(text, sizeof(text),
	    BASE "[http]\n" /* 7 */
		 "token_file = %s\n" /* 8 */,
	    tok);
	load_bad(text, &errs);
	if (!has_error(&errs, 7, "'bind' is required in [http]")) {
		dump(&errs);
		fail();
	}
	collector_config_errors_free(&errs);
	snprintf(text, sizeof(text),
	    BASE "[http]\n"
		 "bind = localhost:80\n" /* 8 */
		 "[notify]\n"
		 "webhook_token_file = %s\n" /* 10 */,
	    tok);
	load_bad(text, &errs);
	if (!has_error(&errs, 8, "not IP:PORT") ||
	    !has_error(&errs, 10, "want one line of 16..256")) {
		dump(&errs);
		fail();
	}
	collector_config_errors_free(&errs);
}

static void
test_keygen(void **state)
{
	char dir[96], path[160], err[256];
	struct stat st;
	zcert_t *cert;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/kg", fx.dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(keys_generate(dir, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/collector.key_secret", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cert = keys_load_secret(path, err, sizeof(err));
	assert_non_null(cert);
	zcert_destroy(&cert);
	/* Never overwritten. */
	assert_int_equal(keys_generate(dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "refusing to overwrite"));
}

static void
test_allowlist(void **state)
{
	char path[160], err[256];
	const struct keys_agent *ag;
	struct keys_allow *allow;
	zcert_t *agent = zcert_new();
	char key[41];

	(void)state;
	zcert_set_meta(agent, "name", "%s", "vp-1");
	zcert_set_meta(agent, "region", "%s", "eu-west");
	snprintf(path, sizeof(path), "%s/vp1.key", fx.allow);
	assert_int_equal(zcert_save_public(agent, path), 0);
	snprintf(path, sizeof(path), "%s/vp1.key_secret", fx.allow);
	assert_int_equal(zcert_save_secret(agent, path), 0); /* skipped */
	snprintf(key, sizeof(key), "%s", zcert_public_txt(agent));
	zcert_destroy(&agent);

	allow = keys_allow_load(fx.allow, err, sizeof(err));
	assert_non_null(allow);
	assert_int_equal(keys_allow_count(allow), 1);
	ag = keys_allow_lookup(allow, key);
	assert_non_null(ag);
	assert_string_equal(ag->name, "vp-1");
	assert_string_equal(ag->region, "eu-west");
	assert_null(keys_allow_lookup(
	    allow, "0000000000000000000000000000000000000000"));
	keys_allow_free(&allow);
	assert_null(allow);
	assert_null(keys_allow_load("/nonexistent", err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_error),
	    cmocka_unit_test(test_bad_bind),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_secret_mode),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_http_notify),
	    cmocka_unit_test(test_keygen),
	    cmocka_unit_test(test_allowlist),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
