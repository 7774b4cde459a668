# Direct loads: CALL shardload.load() streams a new batch to its shards
# while capturing it, PREPAREs each slice, and commits the batch's outcome
# with the decision; its payload is written only if it cannot finish.
# Real faults: a shard without max_prepared_transactions, a shard refusing
# a row, rows no partition takes, a source query that fails half way, the
# coordinator killed between PREPARE and decision.  After each, every
# shard holds the batch's rows exactly once or not at all, and nothing is
# left prepared.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my @shards = start_shards($coord, 3);
for my $shard (@shards)
{
	$shard->append_conf('postgresql.conf', 'max_prepared_transactions = 10');
	$shard->restart;
	create_hold_function($shard);
}

my $next_id = 1;

# run SQL on the coordinator: (whether it worked, what it said on stderr)
sub coord_sql
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $coord->psql('postgres', $sql);
	return ($ret == 0, $err);
}

# CALL shardload.load of $per rows in each region 1-3 ($note on the first
# row of region 3, a nasty text on the others); returns (ok, stderr)
sub load_rows
{
	my ($key, $per, $note, $extra) = @_;
	my $first = $next_id;
	$next_id += 3 * $per;
	$extra //= '';
	my ($ret, $out, $err) = $coord->psql('postgres', qq{
		CALL shardload.load('sales', '$key',
			\$\$SELECT g, (g - $first) / $per + 1, 1.25, date '2026-11-30',
				CASE WHEN g = $first + 2 * \$\$ || $per || \$\$ THEN '$note'
				     ELSE E'tab\\there \\\\ back\\nnew "q" \\u00e9 ' || g END
			  FROM generate_series($first, $first + 3 * $per - 1) g\$\$ $extra)});
	return ($ret == 0, $err);
}

sub batch_of
{
	my ($key) = @_;
	return $coord->safe_psql('postgres', "SELECT batch_id FROM shardload.batches WHERE batch_key = '$key'");
}

sub counts
{
	my ($from, $to) = @_;
	return join ' ', map {
		$shards[ $_ - 1 ]->safe_psql('postgres',
			"SELECT count(*) FROM sales_region_$_ WHERE sale_id >= $from AND sale_id < $to")
	} 1 .. 3;
}

sub prepared_left
{
	return join ' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } @shards;
}

sub outcome
{
	my ($b) = @_;
	return $coord->safe_psql('postgres',
		"SELECT state || ' ' || attempts || ' ' || rows_loaded || ' ' || payload_kept::int"
		  . " || ' ' || (SELECT count(*) FROM shardload.payload p WHERE p.batch_id = b.batch_id)"
		  . " FROM shardload.batches b WHERE batch_id = $b");
}

# ==== a direct load: loaded, no payload written ====
my $from = $next_id;
my ($ok, $err) = load_rows('direct-1', 1000, 'x');
ok($ok, 'load succeeds') or diag($err);
my $b = batch_of('direct-1');
is(outcome($b), 'succeeded 1 3000 0 0', 'succeeded in one attempt, without a payload');
is(counts($from, $next_id), '1000 1000 1000', 'every shard holds its rows');
is($shards[1]->safe_psql('postgres',
		"SELECT note FROM sales_region_2 WHERE sale_id = $from + 1000"),
	"tab\there \\ back\nnew \"q\" \xc3\xa9 " . ($from + 1000),
	'values arrive byte for byte');
is(prepared_left(), '0 0 0', 'every prepared slice was committed');
is($coord->safe_psql('postgres',
		"SELECT string_agg(state, ',') FROM shardload.slices WHERE batch_id = $b"),
	'committed,committed,committed', 'its slices are committed');
is($coord->safe_psql('postgres', "SELECT status || ' ' || next_action FROM shardload.attempts WHERE batch_id = $b"),
	'succeeded NONE', 'attempt 1 succeeded');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.atomic_attempt'), '0',
	'nothing is in doubt');

