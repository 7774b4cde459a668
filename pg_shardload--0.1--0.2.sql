/* pg_shardload--0.1--0.2.sql */
\echo Use "ALTER EXTENSION pg_shardload UPDATE TO '0.2'" to load this file. \quit

-- ==== values in fixed forms ====

-- the submitting session's lc_monetary, for batches with money values
ALTER TABLE shardload.batch ADD COLUMN lc_monetary text;

-- ==== destinations that must not change under a batch ====

-- where each slice goes (bound, server, remote table, columns), from capture
ALTER TABLE shardload.slice ADD COLUMN route_signature text;
-- the shard (system identifier/database) the slice was last sent to
ALTER TABLE shardload.slice ADD COLUMN shard_identity text;
-- the shard each foreign server reached last
ALTER TABLE shardload.shard_state ADD COLUMN identity text;

-- a missing or unusable shard ledger fails at its own stage
ALTER TABLE shardload.attempt DROP CONSTRAINT attempt_stage_check;
ALTER TABLE shardload.attempt ADD CONSTRAINT attempt_stage_check
	CHECK (stage IN ('CAPTURE', 'ROUTE', 'CONNECT', 'LEDGER', 'COPY', 'COMMIT', 'VERIFY'));

-- ==== claiming due batches from an index ====

-- the due batches of each tenant in the order they are claimed, so that a
-- claim reads the first few of each tenant instead of sorting all of them
CREATE INDEX batch_tenant_due_idx ON shardload.batch
	((coalesce(tenant, '')), (coalesce(next_attempt_at, created_at)), batch_id)
	WHERE state IN ('pending', 'retry_wait');

-- ==== failures, stored as the server reported them ====

-- attempt.message keeps the whole text (primary message, then DETAIL, HINT
-- and CONTEXT lines, as psql shows them); these hold the parts
ALTER TABLE shardload.attempt ADD COLUMN primary_message text,
	ADD COLUMN detail text, ADD COLUMN hint text, ADD COLUMN context text;

CREATE OR REPLACE VIEW shardload.attempts WITH (security_barrier) AS
	SELECT a.batch_id, a.attempt, a.stage, a.shard, a.started_at, a.finished_at,
		   a.status, a.failure_type, a.reason, a.sqlstate, a.message,
		   a.next_action, a.next_attempt_at,
		   a.primary_message, a.detail, a.hint, a.context
	FROM shardload.attempt a
	JOIN shardload.batches b USING (batch_id);

-- ==== jobs ====

-- the search_path a job's query runs with: its owner's at schedule()
ALTER TABLE shardload.job ADD COLUMN search_path text;
-- jobs scheduled under 0.1 keep running their queries with the default path
UPDATE shardload.job SET search_path = '"$user", public';

CREATE OR REPLACE VIEW shardload.jobs WITH (security_barrier) AS
	SELECT j.job_name, j.cron, j.target, j.owner, j.tenant, j.catch_up, j.last_tick,
		   shardload.cron_next(j.cron, j.last_tick) AS next_tick,
		   j.last_batch_id, b.state AS last_state, j.last_error, j.source_query,
		   j.policy_name AS policy, j.on_error, j.reject_limit, j.created_at,
		   j.search_path
	FROM shardload.job j
	LEFT JOIN shardload.batch b ON b.batch_id = j.last_batch_id
	WHERE j.owner::oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
	   OR pg_catalog.pg_has_role('shardload_admin', 'MEMBER');

-- ==== the shard ledger ====

CREATE FUNCTION shardload.ledger_ddl() RETURNS text
	LANGUAGE C IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'shardload_ledger_ddl';
COMMENT ON FUNCTION shardload.ledger_ddl()
	IS 'the SQL that creates the slice ledger in a shard database (run there by its loading role)';

CREATE FUNCTION shardload.prepare_shard(server name) RETURNS text
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_prepare_shard';
COMMENT ON FUNCTION shardload.prepare_shard(name)
	IS 'create the slice ledger on a shard through the caller''s user mapping; returns what was done';

-- ==== the COPY path: inboxes ====

-- a batch whose rows came through an inbox (COPY or INSERT)
ALTER TABLE shardload.batch DROP CONSTRAINT batch_source_kind_check;
ALTER TABLE shardload.batch ADD CONSTRAINT batch_source_kind_check
	CHECK (source_kind IN ('query', 'csv', 'file', 'copy'));

