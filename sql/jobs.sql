-- ==== cron expressions, job ownership, per-target retry policies, text-format files ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_jobs_coord;
\c regress_jobs_coord
CREATE EXTENSION pg_shardload CASCADE;
SET TimeZone = 'UTC';

-- ==== cron_next: the first tick strictly after the given time ====
SELECT cron, shardload.cron_next(cron, '2026-11-26 10:07:30+00') AS next
FROM (VALUES ('* * * * *'), ('*/15 * * * *'), ('0 * * * *'), ('5,35 * * * *'),
			 ('0 9-17/4 * * *'), ('30 2 * * 1-5'), ('0 0 13 * 5'), ('0 0 1 */3 *'),
			 ('0 0 * * 0'), ('0 0 * * 7'), ('59 23 31 12 *'), ('7/20 * * * *'),
			 ('*/10 * * * * *'), ('0 8 * * * *'), ('  0   12  *  *  *  ')) AS c(cron);
-- the tick itself is not "after" it
SELECT shardload.cron_next('*/15 * * * *', '2026-11-26 10:15:00+00');
-- day of month or day of week: either matches when both are restricted (as in cron)
SELECT shardload.cron_next('0 0 13 * 5', '2026-11-27 00:00:00+00');
SELECT shardload.cron_next('0 0 29 2 *', '2027-01-01 00:00+00') AS next_leap_day;
-- no time in the next five years: infinity (schedule refuses it)
SELECT shardload.cron_next('0 0 30 2 *', '2026-01-01 00:00+00');
-- bad expressions
\set VERBOSITY default
SELECT shardload.cron_next('* * * *');
SELECT shardload.cron_next('60 * * * *');
SELECT shardload.cron_next('* 24 * * *');
SELECT shardload.cron_next('* * 0 * *');
SELECT shardload.cron_next('* * * 13 *');
SELECT shardload.cron_next('* * * * 8');
SELECT shardload.cron_next('*/0 * * * *');
SELECT shardload.cron_next('5-1 * * * *');
SELECT shardload.cron_next('a * * * *');
SELECT shardload.cron_next('1,,2 * * * *');
SELECT shardload.cron_next(',5 * * * *');
SELECT shardload.cron_next('+5 * * * *');
SELECT shardload.cron_next('*/ * * * *');
SELECT shardload.cron_next('1- * * * *');
SELECT shardload.cron_next('4294967301 * * * *');
SELECT shardload.cron_next('*/4294967297 * * * *', '2026-11-26 10:07:30+00') AS huge_step_is_one_tick_an_hour;
SELECT shardload.cron_next('* * * * * * *');
SELECT shardload.cron_next(NULL) IS NULL AS strict;
\set VERBOSITY terse

