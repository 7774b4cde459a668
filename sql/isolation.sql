-- ==== whoever runs a batch, it runs as its owner, isolated; jobs stay their owner's ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_iso_coord;
\c regress_iso_coord
CREATE EXTENSION pg_shardload CASCADE;
CREATE ROLE regress_iso_alice LOGIN;
CREATE ROLE regress_iso_admin LOGIN IN ROLE shardload_admin;
CREATE SCHEMA iso;
GRANT USAGE ON SCHEMA iso TO PUBLIC;
CREATE TABLE iso.seen (who text, by_whom text, search_path text, restricted text);
GRANT INSERT ON iso.seen TO PUBLIC;
CREATE TABLE iso.events (id int, region int) PARTITION BY LIST (region);
CREATE TABLE iso.events_1 PARTITION OF iso.events FOR VALUES IN (1);
GRANT INSERT ON iso.events TO regress_iso_alice;
-- alice's trigger records who it runs as and tries to leave a setting behind
CREATE FUNCTION iso.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO iso.seen VALUES (current_user, session_user,
		current_setting('search_path'), current_setting('statement_timeout'));
	PERFORM set_config('search_path', 'iso, public', false);
	PERFORM set_config('statement_timeout', '4242', false);
	RETURN NEW;
END $$;
ALTER FUNCTION iso.note() OWNER TO regress_iso_alice;
CREATE TRIGGER note BEFORE INSERT ON iso.events_1 FOR EACH ROW EXECUTE FUNCTION iso.note();

SET ROLE regress_iso_alice;
SELECT shardload.submit('iso.events', 'iso-1', $$VALUES (1, 1)$$) AS b \gset
RESET ROLE;
-- an admin runs alice's batch: the trigger runs as alice, and leaves nothing behind
SET SESSION AUTHORIZATION regress_iso_admin;
CALL shardload.run(:b);
SELECT state FROM shardload.batches WHERE batch_id = :b;
SELECT current_setting('search_path') AS admin_search_path,
	   current_setting('statement_timeout') AS admin_statement_timeout;
RESET SESSION AUTHORIZATION;
SELECT who, by_whom, search_path FROM iso.seen;

-- a batch's trigger cannot switch roles: the load is security-restricted
CREATE OR REPLACE FUNCTION iso.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'SET ROLE postgres';
	RETURN NEW;
END $$;
SET ROLE regress_iso_alice;
SELECT shardload.submit('iso.events', 'iso-2', $$VALUES (2, 1)$$) AS b \gset
\set VERBOSITY terse
CALL shardload.run(:b);
\set VERBOSITY default
SELECT state, last_failure_type FROM shardload.batches WHERE batch_id = :b;
SELECT split_part(message, E'\n', 1) AS message FROM shardload.attempts WHERE batch_id = :b;
RESET ROLE;

-- ==== a dropped owner: its batch fails with a clear error, never runs as someone else ====
CREATE ROLE regress_iso_gone LOGIN;
GRANT INSERT ON iso.events TO regress_iso_gone;
DROP TRIGGER note ON iso.events_1;
SET ROLE regress_iso_gone;
SELECT shardload.submit('iso.events', 'iso-3', $$VALUES (3, 1)$$) AS b \gset
RESET ROLE;
REVOKE ALL ON iso.events FROM regress_iso_gone;
DROP ROLE regress_iso_gone;
SET client_min_messages = error;
CALL shardload.run(:b);
RESET client_min_messages;
SELECT state, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :b;
SELECT stage, sqlstate, regexp_replace(split_part(message, E'\n', 1), 'OID \d+', 'OID n') AS message
FROM shardload.attempts WHERE batch_id = :b;
SELECT count(*) AS loaded FROM iso.events WHERE id = 3;

-- ==== cron jobs ====
-- an expression that never fires is refused
SELECT shardload.schedule('never', '0 0 30 2 *', 'iso.events', $$VALUES (9, 1)$$);
-- and one that fires rarely is cheap to plan
SELECT shardload.cron_next('0 0 29 2 *', '2026-03-01 00:00+00') AS next_leap_day;
-- a job of another role cannot be replaced
SELECT shardload.schedule('iso-job', '*/5 * * * *', 'iso.events', $$VALUES (10, 1)$$);
SET ROLE regress_iso_alice;
SELECT shardload.schedule('iso-job', '* * * * *', 'iso.events', $$VALUES (11, 1)$$);
RESET ROLE;
SELECT job_name, owner, cron, source_query FROM shardload.jobs WHERE job_name = 'iso-job';
-- a job's tick keys cannot be taken by anyone's submit
SET ROLE regress_iso_alice;
SELECT shardload.submit('iso.events', 'iso-job@2030-01-01T00:00:00Z', $$VALUES (12, 1)$$);
RESET ROLE;
SELECT shardload.unschedule('iso-job');

-- ==== the catalog's planner settings stay its own ====
-- pg_shardload plans its catalog statements without seq scans and JIT; the
-- source query and the load's triggers run with the session's settings
CREATE TABLE iso.settings (region int, seen text) PARTITION BY LIST (region);
CREATE TABLE iso.settings_1 PARTITION OF iso.settings FOR VALUES IN (1);
CREATE FUNCTION iso.settings_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.seen := NEW.seen || ', trigger: ' || current_setting('enable_seqscan') || ' ' || current_setting('jit');
	RETURN NEW;
END $$;
CREATE TRIGGER seen BEFORE INSERT ON iso.settings_1 FOR EACH ROW EXECUTE FUNCTION iso.settings_seen();
SELECT shardload.submit('iso.settings', 'iso-settings',
	$$SELECT 1, 'query: ' || current_setting('enable_seqscan') || ' ' || current_setting('jit')$$) AS b \gset
CALL shardload.run(:b);
SELECT seen FROM iso.settings;
SELECT current_setting('enable_seqscan') AS session_enable_seqscan, current_setting('jit') AS session_jit;

DROP TABLE iso.events, iso.seen, iso.settings;
DROP FUNCTION iso.note(), iso.settings_seen();
DROP SCHEMA iso;
REASSIGN OWNED BY regress_iso_alice TO CURRENT_USER;
DROP ROLE regress_iso_alice, regress_iso_admin;
\c :regress_db
DROP DATABASE regress_iso_coord;
