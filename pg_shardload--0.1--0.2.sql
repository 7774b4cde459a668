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
									   batch_key text DEFAULT NULL)
	RETURNS regclass
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_create_inbox';
COMMENT ON FUNCTION shardload.create_inbox(regclass, text, text, bigint, text, text, text)
	IS 'make the inbox (a foreign table) that COPY loads batches of a target through; name each batch with shardload.batch_key or the inbox''s batch_key';
