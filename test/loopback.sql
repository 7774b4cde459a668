-- Loopback shards for pg_regress: a foreign server per database of this
-- same instance, reached over its unix socket, with a user mapping for the
-- current role.  Usage: SELECT regress_shard('server_name', 'database');
CREATE OR REPLACE FUNCTION regress_shard(server_name text, db text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw'
				   ' OPTIONS (host %L, port %L, dbname %L)', server_name,
				   split_part(current_setting('unix_socket_directories'), ',', 1),
				   current_setting('port'), db);
	EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER %I', server_name);
END
$$;
