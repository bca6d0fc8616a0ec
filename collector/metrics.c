/* metrics.c -- the collector's state as Prometheus metrics (text 0.0.4). */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "pgconn.h"
#include "strbuf.h"
#include "wire.h"

/*
 * Every family, its labels and meaning are in docs/metrics.md; the names
 * follow blackbox_exporter's (probe_success, probe_ssl_earliest_cert_expiry,
 * probe_tls_version_info) under the prefix mtastswatch_.
 *
 * What it reads, and what that costs (D active domains, A agents seen in
 * the lookback, R results per domain and agent in the lookback):
 *
 * - q_agents: the agents table, at most METRICS_MAX_AGENTS rows.
 * - q_probe: for each (active domain, recent agent) the latest result
 *   received in the last METRICS_LOOKBACK_S, by a LIMIT 1 scan backwards
 *   on results_domain_round (domain, round) in each day partition of the
 *   lookback: D x A index descents, each reading a few rows (the other
 *   agents' rows of the same rounds).  Only an agent that stopped probing a
 *   domain makes its probe walk back through that domain's rows in the
 *   lookback, so the lookback bounds the worst case.  The chosen results
 *   are materialized once and joined on (result_id, received_at) to
 *   chain_certs, certificates, host_observations and policy_observations
 *   through their result_id indexes: a handful of rows per result.
 * - q_rounds: per active domain the latest compared round among its last
 *   METRICS_ROUND_WINDOW round_status rows (primary key scanned
 *   backwards), and that round's vantage_findings by their unique index.
 *   round_status is never pruned, so the window is what keeps this from
 *   growing with history.
 * - q_incidents, q_domain_incidents: the open incidents, through the
 *   partial index incidents_one_open; one hash join with the domains.
 *
 * Nothing scans a table whole except domains and agents.  docs/metrics.md
 * has the time measured for 1000 domains and 3 agents.  All of it runs in
 * one REPEATABLE READ READ ONLY transaction (so the families agree with
 * each other) with a statement timeout, when the caller's connection is
 * idle; inside a caller's transaction it runs as it is.
 */

#define METRICS_LOOKBACK_S   (3L * 86400)
#define METRICS_MAX_BYTES    (64u * 1024 * 1024)
#define METRICS_MAX_AGENTS   1000
#define METRICS_MAX_DOMAINS  100000
#define METRICS_ROUND_WINDOW 64
#define XSTR(x)		     #x
#define STR(x)		     XSTR(x)

/*
 * A scrape that takes longer is of no use to Prometheus anyway.  JIT is
 * off because the planner's estimate over a dozen day partitions passes
 * jit_above_cost while the queries run in milliseconds: with 1000 domains
 * compiling alone took about 190 ms per render.
 */
static const char q_settings[] =
    "SELECT set_config('statement_timeout', '20s', true), "
    "set_config('jit', 'off', true)";

/* Subqueries: the watched domains (name order), the agents seen within
 * the lookback ($1, unix time), a domain's recent round_status rows. */
#define DOMAINS_SQL                                                            \
	"(SELECT name FROM domains WHERE removed_at IS NULL ORDER BY name "    \
	"LIMIT " STR(METRICS_MAX_DOMAINS) ")"
#define AGENTS_SQL                                                             \
	"(SELECT id FROM agents WHERE last_seen >= to_timestamp($1::bigint) "  \
	"ORDER BY id LIMIT " STR(METRICS_MAX_AGENTS) ")"
#define ROUNDS_SQL                                                             \
	"(SELECT round, state, vantages, completed, compared_at "              \
	"FROM round_status WHERE domain = d.name ORDER BY round DESC "         \
	"LIMIT " STR(METRICS_ROUND_WINDOW) ")"

static const char q_agents[] =
    "SELECT id, name, region, "
    "round(extract(epoch FROM last_seen)::numeric, 3), "
    "last_committed_seq, gaps_total FROM agents ORDER BY id "
    "LIMIT " STR(METRICS_MAX_AGENTS);

