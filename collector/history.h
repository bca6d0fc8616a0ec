/* history.h -- what changed for a domain from one round to the next. */
#ifndef MTASTS_HISTORY_H
#define MTASTS_HISTORY_H

#include <stdint.h>

#include <libpq-fe.h>

/*
 * The cross-round rules compare the agreement of a round (what most of
 * its completed vantages saw, with a strict majority) with domain_state,
 * the memory of the latest round folded, and write history_findings
 * (deploy/sql/003_incidents.sql).  Codes:
 *
 *   STS_ID_CHANGED            info     _mta-sts.D  the STS TXT id changed
 *   POLICY_CHANGED_WITHOUT_ID error    mta-sts.D   the policy body changed
 *                                                  under the same id; found
 *                                                  again every round until
 *                                                  the id changes or the
 *                                                  body returns
 *   CERT_RENEWED              info     the host    a leaf never seen before
 *                                                  for the host, same
 *                                                  issuing CA key
 *   CERT_ISSUER_CHANGED       warning  the host    a new leaf from another
 *                                                  issuing CA key
 *
 * The first observation of anything only records it.  A round with no
 * completed vantage, or older than the state (compared late), changes
 * nothing.  The domain_state kinds are listed in history.c.
 */

/* The codes above as a PostgreSQL text[] literal, for SQL that must tell
 * them from the agents' codes. */
extern const char history_codes[];

#define HISTORY_DEFAULT_KNOWN_ROUNDS 10000

struct history_summary {
	unsigned findings; /* findings of the round (stored or already there) */
	unsigned inserted; /* of which new rows */
};

/*
 * Computes the cross-round findings of domain (stored form) in round,
 * writes them to history_findings (ON CONFLICT DO NOTHING) and moves
 * domain_state and the known leaves forward.  Runs inside the caller's
 * transaction (incident.c's fold) and neither begins nor ends one; the
 * caller serializes folds of a domain.  known_rounds (<= 0: the default)
 * is how long a leaf not presented any more stays known for its host.
 * grace_rounds is how many rounds a policy body changed under an
 * unchanged STS id may wait for the id to follow before
 * POLICY_CHANGED_WITHOUT_ID is reported (0: at once).
 * out may be NULL.  0, or -1 with the reason logged (the caller rolls
 * back).
 */
int history_round(PGconn *conn, const char *domain, int64_t round,
    int64_t known_rounds, int64_t grace_rounds, struct history_summary *out);

#endif
