/* report_query.h -- the reports on the collector's database, as JSON, shared
 * by `mtasts-report` and the HTTP API; and their table, CSV and CEF forms. */
#ifndef MTASTS_REPORT_QUERY_H
#define MTASTS_REPORT_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

/*
 * Every query runs on a connection of the caller's (same database and
 * search_path as the store, schema deploy/sql up to 003_incidents.sql),
 * with its parameters bound ($1...), never pasted into the SQL.  Each
 * returns 0 with a new JSON value in *out that the caller owns and
 * releases with json_decref; -1 with the reason in err and *out NULL (the
 * caller tells a lost connection from other failures with PQstatus).
 * Lists are JSON arrays, empty when nothing matched.  The field names
 * follow the Elastic Common Schema where one applies (tls.*, server.*,
 * event.*, rule.*, observer.*); the rest is under "mtasts".  docs/api.md
 * documents every field.  Times are RFC 3339 UTC strings; "days left" is
 * floor((not_after - now) / 86400), negative once expired.
 */

#define REPORT_ROWS_MAX		     10000 /* rows of one listing */
#define REPORT_EXPIRING_DAYS_DEFAULT 30
#define REPORT_DAYS_MAX		     36500
#define REPORT_SILENT_AFTER_S	     600 /* two default intervals, as AGENT_SILENT */
#define REPORT_ACK_BY_MAX	     256 /* bytes, as incident.h */
#define REPORT_ACK_NOTE_MAX	     4096
#define REPORT_DOMAIN_MAX	     253

/* Severity ranks, for filters: info < warning < error. */
enum report_severity {
	REPORT_SEV_ANY = 0,
	REPORT_SEV_INFO = 1,
	REPORT_SEV_WARNING = 2,
	REPORT_SEV_ERROR = 3
};

struct report_incident_filter {
	int open_only;
	time_t since;	    /* 0: no bound; else seen or resolved since */
	int min_severity;   /* enum report_severity */
	const char *domain; /* NULL: every domain ("" : agent-level) */
	unsigned limit;	    /* 0 or above REPORT_ROWS_MAX: REPORT_ROWS_MAX */
};

/*
 * One row per active domain, in name order: the latest compared round,
 * the mode its vantages agree on, the earliest expiry among the policy
 * host's leaves, the worst open incident and how many vantages agree.
 */
int report_status(
    PGconn *conn, time_t now, json_t **out, char *err, size_t errlen);

/*
 * Everything about domain (stored form) in its latest compared round:
 * STS id, policy, each host's certificate and verdict, the vantage
 * matrix, findings, then its open incidents.  Returns 1 (nothing
 * allocated) when the domain is neither in domains nor in round_status.
 */
int report_domain(PGconn *conn, const char *domain, time_t now, json_t **out,
    char *err, size_t errlen);

/* Incidents matching f, most recently seen first. */
int report_incidents(PGconn *conn, const struct report_incident_filter *f,
    json_t **out, char *err, size_t errlen);

/*
 * The policy host and MX leaf certificates seen in the latest compared
 * round of each active domain with at most days days left, soonest first.
 */
int report_expiring(PGconn *conn, int days, time_t now, unsigned limit,
    json_t **out, char *err, size_t errlen);

/*
 * Every agent: identity, first and last seen, whether it is silent (an
 * open AGENT_SILENT incident names it, or nothing was heard from it for
 * silent_after_s seconds; <= 0 takes REPORT_SILENT_AFTER_S), committed
 * sequence and gaps.
 */
int report_agents(PGconn *conn, time_t now, long silent_after_s, json_t **out,
    char *err, size_t errlen);

/* The active domain names, in order (the API's index page). */
int report_domain_names(PGconn *conn, json_t **out, char *err, size_t errlen);

/*
 * Acknowledges incident id through incident_ack (incident.h): sets
 * acked_at, acked_by and ack_note and records an 'ack' incident event.  by
 * (NULL: "") at most REPORT_ACK_BY_MAX bytes and note (NULL: none) at most
 * REPORT_ACK_NOTE_MAX, both valid UTF-8.  Returns 0 with the incident as
 * report_incidents shows it in *out (out may be NULL), 1 when there is no
 * such incident, -1 on error (bad by/note included).
 */
int report_ack(PGconn *conn, int64_t id, const char *by, const char *note,
    json_t **out, char *err, size_t errlen);

/* ---- parsing what people type ---- */

/*
 * RFC 3339 ("2024-05-01T12:00:00Z", offsets and fractions allowed, or a
 * bare date meaning its UTC midnight) or a span back from now: N followed
 * by s, m, h, d or w ("24h", "7d").  0, or -1 when s is neither.
 */
int report_parse_time(const char *s, time_t now, time_t *out);
/* info, warning or error (case-insensitive): the rank, or -1. */
int report_parse_severity(const char *s);
/* A domain in stored form: lower-cased, one trailing dot dropped, a host
 * name per wire_host_valid.  0, or -1. */
int report_parse_domain(const char *in, char *out, size_t outlen);
/* Decimal digits only, 1 to INT64_MAX.  0, or -1. */
int report_parse_id(const char *s, int64_t *id);

/* ---- output ---- */

/* Which listing a table or CSV shows; each has its own columns. */
enum report_kind {
	REPORT_KIND_STATUS,
	REPORT_KIND_INCIDENTS,
	REPORT_KIND_EXPIRING,
	REPORT_KIND_AGENTS,
	REPORT_KIND_HOSTS,    /* report_domain's mtasts.hosts */
	REPORT_KIND_VANTAGES, /* report_domain's matrix, one row per host */
};

/*
 * rows: a JSON array as the queries return it (REPORT_KIND_VANTAGES: the
 * domain object).  Tables have a header line and aligned columns; every
 * control character from the data is shown as '?' and long cells are
 * cut; colour (severity) only when colour is set.  CSV follows RFC 4180:
 * a header row, CRLF line ends, fields quoted when needed, array values
 * joined with ','.  0, or -1 on a write error.
 */
int report_write_table(
    FILE *fp, enum report_kind kind, const json_t *rows, int colour);
int report_write_csv(FILE *fp, enum report_kind kind, const json_t *rows);
/* JSON Lines: each element of an array (or the one object) on a line. */
int report_write_jsonl(FILE *fp, const json_t *v);
/* Incidents as CEF lines (cef.h), kind "state". */
int report_write_cef(FILE *fp, const json_t *incidents);
/* report_domain's object as readable text: summary, hosts, matrix,
 * findings, incidents. */
int report_write_domain_text(FILE *fp, const json_t *domain, int colour);

#endif
