-- ==== routing from the target's own bounds ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_route_coord;
\c regress_route_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_route_a;
\c regress_route_a
CREATE TABLE events_a (id int PRIMARY KEY, kind text, payload text);
\c :coord
SELECT regress_shard('route_a', 'regress_route_a');

-- text keys, several values per partition, a NULL partition, a DEFAULT one
CREATE TABLE events (id int, kind text, payload text) PARTITION BY LIST (kind);
CREATE FOREIGN TABLE events_a PARTITION OF events FOR VALUES IN ('click', 'view')
	SERVER route_a OPTIONS (table_name 'events_a');
CREATE TABLE events_null PARTITION OF events FOR VALUES IN (NULL);
CREATE TABLE events_other PARTITION OF events DEFAULT;

SELECT shardload.submit('events', 'ev-1',
	$$SELECT g, (ARRAY['click', 'view', NULL, 'buy', 'Click'])[g % 5 + 1], 'p' || g
	  FROM generate_series(1, 50) g$$) AS b \gset
SELECT partition, shard, rows FROM shardload.slices WHERE batch_id = :b ORDER BY partition;
CALL shardload.run(:b);
SELECT tableoid::regclass AS partition, kind, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2;

-- ==== a source column of another type is parsed as the key's type ====
CREATE TABLE regions (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE TABLE regions_1 PARTITION OF regions FOR VALUES IN (1);
CREATE TABLE regions_2 PARTITION OF regions FOR VALUES IN (2);
SELECT shardload.submit('regions', 'r-1', $$VALUES (1, '1'::text), (2, '2'), (3, '02')$$) AS r \gset
CALL shardload.run(:r);
SELECT tableoid::regclass AS partition, id, region FROM regions ORDER BY id;

-- ==== a row that fits no partition: nothing dropped, the batch fails ====
SELECT shardload.submit('regions', 'r-2', $$VALUES (10, 1), (11, 9), (12, 2), (13, 9)$$) AS r2 \gset
SELECT partition, rows, state, first_row_line, first_row_detail FROM shardload.slices
WHERE batch_id = :r2 ORDER BY slice_no;
CALL shardload.run(:r2);
SELECT state, rows_loaded, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :r2;
SELECT stage, sqlstate, failure_type, reason, next_action, message FROM shardload.attempts WHERE batch_id = :r2;
SELECT count(*) AS loaded_from_bad_batch FROM regions WHERE id >= 10;

-- ==== routing is fixed at capture: later partitions do not re-route a batch ====
SELECT shardload.submit('regions', 'r-3', $$VALUES (20, 2)$$) AS r3 \gset
ALTER TABLE regions DETACH PARTITION regions_2;
CALL shardload.run(:r3);
SELECT state, last_reason FROM shardload.batches WHERE batch_id = :r3;
ALTER TABLE regions ATTACH PARTITION regions_2 FOR VALUES IN (2);
SELECT shardload.replay(:r3);
CALL shardload.run(:r3);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :r3;

-- ==== the table's columns changed after submit: the batch is not loaded ====
SELECT shardload.submit('regions', 'r-4', $$VALUES (30, 1)$$) AS r4 \gset
ALTER TABLE regions ADD COLUMN note text;
CALL shardload.run(:r4);
SELECT state, last_reason FROM shardload.batches WHERE batch_id = :r4;
SELECT sqlstate, message FROM shardload.attempts WHERE batch_id = :r4;
ALTER TABLE regions DROP COLUMN note;

-- sub-partitioned partitions are refused
CREATE TABLE nested (id int, r int) PARTITION BY LIST (r);
CREATE TABLE nested_1 PARTITION OF nested FOR VALUES IN (1) PARTITION BY LIST (id);
SELECT shardload.submit('nested', 'n-1', $$VALUES (1, 1)$$);

DROP TABLE events, regions, nested;
DROP SERVER route_a CASCADE;
\c :regress_db
DROP DATABASE regress_route_coord;
