-- ==== rights: own credentials, own batches, private payloads ====
-- a coordinator database of this file's own: its own catalog, batch ids from 1
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_rights_coord;
\c regress_rights_coord
CREATE EXTENSION pg_shardload CASCADE;
\i test/loopback.sql
SELECT current_database() AS coord \gset
CREATE DATABASE regress_rights_a;
CREATE ROLE regress_etl LOGIN PASSWORD 'etl-secret-pw';
CREATE ROLE regress_other LOGIN;
CREATE ROLE regress_ops LOGIN IN ROLE shardload_admin;
\c regress_rights_a
CREATE TABLE accounts_1 (id int PRIMARY KEY, region int NOT NULL);
GRANT ALL ON accounts_1 TO regress_etl;
GRANT CREATE ON DATABASE regress_rights_a TO regress_etl;
\c :coord
SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS sockdir \gset
CREATE SERVER rights_a FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host :'sockdir', port :'PORT', dbname 'regress_rights_a');
CREATE TABLE accounts (id int, region int NOT NULL) PARTITION BY LIST (region);
CREATE FOREIGN TABLE accounts_1 PARTITION OF accounts FOR VALUES IN (1) SERVER rights_a;
CREATE TABLE accounts_rest PARTITION OF accounts DEFAULT;
GRANT INSERT ON accounts TO regress_etl;
GRANT USAGE ON FOREIGN SERVER rights_a TO regress_etl;

-- a non-superuser whose mapping holds no password cannot load
CREATE USER MAPPING FOR regress_etl SERVER rights_a OPTIONS (user 'regress_etl');
SET ROLE regress_etl;
SELECT shardload.submit('accounts', 'acc-1', $$VALUES (1, 1), (2, 1), (3, 5)$$) AS b \gset
CALL shardload.run(:b);
SELECT state, last_failure_type, last_reason FROM shardload.batches WHERE batch_id = :b;
SELECT stage, shard, sqlstate, message FROM shardload.attempts WHERE batch_id = :b;
-- the local slice is loaded all the same
SELECT partition, state FROM shardload.slices WHERE batch_id = :b ORDER BY partition;
RESET ROLE;

-- a password the server never asked for does not count either
ALTER USER MAPPING FOR regress_etl SERVER rights_a
	OPTIONS (ADD password 'etl-secret-pw');
SET ROLE regress_etl;
SELECT shardload.replay(:b);
CALL shardload.run(:b);
SELECT stage, sqlstate, failure_type, split_part(message, E'\n', 1) AS message
FROM shardload.attempts WHERE batch_id = :b ORDER BY attempt DESC LIMIT 1;
-- no password ever reaches the records
SELECT count(*) AS leaks FROM shardload.attempts WHERE message LIKE '%etl-secret-pw%';
RESET ROLE;

-- only a superuser may waive the rule for a mapping
ALTER USER MAPPING FOR regress_etl SERVER rights_a
	OPTIONS (ADD password_required 'false');
SET ROLE regress_etl;
SELECT shardload.replay(:b);
CALL shardload.run(:b);
SELECT state, rows_loaded FROM shardload.batches WHERE batch_id = :b;
RESET ROLE;
\c regress_rights_a
SELECT count(*) AS on_shard FROM accounts_1;
\c :coord

-- ==== no INSERT on the target: no submit ====
SET ROLE regress_other;
SELECT shardload.submit('accounts', 'acc-2', $$VALUES (4, 1)$$);
-- another role's batches are invisible and out of reach
SELECT count(*) AS visible FROM shardload.batches;
CALL shardload.run(:b);
SELECT shardload.cancel(:b);
SELECT shardload.failure_record(:b);
-- nobody but the extension reads payloads or the tables behind the views
SELECT count(*) FROM shardload.payload;
SELECT count(*) FROM shardload.batch;
SELECT shardload.submit_file('accounts', 'acc-3', '/etc/passwd');
RESET ROLE;
-- even with INSERT, another role cannot take over a key
GRANT INSERT ON accounts TO regress_other;
SET ROLE regress_other;
SELECT shardload.submit('accounts', 'acc-1', $$VALUES (1, 1), (2, 1), (3, 5)$$);
RESET ROLE;

-- ==== members of shardload_admin see every batch ====
SET ROLE regress_ops;
SELECT batch_key, state FROM shardload.batches WHERE batch_id = :b;
RESET ROLE;

DROP TABLE accounts;
DROP SERVER rights_a CASCADE;
\c regress_rights_a
DROP TABLE accounts_1;
DROP SCHEMA shardload_ledger CASCADE;
REVOKE CREATE ON DATABASE regress_rights_a FROM regress_etl;
\c :coord
DROP DATABASE regress_rights_a;
DROP ROLE regress_etl, regress_other, regress_ops;
\c :regress_db
DROP DATABASE regress_rights_coord;
