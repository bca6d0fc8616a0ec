/* history.c -- the cross-round rules: what changed since the last round. */
#include "history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

/*
 * domain_state kinds (subject '' unless said):
 *   sts_id         the STS TXT id
 *   policy_sha256  the policy body's SHA-256, hex
 *   stale_id       the STS id the policy body changed under; removed when
 *                  the id changes or the body returns to stale_body
 *   stale_body     the body (hex SHA-256) senders cached under stale_id
 *   leaf_sha256    subject host: the leaf certificate's SHA-256, hex
 *   leaf_spki      subject host: the leaf's SPKI SHA-256, hex
 *   issuer_key     subject host: the issuing CA's key as the schema names
 *                  it, the issuer SPKI when sent, else the leaf's AKI
 *   issuer_spki    subject host: SPKI SHA-256 of chain position 1 (absent
 *                  when the server sent the leaf alone)
 *   issuer_aki     subject host: the leaf's AKI (absent when it has none)
 * The issuer is compared SPKI with SPKI when both rounds have one, else
 * AKI with AKI: the two are different hashes of the same key and never
 * comparable with each other, which is why both are kept.
 *
 * history_leaves holds every leaf seen for a host (the agreement's, and
 * any a completed vantage saw verify), so that the several leaves behind
 * a load balancer are known and taking turns is no renewal.
 *
 * Values are the round's agreement: the value a strict majority of the
 * completed vantages saw.  Without one (a split, or most saw nothing) the
 * state stays as it was.
 */

const char history_codes[] = "{STS_ID_CHANGED,POLICY_CHANGED_WITHOUT_ID,"
			     "CERT_RENEWED,CERT_ISSUER_CHANGED}";

/* Each agent's latest completed result of the round, as compare.c. */
#define CHOSEN                                                                 \
	"WITH chosen AS (SELECT DISTINCT ON (r.agent_id) r.id, "               \
	"r.received_at, r.agent_id, r.completed FROM results r "               \
	"WHERE r.domain = $1 AND r.round = $2::bigint "                        \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC) "

/* Per completed vantage: the valid STS id and the policy body hash, ""
 * when none. */
static const char q_values[] =
    CHOSEN "SELECT CASE WHEN d.sts_present AND d.sts_valid THEN "
	   "coalesce(d.sts_id, '') ELSE '' END, "
	   "coalesce(encode(p.sha256, 'hex'), '') FROM chosen c "
	   "LEFT JOIN dns_observations d ON d.result_id = c.id "
	   "AND d.received_at = c.received_at "
	   "LEFT JOIN policy_observations p ON p.result_id = c.id "
	   "AND p.received_at = c.received_at WHERE c.completed";

/* Per completed vantage and host that sent a chain: leaf hash, leaf SPKI,
 * leaf AKI, SPKI of position 1.  Sorted by host; an agent's first row for
 * a host is its answer (the MX one when the host is both). */
static const char q_hosts[] =
    CHOSEN "SELECT rtrim(lower(h.host), '.'), c.agent_id, h.verified, "
	   "encode(leaf.sha256, 'hex'), encode(leaf.spki_sha256, 'hex'), "
	   "encode(leaf.aki, 'hex'), encode(ica.spki_sha256, 'hex') "
	   "FROM chosen c JOIN host_observations h ON h.result_id = c.id "
	   "AND h.received_at = c.received_at "
	   "JOIN chain_certs l0 ON l0.result_id = c.id "
	   "AND l0.received_at = c.received_at AND l0.role = h.role "
	   "AND l0.host_position = h.position AND l0.position = 0 "
	   "JOIN certificates leaf ON leaf.sha256 = l0.cert_sha256 "
	   "LEFT JOIN chain_certs l1 ON l1.result_id = c.id "
	   "AND l1.received_at = c.received_at AND l1.role = h.role "
	   "AND l1.host_position = h.position AND l1.position = 1 "
	   "LEFT JOIN certificates ica ON ica.sha256 = l1.cert_sha256 "
	   "WHERE c.completed ORDER BY 1, h.role, 2, h.position";

enum { H_HOST, H_AGENT, H_VERIFIED, H_LEAF, H_SPKI, H_AKI, H_ISPKI };

static const char q_state[] =
    "SELECT kind, subject, value, changed_round, round FROM domain_state "
    "WHERE domain = $1";

