-- ==== values arrive as INSERT ... SELECT / COPY in the submitting session would store them ====
-- whatever the session's DateStyle, IntervalStyle, TimeZone, extra_float_digits,
-- bytea_output and search_path, and whatever the shard's own defaults
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_val_coord;
\c regress_val_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_val_a;
-- the shard's own defaults differ from everyone's
ALTER DATABASE regress_val_a SET datestyle = 'SQL, DMY';
ALTER DATABASE regress_val_a SET timezone = 'Pacific/Chatham';
ALTER DATABASE regress_val_a SET intervalstyle = 'sql_standard';
ALTER DATABASE regress_val_a SET extra_float_digits = -15;
ALTER DATABASE regress_val_a SET bytea_output = 'escape';
\c regress_val_a
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE stamp AS (at timestamptz, label text);
CREATE DOMAIN recent_date AS date CHECK (VALUE > '2000-01-01');
CREATE TABLE vals_1 (id int, region int, d date, t time, ttz timetz, ts timestamp,
	tstz timestamptz, iv interval, f4 real, f8 float8, n numeric, m money, b bytea,
	bo bool, dates date[], ivs interval[], js json, jb jsonb, r tstzrange, e mood,
	rd recent_date, st stamp, sts stamp[]);
CREATE TABLE keyed_1 (at timestamptz, note text);
CREATE TABLE edges_1 (id bigint, region int, i2 int2, i4 int, i8 bigint, d date, n numeric, note text);
\c :coord
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE stamp AS (at timestamptz, label text);
CREATE DOMAIN recent_date AS date CHECK (VALUE > '2000-01-01');
SELECT regress_shard('val_a', 'regress_val_a');
CREATE TABLE vals (id int, region int, d date, t time, ttz timetz, ts timestamp,
	tstz timestamptz, iv interval, f4 real, f8 float8, n numeric, m money, b bytea,
	bo bool, dates date[], ivs interval[], js json, jb jsonb, r tstzrange, e mood,
	rd recent_date, st stamp, sts stamp[]) PARTITION BY LIST (region);
CREATE FOREIGN TABLE vals_1 PARTITION OF vals FOR VALUES IN (1) SERVER val_a;
CREATE TABLE vals_2 PARTITION OF vals FOR VALUES IN (2);
-- the reference: the same table, all local
CREATE TABLE vals_ref (LIKE vals);
-- a timestamptz partition key fed from a timestamp column
CREATE TABLE keyed (at timestamptz, note text) PARTITION BY LIST (at);
CREATE FOREIGN TABLE keyed_1 PARTITION OF keyed
	FOR VALUES IN ('2026-03-04 00:00:00+00') SERVER val_a;
CREATE TABLE keyed_2 PARTITION OF keyed FOR VALUES IN ('2026-03-05 00:00:00+00');
CREATE TABLE keyed_ref (LIKE keyed);

-- the rows: literals read in the session, a timestamp column into timestamptz
CREATE VIEW source_rows AS
SELECT g AS id, g % 2 + 1 AS region,
	   '04/03/2026'::text::date + g AS d, '13:14:15.123456'::text::time AS t,
	   '10:00:00+05:30'::text::timetz AS ttz,
	   '04/03/2026 10:11:12.5'::text::timestamp AS ts,
	   '04/03/2026 10:11:12+05:30'::text::timestamptz + g * interval '1 hour' AS tstz,
	   '-1 days -02:00:00'::text::interval * g AS iv,
	   3.14159265::real * g AS f4, 3.14159265358979::float8 / g AS f8,
	   'NaN'::numeric AS n, 12.34::money AS m, E'\\x00ff5c0a'::bytea AS b,
	   g % 2 = 0 AS bo, ARRAY['04/03/2026'::text::date, NULL] AS dates,
	   ARRAY['1 day -01:00'::text::interval] AS ivs,
	   ('{"d": "04/03/2026", "n": ' || g || '}')::json AS js,
	   ('{"k": [1, "x\ty", null]}')::jsonb AS jb,
	   tstzrange('04/03/2026 00:00'::text::timestamptz, '05/03/2026 00:00'::text::timestamptz) AS r,
	   (ARRAY['sad', 'ok', 'happy']::mood[])[g % 3 + 1] AS e,
	   '04/03/2026'::text::recent_date AS rd,
	   ROW('04/03/2026 01:02:03'::text::timestamptz, 'a "b"')::stamp AS st,
	   ARRAY[ROW('04/03/2026 01:02:03'::text::timestamptz, 'x')::stamp] AS sts
