/* pg_shardload--0.1.sql */
\echo Use "CREATE EXTENSION pg_shardload" to load this file. \quit

CREATE SCHEMA shardload;
COMMENT ON SCHEMA shardload IS 'pg_shardload: exactly-once batch loading into postgres_fdw shards';

/*
 * Members of shardload_admin see and run every role's batches.  Roles are
 * cluster-wide, so the role may already exist from another database.
 */
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'shardload_admin') THEN
		CREATE ROLE shardload_admin NOLOGIN;
	END IF;
END
$$;

-- ==== tables ====

CREATE TABLE shardload.node (
	singleton bool NOT NULL DEFAULT true,
	coordinator_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	CONSTRAINT node_pkey PRIMARY KEY (singleton),
	CONSTRAINT node_singleton_check CHECK (singleton)
);
INSERT INTO shardload.node DEFAULT VALUES;
COMMENT ON TABLE shardload.node IS 'identity of this coordinator database in the shard ledgers';
/*
 * Not dumped: batch history is not dumped either, so a restored database
 * starts batch ids afresh and must not reuse the old identity.
 */

CREATE TABLE shardload.retry_policy (
	policy_name text NOT NULL,
	max_attempts int NOT NULL DEFAULT 5,
	base_delay interval NOT NULL DEFAULT '0.5 seconds',
	max_delay interval NOT NULL DEFAULT '15 seconds',
	jitter_ratio float8 NOT NULL DEFAULT 0.2,
	unknown_attempts int NOT NULL DEFAULT 1,
	CONSTRAINT retry_policy_pkey PRIMARY KEY (policy_name),
	CONSTRAINT retry_policy_max_attempts_check CHECK (max_attempts > 0),
	CONSTRAINT retry_policy_unknown_attempts_check CHECK (unknown_attempts > 0),
	CONSTRAINT retry_policy_delay_check CHECK (base_delay >= '0' AND max_delay >= base_delay),
	CONSTRAINT retry_policy_jitter_check CHECK (jitter_ratio >= 0 AND jitter_ratio < 1)
);
INSERT INTO shardload.retry_policy (policy_name) VALUES ('default');
COMMENT ON TABLE shardload.retry_policy IS 'retry policies: attempts, exponential backoff and jitter';
SELECT pg_catalog.pg_extension_config_dump('shardload.retry_policy',
										   $$WHERE policy_name <> 'default'$$);

CREATE TABLE shardload.target_policy (
	target regclass NOT NULL,
	policy_name text NOT NULL,
	CONSTRAINT target_policy_pkey PRIMARY KEY (target),
	CONSTRAINT target_policy_policy_fkey FOREIGN KEY (policy_name)
		REFERENCES shardload.retry_policy (policy_name) ON UPDATE CASCADE
);
COMMENT ON TABLE shardload.target_policy IS 'the retry policy of each target that does not use "default"';
SELECT pg_catalog.pg_extension_config_dump('shardload.target_policy', '');

CREATE TABLE shardload.error_rule (
	sqlstate_prefix text NOT NULL,
	failure_type text NOT NULL,
	reason text NOT NULL,
	seeded boolean NOT NULL DEFAULT false,
	CONSTRAINT error_rule_pkey PRIMARY KEY (sqlstate_prefix),
	CONSTRAINT error_rule_prefix_check CHECK (sqlstate_prefix ~ '^[0-9A-Z]{1,5}$'),
	CONSTRAINT error_rule_failure_type_check
		CHECK (failure_type IN ('TRANSIENT', 'NON_RETRYABLE', 'UNKNOWN'))
);
INSERT INTO shardload.error_rule (sqlstate_prefix, failure_type, reason) VALUES
	('08', 'TRANSIENT', 'UPSTREAM_UNAVAILABLE'),
	('57P01', 'TRANSIENT', 'UPSTREAM_UNAVAILABLE'),
	('57P02', 'TRANSIENT', 'UPSTREAM_UNAVAILABLE'),
	('57P03', 'TRANSIENT', 'UPSTREAM_UNAVAILABLE'),
	('53300', 'TRANSIENT', 'RATE_LIMIT'),
	('53', 'TRANSIENT', 'RESOURCE_EXHAUSTED'),
	('57014', 'TRANSIENT', 'TIMEOUT'),
	('55P03', 'TRANSIENT', 'TIMEOUT'),
	('40001', 'TRANSIENT', 'CONFLICT'),
	('40P01', 'TRANSIENT', 'CONFLICT'),
	('28', 'NON_RETRYABLE', 'AUTH_OR_PERMISSION'),
	('42501', 'NON_RETRYABLE', 'AUTH_OR_PERMISSION'),
	('2F003', 'NON_RETRYABLE', 'AUTH_OR_PERMISSION'),
	('42', 'NON_RETRYABLE', 'BAD_REQUEST_OR_SCHEMA'),
	('3D000', 'NON_RETRYABLE', 'CONFIGURATION'),
	('42704', 'NON_RETRYABLE', 'CONFIGURATION'),
	('22', 'NON_RETRYABLE', 'INPUT_VALIDATION'),
	('23', 'NON_RETRYABLE', 'INPUT_VALIDATION');