static const char q_state_put[] =
    "INSERT INTO domain_state (domain, kind, subject, value, round, "
    "changed_round) SELECT $1, k, s, v, $2::bigint, $2::bigint "
    "FROM unnest($3::text[], $4::text[], $5::text[]) AS u(k, s, v) "
    "ON CONFLICT (domain, kind, subject) DO UPDATE SET "
    "value = EXCLUDED.value, round = EXCLUDED.round, "
    "changed_round = CASE WHEN domain_state.value = EXCLUDED.value "
    "THEN domain_state.changed_round ELSE EXCLUDED.round END";

static const char q_state_del[] =
    "DELETE FROM domain_state WHERE domain = $1 AND (kind, subject) IN "
    "(SELECT * FROM unnest($2::text[], $3::text[]))";

static const char q_leaf_known[] =
    "SELECT 1 FROM history_leaves WHERE domain = $1 AND host = $2 "
    "AND leaf_sha256 = $3";

static const char q_leaves_put[] =
    "INSERT INTO history_leaves (domain, host, leaf_sha256, first_round, "
    "last_round) SELECT DISTINCT $1, h, l, $2::bigint, $2::bigint "
    "FROM unnest($3::text[], $4::text[]) AS u(h, l) "
    "ON CONFLICT (domain, host, leaf_sha256) DO UPDATE SET last_round = "
    "greatest(history_leaves.last_round, EXCLUDED.last_round)";

static const char q_leaves_prune[] =
    "DELETE FROM history_leaves WHERE domain = $1 AND "
    "last_round < $2::numeric - $3::bigint";

static const char q_insert[] =
    "INSERT INTO history_findings (domain, round, code, severity, "
    "subject, detail) VALUES ($1, $2::bigint, $3, $4, $5, $6) "
    "ON CONFLICT DO NOTHING";

/* ---- PostgreSQL text[] literals, built up element by element ---- */

struct arr {
	char *p;
	size_t len, cap;
	int oom;
};

static void
s_arr_addn(struct arr *a, const char *s, size_t n)
{
	if (a->oom)
		return;
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		char *p;

		while (cap < a->len + n + 2)
			cap *= 2;
		if ((p = realloc(a->p, cap)) == NULL) {
			a->oom = 1;
			return;
		}
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->len, s, n);
	a->len += n;
}

/* Appends s as a quoted element. */
static void
s_arr_add(struct arr *a, const char *s)
{
	s_arr_addn(a, a->len == 0 ? "{\"" : ",\"", 2);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			s_arr_addn(a, "\\", 1);
		s_arr_addn(a, s, 1);
	}
	s_arr_addn(a, "\"", 1);
}

/* The literal, "{}" when empty; NULL when out of memory.  Borrowed. */
static const char *
s_arr_end(struct arr *a)
{
	if (a->len == 0)
		s_arr_addn(a, "{", 1);
	s_arr_addn(a, "}", 1);
	if (a->oom)
		return NULL;
	a->p[a->len] = '\0';
	return a->p;
}

/* ---- the round ---- */

struct hist {
	PGconn *conn;
	const char *domain;
	char round_s[24];
	int64_t round;
	int64_t grace_rounds; /* POLICY_CHANGED_WITHOUT_ID waits this long */
	PGresult *state;
	struct arr put_k, put_s, put_v; /* domain_state upserts */
	struct arr del_k, del_s;	/* domain_state deletes */
	struct arr leaf_h, leaf_l;	/* history_leaves seen */
	int ndel, nleaves;
	struct history_summary sum;
};

/* The state's value of kind for subject, or NULL; *changed (may be NULL)
 * gets the round it was first seen. */
static const char *
s_state(const struct hist *h, const char *kind, const char *subject,
    const char **changed)
{
	for (int i = 0; i < PQntuples(h->state); i++)
		if (strcmp(PQgetvalue(h->state, i, 0), kind) == 0 &&
		    strcmp(PQgetvalue(h->state, i, 1), subject) == 0) {
			if (changed != NULL)
				*changed = PQgetvalue(h->state, i, 3);
			return PQgetvalue(h->state, i, 2);
		}
	return NULL;
}

/* Records value for (kind, subject); NULL forgets what was recorded. */
static void
s_set(struct hist *h, const char *kind, const char *subject, const char *value)
{
	if (value != NULL) {
		s_arr_add(&h->put_k, kind);
		s_arr_add(&h->put_s, subject);
		s_arr_add(&h->put_v, value);
	} else if (s_state(h, kind, subject, NULL) != NULL) {
		s_arr_add(&h->del_k, kind);
		s_arr_add(&h->del_s, subject);
		h->ndel++;
	}
}

