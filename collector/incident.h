/* incident.h -- folds compared rounds into incidents, and acknowledges them. */
#ifndef MTASTS_INCIDENT_H
#define MTASTS_INCIDENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

/*
 * Tables: incidents and incident_events (deploy/sql/003_incidents.sql).
 * The functions work on the caller's connection, the one compare.h
 * describes (compare_pending then incident_pending on it, in the main
 * loop); the caller reconnects with PQreset when a call fails with the
 * connection gone.  Nothing here keeps state between calls.
 *
 * An incident is keyed by (domain, code, subject).  The findings of a
 * round are the agents' own (findings), the vantage comparison's
 * (vantage_findings) and the cross-round rules' (history_findings,
 * history.h).  A finding that repeats updates the one open incident;
 * severity only goes up and a rise is an 'escalate' event; a new key
 * opens an incident ('open').  An open incident the round does not carry
 * is resolved ('resolve') only when the round is conclusive
 * (round_status.state = 'compared') and, for the agents' codes, one of
 * the vantages that saw it completed a probe of the domain this round;
 * VANTAGE_* and cross-round codes resolve on any conclusive round
 * without them.  CERT_EXPIRING carries a stage (30d, 14d, 7d) that only
 * goes down, each step an 'escalate' event.  Agent health has domain ''
 * and the agent name as subject:
 *
 *   AGENT_SILENT    warning  agents.last_seen older than 2 intervals
 *   AGENT_DEGRADED  warning  in each of the last 3 compared rounds, the
 *                            agent's probes of at least half its domains
 *                            did not complete while another vantage's did
 *
 * Every writer of incident_events (folds, agent health, acks) holds one
 * transaction-scoped advisory lock, so events are committed in id order
 * and a notifier walking ids never skips one still in flight.
 */

#define INCIDENT_DEFAULT_MAX_ROUNDS 1000
#define INCIDENT_DEGRADED_ROUNDS    3
#define INCIDENT_ACK_WHO_MAX	    256	 /* bytes */
#define INCIDENT_ACK_NOTE_MAX	    4096 /* bytes */

/* Zero fields take the defaults. */
struct incident_opts {
	/* Rounds folded per call (default 1000); the rest wait for the next
	 * call, so a backlog never holds the main loop for long. */
	unsigned max_rounds;
	/* How many rounds a leaf stays known for its host (history.h). */
	int64_t known_rounds;
	/* Seconds a policy body changed under an unchanged STS id may wait
	 * for the id to follow before POLICY_CHANGED_WITHOUT_ID opens: the
	 * same propagation window as compare.h's (0: its default). */
	uint32_t window_s;
};

/*
 * Folds every round_status row with folded_at NULL, each domain in round
 * order, one transaction per (domain, round): runs history_round, opens,
 * updates and resolves incidents, sets folded_at.  A round compared late
 * (older than the domain's newest folded round) is only marked folded:
 * the newer round already said what holds now, so it neither moves the
 * cross-round state back nor opens or resolves anything.  Then runs the
 * agent-health rules at now, with interval_s the round interval.
 * *folded (may be NULL) gets how many rounds were folded.  A round that
 * fails is logged and the rest of its domain waits for the next call;
 * returns 0, or -1 when anything failed (rounds folded stay folded).
 */
int incident_pending(PGconn *conn, time_t now, uint32_t interval_s,
    const struct incident_opts *opts, size_t *folded);

/*
 * Sets acked_at (now), acked_by and ack_note of incident id and writes an
 * 'ack' event; acking again overwrites, and writes another event only when
 * who or note changed.  who and
 * note are borrowed, UTF-8, at most INCIDENT_ACK_WHO_MAX and
 * INCIDENT_ACK_NOTE_MAX bytes; note may be NULL.  Returns 0, 1 when
 * there is no such incident, or -1 with the reason logged.
 */
int incident_ack(PGconn *conn, int64_t id, const char *who, const char *note);

#endif
