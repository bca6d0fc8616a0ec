/* compare.c -- finds where the vantages disagree about one domain's round. */
#include "compare.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "strbuf.h"

/*
 * Everything is read with a few queries that normalise in SQL (names
 * lower-cased without the trailing dot, sets sorted, TTLs never stored),
 * then compared in C, value by value: for each thing compared, every
 * completed vantage that observed it has a key; the key most vantages
 * share is the agreement and the others dissent.  A vantage whose probe
 * did not complete has no key at all, so it never dissents; it still
 * appears in the matrix as "not completed".
 *
 * When an agent sent several results for one (domain, round), its latest
 * completed one is used (the latest of all when none completed).
 */

#define CHOSEN                                                                 \
	"WITH chosen AS (SELECT DISTINCT ON (r.agent_id) r.id, "               \
	"r.received_at, r.agent_id, r.completed FROM results r "               \
	"WHERE r.domain = $1 AND r.round = $2::bigint "                        \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC) "

static const char q_vantages[] =
    CHOSEN "SELECT c.agent_id, a.name, c.completed FROM chosen c "
	   "JOIN agents a ON a.id = c.agent_id ORDER BY c.agent_id";

static const char q_dns[] =
    CHOSEN "SELECT c.agent_id, "
	   "CASE WHEN NOT d.sts_present THEN 'absent' "
	   "WHEN d.sts_valid IS NOT TRUE THEN 'invalid' "
	   "ELSE 'id=' || coalesce(d.sts_id, '') END, "
	   "CASE WHEN NOT d.tlsrpt_present THEN 'absent' "
	   "WHEN d.tlsrpt_valid IS NOT TRUE THEN 'invalid' "
	   "ELSE 'rua=' || coalesce((SELECT string_agg(DISTINCT x, ',' "
	   "ORDER BY x) FROM unnest(d.tlsrpt_rua) x), '') END "
	   "FROM chosen c JOIN dns_observations d ON d.result_id = c.id "
	   "AND d.received_at = c.received_at WHERE c.completed";

static const char q_policy[] =
    CHOSEN "SELECT c.agent_id, CASE WHEN p.sha256 IS NOT NULL THEN "
	   "'sha256=' || encode(p.sha256, 'hex') "
	   "ELSE 'no body (http ' || p.http_status || ')' END, "
	   "coalesce(p.mode, 'unknown') "
	   "FROM chosen c JOIN policy_observations p ON p.result_id = c.id "
	   "AND p.received_at = c.received_at WHERE c.completed";

static const char q_mxset[] =
    CHOSEN "SELECT c.agent_id, string_agg(coalesce(h.preference::text, "
	   "'?') || ' ' || rtrim(lower(h.host), '.'), ',' ORDER BY "
	   "h.preference, rtrim(lower(h.host), '.')) "
	   "FROM chosen c JOIN host_observations h ON h.result_id = c.id "
	   "AND h.received_at = c.received_at "
	   "WHERE c.completed AND h.role = 'mx' GROUP BY c.agent_id";

/* Columns: agent, role, host, starttls, verified, error, addresses, chain
 * (hashes leaf first), leaf SPKI, leaf AKI, SPKI of the next certificate. */
static const char q_hosts[] =
    CHOSEN "SELECT c.agent_id, h.role, rtrim(lower(h.host), '.'), "
	   "h.starttls, h.verified, coalesce(h.error, ''), "
	   "(SELECT coalesce(string_agg(DISTINCT lower(a), ',' "
	   "ORDER BY lower(a)), '') FROM unnest(h.addresses) a), "
	   "(SELECT string_agg(encode(cc.cert_sha256, 'hex'), ',' "
	   "ORDER BY cc.position) FROM chain_certs cc "
	   "WHERE cc.result_id = c.id AND cc.received_at = c.received_at "
	   "AND cc.role = h.role AND cc.host_position = h.position), "
	   "encode(leaf.spki_sha256, 'hex'), encode(leaf.aki, 'hex'), "
	   "encode(ica.spki_sha256, 'hex') "
	   "FROM chosen c JOIN host_observations h ON h.result_id = c.id "
	   "AND h.received_at = c.received_at "
	   "LEFT JOIN chain_certs l0 ON l0.result_id = c.id "
	   "AND l0.received_at = c.received_at AND l0.role = h.role "
	   "AND l0.host_position = h.position AND l0.position = 0 "
	   "LEFT JOIN certificates leaf ON leaf.sha256 = l0.cert_sha256 "
	   "LEFT JOIN chain_certs l1 ON l1.result_id = c.id "
	   "AND l1.received_at = c.received_at AND l1.role = h.role "
	   "AND l1.host_position = h.position AND l1.position = 1 "
	   "LEFT JOIN certificates ica ON ica.sha256 = l1.cert_sha256 "
	   "WHERE c.completed ORDER BY 2, 3, 1";

/* Leaf keys a host presented, with a chain that verified, in the rounds
 * before this one: what a load balancer's other leaves look like. */
static const char q_known[] =
    "SELECT DISTINCT cc.role, rtrim(lower(cc.host), '.'), "
    "encode(ce.spki_sha256, 'hex') FROM results r "
    "JOIN chain_certs cc ON cc.result_id = r.id AND "
    "cc.received_at = r.received_at "
    "JOIN certificates ce ON ce.sha256 = cc.cert_sha256 "
    "WHERE r.domain = $1 AND r.round < $2::bigint AND "
    "r.round >= $2::bigint - $3::bigint AND r.completed AND "
    "cc.position = 0 AND EXISTS (SELECT 1 FROM host_observations h "
    "WHERE h.result_id = r.id AND h.received_at = r.received_at AND "
    "h.role = cc.role AND h.position = cc.host_position AND h.verified)";

/* The previous agreement (history.c's domain_state) of the two values the
 * propagation rule looks at. */
