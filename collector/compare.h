/* compare.h -- compares what the vantages saw of one domain in one round. */
#ifndef MTASTS_COMPARE_H
#define MTASTS_COMPARE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

/*
 * The comparison works on a libpq connection of its own: store_pg.h has no
 * accessor for the store's connection, and a comparison holds a
 * transaction for a while that must not interleave with the ingest's
 * batches.  The caller opens it with PQconnectdb(conninfo) on the same
 * database and search_path as the store (after store_open has applied the
 * migrations, 002_compare.sql among them), and reconnects with PQreset
 * when a call fails with the connection gone (PQstatus != CONNECTION_OK).
 *
 * Codes (severity before the rule below):
 *   VANTAGE_CHAIN_MISMATCH    error  other leaf or chain, not benign
 *   VANTAGE_DNS_MISMATCH      error  STS TXT id, MX set or TLS-RPT record
 *   VANTAGE_POLICY_MISMATCH   error  policy body sha256 (or no body)
 *   VANTAGE_VERDICT_MISMATCH  error  host verified at some, failed at others
 *   VANTAGE_STARTTLS_MISMATCH error  STARTTLS offered at some, not at others
 *   VANTAGE_ADDRESS_DIFFERS   info   other A/AAAA, matching chains
 *   VANTAGE_CHAIN_BENIGN      info   other leaf or path, judged benign (a
 *                                    load-balancer key seen in earlier
 *                                    rounds, or another valid path)
 *   VANTAGE_CHANGE_PROPAGATING info  the STS id or policy body moving from
 *                                    the previous agreement to one new
 *                                    value, within the propagation window
 *                                    (instead of the DNS or POLICY
 *                                    mismatch, same subject, matrix and
 *                                    dissenters)
 *
 * Severity rule for the five mismatch codes: error when the policy mode
 * the majority fetched is "enforce", or when two or more vantages dissent,
 * or when no value has a strict majority (a split); otherwise (testing,
 * none, no policy, and a single dissenter) warning.  The three
 * informational codes are always info.
 *
 * The propagation rule (details in compare.c, s_propagating): an STS id
 * (subject _mta-sts.D) or policy body (mta-sts.D) seen at some vantages
 * only is VANTAGE_CHANGE_PROPAGATING rather than a mismatch when all of
 * these hold: exactly two values are seen, one of them the previous
 * agreement (domain_state kind sts_id or policy_sha256, as the fold of an
 * earlier round left it); the split started less than window_s plus one
 * interval ago (the first round of the current run of rounds with this
 * split, from vantage_findings: a compared round without either code for
 * the subject ends a run); every vantage seeing the new value saw the old
 * one in its latest completed result in the window before the split
 * started, and none saw the new value then; and the new value is not a
 * downgrade seen by at most half the vantages (a TXT record or policy
 * that vanished, or a weaker policy mode than the old value's vantages
 * fetched).  The rule writes nothing to domain_state.
 */

#define COMPARE_DEFAULT_QUORUM	     2
#define COMPARE_DEFAULT_KNOWN_ROUNDS 10000
#define COMPARE_DEFAULT_LOOKBACK_S   (7L * 86400)
#define COMPARE_DEFAULT_WINDOW_S     3600
#define COMPARE_MAX_WINDOW_S	     (7U * 86400)

/* Zero fields take the defaults. */
struct compare_opts {
	/* Completed vantages needed for a conclusive round (default 2). */
	unsigned quorum;
	/* compare_pending: seconds after a round's end before it is compared
	 * without waiting for every active agent (default: one interval). */
	uint32_t grace_s;
	/* How many earlier rounds make a leaf key "known" for a host. */
	int64_t known_rounds;
	/* compare_pending: how far back (received_at) it looks for rounds. */
	long lookback_s;
	/* Propagation window: how long (s) a change of the STS id or policy
	 * body may be seen at some vantages only before it is a mismatch;
	 * one interval is added.  The TXT record's TTL is the right value,
	 * but results do not carry it.  Default COMPARE_DEFAULT_WINDOW_S,
	 * at most COMPARE_MAX_WINDOW_S (larger values are clamped). */
	uint32_t window_s;
	/* The round interval, which turns rounds into seconds for window_s.
	 * compare_pending sets it to its own interval_s; 0 in a direct
	 * compare_round call turns the propagation rule off (every split is
	 * a mismatch). */
	uint32_t interval_s;
};

struct compare_summary {
	int inconclusive;   /* 1: fewer completed vantages than the quorum */
	unsigned vantages;  /* agents with a result for the round */
	unsigned completed; /* of which completed */
	unsigned findings;  /* findings computed (stored or already there) */
	unsigned inserted;  /* of which new rows */
	unsigned errors, warnings, infos; /* findings by severity */
};

/*
 * Compares the stored results of domain (lower-case, no trailing dot) in
 * round and writes vantage_findings and round_status in one transaction,
 * serialized per (domain, round) by an advisory lock.  Comparing the same
 * round again adds no duplicate; round_status follows the latest call.
 * A round with no result at all is left alone (*out says 0 vantages).
 * out may be NULL; opts may be NULL.  0, or -1 with the reason logged.
 */
int compare_round(PGconn *conn, const char *domain, int64_t round,
    const struct compare_opts *opts, struct compare_summary *out);

/*
 * Compares every (domain, round) with results received in the last
 * lookback_s and not yet in round_status (with opts->interval_s taken
 * from interval_s), when the round ended more than
 * grace_s ago (round r ends at (r + 1) * interval_s), or when every agent
 * active in the last three intervals (a result received since now - 3 *
 * interval_s) has a result for it.  *compared (may be NULL) gets how many
 * rounds were compared.  0, or -1 at the first failure (rounds compared
 * before it stay compared).
 */
int compare_pending(PGconn *conn, time_t now, uint32_t interval_s,
    const struct compare_opts *opts, size_t *compared);

#endif
