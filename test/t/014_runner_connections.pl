# A runner keeps its shard connections between batches: far fewer shard
# connections than batches, never one role's connection for another role's
# batch, and a kept connection the shard closed meanwhile (a restart) is
# replaced without failing the batch.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1, conf => "shardload.max_workers = 1\n");
my @shards = start_shards($coord, 2);
stage_rows($coord, 'staging', 400, 2);
my $ledger_ddl = $coord->safe_psql('postgres', 'SELECT shardload.ledger_ddl()');

# on each shard: two loading roles, who share the ledger through a group
# role, and a column that records who inserted each row
for my $i (1 .. 2)
{
	$shards[ $i - 1 ]->append_conf('postgresql.conf', "log_connections = on\n");
	$shards[ $i - 1 ]->reload;
	$shards[ $i - 1 ]->safe_psql('postgres', qq{
		CREATE ROLE loaders;
		CREATE ROLE alice_r LOGIN IN ROLE loaders;
		CREATE ROLE bob_r LOGIN IN ROLE loaders;
		GRANT CREATE ON DATABASE postgres TO loaders;
		GRANT INSERT ON sales_region_$i TO loaders;
		ALTER TABLE sales_region_$i ADD COLUMN loaded_by name DEFAULT current_user;
		SET ROLE loaders;
		$ledger_ddl
	});
}
$coord->safe_psql('postgres', q{
	CREATE ROLE alice;
	CREATE ROLE bob;
	GRANT INSERT ON sales TO alice, bob;
	GRANT SELECT ON staging TO alice, bob;
	CREATE USER MAPPING FOR alice SERVER shard_1 OPTIONS (user 'alice_r', password_required 'false');
	CREATE USER MAPPING FOR alice SERVER shard_2 OPTIONS (user 'alice_r', password_required 'false');
	CREATE USER MAPPING FOR bob SERVER shard_1 OPTIONS (user 'bob_r', password_required 'false');
	CREATE USER MAPPING FOR bob SERVER shard_2 OPTIONS (user 'bob_r', password_required 'false');
});

sub connections
{
	my ($shard, $user) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($shard->logfile);
	return scalar(() = $log =~ /connection authorized: user=$user /g);
}

# ==== twenty batches, alice's and bob's in turn, one runner ====
my $sql = "BEGIN;\n";
for my $k (0 .. 19)
{
	my $role = $k % 2 ? 'bob' : 'alice';
	my ($lo, $hi) = ($k * 20 + 1, $k * 20 + 20);
	$sql .= "SET ROLE $role; SELECT shardload.submit('sales', 'turn-$k', "
	  . "'SELECT * FROM staging WHERE sale_id BETWEEN $lo AND $hi'); RESET ROLE;\n";
}
$coord->safe_psql('postgres', $sql . "COMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM shardload.batches WHERE batch_key LIKE 'turn-%' AND state = 'succeeded'"),
	'the worker loaded all twenty batches');
is($coord->safe_psql('postgres',
		"SELECT max(attempts) FROM shardload.batches WHERE batch_key LIKE 'turn-%'"),
	'1', 'each on its first attempt');
for my $i (1 .. 2)
{
	# alice's batches are the even ones: sale_id 1-20, 41-60, ...
	is($shards[ $i - 1 ]->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE ((sale_id - 1) / 20) % 2 = 0 AND loaded_by = 'alice_r') || ' ' "
			  . "|| count(*) FILTER (WHERE ((sale_id - 1) / 20) % 2 = 1 AND loaded_by = 'bob_r') || ' ' "
			  . "|| count(*) FROM sales_region_$i"),
		'100 100 200', "shard $i: every row was inserted by the role of its own batch");
	my ($a, $b) = (connections($shards[ $i - 1 ], 'alice_r'), connections($shards[ $i - 1 ], 'bob_r'));
	ok($a >= 1 && $a <= 2 && $b >= 1 && $b <= 2,
		"shard $i: 10 batches each of alice and bob over $a and $b connections");
}

# ==== a kept connection whose shard restarted is replaced ====
# batch A reaches shard 2 only, B shard 1 only (slowly), C shard 2 only;
# shard 2 restarts while B runs, so the runner's kept connection to it dies
slow_down_shard($shards[0], 1, 1, 0.3);
$coord->safe_psql('postgres', q{
	BEGIN;
	SELECT shardload.submit('sales', 'restart-a', 'SELECT sale_id + 1000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 2 AND sale_id <= 20');
	SELECT shardload.submit('sales', 'restart-b', 'SELECT sale_id + 1000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 1 AND sale_id <= 20');
	SELECT shardload.submit('sales', 'restart-c', 'SELECT sale_id + 2000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 2 AND sale_id <= 20');
	COMMIT;
});
ok($shards[0]->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'COPY%' AND wait_event = 'PgSleep'"),
	'batch B is being loaded, slowly');
$shards[1]->restart;
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM shardload.batches WHERE batch_key LIKE 'restart-%' AND state = 'succeeded'"),
	'all three batches loaded');
is($coord->safe_psql('postgres',
		"SELECT string_agg(batch_key || ':' || attempts, ',' ORDER BY batch_key) FROM shardload.batches WHERE batch_key LIKE 'restart-%'"),
	'restart-a:1,restart-b:1,restart-c:1', 'none of them needed a second attempt');
is($shards[1]->safe_psql('postgres', 'SELECT count(*) FROM sales_region_2 WHERE sale_id > 1000'),
	'20', 'shard 2 holds the rows of A and C once');

# ==== one bad batch in a runner's group fails alone ====
# six batches for shard 1 in one group, sharing one remote transaction; one
# of them holds a row the shard refuses: the shared transaction is rolled
# back, and the slices go again one by one
$shards[0]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_1');
$shards[0]->safe_psql('postgres',
	'ALTER TABLE sales_region_1 ADD CONSTRAINT not_3014 CHECK (sale_id <> 3014)');
$sql = "BEGIN;\n";
for my $k (0 .. 5)
{
	$sql .= "SELECT shardload.submit('sales', 'group-$k', "
	  . "'SELECT sale_id + 3000, region_id, sale_amount, sale_date, note FROM staging "
	  . "WHERE region_id = 1 AND sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4) . "');\n";
}
$coord->safe_psql('postgres', $sql . "COMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 6 FROM shardload.batches WHERE batch_key LIKE 'group-%' AND state IN ('succeeded', 'failed')"),
	'the six batches ran');
is($coord->safe_psql('postgres',
		"SELECT string_agg(batch_key || ':' || state || ':' || attempts, ',' ORDER BY batch_key) FROM shardload.batches WHERE batch_key LIKE 'group-%'"),
	'group-0:succeeded:1,group-1:succeeded:1,group-2:succeeded:1,group-3:failed:1,group-4:succeeded:1,group-5:succeeded:1',
	'only the batch with the refused row failed, each on its first attempt');
is($coord->safe_psql('postgres',
		"SELECT a.sqlstate || ' ' || a.failure_type FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key = 'group-3'"),
	'23514 NON_RETRYABLE', 'with the shard\'s own error');
is($shards[0]->safe_psql('postgres',
		'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_1 WHERE sale_id BETWEEN 3001 AND 3024'),
	'10 10', 'shard 1 holds the rows of the five good batches once');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key LIKE 'group-%'"),
	'6', 'one attempt each');

done_testing();
