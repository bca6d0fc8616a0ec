/* store_pg.c -- stores agents' probe results in PostgreSQL, exactly once. */
#include "store_pg.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert_check.h"
#include "digest_set.h"
#include "log.h"

/*
 * Every value reaches the server as a parameter of a statement prepared
 * once per connection, or as COPY data; the only SQL sent as text are
 * BEGIN/COMMIT/ROLLBACK, the fixed COPY commands, the migration files
 * themselves and the two bootstrap queries about schema_migrations, which
 * cannot be prepared before that table exists (they still pass their
 * values as parameters).
 */

/* Serializes migrations between collectors sharing a database. */
#define MIGRATION_LOCK_KEY "7310593858020254067"
#define MIGRATION_MAX_SIZE (1024 * 1024)
#define PARAMS_MAX	   20

struct store {
	PGconn *conn;
	char *conninfo;
	int broken;	  /* the connection is lost: only reconnect helps */
	long bad_index;	  /* see store_bad_index */
	long ensured_day; /* last UTC day (days since the epoch) made */
	/* Certificates this store committed: the fast path skips them. */
	struct digest_set *stored;
	EVP_MD *sha256;	  /* fetched once: a fetch per digest costs more */
	char sqlstate[6]; /* of the last failed statement, "" if none */
	char err[512];
};

struct stmt {
	const char *name;
	const char *sql;
};

static const struct stmt stmts[] = {
    {"ping", "SELECT 1"},
    {"agent_upsert",
	"INSERT INTO agents (public_key, name, region) VALUES ($1, $2, $3) "
	"ON CONFLICT (public_key) DO UPDATE SET name = EXCLUDED.name, "
	"region = EXCLUDED.region, last_seen = now() RETURNING id"},
    {"agent_committed", "SELECT last_committed_seq FROM agents WHERE id = $1"},
    /* Serializes the batches and gaps of one agent between collectors. */
    {"agent_lock",
	"SELECT last_committed_seq FROM agents WHERE id = $1 FOR UPDATE"},
    {"agent_advance",
	"UPDATE agents SET last_committed_seq = "
	"mtastswatch_watermark(id, last_committed_seq), "
	"last_seen = greatest(last_seen, $2::timestamptz) WHERE id = $1 "
	"RETURNING last_committed_seq"},
    {"gap_insert",
	"INSERT INTO gaps (agent_id, first_seq, last_seq, reason, "
	"received_at) VALUES ($1, $2, $3, $4, $5) "
	"ON CONFLICT (agent_id, first_seq, last_seq) DO NOTHING RETURNING id"},
    {"gap_count",
	"UPDATE agents SET gaps_total = gaps_total + $2 WHERE id = $1"},
    {"seq_claim", "INSERT INTO result_seqs (agent_id, seq, received_at) "
		  "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING seq"},
    /*
     * The fast path's: the seqs of a batch above the watermark, and an id
     * for each new one.  After agent_lock, the watermark cannot move.  The
     * sequence's name is looked up once (an InitPlan), not per row.
     */
    {"seq_claim_many",
	"WITH c AS (INSERT INTO result_seqs (agent_id, seq, received_at) "
	"SELECT $1::bigint, q, $3::timestamptz FROM unnest($2::bigint[]) "
	"AS q WHERE q > (SELECT last_committed_seq FROM agents "
	"WHERE id = $1::bigint) ON CONFLICT DO NOTHING RETURNING seq) "
	"SELECT seq, nextval((SELECT pg_get_serial_sequence('results', "
	"'id'))::regclass) FROM c"},
    {"result_insert",
	"INSERT INTO results (agent_id, seq, domain, round, started_at, "
	"duration_ms, completed, resolver, vantage, received_at, "
	"error_count, warning_count, info_count) VALUES ($1, $2, $3, $4, "
	"$5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id"},
    {"cert_insert",
	"INSERT INTO certificates (sha256, spki_sha256, der, subject, "
	"issuer, serial, not_before, not_after, san, key_type, key_bits, "
	"sig_alg, aki, ski) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
	"$10, $11, $12, $13, $14) ON CONFLICT (sha256) DO NOTHING"},
    {"dns_insert",
	"INSERT INTO dns_observations (result_id, received_at, "
	"sts_present, sts_records, sts_id, sts_valid, tlsrpt_present, "
	"tlsrpt_records, tlsrpt_rua, tlsrpt_valid) VALUES ($1, $2, $3, $4, "
	"$5, $6, $7, $8, $9, $10)"},
    {"policy_insert",
	"INSERT INTO policy_observations (result_id, received_at, url, "
	"http_status, content_type, sha256, mode, mx, max_age, valid, raw) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"},
    {"host_insert",
	"INSERT INTO host_observations (result_id, received_at, role, "
	"position, host, preference, starttls, policy_match, addresses, ip, "
	"tls_ok, tls_version, cipher, verified, handshake_ms, ocsp, error) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
	"$14, $15, $16, $17)"},
    {"chain_insert",
	"INSERT INTO chain_certs (result_id, received_at, role, "
	"host_position, host, position, cert_sha256) VALUES ($1, $2, $3, "
	"$4, $5, $6, $7)"},
    {"finding_insert",
	"INSERT INTO findings (result_id, received_at, position, code, "
	"severity, subject, detail, rfc8460) VALUES ($1, $2, $3, $4, $5, $6, "
	"$7, $8)"},
    {"partitions_ensure",
	"SELECT mtastswatch_ensure_partitions($1::date, $2::integer)"},
    {"partitions_drop",
	"SELECT mtastswatch_drop_partitions_before($1::timestamptz)"},
    {"domain_readd",
	"UPDATE domains SET removed_at = NULL, added_at = now() "
	"WHERE name = lower(rtrim($1, '.')) AND removed_at IS NOT NULL "
	"RETURNING id"},
    {"domain_add", "INSERT INTO domains (name) VALUES (lower(rtrim($1, '.'))) "
		   "ON CONFLICT (name) DO NOTHING RETURNING id"},
    {"domain_remove",
	"UPDATE domains SET removed_at = now() "
	"WHERE name = lower(rtrim($1, '.')) AND removed_at IS NULL "
	"RETURNING id"},
    {"domain_list",
	"SELECT name, extract(epoch FROM added_at)::bigint, "
	"coalesce(extract(epoch FROM removed_at)::bigint, 0) FROM domains "
	"WHERE $1::boolean OR removed_at IS NULL ORDER BY name"},
};

/*
 * The parameters of one statement.  Values are text unless fmt is 1
 * (bytea, sent binary); a NULL value is SQL NULL.  Numbers are formatted
 * into num, arrays and timestamps into owned buffers.
 */
struct params {
	int n;
	int overflow; /* too many parameters or out of memory */
	const char *val[PARAMS_MAX];
	int len[PARAMS_MAX];
	int fmt[PARAMS_MAX];
	char num[PARAMS_MAX][40];
	char *owned[PARAMS_MAX];
	/*
	 * What each value was before it became text, for binary COPY
	 * (d_bin_row): its kind (K_*), the number (an integer, or a time in
	 * microseconds since 2000-01-01 UTC), an array's elements (borrowed).
	 */
	char kind[PARAMS_MAX];
	/* Set for binary COPY rows: the text forms an array or a number
	 * would take are not made (kept across p_free, row after row). */
	int binary;
	int64_t iv[PARAMS_MAX];
	char *const *atext[PARAMS_MAX];
	const ProtobufCBinaryData *abin[PARAMS_MAX];
	size_t an[PARAMS_MAX];
};

/* params.kind: the SQL NULL is kind 0. */
enum { K_NULL = 0, K_TEXT, K_INT, K_BOOL, K_BYTES, K_TIME, K_ARRAY };

static void
p_free(struct params *p)
{
	int binary = p->binary;

	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	memset(p, 0, sizeof(*p));
	p->binary = binary;
}

/* The next slot, or -1 when full. */
static int
p_slot(struct params *p)
{
	if (p->n >= PARAMS_MAX) {
		p->overflow = 1;
		return -1;
	}
	p->val[p->n] = NULL;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->owned[p->n] = NULL;
	p->kind[p->n] = K_NULL;
	return p->n++;
}

static void
p_null(struct params *p)
{
	(void)p_slot(p);
}

static void
p_text(struct params *p, const char *v)
{
	int i = p_slot(p);

	if (i != -1) {
		p->val[i] = v != NULL ? v : "";
		p->kind[i] = K_TEXT;
	}
}

/* An optional string: the empty string agents send for "none" is NULL. */
static void
p_opt(struct params *p, const char *v)
{
	int i = p_slot(p);

	if (i != -1 && v != NULL && v[0] != '\0') {
		p->val[i] = v;
		p->kind[i] = K_TEXT;
	}
}

/* Decimal, without snprintf: a batch formats tens of thousands. */
static void
p_i64(struct params *p, int64_t v)
{
	char tmp[24];
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	size_t n = 0, o = 0;
	int i = p_slot(p);

	if (i == -1)
		return;
	p->kind[i] = K_INT;
	p->iv[i] = v;
	if (p->binary)
		return;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		p->num[i][o++] = '-';
	while (n > 0)
		p->num[i][o++] = tmp[--n];
	p->num[i][o] = '\0';
	p->val[i] = p->num[i];
}

static void
p_bool(struct params *p, int v)
{
	p_text(p, v ? "t" : "f");
	if (p->n > 0 && !p->overflow) {
		p->kind[p->n - 1] = K_BOOL;
		p->iv[p->n - 1] = v != 0;
	}
}

