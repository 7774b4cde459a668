# Atomic batches: every shard's slice is PREPAREd, the coordinator commits
# the local slices with the decision, then the prepared slices commit.  Real
# faults: a shard without max_prepared_transactions, a shard refusing its
# slice, the coordinator killed before and after the decision, a shard
# restarted between PREPARE and COMMIT PREPARED.  After each, no shard keeps
# a prepared transaction, and every shard holds all of the batch or none.
use strict;
use warnings FATAL => 'all';
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my @shards = start_shards($coord, 3);
$coord->safe_psql('postgres',
	'CREATE TABLE sales_local PARTITION OF sales FOR VALUES IN (4)');
# shards 1 and 2 can prepare; shard 3 not yet
for my $i (0, 1)
{
	$shards[$i]->append_conf('postgresql.conf', 'max_prepared_transactions = 10');
	$shards[$i]->restart;
}
for my $shard (@shards)
{
	create_hold_function($shard);
}

my $next_id = 1;

# shard 3 sleeps 4 s on the row noted 'hold' (on), or no longer (off)
sub hold_shard3
{
	my ($on) = @_;
	$shards[2]->safe_psql('postgres', $on
		? 'CREATE TRIGGER hold BEFORE INSERT ON sales_region_3 FOR EACH ROW EXECUTE FUNCTION hold()'
		: 'DROP TRIGGER hold ON sales_region_3');
}

# an atomic batch of $per rows in each of the regions 1-4; $note on the
# first row of region 3
sub submit_atomic
{
	my ($key, $per, $note) = @_;
	my $first = $next_id;
	$next_id += 4 * $per;
	return $coord->safe_psql('postgres', qq{
		SELECT shardload.submit('sales', '$key',
			\$\$SELECT g, (g - $first) / $per + 1, 1.00, date '2026-11-30',
				CASE WHEN g = $first + 2 * $per THEN '$note' ELSE 'x' END
			  FROM generate_series($first, $first + 4 * $per - 1) g\$\$, atomic => true)});
}

# rows of batch rows [$from, $to) per region, as "r1 r2 r3 r4"
sub counts
{
	my ($from, $to) = @_;
	my @c;
	for my $i (1 .. 3)
	{
		push @c, $shards[ $i - 1 ]->safe_psql('postgres',
			"SELECT count(*) FROM sales_region_$i WHERE sale_id >= $from AND sale_id < $to");
	}
	push @c, $coord->safe_psql('postgres',
		"SELECT count(*) FROM sales_local WHERE sale_id >= $from AND sale_id < $to");
	return join ' ', @c;
}

sub prepared_left
{
	return join ' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } @shards;
}

sub outcome
{
	my ($b) = @_;
	return $coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded || ' ' || atomic FROM shardload.batches WHERE batch_id = $b");
}

# ==== a shard without max_prepared_transactions: NON_RETRYABLE, nothing kept ====
my $from = $next_id;
my $b = submit_atomic('no-prepare', 5, 'x');
$coord->psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'failed 0 true', 'the atomic batch fails for good');
is($coord->safe_psql('postgres',
		"SELECT shard || ' ' || sqlstate || ' ' || failure_type || ' ' || next_action FROM shardload.attempts WHERE batch_id = $b"),
	'shard_3 SL004 NON_RETRYABLE STOP', 'as NON_RETRYABLE, on the server that cannot prepare');
like($coord->safe_psql('postgres', "SELECT message FROM shardload.attempts WHERE batch_id = $b"),
	qr/server "shard_3" cannot take part in an atomic batch: prepared transactions are disabled there.*max_prepared_transactions/s,
	'the message names the server and the setting');
is(counts($from, $next_id), '0 0 0 0', 'no shard and no local partition keeps a row of it');
is(prepared_left(), '0 0 0', 'no prepared transaction is left');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.in_doubt'), '0', 'nothing is in doubt');

$shards[2]->append_conf('postgresql.conf', 'max_prepared_transactions = 10');
$shards[2]->restart;

# ==== all shards can prepare: the batch commits everywhere ====
$from = $next_id;
$b = submit_atomic('all-good', 50, 'x');
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'succeeded 200 true', 'the atomic batch succeeds');
is(counts($from, $next_id), '50 50 50 50', 'every region holds its rows');
is(prepared_left(), '0 0 0', 'every prepared slice was committed');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.atomic_attempt'), '0',
	'its attempt record is gone');
is(join(' ', map { ledger_count($_) } @shards), '1 1 1', 'one ledger row per shard');

# ==== through an inbox made atomic (the COPY path) ====
$coord->safe_psql('postgres', "SELECT shardload.create_inbox('sales', atomic => true)");
$from = $next_id;
$next_id += 8;
$b = $coord->safe_psql('postgres', qq{
	SET shardload.batch_key = 'inbox-atomic';
	INSERT INTO sales_inbox SELECT g, g % 4 + 1, 1, '2026-11-30', 'i' FROM generate_series($from, $from + 7) g;
	SELECT batch_id FROM shardload.batches WHERE batch_key = 'inbox-atomic'});
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'succeeded 8 true', 'a batch through the atomic inbox is atomic');
is(counts($from, $next_id), '2 2 2 2', 'and loads on every partition');

