/* cef.c -- incident events as CEF lines and RFC 5424 syslog messages. */
#include "cef.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "wire.h"

#ifndef MTASTS_VERSION
#define MTASTS_VERSION "0.1"
#endif

#define CEF_VENDOR  "mtasts-watch"
#define CEF_PRODUCT "mtasts-collector"
#define SD_ID	    "mtastswatch@32473"

/* RFC 5424 header field limits (section 6). */
#define HOSTNAME_MAX 255
#define MSGID_MAX    32

/*
 * An output that counts every byte it is given but stores only what fits,
 * so that each formatter is written once and still reports the length it
 * needed, like snprintf.
 */
struct out {
	char *buf;
	size_t len; /* capacity including the NUL */
	size_t n;   /* bytes produced so far, stored or not */
};

static void
s_putn(struct out *o, const char *s, size_t n)
{
	if (o->len > 0 && o->n < o->len - 1) {
		size_t room = o->len - 1 - o->n;

		memcpy(o->buf + o->n, s, n < room ? n : room);
	}
	o->n += n;
}

static void
s_puts(struct out *o, const char *s)
{
	s_putn(o, s, strlen(s));
}

static void
s_putc(struct out *o, char c)
{
	s_putn(o, &c, 1);
}

static int
s_finish(struct out *o)
{
	if (o->len > 0)
		o->buf[o->n < o->len - 1 ? o->n : o->len - 1] = '\0';
	return o->n > INT_MAX ? -1 : (int)o->n;
}

enum esc {
	ESC_HEADER, /* CEF header field: | and \ */
	ESC_EXT,    /* CEF extension value: = \ and line breaks */
	ESC_SD,	    /* RFC 5424 PARAM-VALUE: " \ and ] */
	ESC_TEXT    /* free text: nothing escaped, controls become spaces */
};

/*
 * Copies at most CEF_TEXT_MAX bytes of s (whole characters only) with the
 * escaping of mode.  Control characters that the mode does not escape
 * become spaces, so no value can break a line or a syslog frame; bytes
 * that are not UTF-8 become U+FFFD, so every output is valid UTF-8.
 */
static void
s_put_esc(struct out *o, const char *s, enum esc mode)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t used = 0, len = strlen((const char *)p), cl;

	while (used < len) {
		unsigned char c = p[used];

		cl = wire_utf8_seq(p + used, len - used, NULL);
		if (used + (cl ? cl : 1) > CEF_TEXT_MAX)
			break;
		if (cl == 0) {
			s_puts(o, "\xef\xbf\xbd");
			used++;
			continue;
		}
		if (cl > 1) {
			s_putn(o, (const char *)p + used, cl);
			used += cl;
			continue;
		}
		used++;
		if (mode == ESC_HEADER && (c == '|' || c == '\\')) {
			s_putc(o, '\\');
			s_putc(o, (char)c);
		} else if (mode == ESC_EXT && (c == '=' || c == '\\')) {
			s_putc(o, '\\');
			s_putc(o, (char)c);
		} else if (mode == ESC_EXT && c == '\n') {
			s_puts(o, "\\n");
		} else if (mode == ESC_EXT && c == '\r') {
			s_puts(o, "\\r");
		} else if (mode == ESC_SD &&
			   (c == '"' || c == '\\' || c == ']')) {
			s_putc(o, '\\');
			s_putc(o, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			s_putc(o, ' ');
		} else {
			s_putc(o, (char)c);
		}
	}
}

/*
 * An RFC 5424 header token: PRINTUSASCII only (others become '_'), at
 * most max bytes, the NILVALUE when empty.
 */
static void
s_put_token(struct out *o, const char *s, size_t max)
{
	size_t i;

	if (s == NULL || s[0] == '\0') {
		s_putc(o, '-');
		return;
	}
	for (i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		s_putc(o, c >= 33 && c <= 126 ? (char)c : '_');
	}
}

static int
s_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