static int
s_emit(struct hist *h, const char *code, const char *severity,
    const char *subject, const char *detail)
{
	const char *p[6] = {
	    h->domain, h->round_s, code, severity, subject, detail};
	PGresult *res =
	    pgconn_query(h->conn, "history: insert finding", q_insert, 6, p);

	if (res == NULL)
		return -1;
	h->sum.findings++;
	h->sum.inserted += strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	log_info("history: domain=%s round=%s code=%s subject=%s", h->domain,
	    h->round_s, code, subject);
	return 0;
}

/* The index of the key a strict majority of the n keys share, NULL keys
 * not voting; -1 when there is none. */
static int
s_majority(const char *const *keys, size_t n)
{
	size_t voters = 0;

	for (size_t i = 0; i < n; i++)
		voters += keys[i] != NULL;
	for (size_t i = 0; i < n; i++) {
		size_t count = 0;

		if (keys[i] == NULL)
			continue;
		for (size_t j = 0; j < n; j++)
			count +=
			    keys[j] != NULL && strcmp(keys[i], keys[j]) == 0;
		if (count * 2 > voters)
			return (int)i;
	}
	return -1;
}

/* The agreed value; "" (nothing seen) is no value. */
static const char *
s_agreed(const char *const *keys, size_t n)
{
	int i = s_majority(keys, n);

	return i >= 0 && keys[i][0] != '\0' ? keys[i] : NULL;
}

static int
s_neq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) != 0;
}

