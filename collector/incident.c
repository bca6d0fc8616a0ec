/* incident.c -- folds each compared round into incidents and their events. */
#include "incident.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "history.h"
#include "log.h"
#include "pgconn.h"

/*
 * A fold reads what the round found, in one query over the three sources
 * with one row per (code, subject), and the domain's open incidents, then
 * decides in C what opens, escalates, repeats and resolves.  Each change
 * is one statement that updates the incident and writes its event
 * together.
 *
 * Vantages are named by agent name, with "#id" appended when the name is
 * empty or shared by another agent, so that a name means the same agent
 * from one round to the next.  The codes an agent sends are its own to
 * choose, so the agents' findings never count under a VANTAGE_*, AGENT_*
 * or cross-round code: those come only from the collector.
 */

#define LABEL                                                                  \
	"CASE WHEN a.name <> '' AND NOT EXISTS (SELECT 1 FROM agents b "       \
	"WHERE b.name = a.name AND b.id <> a.id) THEN a.name "                 \
	"ELSE CASE WHEN a.name = '' THEN 'agent' ELSE a.name END || '#' || "   \
	"a.id END"

/* Each agent's latest completed result of the round (as compare.c), with
 * its label and when it probed. */
#define LAB                                                                    \
	"WITH chosen AS (SELECT DISTINCT ON (r.agent_id) r.id, "               \
	"r.received_at, r.agent_id, r.completed, "                             \
	"coalesce(r.started_at, r.received_at) AS probed_at FROM results r "   \
	"WHERE r.domain = $1 AND r.round = $2::bigint "                        \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC), "                 \
	"lab AS (SELECT c.*, " LABEL " AS label FROM chosen c "                \
	"JOIN agents a ON a.id = c.agent_id) "

#define COMPLETED                                                              \
	"coalesce((SELECT array_agg(label ORDER BY label) FROM lab "           \
	"WHERE completed), '{}')::text"

/* Every writer of incident_events takes it first (incident.h). */
static const char q_lock[] =
    "SELECT pg_advisory_xact_lock(hashtext('mtastswatch_incidents'))";

static const char q_pending[] =
    "SELECT domain, round FROM round_status WHERE folded_at IS NULL "
    "ORDER BY round, domain LIMIT $1::integer";

/* state, already folded, a newer round of the domain folded. */
static const char q_status[] =
    "SELECT s.state, s.folded_at IS NOT NULL, EXISTS (SELECT 1 FROM "
    "round_status o WHERE o.domain = s.domain AND o.round > s.round AND "
    "o.folded_at IS NOT NULL) FROM round_status s "
    "WHERE s.domain = $1 AND s.round = $2::bigint";

static const char q_mark[] = "UPDATE round_status SET folded_at = now() "
			     "WHERE domain = $1 AND round = $2::bigint";

/* The completed vantages' labels and when the round was last heard of. */
static const char q_round[] =
    LAB "SELECT " COMPLETED ", coalesce((SELECT max(received_at) FROM lab), "
	"now())::text";

/*
 * The round's findings, one row per (code, subject), the collector's own
 * sources first.  Columns as enum obs_col.  days: for CERT_EXPIRING, the
 * fewest whole days the subject's leaf had left at any vantage carrying
 * it, counted from when that vantage probed.
 */