static const char q_state[] =
    "SELECT kind, value, changed_round FROM domain_state WHERE domain = $1 "
    "AND subject = '' AND kind IN ('sts_id', 'policy_sha256')";

/*
 * Where the current split of subject started: the first of the rounds in
 * [$3, $2) with the propagation code or the mismatch code ($5) for it
 * after the last compared round without either; $2 when there is none.
 * Inconclusive and missing rounds neither end nor extend a run.
 */
static const char q_split_start[] =
    "WITH split AS (SELECT DISTINCT round FROM vantage_findings "
    "WHERE domain = $1 AND subject = $4 AND code IN "
    "('VANTAGE_CHANGE_PROPAGATING', $5) AND round < $2::bigint AND "
    "round >= $3::bigint), "
    "calm AS (SELECT max(s.round) AS round FROM round_status s "
    "WHERE s.domain = $1 AND s.state = 'compared' AND s.round < $2::bigint "
    "AND s.round >= $3::bigint AND s.round NOT IN "
    "(SELECT round FROM split)) "
    "SELECT coalesce(min(split.round), $2::bigint) FROM split, calm "
    "WHERE calm.round IS NULL OR split.round > calm.round";

/*
 * Per agent, over its completed results of the rounds [$3, $2): the
 * STS and policy keys (spelt as q_dns and q_policy do) of its latest one,
 * and whether any of them saw $4 as STS key, as policy key.
 */
static const char q_before[] =
    "WITH k AS (SELECT r.agent_id, r.round, r.seq, "
    "CASE WHEN d.result_id IS NULL OR NOT d.sts_present THEN 'absent' "
    "WHEN d.sts_valid IS NOT TRUE THEN 'invalid' "
    "ELSE 'id=' || coalesce(d.sts_id, '') END AS sts, "
    "CASE WHEN p.result_id IS NULL THEN 'no policy' "
    "WHEN p.sha256 IS NOT NULL THEN 'sha256=' || encode(p.sha256, 'hex') "
    "ELSE 'no body (http ' || p.http_status || ')' END AS pol "
    "FROM results r LEFT JOIN dns_observations d ON d.result_id = r.id "
    "AND d.received_at = r.received_at "
    "LEFT JOIN policy_observations p ON p.result_id = r.id "
    "AND p.received_at = r.received_at "
    "WHERE r.domain = $1 AND r.round < $2::bigint AND "
    "r.round >= $3::bigint AND r.completed) "
    "SELECT agent_id, (array_agg(sts ORDER BY round DESC, seq DESC))[1], "
    "(array_agg(pol ORDER BY round DESC, seq DESC))[1], "
    "bool_or(sts = $4), bool_or(pol = $4) FROM k GROUP BY agent_id";

static const char q_lock[] = "SELECT pg_advisory_xact_lock(hashtextextended("
			     "'mtastswatch_compare/' || $1 || '/' || $2, 0))";

static const char q_insert[] =
    "INSERT INTO vantage_findings (domain, round, code, severity, subject, "
    "detail, matrix, dissenters) VALUES ($1, $2::bigint, $3, $4, $5, $6, "
    "$7::jsonb, ARRAY(SELECT jsonb_array_elements_text($8::jsonb))) "
    "ON CONFLICT DO NOTHING";

static const char q_status[] =
    "INSERT INTO round_status (domain, round, state, vantages, completed) "
    "VALUES ($1, $2::bigint, $3, $4::integer, $5::integer) "
    "ON CONFLICT (domain, round) DO UPDATE SET state = EXCLUDED.state, "
    "vantages = EXCLUDED.vantages, completed = EXCLUDED.completed, "
    "compared_at = now()";

/* numeric arithmetic: a bogus round near INT64_MAX must not overflow. */
static const char q_pending[] =
    "WITH active AS (SELECT array_agg(DISTINCT agent_id) AS ids "
    "FROM results WHERE received_at >= "
    "to_timestamp($1::bigint - 3 * $2::bigint)), "
    "cand AS (SELECT domain, round, array_agg(DISTINCT agent_id) AS ids "
    "FROM results WHERE received_at >= to_timestamp($1::bigint - "
    "$4::bigint) GROUP BY domain, round) "
    "SELECT cand.domain, cand.round FROM cand, active "
    "WHERE NOT EXISTS (SELECT 1 FROM round_status s "
    "WHERE s.domain = cand.domain AND s.round = cand.round) "
    "AND ((cand.round::numeric + 1) * $2::bigint + $3::bigint < $1::bigint "
    "OR (active.ids IS NOT NULL AND active.ids <@ cand.ids)) "
    "ORDER BY cand.round, cand.domain";

/* ---- growing strings (common/strbuf.h) ---- */

/* s as a JSON string; the text comes from PostgreSQL, hence valid UTF-8. */
static void
sb_json(struct strbuf *b, const char *s)
{
	strbuf_add(b, "\"");
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			char esc[2] = {'\\', (char)ch};

			strbuf_addn(b, esc, 2);
		} else if (ch < 0x20) {
			strbuf_printf(b, "\\u%04x", ch);
		} else {
			strbuf_addn(b, s, 1);
		}
	}
	strbuf_add(b, "\"");
}

/* ---- the model of one round ---- */

struct vantage {
	int64_t agent_id;
	char label[96];
	int completed;
	const char *sts, *tlsrpt, *mxset, *policy, *mode; /* into PGresults */
};

/* One thing compared: a key per vantage (NULL: not observed there) and
 * what the matrix shows for it (NULL: the key). */
struct cell {
	const char *key;
	const char *show;
};

struct finding {
	const char *code;
	const char *severity;
	char *subject, *detail, *matrix, *dissenters;
};

struct round_ctx {
	PGconn *conn;
	const char *domain;
	int64_t round;
	char round_s[24];
	struct vantage *v;
	size_t nv;
	int enforce; /* the majority fetched a policy in mode enforce */
	/* The propagation rule: window_s and interval_s as compare.h says
	 * (interval_s 0: the rule is off); state is q_state's answer, read
	 * at the first split that needs it. */
	uint32_t window_s, interval_s;
	PGresult *state;
	struct finding *f;
	size_t nf, capf;
	int oom;
	int failed; /* a query failed (logged) */
};

