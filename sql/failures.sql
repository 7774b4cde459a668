-- ==== failure classes, retry schedule, quarantine, dead letters ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_fail_coord;
\c regress_fail_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_fail_a;
\c regress_fail_a
CREATE TABLE metrics_1 (id int PRIMARY KEY, region int NOT NULL, v int CHECK (v >= 0));
\c :coord
SELECT regress_shard('fail_a', 'regress_fail_a');
CREATE TABLE metrics (id int, region int NOT NULL, v int) PARTITION BY LIST (region);
CREATE FOREIGN TABLE metrics_1 PARTITION OF metrics FOR VALUES IN (1) SERVER fail_a;
-- reproducible schedules: no jitter
INSERT INTO shardload.retry_policy (policy_name, max_attempts, base_delay, max_delay, jitter_ratio)
VALUES ('regress_fixed', 3, '10 seconds', '25 seconds', 0);
\set VERBOSITY terse

-- ==== TRANSIENT: nothing listens on the port ====
CREATE SERVER fail_closed FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '127.0.0.1', port '1', dbname 'regress_fail_a');
CREATE USER MAPPING FOR CURRENT_USER SERVER fail_closed;
CREATE TABLE metrics_down (id int, region int NOT NULL, v int) PARTITION BY LIST (region);
CREATE FOREIGN TABLE metrics_down_1 PARTITION OF metrics_down FOR VALUES IN (1)
	SERVER fail_closed OPTIONS (table_name 'metrics_1');
SELECT shardload.submit('metrics_down', 'down-1', $$VALUES (1, 1, 1)$$, policy => 'regress_fixed') AS d \gset
CALL shardload.run(:d);
CALL shardload.run(:d);
SELECT state, attempts, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :d;
-- the backoff: 10 s, then 20 s (no jitter), measured from the end of each attempt
SELECT attempt, stage, shard, sqlstate, failure_type, reason, next_action,
	   round(extract(epoch FROM next_attempt_at - finished_at)) AS delay_s
FROM shardload.attempts WHERE batch_id = :d ORDER BY attempt;
-- the third attempt is the last one: dead letter
CALL shardload.run(:d);
SELECT state, attempts FROM shardload.batches WHERE batch_id = :d;
SELECT attempt, next_action, next_attempt_at FROM shardload.attempts WHERE batch_id = :d AND attempt = 3;
SELECT shardload.failure_record(:d) ->> 'status' AS status, shardload.failure_record(:d) ->> 'next_action' AS action;
-- replay starts a new series of attempts
SELECT shardload.replay(:d);
CALL shardload.run(:d);
SELECT state, attempts FROM shardload.batches WHERE batch_id = :d;

-- ==== NON_RETRYABLE: a CHECK violation on the shard ====
SELECT shardload.submit('metrics', 'neg-1', $$VALUES (1, 1, 5), (2, 1, -1)$$) AS n \gset
CALL shardload.run(:n);
SELECT state, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :n;
SELECT sqlstate, next_action, next_attempt_at IS NULL AS no_retry, message FROM shardload.attempts WHERE batch_id = :n;
-- the same failure in its parts, as the shard reported it
SELECT primary_message, detail, hint, context FROM shardload.attempts WHERE batch_id = :n;
SELECT count(*) AS loaded FROM metrics;

-- ==== CONFIGURATION: a missing user mapping ====
CREATE SERVER fail_nomap FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'regress_fail_a');
CREATE TABLE metrics_nomap (id int, region int NOT NULL, v int) PARTITION BY LIST (region);
CREATE FOREIGN TABLE metrics_nomap_1 PARTITION OF metrics_nomap FOR VALUES IN (1)
	SERVER fail_nomap OPTIONS (table_name 'metrics_1');
