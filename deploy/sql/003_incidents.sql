-- 003_incidents.sql -- changes across rounds, incidents and their delivery.
--
-- collector/incident.c folds every compared round (round_status) of a
-- domain, in round order, into incidents: the agents' own findings of the
-- round (findings), the vantage comparison (vantage_findings) and the
-- cross-round rules (history_findings, written from domain_state).  Agent
-- health (AGENT_SILENT, AGENT_DEGRADED) is folded on its own, with domain
-- ''.  Each change of an incident is an incident_events row; the notifiers
-- (collector/notify.c) walk incident_events in id order, one cursor per
-- sink, so a SOC pipeline receives each event once per sink (at least
-- once across a collector crash between sending and moving the cursor).

-- When the round was folded into incidents; NULL: not yet.
ALTER TABLE round_status ADD COLUMN folded_at timestamptz;
CREATE INDEX round_status_unfolded ON round_status (domain, round)
    WHERE folded_at IS NULL;

-- What the agreement of the latest folded round saw, per kind and subject:
-- the memory the cross-round rules compare against.  kind is one of
-- sts_id, policy_sha256 (hex), leaf_spki (hex, subject = host),
-- issuer_key (hex issuer SPKI or AKI, subject = host), stale_id (the STS
-- id that the policy body changed under; removed when the id changes).
-- collector/history.c may add kinds; each is documented there.
CREATE TABLE domain_state (
	domain text NOT NULL,
	kind text NOT NULL,
	subject text NOT NULL DEFAULT '',
	value text NOT NULL,
	round bigint NOT NULL,		-- latest round that saw value
	changed_round bigint NOT NULL,	-- round value was first seen
	PRIMARY KEY (domain, kind, subject)
);

-- Cross-round findings (POLICY_CHANGED_WITHOUT_ID, STS_ID_CHANGED,
-- CERT_ISSUER_CHANGED, CERT_RENEWED), one row per code and subject per
-- round, written at most once.
CREATE TABLE history_findings (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain text NOT NULL,
	round bigint NOT NULL,
	code text NOT NULL,
	severity text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
	subject text NOT NULL,
	detail text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (domain, round, code, subject)
);
CREATE INDEX history_findings_domain ON history_findings (domain, round);

-- One row per (domain, code, subject) episode.  At most one open row per
-- key (incidents_one_open); a finding that comes back after its incident
-- resolved opens a new row.  vantages: the agents (by name) whose results
-- carried the finding in last_round; matrix and dissenters come from the
-- vantage comparison (NULL and '{}' for other codes).  stage: for
-- CERT_EXPIRING, the threshold crossed (30d, 14d, 7d); crossing the next
-- one is an 'escalate' event, so expiry alerts fire once per threshold.
CREATE TABLE incidents (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain text NOT NULL,		-- '' for agent-level codes
	code text NOT NULL,
	subject text NOT NULL,
	severity text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
	state text NOT NULL DEFAULT 'open'
	    CHECK (state IN ('open', 'resolved')),
	stage text,
	detail text NOT NULL DEFAULT '',
	vantages text[] NOT NULL DEFAULT '{}',
	dissenters text[] NOT NULL DEFAULT '{}',
	matrix jsonb,
	first_round bigint,
	last_round bigint,
	first_seen timestamptz NOT NULL DEFAULT now(),
	last_seen timestamptz NOT NULL DEFAULT now(),
	resolved_at timestamptz,
	acked_at timestamptz,
	acked_by text,
	ack_note text
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (domain, code, subject)
    WHERE state = 'open';
CREATE INDEX incidents_domain ON incidents (domain, state);
CREATE INDEX incidents_last_seen ON incidents (last_seen);

-- Every change a notifier reports: open, escalate (severity or stage went
-- up), resolve, ack.  severity and stage as of the event.
CREATE TABLE incident_events (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	incident_id bigint NOT NULL REFERENCES incidents (id),
	kind text NOT NULL
	    CHECK (kind IN ('open', 'escalate', 'resolve', 'ack')),
	severity text NOT NULL,
	stage text,
	at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_incident ON incident_events (incident_id);

-- One cursor per notification sink ('webhook', 'syslog'): the last event
-- delivered.  A sink seen for the first time starts at the newest event,
-- so turning a sink on does not replay history.  attempts/next_attempt/
-- last_error describe the event after the cursor while it is retried.
CREATE TABLE notify_cursors (
	sink text PRIMARY KEY,
	last_event_id bigint NOT NULL,
	attempts integer NOT NULL DEFAULT 0,
	next_attempt timestamptz NOT NULL DEFAULT now(),
	last_error text,
	delivered bigint NOT NULL DEFAULT 0
);

-- Every leaf certificate (SHA-256 of the DER, hex) a host presented in a
-- round's agreement or verifying at a completed vantage, with the rounds
-- it was first and last seen: what collector/history.c checks so that the
-- several leaves behind a load balancer taking turns are not reported as
-- renewals.  A leaf not seen for known_rounds rounds is forgotten.
CREATE TABLE history_leaves (
	domain text NOT NULL,
	host text NOT NULL,
	leaf_sha256 text NOT NULL,
	first_round bigint NOT NULL,
	last_round bigint NOT NULL,
	PRIMARY KEY (domain, host, leaf_sha256)
);
