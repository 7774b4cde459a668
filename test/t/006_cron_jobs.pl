# Cron-scheduled loads: one batch per tick, also across a restart, and the
# $1/$2 window loads each source row exactly once.  A seconds field makes
# the ticks fast; it is the same code path as a minute schedule.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1);
my @shards = start_shards($coord, 2);
$coord->safe_psql('postgres', q{
	CREATE TABLE feed (id bigserial, region int NOT NULL,
					   at timestamptz NOT NULL DEFAULT clock_timestamp());
	CREATE PROCEDURE feed_rows(n int) LANGUAGE sql AS
		$$ INSERT INTO feed (region) SELECT g % 2 + 1 FROM generate_series(1, n) g $$;
});

my $query = q{SELECT id, region, 1.00, '2026-11-26', 'tick ' || $1::text FROM feed WHERE at > $2 AND at <= $1};
$coord->safe_psql('postgres',
	"SELECT shardload.schedule('feed-job', '*/2 * * * * *', 'sales', \$q\$$query\$q\$)");
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.jobs WHERE job_name = 'feed-job'"),
	'1', 'the job is listed');

# rows arrive while the job ticks; some ticks find none
for my $round (1 .. 4)
{
	$coord->safe_psql('postgres', 'CALL feed_rows(50)');
	my $ticks = $coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'");
	ok($coord->poll_query_until('postgres',
			"SELECT count(*) > $ticks FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'"),
		"round $round: a new tick made a batch");
}

# the coordinator restarts in the middle of it
$coord->restart;
$coord->safe_psql('postgres', 'CALL feed_rows(50)');
my $before = $coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) > $before FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'"),
	'ticks go on after the restart');

# let the last rows be picked up, then stop the job
my $last_row = $coord->safe_psql('postgres', 'SELECT max(at) FROM feed');
ok($coord->poll_query_until('postgres',
		"SELECT last_tick >= '$last_row' AND last_state = 'succeeded' FROM shardload.jobs WHERE job_name = 'feed-job'"),
	'a tick after the last row was loaded');
is($coord->safe_psql('postgres', "SELECT shardload.unschedule('feed-job')"), 't', 'unscheduled');
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM shardload.batches WHERE batch_key LIKE 'feed-job@%' AND state <> 'succeeded'"),
	'every tick batch succeeded');

is($coord->safe_psql('postgres', q{
	SELECT count(*) - count(DISTINCT batch_key) FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'}),
	'0', 'one batch per tick');
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT batch_key FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'
	 AND right(batch_key, 3)::text !~ '^[0-9][02468]Z$') odd}), '0',
	'every key names an even second, a tick of */2');
my $loaded = $shards[0]->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_1')
  . ' ' . $shards[1]->safe_psql('postgres', 'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_2');
is($loaded, '125 125 125 125', 'each source row was loaded exactly once');
is($coord->safe_psql('postgres', "SELECT sum(rows_loaded) FROM shardload.batches WHERE batch_key LIKE 'feed-job@%'"),
	'250', 'the batches account for every row');

done_testing();
