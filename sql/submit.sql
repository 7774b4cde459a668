-- ==== submitting batches: capture, idempotency, key reuse ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_sub_coord;
\c regress_sub_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_sub_a;
CREATE DATABASE regress_sub_b;
\c regress_sub_a
CREATE TABLE items_1 (id bigint PRIMARY KEY, region int NOT NULL, label text, tags text[], doc jsonb);
\c regress_sub_b
CREATE TABLE items_2 (id bigint PRIMARY KEY, region int NOT NULL, label text, tags text[], doc jsonb);
\c :coord
SELECT regress_shard('sub_a', 'regress_sub_a');
SELECT regress_shard('sub_b', 'regress_sub_b');
CREATE TABLE items (id bigint, region int NOT NULL, label text, tags text[], doc jsonb)
	PARTITION BY LIST (region);
CREATE FOREIGN TABLE items_1 PARTITION OF items FOR VALUES IN (1) SERVER sub_a;
CREATE FOREIGN TABLE items_2 PARTITION OF items FOR VALUES IN (2) SERVER sub_b;
CREATE TABLE items_local PARTITION OF items FOR VALUES IN (3);

-- awkward values: NULL vs empty, tabs, newlines, backslashes, quotes, unicode,
-- long values, arrays and JSON
CREATE TABLE staging_items AS
SELECT g AS id, g % 3 + 1 AS region,
	   CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'tab\tnew\nline\r\\back' || g
			WHEN 3 THEN 'quote '' " \N \\N' WHEN 4 THEN 'ünïcödé ☃ 𝄞' WHEN 5 THEN repeat('long', 5000)
			ELSE 'plain ' || g END AS label,
	   ARRAY['a b', NULL, E'c\td', '"q"'] AS tags,
	   jsonb_build_object('n', g, 's', E'x\ny', 'nested', jsonb_build_array(1, 'two', NULL)) AS doc
FROM generate_series(1, 300) g;

SELECT shardload.submit('items', 'items-0001', 'SELECT * FROM staging_items') AS b1 \gset
SELECT batch_key, state, attempts, rows_total, rows_loaded, length(content_hash) AS hash_len
FROM shardload.batches WHERE batch_id = :b1;
SELECT partition, shard, rows, state FROM shardload.slices WHERE batch_id = :b1 ORDER BY partition;

CALL shardload.run(:b1);
SELECT state, attempts, rows_total, rows_loaded, last_failure_type, finished_at IS NOT NULL AS finished
FROM shardload.batches WHERE batch_id = :b1;
SELECT partition, shard, rows, state, committed_at IS NOT NULL AS committed FROM shardload.slices
WHERE batch_id = :b1 ORDER BY partition;
SELECT attempt, status, next_action, failure_type FROM shardload.attempts WHERE batch_id = :b1;

-- every row arrived byte for byte
SELECT count(*) AS differing_rows FROM (
	(SELECT * FROM staging_items EXCEPT ALL SELECT * FROM items)
	UNION ALL
	(SELECT * FROM items EXCEPT ALL SELECT * FROM staging_items)) d;
SELECT tableoid::regclass AS partition, count(*) FROM items GROUP BY 1 ORDER BY 1;

-- ==== the same key and content again: same batch, nothing loaded twice ====
SELECT shardload.submit('items', 'items-0001', 'SELECT * FROM staging_items') = :b1 AS same_batch;
CALL shardload.run(:b1);
SELECT count(*) AS rows_after_rerun FROM items;

-- ==== the same key with other content: an error of its own ====
\set VERBOSITY default
SELECT shardload.submit('items', 'items-0001', 'SELECT * FROM staging_items WHERE id < 100');
\set VERBOSITY terse

-- ==== inline CSV: quoting, NULL (unquoted empty) vs empty string ====
CREATE TABLE csv_target (id int, region int NOT NULL, label text) PARTITION BY LIST (region);
CREATE FOREIGN TABLE csv_target_1 PARTITION OF csv_target FOR VALUES IN (1)
	SERVER sub_a OPTIONS (table_name 'csv_remote');
