-- 002_compare.sql -- what the vantage comparison (collector/compare.c) found.
--
-- One comparison per (domain, round): round_status says it happened and
-- whether it was conclusive; vantage_findings holds one row per code and
-- subject (a host, a DNS name).  Rows are written with ON CONFLICT DO
-- NOTHING, so comparing a round twice, or from two collectors at once,
-- stores each finding once.  These tables are not partitioned: a round has
-- a handful of rows at most, and they outlive the raw results on purpose.

-- matrix: {"vantage": "what it saw", ...} over every vantage that reported,
-- including the ones whose probe did not complete; dissenters: the
-- vantages outside the agreement.
CREATE TABLE vantage_findings (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain text NOT NULL,
	round bigint NOT NULL,
	code text NOT NULL,
	severity text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
	subject text NOT NULL,
	detail text NOT NULL,
	matrix jsonb NOT NULL,
	dissenters text[] NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (domain, round, code, subject)
);
CREATE INDEX vantage_findings_round ON vantage_findings (round);
CREATE INDEX vantage_findings_code ON vantage_findings (code);

-- vantages: agents with a result for the round; completed: those whose
-- probe completed.  'inconclusive' when completed is below the quorum.
CREATE TABLE round_status (
	domain text NOT NULL,
	round bigint NOT NULL,
	state text NOT NULL CHECK (state IN ('compared', 'inconclusive')),
	vantages integer NOT NULL,
	completed integer NOT NULL,
	compared_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (domain, round)
);
CREATE INDEX round_status_round ON round_status (round);
