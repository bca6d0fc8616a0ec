/* test_agent_config.c -- the agent's configuration: values, every error kind.
 */
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

#include "agent_config.h"
#include "keygen.h"

static char dir[64];
static char cfgpath[128];
static char secret[128];
static char collector[128];
static struct agent_config_errors errs;

static int
setup(void **state)
{
	char err[256], cdir[96], adir[96];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_agent_config.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(adir, sizeof(adir), "%s/agent", dir);
	snprintf(cdir, sizeof(cdir), "%s/coll", dir);
	if (keygen_write(adir, "ams-1", "eu-west", err, sizeof(err)) == -1 ||
	    keygen_write(cdir, "collector", NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "keygen: %s\n", err);
		return -1;
	}
	snprintf(secret, sizeof(secret), "%s/%s", adir, KEYGEN_SECRET);
	snprintf(collector, sizeof(collector), "%s/%s", cdir, KEYGEN_PUBLIC);
	snprintf(cfgpath, sizeof(cfgpath), "%s/agent.conf", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
reset(void **state)
{
	(void)state;
	agent_config_errors_free(&errs);
	return chmod(secret, 0600);
}

/* Writes the config: the keys first (lines 1-3), then body. */
static struct agent_config *
load(const char *body)
{
	FILE *fp = fopen(cfgpath, "w");

	assert_non_null(fp);
	fprintf(fp, "[agent]\nsecret_key = %s\ncollector_key = %s\n%s", secret,
	    collector, body);
	assert_int_equal(fclose(fp), 0);
	agent_config_errors_free(&errs);
	return agent_config_load(cfgpath, &errs);
}

/* 1 when some error is exactly "cfgpath:line: " followed by text with
 * needle in it. */
static int
has_error(unsigned long line, const char *needle)
{
	char prefix[192];

	snprintf(prefix, sizeof(prefix), "%s:%lu: ", cfgpath, line);
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.v[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.v[i] + strlen(prefix), needle) != NULL)
			return 1;
	return 0;
}

static void
dump(void)
{
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "  error: %s\n", errs.v[i]);
}

static void
test_valid(void **state)
{
	struct agent_config *cfg;

	(void)state;
	cfg = load("name = ams-1\n"
		   "region = eu-west\n"
		   "endpoint = tcp://collector-a.example:7001\n"
		   "endpoint = tcp://[::1]:7002\n"
		   "; a comment\n"
		   "# another\n"
		   "\n"
		   "resolver = 127.0.0.1:5353\n"
		   "ca_file = /etc/hostname\n"
		   "concurrency = 16\n"
		   "timeout = 12\n"
		   "spool_dir = /nonexistent/spool\n"
		   "spool_cap = 64M\n"
		   "heartbeat = 3\n"
		   "ack_timeout = 9\n"
		   "https_port = 8443\n"
		   "smtp_port = 2525\n");
	dump();
	assert_non_null(cfg);
	assert_int_equal(errs.n, 0);
	assert_string_equal(cfg->name, "ams-1");
	assert_string_equal(cfg->region, "eu-west");
	assert_int_equal(cfg->n_endpoints, 2);
	assert_string_equal(
	    cfg->endpoints[0], "tcp://collector-a.example:7001");
	assert_string_equal(cfg->endpoints[1], "tcp://[::1]:7002");
	assert_string_equal(cfg->resolver, "127.0.0.1:5353");
	assert_string_equal(cfg->ca_file, "/etc/hostname");
	assert_int_equal(cfg->concurrency, 16);
	assert_int_equal(cfg->timeout_s, 12);
	assert_string_equal(cfg->spool_dir, "/nonexistent/spool");
	assert_int_equal(cfg->spool_cap, 64ull * 1024 * 1024);
	assert_int_equal(cfg->heartbeat_s, 3);
	assert_int_equal(cfg->ack_timeout_s, 9);
	assert_int_equal(cfg->https_port, 8443);
	assert_int_equal(cfg->smtp_port, 2525);
	assert_non_null(cfg->cert);
	assert_int_equal(strlen(cfg->public_txt), AGENT_Z85_KEY_LEN);
	assert_int_equal(strlen(cfg->collector_public_txt), AGENT_Z85_KEY_LEN);
	assert_string_not_equal(cfg->public_txt, cfg->collector_public_txt);
	agent_config_free(&cfg);
	assert_null(cfg);
}

