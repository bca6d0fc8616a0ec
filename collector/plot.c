/* plot.c -- one domain's certificate expiry and vantage agreement as SVG. */
#include "plot.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "pgconn.h"
#include "strbuf.h"
#include "wire.h"

/*
 * The document is plain SVG 1.1: no script, no style sheet, no link, no
 * font or image from elsewhere, so it can be served with a strict
 * Content-Security-Policy or mailed.  Colours are attributes; the classes
 * (host, threshold, agree, dissent, ...) are there for tests and for
 * whoever embeds it.  A cell's full value is in its <title>, which
 * browsers show on hover.
 *
 * Bounds, so that neither the queries nor the document grow with history
 * or with a domain that lists many MX hosts:
 *
 * - PLOT_DAYS of results, cut into at most PLOT_MAX_POINTS buckets of
 *   equal width; per host and bucket, of each agent's last result in the
 *   bucket, the earliest leaf notAfter (the pessimistic one).
 * - PLOT_MAX_HOSTS hosts: the policy host first, then MX hosts by name;
 *   the rest are counted in a note.  The matrix shows the same number.
 * - PLOT_MAX_VANTAGES columns (agents in id order), PLOT_MAX_FINDINGS
 *   findings listed under the matrix, PLOT_CELL_CHARS characters shown per
 *   cell and PLOT_LABEL_CHARS per label (the cell's <title> holds up to
 *   PLOT_TITLE_CHARS).
 * - The latest compared round among the domain's last PLOT_ROUND_WINDOW
 *   round_status rows, as metrics.c does.
 *
 * Cost: the expiry query reads the domain's results of PLOT_DAYS once
 * (results_domain_round, hash-grouped by agent and bucket) and looks up
 * the leaf rows of at most agents x PLOT_MAX_POINTS of them, whatever the
 * probe interval; the matrix queries read one round.  A domain probed
 * every 5 minutes by 3 agents for 90 days plots in 90 to 180 ms
 * (docs/metrics.md): meant for a page a person opens, not for a scrape
 * loop.
 */

#define PLOT_DAYS	  90
#define PLOT_MAX_POINTS	  180
#define PLOT_MAX_HOSTS	  12
#define PLOT_MAX_VANTAGES 16
#define PLOT_MAX_FINDINGS 8
#define PLOT_ROUND_WINDOW 64
#define PLOT_CELL_CHARS	  12
#define PLOT_LABEL_CHARS  40
#define PLOT_TITLE_CHARS  300
#define PLOT_MAX_BYTES	  (4u * 1024 * 1024)
#define PLOT_MAX_ROWS	  (5 + 2 * PLOT_MAX_HOSTS)
#define PLOT_BUCKET_S                                                          \
	((PLOT_DAYS * 86400L + PLOT_MAX_POINTS - 2) / (PLOT_MAX_POINTS - 1))
#define XSTR(x) #x
#define STR(x)	XSTR(x)

/* Layout, in user units (pixels at 100%). */
#define CHART_X	  70.0
#define CHART_Y	  60.0
#define CHART_W	  640.0
#define CHART_H	  260.0
#define LEGEND_X  770.0
#define MATRIX_Y  (CHART_Y + CHART_H + 70.0)
#define LABEL_W	  250.0
#define CELL_W	  110.0
#define ROW_H	  22.0
#define MIN_WIDTH 1120.0

/* The window of the chart. */
#define SINCE "now() - interval '" STR(PLOT_DAYS) " days'"

static const char q_now[] = "SELECT extract(epoch FROM now())::bigint, "
			    "EXISTS (SELECT 1 FROM domains WHERE name = $1) OR "
			    "EXISTS (SELECT 1 FROM results WHERE domain = $1 "
			    "AND received_at >= " SINCE ")";

/*
 * Columns: role, host, time, earliest leaf notAfter.  Per agent and
 * bucket only its last result is read (pick: the highest id, which is
 * the last stored), so that the chain rows looked up are a few per bucket
 * rather than one per result; then per host and bucket the earliest
 * notAfter among the agents.  The bucket bounds let each lookup prune to
 * the day partitions of its bucket, and OFFSET 0 keeps the lateral join a
 * nested loop on chain_certs' index: flattened, the planner misjudges how
 * few rows pick keeps and hashes all 90 days of chain_certs.
 */
