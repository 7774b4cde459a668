# A runner keeps its shard connections between batches: far fewer shard
# connections than batches, never one role's connection for another role's
# batch, and a kept connection the shard closed meanwhile (a restart) is
# replaced without failing the batch.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1, conf => "shardload.max_workers = 1\n");
my @shards = start_shards($coord, 2);
stage_rows($coord, 'staging', 400, 2);
my $ledger_ddl = $coord->safe_psql('postgres', 'SELECT shardload.ledger_ddl()');

# on each shard: two loading roles, who share the ledger through a group
# role, and a column that records who inserted each row
for my $i (1 .. 2)
{
	$shards[ $i - 1 ]->append_conf('postgresql.conf', "log_connections = on\n");
	$shards[ $i - 1 ]->reload;
	$shards[ $i - 1 ]->safe_psql('postgres', qq{
		CREATE ROLE loaders;
		CREATE ROLE alice_r LOGIN IN ROLE loaders;
		CREATE ROLE bob_r LOGIN IN ROLE loaders;
		GRANT CREATE ON DATABASE postgres TO loaders;
		GRANT INSERT ON sales_region_$i TO loaders;
		ALTER TABLE sales_region_$i ADD COLUMN loaded_by name DEFAULT current_user;
		SET ROLE loaders;
		$ledger_ddl
	});
}
$coord->safe_psql('postgres', q{
	CREATE ROLE alice;
	CREATE ROLE bob;
	GRANT INSERT ON sales TO alice, bob;
	GRANT SELECT ON staging TO alice, bob;
	CREATE USER MAPPING FOR alice SERVER shard_1 OPTIONS (user 'alice_r', password_required 'false');
	CREATE USER MAPPING FOR alice SERVER shard_2 OPTIONS (user 'alice_r', password_required 'false');
	CREATE USER MAPPING FOR bob SERVER shard_1 OPTIONS (user 'bob_r', password_required 'false');
	CREATE USER MAPPING FOR bob SERVER shard_2 OPTIONS (user 'bob_r', password_required 'false');
});

sub connections
{
	my ($shard, $user) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($shard->logfile);
	return scalar(() = $log =~ /connection authorized: user=$user /g);
}

# ==== twenty batches, alice's and bob's in turn, one runner ====
my $sql = "BEGIN;\n";
for my $k (0 .. 19)
{
	my $role = $k % 2 ? 'bob' : 'alice';
	my ($lo, $hi) = ($k * 20 + 1, $k * 20 + 20);
	$sql .= "SET ROLE $role; SELECT shardload.submit('sales', 'turn-$k', "
	  . "'SELECT * FROM staging WHERE sale_id BETWEEN $lo AND $hi'); RESET ROLE;\n";
}
$coord->safe_psql('postgres', $sql . "COMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM shardload.batches WHERE batch_key LIKE 'turn-%' AND state = 'succeeded'"),
	'the worker loaded all twenty batches');
is($coord->safe_psql('postgres',
		"SELECT max(attempts) FROM shardload.batches WHERE batch_key LIKE 'turn-%'"),
	'1', 'each on its first attempt');
# a group's records (written for all its batches at once) are those of one
# attempt: rows loaded, the attempt's end, each slice where it went
is($coord->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE b.rows_loaded = 20 AND b.rows_rejected = 0
	         AND b.finished_at IS NOT NULL AND b.next_attempt_at IS NULL
	         AND b.last_failure_type IS NULL) || ' ' ||
	       count(*) FILTER (WHERE a.status = 'succeeded' AND a.next_action = 'NONE'
	         AND a.finished_at >= a.started_at AND a.sqlstate IS NULL AND a.stage IS NULL) || ' ' ||
	       (SELECT count(*) FROM shardload.slices s JOIN shardload.batches sb USING (batch_id)
	         WHERE sb.batch_key LIKE 'turn-%' AND s.state = 'committed'
	         AND s.committed_at >= (SELECT started_at FROM shardload.attempts x
	                                WHERE x.batch_id = s.batch_id AND x.attempt = 1)
	         AND s.shard IS NOT NULL)
	FROM shardload.batches b JOIN shardload.attempts a USING (batch_id)
	WHERE b.batch_key LIKE 'turn-%'}),
	'20 20 40', 'each batch, attempt and slice is recorded as one attempt records it');
