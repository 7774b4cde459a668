-- ==== run_due(): what the background scheduler does, callable from any cron ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_due_coord;
\c regress_due_coord
CREATE EXTENSION pg_shardload CASCADE;
CREATE TABLE jobs (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE jobs_1 PARTITION OF jobs FOR VALUES IN (1);
CREATE TABLE jobs_2 PARTITION OF jobs FOR VALUES IN (2);
CREATE ROLE regress_due LOGIN;
GRANT INSERT ON jobs TO regress_due;

SELECT shardload.submit('jobs', 'due-1', $$SELECT g, g % 2 + 1 FROM generate_series(1, 100) g$$);
SELECT shardload.submit('jobs', 'due-2', $$SELECT g, g % 2 + 1 FROM generate_series(101, 150) g$$);
SELECT shardload.submit('jobs', 'later-1', $$VALUES (999, 1)$$) AS later \gset
SELECT shardload.cancel(:later);
SET ROLE regress_due;
SELECT shardload.submit('jobs', 'due-3', $$VALUES (500, 1)$$);
-- a role runs only its own due batches
SELECT shardload.run_due(10) AS started;
SELECT batch_key, state FROM shardload.batches ORDER BY batch_id;
RESET ROLE;
-- an administrator runs everything that is due; cancelled batches are not
SELECT shardload.run_due(10) AS started;
SELECT batch_key, state, attempts, rows_loaded FROM shardload.batches
WHERE batch_key IN ('due-1', 'due-2', 'due-3', 'later-1') ORDER BY batch_id;
SELECT count(*), count(DISTINCT id) FROM jobs;
SELECT shardload.run_due(10) AS nothing_left;
SELECT shardload.run_due(-1);

DROP TABLE jobs;
REVOKE ALL ON SCHEMA public FROM regress_due;
DROP ROLE regress_due;
\c :regress_db
DROP DATABASE regress_due_coord;