/* Columns: kind, domain, agent id, then by kind:
 *   p (probe): completed, errors, warnings, infos, duration, start time
 *   c (cert):  role, host, earliest not_after (epoch)
 *   h (host):  role, host, verified, TLS version (NULL: no TLS)
 *   m (mode):  policy mode */
static const char q_probe[] =
    "WITH latest AS MATERIALIZED (SELECT d.name AS domain, "
    "a.id AS agent_id, x.* FROM " DOMAINS_SQL " d CROSS JOIN " AGENTS_SQL
    " a CROSS JOIN LATERAL (SELECT r.id, r.received_at, r.completed, "
    "r.error_count, r.warning_count, r.info_count, r.duration_ms, "
    "r.started_at FROM results r WHERE r.domain = d.name "
    "AND r.agent_id = a.id AND r.received_at >= to_timestamp($1::bigint) "
    "ORDER BY r.round DESC, r.seq DESC LIMIT 1) x) "
    "SELECT 'p', domain, agent_id, completed::int::text, "
    "error_count::text, warning_count::text, info_count::text, "
    "round(duration_ms / 1000.0, 3)::text, round(extract(epoch FROM "
    "coalesce(started_at, received_at))::numeric, 3)::text FROM latest "
    "UNION ALL "
    "SELECT 'c', l.domain, l.agent_id, cc.role, rtrim(lower(cc.host), '.'), "
    "min(extract(epoch FROM ce.not_after))::bigint::text, NULL, NULL, NULL "
    "FROM latest l JOIN chain_certs cc ON cc.result_id = l.id "
    "AND cc.received_at = l.received_at "
    "JOIN certificates ce ON ce.sha256 = cc.cert_sha256 "
    "WHERE ce.not_after IS NOT NULL "
    "GROUP BY l.domain, l.agent_id, cc.role, rtrim(lower(cc.host), '.') "
    "UNION ALL "
    "SELECT 'h', l.domain, l.agent_id, h.role, rtrim(lower(h.host), '.'), "
    "bool_and(h.verified)::int::text, min(h.tls_version), NULL, NULL "
    "FROM latest l JOIN host_observations h ON h.result_id = l.id "
    "AND h.received_at = l.received_at "
    "GROUP BY l.domain, l.agent_id, h.role, rtrim(lower(h.host), '.') "
    "UNION ALL "
    "SELECT DISTINCT 'm', l.domain, l.agent_id, coalesce(p.mode, "
    "'unknown'), NULL, NULL, NULL, NULL, NULL FROM latest l "
    "JOIN policy_observations p ON p.result_id = l.id "
    "AND p.received_at = l.received_at "
    "ORDER BY 1, 2, 3, 4, 5";

enum { P_KIND, P_DOMAIN, P_AGENT, P_A, P_B, P_C, P_D, P_E, P_F };

/* Columns: domain, vantages, completed, compared_at, disagreements,
 * dissenters, round. */
static const char q_rounds[] =
    "SELECT d.name, s.vantages, s.completed, "
    "round(extract(epoch FROM s.compared_at)::numeric, 3), "
    "(SELECT count(*) FROM vantage_findings f WHERE f.domain = d.name "
    "AND f.round = s.round AND f.severity <> 'info'), "
    "(SELECT count(DISTINCT x) FROM vantage_findings f, "
    "unnest(f.dissenters) x WHERE f.domain = d.name AND f.round = s.round "
    "AND f.severity <> 'info'), s.round "
    "FROM " DOMAINS_SQL " d CROSS JOIN LATERAL (SELECT * FROM " ROUNDS_SQL
    " w WHERE state = 'compared' ORDER BY round DESC LIMIT 1) s "
    "WHERE s.compared_at >= to_timestamp($1::bigint) ORDER BY 1";

static const char q_incidents[] =
    "SELECT code, severity, count(*) FROM incidents WHERE state = 'open' "
    "GROUP BY 1, 2 ORDER BY 1, 2";

static const char q_domain_incidents[] =
    "SELECT d.name, s.sev, coalesce(o.n, 0) FROM " DOMAINS_SQL " d "
    "CROSS JOIN (VALUES ('error'), ('info'), ('warning')) s (sev) "
    "LEFT JOIN (SELECT domain, severity, count(*) AS n FROM incidents "
    "WHERE state = 'open' GROUP BY 1, 2) o "
    "ON o.domain = d.name AND o.severity = s.sev ORDER BY 1, 2";

