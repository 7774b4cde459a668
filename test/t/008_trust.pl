# Trust under hostile or unusual conditions, with real servers and roles:
# shards with their own DateStyle and TimeZone, a private ledger, a shard
# role that may not create it, a foreign server re-pointed after a slice's
# outcome became unknown, user code releasing the batch lock mid-run, a
# schedule() race, and cron ticks of several roles in one scheduler.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1,
	conf => "timezone = 'America/New_York'\ndatestyle = 'Postgres, MDY'\n");
my @shards = start_shards($coord, 3);
$shards[0]->append_conf('postgresql.conf',
	"timezone = 'Asia/Tokyo'\ndatestyle = 'SQL, DMY'\nintervalstyle = 'sql_standard'\n");
$shards[0]->restart;

# ==== values: offset-less text read in the submitting session's zone ====
$coord->safe_psql('postgres', q{
	CREATE TABLE stamps (id int, region int NOT NULL, at timestamptz, d date, iv interval)
		PARTITION BY LIST (region);
});
$shards[0]->safe_psql('postgres',
	'CREATE TABLE stamps_1 (id int, region int NOT NULL, at timestamptz, d date, iv interval)');
$coord->safe_psql('postgres', q{
	CREATE FOREIGN TABLE stamps_1 PARTITION OF stamps FOR VALUES IN (1) SERVER shard_1;
	CREATE TABLE stamps_ref (LIKE stamps);
});
my $csv = "1,1,2026-03-04 10:00:00,04/03/2026,-1 2:00:00\n2,1,2026-07-01 23:30:00,01/07/2026,1 day\n";
$coord->safe_psql('postgres', qq{
	SET timezone = 'Europe/Berlin'; SET datestyle = 'ISO, DMY'; SET intervalstyle = 'sql_standard';
	COPY stamps_ref FROM PROGRAM 'printf "$csv"' (FORMAT csv);
});
my $bs = $coord->safe_psql('postgres', qq{
	SET timezone = 'Europe/Berlin'; SET datestyle = 'ISO, DMY'; SET intervalstyle = 'sql_standard';
	SELECT shardload.submit_csv('stamps', 'stamps-1', \$csv\$$csv\$csv\$);
});
$coord->safe_psql('postgres', "CALL shardload.run($bs)");
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM ((SELECT id, at, d, iv FROM stamps EXCEPT SELECT id, at, d, iv FROM stamps_ref)
		UNION ALL (SELECT id, at, d, iv FROM stamps_ref EXCEPT SELECT id, at, d, iv FROM stamps)) x}),
	'0', 'a shard with other DateStyle, TimeZone and IntervalStyle holds what COPY in the session stored');
is($shards[0]->safe_psql('postgres',
		"SET timezone = UTC; SET datestyle = ISO; SELECT at || ' ' || d FROM stamps_1 WHERE id = 1"),
	'2026-03-04 09:00:00+00 2026-03-04', 'Berlin 10:00 is 09:00 UTC, 04/03 is the 4th of March');

# ==== the ledger is private to the role that loads through it ====
$shards[1]->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
$coord->safe_psql('postgres', q{
	CREATE TABLE staging AS SELECT g AS sale_id, 2 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 10) g;
	CALL shardload.load('sales', 'ledger-1', 'SELECT * FROM staging');
});
is(shard_count($shards[1], 2), '10', 'the batch is loaded');
is($shards[1]->safe_psql('postgres',
		"SELECT has_schema_privilege('mallory', 'shardload_ledger', 'USAGE')::text || "
		  . "has_table_privilege('mallory', 'shardload_ledger.slices', 'SELECT,INSERT')::text"),
	'falsefalse', 'another role on the shard can neither read nor add ledger rows');
my ($ok, $out, $err) = $shards[1]->psql('postgres',
	"INSERT INTO shardload_ledger.slices VALUES (gen_random_uuid(), 1, 1, 't', 'h', 1)",
	extra_params => [ '-U', 'mallory' ]);
like($err, qr/permission denied/, 'an insert by another role is refused');
is($coord->safe_psql('postgres', 'SELECT shardload.ledger_ddl() LIKE \'%REVOKE ALL ON TABLE shardload_ledger.slices FROM PUBLIC%\''),
	't', 'ledger_ddl() shows the one recipe');

