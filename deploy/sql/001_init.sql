-- 001_init.sql -- the collector's schema: agents, domains, probe results.
--
-- Applied by store_open() (collector/store_pg.c), which runs every pending
-- deploy/sql/NNN_*.sql in order, each in its own transaction under a
-- pg_advisory_xact_lock so that collectors starting together apply it once,
-- and records it in schema_migrations.  Files never contain BEGIN/COMMIT,
-- and are never edited once released: changes go in a new numbered file.
-- Objects are created unqualified, so they land in the first schema of the
-- connection's search_path (the tests give each case its own schema).
--
-- Partitioning and retention.  results and every table hanging off a result
-- (dns_observations, policy_observations, host_observations, chain_certs,
-- findings) are PARTITIONED BY RANGE (received_at), one partition per UTC
-- day, named <table>_pYYYYMMDD.  A child row carries its result's
-- (result_id, received_at), so it always lives in the same day's partition
-- as its result.  There are deliberately no foreign keys from the children
-- to results: retention drops the six partitions of a day together in one
-- transaction (mtastswatch_drop_partitions_before), which is what keeps
-- them free of orphans, and a foreign key would only make that DROP
-- impossible without CASCADE.  Partitions are made ahead of time by
-- mtastswatch_ensure_partitions(); there is no default partition, because a
-- default partition holding rows blocks creating the partition they belong
-- to.  Joins go on (result_id, received_at), which lets the planner prune
-- and join partition by partition.
--
-- Idempotency.  A primary key on a partitioned table must include the
-- partition key, so (agent_id, seq) cannot be unique across days in
-- results itself.  result_seqs, a small non-partitioned table keyed by
-- (agent_id, seq), is the dedupe record: a result is stored only when its
-- INSERT INTO result_seqs ... ON CONFLICT DO NOTHING adds a row, in the same
-- transaction as the result.  agents.last_committed_seq is the watermark
-- acknowledged to the agent: every seq up to it is stored or was declared
-- lost in gaps.  Retention deletes result_seqs rows older than the dropped
-- partitions; those seqs are at or below the watermark in normal operation,
-- and the collector skips anything at or below it without looking further.
--
-- Certificates are stored once, keyed by the SHA-256 of the DER, and are
-- never dropped by retention (they are few and shared between days); the
-- columns beside the DER are parsed from it by the collector with OpenSSL.
--
-- Empty strings sent by agents for "none" (no error, OCSP not asked, no
-- mode...) are stored as NULL.

CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per agent key.  name and region come from the key's metadata and
-- follow the latest connection.  gaps_total counts sequence numbers the
-- agent declared lost (sum of last_seq - first_seq + 1 over its gaps).
CREATE TABLE agents (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	public_key text NOT NULL UNIQUE,	-- Z85 CURVE public key
	name text NOT NULL DEFAULT '',
	region text NOT NULL DEFAULT '',
	first_seen timestamptz NOT NULL DEFAULT now(),
	last_seen timestamptz NOT NULL DEFAULT now(),
	last_committed_seq bigint NOT NULL DEFAULT 0
	    CHECK (last_committed_seq >= 0),
	gaps_total bigint NOT NULL DEFAULT 0
);

-- The domains the agents are asked to probe.  Removing one sets removed_at,
-- so history keeps its meaning; adding it again clears removed_at.
CREATE TABLE domains (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL UNIQUE CHECK (name <> '' AND name = lower(name)),
	added_at timestamptz NOT NULL DEFAULT now(),
	removed_at timestamptz
);