#define BUCKET "floor(date_part('epoch', r.received_at) / $2::bigint)::bigint"
static const char q_expiry[] =
    "WITH pick AS (SELECT " BUCKET " AS bucket, max(r.id) AS id, "
    "max(r.received_at) AS at FROM results r WHERE r.domain = $1 "
    "AND r.received_at >= " SINCE " GROUP BY r.agent_id, 1) "
    "SELECT l.role, l.host, max(extract(epoch FROM p.at))::bigint, "
    "min(l.not_after) FROM pick p CROSS JOIN LATERAL (SELECT cc.role, "
    "rtrim(lower(cc.host), '.') AS host, "
    "extract(epoch FROM ce.not_after)::bigint AS not_after "
    "FROM chain_certs cc JOIN certificates ce ON ce.sha256 = cc.cert_sha256 "
    "WHERE cc.result_id = p.id "
    "AND cc.received_at >= to_timestamp(p.bucket * $2::bigint) "
    "AND cc.received_at < to_timestamp((p.bucket + 1) * $2::bigint) "
    "AND cc.position = 0 AND ce.not_after IS NOT NULL OFFSET 0) l "
    "GROUP BY 1, 2, p.bucket ORDER BY l.role <> 'policy', 2, 3";

/* The planner's cost over 90 day partitions passes jit_above_cost. */
static const char q_settings[] =
    "SELECT set_config('statement_timeout', '20s', true), "
    "set_config('jit', 'off', true)";

#define ROUNDS STR(PLOT_ROUND_WINDOW)

static const char q_round[] =
    "SELECT round FROM (SELECT round, state FROM round_status "
    "WHERE domain = $1 ORDER BY round DESC LIMIT " ROUNDS ") w "
    "WHERE state = 'compared' ORDER BY round DESC LIMIT 1";

#define CHOSEN                                                                 \
	"WITH chosen AS (SELECT DISTINCT ON (r.agent_id) r.id, "               \
	"r.received_at, r.agent_id, r.completed, r.error_count "               \
	"FROM results r WHERE r.domain = $1 AND r.round = $2::bigint "         \
	"ORDER BY r.agent_id, r.completed DESC, r.seq DESC) "

/* Columns: agent, name, completed, errors, STS, MX set, policy body,
 * policy mode.  The STS and MX set are normalised as compare.c does. */
static const char q_vantages[] =
    CHOSEN "SELECT c.agent_id, a.name, c.completed, c.error_count, "
	   "(SELECT CASE WHEN NOT d.sts_present THEN 'absent' "
	   "WHEN d.sts_valid IS NOT TRUE THEN 'invalid' "
	   "ELSE coalesce(d.sts_id, '') END FROM dns_observations d "
	   "WHERE d.result_id = c.id AND d.received_at = c.received_at "
	   "LIMIT 1), "
	   "(SELECT coalesce(string_agg(coalesce(h.preference::text, '?') "
	   "|| ' ' || rtrim(lower(h.host), '.'), ',' ORDER BY h.preference, "
	   "rtrim(lower(h.host), '.')), 'none') FROM host_observations h "
	   "WHERE h.result_id = c.id AND h.received_at = c.received_at "
	   "AND h.role = 'mx'), "
	   "(SELECT CASE WHEN p.sha256 IS NOT NULL THEN "
	   "encode(p.sha256, 'hex') ELSE 'none (http ' || p.http_status "
	   "|| ')' END FROM policy_observations p WHERE p.result_id = c.id "
	   "AND p.received_at = c.received_at LIMIT 1), "
	   "(SELECT coalesce(p.mode, 'unknown') FROM policy_observations p "
	   "WHERE p.result_id = c.id AND p.received_at = c.received_at "
	   "LIMIT 1) "
	   "FROM chosen c JOIN agents a ON a.id = c.agent_id "
	   "ORDER BY c.agent_id LIMIT " STR(PLOT_MAX_VANTAGES);

enum { V_AGENT, V_NAME, V_COMPLETED, V_ERRORS, V_STS, V_MXSET, V_BODY, V_MODE };

/* Columns: agent, role, host, leaf SPKI (NULL: no chain), verified,
 * tls_ok, starttls (NULL for the policy host). */
static const char q_hosts[] =
    CHOSEN "SELECT c.agent_id, h.role, rtrim(lower(h.host), '.'), "
	   "encode(ce.spki_sha256, 'hex'), h.verified, h.tls_ok, h.starttls "
	   "FROM chosen c JOIN host_observations h ON h.result_id = c.id "
	   "AND h.received_at = c.received_at "
	   "LEFT JOIN chain_certs l0 ON l0.result_id = c.id "
	   "AND l0.received_at = c.received_at AND l0.role = h.role "
	   "AND l0.host_position = h.position AND l0.position = 0 "
	   "LEFT JOIN certificates ce ON ce.sha256 = l0.cert_sha256 "
	   "WHERE c.completed ORDER BY h.role <> 'policy', 3, 1, h.position";