struct tally {
	size_t agree; /* index of a vantage in the agreement */
	size_t n_agree, n_obs;
	int split; /* no strict majority */
};

static int
s_key_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * The agreement: the key most observing vantages share; ties go to the
 * smallest key, so that the same data always gives the same finding.
 * n_obs 0 or 1 means there is nothing to compare.
 */
static void
s_tally(const struct cell *cells, size_t n, struct tally *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		size_t count = 0;

		if (cells[i].key == NULL)
			continue;
		t->n_obs++;
		for (size_t j = 0; j < n; j++)
			count += s_key_eq(cells[i].key, cells[j].key);
		if (count > t->n_agree ||
		    (count == t->n_agree &&
			strcmp(cells[i].key, cells[t->agree].key) < 0)) {
			t->n_agree = count;
			t->agree = i;
		}
	}
	t->split = t->n_obs > 0 && t->n_agree * 2 <= t->n_obs;
}

/* The documented rule (compare.h). */
static const char *
s_severity(const struct round_ctx *c, size_t dissenters, int split)
{
	if (c->enforce || dissenters >= 2 || split)
		return "error";
	return "warning";
}

static const char *
s_show(const struct cell *cell)
{
	return cell->show != NULL ? cell->show : cell->key;
}

/*
 * Records a finding about subject.  dissent[i] marks the dissenters
 * (NULL: every observing vantage whose key is not the agreement's);
 * severity NULL applies the rule.
 */
static void
s_emit(struct round_ctx *c, const char *code, const char *severity,
    const char *subject, const char *what, const struct cell *cells,
    const unsigned char *dissent, const struct tally *t)
{
	struct strbuf matrix, diss, detail, agree;
	struct finding *f;
	size_t nd = 0;
	int first = 1;

	strbuf_init(&matrix, 0);
	strbuf_init(&diss, 0);
	strbuf_init(&detail, 0);
	strbuf_init(&agree, 0);
	strbuf_add(&matrix, "{");
	for (size_t i = 0; i < c->nv; i++) {
		const char *seen = !c->v[i].completed	  ? "not completed"
				   : cells[i].key == NULL ? "not observed"
							  : s_show(&cells[i]);

		strbuf_add(&matrix, i ? ", " : "");
		sb_json(&matrix, c->v[i].label);
		strbuf_add(&matrix, ": ");
		sb_json(&matrix, seen);
	}
	strbuf_add(&matrix, "}");

	strbuf_printf(&detail, "%s: ", what);
	strbuf_add(&diss, "[");
	for (size_t i = 0; i < c->nv; i++) {
		int d = dissent != NULL
			    ? dissent[i]
			    : cells[i].key != NULL &&
				  !s_key_eq(cells[i].key, cells[t->agree].key);

		if (cells[i].key == NULL)
			continue;
		if (!d) {
			strbuf_add(&agree, agree.len ? ", " : "");
			strbuf_add(&agree, c->v[i].label);
			continue;
		}
		strbuf_add(&diss, nd ? ", " : "");
		sb_json(&diss, c->v[i].label);
		strbuf_printf(&detail, "%s%s saw \"%s\"", first ? "" : "; ",
		    c->v[i].label, s_show(&cells[i]));
		first = 0;
		nd++;
	}
	strbuf_add(&diss, "]");
	strbuf_printf(&detail, "; the %s (%zu of %zu: %s) saw \"%s\"",
	    t->split ? "largest group, no strict majority," : "majority",
	    t->n_agree, t->n_obs, agree.p != NULL ? agree.p : "",
	    s_show(&cells[t->agree]));
	strbuf_printf(&detail, " (policy mode %s, %zu dissenter%s)",
	    c->enforce ? "enforce" : "not enforce", nd, nd == 1 ? "" : "s");
	strbuf_free(&agree);

	if (c->nf == c->capf) {
		size_t cap = c->capf ? 2 * c->capf : 8;
		struct finding *nf = realloc(c->f, cap * sizeof(*nf));

		if (nf == NULL) {
			c->oom = 1;
			strbuf_free(&matrix);
			strbuf_free(&diss);
			strbuf_free(&detail);
			return;
		}
		c->f = nf;
		c->capf = cap;
	}
	f = &c->f[c->nf];
	f->code = code;
	f->severity = severity != NULL ? severity : s_severity(c, nd, t->split);
	f->subject = strdup(subject);
	f->matrix = strbuf_steal(&matrix, NULL);
	f->dissenters = strbuf_steal(&diss, NULL);
	f->detail = strbuf_steal(&detail, NULL);
	c->nf++;
	if (f->subject == NULL || f->matrix == NULL || f->dissenters == NULL ||
	    f->detail == NULL)
		c->oom = 1;
}

/* Compares one value and records code when the vantages disagree. */
static int
s_compare(struct round_ctx *c, const char *code, const char *subject,
    const char *what, const struct cell *cells)
{
	struct tally t;

	s_tally(cells, c->nv, &t);
	if (t.n_obs < 2 || t.n_agree == t.n_obs)
		return 0;
	s_emit(c, code, NULL, subject, what, cells, NULL, &t);
	return 1;
}

static size_t
s_vantage_of(const struct round_ctx *c, const char *agent_id)
{
	int64_t id = strtoll(agent_id, NULL, 10);

	for (size_t i = 0; i < c->nv; i++)
		if (c->v[i].agent_id == id)
			return i;
	return c->nv;
}

/* Labels are agent names, made unique with "#id" when two agents share
 * one (or have none). */