CREATE FUNCTION shardload.inbox_handler() RETURNS fdw_handler
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_inbox_handler';
CREATE FUNCTION shardload.inbox_validator(text[], oid) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_inbox_validator';
CREATE FOREIGN DATA WRAPPER shardload_inbox
	HANDLER shardload.inbox_handler VALIDATOR shardload.inbox_validator;
COMMENT ON FOREIGN DATA WRAPPER shardload_inbox
	IS 'inboxes: foreign tables that COPY and INSERT submit batches through';
CREATE SERVER shardload_inbox FOREIGN DATA WRAPPER shardload_inbox;
COMMENT ON SERVER shardload_inbox IS 'the server every inbox belongs to';
-- any role may make an inbox; writing through one needs INSERT on its target
GRANT USAGE ON FOREIGN SERVER shardload_inbox TO PUBLIC;

CREATE FUNCTION shardload.create_inbox(target regclass, inbox text DEFAULT NULL,
									   on_error text DEFAULT 'stop', reject_limit bigint DEFAULT 0,
									   policy text DEFAULT NULL, tenant text DEFAULT NULL,
									   batch_key text DEFAULT NULL, atomic boolean DEFAULT NULL)
	RETURNS regclass
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_create_inbox';
COMMENT ON FUNCTION shardload.create_inbox(regclass, text, text, bigint, text, text, text, boolean)
	IS 'make the inbox (a foreign table) that COPY loads batches of a target through; name each batch with shardload.batch_key or the inbox''s batch_key';

-- ==== atomic batches: all shards or none (two-phase commit) ====

ALTER TABLE shardload.batch ADD COLUMN atomic boolean NOT NULL DEFAULT false;
-- a target's default for batches submitted without atomic =>
ALTER TABLE shardload.target_policy ADD COLUMN atomic boolean NOT NULL DEFAULT false;

/*
 * One row per attempt of an atomic batch whose prepared transactions may
 * still be on its shards: written (committed) before the first PREPARE,
 * decided_at set in the transaction that commits the local slices (the
 * decision), removed once every shard has committed or rolled back.
 */
CREATE TABLE shardload.atomic_attempt (
	batch_id bigint NOT NULL,
	attempt int NOT NULL,
	started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	decided_at timestamptz,
	-- undecided, with a PREPARE sent and unanswered: kept until then
	settle_after timestamptz,
	-- the last recovery pass that could not end everything
	last_try timestamptz,
	CONSTRAINT atomic_attempt_pkey PRIMARY KEY (batch_id, attempt)
);
COMMENT ON TABLE shardload.atomic_attempt IS 'attempts of atomic batches whose prepared transactions may be on shards (read shardload.in_doubt)';

-- false: committed by a direct load (shardload.load) without payload; until
-- it succeeds, an interrupted one is removed by recovery
ALTER TABLE shardload.batch ADD COLUMN payload_stored boolean NOT NULL DEFAULT true;

CREATE OR REPLACE VIEW shardload.batches WITH (security_barrier) AS
	SELECT b.batch_id, b.target, b.batch_key, b.tenant, b.state, b.attempts,
		   b.rows_total, b.rows_loaded, b.rows_rejected, b.next_attempt_at,
		   b.last_failure_type, b.last_reason, b.created_at, b.finished_at,
		   b.owner, b.policy_name AS policy, b.on_error, b.reject_limit,
		   b.source_kind, b.content_hash, b.payload_bytes,
		   b.payload_purged_at IS NULL AND b.payload_stored AS payload_kept, b.atomic
	FROM shardload.batch b
	WHERE b.owner::oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
	   OR pg_catalog.pg_has_role('shardload_admin', 'MEMBER');

