# Nothing waits forever, and every early end cancels the remote work it
# started: a listener that never answers, a shard frozen with SIGSTOP while
# its slice streams, cancel and statement_timeout of a running load,
# pg_terminate_backend of a runner, and a frozen shard under the worker.
use strict;
use warnings FATAL => 'all';
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

# runs are driven by hand until the worker part, which restarts the
# coordinator with the worker on
my $coord = start_coordinator('coordinator',
	conf => "shardload.circuit_failures = 2\nshardload.circuit_cooldown = 3\n");
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 60000, 3);

# seconds until $sql on $node returns 't', polled every 0.1 s (undef after $limit)
sub seconds_until
{
	my ($node, $sql, $limit) = @_;
	my $start = time;
	while (time - $start < $limit)
	{
		return time - $start if $node->safe_psql('postgres', $sql) eq 't';
		sleep 0.1;
	}
	return undef;
}

sub freeze
{
	my ($node, $signal) = @_;
	my $pid = $node->{_pid};
	kill $signal, $pid;
	kill $signal, split /\s+/, `pgrep -P $pid`;
}

# ==== a listener that accepts and never answers: CONNECT within the limit ====
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
	Listen => 16, ReuseAddr => 1) or die "could not listen: $!";
$coord->safe_psql('postgres', qq{
	CREATE SERVER hole FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '127.0.0.1', port '$port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hole;
	CREATE FOREIGN TABLE sales_hole PARTITION OF sales FOR VALUES IN (7) SERVER hole;
});
my $b = $coord->safe_psql('postgres',
	"SELECT shardload.submit('sales', 'hole-1', \$\$SELECT 1, 7, 1, '2026-11-26'::date, 'x'\$\$)");
my $start = time;
$coord->psql('postgres', "SET shardload.connect_timeout = '2s'; CALL shardload.run($b)");
my $took = time - $start;
cmp_ok($took, '<', 8, "the run ends soon after the connect limit ($took s)");
is($coord->safe_psql('postgres',
		"SELECT stage || ' ' || sqlstate || ' ' || failure_type || ' ' || reason FROM shardload.attempts WHERE batch_id = $b"),
	'CONNECT 57014 TRANSIENT TIMEOUT', 'a TRANSIENT timeout at CONNECT');
like($coord->safe_psql('postgres', "SELECT message FROM shardload.attempts WHERE batch_id = $b"),
	qr/could not connect to server "hole" within 2000 ms.*shardload\.connect_timeout/s,
	'the message names the limit');
is($coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $b"),
	'retry_wait', 'the batch is retried on schedule');
$coord->safe_psql('postgres', "SELECT shardload.cancel($b); DROP FOREIGN TABLE sales_hole");
close $hole;

# ==== a shard frozen while its slice streams: the others commit, the retry completes ====
slow_down_shard($shards[1], 2, 200, 0.02);
$b = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'frozen-1', 'SELECT * FROM staging')");
my ($h, $out, $err) = start_psql($coord,
	"SET shardload.progress_timeout = '3s'; CALL shardload.run($b);");
ok($shards[1]->poll_query_until('postgres',
		"SELECT coalesce(max(tuples_processed), 0) > 500 FROM pg_stat_progress_copy"),
	'shard 2 is streaming');
freeze($shards[1], 'STOP');
$start = time;
$h->finish;
$took = time - $start;
cmp_ok($took, '<', 15, "the attempt ends after the progress limit ($took s)");
is($coord->safe_psql('postgres',
		"SELECT stage || ' ' || shard || ' ' || sqlstate || ' ' || reason FROM shardload.attempts WHERE batch_id = $b"),
	'COPY shard_2 57014 TIMEOUT', 'recorded as a timeout at COPY on shard 2');
like($coord->safe_psql('postgres', "SELECT message FROM shardload.attempts WHERE batch_id = $b"),
	qr/server "shard_2" made no progress for 3000 ms at stage COPY.*shardload\.progress_timeout/s,
	'the message names the limit');
