-- ==== a partly failed batch resumes with only its missing slices ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_res_coord;
\c regress_res_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_res_a;
CREATE DATABASE regress_res_b;
\c regress_res_a
CREATE TABLE orders_1 (id int PRIMARY KEY, region int NOT NULL, amount numeric);
\c :coord
SELECT regress_shard('res_a', 'regress_res_a');
SELECT regress_shard('res_b', 'regress_res_b');
CREATE TABLE orders (id int, region int NOT NULL, amount numeric) PARTITION BY LIST (region);
CREATE FOREIGN TABLE orders_1 PARTITION OF orders FOR VALUES IN (1) SERVER res_a;
-- shard b's table does not exist yet
CREATE FOREIGN TABLE orders_2 PARTITION OF orders FOR VALUES IN (2) SERVER res_b;
CREATE TABLE orders_3 PARTITION OF orders FOR VALUES IN (3);

SELECT shardload.submit('orders', 'o-1',
	$$SELECT g, g % 3 + 1, g * 1.25 FROM generate_series(1, 3000) g$$) AS b \gset
\set VERBOSITY terse
CALL shardload.run(:b);
SELECT state, attempts, rows_total, rows_loaded, last_failure_type, last_reason
FROM shardload.batches WHERE batch_id = :b;
SELECT partition, shard, rows, state FROM shardload.slices WHERE batch_id = :b ORDER BY partition;
SELECT attempt, stage, shard, status, failure_type, reason, sqlstate, next_action
FROM shardload.attempts WHERE batch_id = :b;
SELECT shardload.failure_record(:b) - 'timestamp' AS failure;
SELECT (shardload.failure_record(:b) ->> 'timestamp') IS NOT NULL AS has_timestamp;

-- the table is created; the batch goes again (an explicit run does not wait
-- for replay) and sends only the slice that is missing
\c regress_res_b
CREATE TABLE orders_2 (id int PRIMARY KEY, region int NOT NULL, amount numeric);
\c :coord
CALL shardload.run(:b);
SELECT state, attempts, rows_loaded, last_failure_type FROM shardload.batches WHERE batch_id = :b;
SELECT partition, state FROM shardload.slices WHERE batch_id = :b ORDER BY partition;
SELECT tableoid::regclass AS partition, count(*), count(DISTINCT id) FROM orders GROUP BY 1 ORDER BY 1;

-- the shards' ledgers hold one row per slice
\c regress_res_a
SELECT batch_id = :b AS this_batch, slice_no, rows FROM shardload_ledger.slices;
\c regress_res_b
SELECT batch_id = :b AS this_batch, slice_no, rows FROM shardload_ledger.slices;
\c :coord

-- ==== the ledger wins over the coordinator's own records ====
-- forget locally that the foreign slices were committed: the shards' ledgers
-- still know (a local slice's record commits with its rows and is its ledger)
UPDATE shardload.slice SET state = 'pending', committed_at = NULL
WHERE batch_id = :b AND shard IS NOT NULL;
UPDATE shardload.batch SET state = 'retry_wait' WHERE batch_id = :b;
CALL shardload.run(:b);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :b;
SELECT tableoid::regclass AS partition, count(*) FROM orders GROUP BY 1 ORDER BY 1;

-- ==== a ledger row made for other content is not taken for this slice ====
-- (as after a restored coordinator reused batch ids)
\c regress_res_a
UPDATE shardload_ledger.slices SET content_hash = 'not-this-batch';
\c :coord
UPDATE shardload.slice SET state = 'pending', committed_at = NULL
WHERE batch_id = :b AND shard = 'res_a';
UPDATE shardload.batch SET state = 'retry_wait' WHERE batch_id = :b;
CALL shardload.run(:b);
SELECT state FROM shardload.batches WHERE batch_id = :b;
SELECT stage, shard, sqlstate, failure_type, split_part(message, E'\n', 1) AS message
FROM shardload.attempts WHERE batch_id = :b ORDER BY attempt DESC LIMIT 1;
SELECT tableoid::regclass AS partition, count(*) FROM orders GROUP BY 1 ORDER BY 1;

-- ==== cancel and replay ====
SELECT shardload.submit('orders', 'o-2', $$SELECT 5000 + g, 1, 0 FROM generate_series(1, 10) g$$) AS c \gset
SELECT shardload.cancel(:c);
CALL shardload.run(:c);
SELECT shardload.cancel(:c);
SELECT shardload.replay(:c);
SELECT state FROM shardload.batches WHERE batch_id = :c;
CALL shardload.run(:c);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :c;
SELECT shardload.replay(:c);
SELECT shardload.cancel(:c);

-- ==== payloads are purged after the retention period ====
SELECT shardload.submit('orders', 'o-3', $$VALUES (9001, 1, 1)$$) AS p \gset
SELECT shardload.cancel(:p);
SET shardload.payload_retention = 0;
SELECT shardload.purge_payloads() >= 2 AS purged;
SELECT count(*) AS payload_chunks_left FROM shardload.payload WHERE batch_id IN (:b, :c, :p);
SELECT payload_kept FROM shardload.batches WHERE batch_id = :p;
SELECT shardload.replay(:p);
RESET shardload.payload_retention;

DROP TABLE orders;
DROP SERVER res_a, res_b CASCADE;
\c :regress_db
DROP DATABASE regress_res_coord;