-- ==== schedule / unschedule: a job is its owner's ====
CREATE TABLE ticks (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE ticks_1 PARTITION OF ticks FOR VALUES IN (1);
CREATE ROLE regress_jobs_alice LOGIN;
CREATE ROLE regress_jobs_bob LOGIN;
GRANT INSERT ON ticks TO regress_jobs_alice, regress_jobs_bob;
SET ROLE regress_jobs_alice;
SELECT shardload.schedule('nightly', '0 3 * * *', 'ticks', $$VALUES (1, 1)$$);
SELECT job_name, cron, target, owner, catch_up, last_error FROM shardload.jobs;
-- replacing one's own job changes it
SELECT shardload.schedule('nightly', '0 4 * * *', 'ticks', $$VALUES (2, 1)$$, catch_up => true);
SELECT job_name, cron, catch_up FROM shardload.jobs;
SET ROLE regress_jobs_bob;
\set VERBOSITY default
-- another role can neither replace nor remove it
SELECT shardload.schedule('nightly', '0 5 * * *', 'ticks', $$VALUES (3, 1)$$);
SELECT shardload.unschedule('nightly');
\set VERBOSITY terse
SELECT shardload.unschedule('no-such-job');
SELECT shardload.schedule('never', '0 0 31 2 *', 'ticks', $$VALUES (1, 1)$$);
SELECT shardload.schedule('bad', '0 0 * * *', 'ticks', $$VALUES (1, 1)$$, on_error => 'skip');
SELECT shardload.schedule(NULL, '0 0 * * *', 'ticks', $$VALUES (1, 1)$$);
RESET ROLE;
REVOKE INSERT ON ticks FROM regress_jobs_bob;
SET ROLE regress_jobs_bob;
SELECT shardload.schedule('bobs', '0 0 * * *', 'ticks', $$VALUES (1, 1)$$);
RESET ROLE;
-- the owner removes it; then it is gone
SET ROLE regress_jobs_alice;
SELECT shardload.unschedule('nightly');
SELECT shardload.unschedule('nightly');
RESET ROLE;
SELECT count(*) AS jobs_left FROM shardload.job;

-- ==== target_policy: a target's own retry policy, when the batch names none ====
CREATE SERVER jobs_closed FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '127.0.0.1', port '1', dbname 'nowhere');
CREATE USER MAPPING FOR CURRENT_USER SERVER jobs_closed;
CREATE TABLE far (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE FOREIGN TABLE far_1 PARTITION OF far FOR VALUES IN (1) SERVER jobs_closed;
INSERT INTO shardload.retry_policy (policy_name, max_attempts, base_delay, max_delay, jitter_ratio)
VALUES ('regress_once', 1, '1 second', '1 second', 0), ('regress_slow', 4, '40 seconds', '60 seconds', 0);
INSERT INTO shardload.target_policy VALUES ('far', 'regress_once');
SELECT shardload.submit('far', 'far-1', $$VALUES (1, 1)$$) AS by_target \gset
SELECT shardload.submit('far', 'far-2', $$VALUES (2, 1)$$, policy => 'regress_slow') AS by_batch \gset
CALL shardload.run(:by_target);
CALL shardload.run(:by_batch);
-- the target's policy allows one attempt: dead letter; the batch's own policy wins over it
SELECT batch_key, state, attempts FROM shardload.batches WHERE batch_id IN (:by_target, :by_batch) ORDER BY 1;
SELECT b.batch_key, a.failure_type, a.next_action,
	   round(extract(epoch FROM a.next_attempt_at - a.finished_at)) AS delay_s
FROM shardload.attempts a JOIN shardload.batches b USING (batch_id)
WHERE batch_id IN (:by_target, :by_batch) ORDER BY 1;
-- the policy is looked up when an attempt fails: a changed target policy applies to the next failure
SELECT shardload.submit('far', 'far-3', $$VALUES (3, 1)$$) AS later \gset
UPDATE shardload.target_policy SET policy_name = 'regress_slow' WHERE target = 'far'::regclass;
CALL shardload.run(:later);
SELECT state, a.next_action, round(extract(epoch FROM a.next_attempt_at - a.finished_at)) AS delay_s
FROM shardload.batches b JOIN shardload.attempts a USING (batch_id) WHERE batch_id = :later;
-- a policy in use by a target cannot be dropped from under it
DELETE FROM shardload.retry_policy WHERE policy_name = 'regress_slow';

-- ==== submit_file with format => 'text': COPY's text format, escapes and \N ====
CREATE TABLE notes (id int, region int NOT NULL, body text, tags text[]) PARTITION BY LIST (region);
CREATE TABLE notes_1 PARTITION OF notes FOR VALUES IN (1);
CREATE TABLE notes_src (id int, region int, body text, tags text[]);
INSERT INTO notes_src VALUES
	(1, 1, E'tab\there', '{a,b}'), (2, 1, E'new\nline', NULL), (3, 1, E'back\\slash', '{"x y"}'),
	(4, 1, '', '{}'), (5, 1, NULL, '{NULL}'), (6, 1, 'ünïcödé ''quoted'' "double"', '{"\\"}');
SELECT current_setting('data_directory') || '/regress_notes.txt' AS notes_file \gset
COPY notes_src TO :'notes_file';
SELECT shardload.submit_file('notes', 'notes-text', :'notes_file', format => 'text') AS t \gset
CALL shardload.run(:t);
SELECT state, rows_total, rows_loaded FROM shardload.batches WHERE batch_id = :t;
SELECT count(*) AS differing FROM ((TABLE notes_src EXCEPT ALL TABLE notes_1) UNION ALL (TABLE notes_1 EXCEPT ALL TABLE notes_src)) d;
SELECT id, body IS NULL AS null_body, body = '' AS empty_body FROM notes_1 WHERE id IN (4, 5) ORDER BY id;
-- the same file read as CSV: the commas inside the arrays split the lines into other fields
\set VERBOSITY default
SELECT shardload.submit_file('notes', 'notes-csv', :'notes_file');
SELECT shardload.submit_file('notes', 'notes-bad', :'notes_file', format => 'binary');
\set VERBOSITY terse
-- atomic, with the arguments after it given too (only a local partition:
-- nothing to PREPARE, the local slice and the decision commit together)
SELECT shardload.submit_file('notes', 'notes-atomic', :'notes_file', header => false,
	format => 'text', atomic => true) AS fa \gset
SELECT shardload.submit_csv('notes', 'notes-csv-atomic', E'id,region,body,tags\n7,1,x,{}\n',
	header => true, atomic => true) AS ca \gset
CALL shardload.run(:fa);
CALL shardload.run(:ca);
SELECT batch_key, state, rows_loaded, atomic FROM shardload.batches WHERE batch_id IN (:fa, :ca) ORDER BY batch_id;
SELECT count(*) AS in_doubt FROM shardload.in_doubt;
-- a trigger that releases the batch's lock: no decision, nothing committed
CREATE FUNCTION unlock_all() RETURNS trigger LANGUAGE plpgsql AS
	$$ BEGIN PERFORM pg_advisory_unlock_all(); RETURN NEW; END $$;
CREATE TRIGGER unlock_all BEFORE INSERT ON notes_1 FOR EACH ROW EXECUTE FUNCTION unlock_all();
SELECT count(*) AS notes_before FROM notes_1;
SELECT shardload.submit_csv('notes', 'notes-unlock', E'8,1,y,{}\n', atomic => true) AS u \gset
CALL shardload.run(:u);
SELECT state, rows_loaded, stage, message FROM shardload.batches JOIN shardload.attempts USING (batch_id)
	WHERE batch_id = :u;
SELECT count(*) AS notes_after FROM notes_1;
DROP TRIGGER unlock_all ON notes_1;

DROP TABLE ticks, far, notes, notes_src;
DROP SERVER jobs_closed CASCADE;
DROP ROLE regress_jobs_alice, regress_jobs_bob;
\c :regress_db
DROP DATABASE regress_jobs_coord;