is($coord->safe_psql('postgres',
		"SELECT string_agg(partition || ':' || state, ',' ORDER BY partition) FROM shardload.slices WHERE batch_id = $b"),
	'public.sales_region_1:committed,public.sales_region_2:failed,public.sales_region_3:committed',
	'the other shards committed their slices');
freeze($shards[1], 'CONT');
$shards[1]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_2');
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is($coord->safe_psql('postgres', "SELECT state || ' ' || rows_loaded FROM shardload.batches WHERE batch_id = $b"),
	'succeeded 60000', 'after SIGCONT the retry completes');
for my $i (1 .. 3)
{
	is(shard_count($shards[ $i - 1 ], $i), '20000', "shard $i holds exactly its rows");
}

# ==== cancel and statement_timeout of a running load leave no remote backend ====
$shards[2]->safe_psql('postgres', q{
	CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;
	CREATE TRIGGER hold BEFORE INSERT ON sales_region_3 FOR EACH ROW EXECUTE FUNCTION hold();
});
$coord->safe_psql('postgres', q{
	CREATE TABLE staging3 AS SELECT g + 1000000 AS sale_id, 3 AS region_id, 1.00 AS sale_amount,
		date '2026-11-26' AS sale_date, 'x' AS note FROM generate_series(1, 5) g;
});
$b = $coord->safe_psql('postgres', "SELECT shardload.submit('sales', 'cancel-1', 'SELECT * FROM staging3')");
($h, $out, $err) = start_psql($coord, "CALL shardload.run($b);");
ok($shards[2]->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"), 'the shard is busy in a trigger');
$coord->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL shardload.run($b)%'");
$h->finish;
like($$err, qr/canceling statement due to user request/, 'the run is cancelled');
my $gone = seconds_until($shards[2], "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pg_shardload'", 5);
ok(defined $gone, 'no remote backend is left within 5 s' . (defined $gone ? " ($gone s)" : ''));
is($coord->safe_psql('postgres',
		"SELECT status || ' ' || sqlstate || ' ' || failure_type FROM shardload.attempts WHERE batch_id = $b ORDER BY attempt DESC LIMIT 1"),
	'failed 57014 TRANSIENT', 'the cancelled attempt is recorded');

($h, $out, $err) = start_psql($coord, "SET statement_timeout = '2s'; CALL shardload.run($b);");
$h->finish;
like($$err, qr/canceling statement due to statement timeout/, 'statement_timeout ends the run');
$gone = seconds_until($shards[2], "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pg_shardload'", 5);
ok(defined $gone, 'no remote backend is left within 5 s of statement_timeout');
is(shard_count($shards[2], 3), '20000', 'nothing of the cancelled batch was loaded');

# ==== pg_terminate_backend of a runner ====
$coord->append_conf('postgresql.conf', "shardload.database = 'postgres'");
$coord->restart;
$coord->safe_psql('postgres', "SELECT shardload.replay($b)")
  if $coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $b") ne 'retry_wait';
ok($shards[2]->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"), 'a runner is loading into the busy shard');
my $runner = $coord->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shardload runner' LIMIT 1");
$coord->safe_psql('postgres', "SELECT pg_terminate_backend($runner)");
my $ended = seconds_until($coord, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $runner", 2);
ok(defined $ended, 'the runner ends within 2 s');
$gone = seconds_until($shards[2], "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pg_shardload'", 5);
ok(defined $gone, 'and leaves no remote backend');
$shards[2]->safe_psql('postgres', 'DROP TRIGGER hold ON sales_region_3');
ok($coord->poll_query_until('postgres', "SELECT state = 'succeeded' FROM shardload.batches WHERE batch_id = $b"),
	'the scheduler takes the batch up again and completes it');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.attempts WHERE batch_id = $b AND status = 'interrupted'"),
	'1', 'the terminated attempt is on record as interrupted');
is(shard_count($shards[2], 3), '20005', 'its rows arrived once');

# ==== a frozen shard under the worker: its circuit opens, other batches flow ====
$coord->safe_psql('postgres', q{
	ALTER SYSTEM SET shardload.connect_timeout = '1s';
	ALTER SYSTEM SET shardload.progress_timeout = '2s';
	SELECT pg_reload_conf();
});
freeze($shards[0], 'STOP');
my @frozen_batches;
for my $n (1 .. 3)
{
	push @frozen_batches, $coord->safe_psql('postgres',
		"SELECT shardload.submit('sales', 'to-frozen-$n', \$\$SELECT $n + 2000000, 1, 1, '2026-11-26'::date, 'f'\$\$)");
}
ok($coord->poll_query_until('postgres', "SELECT circuit = 'open' FROM shardload.shards WHERE server = 'shard_1'"),
	'the frozen shard\'s circuit opens');
my @other;
for my $n (1 .. 5)
{
	push @other, $coord->safe_psql('postgres',
		"SELECT shardload.submit('sales', 'to-live-$n', \$\$SELECT $n + 3000000, 2, 1, '2026-11-26'::date, 'l'\$\$)");
}
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM shardload.batches WHERE batch_key LIKE 'to-live-%' AND state = 'succeeded'"),
	'batches for the other shards keep flowing');
freeze($shards[0], 'CONT');
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM shardload.batches WHERE batch_key LIKE 'to-frozen-%' AND state = 'succeeded'"),
	'after SIGCONT the frozen shard\'s batches complete');