static void
s_labels(struct round_ctx *c, PGresult *res)
{
	for (size_t i = 0; i < c->nv; i++) {
		const char *name = PQgetvalue(res, (int)i, 1);
		int dup = name[0] == '\0';

		for (size_t j = 0; j < c->nv && !dup; j++)
			dup = j != i &&
			      strcmp(name, PQgetvalue(res, (int)j, 1)) == 0;
		if (dup)
			snprintf(c->v[i].label, sizeof(c->v[i].label),
			    "%s#%" PRId64, name[0] ? name : "agent",
			    c->v[i].agent_id);
		else
			snprintf(
			    c->v[i].label, sizeof(c->v[i].label), "%s", name);
	}
}

/* ---- hosts: chains, verdicts, STARTTLS, addresses ---- */

/* q_hosts columns. */
enum {
	H_AGENT,
	H_ROLE,
	H_HOST,
	H_STARTTLS,
	H_VERIFIED,
	H_ERROR,
	H_ADDRS,
	H_CHAIN,
	H_LEAF_SPKI,
	H_LEAF_AKI,
	H_NEXT_SPKI
};

struct host_cells {
	struct cell *starttls, *verdict, *chain, *addrs;
	char (*issuer)[80];
	char (*chain_show)[200];
	char (*verdict_show)[300];
	const char **leaf;
	int *verified;
};

static int
s_known(PGresult *known, const char *role, const char *host, const char *spki)
{
	for (int i = 0; i < PQntuples(known); i++)
		if (strcmp(PQgetvalue(known, i, 0), role) == 0 &&
		    strcmp(PQgetvalue(known, i, 1), host) == 0 &&
		    strcmp(PQgetvalue(known, i, 2), spki) == 0)
			return 1;
	return 0;
}

/* An SMTP session that got as far as EHLO but not to STARTTLS. */
static int
s_no_starttls(const char *error)
{
	return strstr(error, "STARTTLS") != NULL ||
	       strstr(error, "EHLO") != NULL;
}

static void
s_host_fill(struct round_ctx *c, PGresult *res, int row, struct host_cells *h)
{
	size_t i = s_vantage_of(c, PQgetvalue(res, row, H_AGENT));
	int mx = strcmp(PQgetvalue(res, row, H_ROLE), "mx") == 0;
	int starttls = strcmp(PQgetvalue(res, row, H_STARTTLS), "t") == 0;
	int verified = strcmp(PQgetvalue(res, row, H_VERIFIED), "t") == 0;
	const char *error = PQgetvalue(res, row, H_ERROR);
	int session = !mx || starttls || s_no_starttls(error);

	if (i == c->nv || h->addrs[i].key != NULL)
		return; /* an agent's first row for a host is its answer */
	h->addrs[i].key = PQgetvalue(res, row, H_ADDRS);
	if (mx && session)
		h->starttls[i].key = starttls ? "offered" : "not offered";
	/* STARTTLS missing is its own code, not a failed verdict too. */
	if (!mx || starttls || !session) {
		h->verdict[i].key = verified ? "verified" : "failed";
		snprintf(h->verdict_show[i], sizeof(h->verdict_show[i]),
		    "%s%s%s", h->verdict[i].key, error[0] ? ": " : "", error);
		h->verdict[i].show = h->verdict_show[i];
	}
	if (!PQgetisnull(res, row, H_CHAIN) &&
	    !PQgetisnull(res, row, H_LEAF_SPKI)) {
		const char *spki = PQgetvalue(res, row, H_LEAF_SPKI);

		if (!PQgetisnull(res, row, H_LEAF_AKI))
			snprintf(h->issuer[i], sizeof(h->issuer[i]), "aki:%s",
			    PQgetvalue(res, row, H_LEAF_AKI));
		else if (!PQgetisnull(res, row, H_NEXT_SPKI))
			snprintf(h->issuer[i], sizeof(h->issuer[i]), "spki:%s",
			    PQgetvalue(res, row, H_NEXT_SPKI));
		else
			snprintf(h->issuer[i], sizeof(h->issuer[i]), "unknown");
		h->leaf[i] = spki;
		h->verified[i] = verified;
		h->chain[i].key = PQgetvalue(res, row, H_CHAIN);
		snprintf(h->chain_show[i], sizeof(h->chain_show[i]),
		    "leaf spki %.16s issuer %.21s, %zu cert%s, %s", spki,
		    h->issuer[i],
		    (size_t)1 + (size_t)(strlen(h->chain[i].key) / 65),
		    strlen(h->chain[i].key) > 64 ? "s" : "",
		    verified ? "verified" : "not verified");
		h->chain[i].show = h->chain_show[i];
	}
}

/*
 * Chains that differ from the agreement's are benign when the issuing key
 * is the same, both verified, and the leaf key is the same (another valid
 * path) or was seen for this host in an earlier round (another leaf behind
 * a load balancer).  Returns 1 when a CHAIN_MISMATCH was recorded.
 */
static int
s_chains(struct round_ctx *c, PGresult *known, const char *role,
    const char *host, struct host_cells *h)
{
	unsigned char *bad = calloc(c->nv, 1), *benign = calloc(c->nv, 1);
	struct tally t;
	size_t a, nbad = 0, nbenign = 0;
	int rc = 0;

	if (bad == NULL || benign == NULL) {
		c->oom = 1;
		goto out;
	}
	s_tally(h->chain, c->nv, &t);
	if (t.n_obs < 2 || t.n_agree == t.n_obs)
		goto out;
	a = t.agree;
	for (size_t i = 0; i < c->nv; i++) {
		if (h->chain[i].key == NULL ||
		    s_key_eq(h->chain[i].key, h->chain[a].key))
			continue;
		if (strcmp(h->issuer[i], h->issuer[a]) == 0 && h->verified[i] &&
		    h->verified[a] &&
		    (strcmp(h->leaf[i], h->leaf[a]) == 0 ||
			s_known(known, role, host, h->leaf[i]))) {
			benign[i] = 1;
			nbenign++;
		} else {
			bad[i] = 1;
			nbad++;
		}
	}
	if (nbad > 0) {
		s_emit(c, "VANTAGE_CHAIN_MISMATCH", NULL, host,
		    "the certificate chain differs", h->chain, bad, &t);
		rc = 1;
	} else if (nbenign > 0) {
		s_emit(c, "VANTAGE_CHAIN_BENIGN", "info", host,
		    "another valid leaf or path with a known key and the same "
		    "issuer",
		    h->chain, benign, &t);
	}
out:
	free(bad);
	free(benign);
	return rc;
}