enum { H_AGENT, H_ROLE, H_HOST, H_SPKI, H_VERIFIED, H_TLS, H_STARTTLS };

static const char q_findings[] =
    "SELECT code, severity, subject, array_to_string(dissenters, ', '), "
    "count(*) OVER () FROM vantage_findings WHERE domain = $1 "
    "AND round = $2::bigint ORDER BY CASE severity WHEN 'error' THEN 0 "
    "WHEN 'warning' THEN 1 ELSE 2 END, code, subject "
    "LIMIT " STR(PLOT_MAX_FINDINGS);

/* ---- the document: a strbuf capped at PLOT_MAX_BYTES ---- */

/* strbuf_printf is only for numbers and constant markup: text from the
 * database goes through s_xml. */

/*
 * s as XML character data or attribute value, at most max characters
 * (then an ellipsis): the five markup characters as entities, and what
 * XML 1.0 forbids (control characters, U+FFFE, U+FFFF, bytes that are not
 * UTF-8) as U+FFFD, so the document stays well-formed whatever is stored.
 */
static void
s_xml(struct strbuf *b, const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, chars = 0;

	while (i < n) {
		uint32_t cp = 0;
		size_t len = wire_utf8_seq(u + i, n - i, &cp);

		if (chars++ == max) {
			strbuf_add(b, "\xe2\x80\xa6");
			return;
		}
		if (len == 0) {
			strbuf_add(b, "\xef\xbf\xbd");
			i++;
			continue;
		}
		switch (cp) {
		case '&':
			strbuf_add(b, "&amp;");
			break;
		case '<':
			strbuf_add(b, "&lt;");
			break;
		case '>':
			strbuf_add(b, "&gt;");
			break;
		case '"':
			strbuf_add(b, "&quot;");
			break;
		case '\'':
			strbuf_add(b, "&apos;");
			break;
		default:
			if ((cp < 0x20 && cp != '\t') || cp == 0xfffe ||
			    cp == 0xffff)
				strbuf_add(b, "\xef\xbf\xbd");
			else
				strbuf_addn(b, s + i, len);
		}
		i += len;
	}
}

/* ---- what the database says ---- */

struct host {
	const char *role, *name; /* into the PGresult they came from */
	int first, n;		 /* its rows in q_expiry */
};

struct mrow {
	char label[128];
	int hash;			    /* show the first 8 hex digits */
	const char *key[PLOT_MAX_VANTAGES]; /* NULL: not observed */
};

struct vantage {
	char label[160];
	int completed;
	char verdict[40];
};

struct plot {
	PGconn *conn;
	const char *domain;
	int64_t now;
	PGresult *expiry, *round, *vant, *hosts, *findings;
	struct host host[PLOT_MAX_HOSTS];
	size_t nhost, hosts_left;
	char round_s[24];
	struct vantage v[PLOT_MAX_VANTAGES];
	size_t nv;
	struct mrow row[PLOT_MAX_ROWS];
	size_t nrow, mhosts_left;
};

static PGresult *
s_query(struct plot *p, const char *what, const char *sql, int n,
    const char *const *params, char *err, size_t errlen)
{
	char w[96];

	snprintf(w, sizeof(w), "plot: %s", what);
	return pgconn_query_err(p->conn, w, sql, n, params, err, errlen);
}

static void
s_plot_free(struct plot *p)
{
	PQclear(p->expiry);
	PQclear(p->round);
	PQclear(p->vant);
	PQclear(p->hosts);
	PQclear(p->findings);
}

/* Groups q_expiry's rows by host, keeping the first PLOT_MAX_HOSTS. */
static void
s_hosts(struct plot *p)
{
	int n = PQntuples(p->expiry);

	for (int i = 0; i < n; i++) {
		const char *role = PQgetvalue(p->expiry, i, 0);
		const char *name = PQgetvalue(p->expiry, i, 1);
		struct host *h = p->nhost ? &p->host[p->nhost - 1] : NULL;

		if (h != NULL && strcmp(h->role, role) == 0 &&
		    strcmp(h->name, name) == 0) {
			h->n++;
			continue;
		}
		if (p->nhost == PLOT_MAX_HOSTS) {
			p->hosts_left++;
			while (
			    i + 1 < n &&
			    strcmp(PQgetvalue(p->expiry, i + 1, 0), role) ==
				0 &&
			    strcmp(PQgetvalue(p->expiry, i + 1, 1), name) == 0)
				i++;
			continue;
		}
		h = &p->host[p->nhost++];
		h->role = role;
		h->name = name;
		h->first = i;
		h->n = 1;
	}
}