static const char q_domains[] =
    "SELECT count(*) FILTER (WHERE removed_at IS NULL), "
    "count(*) FILTER (WHERE removed_at IS NOT NULL) FROM domains";

/* ---- the exposition: a strbuf capped at METRICS_MAX_BYTES ---- */

/*
 * A label value or HELP text, escaped: backslash, newline and (in label
 * values) the double quote; bytes that are not UTF-8 become U+FFFD.
 */
static void
s_escaped(struct strbuf *b, const char *s, int quote)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;

	while (i < n) {
		size_t run = i, len;

		while (run < n && u[run] >= 0x20 && u[run] < 0x80 &&
		       u[run] != '\\' && u[run] != '"')
			run++;
		strbuf_addn(b, s + i, run - i);
		if ((i = run) == n)
			break;
		if (u[i] == '\\') {
			strbuf_add(b, "\\\\");
			i++;
		} else if (u[i] == '"') {
			strbuf_add(b, quote ? "\\\"" : "\"");
			i++;
		} else if (u[i] == '\n') {
			strbuf_add(b, "\\n");
			i++;
		} else if ((len = wire_utf8_seq(u + i, n - i, NULL)) == 0) {
			strbuf_add(b, "\xef\xbf\xbd");
			i++;
		} else {
			strbuf_addn(b, s + i, len);
			i += len;
		}
	}
}

struct lbl {
	const char *name; /* a constant: valid by construction */
	const char *value;
};

static void
s_family(struct strbuf *b, const char *name, const char *type, const char *help)
{
	strbuf_add(b, "# HELP ");
	strbuf_add(b, name);
	strbuf_add(b, " ");
	s_escaped(b, help, 0);
	strbuf_add(b, "\n# TYPE ");
	strbuf_add(b, name);
	strbuf_add(b, " ");
	strbuf_add(b, type);
	strbuf_add(b, "\n");
}

/*
 * Whether v is a number as PostgreSQL prints integers and numerics, which
 * Go's strconv.ParseFloat reads: [-]digits[.digits].
 */
static int
s_number_ok(const char *v)
{
	size_t i = v[0] == '-', digits = 0;

	for (; v[i] >= '0' && v[i] <= '9'; i++)
		digits++;
	if (v[i] == '.')
		for (i++; v[i] >= '0' && v[i] <= '9'; i++)
			digits++;
	return digits > 0 && v[i] == '\0';
}

/* One sample; a value that is not a plain number is written NaN. */
static void
s_sample(struct strbuf *b, const char *metric, const struct lbl *l, size_t n,
    const char *value)
{
	strbuf_add(b, metric);
	for (size_t i = 0; i < n; i++) {
		strbuf_add(b, i == 0 ? "{" : ",");
		strbuf_add(b, l[i].name);
		strbuf_add(b, "=\"");
		s_escaped(b, l[i].value, 1);
		strbuf_add(b, "\"");
	}
	strbuf_add(b, n > 0 ? "} " : " ");
	strbuf_add(b, value != NULL && s_number_ok(value) ? value : "NaN");
	strbuf_add(b, "\n");
}

static void
s_sample_u64(struct strbuf *b, const char *metric, const struct lbl *l,
    size_t n, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	s_sample(b, metric, l, n, v);
}

/* ---- what the database says ---- */

struct agent {
	int64_t id;
	char label[160];    /* unique among the agents */
	const char *region; /* into db.agents */
};

struct db {
	PGresult *agents, *probe, *rounds, *incidents, *dom_incidents, *domains;
	struct agent *a;
	size_t na;
};

static void
s_db_free(struct db *db)
{
	PQclear(db->agents);
	PQclear(db->probe);
	PQclear(db->rounds);
	PQclear(db->incidents);
	PQclear(db->dom_incidents);
	PQclear(db->domains);
	free(db->a);
	memset(db, 0, sizeof(*db));
}

