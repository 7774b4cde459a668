# The circuit breaker: with a shard down, attempts against it stop growing
# once its circuit is open, and resume (and succeed) after it comes back.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator',
	conf => "shardload.circuit_failures = 2\nshardload.circuit_cooldown = 3\n");
my ($shard) = start_shards($coord, 1);
stage_rows($coord, 'staging', 1000, 1);
$coord->safe_psql('postgres',
	"INSERT INTO shardload.retry_policy VALUES ('many', 50, '0.1 seconds', '0.2 seconds', 0, 1)");
my $id = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'cb-1', 'SELECT * FROM staging', policy => 'many')");

sub attempts
{
	return $coord->safe_psql('postgres', "SELECT attempts FROM shardload.batches WHERE batch_id = $id");
}

$shard->stop('immediate');
$coord->psql('postgres', "CALL shardload.run($id)") for 1 .. 2;
is(attempts(), '2', 'two attempts failed');
is($coord->safe_psql('postgres', "SELECT circuit || ' ' || consecutive_failures FROM shardload.shards WHERE server = 'shard_1'"),
	'open 2', 'the circuit opened after two failures in a row');

my ($ret, $out, $err) = $coord->psql('postgres', "CALL shardload.run($id)");
like($err, qr/batch $id is deferred: the circuit of server "shard_1" is open/, 'a run while open is deferred');
$coord->psql('postgres', "CALL shardload.run($id)") for 1 .. 3;
is(attempts(), '2', 'attempts stop growing while the circuit is open');
is($coord->safe_psql('postgres', "SELECT state || ' ' || (next_attempt_at = (SELECT probe_at FROM shardload.shards)) FROM shardload.batches WHERE batch_id = $id"),
	'retry_wait true', 'the batch waits for the probe time');

# another batch for the same shard is deferred at once
my $id2 = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'cb-2', 'SELECT sale_id + 5000, region_id, sale_amount, sale_date, note FROM staging', policy => 'many')");
$coord->psql('postgres', "CALL shardload.run($id2)");
is($coord->safe_psql('postgres', "SELECT attempts FROM shardload.batches WHERE batch_id = $id2"),
	'0', 'a new batch for an open circuit uses no attempt');

# the shard comes back; after the cool-down the probe goes through
$shard->start;
ok($coord->poll_query_until('postgres', "SELECT now() >= probe_at FROM shardload.shards"),
	'the cool-down passed');
$coord->safe_psql('postgres', "CALL shardload.run($id)");
is($coord->safe_psql('postgres', "SELECT state || ' ' || attempts FROM shardload.batches WHERE batch_id = $id"),
	'succeeded 3', 'the probe attempt succeeded');
is($coord->safe_psql('postgres', "SELECT circuit || ' ' || consecutive_failures || ' ' || (last_success_at IS NOT NULL) FROM shardload.shards"),
	'closed 0 true', 'the circuit closed');
$coord->safe_psql('postgres', "CALL shardload.run($id2)");
is($coord->safe_psql('postgres', "SELECT state || ' ' || attempts FROM shardload.batches WHERE batch_id = $id2"),
	'succeeded 1', 'the waiting batch loads once the circuit is closed');
is(shard_count($shard, 1), '2000', 'every row once');

done_testing();