/* Vantage labels as compare.c makes them: name, or name#id. */
static void
s_vantages(struct plot *p)
{
	PGresult *r = p->vant;

	p->nv = (size_t)PQntuples(r);
	for (size_t i = 0; i < p->nv; i++) {
		const char *name = PQgetvalue(r, (int)i, V_NAME);
		int dup = name[0] == '\0';
		struct vantage *v = &p->v[i];

		for (size_t j = 0; j < p->nv && !dup; j++)
			dup = j != i &&
			      strcmp(name, PQgetvalue(r, (int)j, V_NAME)) == 0;
		if (dup)
			snprintf(v->label, sizeof(v->label), "%s#%s",
			    name[0] ? name : "agent",
			    PQgetvalue(r, (int)i, V_AGENT));
		else
			snprintf(v->label, sizeof(v->label), "%s", name);
		v->completed =
		    strcmp(PQgetvalue(r, (int)i, V_COMPLETED), "t") == 0;
		if (!v->completed)
			snprintf(
			    v->verdict, sizeof(v->verdict), "not completed");
		else if (strcmp(PQgetvalue(r, (int)i, V_ERRORS), "0") == 0)
			snprintf(v->verdict, sizeof(v->verdict), "pass");
		else
			snprintf(v->verdict, sizeof(v->verdict),
			    "fail (%s errors)",
			    PQgetvalue(r, (int)i, V_ERRORS));
	}
}

static struct mrow *
s_row(struct plot *p, int hash, const char *fmt, const char *arg)
{
	struct mrow *m;

	if (p->nrow == PLOT_MAX_ROWS)
		return NULL;
	m = &p->row[p->nrow++];
	memset(m, 0, sizeof(*m));
	m->hash = hash;
	snprintf(m->label, sizeof(m->label), fmt, arg);
	return m;
}

static size_t
s_vantage_of(const struct plot *p, const char *agent)
{
	for (size_t i = 0; i < p->nv; i++)
		if (strcmp(PQgetvalue(p->vant, (int)i, V_AGENT), agent) == 0)
			return i;
	return p->nv;
}

/* The matrix rows: per-domain values, then two rows per host. */
static void
s_matrix(struct plot *p)
{
	static const struct {
		const char *label;
		int col, hash;
	} dom[] = {
	    {"STS id", V_STS, 0},
	    {"MX set", V_MXSET, 0},
	    {"policy sha256", V_BODY, 1},
	    {"policy mode", V_MODE, 0},
	};
	struct mrow *m;
	int n = PQntuples(p->hosts);

	for (size_t d = 0; d < sizeof(dom) / sizeof(dom[0]); d++) {
		m = s_row(p, dom[d].hash, "%s", dom[d].label);
		for (size_t i = 0; i < p->nv; i++)
			if (p->v[i].completed)
				m->key[i] =
				    PQgetisnull(p->vant, (int)i, dom[d].col)
					? "none"
					: PQgetvalue(
					      p->vant, (int)i, dom[d].col);
	}
	/* Rows come sorted by host (policy host first), then agent. */
	for (int r = 0; r < n;) {
		const char *role = PQgetvalue(p->hosts, r, H_ROLE);
		const char *host = PQgetvalue(p->hosts, r, H_HOST);
		struct mrow *spki, *verdict;
		int end = r;

		while (end < n &&
		       strcmp(PQgetvalue(p->hosts, end, H_ROLE), role) == 0 &&
		       strcmp(PQgetvalue(p->hosts, end, H_HOST), host) == 0)
			end++;
		if (p->nrow + 2 > PLOT_MAX_ROWS - 1) { /* keep the verdict */
			p->mhosts_left++;
			r = end;
			continue;
		}
		spki = s_row(p, 1, "leaf SPKI %s", host);
		verdict = s_row(p, 0, "verdict %s", host);
		for (; r < end; r++) {
			size_t i =
			    s_vantage_of(p, PQgetvalue(p->hosts, r, H_AGENT));
			int mx = strcmp(role, "mx") == 0;

			if (i == p->nv || verdict->key[i] != NULL)
				continue; /* first row of an agent wins */
			spki->key[i] = PQgetisnull(p->hosts, r, H_SPKI)
					   ? "no chain"
					   : PQgetvalue(p->hosts, r, H_SPKI);
			if (mx && strcmp(PQgetvalue(p->hosts, r, H_STARTTLS),
				      "t") != 0)
				verdict->key[i] = "no STARTTLS";
			else if (strcmp(PQgetvalue(p->hosts, r, H_TLS), "t") !=
				 0)
				verdict->key[i] = "no TLS";
			else if (strcmp(PQgetvalue(p->hosts, r, H_VERIFIED),
				     "t") == 0)
				verdict->key[i] = "verified";
			else
				verdict->key[i] = "failed";
		}
	}
	m = s_row(p, 0, "%s", "probe verdict");
	for (size_t i = 0; i < p->nv; i++)
		m->key[i] = p->v[i].verdict;
}

