/* resultfix.h -- agents' results for the database tests: certificates,
 * ProbeResults written with store_write_batch, and the schema, store and
 * agents they go to.  Header-only, like pgschema.h and testcert.h; include
 * it after cmocka.h. */
#ifndef MTASTS_TEST_RESULTFIX_H
#define MTASTS_TEST_RESULTFIX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "pgschema.h"
#include "store_pg.h"
#include "testcert.h"

#define RF_UNUSED	__attribute__((unused))
#define RF_MAX_AGENTS	8
#define RF_CHAIN_MAX	3
#define RF_MAX_FINDINGS 4

/* ---- certificates ---- */

/* A certificate made for a test, with the forms tests compare against. */
struct rf_cert {
	X509 *x;
	EVP_PKEY *key;
	unsigned char *der;
	int len;
	unsigned char sha[32]; /* of the DER, as chain_sha256 carries it */
	char sha_hex[65];      /* upper case, as tls.server.hash.sha256 */
	char spki_hex[65];     /* lower case, as the plot and compare show */
	time_t not_after;
};

/*
 * Makes c: a new P-256 key and the certificate o describes, signed by
 * issuer, or a self-signed CA when issuer is NULL (o's key, ca, issuer and
 * issuer_key are set here), then its DER and digests.  key_ids adds the
 * subject key identifier and, under an issuer, the authority key
 * identifier, and signs again.  0, or -1: rf_certs_free frees what was
 * made either way.
 */
static RF_UNUSED int
rf_cert_make(struct rf_cert *c, const struct rf_cert *issuer, struct tc_opts *o,
    int key_ids)
{
	unsigned char spki[32];
	unsigned int n;

	if ((c->key = tc_key_ec("P-256")) == NULL)
		return -1;
	o->key = c->key;
	o->ca = issuer == NULL;
	o->issuer = issuer != NULL ? issuer->x : NULL;
	o->issuer_key = issuer != NULL ? issuer->key : NULL;
	c->not_after = o->not_after;
	if ((c->x = tc_cert(o)) == NULL)
		return -1;
	if (key_ids &&
	    (!tc_add_ext(c->x, c->x, NID_subject_key_identifier, "hash") ||
		(issuer != NULL &&
		    !tc_add_ext(c->x, issuer->x, NID_authority_key_identifier,
			"keyid:always")) ||
		X509_sign(c->x, issuer != NULL ? issuer->key : c->key,
		    EVP_sha256()) <= 0))
		return -1;
	c->der = NULL;
	if ((c->len = i2d_X509(c->x, &c->der)) <= 0)
		return -1;
	if (EVP_Digest(c->der, (size_t)c->len, c->sha, NULL, EVP_sha256(),
		NULL) != 1 ||
	    X509_pubkey_digest(c->x, EVP_sha256(), spki, &n) != 1)
		return -1;
	for (int i = 0; i < 32; i++) {
		sprintf(c->sha_hex + 2 * i, "%02X", c->sha[i]);
		sprintf(c->spki_hex + 2 * i, "%02x", spki[i]);
	}
	return 0;
}

static RF_UNUSED void
rf_certs_free(struct rf_cert *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		OPENSSL_free(c[i].der);
		X509_free(c[i].x);
		EVP_PKEY_free(c[i].key);
		memset(&c[i], 0, sizeof(c[i]));
	}
}

/* ---- the environment, the schema, the store and the agents ---- */

/*
 * MTASTS_TEST_PG (required) into *conninfo, MTASTS_TEST_SQLDIR (default
 * deploy/sql) into *sqldir, and MTASTS_TEST_FILTER (a cmocka pattern such
 * as "test_ack") applied.  0, or -1 with a hint on stderr.
 */
