# Upgrading a coordinator from pg_shardload 0.1 to 0.2 in place: a 0.1
# library and catalog make history (a loaded batch, a failed one, a pending
# one, rejected rows, a cron job); the data directory then starts under
# the 0.2 library, which refuses the 0.1 catalog until ALTER EXTENSION
# UPDATE, after which the catalog equals a fresh 0.2 install and the old
# batches show, replay and run, into shards whose ledgers 0.1 made.  The
# 0.1 library, for its part, cannot take a 0.2 catalog.
# The 0.1 installation comes from scripts/old-release.sh (scripts/test.sh
# makes it on PostgreSQL 15; 0.1 does not build on later versions).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $old = $ENV{SHARDLOAD_OLD_INSTALL} // '';
plan skip_all => 'no pg_shardload 0.1 installation: '
  . ($ENV{SHARDLOAD_OLD_INSTALL_WHY} || 'SHARDLOAD_OLD_INSTALL is not set')
  unless $old ne '' && -d $old;

# ==== history made by 0.1 ====
my $c01 = start_coordinator('coord01', install_path => $old, version => '0.1', allows_streaming => 1);
my @shards = start_shards($c01, 2);
stage_rows($c01, 'staging', 1000, 2);
is($c01->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pg_shardload'"),
	'0.1', 'the old coordinator runs 0.1');
$c01->safe_psql('postgres', q{
	SELECT shardload.submit('sales', 'ok', 'SELECT * FROM staging') AS b \gset
	CALL shardload.run(:b);
});
$shards[1]->safe_psql('postgres', 'ALTER TABLE sales_region_2 ADD CONSTRAINT small CHECK (sale_amount < 900)');
$c01->safe_psql('postgres', q{
	SELECT shardload.submit('sales', 'refused', $$SELECT 5001, 2, 950.00, date '2026-11-25', 'big'$$) AS b \gset
	CALL shardload.run(:b);
	SELECT shardload.submit('sales', 'pending', $$SELECT 5002, 1, 1.00, date '2026-11-25', 'later'$$);
	SELECT shardload.submit_csv('sales', 'with-rejects', E'5003,1,abc,2026-11-25,bad\n5004,2,2.00,2026-11-25,good\n',
								on_error => 'reject', reject_limit => 5);
	SELECT shardload.schedule('yearly', '0 0 1 1 *', 'sales', $$SELECT 1, 1, 1.00, date '2026-11-25', 'tick'$$);
});
my $before = $c01->safe_psql('postgres',
	"SELECT string_agg(batch_key || ' ' || state || ' ' || rows_loaded, ', ' ORDER BY batch_id) FROM shardload.batches");
is($before, 'ok succeeded 1000, refused failed 0, pending pending 0, with-rejects pending 0',
	'0.1 made a loaded, a failed and two pending batches');
is(ledger_count($shards[0]) + ledger_count($shards[1]), 2, 'and the 0.1 ledgers on both shards');

# ==== the 0.1 library does not take a 0.2 catalog ====
$c01->safe_psql('postgres', 'CREATE DATABASE other');
$c01->safe_psql('other', "CREATE EXTENSION pg_shardload VERSION '0.1' CASCADE");
my ($rc, $out, $err) = $c01->psql('other', "ALTER EXTENSION pg_shardload UPDATE TO '0.2'");
like($err, qr/could not find function "shardload_\w+" in file/,
	'0.1 library, 0.2 update script: the update fails, naming the missing function');
is($c01->safe_psql('other', "SELECT extversion FROM pg_extension WHERE extname = 'pg_shardload'"),
	'0.1', 'and the catalog stays 0.1');

$c01->backup('before_upgrade');
$c01->stop;