/* The agreement of a row: the key most vantages share, ties to the
 * smallest key (compare.c's rule); NULL when nobody observed it. */
static const char *
s_majority(const struct plot *p, const struct mrow *m, int *split)
{
	const char *best = NULL;
	size_t best_n = 0, obs = 0;

	for (size_t i = 0; i < p->nv; i++) {
		size_t count = 0;

		if (m->key[i] == NULL)
			continue;
		obs++;
		for (size_t j = 0; j < p->nv; j++)
			count += m->key[j] != NULL &&
				 strcmp(m->key[i], m->key[j]) == 0;
		if (count > best_n ||
		    (count == best_n && strcmp(m->key[i], best) < 0)) {
			best_n = count;
			best = m->key[i];
		}
	}
	*split = obs > 0 && best_n * 2 <= obs;
	return best;
}

static int
s_read(struct plot *p, int *unknown, char *err, size_t errlen)
{
	char bucket[24];
	const char *params[2] = {p->domain, bucket};
	PGresult *res;

	snprintf(bucket, sizeof(bucket), "%ld", (long)PLOT_BUCKET_S);
	if ((res = s_query(p, "domain", q_now, 1, params, err, errlen)) == NULL)
		return -1;
	p->now = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*unknown = strcmp(PQgetvalue(res, 0, 1), "t") != 0;
	PQclear(res);
	if (*unknown)
		return 0;
	if ((p->expiry = s_query(
		 p, "expiry", q_expiry, 2, params, err, errlen)) == NULL ||
	    (p->round = s_query(p, "round", q_round, 1, params, err, errlen)) ==
		NULL)
		return -1;
	s_hosts(p);
	if (PQntuples(p->round) == 0)
		return 0;
	snprintf(
	    p->round_s, sizeof(p->round_s), "%s", PQgetvalue(p->round, 0, 0));
	params[1] = p->round_s;
	if ((p->vant = s_query(
		 p, "vantages", q_vantages, 2, params, err, errlen)) == NULL ||
	    (p->hosts = s_query(p, "hosts", q_hosts, 2, params, err, errlen)) ==
		NULL ||
	    (p->findings = s_query(
		 p, "findings", q_findings, 2, params, err, errlen)) == NULL)
		return -1;
	s_vantages(p);
	s_matrix(p);
	return 0;
}

/* ---- drawing ---- */

static const char *const palette[PLOT_MAX_HOSTS] = {"#1f77b4", "#ff7f0e",
    "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#393b79", "#637939", "#843c39"};

struct axis {
	double t0, t1;	   /* x: unix time */
	double dmin, dmax; /* y: days left */
};

static double
s_x(const struct axis *a, double t)
{
	return CHART_X + (t - a->t0) / (a->t1 - a->t0) * CHART_W;
}

static double
s_y(const struct axis *a, double days)
{
	if (days < a->dmin)
		days = a->dmin;
	if (days > a->dmax)
		days = a->dmax;
	return CHART_Y + CHART_H -
	       (days - a->dmin) / (a->dmax - a->dmin) * CHART_H;
}

static double
s_days(const struct plot *p, int row)
{
	double t = (double)strtoll(PQgetvalue(p->expiry, row, 2), NULL, 10);
	double na = (double)strtoll(PQgetvalue(p->expiry, row, 3), NULL, 10);

	return (na - t) / 86400.0;
}

/* The y range: 0 to a little over the longest validity, at least 40 days
 * (so the thresholds show), at most 400; expired values down to -30. */