static RF_UNUSED int
rf_env(const char *prog, const char **conninfo, const char **sqldir)
{
	*conninfo = getenv("MTASTS_TEST_PG");
	*sqldir = getenv("MTASTS_TEST_SQLDIR");
	if (*sqldir == NULL || (*sqldir)[0] == '\0')
		*sqldir = "deploy/sql";
	if (*conninfo == NULL || (*conninfo)[0] == '\0') {
		fprintf(stderr,
		    "%s: MTASTS_TEST_PG is not set; start a cluster first:\n"
		    "  eval \"$(sh tests/lib/pg_start.sh /tmp/pgm)\"\n",
		    prog);
		return -1;
	}
	if (getenv("MTASTS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("MTASTS_TEST_FILTER"));
	return 0;
}

struct rf_db_opts {
	const char *conninfo;
	const char *sqldir;
	const char *schema; /* prefix of the schema's name */
	/* The agents' public keys: a printf format with one %d, the agent's
	 * number (1..nagents). */
	const char *keyfmt;
	const char *const *regions;  /* one per agent; NULL: all "r" */
	size_t nagents;		     /* named agent-1..agent-N */
	const struct rf_cert *certs; /* what chains index; borrowed */
	size_t ncerts;
};

/* A test's own schema with the migrations applied, the store on it, and
 * its agents. */
struct rf_db {
	struct pgschema db;
	struct store *st;
	const struct rf_cert *certs;
	size_t ncerts;
	int64_t agent[RF_MAX_AGENTS];
	uint64_t seq[RF_MAX_AGENTS]; /* the last seq each agent sent */
};

/* 0, or -1 with the reason printed; rf_db_close either way. */
static RF_UNUSED int
rf_db_open(struct rf_db *d, const struct rf_db_opts *o)
{
	char err[512], key[128], name[32];

	memset(d, 0, sizeof(*d));
	d->certs = o->certs;
	d->ncerts = o->ncerts;
	if (o->nagents > RF_MAX_AGENTS) {
		print_error("rf_db_open: %zu agents, at most %d\n", o->nagents,
		    RF_MAX_AGENTS);
		return -1;
	}
	if (pgschema_open(&d->db, o->conninfo, o->schema) == -1)
		return -1;
	if ((d->st = store_open(d->db.conninfo, o->sqldir, err, sizeof(err))) ==
	    NULL) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	for (size_t i = 0; i < o->nagents; i++) {
		snprintf(key, sizeof(key), o->keyfmt, (int)i + 1);
		snprintf(name, sizeof(name), "agent-%zu", i + 1);
		if (store_agent_upsert(d->st, key, name,
			o->regions != NULL ? o->regions[i] : "r",
			&d->agent[i]) != 0) {
			print_error(
			    "store_agent_upsert: %s\n", store_error(d->st));
			return -1;
		}
	}
	return 0;
}

static RF_UNUSED void
rf_db_close(struct rf_db *d)
{
	store_close(&d->st);
	pgschema_close(&d->db);
}

/* A connection of its own on the test's schema (PQfinish it), or NULL
 * with the reason printed. */
static RF_UNUSED PGconn *
rf_db_connect(const struct rf_db *d)
{
	PGconn *c = PQconnectdb(d->db.conninfo);

	if (PQstatus(c) != CONNECTION_OK) {
		print_error("connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* ---- results ---- */

/* One vantage's result, every part in place: no allocation. */
struct rf_result {
	Mtastswatch__V1__ProbeResult r;
	Mtastswatch__V1__StsTxt sts;
	Mtastswatch__V1__TlsRpt rpt;
	char *rua[1];
	Mtastswatch__V1__Policy pol;
	char *pol_mx[1];
	unsigned char body_sha[32];
	Mtastswatch__V1__HostObservation ph, mxh;
	Mtastswatch__V1__MxObservation mx, *mxp[1];
	char *addrs[2];
	/* The chains the hosts present, leaf first: indexes into the
	 * certificates of rf_db_opts, -1 after the last. */
	int ph_chain[RF_CHAIN_MAX], mx_chain[RF_CHAIN_MAX];
	ProtobufCBinaryData ph_sha[RF_CHAIN_MAX], mx_sha[RF_CHAIN_MAX];
	Mtastswatch__V1__Certificate c[2 * RF_CHAIN_MAX], *cp[2 * RF_CHAIN_MAX];
	Mtastswatch__V1__Finding f[RF_MAX_FINDINGS], *fp[RF_MAX_FINDINGS];
};

/*
 * The result tests start from: a completed probe of domain in round, 900
 * ms long; STS id 20240101; a valid policy in mode enforce (HTTP 200, body
 * hash ab..ab, max_age 86400) listing mx; the policy host policy_host and
 * the MX host mx (preference 10, STARTTLS, matching the policy), both with
 * TLS and verified; no chain, no finding, no TLSRPT.  The strings are
 * borrowed.  Tests change fields, then rf_put it.
 */
static RF_UNUSED void
rf_result_init(struct rf_result *x, const char *domain, const char *policy_host,
    const char *mx, int64_t round)
{
	const Mtastswatch__V1__ProbeResult r0 =
	    MTASTSWATCH__V1__PROBE_RESULT__INIT;
	const Mtastswatch__V1__StsTxt s0 = MTASTSWATCH__V1__STS_TXT__INIT;
	const Mtastswatch__V1__Policy p0 = MTASTSWATCH__V1__POLICY__INIT;
	const Mtastswatch__V1__HostObservation h0 =
	    MTASTSWATCH__V1__HOST_OBSERVATION__INIT;
	const Mtastswatch__V1__MxObservation m0 =
	    MTASTSWATCH__V1__MX_OBSERVATION__INIT;

	memset(x, 0, sizeof(*x));
	x->r = r0;
	x->r.domain = (char *)domain;
	x->r.round = (uint64_t)round;
	x->r.duration_ms = 900;
	x->r.completed = 1;

	x->sts = s0;
	x->sts.id = "20240101";
	x->sts.valid = 1;
	x->r.sts_txt = &x->sts;

	x->pol = p0;
	x->pol.http_status = 200;
	memset(x->body_sha, 0xab, sizeof(x->body_sha));
	x->pol.sha256.data = x->body_sha;
	x->pol.sha256.len = sizeof(x->body_sha);
	x->pol.mode = "enforce";
	x->pol_mx[0] = (char *)mx;
	x->pol.mx = x->pol_mx;
	x->pol.n_mx = 1;
	x->pol.max_age = 86400;
	x->pol.valid = 1;
	x->r.policy = &x->pol;

	x->ph = h0;
	x->ph.host = (char *)policy_host;
	x->ph.tls_ok = 1;
	x->ph.verified = 1;
	x->r.policy_host = &x->ph;
	x->mxh = h0;
	x->mxh.host = (char *)mx;
	x->mxh.tls_ok = 1;
	x->mxh.verified = 1;
	x->mx = m0;
	x->mx.host = &x->mxh;
	x->mx.preference = 10;
	x->mx.starttls = 1;
	x->mx.policy_match = 1;
	x->mxp[0] = &x->mx;
	x->r.mx = x->mxp;
	x->r.n_mx = 1;
	for (int i = 0; i < RF_CHAIN_MAX; i++)
		x->ph_chain[i] = x->mx_chain[i] = -1;
}

/* The policy host presents ph_leaf + root, the MX mx_leaf + root. */
static RF_UNUSED void
rf_result_chains(struct rf_result *x, int ph_leaf, int mx_leaf, int root)
{
	x->ph_chain[0] = ph_leaf;
	x->ph_chain[1] = root;
	x->mx_chain[0] = mx_leaf;
	x->mx_chain[1] = root;
}

/* A valid TLSRPT record with one rua (borrowed). */
static RF_UNUSED void
rf_result_tlsrpt(struct rf_result *x, const char *rua)
{
	const Mtastswatch__V1__TlsRpt t0 = MTASTSWATCH__V1__TLS_RPT__INIT;

	x->rpt = t0;
	x->rua[0] = (char *)rua;
	x->rpt.rua = x->rua;
	x->rpt.n_rua = 1;
	x->rpt.valid = 1;
	x->r.tlsrpt = &x->rpt;
}

/* Adds a finding (strings borrowed); more than RF_MAX_FINDINGS fails the
 * test. */
static RF_UNUSED void
rf_result_finding(struct rf_result *x, const char *code,
    Mtastswatch__V1__Severity sev, const char *subject, const char *detail)
{
	const Mtastswatch__V1__Finding f0 = MTASTSWATCH__V1__FINDING__INIT;
	size_t i = x->r.n_findings;

	assert_true(i < RF_MAX_FINDINGS);
	x->f[i] = f0;
	x->f[i].code = (char *)code;
	x->f[i].severity = sev;
	x->f[i].subject = (char *)subject;
	x->f[i].detail = (char *)detail;
	x->fp[i] = &x->f[i];
	x->r.findings = x->fp;
	x->r.n_findings = i + 1;
}

/* One host's chain into sha; its length.  A bad index fails the test. */
static RF_UNUSED size_t
rf_chain_sha(const struct rf_db *d, const int *chain, ProtobufCBinaryData *sha)
{
	size_t n = 0;

	for (; n < RF_CHAIN_MAX && chain[n] >= 0; n++) {
		assert_true((size_t)chain[n] < d->ncerts);
		sha[n].data = (uint8_t *)d->certs[chain[n]].sha;
		sha[n].len = 32;
	}
	return n;
}

/*
 * Fills in what the chains say: their digests (none for a host without
 * TLS) and the certificates they name, each once and in the order of
 * rf_db_opts.certs.  rf_put does it; a test that writes its own batches
 * calls it.
 */
static RF_UNUSED void
rf_result_finish(const struct rf_db *d, struct rf_result *x)
{
	const Mtastswatch__V1__Certificate c0 =
	    MTASTSWATCH__V1__CERTIFICATE__INIT;
	size_t nph = rf_chain_sha(d, x->ph_chain, x->ph_sha);
	size_t nmx = rf_chain_sha(d, x->mx_chain, x->mx_sha);
	size_t n = 0;

	x->ph.chain_sha256 = x->ph_sha;
	x->ph.n_chain_sha256 = x->ph.tls_ok ? nph : 0;
	x->mxh.chain_sha256 = x->mx_sha;
	x->mxh.n_chain_sha256 = x->mxh.tls_ok ? nmx : 0;
	for (size_t i = 0; i < d->ncerts; i++) {
		int used = 0;

		for (size_t k = 0; k < nph; k++)
			used |= (size_t)x->ph_chain[k] == i;
		for (size_t k = 0; k < nmx; k++)
			used |= (size_t)x->mx_chain[k] == i;
		if (!used)
			continue;
		x->c[n] = c0;
		x->c[n].der.data = d->certs[i].der;
		x->c[n].der.len = (size_t)d->certs[i].len;
		x->cp[n] = &x->c[n];
		n++;
	}
	x->r.certificates = x->cp;
	x->r.n_certificates = n;
}

/*
 * Stores x, finished, as agent a's next result, received at `at` (a day
 * partition other than the current ones must exist first).  0, or -1 with
 * the reason printed.
 */
static RF_UNUSED int
rf_put(struct rf_db *d, int a, struct rf_result *x, time_t at)
{
	Mtastswatch__V1__ProbeResult *ptr = &x->r;
	struct timespec rt = {.tv_sec = at, .tv_nsec = 0};
	uint64_t committed = 0;

	assert_true(a >= 0 && a < RF_MAX_AGENTS);
	rf_result_finish(d, x);
	x->r.seq = ++d->seq[a];
	x->r.vantage = "test";
	if (store_write_batch(d->st, d->agent[a], &ptr, 1, &rt, &committed) !=
	    0) {
		print_error("store_write_batch: %s\n", store_error(d->st));
		return -1;
	}
	return 0;
}

#endif