# the same key and content again: nothing loaded twice
$next_id = $from;
($ok, $err) = load_rows('direct-1', 1000, 'x');
like($err, qr/already submitted as batch $b with the same content/, 'the same key is the same batch');
is(counts($from, $from + 3000), '1000 1000 1000', 'and is not loaded twice');

# ==== direct loads off: the payload is written first ====
($ok, $err) = coord_sql(qq{
	SET shardload.direct_load = off;
	CALL shardload.load('sales', 'direct-off', \$\$SELECT $next_id, 1, 1, now()::date, 'off'\$\$)});
$next_id++;
ok($ok, 'loads with shardload.direct_load off') or diag($err);
is(outcome(batch_of('direct-off')), 'succeeded 1 1 1 1', 'that batch keeps its payload');

# ==== a shard without prepared transactions: the usual path ====
$shards[2]->append_conf('postgresql.conf', 'max_prepared_transactions = 0');
$shards[2]->restart;
$from = $next_id;
($ok, $err) = load_rows('no-prepare', 100, 'x');
ok($ok, 'load succeeds') or diag($err);
$b = batch_of('no-prepare');
like(outcome($b), qr/^succeeded 1 300 1 [1-9]/, 'through its payload');
is(counts($from, $next_id), '100 100 100', 'every shard holds its rows once');
is(prepared_left(), '0 0 0', 'nothing is left prepared');
$shards[2]->append_conf('postgresql.conf', 'max_prepared_transactions = 10');
$shards[2]->restart;

# ==== a shard refuses a row: the others commit, the payload is kept ====
$shards[1]->safe_psql('postgres',
	"ALTER TABLE sales_region_2 ADD CONSTRAINT refuse CHECK (sale_id <> $next_id + 150)");
$from = $next_id;
($ok, $err) = load_rows('one-refuses', 100, 'x');
$b = batch_of('one-refuses');
like(outcome($b), qr/^failed 1 200 1 [1-9]/, 'the batch fails with the other slices loaded, payload kept');
is($coord->safe_psql('postgres',
		"SELECT shard || ' ' || sqlstate || ' ' || failure_type || ' ' || next_action FROM shardload.attempts WHERE batch_id = $b"),
	'shard_2 23514 NON_RETRYABLE STOP', 'attempt 1 records the refusal');
is(counts($from, $next_id), '100 0 100', 'the refused slice is nowhere');
is(prepared_left(), '0 0 0', 'nothing is left prepared');
$shards[1]->safe_psql('postgres', 'ALTER TABLE sales_region_2 DROP CONSTRAINT refuse');
$coord->safe_psql('postgres', "SELECT shardload.replay($b)");
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is(outcome($b), 'succeeded 2 300 1 ' . $coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.payload WHERE batch_id = $b"), 'its replay loads the rest');
is(counts($from, $next_id), '100 100 100', 'exactly once');

# ==== atomic: a shard refuses, nothing is kept anywhere ====
$shards[1]->safe_psql('postgres',
	"ALTER TABLE sales_region_2 ADD CONSTRAINT refuse CHECK (sale_id <> $next_id + 150)");
$from = $next_id;
($ok, $err) = load_rows('atomic-refuses', 100, 'x', ', atomic => true');
like(outcome(batch_of('atomic-refuses')), qr/^failed 1 0 1 [1-9]/, 'an atomic batch fails whole');
is(counts($from, $next_id), '0 0 0', 'no shard keeps a row of it');
is(prepared_left(), '0 0 0', 'nothing is left prepared');
$shards[1]->safe_psql('postgres', 'ALTER TABLE sales_region_2 DROP CONSTRAINT refuse');

# ==== a row no partition takes: the usual path records it ====
$from = $next_id;
$next_id += 1;
($ok, $err) = coord_sql(qq{
	CALL shardload.load('sales', 'unroutable',
		\$\$SELECT $from, 9, 1, now()::date, 'nowhere'\$\$)});
like(outcome(batch_of('unroutable')), qr/^failed 1 0 1 [1-9]/, 'a row that fits no partition fails the batch, payload kept');

# ==== the source query fails half way: no batch, nothing sent ====
$from = $next_id;
($ok, $err) = coord_sql(qq{
	CALL shardload.load('sales', 'source-fails',
		\$\$SELECT g, g % 3 + 1, 1 / (g - $from - 20000), now()::date, 'x'
		   FROM generate_series($from, $from + 40000) g\$\$)});
like($err, qr/division by zero/, 'the error reaches the caller');
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key = 'source-fails'"),
	'0', 'no batch is left');