static void
s_hosts(struct round_ctx *c, PGresult *res, PGresult *known)
{
	size_t nv = c->nv;
	struct host_cells h = {0};
	int n = PQntuples(res);

	h.starttls = calloc(nv, sizeof(*h.starttls));
	h.verdict = calloc(nv, sizeof(*h.verdict));
	h.chain = calloc(nv, sizeof(*h.chain));
	h.addrs = calloc(nv, sizeof(*h.addrs));
	h.issuer = calloc(nv, sizeof(*h.issuer));
	h.chain_show = calloc(nv, sizeof(*h.chain_show));
	h.verdict_show = calloc(nv, sizeof(*h.verdict_show));
	h.leaf = calloc(nv, sizeof(*h.leaf));
	h.verified = calloc(nv, sizeof(*h.verified));
	if (h.starttls == NULL || h.verdict == NULL || h.chain == NULL ||
	    h.addrs == NULL || h.issuer == NULL || h.chain_show == NULL ||
	    h.verdict_show == NULL || h.leaf == NULL || h.verified == NULL) {
		c->oom = 1;
		goto out;
	}
	/* Rows come sorted by role and host: one group per host. */
	for (int row = 0; row < n;) {
		const char *role = PQgetvalue(res, row, H_ROLE);
		const char *host = PQgetvalue(res, row, H_HOST);
		int end = row, chain_bad;

		memset(h.starttls, 0, nv * sizeof(*h.starttls));
		memset(h.verdict, 0, nv * sizeof(*h.verdict));
		memset(h.chain, 0, nv * sizeof(*h.chain));
		memset(h.addrs, 0, nv * sizeof(*h.addrs));
		while (end < n &&
		       strcmp(PQgetvalue(res, end, H_ROLE), role) == 0 &&
		       strcmp(PQgetvalue(res, end, H_HOST), host) == 0)
			s_host_fill(c, res, end++, &h);
		row = end;

		chain_bad = s_chains(c, known, role, host, &h);
		(void)s_compare(c, "VANTAGE_VERDICT_MISMATCH", host,
		    "the host's certificate verifies at some vantages only",
		    h.verdict);
		if (strcmp(role, "mx") == 0)
			(void)s_compare(c, "VANTAGE_STARTTLS_MISMATCH", host,
			    "STARTTLS is offered at some vantages only",
			    h.starttls);
		/* Other addresses are benign unless the certificate differs
		 * too, which CHAIN_MISMATCH already says. */
		if (!chain_bad) {
			struct tally t;

			s_tally(h.addrs, nv, &t);
			if (t.n_obs >= 2 && t.n_agree != t.n_obs)
				s_emit(c, "VANTAGE_ADDRESS_DIFFERS", "info",
				    host,
				    "the host resolves to other addresses "
				    "with the same certificate",
				    h.addrs, NULL, &t);
		}
	}
out:
	free(h.starttls);
	free(h.verdict);
	free(h.chain);
	free(h.addrs);
	free(h.issuer);
	free(h.chain_show);
	free(h.verdict_show);
	free(h.leaf);
	free(h.verified);
}

/* ---- the round ---- */

static void
s_rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

static int
s_write(struct round_ctx *c, struct compare_summary *sum)
{
	for (size_t i = 0; i < c->nf; i++) {
		const struct finding *f = &c->f[i];
		const char *p[8] = {c->domain, c->round_s, f->code, f->severity,
		    f->subject, f->detail, f->matrix, f->dissenters};
		PGresult *res = pgconn_query(
		    c->conn, "compare: insert finding", q_insert, 8, p);

		if (res == NULL)
			return -1;
		sum->inserted += strcmp(PQcmdTuples(res), "1") == 0;
		PQclear(res);
		sum->findings++;
		if (strcmp(f->severity, "error") == 0)
			sum->errors++;
		else if (strcmp(f->severity, "warning") == 0)
			sum->warnings++;
		else
			sum->infos++;
	}
	return 0;
}

static void
s_ctx_free(struct round_ctx *c)
{
	for (size_t i = 0; i < c->nf; i++) {
		free(c->f[i].subject);
		free(c->f[i].detail);
		free(c->f[i].matrix);
		free(c->f[i].dissenters);
	}
	free(c->f);
	free(c->v);
}

/* ---- a change on its way through the caches ---- */

/*
 * The propagation rule.  An operator who publishes a new STS id (with or
 * without a new policy body) is seen at some vantages first: resolvers
 * keep the old TXT record until its TTL runs out, and a CDN can serve the
 * old policy file for a while.  Such a split is recorded as
 * VANTAGE_CHANGE_PROPAGATING (info) instead of the mismatch when all of
 * these hold:
 *
 *   1. exactly two values are seen, and one of them is the previous
 *      agreement (domain_state, as the fold of an earlier round left it):
 *      a move from one known value to one new value;
 *   2. the split started less than window_s plus one interval ago: the
 *      first round of the current run of rounds that had this split
 *      (either code for the subject; a compared round without either ends
 *      a run), so a split that outlasts the window turns into the mismatch
 *      and stays one;
 *   3. it is a change at the vantages: each vantage seeing the new value
 *      saw the old one in its latest completed result in the window
 *      before the split started, and no vantage saw the new value then (a
 *      value that was there before is a rollback; a vantage that never
 *      saw the old value is a permanent split, not a change);
 *   4. the new value is no downgrade seen by at most half the vantages: a
 *      TXT record or policy that vanished, or a weaker policy mode
 *      (enforce > testing > none) than the old value's vantages fetched.
 *      A minority that sees an older or weaker policy is what an attacker
 *      looks like; only a change that can become the majority is benign.
 *
 * Which of the two values is the old one: domain_state holds the
 * agreement of the latest folded round.  When its value was first agreed
 * (changed_round) before the split started, it is the old value; when the
 * new value won the majority during the split and a fold recorded it, it
 * is the new one and the other value is the old.
 */

