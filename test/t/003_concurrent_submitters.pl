# Eight sessions submit and run the same key at once: one batch, every row
# loaded once.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 30000, 3);

my $script = "SELECT shardload.submit('sales', 'same-key', 'SELECT * FROM staging') AS id \\gset\n"
  . "CALL shardload.run(:id);\n";
my @runs = map { [ start_psql($coord, $script) ] } 1 .. 8;
for my $run (@runs)
{
	my ($h, $out, $err) = @$run;
	$h->finish;
	is($h->result(0), 0, 'session finished without error')
	  or diag($$err);
}

is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key = 'same-key'"),
	'1', 'one batch for the key');
is($coord->safe_psql('postgres', "SELECT state || ' ' || rows_loaded FROM shardload.batches"),
	'succeeded 30000', 'the batch succeeded');
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.attempts"),
	'1', 'only one attempt did any work');
for my $i (1 .. 3)
{
	is(shard_count($shards[ $i - 1 ], $i), '10000', "shard $i holds its rows once");
	is(ledger_count($shards[ $i - 1 ]), '1', "shard $i ledger has one slice");
}

done_testing();