# ==== a shard role that may not create the ledger: LEDGER, NON_RETRYABLE, with the way on ====
$shards[2]->safe_psql('postgres', q{
	CREATE ROLE loader LOGIN;
	REVOKE CREATE ON DATABASE postgres FROM PUBLIC;
	REVOKE CREATE ON SCHEMA public FROM PUBLIC;
	GRANT INSERT ON sales_region_3 TO loader;
});
$coord->safe_psql('postgres', q{
	ALTER USER MAPPING FOR CURRENT_USER SERVER shard_3 OPTIONS (ADD user 'loader');
	CREATE TABLE staging3 AS SELECT g AS sale_id, 3 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 7) g;
});
my $b3 = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'ledger-3', 'SELECT * FROM staging3')");
$coord->psql('postgres', "CALL shardload.run($b3)");
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || last_failure_type FROM shardload.batches WHERE batch_id = $b3"),
	'failed NON_RETRYABLE', 'the batch fails for good');
is($coord->safe_psql('postgres',
		"SELECT stage || ' ' || sqlstate || ' ' || (message LIKE '%shardload.prepare_shard(''shard_3'')%')::text "
		  . "FROM shardload.attempts WHERE batch_id = $b3 ORDER BY attempt DESC LIMIT 1"),
	'LEDGER 42501 true', 'at stage LEDGER, with a hint naming prepare_shard');
($ok, $out, $err) = $coord->psql('postgres', "SELECT shardload.prepare_shard('shard_3')");
like($err, qr/could not prepare the slice ledger on server "shard_3": permission denied/, 'prepare_shard says why it cannot');
$shards[2]->safe_psql('postgres', 'GRANT CREATE ON DATABASE postgres TO loader');
is($coord->safe_psql('postgres', "SELECT shardload.prepare_shard('shard_3')"),
	'ledger shardload_ledger.slices created on server "shard_3"', 'prepare_shard creates it as the mapping\'s role');
is($shards[2]->safe_psql('postgres',
		"SELECT tableowner FROM pg_tables WHERE schemaname = 'shardload_ledger'"),
	'loader', 'the ledger belongs to the loading role');
$coord->safe_psql('postgres', "SELECT shardload.replay($b3)");
$coord->safe_psql('postgres', "CALL shardload.run($b3)");
is(shard_count($shards[2], 3), '7', 'after prepare_shard the batch loads');

# ==== a ledger schema another role made beforehand is not trusted ====
$shards[0]->safe_psql('postgres', q{
	CREATE ROLE mallory2 LOGIN;
	CREATE ROLE loader2 LOGIN;
	CREATE DATABASE hostile;
	GRANT CREATE ON DATABASE hostile TO mallory2, loader2;
});
$shards[0]->safe_psql('hostile', q{
	CREATE SCHEMA shardload_ledger AUTHORIZATION mallory2;
	GRANT USAGE, CREATE ON SCHEMA shardload_ledger TO loader2;
	CREATE TABLE t4 (sale_id bigint, region_id int NOT NULL, sale_amount numeric(10,2),
		sale_date date NOT NULL, note text);
	GRANT INSERT ON t4 TO loader2;
});
my ($h0, $p0) = ($shards[0]->host, $shards[0]->port);
$coord->safe_psql('postgres', qq{
	CREATE SERVER hostile_srv FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$h0', port '$p0', dbname 'hostile');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hostile_srv OPTIONS (user 'loader2');
	CREATE FOREIGN TABLE sales_region_4 PARTITION OF sales FOR VALUES IN (4)
		SERVER hostile_srv OPTIONS (table_name 't4');
	CREATE TABLE staging4 AS SELECT g AS sale_id, 4 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 3) g;
});
my $b4 = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'hostile-4', 'SELECT * FROM staging4')");
$coord->psql('postgres', "CALL shardload.run($b4)");
is($coord->safe_psql('postgres',
		"SELECT stage || ' ' || sqlstate || ' ' || failure_type FROM shardload.attempts WHERE batch_id = $b4 ORDER BY attempt DESC LIMIT 1"),
	'LEDGER 42501 NON_RETRYABLE', 'a ledger in a schema of another role fails at LEDGER');
