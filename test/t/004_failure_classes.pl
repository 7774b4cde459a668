# Each failure class produced the way it happens in production, with the
# recorded attempt checked: a wrong password, a statement timeout and a lock
# timeout on the shard, and a stopped shard retried on the backoff schedule
# until the batch is dead-lettered.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my ($shard) = start_shards($coord, 1);

# the shard asks role etl for its password
$shard->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE etl LOGIN PASSWORD 'right-pw-123';
	GRANT ALL ON sales_region_1 TO etl;
	GRANT CREATE ON DATABASE postgres TO etl;
});
my $hba = $shard->data_dir . '/pg_hba.conf';
my $old = PostgreSQL::Test::Utils::slurp_file($hba);
open(my $fh, '>', $hba) or die $!;
print $fh "local all etl scram-sha-256\nhost all etl 127.0.0.1/32 scram-sha-256\n$old";
close $fh;
$shard->reload;

# a non-superuser loads with its own mapping
my ($host, $port) = ($shard->host, $shard->port);
$coord->safe_psql('postgres', qq{
	CREATE ROLE loader LOGIN;
	GRANT INSERT ON sales TO loader;
	CREATE USER MAPPING FOR loader SERVER shard_1 OPTIONS (user 'etl', password 'wrong-pw-456');
	INSERT INTO shardload.retry_policy VALUES ('tap', 4, '1 second', '4 seconds', 0.2, 1);
});
stage_rows($coord, 'staging', 2000, 1);
$coord->safe_psql('postgres', 'GRANT SELECT ON staging TO loader');

sub as_loader
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $coord->psql('postgres', "SET ROLE loader; $sql");
	note("stderr: $err") if $err ne '';
	return $out;
}
sub last_attempt
{
	my ($id) = @_;
	return $coord->safe_psql('postgres',
		"SELECT stage || ' ' || sqlstate || ' ' || failure_type || ' ' || reason || ' ' || next_action "
		  . "FROM shardload.attempts WHERE batch_id = $id ORDER BY attempt DESC LIMIT 1");
}
sub state_of
{
	my ($id) = @_;
	return $coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $id");
}

# ==== a wrong password: NON_RETRYABLE, never retried by itself ====
my $id = as_loader(
	"SELECT shardload.submit('sales', 'pw-1', 'SELECT * FROM staging', policy => 'tap')");
as_loader("CALL shardload.run($id)");
is(last_attempt($id), 'CONNECT 28P01 NON_RETRYABLE AUTH_OR_PERMISSION STOP',
	'a wrong password is not retryable');
is(state_of($id), 'failed', 'the batch failed at once');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.attempts WHERE message LIKE '%pw-%'"),
	'0', 'no password in the attempt records');
# (the test's own CREATE USER MAPPING is logged by log_statement, not by us)
is(scalar(grep { /wrong-pw-456/ && !/USER MAPPING/ }
		split /\n/, PostgreSQL::Test::Utils::slurp_file($coord->logfile)),
	0, 'no password in the server log');

$coord->safe_psql('postgres',
	"ALTER USER MAPPING FOR loader SERVER shard_1 OPTIONS (SET password 'right-pw-123')");
as_loader("SELECT shardload.replay($id)");
as_loader("CALL shardload.run($id)");
is(state_of($id), 'succeeded', 'with the right password the batch loads');
is(shard_count($shard, 1), '2000', 'every row arrived');

# ==== a statement timeout on the shard during COPY: TRANSIENT ====
$shard->safe_psql('postgres', "ALTER ROLE etl SET statement_timeout = '300ms'");
slow_down_shard($shard, 1, 7, 0.01);
$coord->safe_psql('postgres', "UPDATE staging SET sale_id = sale_id + 10000");
$id = as_loader(
	"SELECT shardload.submit('sales', 'timeout-1', 'SELECT * FROM staging', policy => 'tap')");
as_loader("CALL shardload.run($id)");
is(last_attempt($id), 'COPY 57014 TRANSIENT TIMEOUT RETRY', 'a statement timeout is transient');
is(state_of($id), 'retry_wait', 'the batch waits for its retry');
$shard->safe_psql('postgres', "ALTER ROLE etl RESET statement_timeout");
$shard->safe_psql('postgres', "DROP TRIGGER slow_insert ON sales_region_1");
as_loader("CALL shardload.run($id)");
is(state_of($id), 'succeeded', 'the retry succeeds once the shard is quick again');
is(shard_count($shard, 1), '4000', 'the retried slice arrived once');

# ==== the shard table locked by another session, lock_timeout set: TRANSIENT ====
$shard->safe_psql('postgres', "ALTER ROLE etl SET lock_timeout = '200ms'");
my ($locker, $lout, $lerr) = start_psql($shard,
	"BEGIN; LOCK TABLE sales_region_1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);");
ok($shard->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_locks WHERE relation = 'sales_region_1'::regclass AND mode = 'AccessExclusiveLock' AND granted"),
	'another session holds the table');
$coord->safe_psql('postgres', "UPDATE staging SET sale_id = sale_id + 10000");
$id = as_loader(
	"SELECT shardload.submit('sales', 'lock-1', 'SELECT * FROM staging', policy => 'tap')");
as_loader("CALL shardload.run($id)");
is(last_attempt($id), 'COPY 55P03 TRANSIENT TIMEOUT RETRY', 'a lock timeout is transient');
$shard->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()");
$locker->finish;
as_loader("CALL shardload.run($id)");
is(state_of($id), 'succeeded', 'the retry succeeds once the lock is gone');
is(shard_count($shard, 1), '6000', 'exactly the rows of three batches');

# ==== a stopped shard: retried on the backoff schedule, then dead-lettered ====
$coord->safe_psql('postgres', "UPDATE staging SET sale_id = sale_id + 10000");
$id = as_loader(
	"SELECT shardload.submit('sales', 'down-1', 'SELECT * FROM staging', policy => 'tap')");
$shard->stop('immediate');
as_loader("CALL shardload.run($id)") for 1 .. 4;
my $schedule = $coord->safe_psql('postgres', qq{
	SELECT string_agg(format('%s:%s:%s', attempt, next_action,
		CASE WHEN next_attempt_at IS NULL THEN 'none'
			 WHEN extract(epoch FROM next_attempt_at - finished_at)
				  BETWEEN 0.8 * least(2 ^ (attempt - 1), 4) AND 1.2 * least(2 ^ (attempt - 1), 4)
			 THEN 'in-bounds' ELSE 'OUT:' || extract(epoch FROM next_attempt_at - finished_at) END),
		' ' ORDER BY attempt)
	FROM shardload.attempts WHERE batch_id = $id});
is($schedule, '1:RETRY:in-bounds 2:RETRY:in-bounds 3:RETRY:in-bounds 4:DLQ:none',
	'next attempts follow min(1s * 2^(n-1), 4s) +/- 20%, then the dead letter');
is(last_attempt($id), 'CONNECT 08001 TRANSIENT UPSTREAM_UNAVAILABLE DLQ', 'a stopped shard is transient');
is(state_of($id), 'dead', 'retries exhausted: dead');
is($coord->safe_psql('postgres', "SELECT shardload.failure_record($id) ->> 'next_action'"),
	'DLQ', 'the failure record says DLQ');

$shard->start;
as_loader("SELECT shardload.replay($id)");
as_loader("CALL shardload.run($id)");
is(state_of($id), 'succeeded', 'a replayed dead batch loads once the shard is back');
is(shard_count($shard, 1), '8000', 'exactly the rows of four batches');

done_testing();
