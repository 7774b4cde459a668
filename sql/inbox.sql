-- ==== the COPY path: inboxes take COPY and INSERT, one batch per statement ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_inbox_coord;
\c regress_inbox_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_inbox_a;
-- the shard's own defaults differ from the submitting session's
ALTER DATABASE regress_inbox_a SET datestyle = 'SQL, MDY';
ALTER DATABASE regress_inbox_a SET timezone = 'Pacific/Chatham';
\c regress_inbox_a
CREATE TABLE events_1 (id int PRIMARY KEY, region int NOT NULL, note text, at timestamptz,
	day date, tags text[], doc jsonb, made text DEFAULT 'shard');
\c :coord
SELECT regress_shard('inbox_a', 'regress_inbox_a');
CREATE TABLE events (id int, region int NOT NULL, note text, at timestamptz,
	day date, tags text[], doc jsonb, made text DEFAULT 'coordinator')
	PARTITION BY LIST (region);
CREATE FOREIGN TABLE events_1 PARTITION OF events FOR VALUES IN (1) SERVER inbox_a;
CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
-- the reference: what COPY into a local table of the same columns stores
CREATE TABLE events_ref (LIKE events INCLUDING DEFAULTS);
\set VERBOSITY terse

-- ==== an inbox: the target's columns as text, its defaults, its options ====
SELECT shardload.create_inbox('events');
\d events_inbox
-- nothing can read an inbox, or take back what went in
SELECT * FROM events_inbox;
UPDATE events_inbox SET note = 'x';
INSERT INTO events_inbox (id, region) VALUES ('1', '1') RETURNING id;
-- only inbox options, with valid values, and a target
CREATE FOREIGN TABLE bad_inbox (id text) SERVER shardload_inbox OPTIONS (table_name 'events');
CREATE FOREIGN TABLE bad_inbox (id text) SERVER shardload_inbox OPTIONS (on_error 'ignore', target 'events');
CREATE FOREIGN TABLE bad_inbox (id text) SERVER shardload_inbox;
-- a table that cannot be loaded has no inbox
CREATE TABLE plain (id int);
SELECT shardload.create_inbox('plain');

-- ==== no key, no batch: COPY fails, nothing is captured ====
COPY events_inbox FROM STDIN;
1	1	a	\N	\N	\N	\N	\N
\.
SELECT count(*) AS batches FROM shardload.batches;

-- ==== COPY CSV: every awkward value arrives as COPY in this session would store it ====
SET datestyle = 'ISO, DMY';
SET timezone = 'Asia/Kolkata';
SET shardload.batch_key = 'events-csv-1';
COPY events_inbox FROM STDIN (FORMAT csv, HEADER);
id,region,note,at,day,tags,doc,made
1,1,"",2026-11-30 10:00:00,01/02/2026,"{a,""b c"",NULL}","{""k"": ""v\\n""}",
2,2,"tab	and
newline",,,{},"[1,2]",given
3,1,"back\slash 'quote' ""dq"" ünïcødé ✓",2026-11-30 10:00:00+01,,,"{""a"": [1, {""b"": null}]}",
4,1,\N,,31/12/2026,"{""x,y""}",null,"NULL"
\.
COPY events_ref FROM STDIN (FORMAT csv, HEADER);
id,region,note,at,day,tags,doc,made
1,1,"",2026-11-30 10:00:00,01/02/2026,"{a,""b c"",NULL}","{""k"": ""v\\n""}",
2,2,"tab	and
newline",,,{},"[1,2]",given
3,1,"back\slash 'quote' ""dq"" ünïcødé ✓",2026-11-30 10:00:00+01,,,"{""a"": [1, {""b"": null}]}",
4,1,\N,,31/12/2026,"{""x,y""}",null,"NULL"
\.
SELECT batch_id, batch_key, source_kind, rows_total, state FROM shardload.batches;
-- the same key with the same rows: nothing new
COPY events_inbox FROM STDIN (FORMAT csv, HEADER);
id,region,note,at,day,tags,doc,made
1,1,"",2026-11-30 10:00:00,01/02/2026,"{a,""b c"",NULL}","{""k"": ""v\\n""}",
2,2,"tab	and
newline",,,{},"[1,2]",given
3,1,"back\slash 'quote' ""dq"" ünïcødé ✓",2026-11-30 10:00:00+01,,,"{""a"": [1, {""b"": null}]}",
4,1,\N,,31/12/2026,"{""x,y""}",null,"NULL"
\.
-- the same key with other rows: SL001, and nothing changes
\set VERBOSITY default
COPY events_inbox FROM STDIN (FORMAT csv, HEADER);
id,region,note,at,day,tags,doc,made
1,1,"",2026-11-30 10:00:00,01/02/2026,,,
\.
\set VERBOSITY terse
SELECT batch_id, batch_key, rows_total, state FROM shardload.batches;
SELECT batch_id AS b FROM shardload.batches WHERE batch_key = 'events-csv-1' \gset
CALL shardload.run(:b);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :b;
SELECT tableoid::regclass AS partition, count(*) FROM events GROUP BY 1 ORDER BY 1;
-- row for row, value for value, what COPY stored locally
SELECT count(*) AS differing FROM
	((SELECT e::text FROM events e EXCEPT ALL SELECT r::text FROM events_ref r)
	 UNION ALL
	 (SELECT r::text FROM events_ref r EXCEPT ALL SELECT e::text FROM events e)) d;