/* STS_ID_CHANGED and POLICY_CHANGED_WITHOUT_ID, from q_values. */
static int
s_sts_policy(struct hist *h, PGresult *vals)
{
	size_t n = (size_t)PQntuples(vals);
	const char **ids = calloc(n, sizeof(*ids));
	const char **bodies = calloc(n, sizeof(*bodies));
	const char *id, *body, *old_id, *old_body, *stale, *stale_body,
	    *stale_round = "?";
	char subject[300], detail[600];
	int rc = -1;

	if (ids == NULL || bodies == NULL) {
		log_warnx("history: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = PQgetvalue(vals, (int)i, 0);
		bodies[i] = PQgetvalue(vals, (int)i, 1);
	}
	id = s_agreed(ids, n);
	body = s_agreed(bodies, n);
	old_id = s_state(h, "sts_id", "", NULL);
	old_body = s_state(h, "policy_sha256", "", NULL);
	stale = s_state(h, "stale_id", "", &stale_round);
	stale_body = s_state(h, "stale_body", "", NULL);

	if (s_neq(id, old_id)) {
		snprintf(subject, sizeof(subject), "_mta-sts.%s", h->domain);
		snprintf(detail, sizeof(detail),
		    "the STS id changed from %s to %s; %s", old_id, id,
		    s_neq(body, old_body) ? "the policy body changed with it"
		    : stale != NULL
			? "the policy body had changed under the old id"
		    : body != NULL && old_body != NULL
			? "the policy body did not change"
			: "the policy body could not be compared");
		if (s_emit(h, "STS_ID_CHANGED", "info", subject, detail) == -1)
			goto out;
	}

	snprintf(subject, sizeof(subject), "mta-sts.%s", h->domain);
	if (stale != NULL) {
		/* Senders refetch once the id moves on; a body put back is
		 * what they cached anyway. */
		if (s_neq(id, stale) || (body != NULL && stale_body != NULL &&
					    strcmp(body, stale_body) == 0)) {
			s_set(h, "stale_id", "", NULL);
			s_set(h, "stale_body", "", NULL);
			stale = NULL;
		}
	} else if (id != NULL && old_id != NULL && strcmp(id, old_id) == 0 &&
		   s_neq(body, old_body)) {
		s_set(h, "stale_id", "", id);
		s_set(h, "stale_body", "", old_body);
		stale = id;
		stale_body = old_body;
		stale_round = h->round_s;
	}
	/*
	 * Publishing the new policy first and bumping the id after it is the
	 * right order (RFC 8461, section 3.3), and resolvers serve the old id
	 * until its TTL runs out: only a stale id that outlasts the
	 * propagation window is an error.
	 */
	if (stale != NULL &&
	    h->round - strtoll(stale_round, NULL, 10) >= h->grace_rounds) {
		snprintf(detail, sizeof(detail),
		    "the policy body changed in round %s (sha256 %.16s... to "
		    "%.16s...) while the STS id stayed %s: senders keep the "
		    "policy they cached until the id changes",
		    stale_round, stale_body != NULL ? stale_body : "?",
		    body != NULL ? body : "?", stale);
		if (s_emit(h, "POLICY_CHANGED_WITHOUT_ID", "error", subject,
			detail) == -1)
			goto out;
	}
	if (id != NULL)
		s_set(h, "sts_id", "", id);
	if (body != NULL)
		s_set(h, "policy_sha256", "", body);
	rc = 0;
out:
	free(ids);
	free(bodies);
	return rc;
}

static int
s_leaf_known(struct hist *h, const char *host, const char *leaf, int *known)
{
	const char *p[3] = {h->domain, host, leaf};
	PGresult *res =
	    pgconn_query(h->conn, "history: known leaf", q_leaf_known, 3, p);

	if (res == NULL)
		return -1;
	*known = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

static const char *
s_col(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/*
 * One host: rows [first, end) of q_hosts.  keys is scratch space for
 * end - first keys.
 */
static int
s_host(struct hist *h, PGresult *res, int first, int end, const char **keys)
{
	const char *host = PQgetvalue(res, first, H_HOST);
	const char *leaf, *old_leaf, *old_ispki, *old_aki, *spki, *aki, *ispki;
	char detail[600];
	size_t n = 0;
	int agree, known, same;

	/* An agent's first row for the host is its answer. */
	for (int r = first; r < end; r++) {
		int dup = 0;

		for (int q = first; q < r && !dup; q++)
			dup = strcmp(PQgetvalue(res, q, H_AGENT),
				  PQgetvalue(res, r, H_AGENT)) == 0;
		keys[n++] = dup ? NULL : PQgetvalue(res, r, H_LEAF);
		if (!dup && strcmp(PQgetvalue(res, r, H_VERIFIED), "t") == 0) {
			s_arr_add(&h->leaf_h, host);
			s_arr_add(&h->leaf_l, PQgetvalue(res, r, H_LEAF));
			h->nleaves++;
		}
	}
	if ((agree = s_majority(keys, n)) < 0)
		return 0; /* no agreement on the leaf: nothing to say */
	agree += first;
	/* Prefer a row of the agreement that sent the issuer too. */
	for (int r = first; r < end; r++)
		if (keys[r - first] != NULL &&
		    strcmp(keys[r - first], keys[agree - first]) == 0 &&
		    !PQgetisnull(res, r, H_ISPKI)) {
			agree = r;
			break;
		}
	leaf = PQgetvalue(res, agree, H_LEAF);
	spki = s_col(res, agree, H_SPKI);
	aki = s_col(res, agree, H_AKI);
	ispki = s_col(res, agree, H_ISPKI);
	old_leaf = s_state(h, "leaf_sha256", host, NULL);
	old_ispki = s_state(h, "issuer_spki", host, NULL);
	old_aki = s_state(h, "issuer_aki", host, NULL);
	s_arr_add(&h->leaf_h, host);
	s_arr_add(&h->leaf_l, leaf);
	h->nleaves++;

	if (s_neq(leaf, old_leaf)) {
		if (s_leaf_known(h, host, leaf, &known) == -1)
			return -1;
		same = ispki != NULL && old_ispki != NULL
			   ? !s_neq(ispki, old_ispki)
		       : aki != NULL && old_aki != NULL ? !s_neq(aki, old_aki)
							: -1;
		if (!known && same == 0) {
			snprintf(detail, sizeof(detail),
			    "new leaf certificate sha256 %.16s... (was "
			    "%.16s...) from another issuing CA key (%s "
			    "%.16s..., was %.16s...)",
			    leaf, old_leaf, ispki && old_ispki ? "SPKI" : "AKI",
			    ispki && old_ispki ? ispki : aki,
			    ispki && old_ispki ? old_ispki : old_aki);
			if (s_emit(h, "CERT_ISSUER_CHANGED", "warning", host,
				detail) == -1)
				return -1;
		} else if (!known) {
			snprintf(detail, sizeof(detail),
			    "new leaf certificate sha256 %.16s... (was "
			    "%.16s...), %s",
			    leaf, old_leaf,
			    same ? "same issuing CA key"
				 : "issuing CA key not comparable (the chain "
				   "sent changed shape)");
			if (s_emit(h, "CERT_RENEWED", "info", host, detail) ==
			    -1)
				return -1;
		}
	}
	s_set(h, "leaf_sha256", host, leaf);
	s_set(h, "leaf_spki", host, spki);
	s_set(h, "issuer_key", host, ispki != NULL ? ispki : aki);
	s_set(h, "issuer_spki", host, ispki);
	s_set(h, "issuer_aki", host, aki);
	return 0;
}

static int
s_hosts(struct hist *h, PGresult *res)
{
	int n = PQntuples(res);
	const char **keys = calloc((size_t)n + 1, sizeof(*keys));
	int rc = 0;

	if (keys == NULL) {
		log_warnx("history: out of memory");
		return -1;
	}
	for (int row = 0; row < n && rc == 0;) {
		int end = row;

		while (end < n && strcmp(PQgetvalue(res, end, H_HOST),
				      PQgetvalue(res, row, H_HOST)) == 0)
			end++;
		rc = s_host(h, res, row, end, keys);
		row = end;
	}
	free(keys);
	return rc;
}

/* Moves domain_state and history_leaves forward. */
static int
s_save(struct hist *h, int64_t known_rounds)
{
	const char *pk = s_arr_end(&h->put_k), *ps = s_arr_end(&h->put_s),
		   *pv = s_arr_end(&h->put_v), *dk = s_arr_end(&h->del_k),
		   *ds = s_arr_end(&h->del_s), *lh = s_arr_end(&h->leaf_h),
		   *ll = s_arr_end(&h->leaf_l);
	const char *p[5] = {h->domain, h->round_s, pk, ps, pv};
	char known_s[24];

	if (pk == NULL || ps == NULL || pv == NULL || dk == NULL ||
	    ds == NULL || lh == NULL || ll == NULL) {
		log_warnx("history: out of memory");
		return -1;
	}
	if (pgconn_exec(h->conn, "history: state", q_state_put, 5, p) == -1)
		return -1;
	if (h->ndel > 0) {
		const char *pd[3] = {h->domain, dk, ds};

		if (pgconn_exec(h->conn, "history: state delete", q_state_del,
			3, pd) == -1)
			return -1;
	}
	if (h->nleaves > 0) {
		const char *pl[4] = {h->domain, h->round_s, lh, ll};
		const char *pp[3] = {h->domain, h->round_s, known_s};

		snprintf(known_s, sizeof(known_s), "%" PRId64, known_rounds);
		if (pgconn_exec(h->conn, "history: leaves", q_leaves_put, 4,
			pl) == -1 ||
		    pgconn_exec(h->conn, "history: leaves prune",
			q_leaves_prune, 3, pp) == -1)
			return -1;
	}
	return 0;
}

int
history_round(PGconn *conn, const char *domain, int64_t round,
    int64_t known_rounds, int64_t grace_rounds, struct history_summary *out)
{
	struct hist h = {0};
	PGresult *vals = NULL, *hosts = NULL;
	const char *p[2];
	int rc = -1;

	if (known_rounds <= 0)
		known_rounds = HISTORY_DEFAULT_KNOWN_ROUNDS;
	h.conn = conn;
	h.domain = domain;
	h.round = round;
	h.grace_rounds = grace_rounds;
	snprintf(h.round_s, sizeof(h.round_s), "%" PRId64, round);
	p[0] = domain;
	p[1] = h.round_s;
	if ((vals = pgconn_query(conn, "history: values", q_values, 2, p)) ==
		NULL ||
	    (h.state = pgconn_query(conn, "history: state", q_state, 1, p)) ==
		NULL)
		goto out;
	if (PQntuples(vals) == 0) {
		rc = 0; /* no completed vantage: nothing is known */
		goto out;
	}
	for (int i = 0; i < PQntuples(h.state); i++)
		if (strtoll(PQgetvalue(h.state, i, 4), NULL, 10) > round) {
			rc = 0; /* the state is newer: going back is wrong */
			goto out;
		}
	if ((hosts = pgconn_query(conn, "history: hosts", q_hosts, 2, p)) ==
		NULL ||
	    s_sts_policy(&h, vals) == -1 || s_hosts(&h, hosts) == -1 ||
	    s_save(&h, known_rounds) == -1)
		goto out;
	rc = 0;
out:
	if (rc == 0 && out != NULL)
		*out = h.sum;
	PQclear(vals);
	PQclear(hosts);
	PQclear(h.state);
	free(h.put_k.p);
	free(h.put_s.p);
	free(h.put_v.p);
	free(h.del_k.p);
	free(h.del_s.p);
	free(h.leaf_h.p);
	free(h.leaf_l.p);
	return rc;
}