CREATE VIEW shardload.in_doubt WITH (security_barrier) AS
	SELECT a.batch_id, a.attempt, s.server,
		   'shardload:' || n.coordinator_id || ':' || a.batch_id || ':' || a.attempt || ':%'
			   AS gid_pattern,
		   CASE WHEN a.decided_at IS NOT NULL THEN 'commit'
				-- the attempt still runs (it holds its batch's lock): it decides
				WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'
					AND l.database = (SELECT oid FROM pg_catalog.pg_database
									  WHERE datname = pg_catalog.current_database())
					AND l.classid::bigint = a.batch_id >> 32
					AND l.objid::bigint = a.batch_id & 4294967295
					AND l.objsubid = 21324) THEN 'undecided'
				ELSE 'rollback' END AS resolution,
		   a.started_at AS prepared_since, a.decided_at
	FROM shardload.atomic_attempt a
	JOIN shardload.batches b USING (batch_id)
	CROSS JOIN shardload.node n
	CROSS JOIN LATERAL (SELECT DISTINCT sl.shard AS server FROM shardload.slice sl
						WHERE sl.batch_id = a.batch_id AND sl.shard IS NOT NULL) s;
COMMENT ON VIEW shardload.in_doubt IS 'prepared transactions of atomic batches that may be left on shards, and how recovery will end them';
GRANT SELECT ON shardload.in_doubt TO PUBLIC;

DROP FUNCTION shardload.submit(regclass, text, text, text, text, bigint, text);
CREATE FUNCTION shardload.submit(target regclass, batch_key text, source_query text,
								 policy text DEFAULT NULL, on_error text DEFAULT 'stop',
								 reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
								 atomic boolean DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit';
COMMENT ON FUNCTION shardload.submit(regclass, text, text, text, text, bigint, text, boolean)
	IS 'capture the rows of a query as a batch for a partitioned table; returns the batch id';

DROP FUNCTION shardload.submit_csv(regclass, text, text, text, text, bigint, text, boolean);
CREATE FUNCTION shardload.submit_csv(target regclass, batch_key text, data text,
									 policy text DEFAULT NULL, on_error text DEFAULT 'stop',
									 reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
									 header boolean DEFAULT false, atomic boolean DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit_csv';
COMMENT ON FUNCTION shardload.submit_csv(regclass, text, text, text, text, bigint, text, boolean, boolean)
	IS 'capture rows given as CSV text as a batch; returns the batch id';

DROP FUNCTION shardload.submit_file(regclass, text, text, text, text, bigint, text, boolean, text);
CREATE FUNCTION shardload.submit_file(target regclass, batch_key text, path text,
									  policy text DEFAULT NULL, on_error text DEFAULT 'stop',
									  reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
									  header boolean DEFAULT false, format text DEFAULT 'csv',
									  atomic boolean DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit_file';
COMMENT ON FUNCTION shardload.submit_file(regclass, text, text, text, text, bigint, text, boolean, text, boolean)
	IS 'capture rows from a server-side CSV or text file as a batch; returns the batch id';

/* atomic goes last: calls that give batch_id by position keep working */
-- shardload.load's submit (direct loads: see docs/architecture.md)
CREATE FUNCTION shardload.load_submit(target regclass, batch_key text, source_query text,
									  policy text DEFAULT NULL, on_error text DEFAULT 'stop',
									  reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
									  atomic boolean DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_load_submit';
COMMENT ON FUNCTION shardload.load_submit(regclass, text, text, text, text, bigint, text, boolean)
	IS 'shardload.load''s first step: submit, streaming a new batch to its shards; CALL shardload.run next';

DROP PROCEDURE shardload.load(regclass, text, text, text, text, bigint, text, bigint);
CREATE PROCEDURE shardload.load(target regclass, batch_key text, source_query text,
								policy text DEFAULT NULL, on_error text DEFAULT 'stop',
								reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
								INOUT batch_id bigint DEFAULT NULL, atomic boolean DEFAULT NULL)
	LANGUAGE plpgsql AS $$
BEGIN
	-- a new batch streams to its shards while it is captured; run finishes it
	batch_id := shardload.load_submit(target, batch_key, source_query, policy,
									  on_error, reject_limit, tenant, atomic);
	COMMIT;
	CALL shardload.run(batch_id);
END
$$;
COMMENT ON PROCEDURE shardload.load(regclass, text, text, text, text, bigint, text, bigint, boolean)
	IS 'submit a query''s rows as a batch and run it at once; returns the batch id';

-- SL004: a shard with prepared transactions disabled cannot take part in
-- an atomic batch; no retry mends that
INSERT INTO shardload.error_rule (sqlstate_prefix, failure_type, reason, seeded)
	VALUES ('SL004', 'NON_RETRYABLE', 'CONFIGURATION', true)
	ON CONFLICT (sqlstate_prefix) DO NOTHING;