SELECT id, note, at, day, tags, doc, made FROM events ORDER BY id;

-- ==== COPY text with its options, and a column list: the others get the target's defaults ====
TRUNCATE events_ref;
SET shardload.batch_key = 'events-text-1';
COPY events_inbox (id, region, note, day) FROM STDIN (FORMAT text, DELIMITER '|', NULL 'NIL');
10|1|NIL|02/01/2026
11|2|pipe\|inside|NIL
12|1|back\\slash|NIL
\.
COPY events_ref (id, region, note, day) FROM STDIN (FORMAT text, DELIMITER '|', NULL 'NIL');
10|1|NIL|02/01/2026
11|2|pipe\|inside|NIL
12|1|back\\slash|NIL
\.
SELECT batch_id AS b FROM shardload.batches WHERE batch_key = 'events-text-1' \gset
CALL shardload.run(:b);
SELECT count(*) AS differing FROM
	((SELECT e::text FROM events e WHERE id >= 10 EXCEPT ALL SELECT r::text FROM events_ref r)
	 UNION ALL
	 (SELECT r::text FROM events_ref r EXCEPT ALL SELECT e::text FROM events e WHERE id >= 10)) d;
SELECT id, note, day, made FROM events WHERE id >= 10 ORDER BY id;
-- CSV with its own quote, escape and delimiter
SET shardload.batch_key = 'events-csv-quote';
COPY events_inbox (id, region, note) FROM STDIN (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\');
20;1;'it\'s; quoted'
21;2;''
22;1;
\.
SELECT batch_id AS b FROM shardload.batches WHERE batch_key = 'events-csv-quote' \gset
CALL shardload.run(:b);
SELECT id, note, note IS NULL AS is_null FROM events WHERE id >= 20 ORDER BY id;
-- FORCE_NULL, and WHERE on the fields as text: rows it skips are not in the batch
SET shardload.batch_key = 'events-csv-where';
COPY events_inbox (id, region, note) FROM STDIN (FORMAT csv, FORCE_NULL (note)) WHERE region <> '2';
23,1,""
24,2,"skipped"
25,1,"kept"
\.
SELECT batch_id AS b, rows_total FROM shardload.batches WHERE batch_key = 'events-csv-where' \gset
CALL shardload.run(:b);
SELECT :rows_total AS rows_total, id, note, note IS NULL AS is_null FROM events WHERE id BETWEEN 23 AND 25 ORDER BY id;

SELECT tableoid::regclass AS partition, count(*) FROM events GROUP BY 1 ORDER BY 1;

-- ==== "%n": one key for an input sent as several statements ====
SET shardload.batch_key = 'events-part-%n';
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
30,1
\.
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
31,2
\.
-- setting the key again starts the count again: the same parts are not new
SET shardload.batch_key = 'events-part-%n';
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
30,1
\.
SELECT batch_key, rows_total FROM shardload.batches WHERE batch_key LIKE 'events-part-%' ORDER BY batch_id;
-- a statement counts once its transaction commits: rolled back, it leaves
-- its number to the next one (as a new session would number it)
SET shardload.batch_key = 'events-tx-%n';
BEGIN;
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
32,1
\.
ROLLBACK;
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
33,1
\.
BEGIN;
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
34,2
\.
SAVEPOINT s;
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
35,1
\.
ROLLBACK TO s;
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
36,2
\.
COMMIT;
SELECT b.batch_key, p.partition, p.rows FROM shardload.batches b
	JOIN shardload.slices p USING (batch_id)
	WHERE b.batch_key LIKE 'events-tx-%' ORDER BY b.batch_key;

-- ==== a COPY of all columns is read by pg_shardload, anything else by CopyFrom: the same batch ====
-- an inbox with a trigger takes the rows through CopyFrom and the trigger;
-- the same rows under the same key are the same batch either way
SET shardload.batch_key = 'events-paths';
COPY events_inbox FROM STDIN;
90	1	tab\there, new\nline	2026-11-30 10:00:00	02/01/2026	{a,"b\\c"}	{"k": "\\u00e9"}	\N
91	2	\\N is text	\N	\N	\N	\N	x
\.
CREATE FUNCTION inbox_row_seen() RETURNS trigger LANGUAGE plpgsql AS
	$$BEGIN RAISE NOTICE 'row % through CopyFrom', NEW.id; RETURN NEW; END$$;
CREATE TRIGGER seen BEFORE INSERT ON events_inbox FOR EACH ROW EXECUTE FUNCTION inbox_row_seen();
SET shardload.batch_key = 'events-paths';
COPY events_inbox FROM STDIN;
90	1	tab\there, new\nline	2026-11-30 10:00:00	02/01/2026	{a,"b\\c"}	{"k": "\\u00e9"}	\N
91	2	\\N is text	\N	\N	\N	\N	x
\.
-- all columns named in order is the plain form; in another order, CopyFrom's
COPY events_inbox (id, region, note, at, day, tags, doc, made) FROM STDIN;
90	1	tab\there, new\nline	2026-11-30 10:00:00	02/01/2026	{a,"b\\c"}	{"k": "\\u00e9"}	\N
91	2	\\N is text	\N	\N	\N	\N	x
\.
DROP TRIGGER seen ON events_inbox;
DROP FUNCTION inbox_row_seen();
COPY events_inbox (id, region, note, at, day, tags, doc, made) FROM STDIN;
90	1	tab\there, new\nline	2026-11-30 10:00:00	02/01/2026	{a,"b\\c"}	{"k": "\\u00e9"}	\N
91	2	\\N is text	\N	\N	\N	\N	x
\.
COPY events_inbox (region, id, note, at, day, tags, doc, made) FROM STDIN;
1	90	tab\there, new\nline	2026-11-30 10:00:00	02/01/2026	{a,"b\\c"}	{"k": "\\u00e9"}	\N
2	91	\\N is text	\N	\N	\N	\N	x
\.
SELECT batch_key, rows_total FROM shardload.batches WHERE batch_key = 'events-paths';
SELECT batch_id AS b FROM shardload.batches WHERE batch_key = 'events-paths' \gset
CALL shardload.run(:b);
SELECT id, note, at, day, tags, doc, made FROM events WHERE id >= 90 ORDER BY id;
-- rows with too few or too many fields: COPY's own errors, naming the line
\set VERBOSITY default
SET shardload.batch_key = 'events-fields';
COPY events_inbox FROM STDIN;
92	1
\.
COPY events_inbox FROM STDIN (FORMAT csv);
93,1,a,,,,,,extra
\.
\set VERBOSITY terse
SELECT count(*) FROM shardload.batches WHERE batch_key = 'events-fields';

-- ==== INSERT into an inbox is a batch too; SET LOCAL names it for one transaction ====
BEGIN;
SET LOCAL shardload.batch_key = 'events-insert-1';
INSERT INTO events_inbox (id, region, note) SELECT i, 1 + i % 2, 'n' || i FROM generate_series(40, 49) i;
COMMIT;
SHOW shardload.batch_key;
SELECT batch_key, source_kind, rows_total FROM shardload.batches WHERE batch_key = 'events-insert-1';
-- a failed statement leaves no batch
BEGIN;
SET LOCAL shardload.batch_key = 'events-insert-2';
INSERT INTO events_inbox (id, region) VALUES ('50', 'two');
ROLLBACK;
SELECT count(*) FROM shardload.batches WHERE batch_key = 'events-insert-2';

-- ==== reject mode: bad rows kept with their line, COPY counts every row ====
SELECT shardload.create_inbox('events', 'events_lenient', on_error => 'reject', reject_limit => 3,
							  batch_key => 'lenient-%n');
RESET shardload.batch_key;
COPY events_lenient (id, region, note, day) FROM STDIN (FORMAT csv, HEADER);
id,region,note,day
60,1,fine,2026-01-01
61,one,bad region,2026-01-01
62,2,"two
lines",not a date
63,9,no partition,2026-01-01
64,2,fine,2026-01-02
\.
SELECT batch_key, rows_total, rows_rejected FROM shardload.batches WHERE batch_key = 'lenient-1';
SELECT line, sqlstate, message, raw_row FROM shardload.rejects
	WHERE batch_id = (SELECT batch_id FROM shardload.batches WHERE batch_key = 'lenient-1') ORDER BY line;
SELECT batch_id AS b FROM shardload.batches WHERE batch_key = 'lenient-1' \gset
CALL shardload.run(:b);
SELECT state, rows_loaded, rows_rejected FROM shardload.batches WHERE batch_id = :b;
SELECT id, note FROM events WHERE id BETWEEN 60 AND 69 ORDER BY id;

-- ==== an inbox that no longer matches its target fails instead of dropping a column ====
ALTER TABLE events ADD COLUMN extra text;
SET shardload.batch_key = 'events-after-alter';
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
70,1
\.
ALTER TABLE events DROP COLUMN extra;

-- ==== rights: an inbox is no way around the target's privileges ====
CREATE ROLE regress_inbox_stranger;
CREATE SCHEMA stranger AUTHORIZATION regress_inbox_stranger;
GRANT USAGE ON SCHEMA shardload TO regress_inbox_stranger;
GRANT INSERT ON events_inbox TO regress_inbox_stranger;
SET ROLE regress_inbox_stranger;
SET shardload.batch_key = 'stranger-1';
COPY events_inbox (id, region) FROM STDIN (FORMAT csv);
80,1
\.
COPY events_inbox FROM STDIN (FORMAT csv);
80,1,,,,,,
\.
-- nor can a stranger point an inbox of its own at the target
CREATE FOREIGN TABLE stranger.inbox (id text, region text, note text, at text, day text,
	tags text, doc text, made text) SERVER shardload_inbox OPTIONS (target 'public.events');
COPY stranger.inbox (id, region) FROM STDIN (FORMAT csv);
80,1
\.
COPY stranger.inbox FROM STDIN;
80	1	\N	\N	\N	\N	\N	\N
\.
SELECT shardload.create_inbox('events', 'stranger.inbox2');
RESET ROLE;
SELECT count(*) FROM shardload.batches WHERE batch_key = 'stranger-1';
DROP SCHEMA stranger CASCADE;
REVOKE ALL ON events_inbox FROM regress_inbox_stranger;
REVOKE ALL ON SCHEMA shardload FROM regress_inbox_stranger;
DROP ROLE regress_inbox_stranger;

-- ==== what each shard holds at the end: every row once ====
SELECT tableoid::regclass AS partition, count(*), count(DISTINCT id) FROM events GROUP BY 1 ORDER BY 1;

\c :regress_db
DROP DATABASE regress_inbox_coord;
DROP DATABASE regress_inbox_a;
