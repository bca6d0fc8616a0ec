/* report_query.c -- the reports: every SQL query of mtasts-report and the
 * HTTP API, rows turned into ECS-shaped JSON, and the text forms. */
#include "report_query.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cef.h"
#include "errbuf.h"
#include "strbuf.h"
#include "incident.h"
#include "wire.h"

/*
 * "The latest compared round" of a domain is its row in round_status with
 * the highest round, whatever its state.  Within a round an agent may have
 * sent several results; as in compare.c, its latest completed one counts
 * (its latest of all when none completed), so that every report agrees
 * with the comparison about who saw what.  Lookups go per domain through
 * LATERAL so that the planner uses the (domain, round) indexes instead of
 * scanning every partition of results.
 */

/* The chosen results of one (domain $1, round $2). */
#define CHOSEN_ONE                                                             \
	"WITH c AS (SELECT DISTINCT ON (r.agent_id) r.id, r.received_at, "     \
	"r.agent_id, r.completed, r.started_at, r.duration_ms, "               \
	"r.error_count, r.warning_count, r.info_count FROM results r "         \
	"WHERE r.domain = $1 AND r.round = $2::bigint "                        \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC) "

/* l: each active domain and its latest compared round (NULL: none);
 * c: the chosen results of that round. */
#define LATEST_ALL                                                             \
	"WITH l AS (SELECT d.name AS domain, s.round, s.state, s.vantages, "   \
	"s.completed FROM domains d LEFT JOIN LATERAL (SELECT rs.round, "      \
	"rs.state, rs.vantages, rs.completed FROM round_status rs "            \
	"WHERE rs.domain = d.name ORDER BY rs.round DESC LIMIT 1) s ON true "  \
	"WHERE d.removed_at IS NULL), "                                        \
	"c AS (SELECT l.domain, ch.id, ch.received_at, ch.agent_id, "          \
	"ch.completed FROM l CROSS JOIN LATERAL (SELECT DISTINCT ON "          \
	"(r.agent_id) r.id, r.received_at, r.agent_id, r.completed "           \
	"FROM results r WHERE r.domain = l.domain AND r.round = l.round "      \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC) ch) "

/*
 * Times come out as whole seconds since the epoch (floor), severities
 * are ranked info 1, warning 2, error 3, and every leaf certificate is
 * these columns in this order (CE_*).
 */
enum {
	CE_SHA,
	CE_SPKI,
	CE_SUBJECT,
	CE_ISSUER,
	CE_SERIAL,
	CE_NB,
	CE_NA,
	CE_SAN,
	CE_KEY_TYPE,
	CE_KEY_BITS,
	CE_SIG_ALG,
	CE_NCOLS
};

static const char q_status[] = LATEST_ALL
    ", m AS (SELECT DISTINCT ON (domain) domain, mode FROM (SELECT "
    "c.domain, p.mode, count(*) AS n FROM c JOIN policy_observations p "
    "ON p.result_id = c.id AND p.received_at = c.received_at WHERE "
    "c.completed GROUP BY c.domain, p.mode) x ORDER BY domain, n DESC, "
    "mode NULLS LAST), e AS (SELECT c.domain, min(ce.not_after) AS "
    "not_after FROM c JOIN chain_certs cc ON cc.result_id = c.id AND "
    "cc.received_at = c.received_at AND cc.role = 'policy' AND "
    "cc.position = 0 JOIN certificates ce ON ce.sha256 = cc.cert_sha256 "
    "GROUP BY c.domain), dis AS (SELECT v.domain, count(DISTINCT x.name) "
    "AS n FROM l JOIN vantage_findings v ON v.domain = l.domain AND "
    "v.round = l.round CROSS JOIN LATERAL unnest(v.dissenters) AS "
    "x(name) WHERE v.severity <> 'info' GROUP BY v.domain), o AS (SELECT "
    "domain, count(*) AS n, (array_agg(severity ORDER BY (CASE severity "
    "WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END) DESC, "
    "first_seen, id))[1] AS severity, (array_agg(code ORDER BY (CASE "
    "severity WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END) "
    "DESC, first_seen, id))[1] AS code FROM incidents WHERE state = "
    "'open' GROUP BY domain) SELECT l.domain, l.round, l.state, "
    "l.vantages, l.completed, greatest(l.completed - coalesce(dis.n, 0), "
    "0), m.mode, floor(extract(epoch FROM e.not_after))::bigint, "
    "o.severity, o.code, coalesce(o.n, 0) FROM l LEFT JOIN m ON m.domain "
    "= l.domain LEFT JOIN e ON e.domain = l.domain LEFT JOIN dis ON "
    "dis.domain = l.domain LEFT JOIN o ON o.domain = l.domain ORDER BY "
    "l.domain";

static const char q_incidents[] =
    "SELECT i.id, i.domain, i.code, i.subject, i.severity, i.state, "
    "i.stage, i.detail, array_to_json(i.vantages)::text, "
    "array_to_json(i.dissenters)::text, i.matrix::text, i.first_round, "
    "i.last_round, floor(extract(epoch FROM i.first_seen))::bigint, "
    "floor(extract(epoch FROM i.last_seen))::bigint, floor(extract(epoch "
    "FROM i.resolved_at))::bigint, floor(extract(epoch FROM "
    "i.acked_at))::bigint, i.acked_by, i.ack_note FROM incidents i WHERE "
    "($1::boolean IS NOT TRUE OR i.state = 'open') AND ($2::bigint IS "
    "NULL OR i.last_seen >= to_timestamp($2::bigint) OR i.resolved_at >= "
    "to_timestamp($2::bigint)) AND (CASE i.severity WHEN 'error' THEN 3 "
    "WHEN 'warning' THEN 2 ELSE 1 END) >= $3::integer AND ($4::text IS "
    "NULL OR i.domain = $4::text) AND ($5::bigint IS NULL OR i.id = "
    "$5::bigint) ORDER BY i.last_seen DESC, i.id DESC LIMIT $6::bigint";
enum {
	I_ID,
	I_DOMAIN,
	I_CODE,
	I_SUBJECT,
	I_SEVERITY,
	I_STATE,
	I_STAGE,
	I_DETAIL,
	I_VANTAGES,
	I_DISSENTERS,
	I_MATRIX,
	I_FIRST_ROUND,
	I_LAST_ROUND,
	I_FIRST_SEEN,
	I_LAST_SEEN,
	I_RESOLVED_AT,
	I_ACKED_AT,
	I_ACKED_BY,
	I_ACK_NOTE
};

/* days_left <= N  <=>  not_after < now + (N + 1) days (floor). */
static const char q_expiring[] = LATEST_ALL
    ", x AS (SELECT c.domain, cc.role, rtrim(lower(cc.host), '.') AS "
    "host, cc.cert_sha256, array_agg(DISTINCT a.name ORDER BY a.name) AS "
    "vantages FROM c JOIN chain_certs cc ON cc.result_id = c.id AND "
    "cc.received_at = c.received_at AND cc.position = 0 JOIN agents a ON "
    "a.id = c.agent_id GROUP BY 1, 2, 3, 4) SELECT x.domain, x.role, "
    "x.host, array_to_json(x.vantages)::text, upper(encode(ce.sha256, "
    "'hex')), encode(ce.spki_sha256, 'hex'), ce.subject, ce.issuer, "
    "ce.serial, floor(extract(epoch FROM ce.not_before))::bigint, "
    "floor(extract(epoch FROM ce.not_after))::bigint, "
    "array_to_json(ce.san)::text, ce.key_type, ce.key_bits, ce.sig_alg "
    "FROM x JOIN certificates ce ON ce.sha256 = x.cert_sha256 WHERE "
    "ce.not_after < to_timestamp($1::bigint + ($2::bigint + 1) * 86400) "
    "ORDER BY ce.not_after, x.domain, x.role DESC, x.host LIMIT "
    "$3::bigint";
enum { X_DOMAIN, X_ROLE, X_HOST, X_VANTAGES, X_CERT };

static const char q_agents[] =
    "SELECT a.id, a.name, a.region, a.public_key, floor(extract(epoch "
    "FROM a.first_seen))::bigint, floor(extract(epoch FROM "
    "a.last_seen))::bigint, a.last_committed_seq, a.gaps_total, (SELECT "
    "count(*) FROM gaps g WHERE g.agent_id = a.id), EXISTS (SELECT 1 "
    "FROM incidents i WHERE i.state = 'open' AND i.code = 'AGENT_SILENT' "
    "AND i.domain = '' AND i.subject IN (a.name, a.public_key)) FROM "
    "agents a ORDER BY a.name, a.id LIMIT $1::bigint";

static const char q_domain_names[] =
    "SELECT name FROM domains WHERE removed_at IS NULL ORDER BY name";

static const char q_domain_known[] =
    "SELECT d.name IS NOT NULL, d.removed_at IS NOT NULL, s.round, "
    "s.state, s.vantages, s.completed, floor(extract(epoch FROM "
    "s.compared_at))::bigint FROM (SELECT $1::text AS name) k LEFT JOIN "
    "domains d ON d.name = k.name LEFT JOIN LATERAL (SELECT * FROM "
    "round_status rs WHERE rs.domain = k.name ORDER BY rs.round DESC "
    "LIMIT 1) s ON true";

static const char q_domain_vantages[] = CHOSEN_ONE
    "SELECT c.agent_id, a.name, a.region, c.completed, "
    "floor(extract(epoch FROM c.started_at))::bigint, c.duration_ms, "
    "c.error_count, c.warning_count, c.info_count, d.sts_present, "
    "d.sts_valid, d.sts_id, p.http_status, encode(p.sha256, 'hex'), "
    "p.mode, p.max_age, array_to_json(p.mx)::text, p.valid, p.url, "
    "d.tlsrpt_present, d.tlsrpt_valid, array_to_json(d.tlsrpt_rua)::text "
    "FROM c JOIN agents a ON a.id = c.agent_id LEFT JOIN "
    "dns_observations d ON d.result_id = c.id AND d.received_at = "
    "c.received_at LEFT JOIN policy_observations p ON p.result_id = c.id "
    "AND p.received_at = c.received_at ORDER BY c.agent_id";