FROM generate_series(1, 4) g;

-- shard and local partitions against the all-local reference, in fixed forms
CREATE FUNCTION vals_differ() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT v::text FROM vals v EXCEPT ALL SELECT w::text FROM vals_ref w)
		UNION ALL
		(SELECT w::text FROM vals_ref w EXCEPT ALL SELECT v::text FROM vals v)) d
$$;
CREATE FUNCTION keyed_differ() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT k::text FROM keyed k EXCEPT ALL SELECT r::text FROM keyed_ref r)
		UNION ALL
		(SELECT r::text FROM keyed_ref r EXCEPT ALL SELECT k::text FROM keyed k)) d
$$;

-- one load under the current settings, next to INSERT ... SELECT
CREATE PROCEDURE load_and_compare(tag text) LANGUAGE plpgsql AS $$
DECLARE
	b bigint;
BEGIN
	TRUNCATE vals, vals_ref;
	INSERT INTO vals_ref SELECT * FROM source_rows;
	b := shardload.submit('vals', 'vals-' || tag, 'SELECT * FROM source_rows');
	COMMIT;
	CALL shardload.run(b);
END
$$;
CREATE FUNCTION batch_state(key text) RETURNS text LANGUAGE sql AS $$
	SELECT state || ' ' || coalesce(last_reason, '') FROM shardload.batches WHERE batch_key = key
$$;

SET datestyle = 'SQL, DMY';
SET timezone = 'Asia/Kolkata';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SET search_path = pg_catalog, public;
CALL load_and_compare('sql-dmy');
RESET ALL;
SELECT batch_state('vals-sql-dmy'), vals_differ() AS differing_rows;

SET datestyle = 'German';
SET timezone = 'America/St_Johns';
SET intervalstyle = 'iso_8601';
SET extra_float_digits = -15;
CALL load_and_compare('german');
RESET ALL;
SELECT batch_state('vals-german'), vals_differ() AS differing_rows;

SET datestyle = 'Postgres, MDY';
SET timezone = 'UTC+5';
SET intervalstyle = 'postgres_verbose';
SET extra_float_digits = 1;
CALL load_and_compare('postgres-mdy');
RESET ALL;
SELECT batch_state('vals-postgres-mdy'), vals_differ() AS differing_rows;