-- One row per stored ProbeResult.  started_at is the agent's clock,
-- received_at the collector's (and the partition key).
CREATE TABLE results (
	id bigint GENERATED ALWAYS AS IDENTITY,
	agent_id bigint NOT NULL REFERENCES agents (id),
	seq bigint NOT NULL CHECK (seq > 0),
	domain text NOT NULL,
	round bigint NOT NULL,
	started_at timestamptz,
	duration_ms bigint NOT NULL,
	completed boolean NOT NULL,
	resolver text,
	vantage text,			-- informational; agent_id is the identity
	received_at timestamptz NOT NULL,
	error_count integer NOT NULL DEFAULT 0,
	warning_count integer NOT NULL DEFAULT 0,
	info_count integer NOT NULL DEFAULT 0,
	PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX results_domain_round ON results (domain, round);
CREATE INDEX results_agent ON results (agent_id, seq);
CREATE INDEX results_round ON results (round);

-- The dedupe record (see the top of the file).
CREATE TABLE result_seqs (
	agent_id bigint NOT NULL REFERENCES agents (id),
	seq bigint NOT NULL,
	received_at timestamptz NOT NULL,
	PRIMARY KEY (agent_id, seq)
);
CREATE INDEX result_seqs_received ON result_seqs (received_at);

-- Sequences an agent will never send (its spool overflowed).  The same gap
-- sent twice is stored once.
CREATE TABLE gaps (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	agent_id bigint NOT NULL REFERENCES agents (id),
	first_seq bigint NOT NULL CHECK (first_seq > 0),
	last_seq bigint NOT NULL CHECK (last_seq >= first_seq),
	reason text NOT NULL DEFAULT '',
	received_at timestamptz NOT NULL,
	UNIQUE (agent_id, first_seq, last_seq)
);

CREATE TABLE certificates (
	sha256 bytea PRIMARY KEY CHECK (length(sha256) = 32),
	spki_sha256 bytea NOT NULL,
	der bytea NOT NULL,
	subject text NOT NULL,		-- RFC 2253 one-line form
	issuer text NOT NULL,
	serial text NOT NULL,		-- upper-case hex
	not_before timestamptz,		-- NULL when unreadable
	not_after timestamptz,
	san text[] NOT NULL,		-- dNSName entries as written
	key_type text NOT NULL,		-- RSA, EC, ED25519, ...
	key_bits integer NOT NULL,
	sig_alg text NOT NULL,
	aki bytea,			-- authority key identifier
	ski bytea,			-- subject key identifier
	first_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_spki ON certificates (spki_sha256);
CREATE INDEX certificates_not_after ON certificates (not_after);

-- DNS side of a result: the _mta-sts and _smtp._tls TXT answers.  At most
-- one row per result; none when the agent sent neither.  The MX set (names
-- and preferences) is host_observations WHERE role = 'mx'.
CREATE TABLE dns_observations (
	result_id bigint NOT NULL,
	received_at timestamptz NOT NULL,
	sts_present boolean NOT NULL,
	sts_records bytea[],
	sts_id text,
	sts_valid boolean,
	tlsrpt_present boolean NOT NULL,
	tlsrpt_records bytea[],
	tlsrpt_rua text[],
	tlsrpt_valid boolean
) PARTITION BY RANGE (received_at);
CREATE INDEX dns_observations_result ON dns_observations (result_id);

-- The policy fetch; none when the result carries no policy.
CREATE TABLE policy_observations (
	result_id bigint NOT NULL,
	received_at timestamptz NOT NULL,
	url text,
	http_status bigint NOT NULL,	-- 0 when no response came
	content_type text,
	sha256 bytea,			-- of the body, NULL when none
	mode text,			-- enforce, testing, none; NULL unknown
	mx text[] NOT NULL,
	max_age bigint NOT NULL,	-- -1 when absent or invalid
	valid boolean NOT NULL,
	raw bytea
) PARTITION BY RANGE (received_at);
CREATE INDEX policy_observations_result ON policy_observations (result_id);
CREATE INDEX policy_observations_sha256 ON policy_observations (sha256);

-- One row per host a result looked at: the policy host (role 'policy',
-- position 0) and each MX in the order the agent sent them (role 'mx',
-- position 0..n-1).  preference, starttls and policy_match are NULL for
-- the policy host; policy_match is 1 match, 0 no match, -1 no policy.
CREATE TABLE host_observations (
	result_id bigint NOT NULL,
	received_at timestamptz NOT NULL,
	role text NOT NULL CHECK (role IN ('policy', 'mx')),
	position integer NOT NULL,
	host text NOT NULL,
	preference bigint,
	starttls boolean,
	policy_match smallint,
	addresses text[] NOT NULL,	-- resolver answer, A then AAAA
	ip text,			-- address the session ran on
	tls_ok boolean NOT NULL,
	tls_version text,
	cipher text,
	verified boolean NOT NULL,
	handshake_ms bigint NOT NULL,
	ocsp text,			-- good, revoked, unknown; NULL not asked
	error text
) PARTITION BY RANGE (received_at);
CREATE INDEX host_observations_result ON host_observations (result_id);
CREATE INDEX host_observations_host ON host_observations (host);

-- The chain each host sent, leaf first (position 0).  host/role/
-- host_position name the host_observations row it belongs to.
CREATE TABLE chain_certs (
	result_id bigint NOT NULL,
	received_at timestamptz NOT NULL,
	role text NOT NULL CHECK (role IN ('policy', 'mx')),
	host_position integer NOT NULL,
	host text NOT NULL,
	position integer NOT NULL,
	cert_sha256 bytea NOT NULL REFERENCES certificates (sha256)
) PARTITION BY RANGE (received_at);
CREATE INDEX chain_certs_result ON chain_certs (result_id);
CREATE INDEX chain_certs_cert ON chain_certs (cert_sha256);

CREATE TABLE findings (
	result_id bigint NOT NULL,
	received_at timestamptz NOT NULL,
	position integer NOT NULL,
	code text NOT NULL,
	severity text NOT NULL
	    CHECK (severity IN ('unspecified', 'info', 'warning', 'error')),
	subject text,
	detail text,
	rfc8460 text			-- RFC 8460 result type, NULL when none
) PARTITION BY RANGE (received_at);
CREATE INDEX findings_result ON findings (result_id);
CREATE INDEX findings_code ON findings (code);

-- The tables partitioned by day.  Partition DDL locks each parent in this
-- order, results first, which is also the order in which a batch writes
-- (results, then the rows hanging off them): a writer holding results has
-- the DDL wait for it at its first lock, so the two cannot deadlock.
CREATE FUNCTION mtastswatch_partitioned_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT ARRAY['results', 'dns_observations', 'policy_observations',
	    'host_observations', 'chain_certs', 'findings']
$$;

-- Makes the partitions for the UTC days first_day .. first_day + days - 1
-- of every partitioned table, in the schema of each parent.  Idempotent;
-- returns how many partitions it created.  Serialized across collectors,
-- since two concurrent CREATE TABLE of the same name would fail.
CREATE FUNCTION mtastswatch_ensure_partitions(first_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	t text;
	d date;
	nsp text;
	part text;
	made integer := 0;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('mtastswatch_partitions'));
	FOREACH t IN ARRAY mtastswatch_partitioned_tables() LOOP
		SELECT n.nspname INTO STRICT nsp FROM pg_class c
		    JOIN pg_namespace n ON n.oid = c.relnamespace
		    WHERE c.oid = t::regclass;
		FOR i IN 0 .. days - 1 LOOP
			d := first_day + i;
			part := t || '_p' || to_char(d, 'YYYYMMDD');
			IF to_regclass(format('%I.%I', nsp, part)) IS NULL THEN
				EXECUTE format('CREATE TABLE %I.%I PARTITION OF '
				    '%I.%I FOR VALUES FROM (%L) TO (%L)',
				    nsp, part, nsp, t,
				    d::timestamp AT TIME ZONE 'UTC',
				    (d + 1)::timestamp AT TIME ZONE 'UTC');
				made := made + 1;
			END IF;
		END LOOP;
	END LOOP;
	RETURN made;
END
$$;

-- Drops every day partition that ends at or before cutoff, for all the
-- partitioned tables together, and forgets the dedupe rows of the results
-- dropped.  Only partitions named <table>_pYYYYMMDD are considered.
-- Returns how many days were dropped.
CREATE FUNCTION mtastswatch_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	t text;
	r record;
	days integer := 0;
	upto timestamptz;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('mtastswatch_partitions'));
	FOREACH t IN ARRAY mtastswatch_partitioned_tables() LOOP
		FOR r IN SELECT n.nspname AS nsp, c.relname AS part,
		    to_date(right(c.relname, 8), 'YYYYMMDD') AS day
		    FROM pg_inherits i
		    JOIN pg_class c ON c.oid = i.inhrelid
		    JOIN pg_namespace n ON n.oid = c.relnamespace
		    WHERE i.inhparent = t::regclass
		    AND c.relname ~ ('^' || t || '_p[0-9]{8}$')
		    ORDER BY 3
		LOOP
			IF (r.day + 1)::timestamp AT TIME ZONE 'UTC' > cutoff
			THEN
				CONTINUE;
			END IF;
			EXECUTE format('DROP TABLE %I.%I', r.nsp, r.part);
			IF t = 'results' THEN
				days := days + 1;
				upto := (r.day + 1)::timestamp AT TIME ZONE 'UTC';
			END IF;
		END LOOP;
	END LOOP;
	IF upto IS NOT NULL THEN
		DELETE FROM result_seqs WHERE received_at < upto;
	END IF;
	RETURN days;
END
$$;

-- The agent's new watermark: starting at from_seq, advances over every
-- following seq that is stored in result_seqs or covered by a gap.
CREATE FUNCTION mtastswatch_watermark(agent bigint, from_seq bigint)
RETURNS bigint LANGUAGE sql STABLE AS $$
	WITH RECURSIVE w(s) AS (
		SELECT from_seq
		UNION ALL
		SELECT COALESCE(
		    (SELECT max(g.last_seq) FROM gaps g
			WHERE g.agent_id = agent AND g.first_seq <= w.s + 1
			AND g.last_seq >= w.s + 1),
		    (SELECT r.seq FROM result_seqs r
			WHERE r.agent_id = agent AND r.seq = w.s + 1))
		FROM w WHERE w.s IS NOT NULL
	)
	SELECT max(s) FROM w
$$;

-- For the reports: the MX set of each result.
CREATE VIEW mx_sets AS
	SELECT result_id, received_at, position, host, preference
	FROM host_observations WHERE role = 'mx';