UPDATE shardload.error_rule SET seeded = true;
COMMENT ON TABLE shardload.error_rule IS 'SQLSTATE (or class prefix) to failure class; the longest matching prefix wins';
-- pg_dump keeps the rules operators added; CREATE EXTENSION brings the seeded ones
SELECT pg_catalog.pg_extension_config_dump('shardload.error_rule', 'WHERE NOT seeded');

CREATE TABLE shardload.batch (
	batch_id bigserial NOT NULL,
	target regclass NOT NULL,
	target_name text NOT NULL,
	batch_key text NOT NULL,
	tenant text,
	owner regrole NOT NULL,
	policy_name text,
	on_error text NOT NULL DEFAULT 'stop',
	reject_limit bigint NOT NULL DEFAULT 0,
	source_kind text NOT NULL,
	columns text NOT NULL DEFAULT '',
	content_hash text NOT NULL DEFAULT '',
	state text NOT NULL DEFAULT 'pending',
	attempts int NOT NULL DEFAULT 0,
	series_start int NOT NULL DEFAULT 0,
	rows_total bigint NOT NULL DEFAULT 0,
	rows_loaded bigint NOT NULL DEFAULT 0,
	rows_rejected bigint NOT NULL DEFAULT 0,
	payload_bytes bigint NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_failure_type text,
	last_reason text,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	finished_at timestamptz,
	payload_purged_at timestamptz,
	CONSTRAINT batch_pkey PRIMARY KEY (batch_id),
	CONSTRAINT batch_target_key_unique UNIQUE (target, batch_key),
	CONSTRAINT batch_state_check CHECK (state IN ('pending', 'running', 'retry_wait',
		'succeeded', 'failed', 'quarantined', 'dead', 'cancelled')),
	CONSTRAINT batch_on_error_check CHECK (on_error IN ('stop', 'reject')),
	CONSTRAINT batch_reject_limit_check CHECK (reject_limit >= 0),
	CONSTRAINT batch_source_kind_check CHECK (source_kind IN ('query', 'csv', 'file'))
);
CREATE INDEX batch_due_idx ON shardload.batch (next_attempt_at)
	WHERE state IN ('pending', 'retry_wait');
CREATE INDEX batch_running_idx ON shardload.batch (batch_id) WHERE state = 'running';
CREATE INDEX batch_content_hash_idx ON shardload.batch (target, content_hash);
CREATE INDEX batch_purge_idx ON shardload.batch (finished_at)
	WHERE payload_purged_at IS NULL AND finished_at IS NOT NULL;
COMMENT ON TABLE shardload.batch IS 'one row per submitted batch (read shardload.batches)';

/*
 * The captured rows, as COPY text lines already routed to their slice, in
 * chunks.  STORAGE EXTERNAL: no compression, so capture and load only copy.
 */
CREATE TABLE shardload.payload (
	batch_id bigint NOT NULL,
	slice_no int NOT NULL,
	chunk_no int NOT NULL,
	data bytea NOT NULL,
	line_numbers bytea,			-- each row's input line, int8 each
	CONSTRAINT payload_pkey PRIMARY KEY (batch_id, slice_no, chunk_no),
	CONSTRAINT payload_batch_fkey FOREIGN KEY (batch_id)
		REFERENCES shardload.batch (batch_id) ON DELETE CASCADE
);
ALTER TABLE shardload.payload ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE shardload.payload ALTER COLUMN line_numbers SET STORAGE EXTERNAL;
COMMENT ON TABLE shardload.payload IS 'captured rows of each batch until the retention period after it finished';

