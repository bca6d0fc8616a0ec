-- 004_watermark.sql -- the agent watermark by runs instead of one seq at a time.
--
-- mtastswatch_watermark (001_init.sql) stepped from the watermark one seq
-- at a time, two index probes per step: every batch of 100 results cost
-- 200 probes inside the UPDATE that ends each write.  This version jumps
-- over a whole gap, or over a whole run of stored seqs found by one index
-- range scan (seq - row_number() is constant along a run), so a batch
-- costs two or three statements.  The answer is the same: the highest s
-- such that every seq from from_seq + 1 to s is stored in result_seqs or
-- covered by a gap.

CREATE OR REPLACE FUNCTION mtastswatch_watermark(agent bigint, from_seq bigint)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
	-- Seqs looked at per range scan; a longer run takes more scans.
	chunk constant bigint := 4096;
	top constant bigint := 9223372036854775807;
	s bigint := from_seq;
	hi bigint;
	nxt bigint;
BEGIN
	IF s IS NULL THEN
		RETURN NULL;
	END IF;
	WHILE s < top LOOP
		SELECT max(g.last_seq) INTO nxt FROM gaps g
		    WHERE g.agent_id = agent AND g.first_seq <= s + 1
		    AND g.last_seq >= s + 1;
		IF nxt IS NULL THEN
			hi := CASE WHEN s > top - chunk THEN top ELSE s + chunk END;
			SELECT max(r.seq) INTO nxt FROM (
			    SELECT q.seq, row_number() OVER (ORDER BY q.seq) AS k
			    FROM result_seqs q
			    WHERE q.agent_id = agent AND q.seq > s AND q.seq <= hi
			) r WHERE r.seq - s = r.k;
		END IF;
		EXIT WHEN nxt IS NULL OR nxt <= s;
		s := nxt;
	END LOOP;
	RETURN s;
END
$$;
