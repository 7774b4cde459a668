-- ==== 0.1 -> 0.2: the update script brings an installed 0.1 to the 0.2 catalog ====
SELECT current_database() AS coord \gset
CREATE DATABASE regress_upgrade;
\c regress_upgrade
CREATE EXTENSION pg_shardload VERSION '0.1' CASCADE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_shardload';
-- this library does not act on a 0.1 catalog: it says what to do instead
CREATE TABLE up (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE up_1 PARTITION OF up FOR VALUES IN (1);
\set VERBOSITY default
SELECT shardload.submit('up', 'before-update', $$VALUES (1, 1)$$);
\set VERBOSITY terse
ALTER EXTENSION pg_shardload UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_shardload';
SELECT attrelid::regclass AS catalog_table, attname FROM pg_attribute
WHERE attrelid IN ('shardload.batch'::regclass, 'shardload.slice'::regclass,
				   'shardload.shard_state'::regclass, 'shardload.job'::regclass)
  AND attname IN ('lc_monetary', 'route_signature', 'shard_identity', 'identity', 'search_path')
ORDER BY 1, 2;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'attempt_stage_check';
-- and acts on it once updated
SELECT shardload.submit('up', 'after-update', $$VALUES (1, 1)$$) AS b \gset
CALL shardload.run(:b);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :b;
SELECT shardload.ledger_ddl() LIKE '%REVOKE ALL ON TABLE shardload_ledger.slices FROM PUBLIC%' AS ledger_private;
\c :coord
DROP DATABASE regress_upgrade;