/* bytea; with opt, zero bytes are NULL rather than an empty bytea. */
static void
p_bytes(struct params *p, const void *v, size_t len, int opt)
{
	int i = p_slot(p);

	if (i == -1 || (opt && len == 0))
		return;
	if (len > INT32_MAX) {
		p->overflow = 1;
		return;
	}
	p->val[i] = len > 0 ? v : "";
	p->len[i] = (int)len;
	p->fmt[i] = 1;
	p->kind[i] = K_BYTES;
}

/*
 * A UTC timestamp with microseconds, as timestamptz input.  Every row of
 * a batch carries the same received_at: the last one formatted is kept.
 */
static void
p_time(struct params *p, time_t sec, long usec)
{
	static _Thread_local time_t last_sec = -1;
	static _Thread_local long last_usec = -1;
	static _Thread_local char last[40];
	struct tm tm;
	int i = p_slot(p);
	size_t o;

	if (i == -1)
		return;
	if (sec != last_sec || usec != last_usec) {
		if (gmtime_r(&sec, &tm) == NULL) {
			p->overflow = 1;
			return;
		}
		o = strftime(last, sizeof(last), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(last + o, sizeof(last) - o, ".%06ld+00", usec);
		last_sec = sec;
		last_usec = usec;
	}
	memcpy(p->num[i], last, sizeof(last));
	p->val[i] = p->num[i];
	p->kind[i] = K_TIME;
	/* PostgreSQL's epoch is 2000-01-01 00:00:00 UTC. */
	p->iv[i] = ((int64_t)sec - INT64_C(946684800)) * 1000000 + usec;
}

/*
 * An array literal ("{...}") in an owned buffer, every element quoted.
 * Text elements escape '"' and '\'; bytea elements are "\\x" and hex.
 */
static void
p_array(struct params *p, char *const *text, const ProtobufCBinaryData *bin,
    size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t cap = 3, o = 0;
	char *buf;
	int i = p_slot(p);

	if (i == -1)
		return;
	p->kind[i] = K_ARRAY;
	p->atext[i] = text;
	p->abin[i] = bin;
	p->an[i] = n;
	if (p->binary)
		return;
	for (size_t k = 0; k < n; k++) {
		size_t elen = text != NULL
				  ? (text[k] != NULL ? 2 * strlen(text[k]) : 0)
				  : 2 * bin[k].len + 4;
		cap += elen + 3;
	}
	if ((buf = malloc(cap)) == NULL) {
		p->overflow = 1;
		return;
	}
	p->owned[i] = buf;
	buf[o++] = '{';
	for (size_t k = 0; k < n; k++) {
		if (k > 0)
			buf[o++] = ',';
		buf[o++] = '"';
		if (text != NULL) {
			for (const char *c = text[k] ? text[k] : ""; *c; c++) {
				if (*c == '"' || *c == '\\')
					buf[o++] = '\\';
				buf[o++] = *c;
			}
		} else {
			memcpy(buf + o, "\\\\x", 3);
			o += 3;
			for (size_t b = 0; b < bin[k].len; b++) {
				buf[o++] = hex[bin[k].data[b] >> 4];
				buf[o++] = hex[bin[k].data[b] & 15];
			}
		}
		buf[o++] = '"';
	}
	buf[o++] = '}';
	buf[o] = '\0';
	p->val[i] = buf;
}

static void
s_trim_nl(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* Notes a failed libpq call: the message, the SQLSTATE, a lost link. */
static void
s_fail(struct store *s, const char *what, const PGresult *res)
{
	const char *msg = res != NULL ? PQresultErrorMessage(res) : "";
	const char *state =
	    res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(s->conn);
	snprintf(s->err, sizeof(s->err), "%s: %s", what, msg);
	s_trim_nl(s->err);
	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", state ? state : "");
	if (PQstatus(s->conn) != CONNECTION_OK)
		s->broken = 1;
}

static int
s_check_link(struct store *s)
{
	if (s->broken || s->conn == NULL) {
		snprintf(s->err, sizeof(s->err),
		    "database connection lost; reconnect");
		return -1;
	}
	return 0;
}

/*
 * Runs prepared statement name with p's parameters (freed here, whatever
 * the outcome).  Returns the result, for the caller to PQclear, when its
 * status is PGRES_TUPLES_OK or PGRES_COMMAND_OK; otherwise NULL with
 * s->err set.
 */
static PGresult *
s_exec(struct store *s, const char *name, struct params *p)
{
	PGresult *res;
	ExecStatusType st;

	if (s_check_link(s) == -1) {
		p_free(p);
		return NULL;
	}
	if (p->overflow) {
		snprintf(s->err, sizeof(s->err), "%s: bad parameter", name);
		s->sqlstate[0] = '\0';
		p_free(p);
		return NULL;
	}
	res = PQexecPrepared(s->conn, name, p->n, p->val, p->len, p->fmt, 0);
	p_free(p);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	s_fail(s, name, res);
	PQclear(res);
	return NULL;
}

/* Runs fixed SQL without parameters (BEGIN, COMMIT, a migration). */
static int
s_exec_sql(struct store *s, const char *what, const char *sql)
{
	PGresult *res;
	ExecStatusType st;

	if (s_check_link(s) == -1)
		return -1;
	res = PQexec(s->conn, sql);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		PQclear(res);
		return 0;
	}
	s_fail(s, what, res);
	PQclear(res);
	return -1;
}

/* Rolls back after a failure, keeping the message of that failure. */
static void
s_rollback(struct store *s)
{
	PGresult *res;

	if (s->broken || s->conn == NULL)
		return;
	res = PQexec(s->conn, "ROLLBACK");
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQstatus(s->conn) != CONNECTION_OK)
		s->broken = 1;
	PQclear(res);
}

/*
 * Runs a statement that yields at most one row, an int64 in its first
 * column, stored in *out (may be NULL).  No row is an error unless found
 * is given, which then says whether there was one.
 */
static int
s_exec_i64(struct store *s, const char *name, struct params *p, int64_t *out,
    int *found)
{
	PGresult *res = s_exec(s, name, p);
	int rows;

	if (res == NULL)
		return -1;
	rows = PQntuples(res) > 0;
	if (rows && out != NULL)
		*out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (found != NULL)
		*found = rows;
	else if (!rows) {
		snprintf(s->err, sizeof(s->err), "%s: no row", name);
		return -1;
	}
	return 0;
}