/* How compare.c spells a domain_state value of kind as a key. */
static const char *
s_kind_prefix(const char *kind)
{
	return strcmp(kind, "sts_id") == 0 ? "id=" : "sha256=";
}

/* The previous agreement of kind, or NULL; *changed gets its
 * changed_round. */
static const char *
s_state_value(const struct round_ctx *c, const char *kind, int64_t *changed)
{
	for (int i = 0; i < PQntuples(c->state); i++)
		if (strcmp(PQgetvalue(c->state, i, 0), kind) == 0) {
			*changed =
			    strtoll(PQgetvalue(c->state, i, 2), NULL, 10);
			return PQgetvalue(c->state, i, 1);
		}
	return NULL;
}

static int
s_mode_rank(const char *mode)
{
	if (strcmp(mode, "enforce") == 0)
		return 2;
	return strcmp(mode, "testing") == 0;
}

/* The round a window ending before round from starts with: a split that
 * started then or earlier is beyond the window.  Saturates, so that a
 * bogus round near INT64_MIN does not wrap. */
static int64_t
s_window_first(const struct round_ctx *c, int64_t from)
{
	uint64_t span = (uint64_t)c->window_s + c->interval_s;
	int64_t rounds = (int64_t)((span + c->interval_s - 1) / c->interval_s);

	return from < INT64_MIN + rounds ? INT64_MIN : from - rounds;
}

/* Condition 3.  1 when it holds, 0 when not, -1 when the query failed. */
static int
s_changed_here(struct round_ctx *c, int64_t start, const struct cell *cells,
    const char *old, const char *new, int sts)
{
	char start_s[24], first_s[24];
	const char *p[4] = {c->domain, start_s, first_s, new};
	PGresult *res;
	int key_col = sts ? 1 : 2, saw_col = sts ? 3 : 4, rc = 1;

	snprintf(start_s, sizeof(start_s), "%" PRId64, start);
	snprintf(
	    first_s, sizeof(first_s), "%" PRId64, s_window_first(c, start));
	if ((res = pgconn_query(
		 c->conn, "compare: seen before", q_before, 4, p)) == NULL) {
		c->failed = 1;
		return -1;
	}
	for (int r = 0; r < PQntuples(res) && rc; r++)
		if (strcmp(PQgetvalue(res, r, saw_col), "t") == 0)
			rc = 0;
	for (size_t i = 0; i < c->nv && rc; i++) {
		int r;

		if (!s_key_eq(cells[i].key, new))
			continue;
		for (r = 0; r < PQntuples(res); r++)
			if (strtoll(PQgetvalue(res, r, 0), NULL, 10) ==
			    c->v[i].agent_id)
				break;
		rc = r < PQntuples(res) &&
		     strcmp(PQgetvalue(res, r, key_col), old) == 0;
	}
	PQclear(res);
	return rc;
}

/*
 * Applies the rule above to a split of the STS id (sts 1) or the policy
 * body (sts 0) whose mismatch would be code; thing names the value for
 * the detail.  1 when VANTAGE_CHANGE_PROPAGATING was recorded, 0 when the
 * caller is to record the mismatch, -1 when a query failed (c->failed).
 */
static int
s_propagating(struct round_ctx *c, const char *code, const char *subject,
    const char *thing, const struct cell *cells, const struct tally *t, int sts)
{
	const char *kind = sts ? "sts_id" : "policy_sha256";
	const char *prefix = s_kind_prefix(kind);
	const char *x = cells[t->agree].key, *y = NULL, *state, *old, *new;
	char first_s[24], start_s[24];
	const char *p[5] = {c->domain, c->round_s, first_s, subject, code};
	struct strbuf what;
	PGresult *res;
	int64_t changed, start;
	uint64_t ago;
	size_t n_new = 0;
	int min_new = 2, max_old = 0, rc;

	if (c->interval_s == 0)
		return 0;
	if (c->state == NULL) {
		const char *ps[1] = {c->domain};

		if ((c->state = pgconn_query(
			 c->conn, "compare: state", q_state, 1, ps)) == NULL) {
			c->failed = 1;
			return -1;
		}
	}
	if ((state = s_state_value(c, kind, &changed)) == NULL)
		return 0;
	for (size_t i = 0; i < c->nv; i++) {
		if (cells[i].key == NULL || s_key_eq(cells[i].key, x))
			continue;
		if (y == NULL)
			y = cells[i].key;
		else if (!s_key_eq(cells[i].key, y))
			return 0; /* a third value */
	}
	/* 1: one of the two is the previous agreement. */
	if (y == NULL)
		return 0;
	if (strncmp(x, prefix, strlen(prefix)) == 0 &&
	    strcmp(x + strlen(prefix), state) == 0)
		old = x, new = y;
	else if (strncmp(y, prefix, strlen(prefix)) == 0 &&
		 strcmp(y + strlen(prefix), state) == 0)
		old = y, new = x;
	else
		return 0;

	/* 2: the split is young enough. */
	snprintf(
	    first_s, sizeof(first_s), "%" PRId64, s_window_first(c, c->round));
	if ((res = pgconn_query(c->conn, "compare: split start", q_split_start,
		 5, p)) == NULL) {
		c->failed = 1;
		return -1;
	}
	start = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (start > c->round)
		start = c->round;
	ago = (uint64_t)(c->round - start) * c->interval_s;
	if (ago >= (uint64_t)c->window_s + c->interval_s)
		return 0;
	if (changed >= start) {
		/* The new value won a fold during the split. */
		const char *tmp = old;

		old = new;
		new = tmp;
	}

	/* 4: no downgrade at a minority. */
	for (size_t i = 0; i < c->nv; i++) {
		int rank;

		if (cells[i].key == NULL)
			continue;
		rank = s_mode_rank(c->v[i].mode);
		if (s_key_eq(cells[i].key, new)) {
			n_new++;
			min_new = rank < min_new ? rank : min_new;
		} else {
			max_old = rank > max_old ? rank : max_old;
		}
	}
	if (n_new * 2 <= t->n_obs &&
	    (strncmp(new, prefix, strlen(prefix)) != 0 || min_new < max_old))
		return 0;

	/* 3: a change at the vantages that see it. */
	if ((rc = s_changed_here(c, start, cells, old, new, sts)) <= 0)
		return rc;

	snprintf(start_s, sizeof(start_s), "%" PRId64, start);
	strbuf_init(&what, 0);
	strbuf_printf(&what,
	    "%s is changing from \"%s\" to \"%s\", seen at some vantages "
	    "only since round %s (%" PRIu64 " s ago; propagation window "
	    "%" PRIu32 " s plus one interval of %" PRIu32 " s)",
	    thing, old, new, start_s, ago, c->window_s, c->interval_s);
	if (strbuf_failed(&what)) {
		strbuf_free(&what);
		c->oom = 1;
		return 1;
	}
	s_emit(c, "VANTAGE_CHANGE_PROPAGATING", "info", subject, what.p, cells,
	    NULL, t);
	strbuf_free(&what);
	return 1;
}

