# A 200,000-row batch lands exactly once on three shards, even when one
# shard is stopped (immediate) in the middle of the load.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 200000, 3);
my %expected = map { $_ => $coord->safe_psql('postgres',
		"SELECT count(*) FROM staging WHERE region_id = $_") } 1 .. 3;

my $id = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'sales-0001', 'SELECT * FROM staging')");
is($id, '1', 'batch submitted');
is($coord->safe_psql('postgres', "SELECT rows_total FROM shardload.batches WHERE batch_id = $id"),
	'200000', 'all rows captured');

# shard 2 takes a few seconds, so it can be stopped while its COPY runs
slow_down_shard($shards[1], 2, 500, 0.03);
my ($h, $out, $err) = start_psql($coord, "CALL shardload.run($id);");
ok($shards[1]->poll_query_until('postgres',
		"SELECT coalesce(max(tuples_processed), 0) > 5000 FROM pg_stat_progress_copy"),
	'shard 2 is half way through its COPY');
# another session sees how far each slice got
ok($coord->poll_query_until('postgres',
		"SELECT rows_sent > 0 AND rows_sent < rows FROM shardload.slices WHERE batch_id = $id AND partition = 'public.sales_region_2'"),
	'the slices view shows the progress of the running slice');
$shards[1]->stop('immediate');
$h->finish;
like($$err, qr/batch 1 failed at stage COPY on server shard_2/, 'the run reports the lost shard');

is($coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $id"),
	'retry_wait', 'the batch waits for a retry');
is($coord->safe_psql('postgres',
		"SELECT failure_type || ' ' || reason || ' ' || next_action || ' ' || shard "
		  . "FROM shardload.attempts WHERE batch_id = $id AND attempt = 1"),
	'TRANSIENT UPSTREAM_UNAVAILABLE RETRY shard_2', 'the attempt is recorded as transient');
is($coord->safe_psql('postgres',
		"SELECT string_agg(partition || ':' || state, ',' ORDER BY partition) FROM shardload.slices WHERE batch_id = $id"),
	'public.sales_region_1:committed,public.sales_region_2:failed,public.sales_region_3:committed',
	'the other shards committed their slices');
is(shard_count($shards[0], 1), $expected{1}, 'shard 1 complete');
is(shard_count($shards[2], 3), $expected{3}, 'shard 3 complete');

$shards[1]->start;
is(shard_count($shards[1], 2), '0', 'the interrupted COPY left nothing on shard 2');
$shards[1]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_2');

$coord->safe_psql('postgres', "CALL shardload.run($id)");
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || attempts || ' ' || rows_loaded FROM shardload.batches WHERE batch_id = $id"),
	'succeeded 2 200000', 'the second attempt completes the batch');
for my $i (1 .. 3)
{
	is(shard_count($shards[ $i - 1 ], $i), $expected{$i}, "shard $i holds exactly its rows");
	is(ledger_count($shards[ $i - 1 ]), '1', "shard $i ledger has one slice");
}

# byte for byte: compare a digest of every row on each shard with staging
for my $i (1 .. 3)
{
	my $digest_sql = "SELECT md5(string_agg(format('%s|%s|%s|%s|%s', sale_id, region_id, "
	  . "sale_amount, sale_date, coalesce(note, '<null>')), ',' ORDER BY sale_id))";
	is($shards[ $i - 1 ]->safe_psql('postgres', "$digest_sql FROM sales_region_$i"),
		$coord->safe_psql('postgres', "$digest_sql FROM staging WHERE region_id = $i"),
		"shard $i rows are identical to the source");
}

# submitting and running the same batch again loads nothing
$coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'sales-0001', 'SELECT * FROM staging')");
$coord->safe_psql('postgres', "CALL shardload.run($id)");
is(shard_count($shards[0], 1), $expected{1}, 'resubmit loads nothing twice');

# ==== progress counts each row once, however often its slice is sent ====
# on_error reject sends a slice again without each row its shard refused:
# rows 10, 20 and 30 make four passes; the last holds on its last row
$shards[0]->safe_psql('postgres', q{
	CREATE FUNCTION refuse_then_hold() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.note = 'bad' THEN
			RAISE EXCEPTION 'row % refused', NEW.sale_id USING ERRCODE = '22023';
		END IF;
		IF NEW.sale_id = 5000100 THEN
			PERFORM pg_sleep(4);
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_then_hold BEFORE INSERT ON sales_region_1
		FOR EACH ROW EXECUTE FUNCTION refuse_then_hold();
});
my $rej = $coord->safe_psql('postgres', q{
	SELECT shardload.submit('sales', 'progress-once',
		$$SELECT 5000000 + g, 1, 1, '2026-11-26'::date, CASE WHEN g % 10 = 0 AND g <= 30 THEN 'bad' ELSE 'ok' END
		  FROM generate_series(1, 100) g$$, on_error => 'reject', reject_limit => 5)});
($h, $out, $err) = start_psql($coord, "CALL shardload.run($rej);");
ok($shards[0]->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"),
	'the last pass holds on the last row');
is($coord->safe_psql('postgres',
		"SELECT tuples_processed FROM pg_stat_progress_copy WHERE relid = 'sales'::regclass"),
	'97', 'pg_stat_progress_copy counts the 97 rows of the last pass, not all four passes');
is($coord->safe_psql('postgres', "SELECT rows_sent FROM shardload.slices WHERE batch_id = $rej"),
	'97', 'so does the slices view');
$h->finish;
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded || ' ' || rows_rejected FROM shardload.batches WHERE batch_id = $rej"),
	'succeeded 97 3', 'the batch loads 97 rows and sets three aside');

done_testing();