CREATE TABLE csv_target_rest PARTITION OF csv_target DEFAULT;
\c regress_sub_a
CREATE TABLE csv_remote (label text, region int, id int PRIMARY KEY);
\c :coord
SELECT shardload.submit_csv('csv_target', 'csv-1',
	E'id,region,label\n1,1,"comma, and ""quotes"""\n2,1,\n3,1,""\n4,2,"multi\nline"\n5,7,back\\slash\n',
	header => true) AS c1 \gset
CALL shardload.run(:c1);
SELECT id, region, label, label IS NULL AS is_null FROM csv_target ORDER BY id;
-- identical content under a new key is loaded too, with a notice
SELECT shardload.submit_csv('csv_target', 'csv-2',
	E'id,region,label\n1,1,"comma, and ""quotes"""\n2,1,\n3,1,""\n4,2,"multi\nline"\n5,7,back\\slash\n',
	header => true) AS c2 \gset
SELECT rows_total, state FROM shardload.batches WHERE batch_id = :c2;
SELECT shardload.cancel(:c2);
-- a row with too few fields
SELECT shardload.submit_csv('csv_target', 'csv-3', E'1,1\n');
-- a key that is not a number
SELECT shardload.submit_csv('csv_target', 'csv-4', E'1,one,x\n');

-- ==== a server-side file ====
SELECT current_setting('data_directory') || '/regress_items.csv' AS csv_path \gset
COPY (SELECT id + 100, region, label FROM csv_target) TO :'csv_path' WITH (FORMAT csv);
SELECT shardload.submit_file('csv_target', 'file-1', :'csv_path') AS f1 \gset
CALL shardload.run(:f1);
SELECT id, region, label FROM csv_target WHERE id > 100 ORDER BY id;
SELECT shardload.submit_file('csv_target', 'file-2', 'no_such_file.csv');

-- ==== submit and run in one call ====
CALL shardload.load('csv_target', 'load-1', $$VALUES (201, 1, 'via load'), (202, 9, 'elsewhere')$$);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_key = 'load-1';
SELECT * FROM csv_target WHERE id > 200 ORDER BY id;

-- an empty batch succeeds at once
SELECT shardload.submit('csv_target', 'empty-1', 'SELECT * FROM csv_target WHERE false') AS e1 \gset
CALL shardload.run(:e1);
SELECT state, rows_total FROM shardload.batches WHERE batch_id = :e1;

-- ==== refused targets and bad arguments ====
CREATE TABLE plain_table (id int);
CREATE TABLE ranged (id int) PARTITION BY RANGE (id);
CREATE TABLE by_expr (a int) PARTITION BY LIST ((a % 3));
SELECT shardload.submit('plain_table', 'k', 'SELECT 1');
SELECT shardload.submit('ranged', 'k', 'SELECT 1');
SELECT shardload.submit('by_expr', 'k', 'SELECT 1');
SELECT shardload.submit('items', 'k', 'SELECT 1, 2');
SELECT shardload.submit('items', 'k', 'SELECT 1; SELECT 2');
SELECT shardload.submit('items', 'k', 'DELETE FROM staging_items');
SELECT shardload.submit('items', '', 'SELECT * FROM staging_items');
SELECT shardload.submit('items', NULL, 'SELECT * FROM staging_items');
SELECT shardload.submit('items', 'k', 'SELECT * FROM staging_items', on_error => 'ignore');
SELECT shardload.submit('items', 'k', 'SELECT * FROM staging_items', policy => 'no_such_policy');
SELECT shardload.submit('no_such_table', 'k', 'SELECT 1');
-- a CALL inside a transaction block cannot commit its records
BEGIN;
CALL shardload.run(:b1);
ROLLBACK;
CALL shardload.run(999999);
-- nothing half-made was left behind by the refused submissions
SELECT count(*) AS batches_with_key_k FROM shardload.batches WHERE batch_key = 'k';

-- ==== clean up ====
DROP TABLE items, csv_target, staging_items, plain_table, ranged, by_expr;
DROP SERVER sub_a, sub_b CASCADE;
\c :regress_db
DROP DATABASE regress_sub_coord;