static void
test_defaults(void **state)
{
	struct agent_config *cfg;

	(void)state;
	cfg = load("endpoint = ipc:///run/mtasts/collector\n"
		   "spool_dir = /var/spool/mtasts\n");
	dump();
	assert_non_null(cfg);
	assert_int_equal(cfg->concurrency, 64);
	assert_int_equal(cfg->timeout_s, 30);
	assert_int_equal(cfg->spool_cap, 256ull * 1024 * 1024);
	assert_int_equal(cfg->heartbeat_s, 10);
	assert_int_equal(cfg->ack_timeout_s, 30);
	assert_int_equal(cfg->https_port, 443);
	assert_int_equal(cfg->smtp_port, 25);
	assert_null(cfg->resolver);
	assert_null(cfg->ca_file);
	/* No name: the host name stands in. */
	assert_true(cfg->name[0] != '\0');
	assert_string_equal(cfg->region, "");
	agent_config_free(&cfg);
}

/* Every kind of error, each reported at its line, all in one pass. */
static void
test_every_error_with_line(void **state)
{
	struct agent_config *cfg;

	(void)state;
	cfg = load("bogus = 1\n"		   /* 4 */
		   "timeout = 0\n"		   /* 5 */
		   "spool_cap = 12Q\n"		   /* 6 */
		   "garbage line\n"		   /* 7 */
		   "[other]\n"			   /* 8 */
		   "foo = bar\n"		   /* 9 */
		   "[agent]\n"			   /* 10 */
		   "timeout = 5\n"		   /* 11 */
		   "endpoint = http://x\n"	   /* 12 */
		   "concurrency = many\n"	   /* 13 */
		   "resolver = not-an-ip\n"	   /* 14 */
		   "[agent\n"			   /* 15 */
		   "heartbeat =\n"		   /* 16 */
		   "ack_timeout = 99999\n"	   /* 17 */
		   "region = eu-west\n"		   /* 18 */
		   "ca_file = /nonexistent/ca\n"); /* 19 */
	assert_null(cfg);
	dump();
	assert_true(has_error(4, "unknown key 'bogus'"));
	assert_true(has_error(5, "timeout '0'"));
	assert_true(has_error(6, "spool_cap '12Q'"));
	assert_true(has_error(7, "expected 'key = value'"));
	assert_true(has_error(8, "unknown section [other]"));
	/* Keys of an unknown section are not reported one by one. */
	assert_false(has_error(9, ""));
	assert_true(has_error(11, "already set at line 5"));
	assert_true(has_error(12, "endpoint 'http://x'"));
	assert_true(has_error(13, "concurrency 'many'"));
	assert_true(has_error(14, "resolver 'not-an-ip'"));
	assert_true(has_error(15, "without ']'"));
	assert_true(has_error(16, "empty value"));
	assert_true(has_error(17, "ack_timeout '99999'"));
	assert_true(has_error(19, "ca_file /nonexistent/ca"));
	/* Required keys that are missing, at the [agent] header. */
	assert_true(has_error(1, "'spool_dir' is required"));
	assert_false(has_error(1, "'secret_key' is required"));
	/* The endpoint line was there, just bad: not "missing" too. */
	assert_false(has_error(1, "'endpoint' is required"));
	assert_int_equal(errs.n, 14);
}

static void
test_outside_section(void **state)
{
	FILE *fp = fopen(cfgpath, "w");
	struct agent_config *cfg;

	(void)state;
	assert_non_null(fp);
	fprintf(fp, "name = x\n");
	assert_int_equal(fclose(fp), 0);
	cfg = agent_config_load(cfgpath, &errs);
	assert_null(cfg);
	dump();
	assert_true(has_error(1, "outside a section"));
	/* No [agent] at all: the required keys are reported without a line. */
	char want[192];
	snprintf(want, sizeof(want), "%s: 'secret_key' is required", cfgpath);
	int found = 0;
	for (size_t i = 0; i < errs.n; i++)
		found |= strncmp(errs.v[i], want, strlen(want)) == 0;
	assert_true(found);
}

static void
test_missing_file(void **state)
{
	struct agent_config_errors e;
	struct agent_config *cfg;

	(void)state;
	cfg = agent_config_load("/nonexistent/agent.conf", &e);
	assert_null(cfg);
	assert_int_equal(e.n, 1);
	assert_string_equal(
	    e.v[0], "/nonexistent/agent.conf: No such file or directory");
	agent_config_errors_free(&e);
}