for my $i (1 .. 2)
{
	# alice's batches are the even ones: sale_id 1-20, 41-60, ...
	is($shards[ $i - 1 ]->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE ((sale_id - 1) / 20) % 2 = 0 AND loaded_by = 'alice_r') || ' ' "
			  . "|| count(*) FILTER (WHERE ((sale_id - 1) / 20) % 2 = 1 AND loaded_by = 'bob_r') || ' ' "
			  . "|| count(*) FROM sales_region_$i"),
		'100 100 200', "shard $i: every row was inserted by the role of its own batch");
	my ($a, $b) = (connections($shards[ $i - 1 ], 'alice_r'), connections($shards[ $i - 1 ], 'bob_r'));
	ok($a >= 1 && $a <= 2 && $b >= 1 && $b <= 2,
		"shard $i: 10 batches each of alice and bob over $a and $b connections");
}

# ==== a kept connection whose shard restarted is replaced ====
# batch A reaches shard 2 only, B shard 1 only (slowly), C shard 2 only;
# shard 2 restarts while B runs, so the runner's kept connection to it dies
slow_down_shard($shards[0], 1, 1, 0.3);
$coord->safe_psql('postgres', q{
	BEGIN;
	SELECT shardload.submit('sales', 'restart-a', 'SELECT sale_id + 1000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 2 AND sale_id <= 20');
	SELECT shardload.submit('sales', 'restart-b', 'SELECT sale_id + 1000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 1 AND sale_id <= 20');
	SELECT shardload.submit('sales', 'restart-c', 'SELECT sale_id + 2000, region_id, sale_amount, sale_date, note FROM staging WHERE region_id = 2 AND sale_id <= 20');
	COMMIT;
});
ok($shards[0]->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'COPY%' AND wait_event = 'PgSleep'"),
	'batch B is being loaded, slowly');
$shards[1]->restart;
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM shardload.batches WHERE batch_key LIKE 'restart-%' AND state = 'succeeded'"),
	'all three batches loaded');
is($coord->safe_psql('postgres',
		"SELECT string_agg(batch_key || ':' || attempts, ',' ORDER BY batch_key) FROM shardload.batches WHERE batch_key LIKE 'restart-%'"),
	'restart-a:1,restart-b:1,restart-c:1', 'none of them needed a second attempt');
is($shards[1]->safe_psql('postgres', 'SELECT count(*) FROM sales_region_2 WHERE sale_id > 1000'),
	'20', 'shard 2 holds the rows of A and C once');

# ==== one bad batch in a runner's group fails alone ====
# six batches for shard 1 in one group, sharing one remote transaction; one
# of them holds a row the shard refuses: the shared transaction is rolled
# back, and the slices go again one by one
$shards[0]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_1');
$shards[0]->safe_psql('postgres',
	'ALTER TABLE sales_region_1 ADD CONSTRAINT not_3014 CHECK (sale_id <> 3014)');
$sql = "BEGIN;\n";
for my $k (0 .. 5)
{
	$sql .= "SELECT shardload.submit('sales', 'group-$k', "
	  . "'SELECT sale_id + 3000, region_id, sale_amount, sale_date, note FROM staging "
	  . "WHERE region_id = 1 AND sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4) . "');\n";
}
$coord->safe_psql('postgres', $sql . "COMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 6 FROM shardload.batches WHERE batch_key LIKE 'group-%' AND state IN ('succeeded', 'failed')"),
	'the six batches ran');
is($coord->safe_psql('postgres',
		"SELECT string_agg(batch_key || ':' || state || ':' || attempts, ',' ORDER BY batch_key) FROM shardload.batches WHERE batch_key LIKE 'group-%'"),
	'group-0:succeeded:1,group-1:succeeded:1,group-2:succeeded:1,group-3:failed:1,group-4:succeeded:1,group-5:succeeded:1',
	'only the batch with the refused row failed, each on its first attempt');
is($coord->safe_psql('postgres',
		"SELECT a.sqlstate || ' ' || a.failure_type FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key = 'group-3'"),
	'23514 NON_RETRYABLE', 'with the shard\'s own error');
is($shards[0]->safe_psql('postgres',
		'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_1 WHERE sale_id BETWEEN 3001 AND 3024'),
	'10 10', 'shard 1 holds the rows of the five good batches once');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key LIKE 'group-%'"),
	'6', 'one attempt each');