# ==== one shard refuses its slice for good: no shard keeps any row ====
$shards[1]->safe_psql('postgres',
	"ALTER TABLE sales_region_2 ADD CONSTRAINT refuse CHECK (sale_id <> $next_id + 25)");
$from = $next_id;
$b = submit_atomic('one-refuses', 20, 'x');
$coord->psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'failed 0 true', 'the batch fails');
is($coord->safe_psql('postgres',
		"SELECT shard || ' ' || sqlstate || ' ' || failure_type FROM shardload.attempts WHERE batch_id = $b"),
	'shard_2 23514 NON_RETRYABLE', 'with the refusing shard\'s error');
is(counts($from, $next_id), '0 0 0 0', 'no shard keeps any row of the batch');
is(prepared_left(), '0 0 0', 'the prepared slices were rolled back');
$shards[1]->safe_psql('postgres', 'ALTER TABLE sales_region_2 DROP CONSTRAINT refuse');

# ==== coordinator killed after some shards PREPAREd, before the decision ====
hold_shard3(1);
$from = $next_id;
$b = submit_atomic('killed-before', 30, 'hold');
my ($h) = start_psql($coord, "CALL shardload.run($b);");
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts')
	  && $shards[1]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'shards 1 and 2 have PREPAREd while shard 3 is busy');
$coord->stop('immediate');
$h->finish;
$coord->start;
is($coord->safe_psql('postgres', "SELECT string_agg(server || ' ' || resolution, ', ' ORDER BY server) FROM shardload.in_doubt WHERE batch_id = $b"),
	'shard_1 rollback, shard_2 rollback, shard_3 rollback', 'in_doubt shows the undecided attempt, to roll back');
$coord->safe_psql('postgres', 'SELECT shardload.run_due(0)');
is(prepared_left(), '0 0 0', 'a recovery pass rolls back what was prepared');
is(counts($from, $next_id), '0 0 0 0', 'nothing of the batch is anywhere');
hold_shard3(0);
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'succeeded 120 true', 'the rerun loads the batch');
is(counts($from, $next_id), '30 30 30 30', 'exactly once');
is(prepared_left(), '0 0 0', 'and leaves nothing prepared');

# ==== coordinator killed after the decision, before COMMIT PREPARED ====
hold_shard3(1);
$from = $next_id;
$b = submit_atomic('killed-after', 30, 'hold');
($h) = start_psql($coord, "CALL shardload.run($b);");
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'shard 1 has PREPAREd');
# frozen, shard 1 cannot take its COMMIT PREPARED: the coordinator waits there
my $pid = $shards[0]->{_pid};
kill 'STOP', $pid, split /\s+/, `pgrep -P $pid`;
ok($coord->poll_query_until('postgres',
		"SELECT decided_at IS NOT NULL FROM shardload.atomic_attempt WHERE batch_id = $b"),
	'the decision is committed');
$coord->stop('immediate');
$h->finish;
kill 'CONT', $pid, split /\s+/, `pgrep -P $pid`;
$coord->start;
is(prepared_left(), '1 1 1', 'every shard still holds its prepared slice');
is($coord->safe_psql('postgres', "SELECT string_agg(DISTINCT resolution, ',') FROM shardload.in_doubt WHERE batch_id = $b"),
	'commit', 'in_doubt shows them, to commit');
$coord->safe_psql('postgres', 'SELECT shardload.run_due(0)');
is(prepared_left(), '0 0 0', 'a recovery pass commits them');
is(counts($from, $next_id), '30 30 30 30', 'every shard holds the batch');
hold_shard3(0);

# ==== a shard restarted (immediate) between PREPARE and COMMIT PREPARED ====
hold_shard3(1);
$from = $next_id;
$b = submit_atomic('shard-restarted', 30, 'hold');
($h) = start_psql($coord, "CALL shardload.run($b);");
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'shard 1 has PREPAREd');
$shards[0]->stop('immediate');
$shards[0]->start;
is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '1',
	'its prepared slice survives the restart');
$h->finish;
$coord->safe_psql('postgres', 'SELECT shardload.run_due(0)');
is(outcome($b), 'succeeded 120 true', 'the batch succeeds');
is(counts($from, $next_id), '30 30 30 30', 'and every shard holds it');
is(prepared_left(), '0 0 0', 'nothing is left prepared');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.atomic_attempt'), '0',
	'no attempt is in doubt');
hold_shard3(0);

# ==== the background worker ends what a killed coordinator left prepared ====
$coord->append_conf('postgresql.conf', "shardload.database = 'postgres'");
$coord->restart;
hold_shard3(1);
$from = $next_id;
$b = submit_atomic('worker-killed', 30, 'hold');
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'a runner has PREPAREd on shard 1');
$coord->stop('immediate');
hold_shard3(0);
$coord->start;
ok($coord->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM shardload.batches WHERE batch_id = $b"),
	'the worker takes the batch up again and completes it');
is(counts($from, $next_id), '30 30 30 30', 'every shard holds it once');
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts')
	  && $shards[1]->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts'),
	'nothing is left prepared');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.in_doubt'), '0', 'nothing is in doubt');

done_testing();
