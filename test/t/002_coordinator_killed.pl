# The coordinator backend is killed with SIGKILL during a run; the next run
# finishes the batch with exact counts (the shard ledgers remember what was
# committed before the crash).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
# the test framework turns this off; a production server has it on
$coord->append_conf('postgresql.conf', 'restart_after_crash = on');
$coord->reload;
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 100000, 3);
my %expected = map { $_ => $coord->safe_psql('postgres',
		"SELECT count(*) FROM staging WHERE region_id = $_") } 1 .. 3;
my $id = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'crash-1', 'SELECT * FROM staging')");

slow_down_shard($shards[2], 3, 301, 0.03);
my ($h, $out, $err) = start_psql($coord, "CALL shardload.run($id);");
ok($shards[0]->poll_query_until('postgres',
		"SELECT to_regclass('shardload_ledger.slices') IS NOT NULL AND "
		  . "(SELECT count(*) FROM shardload_ledger.slices) = 1"),
	'shard 1 committed its slice');
ok($shards[2]->poll_query_until('postgres',
		"SELECT coalesce(max(tuples_processed), 0) > 1000 FROM pg_stat_progress_copy"),
	'shard 3 is still loading');
my $pid = $coord->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL shardload.run%' AND pid <> pg_backend_pid()");
ok($pid =~ /^\d+$/, 'found the running backend')
  or diag($coord->safe_psql('postgres', 'SELECT pid, application_name, state, query FROM pg_stat_activity'));
kill 'KILL', $pid;
$h->finish;
ok($coord->poll_query_until('postgres', 'SELECT true'), 'coordinator is back after the crash');

is($coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $id"),
	'running', 'the batch was left running by the dead backend');
ok($shards[2]->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_progress_copy"),
	'shard 3 rolled the orphaned COPY back');
is(shard_count($shards[2], 3), '0', 'nothing of the killed COPY stayed on shard 3');
$shards[2]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_3');

$coord->safe_psql('postgres', "CALL shardload.run($id)");
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded FROM shardload.batches WHERE batch_id = $id"),
	'succeeded 100000', 'the next run finishes the batch');
is($coord->safe_psql('postgres',
		"SELECT string_agg(attempt || ':' || status, ',' ORDER BY attempt) FROM shardload.attempts WHERE batch_id = $id"),
	'1:interrupted,2:succeeded', 'the killed attempt is recorded as interrupted');
for my $i (1 .. 3)
{
	is(shard_count($shards[ $i - 1 ], $i), $expected{$i}, "shard $i holds exactly its rows");
	is($shards[ $i - 1 ]->safe_psql('postgres',
			"SELECT count(*) - count(DISTINCT sale_id) FROM sales_region_$i"),
		'0', "no duplicates on shard $i");
}

done_testing();