static PGresult *
s_query(PGconn *conn, const char *what, const char *sql, const char *param,
    char *err, size_t errlen)
{
	const char *p[1] = {param};
	char w[96];

	snprintf(w, sizeof(w), "metrics: %s", what);
	return pgconn_query_err(conn, w, sql, param != NULL, p, err, errlen);
}

/*
 * The vantage label of every agent: its name, or name#id when another
 * agent has the same name or it has none, as compare.c labels vantages,
 * so that two agents never make one series.
 */
static int
s_agents(struct db *db)
{
	int n = PQntuples(db->agents);

	if (n == 0)
		return 0;
	if ((db->a = calloc((size_t)n, sizeof(*db->a))) == NULL)
		return -1;
	db->na = (size_t)n;
	for (int i = 0; i < n; i++) {
		const char *name = PQgetvalue(db->agents, i, 1);
		int dup = name[0] == '\0';

		for (int j = 0; j < n && !dup; j++)
			dup = j != i &&
			      strcmp(name, PQgetvalue(db->agents, j, 1)) == 0;
		db->a[i].id = strtoll(PQgetvalue(db->agents, i, 0), NULL, 10);
		db->a[i].region = PQgetvalue(db->agents, i, 2);
		if (dup)
			snprintf(db->a[i].label, sizeof(db->a[i].label),
			    "%s#%" PRId64, name[0] ? name : "agent",
			    db->a[i].id);
		else
			snprintf(
			    db->a[i].label, sizeof(db->a[i].label), "%s", name);
	}
	return 0;
}