static const char q_findings[] =
    LAB ", ag AS (SELECT f.code, rtrim(lower(coalesce(f.subject, '')), "
	"'.') AS subject, CASE f.severity WHEN 'error' THEN 3 "
	"WHEN 'warning' THEN 2 ELSE 1 END AS rank, "
	"coalesce(f.detail, '') AS detail, l.label, "
	"CASE WHEN f.code = 'CERT_EXPIRING' THEN (SELECT "
	"floor(extract(epoch FROM ce.not_after - l.probed_at) / 86400) "
	"FROM chain_certs cc JOIN certificates ce "
	"ON ce.sha256 = cc.cert_sha256 WHERE cc.result_id = l.id AND "
	"cc.received_at = l.received_at AND cc.position = 0 AND "
	"rtrim(lower(cc.host), '.') = rtrim(lower(coalesce(f.subject, "
	"'')), '.') ORDER BY cc.role LIMIT 1) END AS days "
	"FROM lab l JOIN findings f ON f.result_id = l.id "
	"AND f.received_at = l.received_at "
	"WHERE f.code NOT LIKE 'VANTAGE\\_%' AND f.code NOT LIKE "
	"'AGENT\\_%' AND f.code <> ALL ($3::text[])), "
	"src AS (SELECT 1 AS src, code, subject, "
	"(ARRAY['info', 'warning', 'error'])[max(rank)] AS severity, "
	"(array_agg(detail ORDER BY rank DESC, label))[1] AS detail, "
	"array_agg(DISTINCT label ORDER BY label)::text AS vantages, "
	"'{}' AS dissenters, NULL::text AS matrix, min(days)::text AS days "
	"FROM ag GROUP BY code, subject "
	"UNION ALL SELECT 0, code, subject, severity, detail, "
	"ARRAY(SELECT jsonb_object_keys(matrix) ORDER BY 1)::text, "
	"dissenters::text, matrix::text, NULL FROM vantage_findings "
	"WHERE domain = $1 AND round = $2::bigint "
	"UNION ALL SELECT 0, code, subject, severity, detail, " COMPLETED ", "
	"'{}', NULL, NULL FROM history_findings "
	"WHERE domain = $1 AND round = $2::bigint) "
	"SELECT DISTINCT ON (code, subject) code, subject, severity, detail, "
	"vantages, dissenters, matrix, days FROM src "
	"ORDER BY code, subject, src";

enum obs_col {
	O_CODE,
	O_SUBJECT,
	O_SEVERITY,
	O_DETAIL,
	O_VANTAGES,
	O_DISSENTERS,
	O_MATRIX,
	O_DAYS
};

/* Open incidents of the domain; the last column says whether this round
 * may resolve one it does not carry ($2 conclusive, $4 completed). */
static const char q_open[] =
    "SELECT id, code, subject, severity, stage, $2::boolean AND "
    "(code LIKE 'VANTAGE\\_%' OR code = ANY ($3::text[]) OR "
    "vantages && $4::text[]) FROM incidents "
    "WHERE domain = $1 AND state = 'open'";

enum open_col { I_ID, I_CODE, I_SUBJECT, I_SEVERITY, I_STAGE, I_RESOLVABLE };

static const char q_insert[] =
    "WITH i AS (INSERT INTO incidents (domain, code, subject, severity, "
    "stage, detail, vantages, dissenters, matrix, first_round, "
    "last_round, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, "
    "$7::text[], $8::text[], $9::jsonb, $10::bigint, $10::bigint, "
    "$11::timestamptz, $11::timestamptz) RETURNING id, severity, stage) "
    "INSERT INTO incident_events (incident_id, kind, severity, stage) "
    "SELECT id, 'open', severity, stage FROM i";

static const char q_update[] =
    "WITH u AS (UPDATE incidents SET severity = $2, stage = $3, "
    "detail = $4, vantages = $5::text[], dissenters = $6::text[], "
    "matrix = $7::jsonb, last_round = $8::bigint, "
    "last_seen = $9::timestamptz WHERE id = $1 "
    "RETURNING id, severity, stage) "
    "INSERT INTO incident_events (incident_id, kind, severity, stage) "
    "SELECT id, 'escalate', severity, stage FROM u WHERE $10::boolean";

static const char q_resolve[] =
    "WITH r AS (UPDATE incidents SET state = 'resolved', "
    "resolved_at = $2::timestamptz WHERE id = $1 AND state = 'open' "
    "RETURNING id, severity, stage) "
    "INSERT INTO incident_events (incident_id, kind, severity, stage) "
    "SELECT id, 'resolve', severity, stage FROM r";

/*
 * An ack that repeats the incident's current one (the same POST sent
 * twice, a script in a loop) writes no event: each event is a message to
 * the SOC.  Answers (incidents found, events written).
 */
static const char q_ack[] =
    "WITH old AS (SELECT id, acked_by, ack_note FROM incidents "
    "WHERE id = $1::bigint FOR UPDATE), "
    "a AS (UPDATE incidents i SET acked_at = now(), acked_by = $2, "
    "ack_note = $3 FROM old WHERE i.id = old.id RETURNING i.id, "
    "i.severity, i.stage, (old.acked_by, old.ack_note) IS DISTINCT FROM "
    "($2::text, $3::text) AS changed), "
    "e AS (INSERT INTO incident_events (incident_id, kind, severity, "
    "stage) SELECT id, 'ack', severity, stage FROM a WHERE changed "
    "RETURNING 1) "
    "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM e)";