static int
s_eq(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static const char *
s_verb(const char *kind)
{
	if (s_eq(kind, "open"))
		return "opened";
	if (s_eq(kind, "escalate"))
		return "escalated";
	if (s_eq(kind, "resolve"))
		return "resolved";
	if (s_eq(kind, "ack"))
		return "acknowledged";
	return NULL;
}

/* "CODE opened for DOMAIN": the verb from kind, or the state for a
 * listing; the subject names what an agent-level code is about. */
static void
s_put_name(struct out *o, const struct cef_incident *in, enum esc mode)
{
	const char *verb = s_verb(in->kind);
	const char *what = s_empty(in->domain) ? in->subject : in->domain;

	s_put_esc(o, in->code, mode);
	s_putc(o, ' ');
	if (verb != NULL)
		s_puts(o, verb);
	else
		s_put_esc(o, s_empty(in->state) ? in->kind : in->state, mode);
	if (!s_empty(what)) {
		s_puts(o, " for ");
		s_put_esc(o, what, mode);
	}
}

static const char *
s_cef_severity(const struct cef_incident *in)
{
	if (s_eq(in->kind, "resolve"))
		return "1";
	if (s_eq(in->severity, "error"))
		return "9";
	if (s_eq(in->severity, "warning"))
		return "6";
	if (s_eq(in->severity, "info"))
		return "3";
	return "Unknown";
}

/* One extension pair, left out when the value is empty. */
static void
s_put_ext(struct out *o, int *first, const char *key, const char *value)
{
	if (s_empty(value))
		return;
	if (!*first)
		s_putc(o, ' ');
	*first = 0;
	s_puts(o, key);
	s_putc(o, '=');
	s_put_esc(o, value, ESC_EXT);
}

static void
s_put_ext_ms(struct out *o, int *first, const char *key, time_t t)
{
	char v[32];

	if (t == 0)
		return;
	snprintf(v, sizeof(v), "%lld", (long long)t * 1000);
	s_put_ext(o, first, key, v);
}

/* A custom string and its label, both left out when the value is empty. */
static void
s_put_cs(struct out *o, int *first, int n, const char *label, const char *value)
{
	char key[16];

	if (s_empty(value))
		return;
	snprintf(key, sizeof(key), "cs%d", n);
	s_put_ext(o, first, key, value);
	snprintf(key, sizeof(key), "cs%dLabel", n);
	s_put_ext(o, first, key, label);
}

static void
s_put_cef(struct out *o, const struct cef_incident *in)
{
	char id[32];
	int first = 1;

	s_puts(o, "CEF:0|" CEF_VENDOR "|" CEF_PRODUCT "|");
	s_put_esc(o, MTASTS_VERSION, ESC_HEADER);
	s_putc(o, '|');
	s_put_esc(o, in->code, ESC_HEADER);
	s_putc(o, '|');
	s_put_name(o, in, ESC_HEADER);
	s_putc(o, '|');
	s_puts(o, s_cef_severity(in));
	s_putc(o, '|');

	s_put_ext_ms(o, &first, "rt", in->at);
	s_put_ext_ms(o, &first, "start", in->first_seen);
	s_put_ext_ms(o, &first, "end", in->last_seen);
	snprintf(id, sizeof(id), "%lld", (long long)in->id);
	s_put_ext(o, &first, "externalId", id);
	s_put_ext(o, &first, "act", in->kind);
	s_put_ext(o, &first, "outcome", in->state);
	s_put_ext(o, &first, "dhost", in->domain);
	s_put_cs(o, &first, 1, "subject", in->subject);
	s_put_cs(o, &first, 2, "vantages", in->vantages);
	s_put_cs(o, &first, 3, "dissenters", in->dissenters);
	s_put_cs(o, &first, 4, "stage", in->stage);
	/* Last, since free text is where a lenient parser goes wrong. */
	s_put_ext(o, &first, "msg", in->detail);
}

int
cef_format(const struct cef_incident *in, char *buf, size_t len)
{
	struct out o = {buf, len, 0};

	if (in == NULL || (buf == NULL && len > 0))
		return -1;
	s_put_cef(&o, in);
	return s_finish(&o);
}

static int
s_syslog_severity(const struct cef_incident *in)
{
	if (s_eq(in->kind, "resolve"))
		return 5;
	if (s_eq(in->severity, "error"))
		return 3;
	if (s_eq(in->severity, "warning"))
		return 4;
	if (s_eq(in->severity, "info"))
		return 6;
	return 5;
}

/* RFC 3339 in UTC, second precision (RFC 5424 section 6.2.3). */
static void
s_put_time(struct out *o, time_t t)
{
	char v[32];
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(v, sizeof(v), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		s_putc(o, '-');
		return;
	}
	s_puts(o, v);
}

static void
s_put_param(struct out *o, const char *name, const char *value)
{
	if (s_empty(value))
		return;
	s_putc(o, ' ');
	s_puts(o, name);
	s_puts(o, "=\"");
	s_put_esc(o, value, ESC_SD);
	s_putc(o, '"');
}

static void
s_put_param_time(struct out *o, const char *name, time_t t)
{
	char v[32];
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(v, sizeof(v), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return;
	s_put_param(o, name, v);
}

static void
s_put_sd(struct out *o, const struct cef_incident *in)
{
	char id[32];

	snprintf(id, sizeof(id), "%lld", (long long)in->id);
	s_puts(o, "[" SD_ID);
	s_put_param(o, "id", id);
	s_put_param(o, "event", in->kind);
	s_put_param(o, "domain", in->domain);
	s_put_param(o, "code", in->code);
	s_put_param(o, "subject", in->subject);
	s_put_param(o, "severity", in->severity);
	s_put_param(o, "state", in->state);
	s_put_param(o, "stage", in->stage);
	s_put_param(o, "vantages", in->vantages);
	s_put_param(o, "dissenters", in->dissenters);
	s_put_param_time(o, "firstSeen", in->first_seen);
	s_put_param_time(o, "lastSeen", in->last_seen);
	s_putc(o, ']');
}

int
cef_syslog5424(const struct cef_incident *in, int facility,
    const char *hostname, int cef, char *buf, size_t len)
{
	struct out o = {buf, len, 0};
	char head[32];

	if (in == NULL || (buf == NULL && len > 0) || facility < 0 ||
	    facility > 23)
		return -1;
	snprintf(
	    head, sizeof(head), "<%d>1 ", facility * 8 + s_syslog_severity(in));
	s_puts(&o, head);
	s_put_time(&o, in->at);
	s_putc(&o, ' ');
	s_put_token(&o, hostname, HOSTNAME_MAX);
	s_puts(&o, " " CEF_PRODUCT " ");
	snprintf(head, sizeof(head), "%ld", (long)getpid());
	s_puts(&o, head);
	s_putc(&o, ' ');
	s_put_token(&o, in->kind, MSGID_MAX);
	s_putc(&o, ' ');
	if (cef) {
		s_puts(&o, "- ");
		s_put_cef(&o, in);
		return s_finish(&o);
	}
	s_put_sd(&o, in);
	s_puts(&o, " \xef\xbb\xbf");
	s_put_name(&o, in, ESC_TEXT);
	if (!s_empty(in->detail)) {
		s_puts(&o, ": ");
		s_put_esc(&o, in->detail, ESC_TEXT);
	}
	return s_finish(&o);
}