/* s_compare for the STS id and the policy body: a split may be a change
 * on its way (s_propagating). */
static void
s_compare_change(struct round_ctx *c, const char *code, const char *subject,
    const char *what, const char *thing, const struct cell *cells, int sts)
{
	struct tally t;

	s_tally(cells, c->nv, &t);
	if (t.n_obs < 2 || t.n_agree == t.n_obs)
		return;
	if (s_propagating(c, code, subject, thing, cells, &t, sts) == 0)
		s_emit(c, code, NULL, subject, what, cells, NULL, &t);
}

/* The per-domain values: STS id, TLS-RPT, MX set, policy. */
static void
s_domain_values(
    struct round_ctx *c, PGresult *dns, PGresult *pol, PGresult *mxset)
{
	struct cell *cells = calloc(c->nv, sizeof(*cells));
	char subject[300];
	struct tally t;

	if (cells == NULL) {
		c->oom = 1;
		return;
	}
	for (size_t i = 0; i < c->nv; i++)
		if (c->v[i].completed) {
			c->v[i].sts = c->v[i].tlsrpt = "absent";
			c->v[i].mxset = "none";
			c->v[i].policy = "no policy";
			c->v[i].mode = "none";
		}
	for (int r = 0; r < PQntuples(dns); r++) {
		size_t i = s_vantage_of(c, PQgetvalue(dns, r, 0));

		if (i < c->nv) {
			c->v[i].sts = PQgetvalue(dns, r, 1);
			c->v[i].tlsrpt = PQgetvalue(dns, r, 2);
		}
	}
	for (int r = 0; r < PQntuples(pol); r++) {
		size_t i = s_vantage_of(c, PQgetvalue(pol, r, 0));

		if (i < c->nv) {
			c->v[i].policy = PQgetvalue(pol, r, 1);
			c->v[i].mode = PQgetvalue(pol, r, 2);
		}
	}
	for (int r = 0; r < PQntuples(mxset); r++) {
		size_t i = s_vantage_of(c, PQgetvalue(mxset, r, 0));

		if (i < c->nv)
			c->v[i].mxset = PQgetvalue(mxset, r, 1);
	}

	for (size_t i = 0; i < c->nv; i++)
		cells[i].key = c->v[i].mode;
	s_tally(cells, c->nv, &t);
	c->enforce = t.n_obs > 0 && strcmp(cells[t.agree].key, "enforce") == 0;

	for (size_t i = 0; i < c->nv; i++)
		cells[i].key = c->v[i].sts;
	snprintf(subject, sizeof(subject), "_mta-sts.%s", c->domain);
	s_compare_change(c, "VANTAGE_DNS_MISMATCH", subject,
	    "the _mta-sts TXT record differs", "the _mta-sts TXT record", cells,
	    1);
	for (size_t i = 0; i < c->nv; i++)
		cells[i].key = c->v[i].tlsrpt;
	snprintf(subject, sizeof(subject), "_smtp._tls.%s", c->domain);
	(void)s_compare(c, "VANTAGE_DNS_MISMATCH", subject,
	    "the TLS-RPT record differs", cells);
	for (size_t i = 0; i < c->nv; i++)
		cells[i].key = c->v[i].mxset;
	(void)s_compare(
	    c, "VANTAGE_DNS_MISMATCH", c->domain, "the MX set differs", cells);
	for (size_t i = 0; i < c->nv; i++)
		cells[i].key = c->v[i].policy;
	snprintf(subject, sizeof(subject), "mta-sts.%s", c->domain);
	s_compare_change(c, "VANTAGE_POLICY_MISMATCH", subject,
	    "the policy body differs", "the policy body", cells, 0);
	free(cells);
}