is($shards[0]->safe_psql('postgres', "SELECT count(*) FROM sales_region_1 WHERE note = 'f'"), '3',
	'each exactly once');

# ==== attempt_timeout after one slice committed with a row its shard refused ====
# The cancel rolls back the load step, but the slice stays loaded on its
# shard: the refused row must stay set aside, not be lost with the step.
$shards[0]->safe_psql('postgres',
	'ALTER TABLE sales_region_1 ADD CONSTRAINT not_4000002 CHECK (sale_id <> 4000002)');
$shards[2]->safe_psql('postgres',
	'CREATE TRIGGER hold BEFORE INSERT ON sales_region_3 FOR EACH ROW EXECUTE FUNCTION hold()');
$coord->safe_psql('postgres', q{
	ALTER SYSTEM SET shardload.progress_timeout = '60s';
	ALTER SYSTEM SET shardload.attempt_timeout = '3s';
	SELECT pg_reload_conf();
});
my $region_1 = shard_count($shards[0], 1);
$b = $coord->safe_psql('postgres', q{
	SELECT shardload.submit('sales', 'timeout-reject',
		$$SELECT g + 4000000, CASE WHEN g <= 5 THEN 1 ELSE 3 END, 1, '2026-11-26'::date, 't'
		  FROM generate_series(1, 8) g$$, on_error => 'reject', reject_limit => 10)});
ok($coord->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM shardload.attempts WHERE batch_id = $b AND sqlstate = '57014'"),
	'the attempt runs into attempt_timeout while a shard is busy');
is($coord->safe_psql('postgres',
		"SELECT line || ' ' || sqlstate FROM shardload.rejects WHERE batch_id = $b"),
	'2 23514', 'the row the other shard refused is still set aside');
$shards[2]->safe_psql('postgres', 'DROP TRIGGER hold ON sales_region_3');
ok($coord->poll_query_until('postgres', "SELECT state = 'succeeded' FROM shardload.batches WHERE batch_id = $b"),
	'the retry completes the batch');
is($coord->safe_psql('postgres',
		"SELECT rows_loaded || ' ' || rows_rejected FROM shardload.batches WHERE batch_id = $b"),
	'7 1', 'seven rows loaded, one rejected');
is(shard_count($shards[0], 1) - $region_1, 4, 'region 1 holds its four good rows once');

done_testing();