like($coord->safe_psql('postgres', "SELECT message FROM shardload.attempts WHERE batch_id = $b4 ORDER BY attempt DESC LIMIT 1"),
	qr/the slice ledger on server "hostile_srv" is not this role's/, 'and says whose it is not');
is($shards[0]->safe_psql('hostile', 'SELECT count(*) FROM t4'), '0', 'nothing was loaded through it');

# ==== a ledger every role may change is used, with a warning ====
$shards[1]->safe_psql('postgres', 'GRANT INSERT, DELETE ON shardload_ledger.slices TO PUBLIC');
($ok, $out, $err) = $coord->psql('postgres', q{
	CREATE TABLE staging2b AS SELECT g + 100 AS sale_id, 2 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 4) g;
	CALL shardload.load('sales', 'ledger-2b', 'SELECT * FROM staging2b');
});
like($err, qr/the slice ledger on server "shard_2" may be changed by every role/, 'a PUBLIC-writable ledger draws a warning');
is(shard_count($shards[1], 2), '14', 'and the batch loads');
$shards[1]->safe_psql('postgres', 'REVOKE ALL ON shardload_ledger.slices FROM PUBLIC');

# ==== a server re-pointed while a slice's outcome is unknown: quarantined, not loaded twice ====
$shards[0]->safe_psql('postgres', q{
	CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'not now' USING ERRCODE = '40001'; END $$;
	CREATE TRIGGER refuse BEFORE INSERT ON sales_region_1 FOR EACH ROW EXECUTE FUNCTION refuse();
});
$coord->safe_psql('postgres', q{
	CREATE TABLE staging1 AS SELECT g AS sale_id, 1 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 5) g;
});
$coord->safe_psql('postgres', "INSERT INTO shardload.retry_policy (policy_name, base_delay, max_delay, jitter_ratio) VALUES ('slow', '1 hour', '1 hour', 0)");
my $b1 = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'moved-1', 'SELECT * FROM staging1', policy => 'slow')");
$coord->psql('postgres', "CALL shardload.run($b1)");
is($coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $b1"),
	'retry_wait', 'the first attempt failed on shard 1');
$shards[1]->safe_psql('postgres', 'CREATE TABLE sales_region_1 (LIKE sales_region_2)');
my $port2 = $shards[1]->port;
$coord->safe_psql('postgres', "ALTER SERVER shard_1 OPTIONS (SET port '$port2')");
$coord->psql('postgres', "CALL shardload.run($b1)");
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || last_failure_type FROM shardload.batches WHERE batch_id = $b1"),
	'quarantined UNKNOWN', 'the retry against another database is quarantined');
like($coord->safe_psql('postgres',
		"SELECT sqlstate || ' ' || message FROM shardload.attempts WHERE batch_id = $b1 ORDER BY attempt DESC LIMIT 1"),
	qr/^SL003 server "shard_1" now reaches another database/, 'with a message saying why');
is(shard_count($shards[1], 1), '0', 'nothing was loaded on the other database');
$coord->safe_psql('postgres', "ALTER SERVER shard_1 OPTIONS (SET port '" . $shards[0]->port . "')");

# ==== user code releasing the batch lock does not let a second run load a slice twice ====
$coord->safe_psql('postgres', q{
	CREATE TABLE sales_local PARTITION OF sales FOR VALUES IN (9);
	CREATE FUNCTION unlock_and_wait() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_advisory_unlock_all();
		IF NEW.sale_id = 1 THEN PERFORM pg_sleep(3); END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER unlock_and_wait BEFORE INSERT ON sales_local
		FOR EACH ROW EXECUTE FUNCTION unlock_and_wait();
	CREATE TABLE staging9 AS SELECT g AS sale_id, 9 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 6) g;
	ALTER SYSTEM SET shardload.naptime = 3600;
	SELECT pg_reload_conf();
});
my $b9 = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'local-9', 'SELECT * FROM staging9')");
my ($h1) = start_psql($coord, "CALL shardload.run($b9);");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"), 'the first run sleeps in the trigger');
my ($h2) = start_psql($coord, "CALL shardload.run($b9);");
$h1->finish;
$h2->finish;
is($coord->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_local'),
	'6 6', 'the local slice holds each row once');

