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

# ticks missed while nothing ran (the server down, the scheduler stopped):
# made here by moving two daily jobs' last tick three days back.  With
# catch_up every missed tick gets a batch and its own window; without, only
# the latest tick, whose window covers all of them.
$coord->safe_psql('postgres', q{
	BEGIN;
	SELECT shardload.schedule('daily-catch-up', '0 0 * * *', 'sales',
		$$SELECT extract(epoch FROM $1)::bigint, 1, 1.00, '2026-11-26', 'catch-up ' || $2::text || ' to ' || $1::text$$,
		catch_up => true);
	SELECT shardload.schedule('daily-latest', '0 0 * * *', 'sales',
		$$SELECT extract(epoch FROM $1)::bigint + 1, 1, 1.00, '2026-11-26', 'latest ' || $2::text || ' to ' || $1::text$$);
	UPDATE shardload.job SET last_tick = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '3 days'
	WHERE job_name IN ('daily-catch-up', 'daily-latest');
	COMMIT;
});
ok($coord->poll_query_until('postgres', q{
	SELECT count(*) = 4 FROM shardload.batches
	WHERE (batch_key LIKE 'daily-catch-up@%' OR batch_key LIKE 'daily-latest@%') AND state = 'succeeded'}),
	'the missed ticks were loaded');
my $midnight = q{date_trunc('day', now() AT TIME ZONE 'UTC')};
is($coord->safe_psql('postgres', qq{
	SELECT string_agg(to_char($midnight - b.batch_key_day, 'FMDD'), ',' ORDER BY b.batch_id)
	FROM (SELECT batch_id, substring(batch_key FROM '\@(.*)Z\$')::timestamp AS batch_key_day
		  FROM shardload.batches WHERE batch_key LIKE 'daily-catch-up@%') b}),
	'2,1,0', 'catch_up: one batch per missed tick, oldest first');
is($coord->safe_psql('postgres', qq{
	SELECT count(*) FROM shardload.batches
	WHERE batch_key = 'daily-latest\@' || to_char($midnight, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')}),
	'1', 'without catch_up: one batch, for the latest tick');

is($shards[0]->safe_psql('postgres', q{
	SELECT string_agg(split_part(note, ' ', 1) || ' ' || (split_part(split_part(note, ' to ', 2), ' ', 1)::date
					  - split_part(note, ' ', 2)::date), ',' ORDER BY sale_id, note)
	FROM sales_region_1 WHERE note LIKE 'catch-up %' OR note LIKE 'latest %'}),
	'catch-up 1,catch-up 1,catch-up 1,latest 3',
	'each catch-up window is one day; the latest window covers all three');

done_testing();