is(counts($from, $from + 40001), '0 0 0', 'no shard keeps a row');
is(prepared_left(), '0 0 0', 'nothing is prepared');
ok((grep { $_->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") } @shards) == 3,
	'and no shard session is left open');

# ==== coordinator killed between PREPARE and decision ====
$shards[2]->safe_psql('postgres',
	'CREATE TRIGGER hold BEFORE INSERT ON sales_region_3 FOR EACH ROW EXECUTE FUNCTION hold()');
$from = $next_id;
my $first = $next_id;
$next_id += 90;
my ($h) = start_psql($coord, qq{
	CALL shardload.load('sales', 'killed',
		\$\$SELECT g, (g - $first) / 30 + 1, 1, date '2026-11-30',
			CASE WHEN g = $first + 60 THEN 'hold' ELSE 'x' END
		  FROM generate_series($first, $first + 89) g\$\$);});
ok($shards[0]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts')
	  && $shards[1]->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pg_prepared_xacts'),
	'shards 1 and 2 have PREPAREd while shard 3 is busy');
$coord->stop('immediate');
$h->finish;
$coord->start;
$b = batch_of('killed');
is($coord->safe_psql('postgres', "SELECT state || ' ' || payload_kept::int FROM shardload.batches WHERE batch_id = $b"),
	'running 0', 'the batch was committed without its rows');
is($coord->safe_psql('postgres',
		"SELECT string_agg(server || ' ' || resolution, ', ' ORDER BY server) FROM shardload.in_doubt WHERE batch_id = $b"),
	'shard_1 rollback, shard_2 rollback, shard_3 rollback', 'in_doubt shows its slices, to roll back');
$shards[2]->safe_psql('postgres', 'DROP TRIGGER hold ON sales_region_3');
# the same load again: the interrupted batch is ended and removed first
($ok, $err) = coord_sql(qq{
	CALL shardload.load('sales', 'killed',
		\$\$SELECT g, (g - $first) / 30 + 1, 1, date '2026-11-30',
			CASE WHEN g = $first + 60 THEN 'hold' ELSE 'x' END
		  FROM generate_series($first, $first + 89) g\$\$)});
ok($ok, 'loading it again succeeds') or diag($err);
my $b2 = batch_of('killed');
isnt($b2, $b, 'as a new batch');
is(outcome($b2), 'succeeded 1 90 0 0', 'which loads');
is(counts($from, $next_id), '30 30 30', 'exactly once');
is(prepared_left(), '0 0 0', 'nothing is left prepared');
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_id = $b"), '0',
	'the interrupted batch is gone');

# ==== load_submit on its own, then a recovery pass in the same session ====
# the session's own direct load in progress is not recovered under it; the
# next commit abandons it, and the batch without rows goes
$from = $next_id;
$next_id += 30;
($ok, $err) = coord_sql(qq{
	SELECT shardload.load_submit('sales', 'alone',
		\$\$SELECT g, g % 3 + 1, 1, date '2026-11-30', 'a' FROM generate_series($from, $from + 29) g\$\$);
	SELECT shardload.run_due();
	SELECT shardload.run_due();});
ok($ok, 'load_submit and run_due in one session') or diag($err);
ok($coord->poll_query_until('postgres',
		"SELECT shardload.run_due() IS NOT NULL AND NOT EXISTS (SELECT FROM shardload.batches WHERE batch_key = 'alone')"),
	'the abandoned batch is removed');
is(counts($from, $next_id), '0 0 0', 'no shard keeps a row of it');
is(prepared_left(), '0 0 0', 'nothing is left prepared');

done_testing();