CREATE TABLE shardload.slice (
	batch_id bigint NOT NULL,
	slice_no int NOT NULL,
	partition regclass,
	partition_name text,
	shard text,
	rows bigint NOT NULL DEFAULT 0,
	bytes bigint NOT NULL DEFAULT 0,
	rows_rejected bigint NOT NULL DEFAULT 0,
	state text NOT NULL DEFAULT 'pending',
	rows_sent bigint NOT NULL DEFAULT 0,
	first_row_line bigint,
	first_row_detail text,
	committed_at timestamptz,
	CONSTRAINT slice_pkey PRIMARY KEY (batch_id, slice_no),
	CONSTRAINT slice_batch_fkey FOREIGN KEY (batch_id)
		REFERENCES shardload.batch (batch_id) ON DELETE CASCADE,
	CONSTRAINT slice_state_check CHECK (state IN ('pending', 'committed', 'failed', 'unroutable'))
);
COMMENT ON TABLE shardload.slice IS 'the rows of one batch for one partition (read shardload.slices)';

CREATE TABLE shardload.attempt (
	batch_id bigint NOT NULL,
	attempt int NOT NULL,
	stage text,
	shard text,
	started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at timestamptz,
	status text NOT NULL DEFAULT 'running',
	failure_type text,
	reason text,
	sqlstate text,
	message text,
	next_action text,
	next_attempt_at timestamptz,
	runner_pid int,
	CONSTRAINT attempt_pkey PRIMARY KEY (batch_id, attempt),
	CONSTRAINT attempt_batch_fkey FOREIGN KEY (batch_id)
		REFERENCES shardload.batch (batch_id) ON DELETE CASCADE,
	CONSTRAINT attempt_status_check CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
	CONSTRAINT attempt_stage_check CHECK (stage IN ('CAPTURE', 'ROUTE', 'CONNECT', 'COPY', 'COMMIT', 'VERIFY')),
	CONSTRAINT attempt_failure_type_check
		CHECK (failure_type IN ('TRANSIENT', 'NON_RETRYABLE', 'UNKNOWN')),
	CONSTRAINT attempt_next_action_check
		CHECK (next_action IN ('NONE', 'RETRY', 'STOP', 'QUARANTINE', 'DLQ'))
);
COMMENT ON TABLE shardload.attempt IS 'one row per attempt to run a batch (read shardload.attempts)';

CREATE TABLE shardload.reject (
	batch_id bigint NOT NULL,
	line bigint NOT NULL,
	sqlstate text NOT NULL,
	message text NOT NULL,
	raw_row text,
	slice_no int,				-- set for rows the shard refused
	slice_line bigint,			-- their line within the slice
	CONSTRAINT reject_pkey PRIMARY KEY (batch_id, line),
	CONSTRAINT reject_batch_fkey FOREIGN KEY (batch_id)
		REFERENCES shardload.batch (batch_id) ON DELETE CASCADE
);
COMMENT ON TABLE shardload.reject IS 'rows of a batch that could not be loaded, with the reason';

CREATE TABLE shardload.job (
	job_name text NOT NULL,
	cron text NOT NULL,
	target regclass NOT NULL,
	source_query text NOT NULL,
	owner regrole NOT NULL,
	policy_name text,
	on_error text NOT NULL DEFAULT 'stop',
	reject_limit bigint NOT NULL DEFAULT 0,
	tenant text,
	catch_up boolean NOT NULL DEFAULT false,
	last_tick timestamptz NOT NULL,
	last_batch_id bigint,
	last_error text,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT job_pkey PRIMARY KEY (job_name),
	CONSTRAINT job_on_error_check CHECK (on_error IN ('stop', 'reject'))
);
COMMENT ON TABLE shardload.job IS 'cron-scheduled loads: one batch per tick (read shardload.jobs)';
SELECT pg_catalog.pg_extension_config_dump('shardload.job', '');

