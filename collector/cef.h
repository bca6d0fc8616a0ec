/* cef.h -- incidents as ArcSight Common Event Format lines and RFC 5424
 * syslog messages, shared by `mtasts-report --format cef` and the syslog
 * notifier. */
#ifndef MTASTS_CEF_H
#define MTASTS_CEF_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Longest free-text value (subject, detail, vantages, dissenters, domain,
 * code, stage) that the formatters copy, in bytes before escaping; longer
 * values are cut at the last whole UTF-8 character that fits.  So a line
 * is bounded whatever the database holds (a few KiB at most, see
 * docs/notify.md); a caller with a tighter bound (a syslog datagram)
 * passes shorter strings.
 */
#define CEF_TEXT_MAX 1024

/*
 * One incident event as the formatters see it.  Strings are borrowed
 * (the caller owns them); NULL reads as empty.  kind: open, escalate,
 * resolve, ack, or "state" for a plain listing (mtasts-report incidents).
 * Times of 0 are unknown and left out.
 */
struct cef_incident {
	int64_t id;
	const char *kind;
	const char *domain; /* "" for agent-level codes */
	const char *code;
	const char *subject;
	const char *severity; /* info, warning, error */
	const char *state;    /* open, resolved */
	const char *stage;    /* NULL or 30d, 14d, 7d, expired */
	const char *detail;
	const char *vantages;	/* comma-separated agent names */
	const char *dissenters; /* comma-separated, may be empty */
	time_t first_seen, last_seen;
	time_t at; /* when the event happened */
};

/*
 * "CEF:0|mtasts-watch|mtasts-collector|VERSION|CODE|NAME|SEV|ext..." with
 * header fields escaped for | and \, extension values for = \ and line
 * breaks (\n, \r); other control characters become spaces and bytes that
 * are not UTF-8 become U+FFFD.  NAME is "CODE opened for DOMAIN" (the
 * subject when the domain is empty; the verb follows kind).  Severity:
 * info 3, warning 6, error 9, resolve events 1, anything else Unknown.
 * Extension keys, each left out when empty: rt (at), start (first_seen)
 * and end (last_seen) in epoch milliseconds, externalId (id), act (kind),
 * outcome (state), dhost (domain), cs1 subject, cs2 vantages, cs3
 * dissenters, cs4 stage (each with its csNLabel), msg (detail) last.
 * No line break ends the line.  Writes at most len bytes including the
 * NUL (buf may be NULL when len is 0); returns the length it needed
 * without the NUL (like snprintf), or -1 when in is NULL.
 */
int cef_format(const struct cef_incident *in, char *buf, size_t len);

/*
 * An RFC 5424 message "<PRI>1 TIMESTAMP HOST mtasts-collector PID MSGID
 * [mtastswatch@32473 ...] MSG": PRI is facility * 8 + severity with
 * severity error 3, warning 4, info 6 and resolve events 5 (notice);
 * TIMESTAMP is at in UTC; HOST is hostname (printable ASCII only, at
 * most 255 bytes); MSGID is the event kind; structured-data values are
 * escaped per RFC 5424 section 6.3.3 (" \ and ]) and parameters with an
 * empty value are left out; an empty header field is the NILVALUE "-".
 * MSG is a UTF-8 BOM followed by "NAME: detail", since RFC 5424 wants the
 * BOM before UTF-8 free text.  With cef set, MSG is the CEF line (no BOM:
 * CEF parsers look for "CEF:" at the start) and the structured data is
 * the NILVALUE.  No trailer or line break is added (framing is the
 * transport's).  Same return convention as cef_format; -1 also for a
 * facility outside 0..23.
 */
int cef_syslog5424(const struct cef_incident *in, int facility,
    const char *hostname, int cef, char *buf, size_t len);

#endif