SELECT shardload.submit('metrics_nomap', 'nomap-1', $$VALUES (3, 1, 1)$$) AS m \gset
-- (the message is postgres_fdw's, worded differently from PostgreSQL 17 on)
SET client_min_messages = error;
CALL shardload.run(:m);
RESET client_min_messages;
SELECT stage, shard, sqlstate, failure_type, reason, next_action FROM shardload.attempts WHERE batch_id = :m;

-- ==== CONFIGURATION: no such database ====
SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS sockdir \gset
ALTER SERVER fail_closed OPTIONS (SET host :'sockdir', SET port :'PORT', SET dbname 'regress_no_such_db');
SELECT shardload.submit('metrics_down', 'nodb-1', $$VALUES (4, 1, 1)$$) AS x \gset
CALL shardload.run(:x);
SELECT stage, sqlstate, failure_type, reason FROM shardload.attempts WHERE batch_id = :x;

-- ==== UNKNOWN: a trigger on the shard raises; quarantined, then replayed ====
\c regress_fail_a
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by trigger'; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON metrics_1 FOR EACH ROW EXECUTE FUNCTION refuse();
\c :coord
SELECT shardload.submit('metrics', 'trig-1', $$VALUES (10, 1, 1), (11, 1, 2)$$) AS t \gset
CALL shardload.run(:t);
SELECT state, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :t;
SELECT sqlstate, next_action FROM shardload.attempts WHERE batch_id = :t;
\c regress_fail_a
DROP TRIGGER refuse ON metrics_1;
\c :coord
SELECT shardload.replay(:t);
CALL shardload.run(:t);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :t;

-- ==== operators' rules apply to the next attempt ====
INSERT INTO shardload.error_rule (sqlstate_prefix, failure_type, reason) VALUES ('23514', 'TRANSIENT', 'RETRY_CHECKS');
SELECT shardload.submit('metrics', 'neg-2', $$VALUES (20, 1, -5)$$) AS r \gset
CALL shardload.run(:r);
SELECT state, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :r;
DELETE FROM shardload.error_rule WHERE sqlstate_prefix = '23514';

-- ==== the failures view: the latest failure of every batch ====
SELECT job_id = :d AS is_d, stage, status, failure_type, reason, sqlstate, next_action
FROM shardload.failures WHERE job_id IN (:d, :n, :m, :x, :t, :r) ORDER BY job_id;
SELECT jsonb_object_keys(shardload.failure_record(:n)) AS key ORDER BY 1;
SELECT shardload.failure_record(:t) ->> 'status' AS no_longer_failing;

-- ==== atomic batches need prepared transactions on every shard ====
-- this server has max_prepared_transactions = 0 (test/regress.conf)
SELECT count(*) AS before FROM metrics;
SELECT shardload.submit('metrics', 'atomic-1', $$VALUES (30, 1, 1), (31, 1, 2)$$, atomic => true) AS a \gset
\set VERBOSITY default
CALL shardload.run(:a);
\set VERBOSITY terse
SELECT state, atomic, rows_loaded, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :a;
SELECT sqlstate, next_action FROM shardload.attempts WHERE batch_id = :a;
SELECT count(*) AS after FROM metrics;
SELECT count(*) AS in_doubt FROM shardload.in_doubt;
-- a target's default, and atomic => false to go without it
INSERT INTO shardload.target_policy (target, policy_name, atomic) VALUES ('metrics', 'default', true);
SELECT shardload.submit('metrics', 'atomic-2', $$VALUES (32, 1, 1)$$) AS a2 \gset
SELECT shardload.submit('metrics', 'atomic-3', $$VALUES (33, 1, 1)$$, atomic => false) AS a3 \gset
SELECT batch_key, atomic FROM shardload.batches WHERE batch_id IN (:a2, :a3) ORDER BY batch_id;
DELETE FROM shardload.target_policy WHERE target = 'metrics'::regclass;
SELECT shardload.cancel(:a2);

DROP TABLE metrics, metrics_down, metrics_nomap;
DROP SERVER fail_a, fail_closed, fail_nomap CASCADE;
DELETE FROM shardload.retry_policy WHERE policy_name = 'regress_fixed';
\c :regress_db
DROP DATABASE regress_fail_coord;
