/* test_cef.c -- CEF lines and RFC 5424 messages, field by field. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cef.h"

#define AT    1700003600 /* 2023-11-14T23:13:20Z */
#define FIRST 1700000000 /* 2023-11-14T22:13:20Z */
#define BOM   "\xef\xbb\xbf"

static struct cef_incident
s_incident(void)
{
	struct cef_incident in = {0};

	in.id = 42;
	in.kind = "open";
	in.domain = "example.com";
	in.code = "CERT_EXPIRING";
	in.subject = "mx1.example.com";
	in.severity = "warning";
	in.state = "open";
	in.stage = "14d";
	in.detail = "expires in 13 days";
	in.vantages = "eu-1,us-1";
	in.dissenters = "";
	in.first_seen = FIRST;
	in.last_seen = AT;
	in.at = AT;
	return in;
}

/* Formats into a large buffer and checks the return value against it. */
static const char *
s_cef(const struct cef_incident *in)
{
	static char buf[16384];
	int n = cef_format(in, buf, sizeof(buf));

	assert_true(n >= 0);
	assert_int_equal((size_t)n, strlen(buf));
	return buf;
}

static const char *
s_syslog(const struct cef_incident *in, int facility, const char *host, int cef)
{
	static char buf[16384];
	int n = cef_syslog5424(in, facility, host, cef, buf, sizeof(buf));

	assert_true(n >= 0);
	assert_int_equal((size_t)n, strlen(buf));
	return buf;
}

/* The value of extension key (with its "key=") up to the next " key=" of
 * a known key or the end; NULL when absent. */
static char *
s_ext(const char *line, const char *key)
{
	static const char *keys[] = {
	    " rt=", " start=", " end=", " externalId=", " act=", " outcome=",
	    " dhost=", " cs1=", " cs1Label=", " cs2=", " cs2Label=", " cs3=",
	    " cs3Label=", " cs4=", " cs4Label=", " msg="};
	static char out[8192];
	char pat[64];
	const char *p, *end;
	size_t i;

	/* The extension starts after the 7th unescaped '|'. */
	for (i = 0, p = line; *p && i < 7; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '|')
			i++;
	}
	if (i < 7)
		return NULL;
	snprintf(pat, sizeof(pat), " %s=", key);
	{
		char ext[8192];

		snprintf(ext, sizeof(ext), " %s", p);
		if ((p = strstr(ext, pat)) == NULL)
			return NULL;
		p += strlen(pat);
		end = p + strlen(p);
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			const char *k = strstr(p, keys[i]);

			if (k != NULL && k < end)
				end = k;
		}
		snprintf(out, sizeof(out), "%.*s", (int)(end - p), p);
	}
	return out;
}

static void
test_cef_fields(void **state)
{
	struct cef_incident in = s_incident();

	(void)state;
	assert_string_equal(s_cef(&in),
	    "CEF:0|mtasts-watch|mtasts-collector|0.1|CERT_EXPIRING|"
	    "CERT_EXPIRING opened for example.com|6|"
	    "rt=1700003600000 start=1700000000000 end=1700003600000 "
	    "externalId=42 act=open outcome=open dhost=example.com "
	    "cs1=mx1.example.com cs1Label=subject cs2=eu-1,us-1 "
	    "cs2Label=vantages cs4=14d cs4Label=stage "
	    "msg=expires in 13 days");

	/* Dissenters appear with their label; empty values and zero times
	 * are left out altogether. */
	in.dissenters = "ap-1";
	in.stage = NULL;
	in.detail = "";
	in.first_seen = 0;
	in.last_seen = 0;
	assert_string_equal(s_cef(&in),
	    "CEF:0|mtasts-watch|mtasts-collector|0.1|CERT_EXPIRING|"
	    "CERT_EXPIRING opened for example.com|6|"
	    "rt=1700003600000 externalId=42 act=open outcome=open "
	    "dhost=example.com cs1=mx1.example.com cs1Label=subject "
	    "cs2=eu-1,us-1 cs2Label=vantages cs3=ap-1 cs3Label=dissenters");
	assert_string_equal(s_ext(s_cef(&in), "cs3"), "ap-1");
	assert_null(s_ext(s_cef(&in), "msg"));
	assert_null(s_ext(s_cef(&in), "cs4"));
}

