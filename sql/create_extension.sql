-- ==== installing the extension ====
CREATE EXTENSION pg_shardload CASCADE;
-- (postgres_fdw's own version differs between PostgreSQL releases)
SELECT extname, CASE WHEN extname = 'pg_shardload' THEN extversion END AS extversion
FROM pg_extension WHERE extname IN ('pg_shardload', 'postgres_fdw') ORDER BY 1;

-- the public contract: views and their columns
SELECT table_name, string_agg(column_name, ', ' ORDER BY ordinal_position) AS columns
FROM information_schema.columns
WHERE table_schema = 'shardload' AND table_name IN ('batches', 'attempts', 'slices', 'rejects', 'failures')
GROUP BY table_name ORDER BY table_name;

-- the functions and procedures
SELECT p.proname, p.prokind, pg_get_function_identity_arguments(p.oid) AS args
FROM pg_proc p WHERE p.pronamespace = 'shardload'::regnamespace ORDER BY 1, 3;

-- defaults operators can change
SELECT * FROM shardload.retry_policy;
SELECT count(*) AS rules FROM shardload.error_rule;

-- ==== classification: the longest matching SQLSTATE prefix wins ====
SELECT s, (shardload.classify(s)).*
FROM unnest(ARRAY['08006', '08001', '57P01', '53300', '53200', '57014', '55P03', '40001',
				  '40P01', '28P01', '42501', '42P01', '3D000', '42704', '22P02', '23505',
				  'XX000', 'P0001']) AS s;

-- ==== settings ====
SHOW shardload.payload_retention;
SHOW shardload.naptime;
SET shardload.no_such_setting = 1;

-- ==== the coordinator has an identity for the shard ledgers ====
SELECT count(*) AS nodes, bool_and(coordinator_id IS NOT NULL) AS has_id FROM shardload.node;

-- ==== dropping removes everything but the shared admin role ====
DROP EXTENSION pg_shardload;
SELECT count(*) FROM pg_namespace WHERE nspname = 'shardload';
CREATE EXTENSION pg_shardload;
SELECT count(*) FROM pg_roles WHERE rolname = 'shardload_admin';
