# Chaos soak: a coordinator with the background worker and three shards.
# A bounded generator submits batches of mixed sizes (some resubmitted with
# the same key, some with on_error => 'reject' and rows a shard refuses,
# some atomic, several tenants) and feeds a cron job, while a bounded fault
# loop stops shards (immediate), freezes them (SIGSTOP), terminates runners and
# restarts the coordinator (immediate).  Then the faults stop, everything
# drains, and every partition must hold exactly the rows of the committed
# slices minus the recorded rejects: no duplicate, no loss.
#
# SHARDLOAD_CHAOS_SECONDS sets how long faults go on (default 120);
# SHARDLOAD_CHAOS_SEED makes a run repeatable.
use strict;
use warnings FATAL => 'all';
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $duration = $ENV{SHARDLOAD_CHAOS_SECONDS} || 120;
my $seed = $ENV{SHARDLOAD_CHAOS_SEED} // int(time);
srand($seed);
note "chaos soak: $duration s of faults, seed $seed";

my $coord = start_coordinator('coordinator', worker => 1,
	conf => "shardload.max_workers = 3\nshardload.connect_timeout = '2s'\n"
	  . "shardload.progress_timeout = '4s'\nshardload.attempt_timeout = '60s'\n"
	  . "shardload.circuit_failures = 3\nshardload.circuit_cooldown = '2s'\n"
	  . "shardload.job_timeout = '10s'\nmax_worker_processes = 24\n");
my @shards = start_shards($coord, 3);
# atomic batches PREPARE on the shards
for my $shard (@shards)
{
	$shard->append_conf('postgresql.conf', 'max_prepared_transactions = 20');
	$shard->restart;
}

my $COLUMNS = 'id bigint, region int NOT NULL, amount numeric(10,2), note text';
for my $i (1 .. 3)
{
	# no primary key: a duplicate must be seen, not refused
	$shards[ $i - 1 ]->safe_psql('postgres',
		"CREATE TABLE chaos_$i ($COLUMNS, CHECK (amount >= 0))");
}
$coord->safe_psql('postgres', qq{
	CREATE TABLE chaos ($COLUMNS) PARTITION BY LIST (region);
	CREATE FOREIGN TABLE chaos_1 PARTITION OF chaos FOR VALUES IN (1) SERVER shard_1;
	CREATE FOREIGN TABLE chaos_2 PARTITION OF chaos FOR VALUES IN (2) SERVER shard_2;
	CREATE FOREIGN TABLE chaos_3 PARTITION OF chaos FOR VALUES IN (3) SERVER shard_3;
	CREATE TABLE chaos_local PARTITION OF chaos FOR VALUES IN (4);
	-- what each batch holds, kept apart from the loader
	CREATE TABLE source (batch_key text, $COLUMNS);
	CREATE INDEX ON source (batch_key);
	CREATE TABLE feed ($COLUMNS, at timestamptz NOT NULL);
	-- retries never run out: after the faults, everything must get through
	UPDATE shardload.retry_policy SET max_attempts = 100000, unknown_attempts = 100000,
		base_delay = '0.2 s', max_delay = '2 s' WHERE policy_name = 'default';
	SELECT shardload.schedule('feed-job', '*/2 * * * * *', 'chaos',
		\$q\$SELECT id, region, amount, note FROM feed WHERE at > \$2 AND at <= \$1\$q\$);
});

my %faults;
my @keys;
my $next_id = 1;
my @frozen;     # [shard index, resume time]
my @stopped;    # [shard index, start time]

# psql that tolerates a coordinator in the middle of a restart
sub try_psql
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);
	return $ret == 0 ? $out : undef;
}

sub submit_batch
{
	my $n = $next_id;
	my $rows = (1, 10, 100, 1000, 10000, 50000)[ int(rand(6)) ];
	my $key = "chaos-" . scalar(@keys);
	my $reject = rand() < 0.2;
	my $tenant = 't' . int(rand(3));
	my $atomic = rand() < 0.25 ? 'true' : 'false';
	$next_id += $rows;
	# the rows: regions 1-4, a few refused by the shards' CHECK in reject mode
	my $bad = $reject ? "CASE WHEN g % 97 = 0 AND g % 4 <> 3 THEN -1 ELSE 1 END" : "1";
	my $sql = qq{
		INSERT INTO source SELECT '$key', $n + g, g % 4 + 1, $bad, E'n\\t' || g
		FROM generate_series(0, $rows - 1) g;
		SELECT shardload.submit('chaos', '$key', \$\$SELECT id, region, amount, note FROM source WHERE batch_key = '$key'\$\$,
			on_error => '@{[ $reject ? 'reject' : 'stop' ]}', reject_limit => 100000, tenant => '$tenant',
			atomic => $atomic);
	};
	# a third of the others by CALL load: a direct load, streamed while captured
	$sql = qq{
		INSERT INTO source SELECT '$key', $n + g, g % 4 + 1, 1, E'n\\t' || g
		FROM generate_series(0, $rows - 1) g;
		CALL shardload.load('chaos', '$key', \$\$SELECT id, region, amount, note FROM source WHERE batch_key = '$key'\$\$,
			tenant => '$tenant', atomic => $atomic);
	} if !$reject && rand() < 0.33;
	push @keys, [ $key, $reject ];
	try_psql($coord, $sql);
}

sub resubmit
{
	my ($key, $reject) = @{ $_[0] };
	return try_psql($coord,
		"SELECT shardload.submit('chaos', '$key', \$\$SELECT id, region, amount, note FROM source WHERE batch_key = '$key'\$\$,"
		  . " on_error => '@{[ $reject ? 'reject' : 'stop' ]}', reject_limit => 100000)");
}