static void
test_cef_name_and_severity(void **state)
{
	struct cef_incident in = s_incident();
	static const struct {
		const char *kind, *severity, *name, *sev;
	} cases[] = {
	    {"open", "info", "X opened for example.com", "3"},
	    {"open", "warning", "X opened for example.com", "6"},
	    {"escalate", "error", "X escalated for example.com", "9"},
	    {"resolve", "error", "X resolved for example.com", "1"},
	    {"ack", "error", "X acknowledged for example.com", "9"},
	    {"state", "bogus", "X open for example.com", "Unknown"},
	};
	char want[256];
	size_t i;

	(void)state;
	in.code = "X";
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.kind = cases[i].kind;
		in.severity = cases[i].severity;
		snprintf(want, sizeof(want),
		    "CEF:0|mtasts-watch|mtasts-collector|0.1|X|%s|%s|",
		    cases[i].name, cases[i].sev);
		assert_memory_equal(s_cef(&in), want, strlen(want));
	}

	/* Agent-level codes have no domain: the subject names the agent. */
	in.kind = "open";
	in.domain = "";
	in.code = "AGENT_SILENT";
	in.subject = "eu-1";
	assert_non_null(strstr(s_cef(&in), "|AGENT_SILENT opened for eu-1|"));
	assert_null(strstr(s_cef(&in), "dhost="));
}

static void
test_cef_header_escaping(void **state)
{
	struct cef_incident in = s_incident();

	(void)state;
	in.code = "A|B\\C";
	in.domain = "d|o\\m=ain";
	in.kind = "state";
	in.state = "op\nen";
	/* Header: | and \ escaped, a line break is a space; = as is. */
	assert_memory_equal(s_cef(&in),
	    "CEF:0|mtasts-watch|mtasts-collector|0.1|A\\|B\\\\C|"
	    "A\\|B\\\\C op en for d\\|o\\\\m=ain|6|",
	    strlen("CEF:0|mtasts-watch|mtasts-collector|0.1|A\\|B\\\\C|"
		   "A\\|B\\\\C op en for d\\|o\\\\m=ain|6|"));
	/* Extension: = and \ escaped, | as is, line breaks as \n. */
	assert_string_equal(s_ext(s_cef(&in), "dhost"), "d|o\\\\m\\=ain");
	assert_string_equal(s_ext(s_cef(&in), "outcome"), "op\\nen");
}

static void
test_cef_extension_escaping(void **state)
{
	struct cef_incident in = s_incident();
	const char *line;

	(void)state;
	in.detail = "a=b\\c\nd\re|f\tg\x01h";
	line = s_cef(&in);
	assert_string_equal(s_ext(line, "msg"), "a\\=b\\\\c\\nd\\re|f g h");
	/* No raw line break anywhere: one event, one line. */
	assert_null(strchr(line, '\n'));
	assert_null(strchr(line, '\r'));

	/* Bytes that are not UTF-8 become U+FFFD; valid UTF-8 passes. */
	in.detail = "caf\xc3\xa9 \xff\xc3 \xe2\x82\xac";
	assert_string_equal(s_ext(s_cef(&in), "msg"),
	    "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \xe2\x82\xac");
	/* Overlong and surrogate forms are not UTF-8 either. */
	in.detail = "\xc0\xaf\xed\xa0\x80";
	assert_null(strstr(s_ext(s_cef(&in), "msg"), "\xc0"));
	assert_null(strstr(s_ext(s_cef(&in), "msg"), "\xed"));
}