static void
s_axis(const struct plot *p, struct axis *a)
{
	double lo = 0, hi = 40;

	a->t1 = (double)p->now;
	a->t0 = a->t1 - PLOT_DAYS * 86400.0;
	for (size_t h = 0; h < p->nhost; h++)
		for (int i = 0; i < p->host[h].n; i++) {
			double d = s_days(p, p->host[h].first + i);

			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
	a->dmin = lo < -30 ? -30
		  : lo < 0 ? -10 * (double)(int)(-lo / 10 + 1)
			   : 0;
	a->dmax = hi > 400 ? 400 : 10 * (double)(int)(hi / 10 + 1);
}

static void
s_chart(struct strbuf *b, const struct plot *p)
{
	static const struct {
		int days;
		const char *colour;
	} thr[] = {{30, "#e6a700"}, {14, "#e65100"}, {7, "#c62828"}};
	struct axis a;
	double step;

	s_axis(p, &a);
	strbuf_printf(b,
	    "<g class=\"expiry\"><text x=\"%.0f\" y=\"%.0f\" "
	    "font-weight=\"bold\">Leaf certificate: days left, last %d "
	    "days</text>\n",
	    CHART_X, CHART_Y - 12, PLOT_DAYS);
	strbuf_printf(b,
	    "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
	    "fill=\"#fafafa\" stroke=\"#999\"/>\n",
	    CHART_X, CHART_Y, CHART_W, CHART_H);
	/* y ticks, about six of them */
	step = (a.dmax - a.dmin) / 6;
	step = step <= 5    ? 5
	       : step <= 10 ? 10
	       : step <= 25 ? 25
	       : step <= 50 ? 50
			    : 100;
	for (double d = step * (double)(int)(a.dmin / step); d <= a.dmax;
	     d += step) {
		if (d < a.dmin)
			continue;
		strbuf_printf(b,
		    "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
		    "stroke=\"#e0e0e0\"/><text x=\"%.0f\" y=\"%.1f\" "
		    "text-anchor=\"end\" fill=\"#555\">%.0f</text>\n",
		    CHART_X, s_y(&a, d), CHART_X + CHART_W, s_y(&a, d),
		    CHART_X - 6, s_y(&a, d) + 4, d);
	}
	/* x ticks every 15 days, dated */
	for (int k = 0; k <= PLOT_DAYS; k += 15) {
		time_t t = (time_t)(a.t0 + k * 86400.0);
		struct tm tm;
		char date[16] = "";

		if (gmtime_r(&t, &tm) != NULL)
			strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		strbuf_printf(b,
		    "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" "
		    "fill=\"#555\">%s</text>\n",
		    s_x(&a, (double)t), CHART_Y + CHART_H + 16, date);
	}
	for (size_t i = 0; i < sizeof(thr) / sizeof(thr[0]); i++)
		strbuf_printf(b,
		    "<g class=\"threshold\" data-days=\"%d\"><line x1=\"%.0f\" "
		    "y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-dasharray=\"6 4\"/><text x=\"%.0f\" y=\"%.1f\" "
		    "fill=\"%s\">%d days</text></g>\n",
		    thr[i].days, CHART_X, s_y(&a, thr[i].days),
		    CHART_X + CHART_W, s_y(&a, thr[i].days), thr[i].colour,
		    CHART_X + CHART_W + 4, s_y(&a, thr[i].days) + 4,
		    thr[i].colour, thr[i].days);
	if (a.dmin < 0)
		strbuf_printf(b,
		    "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
		    "stroke=\"#000\"/>\n",
		    CHART_X, s_y(&a, 0), CHART_X + CHART_W, s_y(&a, 0));
	if (p->nhost == 0)
		strbuf_printf(b,
		    "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" "
		    "fill=\"#555\">no certificate stored in %d days</text>\n",
		    CHART_X + CHART_W / 2, CHART_Y + CHART_H / 2, PLOT_DAYS);

	for (size_t h = 0; h < p->nhost; h++) {
		const struct host *hs = &p->host[h];
		int last = hs->first + hs->n - 1;

		strbuf_add(b, "<g class=\"host\" data-host=\"");
		s_xml(b, hs->name, PLOT_TITLE_CHARS);
		strbuf_printf(b, "\"><title>");
		s_xml(b, hs->role, 8);
		strbuf_add(b, " ");
		s_xml(b, hs->name, PLOT_TITLE_CHARS);
		strbuf_printf(b,
		    "</title>\n<polyline fill=\"none\" stroke=\"%s\" "
		    "stroke-width=\"2\" points=\"",
		    palette[h]);
		/* Straight lines between sparse points are right as long as
		 * the leaf stayed: days left fall linearly. */
		for (int i = hs->first; i <= last; i++)
			strbuf_printf(b, "%s%.1f,%.1f",
			    i > hs->first ? " " : "",
			    s_x(&a, (double)strtoll(
					PQgetvalue(p->expiry, i, 2), NULL, 10)),
			    s_y(&a, s_days(p, i)));
		strbuf_printf(b,
		    "\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
		    "fill=\"%s\"/></g>\n",
		    s_x(&a, (double)strtoll(
				PQgetvalue(p->expiry, last, 2), NULL, 10)),
		    s_y(&a, s_days(p, last)), palette[h]);
		/* legend */
		strbuf_printf(b,
		    "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" "
		    "fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">",
		    LEGEND_X, CHART_Y + 18.0 * (double)h, palette[h],
		    LEGEND_X + 18, CHART_Y + 18.0 * (double)h + 10);
		s_xml(b, hs->name, PLOT_LABEL_CHARS - 8);
		strbuf_printf(b, " (%s) %.0f d</text>\n",
		    strcmp(hs->role, "policy") == 0 ? "policy" : "mx",
		    s_days(p, last));
	}
	if (p->hosts_left > 0)
		strbuf_printf(b,
		    "<text x=\"%.0f\" y=\"%.0f\" fill=\"#555\">%zu more "
		    "host%s not shown</text>\n",
		    LEGEND_X, CHART_Y + 18.0 * (double)p->nhost + 10,
		    p->hosts_left, p->hosts_left == 1 ? "" : "s");
	strbuf_add(b, "</g>\n");
}

/* The text a cell shows: a hash's first 8 hex digits, else the value. */
static void
s_cell_text(struct strbuf *b, const struct mrow *m, const char *key)
{
	size_t n = strspn(key, "0123456789abcdef");

	if (m->hash && n >= 8 && key[n] == '\0')
		strbuf_addn(b, key, 8);
	else
		s_xml(b, key, PLOT_CELL_CHARS);
}

static void
s_matrix_draw(struct strbuf *b, const struct plot *p)
{
	double y = MATRIX_Y;

	strbuf_printf(b,
	    "<g class=\"matrix\"><text x=\"%.0f\" y=\"%.0f\" "
	    "font-weight=\"bold\">",
	    CHART_X, y - 12);
	if (p->nv == 0) {
		strbuf_add(b, "Vantage agreement: no compared round yet"
			      "</text></g>\n");
		return;
	}
	strbuf_printf(b, "Vantage agreement, round %s</text>\n", p->round_s);
	for (size_t i = 0; i < p->nv; i++) {
		strbuf_printf(b,
		    "<text class=\"vantage\" x=\"%.0f\" y=\"%.0f\" "
		    "text-anchor=\"middle\" font-weight=\"bold\">",
		    10 + LABEL_W + CELL_W * ((double)i + 0.5), y + 4);
		s_xml(b, p->v[i].label, PLOT_CELL_CHARS + 2);
		strbuf_add(b, "<title>");
		s_xml(b, p->v[i].label, PLOT_TITLE_CHARS);
		strbuf_add(b, "</title></text>\n");
	}
	y += 10;
	for (size_t r = 0; r < p->nrow; r++, y += ROW_H) {
		const struct mrow *m = &p->row[r];
		int split;
		const char *agree = s_majority(p, m, &split);

		strbuf_printf(b, "<text x=\"10\" y=\"%.0f\">", y + 15);
		s_xml(b, m->label, PLOT_LABEL_CHARS);
		strbuf_add(b, split ? " (split)</text>\n" : "</text>\n");
		for (size_t i = 0; i < p->nv; i++) {
			const char *key = m->key[i];
			const char *cls, *fill;

			if (!p->v[i].completed && r + 1 < p->nrow) {
				cls = "absent";
				fill = "#eeeeee";
				key = "not completed";
			} else if (key == NULL) {
				cls = "absent";
				fill = "#eeeeee";
				key = "not observed";
			} else if (strcmp(key, agree) == 0) {
				cls = "agree";
				fill = "#c8e6c9";
			} else {
				cls = "dissent";
				fill = "#ffcdd2";
			}
			strbuf_printf(b, "<g class=\"cell %s\"><title>", cls);
			s_xml(b, key, PLOT_TITLE_CHARS);
			strbuf_printf(b,
			    "</title><rect x=\"%.0f\" y=\"%.0f\" "
			    "width=\"%.0f\" height=\"%.0f\" fill=\"%s\" "
			    "stroke=\"#fff\"/><text x=\"%.0f\" y=\"%.0f\" "
			    "text-anchor=\"middle\" font-family=\"monospace\""
			    ">",
			    10 + LABEL_W + CELL_W * (double)i, y, CELL_W, ROW_H,
			    fill, 10 + LABEL_W + CELL_W * ((double)i + 0.5),
			    y + 15);
			if (strcmp(cls, "dissent") == 0)
				strbuf_add(b, "\xe2\x9c\x97 "); /* ballot x */
			s_cell_text(b, m, key);
			strbuf_add(b, "</text></g>\n");
		}
	}
	if (p->mhosts_left > 0)
		strbuf_printf(b,
		    "<text x=\"10\" y=\"%.0f\" fill=\"#555\">%zu more "
		    "host%s not shown</text>\n",
		    y + 15, p->mhosts_left, p->mhosts_left == 1 ? "" : "s");
	y += ROW_H + 10;
	for (int i = 0; i < PQntuples(p->findings); i++, y += 18) {
		strbuf_printf(
		    b, "<text class=\"finding\" x=\"10\" y=\"%.0f\">", y);
		s_xml(b, PQgetvalue(p->findings, i, 0), 40);
		strbuf_add(b, " ");
		s_xml(b, PQgetvalue(p->findings, i, 1), 10);
		strbuf_add(b, " ");
		s_xml(b, PQgetvalue(p->findings, i, 2), PLOT_LABEL_CHARS);
		strbuf_add(b, ": dissent ");
		s_xml(b, PQgetvalue(p->findings, i, 3), 2 * PLOT_LABEL_CHARS);
		strbuf_add(b, "</text>\n");
	}
	if (PQntuples(p->findings) > 0 &&
	    strtol(PQgetvalue(p->findings, 0, 4), NULL, 10) > PLOT_MAX_FINDINGS)
		strbuf_printf(b,
		    "<text x=\"10\" y=\"%.0f\" fill=\"#555\">and %ld more "
		    "findings</text>\n",
		    y,
		    strtol(PQgetvalue(p->findings, 0, 4), NULL, 10) -
			PLOT_MAX_FINDINGS);
	strbuf_add(b, "</g>\n");
}

static double
s_height(const struct plot *p)
{
	double rows = (double)p->nrow + (p->mhosts_left > 0);
	int nf = p->findings != NULL ? PQntuples(p->findings) : 0;

	return MATRIX_Y + 10 + ROW_H * (rows + 1) + 18.0 * (nf + 1) + 20;
}

static void
s_document(struct strbuf *b, const struct plot *p)
{
	double w = 10 + LABEL_W + CELL_W * (double)p->nv + 10;
	double h = s_height(p);
	time_t now = (time_t)p->now;
	struct tm tm;
	char when[32] = "";

	if (w < MIN_WIDTH)
		w = MIN_WIDTH;
	if (gmtime_r(&now, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	strbuf_printf(b,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
	    "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
	    "font-family=\"sans-serif\" font-size=\"12\">\n",
	    w, h, w, h);
	strbuf_add(b, "<title>");
	s_xml(b, p->domain, PLOT_TITLE_CHARS);
	strbuf_add(b,
	    "</title>\n<rect width=\"100%\" height=\"100%\" "
	    "fill=\"#fff\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\" "
	    "font-weight=\"bold\">");
	s_xml(b, p->domain, 80);
	strbuf_printf(b,
	    "</text><text x=\"%.0f\" y=\"22\" text-anchor=\"end\" "
	    "fill=\"#555\">%s</text>\n",
	    w - 10, when);
	s_chart(b, p);
	s_matrix_draw(b, p);
	strbuf_add(b, "</svg>\n");
}

int
plot_domain_svg(PGconn *conn, const char *domain, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct plot *p;
	struct strbuf b;
	PGresult *res;
	int unknown = 0, began = 0, rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (conn == NULL || domain == NULL || out == NULL || outlen == NULL) {
		errbuf_set(err, errlen, "plot: missing argument");
		return -1;
	}
	*out = NULL;
	*outlen = 0;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		errbuf_set(err, errlen, "plot: out of memory");
		return -1;
	}
	p->conn = conn;
	p->domain = domain;
	/* One snapshot, so the chart and the matrix agree. */
	if (PQtransactionStatus(conn) == PQTRANS_IDLE) {
		if ((res = s_query(p, "begin",
			 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
			 NULL, err, errlen)) == NULL)
			goto out;
		PQclear(res);
		began = 1;
		if ((res = s_query(p, "settings", q_settings, 0, NULL, err,
			 errlen)) == NULL)
			goto out;
		PQclear(res);
	}
	if (s_read(p, &unknown, err, errlen) == -1)
		goto out;
	if (unknown) {
		rc = 1;
		goto out;
	}
	strbuf_init(&b, PLOT_MAX_BYTES);
	s_document(&b, p);
	if ((*out = strbuf_steal(&b, outlen)) == NULL) {
		errbuf_set(err, errlen, "plot: %s",
		    strbuf_failed(&b) == STRBUF_FULL ? "document too large"
						     : "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (began)
		PQclear(PQexec(conn, rc == -1 ? "ROLLBACK" : "COMMIT"));
	s_plot_free(p);
	free(p);
	return rc;
}
