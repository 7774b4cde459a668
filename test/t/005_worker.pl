# The background worker runs batches unattended: retries on schedule once a
# stopped shard is back, finishes a batch cut short by an immediate
# shutdown, runs each batch as the role that submitted it, and serves a
# tenant with one batch in the same round as a tenant with many.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1,
	conf => "shardload.max_workers = 2\nrestart_after_crash = on\nshardload.circuit_cooldown = 2\n");
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 30000, 3);
$coord->safe_psql('postgres',
	"INSERT INTO shardload.retry_policy VALUES ('fast', 50, '0.5 seconds', '2 seconds', 0.2, 1)");

ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_shardload scheduler'"),
	'the scheduler runs and shows in pg_stat_activity');

# ==== a shard is down: batches wait, then finish without a manual call ====
$shards[1]->stop('immediate');
for my $k (1 .. 3)
{
	$coord->safe_psql('postgres',
		"SELECT shardload.submit('sales', 'down-$k', "
		  . "'SELECT sale_id + $k * 100000, region_id, sale_amount, sale_date, note FROM staging', policy => 'fast')");
}
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM shardload.batches WHERE batch_key LIKE 'down-%' AND state = 'retry_wait'"),
	'the worker tried the batches and scheduled their retries');
$shards[1]->start;
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM shardload.batches WHERE batch_key LIKE 'down-%' AND state = 'succeeded'"),
	'the worker completed them once the shard was back');
for my $i (1 .. 3)
{
	is(shard_count($shards[ $i - 1 ], $i), '30000', "shard $i holds each batch's rows once");
}
is($coord->safe_psql('postgres', qq{
	SELECT bool_and(a.next_attempt_at - a.finished_at BETWEEN interval '0.3 seconds' AND interval '2.5 seconds')
	FROM shardload.attempts a JOIN shardload.batches b USING (batch_id)
	WHERE b.batch_key LIKE 'down-%' AND a.next_action = 'RETRY'}),
	't', 'retries were scheduled by the backoff policy');

# ==== an immediate shutdown in the middle of a large batch ====
slow_down_shard($shards[2], 3, 301, 0.03);
my $big = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'big-1', "
	  . "'SELECT sale_id + 1000000, region_id, sale_amount, sale_date, note FROM staging')");
ok($shards[2]->poll_query_until('postgres',
		"SELECT coalesce(max(tuples_processed), 0) > 500 FROM pg_stat_progress_copy"),
	'the worker is loading the large batch');
$coord->stop('immediate');
$coord->start;
ok($coord->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM shardload.batches WHERE batch_id = $big"),
	'after the restart the worker finished the batch');
is($coord->safe_psql('postgres',
		"SELECT string_agg(status, ',' ORDER BY attempt) FROM shardload.attempts WHERE batch_id = $big"),
	'interrupted,succeeded', 'the cut attempt is recorded as interrupted');
for my $i (1 .. 3)
{
	is($shards[ $i - 1 ]->safe_psql('postgres',
			"SELECT count(*) || ' ' || count(DISTINCT sale_id) FROM sales_region_$i WHERE sale_id > 1000000"),
		'10000 10000', "shard $i: the large batch exactly once");
}
$shards[2]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_3');

# ==== a batch runs as the role that submitted it ====
$coord->safe_psql('postgres', q{
	CREATE ROLE etl_user LOGIN;
	GRANT INSERT ON sales TO etl_user;
	GRANT SELECT ON staging TO etl_user;
	CREATE USER MAPPING FOR etl_user SERVER shard_1 OPTIONS (password_required 'false');
	CREATE USER MAPPING FOR etl_user SERVER shard_2 OPTIONS (password_required 'false');
});
$coord->safe_psql('postgres',
	"SET ROLE etl_user; SELECT shardload.submit('sales', 'etl-1', "
	  . "'SELECT sale_id + 2000000, region_id, sale_amount, sale_date, note FROM staging')");
ok($coord->poll_query_until('postgres',
		"SELECT state IN ('failed', 'succeeded') FROM shardload.batches WHERE batch_key = 'etl-1'"),
	'the worker ran the role\'s batch');
is($coord->safe_psql('postgres',
		"SELECT b.state || ' ' || a.sqlstate || ' ' || a.shard FROM shardload.batches b JOIN shardload.attempts a USING (batch_id) WHERE batch_key = 'etl-1'"),
	'failed 42704 shard_3', 'it used the role\'s own mappings (none for shard_3)');
is($coord->safe_psql('postgres',
		"SELECT string_agg(s.shard || ':' || s.state, ',' ORDER BY s.shard) FROM shardload.slices s JOIN shardload.batches b USING (batch_id) WHERE batch_key = 'etl-1'"),
	'shard_1:committed,shard_2:committed,shard_3:failed', 'the mapped shards were loaded');

# a role that lost INSERT on the target after submitting: NON_RETRYABLE
$coord->safe_psql('postgres', q{
	BEGIN;
	SET ROLE etl_user;
	SELECT shardload.submit('sales', 'etl-2', 'SELECT * FROM staging WHERE region_id <> 3');
	RESET ROLE;
	REVOKE INSERT ON sales FROM etl_user;
	COMMIT;
});
ok($coord->poll_query_until('postgres',
		"SELECT state = 'failed' FROM shardload.batches WHERE batch_key = 'etl-2'"),
	'the batch of a role without INSERT fails');
is($coord->safe_psql('postgres',
		"SELECT sqlstate || ' ' || failure_type || ' ' || next_action FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE batch_key = 'etl-2'"),
	'42501 NON_RETRYABLE STOP', 'as NON_RETRYABLE');

# ==== two tenants: one floods, the other's batch is served in the first round ====
my $flood = join("\n", map {
	"SELECT shardload.submit('sales', 'flood-$_', 'SELECT sale_id + " . (3000000 + $_ * 100) . ", region_id, sale_amount, sale_date, note FROM staging WHERE sale_id <= 30', tenant => 'noisy');"
} 1 .. 30);
$coord->safe_psql('postgres', "BEGIN;\n$flood\n"
	  . "SELECT shardload.submit('sales', 'quiet-1', 'SELECT sale_id + 5000000, region_id, sale_amount, sale_date, note FROM staging WHERE sale_id <= 30', tenant => 'quiet');\nCOMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 31 FROM shardload.batches WHERE tenant IN ('noisy', 'quiet') AND state = 'succeeded'"),
	'all tenant batches succeeded');
is($coord->safe_psql('postgres', qq{
	SELECT count(*) FROM shardload.attempts a JOIN shardload.batches b USING (batch_id)
	WHERE b.tenant = 'noisy' AND a.started_at < (
		SELECT a2.started_at FROM shardload.attempts a2 JOIN shardload.batches b2 USING (batch_id)
		WHERE b2.batch_key = 'quiet-1')}) <= 1 ? 'first round' : 'later',
	'first round', 'the quiet tenant waited for at most one noisy batch');

done_testing();