enum {
	V_AGENT,
	V_NAME,
	V_REGION,
	V_COMPLETED,
	V_STARTED,
	V_DURATION,
	V_ERRORS,
	V_WARNINGS,
	V_INFOS,
	V_STS_PRESENT,
	V_STS_VALID,
	V_STS_ID,
	V_HTTP,
	V_POLICY_SHA,
	V_MODE,
	V_MAX_AGE,
	V_MX,
	V_POLICY_VALID,
	V_URL,
	V_RPT_PRESENT,
	V_RPT_VALID,
	V_RUA
};

static const char q_domain_hosts[] = CHOSEN_ONE
    "SELECT c.agent_id, c.completed, h.role, h.position, "
    "rtrim(lower(h.host), '.'), h.preference, h.starttls, "
    "h.policy_match, h.ip, h.tls_ok, h.tls_version, h.cipher, "
    "h.verified, h.error, h.ocsp, h.handshake_ms, "
    "array_to_json(h.addresses)::text, upper(encode(ce.sha256, 'hex')), "
    "encode(ce.spki_sha256, 'hex'), ce.subject, ce.issuer, ce.serial, "
    "floor(extract(epoch FROM ce.not_before))::bigint, "
    "floor(extract(epoch FROM ce.not_after))::bigint, "
    "array_to_json(ce.san)::text, ce.key_type, ce.key_bits, ce.sig_alg "
    "FROM c JOIN host_observations h ON h.result_id = c.id AND "
    "h.received_at = c.received_at LEFT JOIN chain_certs cc ON "
    "cc.result_id = c.id AND cc.received_at = c.received_at AND cc.role "
    "= h.role AND cc.host_position = h.position AND cc.position = 0 LEFT "
    "JOIN certificates ce ON ce.sha256 = cc.cert_sha256 ORDER BY h.role "
    "= 'mx', h.position, 5, c.agent_id";
enum {
	H_AGENT,
	H_COMPLETED,
	H_ROLE,
	H_POSITION,
	H_HOST,
	H_PREF,
	H_STARTTLS,
	H_MATCH,
	H_IP,
	H_TLS_OK,
	H_TLS_VERSION,
	H_CIPHER,
	H_VERIFIED,
	H_ERROR,
	H_OCSP,
	H_HANDSHAKE,
	H_ADDRS,
	H_CERT
};

static const char q_domain_findings[] = CHOSEN_ONE
    "SELECT f.code, f.severity, coalesce(f.subject, ''), "
    "min(coalesce(f.detail, '')), array_to_json(array_agg(DISTINCT "
    "a.name ORDER BY a.name))::text, min(f.rfc8460) FROM c JOIN findings "
    "f ON f.result_id = c.id AND f.received_at = c.received_at JOIN "
    "agents a ON a.id = c.agent_id GROUP BY 1, 2, 3 ORDER BY (CASE "
    "f.severity WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END) "
    "DESC, 1, 3";

static const char q_domain_round_findings[] =
    "SELECT 'vantage' AS src, code, severity, subject, detail, "
    "matrix::text, array_to_json(dissenters)::text, (CASE severity WHEN "
    "'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END) AS rank FROM "
    "vantage_findings WHERE domain = $1 AND round = $2::bigint UNION ALL "
    "SELECT 'history', code, severity, subject, detail, NULL, NULL, "
    "(CASE severity WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 "
    "END) FROM history_findings WHERE domain = $1 AND round = $2::bigint "
    "ORDER BY 1 DESC, 8 DESC, 2, 4";

/* ---- errors and results ---- */