-- what the shard holds, shown in fixed forms: 4 March, 10:11:12+05:30 (+ 1 hour) = 05:41:12 UTC
-- (an offset, not "IST": from PostgreSQL 18 on, an abbreviation is read by the
-- session's TimeZone first, and IST in Asia/Kolkata is India's, in the default list Israel's)
SET datestyle = ISO;
SET timezone = UTC;
SET intervalstyle = postgres;
SET extra_float_digits = 3;
TRUNCATE vals, vals_ref;
SET datestyle = 'SQL, DMY';
SET timezone = 'Asia/Kolkata';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = 0;
SELECT shardload.submit('vals', 'vals-shown', 'SELECT * FROM source_rows WHERE id = 1') AS b \gset
CALL shardload.run(:b);
SET datestyle = ISO;
SET timezone = UTC;
SET intervalstyle = postgres;
SET extra_float_digits = 3;
SELECT tableoid::regclass AS partition, d, ts, tstz, iv, f4, f8, dates, ivs, st FROM vals;

-- ==== COPY text: parsed as COPY in the submitting session parses it ====
TRUNCATE vals, vals_ref;
SET datestyle = 'ISO, DMY';
SET timezone = 'Asia/Kolkata';
SET intervalstyle = 'sql_standard';
COPY vals_ref (id, region, d, ts, tstz, iv, dates, r, rd) FROM STDIN (FORMAT csv);
1,1,04/03/2026,04/03/2026 10:11:12,04/03/2026 10:11:12,-1 2:00:00,"{04/03/2026,05/03/2026}","[04/03/2026,05/03/2026)",04/03/2026
2,2,05/03/2026,05/03/2026 23:59:59,05/03/2026 10:11:12+05:30,-1 -2:00:00,{},empty,05/03/2026
\.
SELECT shardload.submit_csv('vals', 'vals-csv', $$1,1,04/03/2026,,,04/03/2026 10:11:12,04/03/2026 10:11:12,-1 2:00:00,,,,,,,"{04/03/2026,05/03/2026}",,,,"[04/03/2026,05/03/2026)",,04/03/2026,,
2,2,05/03/2026,,,05/03/2026 23:59:59,05/03/2026 10:11:12+05:30,-1 -2:00:00,,,,,,,{},,,,empty,,05/03/2026,,
$$) AS b \gset
CALL shardload.run(:b);
RESET ALL;
SELECT batch_state('vals-csv'), vals_differ() AS differing_rows;
SET datestyle = ISO;
SET timezone = UTC;
SET intervalstyle = postgres;
SELECT tableoid::regclass AS partition, d, ts, tstz, iv, dates, r FROM vals ORDER BY id;
RESET ALL;

-- ==== integers and dates are written by pg_shardload itself: at their edges ====
CREATE TABLE edges (id bigint, region int, i2 int2, i4 int, i8 bigint, d date, n numeric,
	note text) PARTITION BY LIST (region);
CREATE FOREIGN TABLE edges_1 PARTITION OF edges FOR VALUES IN (1) SERVER val_a;
CREATE TABLE edges_ref (LIKE edges);
CREATE VIEW edge_rows AS
SELECT g AS id, 1 AS region, (ARRAY[-32768, 32767, 0, NULL, -1])[g % 5 + 1]::int2 AS i2,
	   (ARRAY[-2147483648, 2147483647, 0, -7, NULL])[g % 5 + 1]::int AS i4,
	   (ARRAY[-9223372036854775808, 9223372036854775807, 0, 10, NULL])[g % 5 + 1]::int8 AS i8,
	   (ARRAY['0001-01-01', '9999-12-31', '2024-02-29', '0044-03-15 BC', 'infinity',
			  '-infinity', '10000-01-01', '1999-12-31', '4713-01-01 BC', '1970-01-01'])[g % 10 + 1]::date AS d,
	   (ARRAY[0, -1.5, 'NaN', 1e30, NULL])[g % 5 + 1]::numeric AS n,
	   (ARRAY[E'a\tb', '', NULL, E'c\\d\ne', 'ü'])[g % 5 + 1] AS note
FROM generate_series(1, 20) g;
CREATE FUNCTION edges_differ() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT e::text FROM edges e EXCEPT ALL SELECT r::text FROM edges_ref r)
		UNION ALL
		(SELECT r::text FROM edges_ref r EXCEPT ALL SELECT e::text FROM edges e)) d