static void
test_cef_text_limit(void **state)
{
	struct cef_incident in = s_incident();
	char *big = malloc(CEF_TEXT_MAX * 3 + 1);
	const char *msg;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', CEF_TEXT_MAX * 3);
	big[CEF_TEXT_MAX * 3] = '\0';
	in.detail = big;
	msg = s_ext(s_cef(&in), "msg");
	assert_int_equal(strlen(msg), CEF_TEXT_MAX);

	/* A character that would straddle the limit is left out whole. */
	memset(big, 'x', CEF_TEXT_MAX - 1);
	memcpy(big + CEF_TEXT_MAX - 1, "\xc3\xa9zz", 5);
	msg = s_ext(s_cef(&in), "msg");
	assert_int_equal(strlen(msg), CEF_TEXT_MAX - 1);
	assert_int_equal(msg[CEF_TEXT_MAX - 2], 'x');

	/* The limit is on the value, before escaping: 1024 '=' make 2048. */
	memset(big, '=', CEF_TEXT_MAX * 2);
	big[CEF_TEXT_MAX * 2] = '\0';
	msg = s_ext(s_cef(&in), "msg");
	assert_int_equal(strlen(msg), CEF_TEXT_MAX * 2);
	free(big);
}

/* snprintf's convention: the needed length whatever len is, at most len
 * bytes written including the NUL. */
static void
test_cef_return_length(void **state)
{
	struct cef_incident in = s_incident();
	char full[4096], small[32];
	int n, i;

	(void)state;
	n = cef_format(&in, full, sizeof(full));
	assert_true(n > 100);
	assert_int_equal(cef_format(&in, NULL, 0), n);

	memset(small, 'Q', sizeof(small));
	assert_int_equal(cef_format(&in, small, 10), n);
	assert_int_equal(strlen(small), 9);
	assert_memory_equal(small, full, 9);
	assert_int_equal(small[10], 'Q'); /* nothing past len */

	/* Exactly fitting, and one byte short. */
	{
		char *exact = malloc((size_t)n + 2);

		assert_non_null(exact);
		exact[n + 1] = 'Q';
		assert_int_equal(cef_format(&in, exact, (size_t)n + 1), n);
		assert_string_equal(exact, full);
		assert_int_equal(exact[n + 1], 'Q');
		assert_int_equal(cef_format(&in, exact, (size_t)n), n);
		assert_int_equal(strlen(exact), (size_t)n - 1);
		free(exact);
	}
	/* Every length gives a NUL-terminated prefix. */
	for (i = 1; i < 40; i++) {
		assert_int_equal(
		    cef_format(&in, small, (size_t)(i % 32 + 1)), n);
		assert_int_equal(strlen(small), (size_t)(i % 32));
	}
	assert_int_equal(cef_format(NULL, full, sizeof(full)), -1);
	assert_int_equal(cef_format(&in, NULL, 10), -1);

	n = cef_syslog5424(&in, 16, "h", 0, full, sizeof(full));
	assert_true(n > 100);
	assert_int_equal(cef_syslog5424(&in, 16, "h", 0, NULL, 0), n);
	assert_int_equal(cef_syslog5424(&in, 16, "h", 0, small, 10), n);
	assert_string_equal(small, "<132>1 20");
}

static void
test_syslog_fields(void **state)
{
	struct cef_incident in = s_incident();
	char want[2048];

	(void)state;
	snprintf(want, sizeof(want),
	    "<132>1 2023-11-14T23:13:20Z collector1 mtasts-collector %ld "
	    "open [mtastswatch@32473 id=\"42\" event=\"open\" "
	    "domain=\"example.com\" code=\"CERT_EXPIRING\" "
	    "subject=\"mx1.example.com\" severity=\"warning\" "
	    "state=\"open\" stage=\"14d\" vantages=\"eu-1,us-1\" "
	    "firstSeen=\"2023-11-14T22:13:20Z\" "
	    "lastSeen=\"2023-11-14T23:13:20Z\"] " BOM
	    "CERT_EXPIRING opened for example.com: expires in 13 days",
	    (long)getpid());
	assert_string_equal(s_syslog(&in, 16, "collector1", 0), want);

	/* CEF inside: no structured data, no BOM, the CEF line as MSG. */
	snprintf(want, sizeof(want),
	    "<132>1 2023-11-14T23:13:20Z collector1 mtasts-collector %ld "
	    "open - %s",
	    (long)getpid(), s_cef(&in));
	assert_string_equal(s_syslog(&in, 16, "collector1", 1), want);
}