/* libpq's message on one line. */
static void
s_pgerr(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *m = res != NULL ? PQresultErrorMessage(res) : "";

	if (m == NULL || m[0] == '\0')
		m = PQerrorMessage(conn);
	errbuf_set(
	    err, errlen, "%s", m != NULL && m[0] != '\0' ? m : "query failed");
	for (char *p = err; err != NULL && *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = *(p + 1) == '\0' ? '\0' : ' ';
}

static PGresult *
s_query(PGconn *conn, const char *sql, int n, const char *const *params,
    ExecStatusType want, char *err, size_t errlen)
{
	PGresult *res;

	if (conn == NULL) {
		errbuf_set(err, errlen, "no database connection");
		return NULL;
	}
	res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != want) {
		s_pgerr(conn, res, err, errlen);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* ---- values ---- */

static int
s_null(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c);
}

static const char *
s_val(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

static int64_t
s_i64(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c)
		   ? 0
		   : strtoll(PQgetvalue(res, r, c), NULL, 10);
}

static int
s_bool(const PGresult *res, int r, int c)
{
	return !PQgetisnull(res, r, c) && PQgetvalue(res, r, c)[0] == 't';
}

/* A JSON string (NULL: null).  The database holds UTF-8 already; bytes
 * that are not become U+FFFD rather than failing the report. */
static json_t *
s_jstr(const char *s)
{
	json_t *v;
	char *clean;
	size_t n;

	if (s == NULL)
		return json_null();
	n = strlen(s);
	if (wire_utf8_valid(s, n))
		return json_stringn(s, n);
	if ((clean = wire_utf8_clean(s, n)) == NULL)
		return NULL;
	v = json_string(clean);
	free(clean);
	return v;
}

/* RFC 3339 UTC, seconds precision. */
static void
s_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

static json_t *
s_jtime(time_t t)
{
	char buf[64];

	s_fmt_time(t, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
s_cstr(const PGresult *res, int r, int c)
{
	return s_jstr(s_val(res, r, c));
}

static json_t *
s_cint(const PGresult *res, int r, int c)
{
	return s_null(res, r, c) ? json_null() : json_integer(s_i64(res, r, c));
}

static json_t *
s_cbool(const PGresult *res, int r, int c)
{
	return s_null(res, r, c) ? json_null()
				 : json_boolean(s_bool(res, r, c));
}

static json_t *
s_ctime(const PGresult *res, int r, int c)
{
	return s_null(res, r, c) ? json_null()
				 : s_jtime((time_t)s_i64(res, r, c));
}

/* JSON text made by PostgreSQL (array_to_json, jsonb); null when NULL. */
static json_t *
s_cjson(const PGresult *res, int r, int c)
{
	if (s_null(res, r, c))
		return json_null();
	return json_loads(PQgetvalue(res, r, c), JSON_DECODE_ANY, NULL);
}

/* floor((t - now) / 86400), also for negative spans. */
static int64_t
s_days_left(int64_t t, time_t now)
{
	int64_t d = t - (int64_t)now;

	return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

/* The numeric event.severity: the CEF scale of cef.h. */
static int
s_sev_num(const char *sev)
{
	if (sev == NULL)
		return 0;
	if (strcmp(sev, "error") == 0)
		return 9;
	if (strcmp(sev, "warning") == 0)
		return 6;
	return 3;
}

/*
 * Sets the member at a dotted path ("tls.server.x509.not_after"), making
 * the objects on the way.  Takes v (also on failure); v NULL (out of
 * memory upstream) fails.  0 or -1.
 */
static int
s_setp(json_t *o, const char *path, json_t *v)
{
	char key[64];
	const char *p = path, *dot;

	if (v == NULL || o == NULL)
		goto fail;
	while ((dot = strchr(p, '.')) != NULL) {
		size_t n = (size_t)(dot - p);
		json_t *child;

		if (n == 0 || n >= sizeof(key))
			goto fail;
		memcpy(key, p, n);
		key[n] = '\0';
		if ((child = json_object_get(o, key)) == NULL) {
			if ((child = json_object()) == NULL ||
			    json_object_set_new(o, key, child) == -1)
				goto fail;
		} else if (!json_is_object(child)) {
			goto fail;
		}
		o = child;
		p = dot + 1;
	}
	return json_object_set_new(o, p, v);
fail:
	json_decref(v);
	return -1;
}

/* The member at a dotted path, or NULL. */
static const json_t *
s_getp(const json_t *o, const char *path)
{
	char key[64];
	const char *p = path, *dot;

	while (o != NULL && (dot = strchr(p, '.')) != NULL) {
		size_t n = (size_t)(dot - p);

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		o = json_object_get(o, key);
		p = dot + 1;
	}
	return o != NULL ? json_object_get(o, p) : NULL;
}

static const char *
s_gets(const json_t *o, const char *path)
{
	return json_string_value(s_getp(o, path));
}

static int
s_append(json_t *arr, json_t *v)
{
	return json_array_append_new(arr, v);
}

/* "TLSv1.3" is ECS tls.version "1.3" with tls.version_protocol "tls". */
static int
s_put_tls_version(json_t *o, const char *prefix, const char *ver)
{
	char path[64];
	int bad = 0;

	if (ver == NULL)
		return 0;
	snprintf(path, sizeof(path), "%stls.version", prefix);
	if (strncmp(ver, "TLSv", 4) == 0 || strncmp(ver, "SSLv", 4) == 0) {
		bad |= s_setp(o, path, s_jstr(ver + 4));
		snprintf(path, sizeof(path), "%stls.version_protocol", prefix);
		bad |=
		    s_setp(o, path, json_string(ver[0] == 'T' ? "tls" : "ssl"));
	} else {
		bad |= s_setp(o, path, s_jstr(ver));
	}
	return bad;
}

/*
 * The leaf at columns base.. (CERT_COLUMNS) as tls.server.hash and
 * tls.server.x509, its SPKI hash and days left under mtasts.  Nothing but
 * mtasts.days_left (null) when there is no certificate.
 */
static int
s_put_cert(json_t *o, const PGresult *res, int r, int base, time_t now)
{
	int bad = 0;

	if (s_null(res, r, base + CE_SHA))
		return s_setp(o, "mtasts.days_left", json_null());
	bad |=
	    s_setp(o, "tls.server.hash.sha256", s_cstr(res, r, base + CE_SHA));
	bad |= s_setp(o, "tls.server.x509.subject.distinguished_name",
	    s_cstr(res, r, base + CE_SUBJECT));
	bad |= s_setp(o, "tls.server.x509.issuer.distinguished_name",
	    s_cstr(res, r, base + CE_ISSUER));
	bad |= s_setp(o, "tls.server.x509.serial_number",
	    s_cstr(res, r, base + CE_SERIAL));
	bad |= s_setp(
	    o, "tls.server.x509.not_before", s_ctime(res, r, base + CE_NB));
	bad |= s_setp(
	    o, "tls.server.x509.not_after", s_ctime(res, r, base + CE_NA));
	bad |= s_setp(o, "tls.server.x509.alternative_names",
	    s_cjson(res, r, base + CE_SAN));
	bad |= s_setp(o, "tls.server.x509.public_key_algorithm",
	    s_cstr(res, r, base + CE_KEY_TYPE));
	bad |= s_setp(o, "tls.server.x509.public_key_size",
	    s_cint(res, r, base + CE_KEY_BITS));
	bad |= s_setp(o, "tls.server.x509.signature_algorithm",
	    s_cstr(res, r, base + CE_SIG_ALG));
	bad |= s_setp(o, "mtasts.spki_sha256", s_cstr(res, r, base + CE_SPKI));
	bad |= s_setp(o, "mtasts.days_left",
	    s_null(res, r, base + CE_NA)
		? json_null()
		: json_integer(s_days_left(s_i64(res, r, base + CE_NA), now)));
	return bad;
}

/* ---- status ---- */

int
report_status(PGconn *conn, time_t now, json_t **out, char *err, size_t errlen)
{
	PGresult *res;
	json_t *arr;
	int bad = 0;

	*out = NULL;
	if ((res = s_query(conn, q_status, 0, NULL, PGRES_TUPLES_OK, err,
		 errlen)) == NULL)
		return -1;
	if ((arr = json_array()) == NULL)
		bad = 1;
	for (int i = 0; !bad && i < PQntuples(res); i++) {
		json_t *row = json_object();
		char host[REPORT_DOMAIN_MAX + 16];

		snprintf(
		    host, sizeof(host), "mta-sts.%s", PQgetvalue(res, i, 0));
		bad |= s_setp(row, "mtasts.domain", s_cstr(res, i, 0));
		bad |= s_setp(row, "mtasts.round", s_cint(res, i, 1));
		bad |= s_setp(row, "mtasts.round_state", s_cstr(res, i, 2));
		bad |= s_setp(row, "mtasts.mode", s_cstr(res, i, 6));
		bad |= s_setp(row, "mtasts.vantages.total", s_cint(res, i, 3));
		bad |=
		    s_setp(row, "mtasts.vantages.completed", s_cint(res, i, 4));
		bad |= s_setp(row, "mtasts.vantages.agreeing",
		    s_null(res, i, 1) ? json_null() : s_cint(res, i, 5));
		bad |= s_setp(row, "mtasts.policy_host.days_left",
		    s_null(res, i, 7)
			? json_null()
			: json_integer(s_days_left(s_i64(res, i, 7), now)));
		bad |= s_setp(row, "mtasts.incidents.open", s_cint(res, i, 10));
		if (s_null(res, i, 8)) {
			bad |=
			    s_setp(row, "mtasts.incidents.worst", json_null());
		} else {
			bad |= s_setp(row, "mtasts.incidents.worst.severity",
			    s_cstr(res, i, 8));
			bad |= s_setp(row, "mtasts.incidents.worst.code",
			    s_cstr(res, i, 9));
		}
		bad |= s_setp(row, "server.address", s_jstr(host));
		bad |= s_setp(
		    row, "tls.server.x509.not_after", s_ctime(res, i, 7));
		bad |= s_append(arr, row);
	}
	PQclear(res);
	if (bad) {
		json_decref(arr);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	*out = arr;
	return 0;
}

/* ---- incidents ---- */

static json_t *
s_incident(const PGresult *res, int i)
{
	json_t *o = json_object();
	char id[24];
	int bad = 0;

	snprintf(id, sizeof(id), "%s", PQgetvalue(res, i, I_ID));
	bad |= s_setp(o, "@timestamp", s_ctime(res, i, I_LAST_SEEN));
	bad |= s_setp(o, "event.kind", json_string("alert"));
	bad |= s_setp(o, "event.dataset", json_string("mtasts.incident"));
	bad |= s_setp(o, "event.id", json_string(id));
	bad |= s_setp(o, "event.severity",
	    json_integer(s_sev_num(s_val(res, i, I_SEVERITY))));
	bad |= s_setp(o, "event.start", s_ctime(res, i, I_FIRST_SEEN));
	bad |= s_setp(o, "event.end", s_ctime(res, i, I_RESOLVED_AT));
	bad |= s_setp(o, "rule.name", s_cstr(res, i, I_CODE));
	bad |= s_setp(o, "message", s_cstr(res, i, I_DETAIL));
	bad |= s_setp(o, "mtasts.incident_id", s_cint(res, i, I_ID));
	bad |= s_setp(o, "mtasts.domain", s_cstr(res, i, I_DOMAIN));
	bad |= s_setp(o, "mtasts.subject", s_cstr(res, i, I_SUBJECT));
	bad |= s_setp(o, "mtasts.severity", s_cstr(res, i, I_SEVERITY));
	bad |= s_setp(o, "mtasts.state", s_cstr(res, i, I_STATE));
	bad |= s_setp(o, "mtasts.stage", s_cstr(res, i, I_STAGE));
	bad |= s_setp(o, "mtasts.vantages", s_cjson(res, i, I_VANTAGES));
	bad |= s_setp(o, "mtasts.dissenters", s_cjson(res, i, I_DISSENTERS));
	bad |= s_setp(o, "mtasts.matrix", s_cjson(res, i, I_MATRIX));
	bad |= s_setp(o, "mtasts.first_round", s_cint(res, i, I_FIRST_ROUND));
	bad |= s_setp(o, "mtasts.last_round", s_cint(res, i, I_LAST_ROUND));
	if (s_null(res, i, I_ACKED_AT)) {
		bad |= s_setp(o, "mtasts.ack", json_null());
	} else {
		bad |= s_setp(o, "mtasts.ack.at", s_ctime(res, i, I_ACKED_AT));
		bad |= s_setp(o, "mtasts.ack.by", s_cstr(res, i, I_ACKED_BY));
		bad |= s_setp(o, "mtasts.ack.note", s_cstr(res, i, I_ACK_NOTE));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
s_incidents(PGconn *conn, const struct report_incident_filter *f, int64_t id,
    json_t **out, char *err, size_t errlen)
{
	char since[24], sev[8], idbuf[24], limit[24];
	const char *params[6];
	unsigned lim = f->limit;
	PGresult *res;
	json_t *arr;
	int bad = 0;

	*out = NULL;
	if (lim == 0 || lim > REPORT_ROWS_MAX)
		lim = REPORT_ROWS_MAX;
	snprintf(since, sizeof(since), "%lld", (long long)f->since);
	snprintf(sev, sizeof(sev), "%d", f->min_severity);
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	snprintf(limit, sizeof(limit), "%u", lim);
	params[0] = f->open_only ? "true" : "false";
	params[1] = f->since > 0 ? since : NULL;
	params[2] = sev;
	params[3] = f->domain;
	params[4] = id > 0 ? idbuf : NULL;
	params[5] = limit;
	if ((res = s_query(conn, q_incidents, 6, params, PGRES_TUPLES_OK, err,
		 errlen)) == NULL)
		return -1;
	if ((arr = json_array()) == NULL)
		bad = 1;
	for (int i = 0; !bad && i < PQntuples(res); i++)
		bad |= s_append(arr, s_incident(res, i));
	PQclear(res);
	if (bad) {
		json_decref(arr);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	*out = arr;
	return 0;
}

int
report_incidents(PGconn *conn, const struct report_incident_filter *f,
    json_t **out, char *err, size_t errlen)
{
	const struct report_incident_filter none = {0};

	return s_incidents(conn, f != NULL ? f : &none, 0, out, err, errlen);
}

/* ---- expiring ---- */

int
report_expiring(PGconn *conn, int days, time_t now, unsigned limit,
    json_t **out, char *err, size_t errlen)
{
	char nowbuf[24], daysbuf[24], limbuf[24];
	const char *params[3] = {nowbuf, daysbuf, limbuf};
	PGresult *res;
	json_t *arr;
	int bad = 0;

	*out = NULL;
	if (days < 0 || days > REPORT_DAYS_MAX) {
		errbuf_set(
		    err, errlen, "days must be 0 to %d", REPORT_DAYS_MAX);
		return -1;
	}
	if (limit == 0 || limit > REPORT_ROWS_MAX)
		limit = REPORT_ROWS_MAX;
	snprintf(nowbuf, sizeof(nowbuf), "%lld", (long long)now);
	snprintf(daysbuf, sizeof(daysbuf), "%d", days);
	snprintf(limbuf, sizeof(limbuf), "%u", limit);
	if ((res = s_query(conn, q_expiring, 3, params, PGRES_TUPLES_OK, err,
		 errlen)) == NULL)
		return -1;
	if ((arr = json_array()) == NULL)
		bad = 1;
	for (int i = 0; !bad && i < PQntuples(res); i++) {
		json_t *row = json_object();

		bad |= s_setp(row, "mtasts.domain", s_cstr(res, i, X_DOMAIN));
		bad |= s_setp(row, "mtasts.role", s_cstr(res, i, X_ROLE));
		bad |=
		    s_setp(row, "mtasts.vantages", s_cjson(res, i, X_VANTAGES));
		bad |= s_setp(row, "server.address", s_cstr(res, i, X_HOST));
		bad |= s_put_cert(row, res, i, X_CERT, now);
		bad |= s_append(arr, row);
	}
	PQclear(res);
	if (bad) {
		json_decref(arr);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	*out = arr;
	return 0;
}

/* ---- agents ---- */

int
report_agents(PGconn *conn, time_t now, long silent_after_s, json_t **out,
    char *err, size_t errlen)
{
	char limbuf[24];
	const char *params[1] = {limbuf};
	PGresult *res;
	json_t *arr;
	int bad = 0;

	*out = NULL;
	if (silent_after_s <= 0)
		silent_after_s = REPORT_SILENT_AFTER_S;
	snprintf(limbuf, sizeof(limbuf), "%d", REPORT_ROWS_MAX);
	if ((res = s_query(conn, q_agents, 1, params, PGRES_TUPLES_OK, err,
		 errlen)) == NULL)
		return -1;
	if ((arr = json_array()) == NULL)
		bad = 1;
	for (int i = 0; !bad && i < PQntuples(res); i++) {
		json_t *row = json_object();
		int64_t last = s_i64(res, i, 5);
		int silent = s_bool(res, i, 9) ||
			     (int64_t)now - last > (int64_t)silent_after_s;

		bad |= s_setp(row, "observer.name", s_cstr(res, i, 1));
		bad |= s_setp(row, "observer.geo.name", s_cstr(res, i, 2));
		bad |= s_setp(row, "mtasts.agent_id", s_cint(res, i, 0));
		bad |= s_setp(row, "mtasts.public_key", s_cstr(res, i, 3));
		bad |= s_setp(row, "mtasts.first_seen", s_ctime(res, i, 4));
		bad |= s_setp(row, "mtasts.last_seen", s_ctime(res, i, 5));
		bad |= s_setp(row, "mtasts.silent", json_boolean(silent));
		bad |=
		    s_setp(row, "mtasts.last_committed_seq", s_cint(res, i, 6));
		bad |= s_setp(row, "mtasts.gaps.lost", s_cint(res, i, 7));
		bad |= s_setp(row, "mtasts.gaps.count", s_cint(res, i, 8));
		bad |= s_append(arr, row);
	}
	PQclear(res);
	if (bad) {
		json_decref(arr);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	*out = arr;
	return 0;
}

int
report_domain_names(PGconn *conn, json_t **out, char *err, size_t errlen)
{
	PGresult *res;
	json_t *arr;
	int bad = 0;

	*out = NULL;
	if ((res = s_query(conn, q_domain_names, 0, NULL, PGRES_TUPLES_OK, err,
		 errlen)) == NULL)
		return -1;
	if ((arr = json_array()) == NULL)
		bad = 1;
	for (int i = 0; !bad && i < PQntuples(res); i++)
		bad |= s_append(arr, s_cstr(res, i, 0));
	PQclear(res);
	if (bad) {
		json_decref(arr);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	*out = arr;
	return 0;
}

/* ---- one domain ---- */

/*
 * The value most of vals[0..n) share (NULL: not observed), ties to the
 * smallest, as compare.c's agreement.  Index or -1; *count how many.
 */
static long
s_majority(const char *const *vals, size_t n, size_t *count)
{
	long best = -1;
	size_t best_n = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		if (vals[i] == NULL)
			continue;
		for (size_t j = 0; j < n; j++)
			k += vals[j] != NULL && strcmp(vals[i], vals[j]) == 0;
		if (k > best_n ||
		    (k == best_n && strcmp(vals[i], vals[best]) < 0)) {
			best = (long)i;
			best_n = k;
		}
	}
	if (count != NULL)
		*count = best_n;
	return best;
}

struct dctx {
	PGconn *conn;
	const char *domain;
	char round[24];
	time_t now;
	PGresult *vres, *hres;
	int nv, nh;
	char (*label)[96];    /* per vantage row */
	const char **scratch; /* nv + nh entries */
	json_t *obj;
	char *err;
	size_t errlen;
};

/* As compare.c labels vantages: the agent name, "name#id" when two
 * agents of the round share one or it is empty. */
static void
s_labels(struct dctx *d)
{
	for (int i = 0; i < d->nv; i++) {
		const char *name = PQgetvalue(d->vres, i, V_NAME);
		int dup = name[0] == '\0';

		for (int j = 0; j < d->nv && !dup; j++)
			dup = j != i &&
			      strcmp(name, PQgetvalue(d->vres, j, V_NAME)) == 0;
		if (dup)
			snprintf(d->label[i], sizeof(d->label[i]), "%s#%s",
			    name[0] ? name : "agent",
			    PQgetvalue(d->vres, i, V_AGENT));
		else
			snprintf(d->label[i], sizeof(d->label[i]), "%s", name);
	}
}

/* The STS id and the policy most completed vantages saw. */
static int
s_domain_agreement(struct dctx *d)
{
	const char **v = d->scratch;
	long sts, pol;
	size_t n_sts, n_pol;
	int bad = 0;

	for (int i = 0; i < d->nv; i++)
		v[i] = s_bool(d->vres, i, V_COMPLETED) &&
			       s_bool(d->vres, i, V_STS_VALID)
			   ? s_val(d->vres, i, V_STS_ID)
			   : NULL;
	sts = s_majority(v, (size_t)d->nv, &n_sts);
	bad |= s_setp(
	    d->obj, "mtasts.sts.id", sts >= 0 ? s_jstr(v[sts]) : json_null());
	bad |= s_setp(
	    d->obj, "mtasts.sts.seen_by", json_integer((json_int_t)n_sts));

	for (int i = 0; i < d->nv; i++)
		v[i] = s_bool(d->vres, i, V_COMPLETED)
			   ? s_val(d->vres, i, V_POLICY_SHA)
			   : NULL;
	pol = s_majority(v, (size_t)d->nv, &n_pol);
	if (pol < 0) {
		bad |= s_setp(d->obj, "mtasts.policy", json_null());
		return bad;
	}
	bad |= s_setp(d->obj, "mtasts.policy.sha256",
	    s_cstr(d->vres, (int)pol, V_POLICY_SHA));
	bad |= s_setp(
	    d->obj, "mtasts.policy.mode", s_cstr(d->vres, (int)pol, V_MODE));
	bad |= s_setp(d->obj, "mtasts.policy.max_age",
	    s_cint(d->vres, (int)pol, V_MAX_AGE));
	bad |= s_setp(
	    d->obj, "mtasts.policy.mx", s_cjson(d->vres, (int)pol, V_MX));
	bad |= s_setp(d->obj, "mtasts.policy.valid",
	    s_cbool(d->vres, (int)pol, V_POLICY_VALID));
	bad |= s_setp(d->obj, "mtasts.policy.http_status",
	    s_cint(d->vres, (int)pol, V_HTTP));
	bad |= s_setp(
	    d->obj, "mtasts.policy.url", s_cstr(d->vres, (int)pol, V_URL));
	bad |= s_setp(
	    d->obj, "mtasts.policy.seen_by", json_integer((json_int_t)n_pol));
	return bad;
}

static int
s_same_host(const PGresult *res, int a, int b)
{
	return strcmp(PQgetvalue(res, a, H_ROLE), PQgetvalue(res, b, H_ROLE)) ==
		   0 &&
	       strcmp(PQgetvalue(res, a, H_HOST), PQgetvalue(res, b, H_HOST)) ==
		   0;
}

/*
 * One entry per host (the policy host, then each MX by position): the
 * leaf most vantages saw and the verdict of the completed vantages
 * ("verified" by all, "failed" at all, or "mixed").
 */
static int
s_domain_hosts(struct dctx *d)
{
	const PGresult *h = d->hres;
	json_t *arr = json_array();
	const char **v = d->scratch;
	int bad = arr == NULL;

	for (int g = 0; !bad && g < d->nh; g++) {
		int first = 1, any_completed = 0, rep = g;
		size_t used = 0, verified = 0, n_leaf;
		long leaf, error;
		json_t *o;

		for (int j = 0; j < g && first; j++)
			first = !s_same_host(h, j, g);
		if (!first)
			continue;
		for (int j = g; j < d->nh; j++)
			any_completed |=
			    s_same_host(h, j, g) && s_bool(h, j, H_COMPLETED);
		/* The verdict counts the completed vantages (the others did
		 * not finish), or all when none completed. */
		for (int j = 0; j < d->nh; j++) {
			int use = j >= g && s_same_host(h, j, g) &&
				  (!any_completed || s_bool(h, j, H_COMPLETED));

			v[j] = use ? s_val(h, j, H_CERT + CE_SHA) : NULL;
			if (use) {
				used++;
				verified += s_bool(h, j, H_VERIFIED);
			}
		}
		if ((leaf = s_majority(v, (size_t)d->nh, &n_leaf)) >= 0)
			rep = (int)leaf;
		for (int j = 0; j < d->nh; j++) {
			int use = j >= g && s_same_host(h, j, g) &&
				  (!any_completed || s_bool(h, j, H_COMPLETED));

			v[j] = use && !s_bool(h, j, H_VERIFIED)
				   ? s_val(h, j, H_ERROR)
				   : NULL;
		}
		error = s_majority(v, (size_t)d->nh, NULL);

		o = json_object();
		bad |= s_setp(o, "server.address", s_cstr(h, g, H_HOST));
		bad |= s_setp(o, "server.ip", s_cstr(h, rep, H_IP));
		bad |= s_put_tls_version(o, "", s_val(h, rep, H_TLS_VERSION));
		bad |= s_setp(o, "tls.cipher", s_cstr(h, rep, H_CIPHER));
		bad |= s_put_cert(o, h, leaf >= 0 ? rep : g, H_CERT, d->now);
		bad |= s_setp(o, "mtasts.role", s_cstr(h, g, H_ROLE));
		if (strcmp(PQgetvalue(h, g, H_ROLE), "mx") == 0) {
			bad |= s_setp(
			    o, "mtasts.preference", s_cint(h, rep, H_PREF));
			bad |= s_setp(
			    o, "mtasts.starttls", s_cbool(h, rep, H_STARTTLS));
			bad |= s_setp(o, "mtasts.policy_match",
			    s_null(h, rep, H_MATCH) ? json_null()
			    : s_i64(h, rep, H_MATCH) < 0
				? json_null()
				: json_boolean(s_i64(h, rep, H_MATCH) == 1));
		}
		bad |= s_setp(o, "mtasts.verdict",
		    json_string(verified == used ? "verified"
				: verified == 0	 ? "failed"
						 : "mixed"));
		bad |= s_setp(o, "mtasts.verified_by",
		    json_integer((json_int_t)verified));
		bad |= s_setp(
		    o, "mtasts.observed_by", json_integer((json_int_t)used));
		bad |= s_setp(
		    o, "mtasts.leaf_seen_by", json_integer((json_int_t)n_leaf));
		bad |= s_setp(o, "mtasts.error",
		    error >= 0 ? s_jstr(v[error]) : json_null());
		bad |= s_setp(o, "mtasts.ocsp", s_cstr(h, rep, H_OCSP));
		bad |= s_append(arr, o);
	}
	return bad | s_setp(d->obj, "mtasts.hosts", arr);
}

/* The codes of the round's error and warning comparison findings in
 * which label dissents, as a JSON array. */
static json_t *
s_dissents(const PGresult *fres, const char *label)
{
	json_t *codes = json_array();

	for (int i = 0; codes != NULL && i < PQntuples(fres); i++) {
		json_t *diss;
		size_t k;
		json_t *e;

		if (strcmp(PQgetvalue(fres, i, 0), "vantage") != 0 ||
		    strcmp(PQgetvalue(fres, i, 2), "info") == 0 ||
		    s_null(fres, i, 6))
			continue;
		if ((diss = json_loads(PQgetvalue(fres, i, 6), 0, NULL)) ==
		    NULL)
			continue;
		json_array_foreach(diss, k, e)
		{
			if (json_is_string(e) &&
			    strcmp(json_string_value(e), label) == 0) {
				json_array_append_new(
				    codes, s_cstr(fres, i, 1));
				break;
			}
		}
		json_decref(diss);
	}
	return codes;
}

/* What each vantage saw: the matrix, one entry per agent. */
static int
s_domain_matrix(struct dctx *d, const PGresult *fres, size_t *agreeing)
{
	json_t *arr = json_array();
	int bad = arr == NULL;

	*agreeing = 0;
	for (int i = 0; !bad && i < d->nv; i++) {
		const PGresult *v = d->vres;
		json_t *o = json_object(), *hosts = json_array();
		json_t *codes = s_dissents(fres, d->label[i]);
		int completed = s_bool(v, i, V_COMPLETED);
		int agrees =
		    completed && codes != NULL && json_array_size(codes) == 0;

		*agreeing += (size_t)agrees;
		bad |= s_setp(o, "observer.name", s_jstr(d->label[i]));
		bad |= s_setp(o, "observer.geo.name", s_cstr(v, i, V_REGION));
		bad |= s_setp(o, "event.start", s_ctime(v, i, V_STARTED));
		/* ECS event.duration is in nanoseconds. */
		bad |= s_setp(o, "event.duration",
		    json_integer(s_i64(v, i, V_DURATION) * 1000000));
		bad |= s_setp(o, "mtasts.completed", json_boolean(completed));
		bad |= s_setp(o, "mtasts.agrees", json_boolean(agrees));
		bad |= s_setp(o, "mtasts.dissents_in", codes);
		bad |=
		    s_setp(o, "mtasts.findings.error", s_cint(v, i, V_ERRORS));
		bad |= s_setp(
		    o, "mtasts.findings.warning", s_cint(v, i, V_WARNINGS));
		bad |= s_setp(o, "mtasts.findings.info", s_cint(v, i, V_INFOS));
		bad |= s_setp(
		    o, "mtasts.sts.present", s_cbool(v, i, V_STS_PRESENT));
		bad |=
		    s_setp(o, "mtasts.sts.valid", s_cbool(v, i, V_STS_VALID));
		bad |= s_setp(o, "mtasts.sts.id", s_cstr(v, i, V_STS_ID));
		bad |= s_setp(
		    o, "mtasts.policy.http_status", s_cint(v, i, V_HTTP));
		bad |= s_setp(
		    o, "mtasts.policy.sha256", s_cstr(v, i, V_POLICY_SHA));
		bad |= s_setp(o, "mtasts.policy.mode", s_cstr(v, i, V_MODE));
		bad |= s_setp(
		    o, "mtasts.policy.valid", s_cbool(v, i, V_POLICY_VALID));
		bad |= s_setp(
		    o, "mtasts.tlsrpt.present", s_cbool(v, i, V_RPT_PRESENT));
		bad |= s_setp(
		    o, "mtasts.tlsrpt.valid", s_cbool(v, i, V_RPT_VALID));
		bad |= s_setp(o, "mtasts.tlsrpt.rua", s_cjson(v, i, V_RUA));
		for (int j = 0; !bad && hosts != NULL && j < d->nh; j++) {
			const PGresult *h = d->hres;
			json_t *ho;

			if (strcmp(PQgetvalue(h, j, H_AGENT),
				PQgetvalue(v, i, V_AGENT)) != 0)
				continue;
			ho = json_object();
			bad |=
			    s_setp(ho, "server.address", s_cstr(h, j, H_HOST));
			bad |= s_setp(ho, "server.ip", s_cstr(h, j, H_IP));
			bad |= s_put_tls_version(
			    ho, "", s_val(h, j, H_TLS_VERSION));
			bad |= s_setp(ho, "tls.cipher", s_cstr(h, j, H_CIPHER));
			if (!s_null(h, j, H_CERT + CE_SHA))
				bad |= s_setp(ho, "tls.server.hash.sha256",
				    s_cstr(h, j, H_CERT + CE_SHA));
			bad |= s_setp(ho, "mtasts.role", s_cstr(h, j, H_ROLE));
			bad |= s_setp(
			    ho, "mtasts.addresses", s_cjson(h, j, H_ADDRS));
			bad |= s_setp(
			    ho, "mtasts.starttls", s_cbool(h, j, H_STARTTLS));
			bad |= s_setp(
			    ho, "mtasts.verified", s_cbool(h, j, H_VERIFIED));
			bad |=
			    s_setp(ho, "mtasts.error", s_cstr(h, j, H_ERROR));
			bad |= s_setp(ho, "mtasts.handshake_ms",
			    s_cint(h, j, H_HANDSHAKE));
			bad |= s_append(hosts, ho);
		}
		bad |= s_setp(o, "mtasts.hosts", hosts);
		bad |= s_append(arr, o);
	}
	return bad | s_setp(d->obj, "mtasts.matrix", arr);
}

static int
s_domain_findings(struct dctx *d, const PGresult *fres)
{
	const char *params[2] = {d->domain, d->round};
	json_t *agents = json_array(), *vant = json_array(),
	       *hist = json_array();
	PGresult *res;
	int bad = agents == NULL || vant == NULL || hist == NULL;

	res = s_query(d->conn, q_domain_findings, 2, params, PGRES_TUPLES_OK,
	    d->err, d->errlen);
	if (res == NULL) {
		json_decref(agents);
		json_decref(vant);
		json_decref(hist);
		return -2;
	}
	for (int i = 0; !bad && i < PQntuples(res); i++) {
		json_t *o = json_object();

		bad |= s_setp(o, "rule.name", s_cstr(res, i, 0));
		bad |= s_setp(o, "event.severity",
		    json_integer(s_sev_num(PQgetvalue(res, i, 1))));
		bad |= s_setp(o, "message", s_cstr(res, i, 3));
		bad |= s_setp(o, "mtasts.severity", s_cstr(res, i, 1));
		bad |= s_setp(o, "mtasts.subject", s_cstr(res, i, 2));
		bad |= s_setp(o, "mtasts.vantages", s_cjson(res, i, 4));
		bad |= s_setp(o, "mtasts.rfc8460", s_cstr(res, i, 5));
		bad |= s_append(agents, o);
	}
	PQclear(res);
	for (int i = 0; !bad && i < PQntuples(fres); i++) {
		json_t *o = json_object();
		int is_vantage = strcmp(PQgetvalue(fres, i, 0), "vantage") == 0;

		bad |= s_setp(o, "rule.name", s_cstr(fres, i, 1));
		bad |= s_setp(o, "event.severity",
		    json_integer(s_sev_num(PQgetvalue(fres, i, 2))));
		bad |= s_setp(o, "message", s_cstr(fres, i, 4));
		bad |= s_setp(o, "mtasts.severity", s_cstr(fres, i, 2));
		bad |= s_setp(o, "mtasts.subject", s_cstr(fres, i, 3));
		if (is_vantage) {
			bad |= s_setp(o, "mtasts.matrix", s_cjson(fres, i, 5));
			bad |=
			    s_setp(o, "mtasts.dissenters", s_cjson(fres, i, 6));
		}
		bad |= s_append(is_vantage ? vant : hist, o);
	}
	bad |= s_setp(d->obj, "mtasts.findings", agents);
	bad |= s_setp(d->obj, "mtasts.vantage_findings", vant);
	bad |= s_setp(d->obj, "mtasts.history_findings", hist);
	return bad ? -1 : 0;
}

/* The round-dependent part; -2 a query failed (err set), -1 no memory. */
static int
s_domain_round(struct dctx *d)
{
	const char *params[2] = {d->domain, d->round};
	PGresult *fres;
	size_t agreeing;
	int bad = 0, rc;

	d->vres = s_query(d->conn, q_domain_vantages, 2, params,
	    PGRES_TUPLES_OK, d->err, d->errlen);
	if (d->vres == NULL)
		return -2;
	d->hres = s_query(d->conn, q_domain_hosts, 2, params, PGRES_TUPLES_OK,
	    d->err, d->errlen);
	if (d->hres == NULL)
		return -2;
	fres = s_query(d->conn, q_domain_round_findings, 2, params,
	    PGRES_TUPLES_OK, d->err, d->errlen);
	if (fres == NULL)
		return -2;
	d->nv = PQntuples(d->vres);
	d->nh = PQntuples(d->hres);
	d->label = calloc((size_t)d->nv + 1, sizeof(*d->label));
	d->scratch = calloc((size_t)(d->nv + d->nh) + 1, sizeof(*d->scratch));
	if (d->label == NULL || d->scratch == NULL) {
		PQclear(fres);
		return -1;
	}
	s_labels(d);
	bad |= s_domain_agreement(d);
	bad |= s_domain_hosts(d);
	bad |= s_domain_matrix(d, fres, &agreeing);
	bad |= s_setp(d->obj, "mtasts.vantages.agreeing",
	    json_integer((json_int_t)agreeing));
	rc = bad ? -1 : s_domain_findings(d, fres);
	PQclear(fres);
	return rc;
}

int
report_domain(PGconn *conn, const char *domain, time_t now, json_t **out,
    char *err, size_t errlen)
{
	const char *params[1] = {domain};
	struct report_incident_filter f = {0};
	struct dctx d;
	PGresult *res;
	json_t *inc = NULL;
	int bad = 0, rc = -1;

	*out = NULL;
	memset(&d, 0, sizeof(d));
	d.conn = conn;
	d.domain = domain;
	d.now = now;
	d.err = err;
	d.errlen = errlen;
	if ((res = s_query(conn, q_domain_known, 1, params, PGRES_TUPLES_OK,
		 err, errlen)) == NULL)
		return -1;
	if (PQntuples(res) != 1 || (!s_bool(res, 0, 0) && s_null(res, 0, 2))) {
		PQclear(res);
		return 1;
	}
	if ((d.obj = json_object()) == NULL)
		goto oom;
	bad |= s_setp(d.obj, "mtasts.domain", s_jstr(domain));
	bad |= s_setp(d.obj, "mtasts.removed", json_boolean(s_bool(res, 0, 1)));
	bad |= s_setp(d.obj, "mtasts.round", s_cint(res, 0, 2));
	bad |= s_setp(d.obj, "mtasts.round_state", s_cstr(res, 0, 3));
	bad |= s_setp(d.obj, "mtasts.compared_at", s_ctime(res, 0, 6));
	bad |= s_setp(d.obj, "mtasts.vantages.total", s_cint(res, 0, 4));
	bad |= s_setp(d.obj, "mtasts.vantages.completed", s_cint(res, 0, 5));
	if (bad)
		goto oom;
	if (!s_null(res, 0, 2)) {
		snprintf(d.round, sizeof(d.round), "%s", PQgetvalue(res, 0, 2));
		if ((rc = s_domain_round(&d)) == -2)
			goto fail;
		if (rc == -1)
			goto oom;
	} else {
		/* Known but never compared: the same shape, empty. */
		bad |= s_setp(d.obj, "mtasts.vantages.agreeing", json_null());
		bad |= s_setp(d.obj, "mtasts.sts.id", json_null());
		bad |= s_setp(d.obj, "mtasts.policy", json_null());
		bad |= s_setp(d.obj, "mtasts.hosts", json_array());
		bad |= s_setp(d.obj, "mtasts.matrix", json_array());
		bad |= s_setp(d.obj, "mtasts.findings", json_array());
		bad |= s_setp(d.obj, "mtasts.vantage_findings", json_array());
		bad |= s_setp(d.obj, "mtasts.history_findings", json_array());
		if (bad)
			goto oom;
	}
	f.open_only = 1;
	f.domain = domain;
	if (s_incidents(conn, &f, 0, &inc, err, errlen) == -1)
		goto fail;
	if (s_setp(d.obj, "mtasts.incidents", inc) == -1)
		goto oom;
	*out = d.obj;
	d.obj = NULL;
	rc = 0;
	goto done;
oom:
	errbuf_set(err, errlen, "out of memory");
fail:
	rc = -1;
done:
	PQclear(res);
	PQclear(d.vres);
	PQclear(d.hres);
	free(d.label);
	free(d.scratch);
	json_decref(d.obj);
	return rc;
}

/* ---- acknowledgement ---- */

int
report_ack(PGconn *conn, int64_t id, const char *by, const char *note,
    json_t **out, char *err, size_t errlen)
{
	struct report_incident_filter f = {0};
	json_t *arr;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (by == NULL)
		by = "";
	if (id <= 0) {
		errbuf_set(err, errlen, "bad incident id");
		return -1;
	}
	if (strlen(by) > REPORT_ACK_BY_MAX ||
	    !wire_utf8_valid(by, strlen(by))) {
		errbuf_set(err, errlen, "by: at most %d bytes of UTF-8",
		    REPORT_ACK_BY_MAX);
		return -1;
	}
	if (note != NULL && (strlen(note) > REPORT_ACK_NOTE_MAX ||
				!wire_utf8_valid(note, strlen(note)))) {
		errbuf_set(err, errlen, "note: at most %d bytes of UTF-8",
		    REPORT_ACK_NOTE_MAX);
		return -1;
	}
	/* incident.c writes the event under the lock that keeps
	 * incident_events in commit order for the notifiers. */
	if ((rc = incident_ack(conn, id, by, note)) == -1) {
		s_pgerr(conn, NULL, err, errlen);
		return -1;
	}
	if (rc == 1)
		return 1;
	if (out == NULL)
		return 0;
	if (s_incidents(conn, &f, id, &arr, err, errlen) == -1)
		return -1;
	if (json_array_size(arr) != 1) {
		json_decref(arr);
		errbuf_set(err, errlen, "incident %" PRId64 " vanished", id);
		return -1;
	}
	*out = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return 0;
}

/* ---- parsing ---- */

/* n digits at s into *v; 0 or -1. */
static int
s_digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

static int
s_parse_rfc3339(const char *s, time_t *out)
{
	struct tm tm, chk;
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	const char *p = s + 10;
	time_t t;

	if (strlen(s) < 10 || s_digits(s, 4, &y) == -1 || s[4] != '-' ||
	    s_digits(s + 5, 2, &mo) == -1 || s[7] != '-' ||
	    s_digits(s + 8, 2, &d) == -1)
		return -1;
	if (*p != '\0') {
		if ((*p != 'T' && *p != 't' && *p != ' ') ||
		    s_digits(p + 1, 2, &h) == -1 || p[3] != ':' ||
		    s_digits(p + 4, 2, &mi) == -1 || p[6] != ':' ||
		    s_digits(p + 7, 2, &sec) == -1)
			return -1;
		p += 9;
		if (*p == '.') {
			if (!isdigit((unsigned char)p[1]))
				return -1;
			for (p++; isdigit((unsigned char)*p); p++)
				;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p == '+' ? 1 : -1;
			if (s_digits(p + 1, 2, &oh) == -1 || p[3] != ':' ||
			    s_digits(p + 4, 2, &om) == -1 || oh > 23 || om > 59)
				return -1;
			p += 6;
		} else {
			return -1;
		}
		if (*p != '\0')
			return -1;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec; /* a leap second: close enough */
	if ((t = timegm(&tm)) == (time_t)-1 || gmtime_r(&t, &chk) == NULL ||
	    chk.tm_mday != d)
		return -1; /* 31 April and the like */
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

int
report_parse_time(const char *s, time_t now, time_t *out)
{
	static const struct {
		char unit;
		long secs;
	} units[] = {
	    {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	size_t n;
	long v = 0;

	if (s == NULL || (n = strlen(s)) == 0 || n > 64)
		return -1;
	if (n >= 2 && n <= 10 && isalpha((unsigned char)s[n - 1])) {
		for (size_t i = 0; i + 1 < n; i++) {
			if (!isdigit((unsigned char)s[i]))
				return -1;
			v = v * 10 + (s[i] - '0');
		}
		for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			if (tolower((unsigned char)s[n - 1]) != units[u].unit)
				continue;
			/* At most a century back: the sums stay far from
			 * overflow and no report has older data. */
			if (v > (long)REPORT_DAYS_MAX * 86400 / units[u].secs)
				return -1;
			*out = now - (time_t)(v * units[u].secs);
			return 0;
		}
		return -1;
	}
	return s_parse_rfc3339(s, out);
}

int
report_parse_severity(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "info") == 0)
		return REPORT_SEV_INFO;
	if (strcasecmp(s, "warning") == 0)
		return REPORT_SEV_WARNING;
	if (strcasecmp(s, "error") == 0)
		return REPORT_SEV_ERROR;
	return -1;
}

int
report_parse_domain(const char *in, char *out, size_t outlen)
{
	size_t n;

	if (in == NULL || out == NULL)
		return -1;
	n = strnlen(in, REPORT_DOMAIN_MAX + 2);
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > REPORT_DOMAIN_MAX || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return wire_host_valid(out) ? 0 : -1;
}

int
report_parse_id(const char *s, int64_t *id)
{
	uint64_t v = 0;

	if (s == NULL || s[0] == '\0' || strlen(s) > 19)
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v == 0 || v > INT64_MAX)
		return -1;
	*id = (int64_t)v;
	return 0;
}

/* ---- text output ---- */

#define CELL_MAX 64 /* characters of a table cell, then "..." */

#define COL_SEV	  1 /* coloured by the severity at path */
#define COL_SHORT 2 /* first 12 characters and "..." */

struct column {
	const char *header;
	const char *path;
	const char *path2; /* appended after sep when set */
	const char *sep;
	int flags;
};

static const struct column cols_status[] = {
    {"DOMAIN", "mtasts.domain", NULL, NULL, 0},
    {"MODE", "mtasts.mode", NULL, NULL, 0},
    {"CERT_DAYS", "mtasts.policy_host.days_left", NULL, NULL, 0},
    {"WORST", "mtasts.incidents.worst.severity", "mtasts.incidents.worst.code",
	" ", COL_SEV},
    {"OPEN", "mtasts.incidents.open", NULL, NULL, 0},
    {"AGREE", "mtasts.vantages.agreeing", "mtasts.vantages.total", "/", 0},
    {"ROUND", "mtasts.round", NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column cols_incidents[] = {
    {"ID", "mtasts.incident_id", NULL, NULL, 0},
    {"SEVERITY", "mtasts.severity", NULL, NULL, COL_SEV},
    {"STATE", "mtasts.state", NULL, NULL, 0},
    {"DOMAIN", "mtasts.domain", NULL, NULL, 0},
    {"CODE", "rule.name", NULL, NULL, 0},
    {"SUBJECT", "mtasts.subject", NULL, NULL, 0},
    {"STAGE", "mtasts.stage", NULL, NULL, 0},
    {"FIRST_SEEN", "event.start", NULL, NULL, 0},
    {"LAST_SEEN", "@timestamp", NULL, NULL, 0},
    {"ACKED_BY", "mtasts.ack.by", NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column cols_expiring[] = {
    {"DAYS", "mtasts.days_left", NULL, NULL, 0},
    {"NOT_AFTER", "tls.server.x509.not_after", NULL, NULL, 0},
    {"DOMAIN", "mtasts.domain", NULL, NULL, 0},
    {"ROLE", "mtasts.role", NULL, NULL, 0},
    {"HOST", "server.address", NULL, NULL, 0},
    {"SUBJECT", "tls.server.x509.subject.distinguished_name", NULL, NULL, 0},
    {"ISSUER", "tls.server.x509.issuer.distinguished_name", NULL, NULL, 0},
    {"SHA256", "tls.server.hash.sha256", NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column cols_agents[] = {
    {"NAME", "observer.name", NULL, NULL, 0},
    {"REGION", "observer.geo.name", NULL, NULL, 0},
    {"KEY", "mtasts.public_key", NULL, NULL, COL_SHORT},
    {"FIRST_SEEN", "mtasts.first_seen", NULL, NULL, 0},
    {"LAST_SEEN", "mtasts.last_seen", NULL, NULL, 0},
    {"SILENT", "mtasts.silent", NULL, NULL, 0},
    {"COMMITTED", "mtasts.last_committed_seq", NULL, NULL, 0},
    {"GAPS", "mtasts.gaps.count", NULL, NULL, 0},
    {"LOST", "mtasts.gaps.lost", NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column cols_hosts[] = {
    {"ROLE", "mtasts.role", NULL, NULL, 0},
    {"HOST", "server.address", NULL, NULL, 0},
    {"SUBJECT", "tls.server.x509.subject.distinguished_name", NULL, NULL, 0},
    {"ISSUER", "tls.server.x509.issuer.distinguished_name", NULL, NULL, 0},
    {"NOT_AFTER", "tls.server.x509.not_after", NULL, NULL, 0},
    {"DAYS", "mtasts.days_left", NULL, NULL, 0},
    {"SPKI_SHA256", "mtasts.spki_sha256", NULL, NULL, 0},
    {"VERDICT", "mtasts.verdict", NULL, NULL, 0},
    {"VERIFIED", "mtasts.verified_by", "mtasts.observed_by", "/", 0},
    {NULL, NULL, NULL, NULL, 0},
};

/* Rows made by s_vantage_rows. */
static const struct column cols_vantages[] = {
    {"VANTAGE", "vantage", NULL, NULL, 0},
    {"COMPLETED", "completed", NULL, NULL, 0},
    {"AGREES", "agrees", NULL, NULL, 0},
    {"STS_ID", "sts_id", NULL, NULL, 0},
    {"POLICY", "policy", NULL, NULL, 0},
    {"MODE", "mode", NULL, NULL, 0},
    {"HOST", "host", NULL, NULL, 0},
    {"IP", "ip", NULL, NULL, 0},
    {"LEAF", "leaf", NULL, NULL, 0},
    {"VERDICT", "verdict", NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column *
s_columns(enum report_kind kind)
{
	switch (kind) {
	case REPORT_KIND_STATUS:
		return cols_status;
	case REPORT_KIND_INCIDENTS:
		return cols_incidents;
	case REPORT_KIND_EXPIRING:
		return cols_expiring;
	case REPORT_KIND_AGENTS:
		return cols_agents;
	case REPORT_KIND_HOSTS:
		return cols_hosts;
	case REPORT_KIND_VANTAGES:
		return cols_vantages;
	}
	return cols_status;
}

/* Cells are strbufs with a cap, so that a hostile value cannot balloon. */
#define BUF_MAX (1u << 20)

/* A value as text: null "-" (empty in CSV), booleans yes/no, arrays
 * joined with ','. */
static void
s_value_text(struct strbuf *b, const json_t *v, int csv)
{
	char num[32];
	size_t i;
	const json_t *e;

	switch (json_typeof(v)) {
	case JSON_STRING:
		strbuf_addn(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		strbuf_add(b, num);
		break;
	case JSON_REAL:
		snprintf(num, sizeof(num), "%g", json_real_value(v));
		strbuf_add(b, num);
		break;
	case JSON_TRUE:
		strbuf_add(b, "yes");
		break;
	case JSON_FALSE:
		strbuf_add(b, "no");
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, e)
		{
			if (i > 0)
				strbuf_add(b, ",");
			s_value_text(b, e, csv);
		}
		break;
	case JSON_OBJECT: {
		char *s = json_dumps(v, JSON_COMPACT);

		if (s == NULL)
			strbuf_mark_failed(b, STRBUF_NOMEM);
		else
			strbuf_add(b, s);
		free(s);
		break;
	}
	case JSON_NULL:
	default:
		if (!csv)
			strbuf_add(b, "-");
		break;
	}
}

/* The text of a cell: malloc'd, NULL when out of memory. */
static char *
s_cell(const json_t *row, const struct column *c, int csv)
{
	struct strbuf b;
	const json_t *v = s_getp(row, c->path);
	char *s;

	strbuf_init(&b, BUF_MAX);
	if (v == NULL || json_is_null(v)) {
		strbuf_add(&b, csv ? "" : "-");
	} else {
		s_value_text(&b, v, csv);
		if (c->path2 != NULL) {
			strbuf_add(&b, c->sep);
			s_value_text(&b,
			    s_getp(row, c->path2) != NULL
				? s_getp(row, c->path2)
				: json_null(),
			    csv);
		}
	}
	if ((s = strbuf_steal(&b, NULL)) == NULL)
		return NULL;
	if (!csv && (c->flags & COL_SHORT) && strlen(s) > 12)
		memcpy(s + 12, "...", 4);
	return s;
}

/*
 * Makes text safe for a terminal: C0 and C1 controls and DEL become '?'
 * (so no escape sequence from the data reaches the terminal), and cuts it
 * to max characters with "..." (0: no cut).  Returns its width in
 * characters.
 */
static size_t
s_sanitize(char *s, size_t max)
{
	size_t w = 0, i = 0, o = 0, cut = 0;

	while (s[i] != '\0') {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f) {
			s[o++] = '?';
			i++;
		} else if (ch == 0xc2 && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9f) {
			s[o++] = '?';
			i += 2;
		} else {
			s[o++] = s[i++];
			/* continuation bytes carry no width */
			while ((s[i] & 0xc0) == 0x80)
				s[o++] = s[i++];
		}
		if (++w == max - 3)
			cut = o;
	}
	s[o] = '\0';
	if (max > 3 && w > max) {
		memcpy(s + cut, "...", 4);
		w = max;
	}
	return w;
}

static const char *
s_colour_of(const char *sev)
{
	if (sev == NULL)
		return NULL;
	if (strcmp(sev, "error") == 0)
		return "\033[31m";
	if (strcmp(sev, "warning") == 0)
		return "\033[33m";
	return NULL;
}

static int
s_table(FILE *fp, const struct column *cols, const json_t *rows, int colour)
{
	size_t ncols = 0, nrows = json_array_size(rows), *width;
	char **cells;
	int rc = 0;

	while (cols[ncols].header != NULL)
		ncols++;
	cells = calloc((nrows + 1) * ncols, sizeof(*cells));
	width = calloc(ncols, sizeof(*width));
	if (cells == NULL || width == NULL) {
		free(cells);
		free(width);
		return -1;
	}
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(cols[c].header);
	for (size_t r = 0; r < nrows && rc == 0; r++) {
		for (size_t c = 0; c < ncols; c++) {
			char *s = s_cell(json_array_get(rows, r), &cols[c], 0);
			size_t w;

			if (s == NULL) {
				rc = -1;
				break;
			}
			w = s_sanitize(s, CELL_MAX);
			cells[(r + 1) * ncols + c] = s;
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= nrows && rc == 0; r++) {
		const json_t *row = r > 0 ? json_array_get(rows, r - 1) : NULL;

		for (size_t c = 0; c < ncols; c++) {
			const char *s =
			    r == 0 ? cols[c].header : cells[r * ncols + c];
			const char *col = NULL;
			size_t w = 0;

			for (const char *p = s; *p != '\0'; p++)
				w += ((unsigned char)*p & 0xc0) != 0x80;
			if (colour && row != NULL && (cols[c].flags & COL_SEV))
				col = s_colour_of(s_gets(row, cols[c].path));
			fprintf(fp, "%s%s%s", col != NULL ? col : "", s,
			    col != NULL ? "\033[0m" : "");
			if (c + 1 < ncols)
				fprintf(fp, "%*s", (int)(width[c] - w + 2), "");
		}
		fputc('\n', fp);
	}
	for (size_t i = 0; i < (nrows + 1) * ncols; i++)
		free(cells[i]);
	free(cells);
	free(width);
	if (ferror(fp))
		rc = -1;
	return rc;
}

/* Flattens report_domain's matrix into one row per (vantage, host). */
static json_t *
s_vantage_rows(const json_t *domain)
{
	const json_t *matrix = s_getp(domain, "mtasts.matrix"), *v;
	json_t *rows = json_array();
	size_t i;
	int bad = rows == NULL;

	json_array_foreach(matrix, i, v)
	{
		const json_t *hosts = s_getp(v, "mtasts.hosts"), *h;
		size_t nh = json_array_size(hosts), j;
		char pol[17] = "";

		if (s_gets(v, "mtasts.policy.sha256") != NULL)
			snprintf(pol, sizeof(pol), "%s",
			    s_gets(v, "mtasts.policy.sha256"));
		for (j = 0; !bad && j < (nh > 0 ? nh : 1); j++) {
			json_t *r = json_object();
			const char *leaf, *err;
			char leaf16[17] = "", verdict[160];

			h = json_array_get(hosts, j);
			leaf = s_gets(h, "tls.server.hash.sha256");
			if (leaf != NULL)
				snprintf(leaf16, sizeof(leaf16), "%s", leaf);
			err = s_gets(h, "mtasts.error");
			if (h == NULL)
				snprintf(verdict, sizeof(verdict), "-");
			else if (json_is_true(s_getp(h, "mtasts.verified")))
				snprintf(verdict, sizeof(verdict), "verified");
			else
				snprintf(verdict, sizeof(verdict), "failed%s%s",
				    err != NULL ? ": " : "",
				    err != NULL ? err : "");
			bad |= s_setp(r, "vantage",
			    json_deep_copy(s_getp(v, "observer.name")));
			bad |= s_setp(r, "completed",
			    json_deep_copy(s_getp(v, "mtasts.completed")));
			bad |= s_setp(r, "agrees",
			    json_deep_copy(s_getp(v, "mtasts.agrees")));
			bad |= s_setp(r, "sts_id",
			    s_gets(v, "mtasts.sts.id") != NULL
				? json_string(s_gets(v, "mtasts.sts.id"))
				: json_null());
			bad |= s_setp(r, "policy",
			    pol[0] ? json_string(pol) : json_null());
			bad |= s_setp(r, "mode",
			    s_gets(v, "mtasts.policy.mode") != NULL
				? json_string(s_gets(v, "mtasts.policy.mode"))
				: json_null());
			bad |= s_setp(r, "host",
			    h != NULL
				? json_deep_copy(s_getp(h, "server.address"))
				: json_null());
			bad |= s_setp(r, "ip",
			    h != NULL && s_getp(h, "server.ip") != NULL
				? json_deep_copy(s_getp(h, "server.ip"))
				: json_null());
			bad |= s_setp(r, "leaf",
			    leaf16[0] ? json_string(leaf16) : json_null());
			bad |= s_setp(r, "verdict", s_jstr(verdict));
			bad |= s_append(rows, r);
		}
	}
	if (bad) {
		json_decref(rows);
		return NULL;
	}
	return rows;
}

int
report_write_table(
    FILE *fp, enum report_kind kind, const json_t *rows, int colour)
{
	json_t *flat;
	int rc;

	if (kind != REPORT_KIND_VANTAGES)
		return s_table(fp, s_columns(kind), rows, colour);
	if ((flat = s_vantage_rows(rows)) == NULL)
		return -1;
	rc = s_table(fp, cols_vantages, flat, colour);
	json_decref(flat);
	return rc;
}

/* One CSV field (RFC 4180 section 2). */
static void
s_csv_field(FILE *fp, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, fp);
		return;
	}
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

int
report_write_csv(FILE *fp, enum report_kind kind, const json_t *rows)
{
	const struct column *cols = s_columns(kind);
	const char *paths[32];
	json_t *flat = NULL;
	size_t n, np = 0;

	/* Headers are the JSON paths, and a table column that shows two
	 * values is two fields: every field keeps one meaning. */
	for (size_t c = 0; cols[c].header != NULL && np + 2 <= 32; c++) {
		paths[np++] = cols[c].path;
		if (cols[c].path2 != NULL)
			paths[np++] = cols[c].path2;
	}
	if (kind == REPORT_KIND_VANTAGES) {
		if ((flat = s_vantage_rows(rows)) == NULL)
			return -1;
		rows = flat;
	}
	for (size_t c = 0; c < np; c++) {
		if (c > 0)
			fputc(',', fp);
		s_csv_field(fp, paths[c]);
	}
	fputs("\r\n", fp);
	n = json_array_size(rows);
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < np; c++) {
			struct column one = {paths[c], paths[c], NULL, NULL, 0};
			char *s = s_cell(json_array_get(rows, r), &one, 1);

			if (s == NULL) {
				json_decref(flat);
				return -1;
			}
			if (c > 0)
				fputc(',', fp);
			s_csv_field(fp, s);
			free(s);
		}
		fputs("\r\n", fp);
	}
	json_decref(flat);
	return ferror(fp) ? -1 : 0;
}

int
report_write_jsonl(FILE *fp, const json_t *v)
{
	size_t i;
	const json_t *e;

	if (!json_is_array(v))
		return json_dumpf(v, fp, JSON_COMPACT) == -1 ||
			       fputc('\n', fp) == EOF
			   ? -1
			   : 0;
	json_array_foreach(v, i, e)
	{
		if (json_dumpf(e, fp, JSON_COMPACT) == -1 ||
		    fputc('\n', fp) == EOF)
			return -1;
	}
	return ferror(fp) ? -1 : 0;
}

/* The time of an RFC 3339 member, 0 when absent. */
static time_t
s_time_of(const json_t *o, const char *path)
{
	const char *s = s_gets(o, path);
	time_t t = 0;

	if (s == NULL || s_parse_rfc3339(s, &t) == -1)
		return 0;
	return t;
}

/* A JSON array of strings joined with ',' (malloc'd; "" when none). */
static char *
s_join(const json_t *arr)
{
	struct strbuf b;

	strbuf_init(&b, BUF_MAX);
	if (json_is_array(arr))
		s_value_text(&b, arr, 1);
	return strbuf_steal(&b, NULL);
}

int
report_write_cef(FILE *fp, const json_t *incidents)
{
	size_t i;
	const json_t *o;

	json_array_foreach(incidents, i, o)
	{
		struct cef_incident in;
		char small[2048], *line = small, *vant, *diss;
		int n;

		memset(&in, 0, sizeof(in));
		vant = s_join(s_getp(o, "mtasts.vantages"));
		diss = s_join(s_getp(o, "mtasts.dissenters"));
		if (vant == NULL || diss == NULL) {
			free(vant);
			free(diss);
			return -1;
		}
		in.id = (int64_t)json_integer_value(
		    s_getp(o, "mtasts.incident_id"));
		in.kind = "state";
		in.domain = s_gets(o, "mtasts.domain");
		in.code = s_gets(o, "rule.name");
		in.subject = s_gets(o, "mtasts.subject");
		in.severity = s_gets(o, "mtasts.severity");
		in.state = s_gets(o, "mtasts.state");
		in.stage = s_gets(o, "mtasts.stage");
		in.detail = s_gets(o, "message");
		in.vantages = vant;
		in.dissenters = diss;
		in.first_seen = s_time_of(o, "event.start");
		in.last_seen = s_time_of(o, "@timestamp");
		in.at = in.last_seen;
		n = cef_format(&in, small, sizeof(small));
		if (n >= 0 && (size_t)n >= sizeof(small)) {
			if ((line = malloc((size_t)n + 1)) != NULL)
				n = cef_format(&in, line, (size_t)n + 1);
		}
		free(vant);
		free(diss);
		if (n < 0 || line == NULL) {
			if (line != small)
				free(line);
			return -1;
		}
		fprintf(fp, "%s\n", line);
		if (line != small)
			free(line);
	}
	return ferror(fp) ? -1 : 0;
}

/* "label  value" with the value made safe for a terminal. */
static void
s_kv(FILE *fp, const char *label, const char *value)
{
	char *s = strdup(value != NULL ? value : "-");

	if (s == NULL)
		return;
	s_sanitize(s, 0);
	fprintf(fp, "%-12s %s\n", label, s);
	free(s);
}

static void
s_kv_json(FILE *fp, const char *label, const json_t *v)
{
	struct strbuf b;
	char *s;

	strbuf_init(&b, BUF_MAX);
	if (v == NULL || json_is_null(v))
		strbuf_add(&b, "-");
	else
		s_value_text(&b, v, 0);
	if ((s = strbuf_steal(&b, NULL)) != NULL)
		s_kv(fp, label, s);
	free(s);
}

static int
s_findings_text(FILE *fp, const char *title, const json_t *arr, int colour)
{
	static const struct column cols[] = {
	    {"SEVERITY", "mtasts.severity", NULL, NULL, COL_SEV},
	    {"CODE", "rule.name", NULL, NULL, 0},
	    {"SUBJECT", "mtasts.subject", NULL, NULL, 0},
	    {"DETAIL", "message", NULL, NULL, 0},
	    {NULL, NULL, NULL, NULL, 0},
	};

	if (json_array_size(arr) == 0)
		return 0;
	fprintf(fp, "\n%s\n", title);
	return s_table(fp, cols, arr, colour);
}

int
report_write_domain_text(FILE *fp, const json_t *d, int colour)
{
	char line[256];
	const json_t *incidents = s_getp(d, "mtasts.incidents");
	int rc = 0;

	s_kv(fp, "domain", s_gets(d, "mtasts.domain"));
	if (json_is_true(s_getp(d, "mtasts.removed")))
		s_kv(fp, "watched", "no (removed)");
	if (json_is_null(s_getp(d, "mtasts.round")) ||
	    s_getp(d, "mtasts.round") == NULL) {
		s_kv(fp, "round", "none compared yet");
	} else {
		snprintf(line, sizeof(line),
		    "%" JSON_INTEGER_FORMAT " (%s at %s; %" JSON_INTEGER_FORMAT
		    " vantages, %" JSON_INTEGER_FORMAT
		    " completed, %" JSON_INTEGER_FORMAT " agree)",
		    json_integer_value(s_getp(d, "mtasts.round")),
		    s_gets(d, "mtasts.round_state") != NULL
			? s_gets(d, "mtasts.round_state")
			: "-",
		    s_gets(d, "mtasts.compared_at") != NULL
			? s_gets(d, "mtasts.compared_at")
			: "-",
		    json_integer_value(s_getp(d, "mtasts.vantages.total")),
		    json_integer_value(s_getp(d, "mtasts.vantages.completed")),
		    json_integer_value(s_getp(d, "mtasts.vantages.agreeing")));
		s_kv(fp, "round", line);
	}
	s_kv_json(fp, "sts id", s_getp(d, "mtasts.sts.id"));
	if (s_getp(d, "mtasts.policy.sha256") == NULL) {
		s_kv(fp, "policy", "none fetched");
	} else {
		s_kv_json(fp, "policy mode", s_getp(d, "mtasts.policy.mode"));
		s_kv_json(fp, "max_age", s_getp(d, "mtasts.policy.max_age"));
		s_kv_json(fp, "mx", s_getp(d, "mtasts.policy.mx"));
		s_kv_json(fp, "sha256", s_getp(d, "mtasts.policy.sha256"));
	}
	if (json_array_size(s_getp(d, "mtasts.hosts")) > 0) {
		fputs("\nHOSTS\n", fp);
		rc |=
		    s_table(fp, cols_hosts, s_getp(d, "mtasts.hosts"), colour);
	}
	if (json_array_size(s_getp(d, "mtasts.matrix")) > 0) {
		fputs("\nVANTAGES\n", fp);
		rc |= report_write_table(fp, REPORT_KIND_VANTAGES, d, colour);
	}
	rc |= s_findings_text(
	    fp, "FINDINGS", s_getp(d, "mtasts.findings"), colour);
	rc |= s_findings_text(fp, "VANTAGE FINDINGS",
	    s_getp(d, "mtasts.vantage_findings"), colour);
	rc |= s_findings_text(fp, "HISTORY FINDINGS",
	    s_getp(d, "mtasts.history_findings"), colour);
	if (json_array_size(incidents) > 0) {
		fputs("\nOPEN INCIDENTS\n", fp);
		rc |= s_table(fp, cols_incidents, incidents, colour);
	} else {
		fputs("\nno open incident\n", fp);
	}
	return rc != 0 || ferror(fp) ? -1 : 0;
}