# ==== a group whose COMMIT reply never came: found in the ledger ====
# shard 1 waits for a synchronous standby that does not exist: the group's
# rows and ledger rows commit there, but the reply never comes.  The
# attempt gives up (progress_timeout), its cancel ends the wait, and the
# retry finds every slice of the group in the ledger: loaded once.
$shards[0]->safe_psql('postgres', q{
	ALTER TABLE sales_region_1 DROP CONSTRAINT not_3014;
	ALTER SYSTEM SET wal_level = replica;
	ALTER SYSTEM SET max_wal_senders = 2;
	ALTER SYSTEM SET synchronous_standby_names = 'nobody';
});
$shards[0]->restart;
# the checkpointer tells the backends to wait for the standby: make it now
$shards[0]->safe_psql('postgres', 'CHECKPOINT');
$coord->safe_psql('postgres', q{
	ALTER SYSTEM SET shardload.progress_timeout = '3s';
	SELECT pg_reload_conf();
	INSERT INTO shardload.retry_policy (policy_name, base_delay, max_delay, jitter_ratio)
	VALUES ('regress_lost', '3 seconds', '3 seconds', 0);
});
$sql = "BEGIN;\n";
for my $k (0 .. 4)
{
	$sql .= "SELECT shardload.submit('sales', 'lost-$k', "
	  . "'SELECT sale_id + 4000, region_id, sale_amount, sale_date, note FROM staging "
	  . "WHERE region_id = 1 AND sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4)
	  . "', policy => 'regress_lost');\n";
}
$coord->safe_psql('postgres', $sql . "COMMIT;");
ok($coord->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM shardload.batches WHERE batch_key LIKE 'lost-%' AND state = 'succeeded'"),
	'the five batches succeeded');
$shards[0]->safe_psql('postgres', q{
	ALTER SYSTEM RESET synchronous_standby_names;
	SELECT pg_reload_conf();
});
$shards[0]->safe_psql('postgres', 'CHECKPOINT');
is($coord->safe_psql('postgres',
		"SELECT string_agg(DISTINCT a.attempt || ':' || coalesce(a.sqlstate, '-') || ':' || coalesce(a.failure_type, '-'), ',') "
		  . "FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key LIKE 'lost-%'"),
	'1:57014:TRANSIENT,2:-:-', 'first attempts timed out (TRANSIENT), second ones succeeded');
is($shards[0]->safe_psql('postgres',
		'SELECT count(*) || \' \' || count(DISTINCT sale_id) FROM sales_region_1 WHERE sale_id BETWEEN 4001 AND 4020'),
	'10 10', 'shard 1 holds the rows of the five batches once');
is($shards[0]->safe_psql('postgres',
		"SELECT count(*) FROM shardload_ledger.slices l WHERE l.batch_id IN ("
		  . join(',', split(/\n/, $coord->safe_psql('postgres',
				"SELECT batch_id FROM shardload.batches WHERE batch_key LIKE 'lost-%'"))) . ")"),
	'5', 'one ledger row each');
$coord->safe_psql('postgres', q{
	ALTER SYSTEM RESET shardload.progress_timeout;
	SELECT pg_reload_conf();
});