static void
test_syslog_pri(void **state)
{
	struct cef_incident in = s_incident();
	static const struct {
		int facility;
		const char *kind, *severity;
		const char *pri;
	} cases[] = {
	    {16, "open", "error", "<131>1 "},
	    {16, "escalate", "warning", "<132>1 "},
	    {16, "open", "info", "<134>1 "},
	    {16, "resolve", "error", "<133>1 "},
	    {16, "ack", "warning", "<132>1 "},
	    {0, "open", "error", "<3>1 "},
	    {1, "open", "info", "<14>1 "},
	    {23, "open", "info", "<190>1 "},
	    {23, "open", "unknown", "<189>1 "},
	};
	char buf[4096];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.kind = cases[i].kind;
		in.severity = cases[i].severity;
		assert_true(cef_syslog5424(&in, cases[i].facility, "h", 0, buf,
				sizeof(buf)) > 0);
		assert_memory_equal(buf, cases[i].pri, strlen(cases[i].pri));
	}
	assert_int_equal(cef_syslog5424(&in, 24, "h", 0, buf, sizeof(buf)), -1);
	assert_int_equal(cef_syslog5424(&in, -1, "h", 0, buf, sizeof(buf)), -1);
	assert_int_equal(cef_syslog5424(NULL, 1, "h", 0, buf, sizeof(buf)), -1);
}

static void
test_syslog_escaping(void **state)
{
	struct cef_incident in = s_incident();
	char host[300];
	const char *m;

	(void)state;
	in.subject = "a\"b\\c]d=e";
	in.detail = "line1\nline2";
	m = s_syslog(&in, 1, "collector1", 0);
	/* " \ and ] get a backslash; = is fine inside quotes. */
	assert_non_null(strstr(m, " subject=\"a\\\"b\\\\c\\]d=e\""));
	/* The free text keeps no line break (UDP and octet-counted TCP
	 * would carry it, but line-based receivers would split it). */
	assert_non_null(strstr(m, BOM "CERT_EXPIRING opened for "
				      "example.com: line1 line2"));
	assert_null(strchr(m, '\n'));

	/* NILVALUE for an empty host, kind and time; header tokens are
	 * printable ASCII only and bounded (255 for the host). */
	in.kind = NULL;
	in.at = 0;
	m = s_syslog(&in, 1, NULL, 0);
	assert_non_null(strstr(m, "<12>1 - - mtasts-collector "));
	m = s_syslog(&in, 1, "", 0);
	assert_non_null(strstr(m, "<12>1 - - mtasts-collector "));
	m = s_syslog(&in, 1, "my host\xc3\xa9", 0);
	assert_non_null(strstr(m, "<12>1 - my_host__ mtasts-collector "));
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	m = s_syslog(&in, 1, host, 0);
	assert_int_equal(strcspn(m + strlen("<12>1 - "), " "), 255);

	/* Empty structured-data values are left out, not sent as "". */
	in = s_incident();
	in.stage = "";
	in.vantages = NULL;
	m = s_syslog(&in, 1, "h", 0);
	assert_null(strstr(m, "stage="));
	assert_null(strstr(m, "vantages="));
	assert_null(strstr(m, "dissenters="));
	/* Without a detail the MSG is the name alone. */
	in.detail = NULL;
	m = s_syslog(&in, 1, "h", 0);
	assert_int_equal(strcmp(m + strlen(m) -
				    strlen(BOM "CERT_EXPIRING "
					       "opened for "
					       "example.com"),
			     BOM "CERT_EXPIRING opened for example.com"),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cef_fields),
	    cmocka_unit_test(test_cef_name_and_severity),
	    cmocka_unit_test(test_cef_header_escaping),
	    cmocka_unit_test(test_cef_extension_escaping),
	    cmocka_unit_test(test_cef_text_limit),
	    cmocka_unit_test(test_cef_return_length),
	    cmocka_unit_test(test_syslog_fields),
	    cmocka_unit_test(test_syslog_pri),
	    cmocka_unit_test(test_syslog_escaping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