/*
 * Agent health as findings (enum obs_col), $1 now, $2 interval, $3 the
 * rounds AGENT_DEGRADED looks at.  A round counts against an agent when
 * its probes of at least half the domains it reported did not complete
 * while another vantage completed the same domain: a target that is
 * down for everyone is not the agent's fault.
 */
static const char q_health[] =
    "WITH RECURSIVE lab AS (SELECT a.id, a.last_seen, " LABEL " AS label "
    "FROM agents a), "
    /* The newest compared rounds, one index probe each. */
    "rounds (round, k) AS ((SELECT round, 1 FROM round_status "
    "WHERE state = 'compared' ORDER BY round DESC LIMIT 1) UNION ALL "
    "SELECT (SELECT s.round FROM round_status s WHERE s.state = "
    "'compared' AND s.round < rounds.round ORDER BY s.round DESC "
    "LIMIT 1), k + 1 FROM rounds WHERE k < $3::integer "
    "AND rounds.round IS NOT NULL), "
    "per AS (SELECT r.agent_id, r.domain, r.round, bool_or(r.completed) "
    "AS ok FROM results r JOIN rounds USING (round) GROUP BY 1, 2, 3), "
    "oks AS (SELECT domain, round, count(*) FILTER (WHERE ok) AS n "
    "FROM per GROUP BY 1, 2), "
    "tally AS (SELECT p.agent_id, p.round, count(*) AS n, "
    "count(*) FILTER (WHERE NOT p.ok AND o.n > 0) AS failed "
    "FROM per p JOIN oks o USING (domain, round) GROUP BY 1, 2), "
    "deg AS (SELECT agent_id, sum(failed) AS failed, sum(n) AS n "
    "FROM tally WHERE failed > 0 AND failed * 2 >= n GROUP BY agent_id "
    "HAVING count(*) = $3::integer AND (SELECT count(round) FROM rounds) "
    "= $3::integer) "
    "SELECT 'AGENT_SILENT', label, 'warning', 'last heard from ' || "
    "($1::bigint - extract(epoch FROM last_seen)::bigint) || "
    "' s ago, more than two intervals', ARRAY[label]::text, '{}', NULL, "
    "NULL FROM lab WHERE last_seen < to_timestamp($1::bigint - "
    "2 * $2::bigint) "
    "UNION ALL SELECT 'AGENT_DEGRADED', label, 'warning', failed || "
    "' of ' || n || ' probes in the last ' || $3::integer || ' compared "
    "rounds did not complete while another vantage completed the same "
    "domain', ARRAY[label]::text, '{}', NULL, NULL "
    "FROM deg JOIN lab ON lab.id = deg.agent_id ORDER BY 1, 2";

static const char q_health_open[] =
    "SELECT id, code, subject, severity, stage, true FROM incidents "
    "WHERE domain = '' AND state = 'open' "
    "AND code IN ('AGENT_SILENT', 'AGENT_DEGRADED')";

/* ---- helpers ---- */

/* BEGIN and the events lock. */
static int
s_begin(PGconn *conn)
{
	if (pgconn_exec(conn, "incident: begin", "BEGIN", 0, NULL) == -1)
		return -1;
	if (pgconn_exec(conn, "incident: lock", q_lock, 0, NULL) == -1) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	return 0;
}

static int
s_commit(PGconn *conn)
{
	if (pgconn_exec(conn, "incident: commit", "COMMIT", 0, NULL) == -1) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	return 0;
}