# ==== a cloned coordinator: slices in the ledger with other content ====
# twin_b is a copy of twin_a, so it has the same coordinator id and hands
# out the same batch ids.  twin_a loads two batches; twin_b's first two
# batches (other rows) collide with them in the ledger.  In one group with
# two more, they fail alone (SL002) and the others load.
$coord->safe_psql('postgres', 'CREATE DATABASE twin_a');
my ($h1, $p1) = ($shards[0]->host, $shards[0]->port);
$coord->safe_psql('twin_a', qq{
	CREATE EXTENSION pg_shardload CASCADE;
	CREATE TABLE sales (sale_id bigint, region_id int NOT NULL, sale_amount numeric(10,2),
		sale_date date NOT NULL, note text) PARTITION BY LIST (region_id);
	CREATE SERVER shard_1 FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$h1', port '$p1', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER shard_1;
	CREATE FOREIGN TABLE sales_region_1 PARTITION OF sales FOR VALUES IN (1) SERVER shard_1
		OPTIONS (schema_name 'public', table_name 'sales_region_1');
	CREATE TABLE staging AS SELECT g::bigint AS sale_id, 1 AS region_id,
		1.5::numeric(10,2) AS sale_amount, date '2026-11-30' AS sale_date, 'twin ' || g AS note
		FROM generate_series(1, 40) g;
});
$coord->safe_psql('postgres', 'CREATE DATABASE twin_b TEMPLATE twin_a');
for my $k (0 .. 1)
{
	my $id = $coord->safe_psql('twin_a',
		"SELECT shardload.submit('sales', 'a-$k', 'SELECT sale_id + 5000, region_id, sale_amount, sale_date, note "
		  . "FROM staging WHERE sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4) . "')");
	$coord->safe_psql('twin_a', "CALL shardload.run($id)");
}
is($coord->safe_psql('twin_a', "SELECT string_agg(batch_id || ':' || state, ',' ORDER BY batch_id) FROM shardload.batches"),
	$coord->safe_psql('twin_a', "SELECT string_agg(batch_id || ':succeeded', ',' ORDER BY batch_id) FROM shardload.batches"),
	'twin_a loaded its two batches');
$coord->append_conf('postgresql.conf', "shardload.database = 'twin_b'\n");
$coord->restart;
$sql = "BEGIN;\n";
for my $k (0 .. 3)
{
	$sql .= "SELECT shardload.submit('sales', 'b-$k', 'SELECT sale_id + 6000, region_id, sale_amount, sale_date, note "
	  . "FROM staging WHERE sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4) . "');\n";
}
$coord->safe_psql('twin_b', $sql . "COMMIT;");
ok($coord->poll_query_until('twin_b',
		"SELECT count(*) = 4 FROM shardload.batches WHERE state IN ('succeeded', 'quarantined')"),
	'twin_b ran its four batches');
is($coord->safe_psql('twin_b',
		"SELECT string_agg(b.batch_key || ':' || b.state || ':' || b.attempts || ':' || coalesce(a.sqlstate, '-'), ',' ORDER BY b.batch_key) "
		  . "FROM shardload.batches b JOIN shardload.attempts a USING (batch_id)"),
	'b-0:quarantined:1:SL002,b-1:quarantined:1:SL002,b-2:succeeded:1:-,b-3:succeeded:1:-',
	'the two that collide are quarantined with SL002, the other two load, one attempt each');
like($coord->safe_psql('twin_b',
		"SELECT a.primary_message || ' / ' || a.hint FROM shardload.attempts a JOIN shardload.batches b USING (batch_id) WHERE b.batch_key = 'b-0'"),
	qr/^slice \d+ of batch \d+ is in the ledger of server "shard_1" with other content \/ Was the coordinator's database restored or cloned\?/,
	'saying the ledger row was made for other content');
is($shards[0]->safe_psql('postgres',
		'SELECT count(*) FILTER (WHERE sale_id BETWEEN 5001 AND 5008) || \' \' '
		  . '|| count(*) FILTER (WHERE sale_id BETWEEN 6001 AND 6008) || \' \' '
		  . '|| count(*) FILTER (WHERE sale_id BETWEEN 6009 AND 6016) FROM sales_region_1'),
	'8 0 8', 'shard 1 holds twin_a\'s rows and those of twin_b\'s other two batches, once');

# ==== a group over two tables of one server ====
# regions 1 and 2 of twin_b both live on shard 1, in two tables: four
# batches with rows in both make eight slices for one connection, copied
# table by table in one remote transaction
$shards[0]->safe_psql('postgres', q{
	CREATE TABLE sales_region_1b (LIKE sales_region_1 INCLUDING ALL);
});
$coord->safe_psql('twin_b', q{
	CREATE FOREIGN TABLE sales_region_1b PARTITION OF sales FOR VALUES IN (2) SERVER shard_1
		OPTIONS (schema_name 'public', table_name 'sales_region_1b');
});
$sql = "BEGIN;\n";
for my $k (0 .. 3)
{
	$sql .= "SELECT shardload.submit('sales', 'two-$k', 'SELECT sale_id + 7000, (sale_id % 2) + 1, sale_amount, sale_date, note "
	  . "FROM staging WHERE sale_id BETWEEN " . ($k * 4 + 1) . " AND " . ($k * 4 + 4) . "');\n";
}
$coord->safe_psql('twin_b', $sql . "COMMIT;");
ok($coord->poll_query_until('twin_b',
		"SELECT count(*) = 4 FROM shardload.batches WHERE batch_key LIKE 'two-%' AND state = 'succeeded'"),
	'the four batches over two tables succeeded');
is($coord->safe_psql('twin_b',
		"SELECT max(attempts) || ' ' || sum(rows_loaded) FROM shardload.batches WHERE batch_key LIKE 'two-%'"),
	'1 16', 'each on its first attempt, all sixteen rows');
is($shards[0]->safe_psql('postgres',
		'SELECT (SELECT string_agg(sale_id::text, \',\' ORDER BY sale_id) FROM sales_region_1 WHERE sale_id > 7000) || \' / \' '
		  . '|| (SELECT string_agg(sale_id::text, \',\' ORDER BY sale_id) FROM sales_region_1b)'),
	'7002,7004,7006,7008,7010,7012,7014,7016 / 7001,7003,7005,7007,7009,7011,7013,7015',
	'each row in its own table on shard 1, once');

done_testing();