static int
s_prepare(struct store *s)
{
	PGresult *res;

	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		res = PQprepare(s->conn, stmts[i].name, stmts[i].sql, 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			s_fail(s, stmts[i].name, res);
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

static int
s_connect(struct store *s)
{
	PQfinish(s->conn);
	s->conn = PQconnectdb(s->conninfo);
	s->broken = 1;
	if (s->conn == NULL) {
		snprintf(s->err, sizeof(s->err), "connect: out of memory");
		return -1;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(s->err, sizeof(s->err), "connect: %s",
		    PQerrorMessage(s->conn));
		s_trim_nl(s->err);
		return -1;
	}
	if (PQsetClientEncoding(s->conn, "UTF8") != 0) {
		snprintf(s->err, sizeof(s->err), "connect: client encoding");
		return -1;
	}
	s->broken = 0;
	return 0;
}

/* Migration files: "NNN_name.sql", NNN decimal digits. */
static int
s_migration_filter(const struct dirent *d)
{
	const char *n = d->d_name;
	size_t len = strlen(n), digits = strspn(n, "0123456789");

	return digits > 0 && digits < 10 && n[digits] == '_' && len > 4 &&
	       strcmp(n + len - 4, ".sql") == 0;
}

/* The whole file, NUL-terminated.  Calls malloc; the caller frees. */
static char *
s_read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(MIGRATION_MAX_SIZE + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return NULL;
	}
	len = fread(buf, 1, MIGRATION_MAX_SIZE + 1, f);
	if (ferror(f) || len > MIGRATION_MAX_SIZE) {
		snprintf(err, errlen, "%s: %s", path,
		    ferror(f) ? "read error" : "too large");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (strlen(buf) != len) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Applies one migration unless schema_migrations already lists it: one
 * transaction, holding the advisory lock, so that of several collectors
 * starting at once exactly one applies it and the others see it applied.
 */
static int
s_migrate_one(struct store *s, const char *dir, const char *file)
{
	const char *vals[2];
	char path[4096], version[16], *sql = NULL;
	PGresult *res;
	int applied = 0;

	snprintf(version, sizeof(version), "%ld", strtol(file, NULL, 10));
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path)) {
		snprintf(s->err, sizeof(s->err), "%s: path too long", file);
		return -1;
	}
	if ((sql = s_read_file(path, s->err, sizeof(s->err))) == NULL)
		return -1;
	if (s_exec_sql(s, "begin", "BEGIN") == -1)
		goto fail;
	if (s_exec_sql(s, "migration lock",
		"SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")") == -1)
		goto rollback;
	vals[0] = version;
	vals[1] = file;
	res = PQexecParams(s->conn,
	    "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
	    NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		s_fail(s, "migration check", res);
		PQclear(res);
		goto rollback;
	}
	applied = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (applied) {
		res = PQexecParams(s->conn,
		    "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
		    NULL, vals, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			s_fail(s, "migration check", res);
			PQclear(res);
			goto rollback;
		}
		applied = PQntuples(res) > 0;
		PQclear(res);
	}
	if (!applied) {
		if (s_exec_sql(s, file, sql) == -1)
			goto rollback;
		res = PQexecParams(s->conn,
		    "INSERT INTO schema_migrations (version, name) "
		    "VALUES ($1, $2)",
		    2, NULL, vals, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			s_fail(s, "migration record", res);
			PQclear(res);
			goto rollback;
		}
		PQclear(res);
	}
	if (s_exec_sql(s, "commit", "COMMIT") == -1)
		goto fail;
	if (!applied)
		log_info("store: migration=%s applied", file);
	free(sql);
	return 0;
rollback:
	s_rollback(s);
fail:
	free(sql);
	return -1;
}

static int
s_migrate(struct store *s, const char *dir)
{
	struct dirent **names = NULL;
	int n, rc = 0;
	long prev = -1;

	if ((n = scandir(dir, &names, s_migration_filter, alphasort)) == -1) {
		snprintf(
		    s->err, sizeof(s->err), "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (n == 0) {
		snprintf(s->err, sizeof(s->err), "%s: no migrations", dir);
		rc = -1;
	}
	/* alphasort orders "010_" after "009_" only at equal widths. */
	for (int i = 1; i < n && rc == 0; i++) {
		if (strspn(names[i]->d_name, "0123456789") !=
		    strspn(names[0]->d_name, "0123456789")) {
			snprintf(s->err, sizeof(s->err),
			    "%s: migration numbers differ in width", dir);
			rc = -1;
		}
	}
	for (int i = 0; i < n && rc == 0; i++) {
		long v = strtol(names[i]->d_name, NULL, 10);

		if (v == prev) {
			snprintf(s->err, sizeof(s->err),
			    "%s: two migrations numbered %ld", dir, v);
			rc = -1;
			break;
		}
		prev = v;
		rc = s_migrate_one(s, dir, names[i]->d_name);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

struct store *
store_open(
    const char *conninfo, const char *migrations_dir, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->bad_index = -1;
	s->ensured_day = -1;
	if ((s->conninfo = strdup(conninfo)) == NULL ||
	    (s->stored = digest_set_new(STORE_CERT_CACHE)) == NULL ||
	    (s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		store_close(&s);
		return NULL;
	}
	if (s_connect(s) == -1 || s_migrate(s, migrations_dir) == -1 ||
	    s_prepare(s) == -1 ||
	    store_ensure_partitions(s, time(NULL)) == -1) {
		snprintf(err, errlen, "%s", s->err);
		store_close(&s);
		return NULL;
	}
	return s;
}

void
store_close(struct store **s)
{
	if (s == NULL || *s == NULL)
		return;
	PQfinish((*s)->conn);
	digest_set_free(&(*s)->stored);
	EVP_MD_free((*s)->sha256);
	free((*s)->conninfo);
	free(*s);
	*s = NULL;
}

const char *
store_error(const struct store *s)
{
	return s->err;
}

long
store_bad_index(const struct store *s)
{
	return s->bad_index;
}

int
store_broken(const struct store *s)
{
	return s->broken;
}

int
store_ping(struct store *s)
{
	struct params p = {0};
	PGresult *res = s_exec(s, "ping", &p);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_reconnect(struct store *s)
{
	/* It may be another server now, restored from an older backup. */
	digest_set_clear(s->stored);
	if (s_connect(s) == -1)
		return -1;
	if (s_prepare(s) == -1) {
		s->broken = 1;
		return -1;
	}
	log_info("store: reconnected");
	return 0;
}

int
store_agent_upsert(struct store *s, const char *public_key, const char *name,
    const char *region, int64_t *agent_id)
{
	struct params p = {0};

	if (public_key == NULL || public_key[0] == '\0') {
		snprintf(s->err, sizeof(s->err), "agent_upsert: empty key");
		return -1;
	}
	p_text(&p, public_key);
	p_text(&p, name);
	p_text(&p, region);
	return s_exec_i64(s, "agent_upsert", &p, agent_id, NULL);
}

int
store_agent_committed(struct store *s, int64_t agent_id, uint64_t *seq)
{
	struct params p = {0};
	int64_t v;

	p_i64(&p, agent_id);
	if (s_exec_i64(s, "agent_committed", &p, &v, NULL) == -1)
		return -1;
	*seq = (uint64_t)v;
	return 0;
}

/* Locks the agent's row for this transaction; -1 if there is none. */
static int
s_agent_lock(struct store *s, int64_t agent_id)
{
	struct params p = {0};
	int found;

	p_i64(&p, agent_id);
	if (s_exec_i64(s, "agent_lock", &p, NULL, &found) == -1)
		return -1;
	if (!found) {
		snprintf(
		    s->err, sizeof(s->err), "no agent id=%" PRId64, agent_id);
		return -1;
	}
	return 0;
}

static int
s_agent_advance(struct store *s, int64_t agent_id, const struct timespec *t,
    uint64_t *committed_seq)
{
	struct params p = {0};
	int64_t v;

	p_i64(&p, agent_id);
	p_time(&p, t->tv_sec, t->tv_nsec / 1000);
	if (s_exec_i64(s, "agent_advance", &p, &v, NULL) == -1)
		return -1;
	*committed_seq = (uint64_t)v;
	return 0;
}

/*
 * A certificate of a result, from the DER the agent sent.  The fast path
 * keeps every certificate of a batch in one array: leader is the index of
 * the first one with the same digest (which alone is parsed and written),
 * cached says the store wrote it before, needed that a result written in
 * this batch carries it.
 */
struct cert {
	const ProtobufCBinaryData *der;
	unsigned char sha256[32];
	X509 *x;
	size_t leader;
	int cached;
	int needed;
};

static void
s_certs_free(struct cert *certs, size_t n)
{
	for (size_t i = 0; certs != NULL && i < n; i++)
		X509_free(certs[i].x);
	free(certs);
}

/* The SHA-256 of c's DER; -1 when it has none or no digest. */
static int
s_cert_digest(
    const struct store *s, struct cert *c, const ProtobufCBinaryData *der)
{
	c->der = der;
	if (der->len == 0 || der->len > LONG_MAX)
		return -1;
	return EVP_Digest(
		   der->data, der->len, c->sha256, NULL, s->sha256, NULL) == 1
		   ? 0
		   : -1;
}

/* Parses c's DER, all of it; -1 when it does not. */
static int
s_cert_parse(struct cert *c)
{
	const unsigned char *q = c->der->data;

	c->x = d2i_X509(NULL, &q, (long)c->der->len);
	return c->x != NULL && q == c->der->data + c->der->len ? 0 : -1;
}

static void
s_cert_bad(struct store *s, const Mtastswatch__V1__ProbeResult *r, size_t i)
{
	snprintf(s->err, sizeof(s->err),
	    "seq %" PRIu64 ": certificate %zu does not parse", r->seq, i);
}

/* Parses every certificate of r; NULL with s->err set if one is bad. */
static struct cert *
s_certs_load(struct store *s, const Mtastswatch__V1__ProbeResult *r)
{
	struct cert *certs = calloc(r->n_certificates + 1, sizeof(*certs));

	if (certs == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < r->n_certificates; i++) {
		if (s_cert_digest(s, &certs[i], &r->certificates[i]->der) ==
			-1 ||
		    s_cert_parse(&certs[i]) == -1) {
			s_cert_bad(s, r, i);
			s_certs_free(certs, i + 1);
			return NULL;
		}
	}
	return certs;
}

static int
s_cert_known(const struct cert *certs, size_t n, const ProtobufCBinaryData *h)
{
	if (h->len != 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (memcmp(certs[i].sha256, h->data, 32) == 0)
			return 1;
	return 0;
}

static int
s_hex_bytes(const char *hex, unsigned char *out, size_t outlen)
{
	for (size_t i = 0; i < outlen; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (unsigned char)b;
	}
	return 0;
}

static int
s_exec_void(struct store *s, const char *name, struct params *p)
{
	PGresult *res = s_exec(s, name, p);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

struct pipe;
static int s_pipe_send(
    struct store *s, struct pipe *pp, const char *name, struct params *p);

/* Writes c: queued on pp, or at once when pp is NULL.  0 or -1. */
static int
s_cert_insert(struct store *s, const struct cert *c, struct pipe *pp)
{
	int rc;
	struct params p = {0};
	struct cert_info info;
	unsigned char spki[32];
	const ASN1_OCTET_STRING *aki, *ski;

	if (cert_info_load(c->x, &info) == -1 ||
	    s_hex_bytes(info.spki_sha256, spki, sizeof(spki)) == -1) {
		cert_info_free(&info);
		snprintf(s->err, sizeof(s->err), "certificate: cannot load");
		return -1;
	}
	/* Both are NULL when the extensions are absent or malformed. */
	aki = X509_get0_authority_key_id(c->x);
	ski = X509_get0_subject_key_id(c->x);
	p_bytes(&p, c->sha256, sizeof(c->sha256), 0);
	p_bytes(&p, spki, sizeof(spki), 0);
	p_bytes(&p, c->der->data, c->der->len, 0);
	p_text(&p, info.subject);
	p_text(&p, info.issuer);
	p_text(&p, info.serial);
	if (info.not_before != 0)
		p_time(&p, info.not_before, 0);
	else
		p_null(&p);
	if (info.not_after != 0)
		p_time(&p, info.not_after, 0);
	else
		p_null(&p);
	p_array(&p, info.san, NULL, info.n_san);
	p_text(&p, info.key_type);
	p_i64(&p, info.key_bits);
	p_text(&p, info.sig_alg);
	if (aki != NULL)
		p_bytes(&p, ASN1_STRING_get0_data(aki),
		    (size_t)ASN1_STRING_length(aki), 1);
	else
		p_null(&p);
	if (ski != NULL)
		p_bytes(&p, ASN1_STRING_get0_data(ski),
		    (size_t)ASN1_STRING_length(ski), 1);
	else
		p_null(&p);
	/* Both send the values before info is freed. */
	if (pp != NULL)
		rc = s_pipe_send(s, pp, "cert_insert", &p);
	else
		rc = s_exec_void(s, "cert_insert", &p);
	cert_info_free(&info);
	return rc;
}

/*
 * The rows of a result.  Each p_*_row fills p with the values of one row,
 * in the column order of the statement of the same name and of the COPY
 * of the same table, so that both ways of writing store the same rows.
 */

static const char *
s_severity(Mtastswatch__V1__Severity sev)
{
	switch (sev) {
	case MTASTSWATCH__V1__SEVERITY__SEVERITY_INFO:
		return "info";
	case MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING:
		return "warning";
	case MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR:
		return "error";
	default:
		return "unspecified";
	}
}

/* The start time, or NULL when the agent's clock gave 0 or nonsense. */
static void
p_started(struct params *p, int64_t ms)
{
	/* Up to the year 9999, which every timestamp parser accepts. */
	if (ms <= 0 || ms > INT64_C(253402300799999)) {
		p_null(p);
		return;
	}
	p_time(p, (time_t)(ms / 1000), (long)(ms % 1000) * 1000);
}

/* results, without the id (RETURNING id gives it, or the COPY has it). */
static void
p_result_row(struct params *p, int64_t agent_id,
    const Mtastswatch__V1__ProbeResult *r, const struct timespec *t)
{
	int nsev[4] = {0};

	for (size_t i = 0; i < r->n_findings; i++) {
		unsigned int sev = (unsigned int)r->findings[i]->severity;

		nsev[sev < 4 ? sev : 0]++;
	}
	p_i64(p, agent_id);
	p_i64(p, (int64_t)r->seq);
	p_text(p, r->domain);
	p_i64(p, (int64_t)r->round);
	p_started(p, r->started_at_ms);
	p_i64(p, r->duration_ms);
	p_bool(p, r->completed);
	p_opt(p, r->resolver);
	p_opt(p, r->vantage);
	p_time(p, t->tv_sec, t->tv_nsec / 1000);
	p_i64(p, nsev[MTASTSWATCH__V1__SEVERITY__SEVERITY_ERROR]);
	p_i64(p, nsev[MTASTSWATCH__V1__SEVERITY__SEVERITY_WARNING]);
	p_i64(p, nsev[MTASTSWATCH__V1__SEVERITY__SEVERITY_INFO]);
}

/* The first values of every row hanging off a result. */
static void
p_result_key(struct params *p, int64_t result_id, const struct timespec *t)
{
	p_i64(p, result_id);
	p_time(p, t->tv_sec, t->tv_nsec / 1000);
}

/* dns_observations; 0 (p untouched) when r has no row there. */
static int
p_dns_row(struct params *p, int64_t id, const struct timespec *t,
    const Mtastswatch__V1__ProbeResult *r)
{
	const Mtastswatch__V1__StsTxt *sts = r->sts_txt;
	const Mtastswatch__V1__TlsRpt *rpt = r->tlsrpt;

	if (sts == NULL && rpt == NULL)
		return 0;
	p_result_key(p, id, t);
	p_bool(p, sts != NULL);
	if (sts != NULL) {
		p_array(p, NULL, sts->records, sts->n_records);
		p_opt(p, sts->id);
		p_bool(p, sts->valid);
	} else {
		p_null(p);
		p_null(p);
		p_null(p);
	}
	p_bool(p, rpt != NULL);
	if (rpt != NULL) {
		p_array(p, NULL, rpt->records, rpt->n_records);
		p_array(p, rpt->rua, NULL, rpt->n_rua);
		p_bool(p, rpt->valid);
	} else {
		p_null(p);
		p_null(p);
		p_null(p);
	}
	return 1;
}

/* policy_observations; 0 when r has no policy. */
static int
p_policy_row(struct params *p, int64_t id, const struct timespec *t,
    const Mtastswatch__V1__Policy *pol)
{
	if (pol == NULL)
		return 0;
	p_result_key(p, id, t);
	p_opt(p, pol->url);
	p_i64(p, pol->http_status);
	p_opt(p, pol->content_type);
	p_bytes(p, pol->sha256.data, pol->sha256.len, 1);
	p_opt(p, pol->mode);
	p_array(p, pol->mx, NULL, pol->n_mx);
	p_i64(p, pol->max_age);
	p_bool(p, pol->valid);
	p_bytes(p, pol->raw.data, pol->raw.len, 1);
	return 1;
}

/* host_observations: one host; mx is NULL for the policy host. */
static void
p_host_row(struct params *p, int64_t id, const struct timespec *t,
    const Mtastswatch__V1__HostObservation *h,
    const Mtastswatch__V1__MxObservation *mx, size_t position)
{
	p_result_key(p, id, t);
	p_text(p, mx != NULL ? "mx" : "policy");
	p_i64(p, (int64_t)position);
	p_text(p, h->host);
	if (mx != NULL) {
		p_i64(p, mx->preference);
		p_bool(p, mx->starttls);
		p_i64(p, mx->policy_match);
	} else {
		p_null(p);
		p_null(p);
		p_null(p);
	}
	p_array(p, h->addresses, NULL, h->n_addresses);
	p_opt(p, h->ip);
	p_bool(p, h->tls_ok);
	p_opt(p, h->tls_version);
	p_opt(p, h->cipher);
	p_bool(p, h->verified);
	p_i64(p, h->handshake_ms);
	p_opt(p, h->ocsp);
	p_opt(p, h->error);
}

/* chain_certs: certificate i of h's chain. */
static void
p_chain_row(struct params *p, int64_t id, const struct timespec *t,
    const Mtastswatch__V1__HostObservation *h, int is_mx, size_t position,
    size_t i)
{
	p_result_key(p, id, t);
	p_text(p, is_mx ? "mx" : "policy");
	p_i64(p, (int64_t)position);
	p_text(p, h->host);
	p_i64(p, (int64_t)i);
	p_bytes(p, h->chain_sha256[i].data, h->chain_sha256[i].len, 0);
}

/* findings: finding i of r. */
static void
p_finding_row(struct params *p, int64_t id, const struct timespec *t,
    const Mtastswatch__V1__Finding *f, size_t i)
{
	p_result_key(p, id, t);
	p_i64(p, (int64_t)i);
	p_text(p, f->code);
	p_text(p, s_severity(f->severity));
	p_opt(p, f->subject);
	p_opt(p, f->detail);
	p_opt(p, f->rfc8460);
}

/* Checks what the database would not: 0, or -1 with s->err set. */
static int
s_validate(struct store *s, const Mtastswatch__V1__ProbeResult *r,
    const struct cert *certs)
{
	const Mtastswatch__V1__HostObservation *h;

	if (r->seq == 0 || r->seq > INT64_MAX || r->round > INT64_MAX) {
		snprintf(s->err, sizeof(s->err),
		    "seq %" PRIu64 " round %" PRIu64 ": out of range", r->seq,
		    r->round);
		return -1;
	}
	if (r->domain == NULL || r->domain[0] == '\0') {
		snprintf(s->err, sizeof(s->err), "seq %" PRIu64 ": no domain",
		    r->seq);
		return -1;
	}
	for (size_t m = 0; m <= r->n_mx; m++) {
		if (m < r->n_mx)
			h = r->mx[m]->host;
		else
			h = r->policy_host;
		if (h == NULL && m < r->n_mx) {
			snprintf(s->err, sizeof(s->err),
			    "seq %" PRIu64 ": mx %zu has no host", r->seq, m);
			return -1;
		}
		for (size_t i = 0; h != NULL && i < h->n_chain_sha256; i++) {
			if (!s_cert_known(certs, r->n_certificates,
				&h->chain_sha256[i])) {
				snprintf(s->err, sizeof(s->err),
				    "seq %" PRIu64 ": chain of %s names a "
				    "certificate not sent",
				    r->seq, h->host);
				return -1;
			}
		}
	}
	return 0;
}

/*
 * The slow path: one statement per row, each its own round trip.  It is
 * what pins down the result the database refuses (store_bad_index), so the
 * fast path hands it every batch that failed for a reason that may be one
 * result's.
 *
 * Stores one result unless it is already stored: 0 (stored or skipped)
 * or -1.  Inside the batch transaction, with the agent's row locked.
 */
static int
s_result_store(struct store *s, int64_t agent_id,
    const Mtastswatch__V1__ProbeResult *r, const struct timespec *t,
    uint64_t watermark)
{
	struct params p = {0};
	struct cert *certs;
	int64_t id;
	int fresh, rc = -1;

	if (r->seq != 0 && r->seq <= watermark)
		return 0;
	if ((certs = s_certs_load(s, r)) == NULL)
		return -1;
	if (s_validate(s, r, certs) == -1)
		goto out;
	p_i64(&p, agent_id);
	p_i64(&p, (int64_t)r->seq);
	p_time(&p, t->tv_sec, t->tv_nsec / 1000);
	if (s_exec_i64(s, "seq_claim", &p, NULL, &fresh) == -1)
		goto out;
	if (!fresh) {
		rc = 0;
		goto out;
	}
	p_result_row(&p, agent_id, r, t);
	if (s_exec_i64(s, "result_insert", &p, &id, NULL) == -1)
		goto out;
	for (size_t i = 0; i < r->n_certificates; i++)
		if (s_cert_insert(s, &certs[i], NULL) == -1)
			goto out;
	if (p_dns_row(&p, id, t, r) && s_exec_void(s, "dns_insert", &p) == -1)
		goto out;
	if (p_policy_row(&p, id, t, r->policy) &&
	    s_exec_void(s, "policy_insert", &p) == -1)
		goto out;
	for (size_t m = 0; m <= r->n_mx; m++) {
		const Mtastswatch__V1__MxObservation *mx =
		    m > 0 ? r->mx[m - 1] : NULL;
		const Mtastswatch__V1__HostObservation *h =
		    mx != NULL ? mx->host : r->policy_host;
		size_t pos = m > 0 ? m - 1 : 0;

		if (h == NULL)
			continue;
		p_host_row(&p, id, t, h, mx, pos);
		if (s_exec_void(s, "host_insert", &p) == -1)
			goto out;
		for (size_t i = 0; i < h->n_chain_sha256; i++) {
			p_chain_row(&p, id, t, h, mx != NULL, pos, i);
			if (s_exec_void(s, "chain_insert", &p) == -1)
				goto out;
		}
	}
	for (size_t i = 0; i < r->n_findings; i++) {
		p_finding_row(&p, id, t, r->findings[i], i);
		if (s_exec_void(s, "finding_insert", &p) == -1)
			goto out;
	}
	rc = 0;
out:
	s_certs_free(certs, r->n_certificates);
	return rc;
}

/* Failures of the transaction or the link, not of what was stored. */
static int
s_transient(const struct store *s)
{
	return s->broken || strncmp(s->sqlstate, "40", 2) == 0 ||
	       strncmp(s->sqlstate, "08", 2) == 0 ||
	       strncmp(s->sqlstate, "57", 2) == 0 ||
	       strncmp(s->sqlstate, "53", 2) == 0;
}

static int
s_batch_slow(struct store *s, int64_t agent_id,
    Mtastswatch__V1__ProbeResult *const *results, size_t n,
    const struct timespec *received, uint64_t *committed_seq)
{
	int64_t watermark;
	struct params p = {0};

	if (s_exec_sql(s, "begin", "BEGIN") == -1)
		return -1;
	p_i64(&p, agent_id);
	if (s_exec_i64(s, "agent_lock", &p, &watermark, NULL) == -1)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (s_result_store(s, agent_id, results[i], received,
			(uint64_t)watermark) == -1) {
			if (!s_transient(s))
				s->bad_index = (long)i;
			goto fail;
		}
	}
	if (s_agent_advance(s, agent_id, received, committed_seq) == -1)
		goto fail;
	if (s_exec_sql(s, "commit", "COMMIT") == -1) {
		s->bad_index = -1;
		return -1;
	}
	return 0;
fail:
	s_rollback(s);
	return -1;
}

/*
 * The fast path.  A batch is a handful of round trips whatever its size:
 * BEGIN, the agent's lock and the claim of every seq in one pipeline; the
 * certificates the store has not written, in one more; one COPY per table
 * (the server does what psql's \copy does), all sent as one query; the
 * watermark and COMMIT in a last pipeline.  While the server works on one
 * table's rows, the collector formats the next table's.
 */

/* COPY data formatted ahead of the server, and sent, in pieces this big. */
#define COPY_CHUNK (256 * 1024)
/* Statements in one pipeline (bounds the certificate inserts per trip). */
#define PIPE_MAX 64

/* A growable text buffer, for COPY data and array literals. */
struct dbuf {
	char *d;
	size_t len, cap;
	int oom;
};

/* Room for more bytes and a NUL; sets oom when there is none. */
static int
d_room(struct dbuf *b, size_t more)
{
	size_t cap;
	char *d;

	if (b->oom)
		return -1;
	if (more > SIZE_MAX / 4 - b->len) {
		b->oom = 1;
		return -1;
	}
	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap > 0 ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	if ((d = realloc(b->d, cap)) == NULL) {
		b->oom = 1;
		return -1;
	}
	b->d = d;
	b->cap = cap;
	return 0;
}

static void
d_put(struct dbuf *b, const char *v, size_t n)
{
	if (d_room(b, n) == -1)
		return;
	memcpy(b->d + b->len, v, n);
	b->len += n;
	b->d[b->len] = '\0';
}

static void
d_be(struct dbuf *b, uint64_t v, int bytes)
{
	char o[8];

	for (int k = bytes - 1; k >= 0; k--) {
		o[k] = (char)(v & 0xff);
		v >>= 8;
	}
	d_put(b, o, (size_t)bytes);
}

/* A value's length word, refusing what a 32-bit length cannot say. */
static int
d_len(struct dbuf *b, size_t len)
{
	if (len > INT32_MAX)
		return -1;
	d_be(b, len, 4);
	return 0;
}

/* One array in the binary form array_recv reads; 0 or -1. */
static int
d_bin_array(struct dbuf *b, const struct params *p, int i, int text)
{
	/* pg_type OIDs of text and bytea, fixed since PostgreSQL 7. */
	const uint32_t oid = text ? 25 : 17;
	size_t n = p->an[i], body = n > 0 ? 20 : 12;

	/* protobuf-c leaves an empty repeated field's array NULL. */
	if (n > INT32_MAX ||
	    (n > 0 && (text ? p->atext[i] == NULL : p->abin[i] == NULL)))
		return -1;
	for (size_t k = 0; k < n; k++) {
		size_t el = p->atext[i] != NULL
				? (p->atext[i][k] ? strlen(p->atext[i][k]) : 0)
				: p->abin[i][k].len;
		if (el > INT32_MAX || body > INT32_MAX - 4 - el)
			return -1;
		body += 4 + el;
	}
	d_be(b, body, 4);
	d_be(b, n > 0 ? 1 : 0, 4); /* dimensions */
	d_be(b, 0, 4);		   /* no NULL elements */
	d_be(b, oid, 4);
	if (n > 0) {
		d_be(b, n, 4); /* size */
		d_be(b, 1, 4); /* lower bound */
	}
	for (size_t k = 0; k < n; k++) {
		if (p->atext[i] != NULL) {
			const char *t = p->atext[i][k] ? p->atext[i][k] : "";
			size_t el = strlen(t);

			d_be(b, el, 4);
			d_put(b, t, el);
		} else {
			d_be(b, p->abin[i][k].len, 4);
			d_put(b, (const char *)p->abin[i][k].data,
			    p->abin[i][k].len);
		}
	}
	return 0;
}

/*
 * Appends p's values as one tuple of binary COPY.  types has a letter per
 * column, the column's exact type, since binary input is not converted:
 * q bigint, i integer, h smallint, b boolean, t text, x bytea,
 * T timestamptz, a text[], A bytea[].  -1 when a value does not fit its
 * column (a bug, or a number out of range).
 */
static int
d_bin_row(struct dbuf *b, const struct params *p, const char *types)
{
	if ((int)strlen(types) != p->n)
		return -1;
	d_be(b, (uint64_t)p->n, 2);
	for (int i = 0; i < p->n; i++) {
		int64_t v = p->iv[i];
		char k = p->kind[i];
		char t = types[i];

		if (k == K_NULL) {
			d_be(b, UINT32_MAX, 4); /* -1: NULL */
			continue;
		}
		switch (t) {
		/* Integers: big-endian two's complement, the column's width. */
		case 'q':
		case 'i':
		case 'h': {
			int w = t == 'q' ? 8 : t == 'i' ? 4 : 2;
			int64_t max = INT64_MAX >> (64 - 8 * w);

			if (k != K_INT || v > max || v < -max - 1)
				return -1;
			d_be(b, (uint64_t)w, 4);
			d_be(b, (uint64_t)v, w);
			break;
		}
		case 'b':
			if (k != K_BOOL)
				return -1;
			d_be(b, 1, 4);
			d_put(b, v ? "\1" : "\0", 1);
			break;
		case 'T':
			if (k != K_TIME)
				return -1;
			d_be(b, 8, 4);
			d_be(b, (uint64_t)v, 8);
			break;
		case 't':
		case 'x': {
			size_t len = k == K_BYTES ? (size_t)p->len[i]
						  : strlen(p->val[i]);

			if ((k != K_TEXT || t != 't') &&
			    (k != K_BYTES || t != 'x'))
				return -1;
			if (d_len(b, len) == -1)
				return -1;
			d_put(b, p->val[i], len);
			break;
		}
		case 'a':
		case 'A':
			if (k != K_ARRAY ||
			    d_bin_array(b, p, i, t == 'a') == -1)
				return -1;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/*
 * Pipeline mode: statements queued with s_pipe_sql/s_pipe_send go out
 * together and s_pipe_end reads every answer after one sync, so they cost
 * one round trip.  The answers of the first nkeep statements are kept for
 * the caller (NULL for the others, or when a statement failed).
 */
struct pipe {
	int n;
	int failed; /* the first statement that failed, or -1 */
	const char *what[PIPE_MAX];
};

static int
s_pipe_begin(struct store *s, struct pipe *pp)
{
	pp->n = 0;
	pp->failed = -1;
	if (s_check_link(s) == -1)
		return -1;
	if (PQenterPipelineMode(s->conn) != 1) {
		s_fail(s, "pipeline", NULL);
		return -1;
	}
	return 0;
}

/* Queues prepared statement name with p's parameters (freed here). */
static int
s_pipe_send(
    struct store *s, struct pipe *pp, const char *name, struct params *p)
{
	int ok;

	if (pp->n >= PIPE_MAX || p->overflow) {
		snprintf(s->err, sizeof(s->err), "%s: bad parameter", name);
		s->sqlstate[0] = '\0';
		p_free(p);
		return -1;
	}
	ok =
	    PQsendQueryPrepared(s->conn, name, p->n, p->val, p->len, p->fmt, 0);
	p_free(p);
	if (!ok) {
		s_fail(s, name, NULL);
		return -1;
	}
	pp->what[pp->n++] = name;
	return 0;
}

/* Queues fixed SQL without parameters (BEGIN, COMMIT). */
static int
s_pipe_sql(struct store *s, struct pipe *pp, const char *what, const char *sql)
{
	if (pp->n >= PIPE_MAX ||
	    !PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
		s_fail(s, what, NULL);
		return -1;
	}
	pp->what[pp->n++] = what;
	return 0;
}

/*
 * Sends the sync, reads every answer and leaves pipeline mode.  0 when
 * every statement succeeded; -1 with s->err about the first that did not
 * (pp->failed) or about the link.  keep[0..nkeep) get results to PQclear.
 */
static int
s_pipe_end(struct store *s, struct pipe *pp, PGresult **keep, int nkeep)
{
	PGresult *res;
	int rc = 0;

	for (int i = 0; i < nkeep; i++)
		keep[i] = NULL;
	if (PQpipelineSync(s->conn) != 1) {
		s_fail(s, "pipeline", NULL);
		s->broken = 1;
		return -1;
	}
	for (int i = 0; i < pp->n; i++) {
		ExecStatusType st;

		if ((res = PQgetResult(s->conn)) == NULL) {
			s_fail(s, pp->what[i], NULL);
			s->broken = 1;
			return -1;
		}
		st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			if (rc == 0) {
				s_fail(s, pp->what[i], res);
				pp->failed = i;
			}
			rc = -1;
			PQclear(res);
		} else if (i < nkeep) {
			keep[i] = res;
		} else {
			PQclear(res);
		}
		/* Each statement's answers end with a NULL. */
		while ((res = PQgetResult(s->conn)) != NULL)
			PQclear(res);
	}
	res = PQgetResult(s->conn);
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		if (rc == 0)
			s_fail(s, "pipeline", res);
		rc = -1;
		s->broken = 1;
	}
	PQclear(res);
	if (PQexitPipelineMode(s->conn) != 1) {
		if (rc == 0)
			s_fail(s, "pipeline", NULL);
		rc = -1;
		s->broken = 1;
	}
	if (rc == -1)
		for (int i = 0; i < nkeep; i++) {
			PQclear(keep[i]);
			keep[i] = NULL;
		}
	return rc;
}

/* Orders certificate indexes by digest, then by index. */
static int
s_cmp_cert(const void *a, const void *b, void *arg)
{
	const struct cert *certs = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = memcmp(certs[i].sha256, certs[j].sha256, 32);

	if (c != 0)
		return c;
	return i < j ? -1 : i > j;
}

static int
s_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Orders result indexes by seq, then by index. */
static int
s_cmp_seq(const void *a, const void *b, void *arg)
{
	Mtastswatch__V1__ProbeResult *const *results = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint64_t x = results[i]->seq, y = results[j]->seq;

	if (x != y)
		return x < y ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* What the fast path works out about a batch. */
struct fast {
	size_t n;
	Mtastswatch__V1__ProbeResult *const *results;
	int64_t agent_id;
	const struct timespec *t;
	struct cert *certs; /* every certificate of every result */
	size_t ncerts;
	size_t *first; /* n + 1: result i's are first[i]..first[i+1] */
	int64_t *id;   /* new result id, 0 when not written */
	int *claim;    /* seq claimed: not repeated earlier in the batch */
};

static void
s_fast_free(struct fast *f)
{
	s_certs_free(f->certs, f->ncerts);
	free(f->first);
	free(f->id);
	free(f->claim);
}

/*
 * Digests every certificate of the batch, parses the first of each digest
 * unless the store wrote it before, and checks every result as the slow
 * path would (all of them: the watermark is not known yet, and a result
 * the slow path would skip and this one refuses only costs a slow batch).
 * 0, or -1 with s->err set.
 */
static int
s_fast_certs(struct store *s, struct fast *f)
{
	size_t k = 0, *order = NULL;
	int rc = -1;

	for (size_t i = 0; i < f->n; i++) {
		if (f->results[i]->n_certificates > SIZE_MAX / 4 - f->ncerts) {
			snprintf(
			    s->err, sizeof(s->err), "too many certificates");
			return -1;
		}
		f->ncerts += f->results[i]->n_certificates;
	}
	if ((f->certs = calloc(f->ncerts + 1, sizeof(*f->certs))) == NULL ||
	    (order = calloc(f->ncerts + 1, sizeof(*order))) == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < f->n; i++) {
		const Mtastswatch__V1__ProbeResult *r = f->results[i];

		f->first[i] = k;
		for (size_t c = 0; c < r->n_certificates; c++, k++) {
			if (s_cert_digest(s, &f->certs[k],
				&r->certificates[c]->der) == -1) {
				s_cert_bad(s, r, c);
				goto out;
			}
			order[k] = k;
		}
	}
	f->first[f->n] = k;
	qsort_r(order, f->ncerts, sizeof(*order), s_cmp_cert, f->certs);
	for (size_t g = 0, e; g < f->ncerts; g = e) {
		struct cert *lead = &f->certs[order[g]];

		lead->cached = digest_set_has(s->stored, lead->sha256);
		if (!lead->cached && s_cert_parse(lead) == -1) {
			snprintf(s->err, sizeof(s->err),
			    "certificate does not parse");
			goto out;
		}
		for (e = g; e < f->ncerts && memcmp(f->certs[order[e]].sha256,
						 lead->sha256, 32) == 0;
		     e++) {
			f->certs[order[e]].leader = order[g];
			f->certs[order[e]].cached = lead->cached;
		}
	}
	for (size_t i = 0; i < f->n; i++)
		if (s_validate(s, f->results[i], &f->certs[f->first[i]]) == -1)
			goto out;
	rc = 0;
out:
	free(order);
	return rc;
}

/*
 * The seqs to claim as an array literal: each seq once, for its first
 * result in the batch, as the slow path would.
 */
static int
s_fast_seqs(struct store *s, struct fast *f, struct dbuf *arr)
{
	size_t *order, nclaim = 0;

	if ((order = calloc(f->n + 1, sizeof(*order))) == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < f->n; i++)
		order[i] = i;
	qsort_r(order, f->n, sizeof(*order), s_cmp_seq, (void *)f->results);
	for (size_t k = 0; k < f->n; k++)
		if (k == 0 ||
		    f->results[order[k - 1]]->seq != f->results[order[k]]->seq)
			f->claim[order[k]] = 1;
	free(order);
	d_put(arr, "{", 1);
	for (size_t i = 0; i < f->n; i++) {
		char num[32];

		if (!f->claim[i])
			continue;
		snprintf(num, sizeof(num), "%s%" PRIu64,
		    nclaim++ > 0 ? "," : "", f->results[i]->seq);
		d_put(arr, num, strlen(num));
	}
	d_put(arr, "}", 1);
	if (arr->oom) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	return 0;
}

/*
 * From the claim's answer (seq, id of each seq that was new), the id of
 * each result to write, handed out in batch order.  0 or -1.
 */
static int
s_fast_ids(struct store *s, struct fast *f, const PGresult *res)
{
	size_t rows = (size_t)PQntuples(res), next = 0;
	int64_t *got, *ids;
	int rc = -1;

	got = calloc(rows + 1, sizeof(*got));
	ids = calloc(rows + 1, sizeof(*ids));
	if (got == NULL || ids == NULL || rows > f->n) {
		snprintf(s->err, sizeof(s->err), "seq_claim_many: bad answer");
		goto out;
	}
	for (size_t r = 0; r < rows; r++) {
		got[r] = strtoll(PQgetvalue(res, (int)r, 0), NULL, 10);
		ids[r] = strtoll(PQgetvalue(res, (int)r, 1), NULL, 10);
	}
	qsort(got, rows, sizeof(*got), s_cmp_i64);
	qsort(ids, rows, sizeof(*ids), s_cmp_i64);
	for (size_t i = 0; i < f->n; i++) {
		int64_t seq = (int64_t)f->results[i]->seq;

		if (f->claim[i] &&
		    bsearch(&seq, got, rows, sizeof(*got), s_cmp_i64) != NULL)
			f->id[i] = ids[next++];
	}
	if (next == rows)
		rc = 0;
	else
		snprintf(s->err, sizeof(s->err), "seq_claim_many: bad answer");
out:
	free(got);
	free(ids);
	return rc;
}

/*
 * One pipeline: BEGIN, the agent's lock (its row must exist) and the
 * claim of the batch's seqs above its watermark, with an id for each new
 * one.  0, or -1 with *about_result 0 (the transaction or the agent) or 1.
 */
static int
s_fast_open(struct store *s, struct fast *f, int *about_result)
{
	struct pipe pp;
	struct params p = {0};
	struct dbuf arr = {0};
	PGresult *keep[3];
	int rc = -1;

	*about_result = 0;
	if (s_fast_seqs(s, f, &arr) == -1) {
		free(arr.d);
		return -1;
	}
	if (s_pipe_begin(s, &pp) == -1) {
		free(arr.d);
		return -1;
	}
	if (s_pipe_sql(s, &pp, "begin", "BEGIN") == 0) {
		p_i64(&p, f->agent_id);
		if (s_pipe_send(s, &pp, "agent_lock", &p) == 0) {
			p_i64(&p, f->agent_id);
			p_text(&p, arr.d);
			p_time(&p, f->t->tv_sec, f->t->tv_nsec / 1000);
			(void)s_pipe_send(s, &pp, "seq_claim_many", &p);
		}
	}
	free(arr.d);
	if (s_pipe_end(s, &pp, keep, 3) == -1) {
		*about_result = pp.failed == 2;
		return -1;
	}
	if (pp.n != 3)
		goto out; /* s_pipe_send said why */
	if (PQntuples(keep[1]) == 0) {
		snprintf(s->err, sizeof(s->err), "agent_lock: no row");
		goto out;
	}
	*about_result = 1;
	rc = s_fast_ids(s, f, keep[2]);
out:
	for (int i = 0; i < 3; i++)
		PQclear(keep[i]);
	return rc;
}

/*
 * The certificates the written results carry that the store did not
 * write before, each once, in the order they first appear: PIPE_MAX per
 * round trip.
 */
static int
s_fast_cert_rows(struct store *s, struct fast *f)
{
	struct pipe pp;
	size_t k = 0;

	for (size_t i = 0; i < f->n; i++) {
		if (f->id[i] == 0)
			continue;
		for (size_t c = f->first[i]; c < f->first[i + 1]; c++)
			if (!f->certs[c].cached)
				f->certs[f->certs[c].leader].needed = 1;
	}
	for (;;) {
		int rc = 0;

		while (k < f->ncerts && !f->certs[k].needed)
			k++;
		if (k >= f->ncerts)
			return 0;
		if (s_pipe_begin(s, &pp) == -1)
			return -1;
		for (; k < f->ncerts && pp.n < PIPE_MAX && rc == 0; k++)
			if (f->certs[k].needed)
				rc = s_cert_insert(s, &f->certs[k], &pp);
		if (s_pipe_end(s, &pp, NULL, 0) == -1 || rc == -1)
			return -1;
	}
}

/* The COPYs, in the order the slow path writes a result's rows. */
enum { T_RESULTS, T_DNS, T_POLICY, T_HOST, T_CHAIN, T_FINDINGS, T_COUNT };

static const char *const copy_table[T_COUNT] = {"results", "dns_observations",
    "policy_observations", "host_observations", "chain_certs", "findings"};

/*
 * Each table's columns, in the order the p_*_row functions give them, and
 * their types for d_bin_row.
 */
static const char *const copy_cols[T_COUNT] = {
    "id, agent_id, seq, domain, round, started_at, duration_ms, completed, "
    "resolver, vantage, received_at, error_count, warning_count, info_count",
    "result_id, received_at, sts_present, sts_records, sts_id, sts_valid, "
    "tlsrpt_present, tlsrpt_records, tlsrpt_rua, tlsrpt_valid",
    "result_id, received_at, url, http_status, content_type, sha256, mode, "
    "mx, max_age, valid, raw",
    "result_id, received_at, role, position, host, preference, starttls, "
    "policy_match, addresses, ip, tls_ok, tls_version, cipher, verified, "
    "handshake_ms, ocsp, error",
    "result_id, received_at, role, host_position, host, position, "
    "cert_sha256",
    "result_id, received_at, position, code, severity, subject, detail, "
    "rfc8460"};
static const char *const copy_types[T_COUNT] = {"qqqtqTqbttTiii", "qTbAtbbAab",
    "qTtqtxtaqbx", "qTtitqbhatbttbqtt", "qTtitix", "qTittttt"};

/* Binary COPY's header: signature, flags, no header extension. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/*
 * All of them as one query: the server asks for each table's rows in turn.
 * Binary, so that the server does not parse text (every row carries a
 * timestamp); straight into the day's partition (pattern in
 * mtastswatch_ensure_partitions), so that it does not route every row.
 * Each row of a batch has the same received_at: one partition.  A missing
 * partition fails the COPY and the batch goes the slow way, through the
 * parent, as before.  Calls malloc: the caller frees.
 */
static char *
s_copy_sql(const struct timespec *t)
{
	struct dbuf q = {0};
	char day[16];
	struct tm tm;
	time_t sec = t->tv_sec;

	if (gmtime_r(&sec, &tm) == NULL ||
	    strftime(day, sizeof(day), "_p%Y%m%d", &tm) == 0)
		return NULL;
	for (int k = 0; k < T_COUNT; k++) {
		d_put(&q, "COPY ", 5);
		d_put(&q, copy_table[k], strlen(copy_table[k]));
		d_put(&q, day, strlen(day));
		d_put(&q, " (", 2);
		d_put(&q, copy_cols[k], strlen(copy_cols[k]));
		d_put(&q, ") FROM STDIN (FORMAT binary); ", 30);
	}
	if (q.oom) {
		free(q.d);
		return NULL;
	}
	return q.d;
}

/* Appends p's row unless a value was bad; frees p.  0 or -1. */
static int
d_row(struct dbuf *b, struct params *p, int tab)
{
	int bad = p->overflow;

	if (!bad)
		bad = d_bin_row(b, p, copy_types[tab]);
	p_free(p);
	return bad ? -1 : 0;
}

/* Appends the rows of result i in table tab; 0 or -1. */
static int
s_fast_rows(
    struct store *s, struct dbuf *b, int tab, const struct fast *f, size_t i)
{
	const Mtastswatch__V1__ProbeResult *r = f->results[i];
	const struct timespec *t = f->t;
	int64_t id = f->id[i];
	struct params p = {.binary = 1};
	int bad = 0;

	switch (tab) {
	case T_RESULTS:
		p_i64(&p, id);
		p_result_row(&p, f->agent_id, r, t);
		bad = d_row(b, &p, tab);
		break;
	case T_DNS:
		if (p_dns_row(&p, id, t, r))
			bad = d_row(b, &p, tab);
		break;
	case T_POLICY:
		if (p_policy_row(&p, id, t, r->policy))
			bad = d_row(b, &p, tab);
		break;
	case T_FINDINGS:
		for (size_t k = 0; k < r->n_findings && !bad; k++) {
			p_finding_row(&p, id, t, r->findings[k], k);
			bad = d_row(b, &p, tab);
		}
		break;
	default:
		for (size_t m = 0; m <= r->n_mx && !bad; m++) {
			const Mtastswatch__V1__MxObservation *mx =
			    m > 0 ? r->mx[m - 1] : NULL;
			const Mtastswatch__V1__HostObservation *h =
			    mx != NULL ? mx->host : r->policy_host;
			size_t pos = m > 0 ? m - 1 : 0;

			if (h == NULL)
				continue;
			if (tab == T_HOST) {
				p_host_row(&p, id, t, h, mx, pos);
				bad = d_row(b, &p, tab);
				continue;
			}
			for (size_t k = 0; k < h->n_chain_sha256 && !bad; k++) {
				p_chain_row(&p, id, t, h, mx != NULL, pos, k);
				bad = d_row(b, &p, tab);
			}
		}
		break;
	}
	if (bad || b->oom) {
		snprintf(s->err, sizeof(s->err), "%s: %s", copy_table[tab],
		    b->oom ? "out of memory" : "bad parameter");
		s->sqlstate[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Formats table tab's rows from result *next on, until the buffer holds
 * COPY_CHUNK bytes or the results end.  0 or -1.
 */
static int
s_fast_fill(struct store *s, struct dbuf *b, int tab, const struct fast *f,
    size_t *next)
{
	for (; *next < f->n && b->len < COPY_CHUNK; (*next)++)
		if (f->id[*next] != 0 && s_fast_rows(s, b, tab, f, *next) == -1)
			return -1;
	return 0;
}

static int
s_copy_send(struct store *s, struct dbuf *b, int tab)
{
	if (b->len > 0 && PQputCopyData(s->conn, b->d, (int)b->len) != 1) {
		s_fail(s, copy_table[tab], NULL);
		return -1;
	}
	b->len = 0;
	return 0;
}

/*
 * Every row of the written results, one COPY per table in one query.  A
 * table's first COPY_CHUNK bytes are formatted before the server asks for
 * them, that is while it still works on the table before.  On a failure
 * the COPY under way is abandoned and every answer read, so that the
 * connection is ready for ROLLBACK.  0 or -1.
 */
static int
s_fast_copy(struct store *s, const struct fast *f)
{
	struct dbuf b = {0};
	PGresult *res;
	char *sql;
	size_t next = 0;
	int tab = 0, last = 0, rc = 0;

	if (s_check_link(s) == -1)
		return -1;
	if ((sql = s_copy_sql(f->t)) == NULL) {
		snprintf(s->err, sizeof(s->err), "copy: out of memory");
		return -1;
	}
	d_put(&b, copy_header, sizeof(copy_header));
	if (s_fast_fill(s, &b, tab, f, &next) == -1) {
		free(b.d);
		free(sql);
		return -1;
	}
	if (!PQsendQuery(s->conn, sql)) {
		s_fail(s, "copy", NULL);
		free(b.d);
		free(sql);
		return -1;
	}
	free(sql);
	while ((res = PQgetResult(s->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_COMMAND_OK) {
			PQclear(res);
			continue;
		}
		if (st != PGRES_COPY_IN || tab >= T_COUNT) {
			if (rc == 0)
				s_fail(s, copy_table[last], res);
			rc = -1;
			PQclear(res);
			continue;
		}
		PQclear(res);
		last = tab;
		/* The server waits for this table's rows. */
		while (rc == 0) {
			if (next >= f->n)
				d_be(&b, UINT16_MAX, 2); /* trailer: -1 */
			if (b.oom) {
				snprintf(s->err, sizeof(s->err),
				    "copy: out of memory");
				rc = -1;
			} else if (s_copy_send(s, &b, tab) == -1)
				rc = -1;
			else if (next >= f->n)
				break;
			else if (s_fast_fill(s, &b, tab, f, &next) == -1)
				rc = -1;
		}
		if (PQputCopyEnd(s->conn, rc == 0 ? NULL : "batch abandoned") !=
		    1) {
			if (rc == 0)
				s_fail(s, copy_table[tab], NULL);
			rc = -1;
			s->broken = 1;
			break;
		}
		/* Formatted while the server checks and stores the table. */
		b.len = 0;
		next = 0;
		if (rc == 0 && ++tab < T_COUNT) {
			d_put(&b, copy_header, sizeof(copy_header));
			if (s_fast_fill(s, &b, tab, f, &next) == -1)
				rc = -1;
		}
	}
	if (rc == 0 && tab != T_COUNT) {
		snprintf(s->err, sizeof(s->err), "copy: %d tables of %d", tab,
		    T_COUNT);
		rc = -1;
	}
	free(b.d);
	return rc;
}

/* The watermark and COMMIT, one round trip.  0 or -1. */
static int
s_fast_close(struct store *s, const struct fast *f, uint64_t *committed_seq,
    int *committing)
{
	struct pipe pp;
	struct params p = {0};
	PGresult *keep[1];
	int rc;

	*committing = 0;
	if (s_pipe_begin(s, &pp) == -1)
		return -1;
	p_i64(&p, f->agent_id);
	p_time(&p, f->t->tv_sec, f->t->tv_nsec / 1000);
	if (s_pipe_send(s, &pp, "agent_advance", &p) == 0)
		(void)s_pipe_sql(s, &pp, "commit", "COMMIT");
	rc = s_pipe_end(s, &pp, keep, 1);
	/* COMMIT ran, and failed: there is nothing to roll back. */
	*committing = pp.n == 2 && pp.failed == 1;
	if (rc == -1)
		return -1;
	if (pp.n != 2 || PQntuples(keep[0]) == 0) {
		snprintf(s->err, sizeof(s->err), "agent_advance: no row");
		PQclear(keep[0]);
		return -1;
	}
	*committed_seq = (uint64_t)strtoll(PQgetvalue(keep[0], 0, 0), NULL, 10);
	PQclear(keep[0]);
	return 0;
}

/*
 * The fast path, in one transaction of its own.  0 when committed.  On
 * failure -1, with *slow set when the failure may be about one result
 * (a result the checks refuse, a value the database refuses): the caller
 * then writes the batch again the slow way, which finds out which.
 */
static int
s_batch_fast(struct store *s, int64_t agent_id,
    Mtastswatch__V1__ProbeResult *const *results, size_t n,
    const struct timespec *t, uint64_t *committed_seq, int *slow)
{
	struct fast f = {
	    .n = n, .results = results, .agent_id = agent_id, .t = t};
	int committing = 0;

	*slow = 1;
	if ((f.first = calloc(n + 1, sizeof(*f.first))) == NULL ||
	    (f.id = calloc(n + 1, sizeof(*f.id))) == NULL ||
	    (f.claim = calloc(n + 1, sizeof(*f.claim))) == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		*slow = 0;
		s_fast_free(&f);
		return -1;
	}
	/* Checked before anything is sent: no transaction to undo. */
	if (s_fast_certs(s, &f) == -1) {
		s_fast_free(&f);
		return -1;
	}
	if (s_fast_open(s, &f, slow) == -1)
		goto fail;
	if (s_fast_cert_rows(s, &f) == -1 || s_fast_copy(s, &f) == -1)
		goto fail;
	*slow = 0;
	if (s_fast_close(s, &f, committed_seq, &committing) == -1) {
		if (committing) {
			s_fast_free(&f);
			return -1;
		}
		goto fail;
	}
	for (size_t k = 0; k < f.ncerts; k++)
		if (f.certs[k].needed)
			digest_set_add(s->stored, f.certs[k].sha256);
	s_fast_free(&f);
	return 0;
fail:
	s_fast_free(&f);
	s_rollback(s);
	return -1;
}

int
store_write_batch(struct store *s, int64_t agent_id,
    Mtastswatch__V1__ProbeResult *const *results, size_t n,
    const struct timespec *received, uint64_t *committed_seq)
{
	long day = (long)(received->tv_sec / 86400);
	int slow;

	s->bad_index = -1;
	s->sqlstate[0] = '\0';
	if (s_check_link(s) == -1)
		return -1;
	/* Partition DDL cannot run inside the batch's transaction. */
	if (day > s->ensured_day &&
	    store_ensure_partitions(s, received->tv_sec) == -1)
		return -1;
	if (s_batch_fast(
		s, agent_id, results, n, received, committed_seq, &slow) == 0)
		return 0;
	if (!slow || s_transient(s))
		return -1;
	/*
	 * A certificate the store remembers writing may have been deleted
	 * since (by hand: retention keeps them); the slow path writes them
	 * all again.
	 */
	log_debug("store: batch n=%zu again row by row: %s", n, s->err);
	digest_set_clear(s->stored);
	s->sqlstate[0] = '\0';
	return s_batch_slow(s, agent_id, results, n, received, committed_seq);
}

int
store_gap(struct store *s, int64_t agent_id, uint64_t first, uint64_t last,
    const char *reason, const struct timespec *received,
    uint64_t *committed_seq)
{
	struct params p = {0};
	int fresh;

	if (first == 0 || first > last || last > INT64_MAX) {
		snprintf(s->err, sizeof(s->err),
		    "gap %" PRIu64 "..%" PRIu64 ": out of range", first, last);
		return -1;
	}
	if (s_exec_sql(s, "begin", "BEGIN") == -1)
		return -1;
	if (s_agent_lock(s, agent_id) == -1)
		goto fail;
	p_i64(&p, agent_id);
	p_i64(&p, (int64_t)first);
	p_i64(&p, (int64_t)last);
	p_text(&p, reason);
	p_time(&p, received->tv_sec, received->tv_nsec / 1000);
	if (s_exec_i64(s, "gap_insert", &p, NULL, &fresh) == -1)
		goto fail;
	if (fresh) {
		p_i64(&p, agent_id);
		p_i64(&p, (int64_t)(last - first + 1));
		if (s_exec_void(s, "gap_count", &p) == -1)
			goto fail;
	}
	if (s_agent_advance(s, agent_id, received, committed_seq) == -1)
		goto fail;
	return s_exec_sql(s, "commit", "COMMIT");
fail:
	s_rollback(s);
	return -1;
}

int
store_ensure_partitions(struct store *s, time_t now)
{
	struct params p = {0};
	long day = (long)(now / 86400);
	char date[16];
	struct tm tm;

	if (now < 0 || gmtime_r(&now, &tm) == NULL) {
		snprintf(s->err, sizeof(s->err), "partitions: bad time");
		return -1;
	}
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	p_text(&p, date);
	p_i64(&p, STORE_PARTITION_DAYS_AHEAD + 1);
	if (s_exec_void(s, "partitions_ensure", &p) == -1)
		return -1;
	if (day + STORE_PARTITION_DAYS_AHEAD > s->ensured_day)
		s->ensured_day = day + STORE_PARTITION_DAYS_AHEAD;
	return 0;
}

int
store_drop_partitions_before(struct store *s, time_t cutoff, int *days)
{
	struct params p = {0};
	int64_t v;

	p_time(&p, cutoff, 0);
	if (s_exec_i64(s, "partitions_drop", &p, &v, NULL) == -1)
		return -1;
	if (days != NULL)
		*days = (int)v;
	/* The days dropped may include some this store thought were made. */
	s->ensured_day = -1;
	return 0;
}

int
store_domain_add(struct store *s, const char *name, int *added)
{
	struct params p = {0};
	int found;

	if (s_exec_sql(s, "begin", "BEGIN") == -1)
		return -1;
	p_text(&p, name);
	if (s_exec_i64(s, "domain_readd", &p, NULL, &found) == -1)
		goto fail;
	if (!found) {
		p_text(&p, name);
		if (s_exec_i64(s, "domain_add", &p, NULL, &found) == -1)
			goto fail;
	}
	if (s_exec_sql(s, "commit", "COMMIT") == -1)
		return -1;
	if (added != NULL)
		*added = found;
	return 0;
fail:
	s_rollback(s);
	return -1;
}

int
store_domain_remove(struct store *s, const char *name, int *removed)
{
	struct params p = {0};
	int found;

	p_text(&p, name);
	if (s_exec_i64(s, "domain_remove", &p, NULL, &found) == -1)
		return -1;
	if (removed != NULL)
		*removed = found;
	return 0;
}

int
store_domain_list(
    struct store *s, int with_removed, struct store_domain **list, size_t *n)
{
	struct params p = {0};
	struct store_domain *out;
	PGresult *res;
	size_t rows;

	*list = NULL;
	*n = 0;
	p_bool(&p, with_removed);
	if ((res = s_exec(s, "domain_list", &p)) == NULL)
		return -1;
	rows = (size_t)PQntuples(res);
	if ((out = calloc(rows + 1, sizeof(*out))) == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		PQclear(res);
		return -1;
	}
	for (size_t i = 0; i < rows; i++) {
		if ((out[i].name = strdup(PQgetvalue(res, (int)i, 0))) ==
		    NULL) {
			snprintf(s->err, sizeof(s->err), "out of memory");
			store_domain_list_free(out, i);
			PQclear(res);
			return -1;
		}
		out[i].added_at =
		    (time_t)strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		out[i].removed_at =
		    (time_t)strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
	}
	PQclear(res);
	*list = out;
	*n = rows;
	return 0;
}

void
store_domain_list_free(struct store_domain *list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		free(list[i].name);
	free(list);
}