# ==== schedule() race: a role cannot take over a job committed under it ====
$coord->safe_psql('postgres', q{
	CREATE ROLE eve LOGIN;
	GRANT INSERT ON sales TO eve;
	GRANT USAGE ON SCHEMA public TO eve;
});
my ($hs) = start_psql($coord, q{
	BEGIN;
	SELECT shardload.schedule('nightly', '0 3 * * *', 'sales', 'SELECT * FROM staging');
	SELECT pg_sleep(2);
	COMMIT;
});
ok($coord->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"), 'the superuser\'s schedule() is in flight');
($ok, $out, $err) = $coord->psql('postgres',
	"SELECT shardload.schedule('nightly', '* * * * *', 'sales', 'SELECT 1, 1, 1, now()::date, current_user')",
	extra_params => [ '-U', 'eve' ]);
$hs->finish;
like($err, qr/job "nightly" already exists/, 'the second schedule() fails once the first commits');
is($coord->safe_psql('postgres',
		"SELECT owner || ' ' || cron || ' ' || source_query FROM shardload.jobs WHERE job_name = 'nightly'"),
	$coord->safe_psql('postgres', 'SELECT current_user') . ' 0 3 * * * SELECT * FROM staging',
	'the job is unchanged');
$coord->safe_psql('postgres', "SELECT shardload.unschedule('nightly')");

# ==== cron ticks of several roles in one scheduler: no setting crosses over ====
$coord->safe_psql('postgres', q{
	ALTER SYSTEM RESET shardload.naptime;
	SELECT pg_reload_conf();
	CREATE SCHEMA eve AUTHORIZATION eve;
	CREATE TABLE seen (job text, who text, search_path text, timeout text);
	GRANT INSERT ON seen TO eve;
	CREATE FUNCTION public.log_tick(job text) RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.seen VALUES (job, current_user, current_setting('search_path'),
			current_setting('statement_timeout'));
		PERFORM set_config('search_path', 'eve, public', false);
		PERFORM set_config('statement_timeout', '1234', false);
		RETURN 0;
	END $$;
});
$coord->safe_psql('postgres',
	"SET ROLE eve; SET search_path = public; SELECT shardload.schedule('eve-job', '* * * * * *', 'sales', "
	  . "\$q\$SELECT 1, 9, 1, '2026-11-26'::date, 'e' WHERE log_tick('eve') < 0\$q\$)");
$coord->safe_psql('postgres',
	"SELECT shardload.schedule('admin-job', '* * * * * *', 'sales', "
	  . "\$q\$SELECT 1, 9, 1, '2026-11-26'::date, 'a' WHERE log_tick('admin') < 0\$q\$)");
ok($coord->poll_query_until('postgres',
		"SELECT count(DISTINCT job) = 2 AND count(*) >= 6 FROM seen"), 'both jobs ticked several times');
$coord->safe_psql('postgres', "SELECT shardload.unschedule('eve-job'), shardload.unschedule('admin-job')");
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM seen WHERE search_path LIKE '%eve%' OR timeout = '1234'"),
	'0', 'no tick saw a setting another tick left behind');
is($coord->safe_psql('postgres',
		"SELECT string_agg(DISTINCT job || ':' || who, ',' ORDER BY job || ':' || who) FROM seen"),
	'admin:' . $coord->safe_psql('postgres', 'SELECT current_user') . ',eve:eve',
	'each job ran as its owner');

# ==== a job's query has a time limit; a slow job does not hold up the others ====
$coord->safe_psql('postgres', q{
	ALTER SYSTEM SET shardload.job_timeout = '4s';
	SELECT pg_reload_conf();
	TRUNCATE seen;
});
$coord->safe_psql('postgres',
	"SELECT shardload.schedule('quick', '* * * * * *', 'sales', "
	  . "\$q\$SELECT 1, 9, 1, '2026-11-26'::date, 'q' WHERE log_tick('quick') < 0\$q\$)");
$coord->safe_psql('postgres',
	"SELECT shardload.schedule('sleepy', '* * * * * *', 'sales', "
	  . "\$q\$SELECT 1, 9, 1, '2026-11-26'::date, 'z' WHERE pg_sleep(30) IS NULL\$q\$)");
ok($coord->poll_query_until('postgres',
		"SELECT last_error LIKE '%statement timeout%' FROM shardload.jobs WHERE job_name = 'sleepy'"),
	'the slow tick is cancelled at the job time limit and recorded');
cmp_ok($coord->safe_psql('postgres', "SELECT count(*) FROM seen WHERE job = 'quick'"), '>=', 3,
	'the other job ticked every second meanwhile');
$coord->safe_psql('postgres', "SELECT shardload.unschedule('quick'), shardload.unschedule('sleepy')");

done_testing();