static void
test_long_line(void **state)
{
	char body[1024];
	struct agent_config *cfg;

	(void)state;
	snprintf(body, sizeof(body),
	    "endpoint = tcp://127.0.0.1:1\nspool_dir = /tmp/x\nname = %0600d\n",
	    7);
	cfg = load(body);
	assert_null(cfg);
	dump();
	assert_true(has_error(6, "line too long"));
	assert_int_equal(errs.n, 1);
}

static void
test_secret_readable_refused(void **state)
{
	static const mode_t bad[] = {0644, 0640, 0604};
	struct agent_config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(secret, bad[i]), 0);
		cfg = load("endpoint = tcp://127.0.0.1:1\n"
			   "spool_dir = /tmp/x\n");
		assert_null(cfg);
		assert_true(has_error(2, "readable by group or others"));
		assert_int_equal(errs.n, 1);
	}
	assert_int_equal(chmod(secret, 0600), 0);
	cfg = load("endpoint = tcp://127.0.0.1:1\nspool_dir = /tmp/x\n");
	assert_non_null(cfg);
	agent_config_free(&cfg);
}

static void
test_bad_keys(void **state)
{
	FILE *fp;
	struct agent_config *cfg;
	char path[160];

	(void)state;
	/* A text file is no certificate. */
	snprintf(path, sizeof(path), "%s/junk", dir);
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "hello\n");
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0600), 0);

	fp = fopen(cfgpath, "w");
	assert_non_null(fp);
	fprintf(fp,
	    "[agent]\nsecret_key = %s\ncollector_key = %s\n"
	    "endpoint = tcp://127.0.0.1:1\nspool_dir = /tmp/x\n",
	    path, "/nonexistent/collector.key");
	assert_int_equal(fclose(fp), 0);
	cfg = agent_config_load(cfgpath, &errs);
	assert_null(cfg);
	dump();
	assert_true(has_error(2, "not a CURVE secret certificate"));
	assert_true(has_error(3, "collector_key /nonexistent/collector.key"));
}

static void
test_spool_cap(void **state)
{
	struct agent_config *cfg;

	(void)state;
	cfg = load("endpoint = tcp://127.0.0.1:1\nspool_dir = /tmp/x\n"
		   "spool_cap = 4K\n");
	assert_null(cfg);
	assert_true(has_error(6, "below 1M"));
	assert_int_equal(errs.n, 1);
	cfg = load("endpoint = tcp://127.0.0.1:1\nspool_dir = /tmp/x\n"
		   "spool_cap = 1g\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->spool_cap, 1024ull * 1024 * 1024);
	agent_config_free(&cfg);
}

static void
test_size_suffixes(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(agent_config_parse_size("1024", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(agent_config_parse_size("4K", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(agent_config_parse_size("4k", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(agent_config_parse_size("3M", &v), 0);
	assert_int_equal(v, 3ull * 1024 * 1024);
	assert_int_equal(agent_config_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ull * 1024 * 1024 * 1024);
	assert_int_equal(agent_config_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	v = 7;
	assert_int_equal(agent_config_parse_size("", &v), -1);
	assert_int_equal(agent_config_parse_size("K", &v), -1);
	assert_int_equal(agent_config_parse_size("1T", &v), -1);
	assert_int_equal(agent_config_parse_size("1KB", &v), -1);
	assert_int_equal(agent_config_parse_size("-1", &v), -1);
	assert_int_equal(agent_config_parse_size(" 1", &v), -1);
	assert_int_equal(agent_config_parse_size("17179869184G", &v), -1);
	assert_int_equal(
	    agent_config_parse_size("99999999999999999999", &v), -1);
	/* A failed parse leaves the output alone. */
	assert_int_equal(v, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_valid, reset),
	    cmocka_unit_test_setup(test_defaults, reset),
	    cmocka_unit_test_setup(test_every_error_with_line, reset),
	    cmocka_unit_test_setup(test_outside_section, reset),
	    cmocka_unit_test_setup(test_missing_file, reset),
	    cmocka_unit_test_setup(test_long_line, reset),
	    cmocka_unit_test_setup(test_secret_readable_refused, reset),
	    cmocka_unit_test_setup(test_bad_keys, reset),
	    cmocka_unit_test_setup(test_spool_cap, reset),
	    cmocka_unit_test(test_size_suffixes),
	};
	int rc = cmocka_run_group_tests(tests, setup, teardown);

	agent_config_errors_free(&errs);
	return rc;
}