/* The agent with this id (text, as PostgreSQL prints it), or NULL. */
static const struct agent *
s_agent(const struct db *db, const char *id_text)
{
	int64_t id = strtoll(id_text, NULL, 10);
	size_t lo = 0, hi = db->na;

	while (lo < hi) { /* db->a is in id order (q_agents) */
		size_t mid = lo + (hi - lo) / 2;

		if (db->a[mid].id == id)
			return &db->a[mid];
		if (db->a[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
s_db_read(PGconn *conn, time_t now, struct db *db, char *err, size_t errlen)
{
	char cutoff[24];
	PGresult *res;
	int began = 0, rc = -1;

	snprintf(cutoff, sizeof(cutoff), "%lld",
	    (long long)now - METRICS_LOOKBACK_S);
	if (PQstatus(conn) != CONNECTION_OK) {
		errbuf_set(err, errlen, "metrics: no database connection");
		return -1;
	}
	if (PQtransactionStatus(conn) == PQTRANS_IDLE) {
		if ((res = s_query(conn, "begin",
			 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
			 NULL, err, errlen)) == NULL)
			return -1;
		PQclear(res);
		began = 1;
		if ((res = s_query(conn, "settings", q_settings, NULL, err,
			 errlen)) == NULL)
			goto out;
		PQclear(res);
	}
	if ((db->agents = s_query(
		 conn, "agents", q_agents, NULL, err, errlen)) == NULL ||
	    (db->probe = s_query(
		 conn, "probes", q_probe, cutoff, err, errlen)) == NULL ||
	    (db->rounds = s_query(
		 conn, "rounds", q_rounds, cutoff, err, errlen)) == NULL ||
	    (db->incidents = s_query(
		 conn, "incidents", q_incidents, NULL, err, errlen)) == NULL ||
	    (db->dom_incidents = s_query(conn, "domain incidents",
		 q_domain_incidents, NULL, err, errlen)) == NULL ||
	    (db->domains = s_query(
		 conn, "domains", q_domains, NULL, err, errlen)) == NULL)
		goto out;
	if (began) {
		began = 0;
		if ((res = s_query(
			 conn, "commit", "COMMIT", NULL, err, errlen)) == NULL)
			goto out;
		PQclear(res);
	}
	if (s_agents(db) == -1) {
		errbuf_set(err, errlen, "metrics: out of memory");
		goto out;
	}
	rc = 0;
out:
	if (began)
		PQclear(PQexec(conn, "ROLLBACK"));
	if (rc == -1)
		s_db_free(db);
	return rc;
}

/* ---- rendering ---- */

/* What a per-(domain, vantage) family takes as its value. */
enum {
	VALUE_SUCCESS = -2, /* completed and no error finding */
	VALUE_ONE = -1,	    /* info metrics: 1, the value is a label */
};

/* A per-(domain, vantage) family, from the q_probe rows of one kind. */
struct probe_family {
	const char *name, *type, *help;
	char kind;
	int region;		/* add the agent's region label */
	const char *extra[2];	/* more labels, or NULL, ... */
	int extra_col[2];	/* ... from these columns */
	int value_col;		/* a column, VALUE_SUCCESS or VALUE_ONE */
	const char *info_label; /* VALUE_ONE: the label ... */
	int info_col;		/* ... from this column (NULL: no sample) */
};

static const struct probe_family probe_families[] = {
    {"mtastswatch_probe_success", "gauge",
	"1 when the vantage's latest probe of the domain completed with no "
	"error-severity finding, else 0.",
	'p', 1, {NULL, NULL}, {0, 0}, VALUE_SUCCESS, NULL, 0},
    {"mtastswatch_probe_completed", "gauge",
	"1 when the latest probe completed within its time budget.", 'p', 1,
	{NULL, NULL}, {0, 0}, P_A, NULL, 0},
    {"mtastswatch_probe_duration_seconds", "gauge",
	"How long the latest probe took.", 'p', 1, {NULL, NULL}, {0, 0}, P_E,
	NULL, 0},
    {"mtastswatch_probe_timestamp_seconds", "gauge",
	"When the latest probe started (agent clock; the collector's when "
	"the agent sent none), unix time.",
	'p', 1, {NULL, NULL}, {0, 0}, P_F, NULL, 0},
    {"mtastswatch_probe_ssl_earliest_cert_expiry", "gauge",
	"Earliest notAfter in the certificate chain the host sent in the "
	"latest probe, unix time.",
	'c', 0, {"host", "role"}, {P_B, P_A}, P_C, NULL, 0},
    {"mtastswatch_probe_host_verified", "gauge",
	"1 when the host's certificate chain verified in the latest probe.",
	'h', 0, {"host", "role"}, {P_B, P_A}, P_C, NULL, 0},
    {"mtastswatch_probe_tls_version_info", "gauge",
	"The TLS version the host negotiated in the latest probe, as the "
	"version label; always 1.",
	'h', 0, {"host", "role"}, {P_B, P_A}, VALUE_ONE, "version", P_D},
    {"mtastswatch_policy_mode", "gauge",
	"The mode of the policy fetched in the latest probe, as the mode "
	"label; always 1.",
	'm', 0, {NULL, NULL}, {0, 0}, VALUE_ONE, "mode", P_A},
};

static void
s_render_probe(
    struct strbuf *b, const struct db *db, const struct probe_family *f)
{
	int n = PQntuples(db->probe);
	PGresult *r = db->probe;

	s_family(b, f->name, f->type, f->help);
	for (int i = 0; i < n; i++) {
		const struct agent *a;
		struct lbl l[6];
		size_t nl = 0;
		const char *value = "1";

		if (PQgetvalue(r, i, P_KIND)[0] != f->kind ||
		    (a = s_agent(db, PQgetvalue(r, i, P_AGENT))) == NULL)
			continue;
		l[nl++] = (struct lbl){"domain", PQgetvalue(r, i, P_DOMAIN)};
		l[nl++] = (struct lbl){"vantage", a->label};
		if (f->region)
			l[nl++] = (struct lbl){"region", a->region};
		for (int k = 0; k < 2 && f->extra[k] != NULL; k++)
			l[nl++] = (struct lbl){
			    f->extra[k], PQgetvalue(r, i, f->extra_col[k])};
		if (f->value_col == VALUE_ONE) {
			if (PQgetisnull(r, i, f->info_col))
				continue;
			l[nl++] = (struct lbl){
			    f->info_label, PQgetvalue(r, i, f->info_col)};
		} else if (f->value_col == VALUE_SUCCESS) {
			value = strcmp(PQgetvalue(r, i, P_A), "1") == 0 &&
					strcmp(PQgetvalue(r, i, P_B), "0") == 0
				    ? "1"
				    : "0";
		} else {
			value = PQgetvalue(r, i, f->value_col);
		}
		s_sample(b, f->name, l, nl, value);
	}
}

/* Error, warning and info findings of the latest probe, one family. */
static void
s_render_findings(struct strbuf *b, const struct db *db)
{
	static const char *const sev[3] = {"error", "warning", "info"};
	const char *name = "mtastswatch_probe_findings";
	PGresult *r = db->probe;

	s_family(
	    b, name, "gauge", "Findings of the latest probe, by severity.");
	for (int i = 0; i < PQntuples(r); i++) {
		const struct agent *a;

		if (PQgetvalue(r, i, P_KIND)[0] != 'p' ||
		    (a = s_agent(db, PQgetvalue(r, i, P_AGENT))) == NULL)
			continue;
		for (int k = 0; k < 3; k++) {
			const struct lbl l[4] = {
			    {"domain", PQgetvalue(r, i, P_DOMAIN)},
			    {"vantage", a->label}, {"region", a->region},
			    {"severity", sev[k]}};

			s_sample(b, name, l, 4, PQgetvalue(r, i, P_B + k));
		}
	}
}

/* q_rounds: one family per column. */
static void
s_render_rounds(struct strbuf *b, const struct db *db)
{
	static const struct {
		const char *name, *help;
		int col;
	} fam[] = {
	    {"mtastswatch_round_number",
		"The latest compared round of the domain (floor(unix time / "
		"interval)).",
		6},
	    {"mtastswatch_round_vantages",
		"Agents with a result for the latest compared round.", 1},
	    {"mtastswatch_round_completed",
		"Of those, the agents whose probe completed.", 2},
	    {"mtastswatch_round_disagreements",
		"VANTAGE_* findings of warning or error severity in the latest "
		"compared round.",
		4},
	    {"mtastswatch_round_dissenters",
		"Distinct vantages outside the agreement in those findings.",
		5},
	    {"mtastswatch_round_compared_timestamp_seconds",
		"When the latest compared round was compared, unix time.", 3},
	};

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		s_family(b, fam[f].name, "gauge", fam[f].help);
		for (int i = 0; i < PQntuples(db->rounds); i++) {
			const struct lbl l[1] = {
			    {"domain", PQgetvalue(db->rounds, i, 0)}};

			s_sample(b, fam[f].name, l, 1,
			    PQgetvalue(db->rounds, i, fam[f].col));
		}
	}
}

static void
s_render_incidents(struct strbuf *b, const struct db *db)
{
	const char *name = "mtastswatch_incidents_open";

	s_family(b, name, "gauge",
	    "Open incidents by finding code and severity (agent-level codes "
	    "included).");
	for (int i = 0; i < PQntuples(db->incidents); i++) {
		const struct lbl l[2] = {
		    {"code", PQgetvalue(db->incidents, i, 0)},
		    {"severity", PQgetvalue(db->incidents, i, 1)}};

		s_sample(b, name, l, 2, PQgetvalue(db->incidents, i, 2));
	}
	name = "mtastswatch_domain_incidents_open";
	s_family(b, name, "gauge",
	    "Open incidents of each watched domain by severity, zeros "
	    "included.");
	for (int i = 0; i < PQntuples(db->dom_incidents); i++) {
		const struct lbl l[2] = {
		    {"domain", PQgetvalue(db->dom_incidents, i, 0)},
		    {"severity", PQgetvalue(db->dom_incidents, i, 1)}};

		s_sample(b, name, l, 2, PQgetvalue(db->dom_incidents, i, 2));
	}
	name = "mtastswatch_domains";
	s_family(b, name, "gauge", "Domains in the watch list, by state.");
	if (PQntuples(db->domains) == 1) {
		const struct lbl active[1] = {{"state", "active"}};
		const struct lbl removed[1] = {{"state", "removed"}};

		s_sample(b, name, active, 1, PQgetvalue(db->domains, 0, 0));
		s_sample(b, name, removed, 1, PQgetvalue(db->domains, 0, 1));
	}
}

static void
s_render_agents(struct strbuf *b, const struct db *db)
{
	static const struct {
		const char *name, *type, *help;
		int col, region;
	} fam[] = {
	    {"mtastswatch_agent_last_seen_timestamp_seconds", "gauge",
		"When the agent last connected or had a batch stored, unix "
		"time.",
		3, 1},
	    {"mtastswatch_agent_last_seq", "gauge",
		"The agent's committed watermark: every sequence number up to "
		"it is stored or declared lost.",
		4, 0},
	    {"mtastswatch_agent_gaps_total", "counter",
		"Sequence numbers the agent declared lost (spool overflow).", 5,
		0},
	};

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		s_family(b, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < db->na; i++) {
			const struct lbl l[2] = {{"agent", db->a[i].label},
			    {"region", db->a[i].region}};

			s_sample(b, fam[f].name, l, fam[f].region ? 2 : 1,
			    PQgetvalue(db->agents, (int)i, fam[f].col));
		}
	}
}

static void
s_render_collector(struct strbuf *b, const struct ingest_counters *ic)
{
	const char *name;

	name = "mtastswatch_collector_results_stored_total";
	s_family(
	    b, name, "counter", "Results stored since the collector started.");
	s_sample_u64(b, name, NULL, 0, ic->results_stored);
	name = "mtastswatch_collector_batches_total";
	s_family(b, name, "counter",
	    "Batches written (one transaction each) since the collector "
	    "started.");
	s_sample_u64(b, name, NULL, 0, ic->batches);
	name = "mtastswatch_collector_refused_total";
	s_family(b, name, "counter",
	    "Messages refused since the collector started, by reason.");
	for (int r = 0; r < INGEST_REFUSE_COUNT; r++) {
		const struct lbl l[1] = {
		    {"reason", ingest_refusal_name((enum ingest_refusal)r)}};

		s_sample_u64(b, name, l, 1, ic->refused[r]);
	}
	name = "mtastswatch_collector_agents_connected";
	s_family(b, name, "gauge",
	    "Agents the collector holds in memory (seen in the last ten "
	    "minutes).");
	s_sample_u64(b, name, NULL, 0, ic->agents_connected);
	name = "mtastswatch_collector_database_up";
	s_family(b, name, "gauge",
	    "1 while the ingest's database connection works, 0 while it is "
	    "lost.");
	s_sample(b, name, NULL, 0, ic->db_down ? "0" : "1");
}

int
metrics_render(PGconn *conn, const struct ingest_counters *ic, time_t now,
    char **out, size_t *outlen, char *err, size_t errlen)
{
	const char *name = "mtastswatch_metrics_database_success";
	struct strbuf b;
	struct db db = {0};
	int db_ok;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL || outlen == NULL) {
		errbuf_set(err, errlen, "metrics: no output pointer");
		return -1;
	}
	*out = NULL;
	*outlen = 0;
	strbuf_init(&b, METRICS_MAX_BYTES);
	if (conn == NULL)
		errbuf_set(err, errlen, "metrics: no database connection");
	db_ok = conn != NULL && s_db_read(conn, now, &db, err, errlen) == 0;
	if (db_ok) {
		for (size_t f = 0;
		     f < sizeof(probe_families) / sizeof(probe_families[0]);
		     f++)
			s_render_probe(&b, &db, &probe_families[f]);
		s_render_findings(&b, &db);
		s_render_rounds(&b, &db);
		s_render_incidents(&b, &db);
		s_render_agents(&b, &db);
	}
	if (ic != NULL)
		s_render_collector(&b, ic);
	s_family(&b, name, "gauge",
	    "1 when this exposition holds what the database says; 0 when "
	    "reading it failed and only the collector's own counters are "
	    "here.");
	s_sample(&b, name, NULL, 0, db_ok ? "1" : "0");
	s_db_free(&db);
	if ((*out = strbuf_steal(&b, outlen)) == NULL) {
		errbuf_set(err, errlen, "metrics: %s",
		    strbuf_failed(&b) == STRBUF_FULL ? "exposition over 64 MiB"
						     : "out of memory");
		return -1;
	}
	return 0;
}