$$;
SET datestyle = 'SQL, DMY';
INSERT INTO edges_ref SELECT * FROM edge_rows;
SELECT shardload.submit('edges', 'edges-query', 'SELECT * FROM edge_rows') AS b \gset
CALL shardload.run(:b);
SELECT batch_state('edges-query'), edges_differ() AS differing_rows;
-- dates as COPY text: YYYY-MM-DD whatever the DateStyle, the rest as the DateStyle reads
TRUNCATE edges, edges_ref;
COPY edges_ref (id, region, d) FROM STDIN (FORMAT csv);
1,1,2024-02-29
2,1,0001-01-01
3,1,9999-12-31
4,1,03/02/2024
5,1,2024-3-2
6,1,20240302
7,1,0044-03-15 BC
8,1,infinity
9,1, 2024-03-02
\.
SELECT shardload.submit_csv('edges', 'edges-csv', $$1,1,,,,2024-02-29,,
2,1,,,,0001-01-01,,
3,1,,,,9999-12-31,,
4,1,,,,03/02/2024,,
5,1,,,,2024-3-2,,
6,1,,,,20240302,,
7,1,,,,0044-03-15 BC,,
8,1,,,,infinity,,
9,1,,,,  2024-03-02,,
$$) AS b \gset
CALL shardload.run(:b);
SELECT batch_state('edges-csv'), edges_differ() AS differing_rows;
SET datestyle = ISO;
SELECT id, d FROM edges ORDER BY id;
-- dates that look ISO but are not dates: rejected with date_in's own message
SELECT shardload.submit_csv('edges', 'edges-bad', $$10,1,,,,2023-02-29,,
11,1,,,,0000-01-01,,
12,1,,,,2024-13-01,,
13,1,,,,2024-04-31,,
14,1,,,,2024-04-30,,
15,1,,,,20a4-01-05,,
16,1,,,,19 9-01-01,,
$$, on_error => 'reject', reject_limit => 6) AS b \gset
SELECT line, sqlstate, message FROM shardload.rejects WHERE batch_id = :b ORDER BY line;
RESET ALL;

-- ==== a timestamp column into a timestamptz partition key ====
SET timezone = 'Asia/Kolkata';
SELECT shardload.submit('keyed', 'keyed-1', $$SELECT '2026-03-04 05:30'::timestamp, 'a'
	UNION ALL SELECT '2026-03-05 05:30'::timestamp, 'b'$$) AS b \gset
CALL shardload.run(:b);
SET timezone = UTC;
SELECT batch_state('keyed-1');
SELECT tableoid::regclass AS partition, at, note FROM keyed ORDER BY note;
RESET ALL;

-- ==== a partition re-attached with another bound: its slice is not loaded ====
SELECT shardload.submit('keyed', 'keyed-2', $$SELECT '2026-03-05 00:00+00'::timestamptz, 'c'$$) AS b \gset
TRUNCATE keyed;
ALTER TABLE keyed DETACH PARTITION keyed_2;
ALTER TABLE keyed ATTACH PARTITION keyed_2 FOR VALUES IN ('2026-03-06 00:00:00+00');
\set VERBOSITY terse
CALL shardload.run(:b);
\set VERBOSITY default
SELECT state, last_failure_type FROM shardload.batches WHERE batch_id = :b;
SELECT stage, sqlstate, message FROM shardload.attempts WHERE batch_id = :b;
SELECT count(*) AS rows_in_keyed_2 FROM keyed_2;

-- the same batch run from a session with other settings: its destination is the same
SET timezone = 'Asia/Tokyo';
SET datestyle = 'SQL, DMY';
SELECT shardload.submit('keyed', 'keyed-3', $$SELECT '2026-03-04 00:00+00'::timestamptz, 'd'$$) AS b \gset
RESET ALL;
CALL shardload.run(:b);
SELECT state FROM shardload.batches WHERE batch_id = :b;

-- ==== settings of the session that runs a batch do not bend its retry schedule ====
INSERT INTO shardload.retry_policy (policy_name, base_delay, max_delay, jitter_ratio)
	VALUES ('quarter', '0.25 s', '10 s', 0);
CREATE SERVER val_closed FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '127.0.0.1', port '1', dbname 'nowhere');
CREATE USER MAPPING FOR CURRENT_USER SERVER val_closed;
CREATE FOREIGN TABLE keyed_9 PARTITION OF keyed FOR VALUES IN ('2026-03-09 00:00:00+00') SERVER val_closed;
SELECT shardload.submit('keyed', 'keyed-9', $$SELECT '2026-03-09 00:00+00'::timestamptz, 'z'$$,
	policy => 'quarter') AS b \gset
SET extra_float_digits = -15;
SET client_min_messages = error;
CALL shardload.run(:b);
RESET client_min_messages;
RESET extra_float_digits;
SELECT failure_type, next_action,
	   extract(epoch FROM next_attempt_at - finished_at)::numeric(6,3) AS delay_s
FROM shardload.attempts WHERE batch_id = :b;
\c :regress_db
DROP DATABASE regress_val_coord;