int
compare_round(PGconn *conn, const char *domain, int64_t round,
    const struct compare_opts *opts, struct compare_summary *out)
{
	struct compare_opts o = {0};
	struct compare_summary sum = {0};
	struct round_ctx c = {0};
	PGresult *vres = NULL, *dns = NULL, *pol = NULL, *mxset = NULL,
		 *hosts = NULL, *known = NULL, *res;
	char known_s[24], vant_s[16], done_s[16];
	const char *p[5];
	int rc = -1, began = 0;

	if (opts != NULL)
		o = *opts;
	if (o.quorum == 0)
		o.quorum = COMPARE_DEFAULT_QUORUM;
	if (o.known_rounds <= 0)
		o.known_rounds = COMPARE_DEFAULT_KNOWN_ROUNDS;
	if (o.window_s == 0)
		o.window_s = COMPARE_DEFAULT_WINDOW_S;
	if (o.window_s > COMPARE_MAX_WINDOW_S)
		o.window_s = COMPARE_MAX_WINDOW_S;
	c.conn = conn;
	c.domain = domain;
	c.round = round;
	c.window_s = o.window_s;
	c.interval_s = o.interval_s;
	snprintf(c.round_s, sizeof(c.round_s), "%" PRId64, round);
	snprintf(known_s, sizeof(known_s), "%" PRId64, o.known_rounds);
	p[0] = domain;
	p[1] = c.round_s;
	p[2] = known_s;

	if ((res = pgconn_query(conn, "compare: begin", "BEGIN", 0, NULL)) ==
	    NULL)
		goto out;
	PQclear(res);
	began = 1;
	if ((res = pgconn_query(conn, "compare: lock", q_lock, 2, p)) == NULL ||
	    (vres = pgconn_query(
		 conn, "compare: vantages", q_vantages, 2, p)) == NULL)
		goto out;
	PQclear(res);
	c.nv = (size_t)PQntuples(vres);
	if (c.nv == 0) {
		rc = 0; /* nothing stored for this round: nothing to say */
		goto out;
	}
	if ((c.v = calloc(c.nv, sizeof(*c.v))) == NULL) {
		log_warnx("compare: out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.nv; i++) {
		c.v[i].agent_id =
		    strtoll(PQgetvalue(vres, (int)i, 0), NULL, 10);
		c.v[i].completed =
		    strcmp(PQgetvalue(vres, (int)i, 2), "t") == 0;
		sum.completed += (unsigned)c.v[i].completed;
	}
	s_labels(&c, vres);
	sum.vantages = (unsigned)c.nv;
	sum.inconclusive = sum.completed < o.quorum;

	if (!sum.inconclusive) {
		if ((dns = pgconn_query(conn, "compare: dns", q_dns, 2, p)) ==
			NULL ||
		    (pol = pgconn_query(
			 conn, "compare: policy", q_policy, 2, p)) == NULL ||
		    (mxset = pgconn_query(
			 conn, "compare: mx set", q_mxset, 2, p)) == NULL ||
		    (hosts = pgconn_query(
			 conn, "compare: hosts", q_hosts, 2, p)) == NULL ||
		    (known = pgconn_query(
			 conn, "compare: known", q_known, 3, p)) == NULL)
			goto out;
		s_domain_values(&c, dns, pol, mxset);
		s_hosts(&c, hosts, known);
		if (c.oom) {
			log_warnx("compare: out of memory");
			goto out;
		}
		if (c.failed)
			goto out;
		if (s_write(&c, &sum) == -1)
			goto out;
	}

	snprintf(vant_s, sizeof(vant_s), "%u", sum.vantages);
	snprintf(done_s, sizeof(done_s), "%u", sum.completed);
	p[2] = sum.inconclusive ? "inconclusive" : "compared";
	p[3] = vant_s;
	p[4] = done_s;
	if ((res = pgconn_query(
		 conn, "compare: round status", q_status, 5, p)) == NULL)
		goto out;
	PQclear(res);
	if ((res = pgconn_query(conn, "compare: commit", "COMMIT", 0, NULL)) ==
	    NULL)
		goto out;
	PQclear(res);
	began = 0;
	log_info("compare: domain=%s round=%s state=%s vantages=%u "
		 "completed=%u findings=%u new=%u errors=%u",
	    domain, c.round_s, sum.inconclusive ? "inconclusive" : "compared",
	    sum.vantages, sum.completed, sum.findings, sum.inserted,
	    sum.errors);
	rc = 0;
out:
	if (began)
		s_rollback(conn);
	if (rc == 0 && out != NULL)
		*out = sum;
	PQclear(vres);
	PQclear(dns);
	PQclear(pol);
	PQclear(mxset);
	PQclear(hosts);
	PQclear(known);
	PQclear(c.state);
	s_ctx_free(&c);
	return rc;
}

int
compare_pending(PGconn *conn, time_t now, uint32_t interval_s,
    const struct compare_opts *opts, size_t *compared)
{
	char now_s[24], int_s[16], grace_s[16], back_s[24];
	const char *p[4] = {now_s, int_s, grace_s, back_s};
	long lookback = COMPARE_DEFAULT_LOOKBACK_S;
	uint32_t grace = interval_s;
	struct compare_opts o = {0};
	PGresult *res;
	size_t done = 0;
	int rc = 0;

	if (compared != NULL)
		*compared = 0;
	if (interval_s == 0) {
		log_warnx("compare: interval 0");
		return -1;
	}
	if (opts != NULL)
		o = *opts;
	o.interval_s = interval_s;
	if (opts != NULL && opts->grace_s > 0)
		grace = opts->grace_s;
	if (opts != NULL && opts->lookback_s > 0)
		lookback = opts->lookback_s;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	snprintf(int_s, sizeof(int_s), "%" PRIu32, interval_s);
	snprintf(grace_s, sizeof(grace_s), "%" PRIu32, grace);
	snprintf(back_s, sizeof(back_s), "%ld", lookback);
	if ((res = pgconn_query(conn, "compare: pending", q_pending, 4, p)) ==
	    NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t round = strtoll(PQgetvalue(res, i, 1), NULL, 10);

		if (compare_round(
			conn, PQgetvalue(res, i, 0), round, &o, NULL) == -1) {
			rc = -1;
			break;
		}
		done++;
	}
	PQclear(res);
	if (compared != NULL)
		*compared = done;
	return rc;
}