CREATE TABLE shardload.shard_state (
	server text NOT NULL,
	circuit text NOT NULL DEFAULT 'closed',
	consecutive_failures int NOT NULL DEFAULT 0,
	opened_at timestamptz,
	last_success_at timestamptz,
	last_failure_at timestamptz,
	last_error text,
	CONSTRAINT shard_state_pkey PRIMARY KEY (server),
	CONSTRAINT shard_state_circuit_check CHECK (circuit IN ('closed', 'open'))
);
COMMENT ON TABLE shardload.shard_state IS 'each shard''s circuit breaker (read shardload.shards)';

-- ==== functions ====

CREATE FUNCTION shardload.submit(target regclass, batch_key text, source_query text,
								 policy text DEFAULT NULL, on_error text DEFAULT 'stop',
								 reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit';
COMMENT ON FUNCTION shardload.submit(regclass, text, text, text, text, bigint, text)
	IS 'capture the rows of a query as a batch for a partitioned table; returns the batch id';

CREATE FUNCTION shardload.submit_csv(target regclass, batch_key text, data text,
									 policy text DEFAULT NULL, on_error text DEFAULT 'stop',
									 reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
									 header boolean DEFAULT false)
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit_csv';
COMMENT ON FUNCTION shardload.submit_csv(regclass, text, text, text, text, bigint, text, boolean)
	IS 'capture rows given as CSV text as a batch; returns the batch id';

CREATE FUNCTION shardload.submit_file(target regclass, batch_key text, path text,
									  policy text DEFAULT NULL, on_error text DEFAULT 'stop',
									  reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
									  header boolean DEFAULT false, format text DEFAULT 'csv')
	RETURNS bigint
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_submit_file';
COMMENT ON FUNCTION shardload.submit_file(regclass, text, text, text, text, bigint, text, boolean, text)
	IS 'capture rows from a server-side CSV or text file as a batch; returns the batch id';

CREATE PROCEDURE shardload.run(batch_id bigint)
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_run';
COMMENT ON PROCEDURE shardload.run(bigint) IS 'run one attempt of a batch now, in this session';

/* No SET clause: it would forbid the COMMIT between submit and run. */
CREATE PROCEDURE shardload.load(target regclass, batch_key text, source_query text,
								policy text DEFAULT NULL, on_error text DEFAULT 'stop',
								reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
								INOUT batch_id bigint DEFAULT NULL)
	LANGUAGE plpgsql AS $$
BEGIN
	batch_id := shardload.submit(target, batch_key, source_query, policy,
								 on_error, reject_limit, tenant);
	COMMIT;
	CALL shardload.run(batch_id);
END
$$;
COMMENT ON PROCEDURE shardload.load(regclass, text, text, text, text, bigint, text, bigint)
	IS 'submit a query''s rows as a batch and run it at once; returns the batch id';

CREATE FUNCTION shardload.run_due(max_batches int DEFAULT 10) RETURNS int
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_run_due';
COMMENT ON FUNCTION shardload.run_due(int)
	IS 'run due batches (pending, or retry_wait whose time has come) in background workers; returns how many';

CREATE FUNCTION shardload.schedule(job_name text, cron text, target regclass, source_query text,
								   policy text DEFAULT NULL, on_error text DEFAULT 'stop',
								   reject_limit bigint DEFAULT 0, tenant text DEFAULT NULL,
								   catch_up boolean DEFAULT false)
	RETURNS void
	LANGUAGE C AS 'MODULE_PATHNAME', 'shardload_schedule';
COMMENT ON FUNCTION shardload.schedule(text, text, regclass, text, text, text, bigint, text, boolean)
	IS 'load a query''s rows every cron tick, one batch per tick ($1 = tick, $2 = previous tick)';

CREATE FUNCTION shardload.unschedule(job_name text) RETURNS boolean
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_unschedule';
COMMENT ON FUNCTION shardload.unschedule(text) IS 'remove a cron job; its batches stay';

CREATE FUNCTION shardload.cron_next(cron text, after timestamptz DEFAULT pg_catalog.now())
	RETURNS timestamptz
	LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'shardload_cron_next';
COMMENT ON FUNCTION shardload.cron_next(text, timestamptz)
	IS 'the first tick of a cron expression (UTC) after a time';

CREATE FUNCTION shardload.cancel(batch_id bigint) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_cancel';
COMMENT ON FUNCTION shardload.cancel(bigint) IS 'stop a batch from being tried again';

CREATE FUNCTION shardload.replay(batch_id bigint) RETURNS void
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_replay';
COMMENT ON FUNCTION shardload.replay(bigint)
	IS 'put a failed, quarantined, dead or cancelled batch back in the queue';

CREATE FUNCTION shardload.purge_payloads() RETURNS bigint
	LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'shardload_purge_payloads';
COMMENT ON FUNCTION shardload.purge_payloads()
	IS 'remove the payload of batches finished longer than shardload.payload_retention ago';
REVOKE ALL ON FUNCTION shardload.purge_payloads() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shardload.purge_payloads() TO shardload_admin;

CREATE FUNCTION shardload.classify(sqlstate text, OUT failure_type text, OUT reason text)
	RETURNS record
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT coalesce(r.failure_type, 'UNKNOWN'), coalesce(r.reason, 'UNCLASSIFIED_EXCEPTION')
	FROM (SELECT 1) AS one
	LEFT JOIN LATERAL (
		SELECT e.failure_type, e.reason FROM shardload.error_rule e
		WHERE left(classify.sqlstate, length(e.sqlstate_prefix)) = e.sqlstate_prefix
		ORDER BY length(e.sqlstate_prefix) DESC LIMIT 1) AS r ON true
$$;
COMMENT ON FUNCTION shardload.classify(text) IS 'the failure class and reason of a SQLSTATE';

-- ==== views ====

CREATE VIEW shardload.batches WITH (security_barrier) AS
	SELECT b.batch_id, b.target, b.batch_key, b.tenant, b.state, b.attempts,
		   b.rows_total, b.rows_loaded, b.rows_rejected, b.next_attempt_at,
		   b.last_failure_type, b.last_reason, b.created_at, b.finished_at,
		   b.owner, b.policy_name AS policy, b.on_error, b.reject_limit,
		   b.source_kind, b.content_hash, b.payload_bytes,
		   b.payload_purged_at IS NULL AS payload_kept
	FROM shardload.batch b
	WHERE b.owner::oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
	   OR pg_catalog.pg_has_role('shardload_admin', 'MEMBER');
COMMENT ON VIEW shardload.batches IS 'every batch this role may see, with its state';

/*
 * Rows sent so far by running attempts, from the COPY progress slots of the
 * backends running them (see copy_stream.c): visible to roles that may see
 * those backends' progress (the same role, or pg_read_all_stats).
 */
CREATE VIEW shardload.progress AS
	SELECT p.pid, p.param9 AS batch_id, (v.x >> 40)::int AS slice_no,
		   v.x & 1099511627775 AS rows_sent, p.param1 AS bytes_sent, p.param2 AS bytes_total
	FROM pg_catalog.pg_stat_get_progress_info('COPY') p,
		 LATERAL (VALUES (p.param11), (p.param12), (p.param13), (p.param14), (p.param15),
						 (p.param16), (p.param17), (p.param18), (p.param19), (p.param20)) AS v(x)
	WHERE p.param9 > 0 AND v.x > 0
	  AND p.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
COMMENT ON VIEW shardload.progress IS 'rows each slice of a running attempt has sent so far';

CREATE VIEW shardload.slices WITH (security_barrier) AS
	SELECT s.batch_id, coalesce(s.partition_name, s.partition::text) AS partition, s.shard,
		   s.rows, s.state, s.committed_at,
		   CASE WHEN s.state = 'committed' THEN s.rows
				ELSE coalesce(live.rows_sent, 0) END AS rows_sent,
		   s.bytes, s.slice_no, s.first_row_line, s.first_row_detail, s.rows_rejected
	FROM shardload.slice s
	JOIN shardload.batches b USING (batch_id)
	LEFT JOIN shardload.progress live
		ON live.batch_id = s.batch_id AND live.slice_no = s.slice_no;
COMMENT ON VIEW shardload.slices IS 'the slices (rows of a batch for one partition) and whether they are committed';

CREATE VIEW shardload.attempts WITH (security_barrier) AS
	SELECT a.batch_id, a.attempt, a.stage, a.shard, a.started_at, a.finished_at,
		   a.status, a.failure_type, a.reason, a.sqlstate, a.message,
		   a.next_action, a.next_attempt_at
	FROM shardload.attempt a
	JOIN shardload.batches b USING (batch_id);
COMMENT ON VIEW shardload.attempts IS 'every attempt to run a batch, with its outcome';

CREATE VIEW shardload.rejects WITH (security_barrier) AS
	SELECT r.batch_id, r.line, r.sqlstate, r.message, r.raw_row,
		   CASE WHEN r.slice_no IS NULL THEN 'coordinator' ELSE 'shard' END AS found_by
	FROM shardload.reject r
	JOIN shardload.batches b USING (batch_id);
COMMENT ON VIEW shardload.rejects IS 'rows that could not be loaded, with the reason';

CREATE VIEW shardload.jobs WITH (security_barrier) AS
	SELECT j.job_name, j.cron, j.target, j.owner, j.tenant, j.catch_up, j.last_tick,
		   shardload.cron_next(j.cron, j.last_tick) AS next_tick,
		   j.last_batch_id, b.state AS last_state, j.last_error, j.source_query,
		   j.policy_name AS policy, j.on_error, j.reject_limit, j.created_at
	FROM shardload.job j
	LEFT JOIN shardload.batch b ON b.batch_id = j.last_batch_id
	WHERE j.owner::oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
	   OR pg_catalog.pg_has_role('shardload_admin', 'MEMBER');
COMMENT ON VIEW shardload.jobs IS 'cron jobs with their last and next tick and the state of their last batch';

CREATE VIEW shardload.shards AS
	SELECT c.server, c.circuit, c.consecutive_failures, c.last_success_at, c.last_failure_at,
		   c.last_error, c.opened_at,
		   c.opened_at + pg_catalog.current_setting('shardload.circuit_cooldown', true)::interval
			   AS probe_at
	FROM shardload.shard_state c;
COMMENT ON VIEW shardload.shards IS 'each shard''s state: circuit, last success, last failure';

CREATE VIEW shardload.failures WITH (security_barrier) AS
	SELECT DISTINCT ON (a.batch_id)
		   a.batch_id AS job_id, b.tenant AS tenant_id, a.stage, b.state AS status,
		   a.failure_type, a.reason, a.sqlstate, a.message, b.attempts,
		   a.next_action, a.finished_at AS "timestamp", a.next_attempt_at, a.shard
	FROM shardload.attempt a
	JOIN shardload.batches b USING (batch_id)
	WHERE a.status IN ('failed', 'interrupted')
	ORDER BY a.batch_id, a.attempt DESC;
COMMENT ON VIEW shardload.failures IS 'the latest failed attempt of every batch';

CREATE FUNCTION shardload.failure_record(batch_id bigint) RETURNS jsonb
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT jsonb_build_object('job_id', f.job_id, 'tenant_id', f.tenant_id,
							  'stage', f.stage, 'status', f.status,
							  'failure_type', f.failure_type, 'reason', f.reason,
							  'sqlstate', f.sqlstate, 'message', f.message,
							  'attempts', f.attempts, 'next_action', f.next_action,
							  'next_attempt_at', f.next_attempt_at, 'shard', f.shard,
							  'timestamp', f."timestamp")
	FROM shardload.failures f WHERE f.job_id = failure_record.batch_id
$$;
COMMENT ON FUNCTION shardload.failure_record(bigint)
	IS 'the latest failure of a batch as one JSON record (NULL if it never failed)';

-- ==== grants ====

GRANT USAGE ON SCHEMA shardload TO PUBLIC;
GRANT SELECT ON shardload.batches, shardload.slices, shardload.attempts,
	shardload.rejects, shardload.failures, shardload.jobs, shardload.shards,
	shardload.progress TO PUBLIC;
GRANT SELECT ON shardload.retry_policy, shardload.error_rule, shardload.target_policy TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON shardload.retry_policy, shardload.error_rule,
	shardload.target_policy TO shardload_admin;