static const char *
s_col(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int
s_rank(const char *severity)
{
	return strcmp(severity, "error") == 0	  ? 3
	       : strcmp(severity, "warning") == 0 ? 2
						  : 1;
}

/* CERT_EXPIRING's stage from the days left (NULL: unknown) and the
 * severity (error: within 7 days, maybe of an intermediate); NULL for
 * every other code. */
static const char *
s_stage(const char *code, const char *days, const char *severity)
{
	long d;

	if (strcmp(code, "CERT_EXPIRING") != 0)
		return NULL;
	d = days != NULL ? strtol(days, NULL, 10) : 30;
	if (d <= 7 || strcmp(severity, "error") == 0)
		return "7d";
	return d <= 14 ? "14d" : "30d";
}

static int
s_stage_rank(const char *stage)
{
	if (stage == NULL)
		return 0;
	return strcmp(stage, "7d") == 0 ? 3 : strcmp(stage, "14d") == 0 ? 2 : 1;
}

/* ---- folding findings into incidents ---- */

struct fold {
	PGconn *conn;
	const char *domain;
	const char *round_s;
	const char *seen_at; /* timestamptz text: the round's last result */
	unsigned opened, escalated, resolved;
};

/* Opens an incident for obs row i. */
static int
s_open(struct fold *f, PGresult *obs, int i)
{
	const char *sev = PQgetvalue(obs, i, O_SEVERITY);
	const char *code = PQgetvalue(obs, i, O_CODE);
	const char *p[11] = {f->domain, code, PQgetvalue(obs, i, O_SUBJECT),
	    sev, s_stage(code, s_col(obs, i, O_DAYS), sev),
	    PQgetvalue(obs, i, O_DETAIL), PQgetvalue(obs, i, O_VANTAGES),
	    PQgetvalue(obs, i, O_DISSENTERS), s_col(obs, i, O_MATRIX),
	    f->round_s, f->seen_at};

	if (pgconn_exec(f->conn, "incident: open", q_insert, 11, p) == -1)
		return -1;
	f->opened++;
	return 0;
}

/* Obs row i repeats open incident j: severity only goes up, the stage
 * only down, either one moving is an escalation. */
static int
s_repeat(struct fold *f, PGresult *obs, int i, PGresult *open, int j)
{
	const char *code = PQgetvalue(obs, i, O_CODE);
	const char *sev = PQgetvalue(obs, i, O_SEVERITY);
	const char *old_sev = PQgetvalue(open, j, I_SEVERITY);
	const char *stage = s_stage(code, s_col(obs, i, O_DAYS), sev);
	const char *old_stage = s_col(open, j, I_STAGE);
	int up = s_rank(sev) > s_rank(old_sev) ||
		 s_stage_rank(stage) > s_stage_rank(old_stage);
	const char *p[10] = {PQgetvalue(open, j, I_ID),
	    s_rank(sev) > s_rank(old_sev) ? sev : old_sev,
	    s_stage_rank(stage) > s_stage_rank(old_stage) ? stage : old_stage,
	    PQgetvalue(obs, i, O_DETAIL), PQgetvalue(obs, i, O_VANTAGES),
	    PQgetvalue(obs, i, O_DISSENTERS), s_col(obs, i, O_MATRIX),
	    f->round_s, f->seen_at, up ? "t" : "f"};

	if (pgconn_exec(f->conn, "incident: update", q_update, 10, p) == -1)
		return -1;
	f->escalated += (unsigned)up;
	return 0;
}

/*
 * Folds the findings obs into the open incidents open (columns enum
 * open_col): repeats and opens, then resolves what obs does not carry
 * where the resolvable column allows.
 */
static int
s_merge(struct fold *f, PGresult *obs, PGresult *open)
{
	int nopen = PQntuples(open), rc = -1;
	unsigned char *carried = calloc((size_t)nopen + 1, 1);

	if (carried == NULL) {
		log_warnx("incident: out of memory");
		return -1;
	}
	for (int i = 0; i < PQntuples(obs); i++) {
		int j = 0;

		while (
		    j < nopen && (strcmp(PQgetvalue(open, j, I_CODE),
				      PQgetvalue(obs, i, O_CODE)) != 0 ||
				     strcmp(PQgetvalue(open, j, I_SUBJECT),
					 PQgetvalue(obs, i, O_SUBJECT)) != 0))
			j++;
		if (j == nopen ? s_open(f, obs, i) == -1
			       : s_repeat(f, obs, i, open, j) == -1)
			goto out;
		carried[j] = 1;
	}
	for (int j = 0; j < nopen; j++) {
		const char *p[2] = {PQgetvalue(open, j, I_ID), f->seen_at};

		if (carried[j] ||
		    strcmp(PQgetvalue(open, j, I_RESOLVABLE), "t") != 0)
			continue;
		if (pgconn_exec(
			f->conn, "incident: resolve", q_resolve, 2, p) == -1)
			goto out;
		f->resolved++;
	}
	rc = 0;
out:
	free(carried);
	return rc;
}

static void
s_log(const struct fold *f)
{
	if (f->opened + f->escalated + f->resolved > 0)
		log_info("incident: domain=%s round=%s opened=%u escalated=%u "
			 "resolved=%u",
		    f->domain[0] != '\0' ? f->domain : "-", f->round_s,
		    f->opened, f->escalated, f->resolved);
}

/* ---- one round ---- */

/*
 * The round's findings into incidents, inside the fold's transaction;
 * state is round_status.state.  0, or -1.
 */
static int
s_fold_findings(struct fold *f, const char *state,
    const struct incident_opts *o, int64_t grace_rounds)
{
	const char *p[4] = {f->domain, f->round_s, history_codes, NULL};
	PGresult *ctx = NULL, *obs = NULL, *open = NULL;
	int rc = -1;

	/*
	 * Only a conclusive round moves what the domain is known to be: in a
	 * round where one vantage alone completed, that vantage (perhaps the
	 * attacked one) would otherwise rewrite the state and raise
	 * cross-round alarms on its own word.
	 */
	if ((strcmp(state, "compared") == 0 &&
		history_round(f->conn, f->domain, strtoll(f->round_s, NULL, 10),
		    o->known_rounds, grace_rounds, NULL) == -1) ||
	    (ctx = pgconn_query(f->conn, "incident: round", q_round, 2, p)) ==
		NULL ||
	    (obs = pgconn_query(
		 f->conn, "incident: findings", q_findings, 3, p)) == NULL)
		goto out;
	/* A conclusive round has completed vantages; checking keeps a round
	 * whose results retention dropped from resolving anything. */
	p[1] = strcmp(state, "compared") == 0 &&
		       strcmp(PQgetvalue(ctx, 0, 0), "{}") != 0
		   ? "t"
		   : "f";
	p[3] = PQgetvalue(ctx, 0, 0);
	f->seen_at = PQgetvalue(ctx, 0, 1);
	if ((open = pgconn_query(
		 f->conn, "incident: open incidents", q_open, 4, p)) == NULL ||
	    s_merge(f, obs, open) == -1)
		goto out;
	rc = 0;
out:
	f->seen_at = NULL; /* it pointed into ctx */
	PQclear(ctx);
	PQclear(obs);
	PQclear(open);
	return rc;
}

/* The fold of (domain, round) in its own transaction.  0, or -1. */
static int
s_fold(PGconn *conn, const char *domain, const char *round_s,
    const struct incident_opts *o, int64_t grace_rounds)
{
	struct fold f = {.conn = conn, .domain = domain, .round_s = round_s};
	const char *p[2] = {domain, round_s};
	PGresult *status;
	int rc = -1;

	if (s_begin(conn) == -1)
		return -1;
	if ((status = pgconn_query(conn, "incident: status", q_status, 2, p)) ==
	    NULL)
		goto out;
	if (PQntuples(status) == 0 ||
	    strcmp(PQgetvalue(status, 0, 1), "t") == 0) {
		/* Gone, or folded by another collector while we waited. */
		PQclear(status);
		return s_commit(conn);
	}
	if (strcmp(PQgetvalue(status, 0, 2), "t") == 0)
		log_info(
		    "incident: domain=%s round=%s event=late", domain, round_s);
	else if (s_fold_findings(
		     &f, PQgetvalue(status, 0, 0), o, grace_rounds) == -1)
		goto out;
	if (pgconn_exec(conn, "incident: mark folded", q_mark, 2, p) == -1)
		goto out;
	PQclear(status);
	if ((rc = s_commit(conn)) == 0)
		s_log(&f);
	return rc;
out:
	PQclear(status);
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}

/* AGENT_SILENT and AGENT_DEGRADED at now, in a transaction of their own. */
static int
s_health(PGconn *conn, time_t now, uint32_t interval_s)
{
	char now_s[24], int_s[16], rounds_s[16], round_s[24], at[40];
	const char *p[3] = {now_s, int_s, rounds_s};
	struct fold f = {
	    .conn = conn, .domain = "", .round_s = round_s, .seen_at = at};
	PGresult *obs = NULL, *open = NULL;
	struct tm tm;
	int rc = -1;

	if (gmtime_r(&now, &tm) == NULL) {
		log_warnx("incident: time %lld out of range", (long long)now);
		return -1;
	}
	strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S+00", &tm);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(int_s, sizeof(int_s), "%" PRIu32, interval_s);
	snprintf(rounds_s, sizeof(rounds_s), "%d", INCIDENT_DEGRADED_ROUNDS);
	snprintf(round_s, sizeof(round_s), "%lld",
	    (long long)(now / (time_t)interval_s));
	if (s_begin(conn) == -1)
		return -1;
	if ((obs = pgconn_query(
		 conn, "incident: agent health", q_health, 3, p)) == NULL ||
	    (open = pgconn_query(conn, "incident: agent incidents",
		 q_health_open, 0, NULL)) == NULL ||
	    s_merge(&f, obs, open) == -1) {
		PQclear(PQexec(conn, "ROLLBACK"));
		goto out;
	}
	if ((rc = s_commit(conn)) == 0)
		s_log(&f);
out:
	PQclear(obs);
	PQclear(open);
	return rc;
}

/* ---- the interface ---- */

int
incident_pending(PGconn *conn, time_t now, uint32_t interval_s,
    const struct incident_opts *opts, size_t *folded)
{
	struct incident_opts o = {0};
	int64_t grace;
	char max_s[16];
	const char *p[1] = {max_s};
	const char **failed = NULL;
	size_t done = 0, nfailed = 0;
	PGresult *res;
	int rc = 0;

	if (folded != NULL)
		*folded = 0;
	if (interval_s == 0) {
		log_warnx("incident: interval 0");
		return -1;
	}
	if (opts != NULL)
		o = *opts;
	if (o.max_rounds == 0)
		o.max_rounds = INCIDENT_DEFAULT_MAX_ROUNDS;
	if (o.window_s == 0)
		o.window_s = COMPARE_DEFAULT_WINDOW_S;
	/* The window, plus the round in which the body changed. */
	grace = (int64_t)(o.window_s / interval_s) + 1;
	snprintf(max_s, sizeof(max_s), "%u", o.max_rounds);
	if ((res = pgconn_query(conn, "incident: pending", q_pending, 1, p)) ==
	    NULL)
		return -1;
	if ((failed = calloc((size_t)PQntuples(res) + 1, sizeof(*failed))) ==
	    NULL) {
		log_warnx("incident: out of memory");
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *domain = PQgetvalue(res, i, 0);
		size_t k = 0;

		while (k < nfailed && strcmp(failed[k], domain) != 0)
			k++;
		if (k < nfailed)
			continue; /* its later rounds wait for the earlier */
		if (s_fold(conn, domain, PQgetvalue(res, i, 1), &o, grace) ==
		    0) {
			done++;
			continue;
		}
		rc = -1;
		if (PQstatus(conn) != CONNECTION_OK)
			break;
		log_warnx("incident: domain=%s round=%s event=not_folded",
		    domain, PQgetvalue(res, i, 1));
		failed[nfailed++] = domain;
	}
	if (PQstatus(conn) == CONNECTION_OK &&
	    s_health(conn, now, interval_s) == -1)
		rc = -1;
	free(failed);
	PQclear(res);
	if (folded != NULL)
		*folded = done;
	return rc;
}

int
incident_ack(PGconn *conn, int64_t id, const char *who, const char *note)
{
	char id_s[24];
	const char *p[3] = {id_s, who, note};
	PGresult *res;
	int rc;

	if (who == NULL ||
	    strnlen(who, INCIDENT_ACK_WHO_MAX + 1) > INCIDENT_ACK_WHO_MAX ||
	    (note != NULL && strnlen(note, INCIDENT_ACK_NOTE_MAX + 1) >
				 INCIDENT_ACK_NOTE_MAX)) {
		log_warnx("incident: ack of %" PRId64 ": who or note missing "
			  "or too long",
		    id);
		return -1;
	}
	snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	if (s_begin(conn) == -1)
		return -1;
	if ((res = pgconn_query(conn, "incident: ack", q_ack, 3, p)) == NULL) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	rc = strcmp(PQgetvalue(res, 0, 0), "0") == 0 ? 1 : 0;
	PQclear(res);
	if (s_commit(conn) == -1)
		return -1;
	if (rc == 0)
		log_info("incident: id=%" PRId64 " acked by=%s", id, who);
	return rc;
}