sub signal_cluster
{
	my ($node, $signal) = @_;
	my $pid = $node->{_pid} or return;
	kill $signal, $pid;
	kill $signal, split /\s+/, `pgrep -P $pid`;
}

sub fault
{
	my $now = time;
	my $kind = (qw(stop freeze runner restart))[ int(rand(4)) ];
	my $i = int(rand(3));
	return if grep { $_->[0] == $i } @frozen, @stopped;
	if ($kind eq 'stop')
	{
		$shards[$i]->stop('immediate');
		push @stopped, [ $i, $now + 1 + rand(3) ];
	}
	elsif ($kind eq 'freeze')
	{
		signal_cluster($shards[$i], 'STOP');
		push @frozen, [ $i, $now + 2 + rand(4) ];
	}
	elsif ($kind eq 'runner')
	{
		my $killed = try_psql($coord,
			"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'pg_shardload runner'");
		return unless $killed;
	}
	else
	{
		$coord->stop('immediate');
		$coord->start;
	}
	$faults{$kind}++;
}

sub heal
{
	my ($all) = @_;
	my $now = time;
	@frozen = grep {
		my $due = $all || $_->[1] <= $now;
		signal_cluster($shards[ $_->[0] ], 'CONT') if $due;
		!$due
	} @frozen;
	@stopped = grep {
		my $due = $all || $_->[1] <= $now;
		$shards[ $_->[0] ]->start if $due;
		!$due
	} @stopped;
}

# ==== faults and load ====
my $end = time + $duration;
my $next_fault = time + 2;
while (time < $end)
{
	submit_batch();
	resubmit($keys[ int(rand(@keys)) ]) if rand() < 0.3;
	try_psql($coord, "INSERT INTO feed SELECT 500000000 + $next_id + g, g % 4 + 1, 1, 'feed', clock_timestamp() + interval '3 s'"
		  . " FROM generate_series(1, 20) g");
	$next_id += 21;
	heal(0);
	if (time >= $next_fault)
	{
		fault();
		$next_fault = time + 2 + rand(3);
	}
	sleep 0.2;
}

# ==== drain ====
heal(1);
$coord->start unless $coord->{_pid};
$coord->poll_query_until('postgres', 'SELECT true');
# every key the generator tried exists, whatever a restart did to its reply
resubmit($_) for @keys;
# a direct load a restart cut short is removed by recovery (maybe after the
# resubmit above found it still there): submitted again, as its ETL would
$coord->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM shardload.batch WHERE NOT payload_stored AND state <> 'succeeded'");
resubmit($_) for @keys;
sleep 4;    # the feed's last rows come of age
$coord->safe_psql('postgres', "UPDATE shardload.job SET catch_up = true");
ok($coord->poll_query_until('postgres',
		"SELECT last_tick > (SELECT max(at) FROM feed) FROM shardload.job"),
	'the cron job has ticked past the last fed row');
$coord->safe_psql('postgres', "SELECT shardload.unschedule('feed-job')");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM shardload.batches WHERE state NOT IN ('succeeded', 'failed', 'quarantined', 'dead', 'cancelled')"),
	'every batch reached a terminal state');

my $states = $coord->safe_psql('postgres',
	"SELECT string_agg(state || ' ' || n, ', ' ORDER BY state) FROM (SELECT state, count(*) AS n FROM shardload.batches GROUP BY state) s");
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE state <> 'succeeded'"),
	'0', "every batch succeeded ($states)");

# atomic batches leave nothing prepared once recovery has run
for my $i (0 .. 2)
{
	ok($shards[$i]->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts'),
		"shard @{[ $i + 1 ]} holds no prepared transaction");
}

# ==== every partition holds exactly the committed rows minus the rejects ====
$coord->safe_psql('postgres', q{
	CREATE TABLE rejected AS
	SELECT split_part(r.raw_row, E'\t', 1)::bigint AS id FROM shardload.rejects r;
	CREATE TABLE expected AS
	SELECT s.id, s.region FROM source s
	JOIN shardload.batches b ON b.batch_key = s.batch_key AND b.target = 'chaos'::regclass
	WHERE b.state = 'succeeded'
	  AND s.id NOT IN (SELECT id FROM rejected)
	UNION ALL
	SELECT f.id, f.region FROM feed f;
});
my ($lost, $dup) = (0, 0);
for my $region (1 .. 4)
{
	my $want = $coord->safe_psql('postgres',
		"SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM expected WHERE region = $region");
	my $have = $region == 4
	  ? $coord->safe_psql('postgres', "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || coalesce(sum(id), 0) FROM chaos_local")
	  : $shards[ $region - 1 ]->safe_psql('postgres',
		"SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || coalesce(sum(id), 0) FROM chaos_$region");
	my ($n, $distinct, $sum) = split / /, $have;
	my ($want_n, $want_sum) = split / /, $want;
	$dup += $n - $distinct;
	$lost += $want_n - $distinct if $want_n > $distinct;
	is("$distinct $sum", "$want_n $want_sum", "region $region holds exactly its rows");
	is($n - $distinct, 0, "region $region has no duplicate");
}
my $summary = $coord->safe_psql('postgres', q{
	SELECT count(*) || ' batches (' || count(*) FILTER (WHERE atomic) || ' atomic), '
		|| sum(rows_total) || ' rows, ' || sum(rows_rejected) || ' rejected, '
		|| (SELECT count(*) FROM shardload.attempts) || ' attempts'
	FROM shardload.batches});
diag("chaos soak ($duration s, seed $seed): $summary; faults: "
	  . join(', ', map { "$_ $faults{$_}" } sort keys %faults)
	  . "; duplicates $dup, lost rows $lost; states: $states");

done_testing();