# ==== the same data directory under the 0.2 library ====
my $c02 = PostgreSQL::Test::Cluster->new('coord02');
$c02->init_from_backup($c01, 'before_upgrade');
$c02->start;
($rc, $out, $err) = $c02->psql('postgres', q{SELECT shardload.submit('sales', 'too-early', 'SELECT * FROM staging LIMIT 1')});
like($err, qr/catalog in this database is version 0\.1, but its library is version 0\.2.*\n.*HINT:  Run ALTER EXTENSION pg_shardload UPDATE/,
	'0.2 library, 0.1 catalog: refused with a hint to update');
$c02->safe_psql('postgres', 'ALTER EXTENSION pg_shardload UPDATE');
is($c02->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pg_shardload'"),
	'0.2', 'updated to 0.2');

# (a) the updated catalog is a fresh 0.2 catalog: tables, columns, defaults,
# constraints, indexes, views, functions, comments and privileges
my $describe = q{
	SELECT string_agg(line, E'\n' ORDER BY line) FROM (
	  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
			 || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
			 || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS line
	  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	  WHERE c.relnamespace = 'shardload'::regnamespace
	  UNION ALL
	  SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE connamespace = 'shardload'::regnamespace
	  UNION ALL
	  SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'shardload'
	  UNION ALL
	  SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'shardload'
	  UNION ALL
	  SELECT 'function ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '')
	  FROM pg_proc p WHERE p.pronamespace = 'shardload'::regnamespace
	  UNION ALL
	  SELECT 'relation ' || relname || ' ' || relkind::text || ' acl ' || coalesce(relacl::text, '')
			 || ' comment ' || coalesce(obj_description(oid, 'pg_class'), '')
	  FROM pg_class WHERE relnamespace = 'shardload'::regnamespace
	  UNION ALL
	  SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
	  FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shardload')
	) lines};
$c02->safe_psql('postgres', 'CREATE DATABASE fresh');
$c02->safe_psql('fresh', 'CREATE EXTENSION pg_shardload CASCADE');
my $updated = $c02->safe_psql('postgres', $describe);
my $fresh = $c02->safe_psql('fresh', $describe);
ok(length($fresh) > 1000, 'the catalog description is not empty');
is($updated, $fresh, 'the updated catalog equals a fresh 0.2 install');

# (b) the old batches, rejects and job are all there, and go on
is($c02->safe_psql('postgres',
	"SELECT string_agg(batch_key || ' ' || state || ' ' || rows_loaded, ', ' ORDER BY batch_id) FROM shardload.batches"),
	$before, 'the batches show as before');
is($c02->safe_psql('postgres', "SELECT count(*) FROM shardload.rejects"), '1', 'the rejected row shows');
is($c02->safe_psql('postgres', "SELECT job_name || ' ' || search_path FROM shardload.jobs"),
	'yearly "$user", public', 'the job shows, with the search_path 0.1 used');
$shards[1]->safe_psql('postgres', 'ALTER TABLE sales_region_2 DROP CONSTRAINT small');
$c02->safe_psql('postgres', q{
	SELECT shardload.replay(batch_id) FROM shardload.batches WHERE batch_key = 'refused';
	SELECT shardload.run_due(10);
	SELECT shardload.submit('sales', 'after', $$SELECT 6000 + g, g % 2 + 1, 1.00, date '2026-11-25', 'new' FROM generate_series(1, 10) g$$) AS b \gset
	CALL shardload.run(:b);
});
is($c02->safe_psql('postgres',
	"SELECT string_agg(batch_key || ' ' || state || ' ' || rows_loaded, ', ' ORDER BY batch_id) FROM shardload.batches"),
	'ok succeeded 1000, refused succeeded 1, pending succeeded 1, with-rejects succeeded 1, after succeeded 10',
	'the failed batch replays, the pending ones run, new ones load');
# (the ledgers 0.1 made on the shards take the new slices)
is($shards[0]->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_1')
	  . ' ' . $shards[1]->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_2'),
	'506 506 507 507', 'every row once on its shard');
is(ledger_count($shards[0]) + ledger_count($shards[1]), 7, 'one ledger row per loaded slice');

done_testing();
