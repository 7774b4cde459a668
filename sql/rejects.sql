-- ==== on_error => 'reject': bad rows kept with their reason, good rows loaded ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_rej_coord;
\c regress_rej_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_rej_a;
\c regress_rej_a
CREATE TABLE readings_1 (id int PRIMARY KEY, site int NOT NULL, value numeric(6,2), taken date);
\c :coord
SELECT regress_shard('rej_a', 'regress_rej_a');
CREATE TABLE readings (id int, site int NOT NULL, value numeric(6,2), taken date)
	PARTITION BY LIST (site);
CREATE FOREIGN TABLE readings_1 PARTITION OF readings FOR VALUES IN (1) SERVER rej_a;
CREATE TABLE readings_2 PARTITION OF readings FOR VALUES IN (2);
\set VERBOSITY terse

-- five bad rows among ten: a bad number, a bad date, a missing site, a
-- number too big for numeric(6,2), a site no partition takes
SELECT shardload.submit_csv('readings', 'csv-rej-1', $$id,site,value,taken
1,1,1.50,2026-11-01
2,2,abc,2026-11-02
3,1,2.25,2026-13-40
4,,3.00,2026-11-04
5,2,4.75,2026-11-05
6,1,12345678.90,2026-11-06
7,9,1.00,2026-11-07
8,1,"8.00",2026-11-08
9,2,9.25,
10,1,10.00,2026-11-10
$$, header => true, on_error => 'reject', reject_limit => 5) AS b \gset
SELECT rows_total, rows_rejected, state FROM shardload.batches WHERE batch_id = :b;
SELECT line, sqlstate, message, raw_row FROM shardload.rejects WHERE batch_id = :b ORDER BY line;
CALL shardload.run(:b);
SELECT state, rows_total, rows_loaded, rows_rejected FROM shardload.batches WHERE batch_id = :b;
SELECT tableoid::regclass AS partition, * FROM readings ORDER BY id;

-- ==== more rejects than allowed: the batch fails, nothing is sent ====
SELECT shardload.submit_csv('readings', 'csv-rej-2', $$11,1,1.00,2026-11-11
12,2,x,2026-11-12
13,1,y,2026-11-13
14,1,14.00,2026-11-14
$$, on_error => 'reject', reject_limit => 1) AS c \gset
CALL shardload.run(:c);
SELECT state, rows_rejected, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :c;
SELECT stage, sqlstate, next_action, message FROM shardload.attempts WHERE batch_id = :c;
SELECT partition, rows, state FROM shardload.slices WHERE batch_id = :c ORDER BY partition;
SELECT count(*) AS loaded FROM readings WHERE id BETWEEN 11 AND 14;

-- ==== a query's rows: text that does not fit the column's type ====
SELECT shardload.submit('readings', 'q-rej-1',
	$$VALUES ('20', '1', '1.5', '2026-11-20'), ('21', '2', 'n/a', '2026-11-21'),
			 ('2x', '1', '1', '2026-11-22')$$, on_error => 'reject', reject_limit => 2) AS q \gset
SELECT line, sqlstate, message, raw_row FROM shardload.rejects WHERE batch_id = :q ORDER BY line;
CALL shardload.run(:q);
SELECT state, rows_loaded, rows_rejected FROM shardload.batches WHERE batch_id = :q;

-- ==== rows only the shard can judge: its CHECK constraint ====
\c regress_rej_a
ALTER TABLE readings_1 ADD CONSTRAINT value_not_negative CHECK (value >= 0);
\c :coord
SELECT shardload.submit_csv('readings', 'shard-rej-1', $$40,1,1.00,2026-11-01
41,1,-1.00,2026-11-01
42,2,-2.00,2026-11-01
43,1,3.00,2026-11-01
44,1,-4.00,2026-11-01
45,1,5.00,2026-11-01
$$, on_error => 'reject', reject_limit => 3) AS s \gset
CALL shardload.run(:s);
SELECT state, rows_total, rows_loaded, rows_rejected FROM shardload.batches WHERE batch_id = :s;
SELECT line, sqlstate, found_by, message, raw_row FROM shardload.rejects WHERE batch_id = :s ORDER BY line;
SELECT partition, rows, rows_rejected, state FROM shardload.slices WHERE batch_id = :s ORDER BY partition;
SELECT id, value FROM readings WHERE id BETWEEN 40 AND 49 ORDER BY id;

-- more refusals than reject_limit: the slice fails, the other slices are kept
SELECT shardload.submit_csv('readings', 'shard-rej-2', $$50,1,-1.00,2026-11-01
51,1,-2.00,2026-11-01
52,2,2.00,2026-11-01
53,1,3.00,2026-11-01
$$, on_error => 'reject', reject_limit => 1) AS t \gset
CALL shardload.run(:t);
SELECT state, rows_loaded, rows_rejected, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :t;
SELECT partition, state FROM shardload.slices WHERE batch_id = :t ORDER BY partition;
SELECT id FROM readings WHERE id BETWEEN 50 AND 59 ORDER BY id;

-- with on_error => 'stop' (the default) a bad key stops the submission
SELECT shardload.submit_csv('readings', 'csv-stop-1', E'30,one,1,2026-11-30\n');

DROP TABLE readings;
DROP SERVER rej_a CASCADE;
\c :regress_db
DROP DATABASE regress_rej_coord;
