# Without the scheduler: pg_cron drives shardload.run_due(), as
# docs/configuration.md shows.  Both libraries are preloaded, pg_shardload's
# scheduler serves no database, and no test step calls run or run_due:
# due batches load, and a batch whose shard is down is retried until it
# loads once the shard is back.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $pkglibdir = `$pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "pg_cron is not installed in $pkglibdir (Debian package postgresql-N-cron)"
  unless -f "$pkglibdir/pg_cron.so";

my $coord = start_coordinator('coordinator', conf => qq{
shared_preload_libraries = 'pg_cron, pg_shardload'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
});
my @shards = start_shards($coord, 2);
stage_rows($coord, 'staging', 200, 2);
$coord->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	INSERT INTO shardload.retry_policy (policy_name, max_attempts, base_delay, max_delay, jitter_ratio)
	VALUES ('quick', 20, '1 second', '2 seconds', 0);
});
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_shardload scheduler'"),
	'0', 'no pg_shardload scheduler runs');

# every second where pg_cron can (1.5 and later), else every minute
my $cron_version = $coord->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'");
my ($major, $minor) = $cron_version =~ /^(\d+)\.(\d+)/;
my $every = ($major > 1 || $minor >= 5) ? '1 seconds' : '* * * * *';
note "pg_cron $cron_version, schedule '$every'";

$shards[1]->stop;
$coord->safe_psql('postgres', q{
	SELECT shardload.submit('sales', 'region-1', 'SELECT * FROM staging WHERE region_id = 1', policy => 'quick');
	SELECT shardload.submit('sales', 'region-2', 'SELECT * FROM staging WHERE region_id = 2', policy => 'quick');
});
# the job docs/configuration.md shows
$coord->safe_psql('postgres',
	"SELECT cron.schedule_in_database('shardload-run-due', '$every', 'SELECT shardload.run_due(50)', 'postgres')");

ok($coord->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM shardload.batches WHERE batch_key = 'region-1'"),
	'a due batch loads with no call but pg_cron\'s');
ok($coord->poll_query_until('postgres',
		"SELECT state = 'retry_wait' AND attempts >= 1 FROM shardload.batches WHERE batch_key = 'region-2'"),
	'a batch whose shard is down waits for its retry');
is($coord->safe_psql('postgres', q{
	SELECT failure_type || ' ' || next_action FROM shardload.attempts
	WHERE batch_id = (SELECT batch_id FROM shardload.batches WHERE batch_key = 'region-2') ORDER BY attempt LIMIT 1}),
	'TRANSIENT RETRY', 'its first attempt is recorded as transient, to be retried');

$shards[1]->start;
ok($coord->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM shardload.batches WHERE batch_key = 'region-2'"),
	'once the shard is back, a retry loads it');
is(shard_count($shards[0], 1) . ' ' . shard_count($shards[1], 2), '100 100',
	'every row once on its shard');
is($coord->safe_psql('postgres',
		"SELECT count(*) > 0 FROM cron.job_run_details WHERE command LIKE '%run_due%' AND status = 'succeeded'"),
	't', 'pg_cron recorded its successful runs');

done_testing();
