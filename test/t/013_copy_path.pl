# The COPY path with real COPY clients: psql's \copy (CSV, text, another
# encoding) and pgloader load files through an inbox, the background worker
# loads the batches onto three shards, and repeating a load, or cutting a
# COPY off half way, never loads a row twice.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator', worker => 1);
my @shards = start_shards($coord, 3);
stage_rows($coord, 'staging', 30000, 3);
my $dir = PostgreSQL::Test::Utils::tempdir;
my $csv = "$dir/sales.csv";
my $text = "$dir/sales.txt";
$coord->safe_psql('postgres',
	"COPY (SELECT * FROM staging WHERE sale_id <= 20000 ORDER BY sale_id) TO '$csv' (FORMAT csv, HEADER)");
$coord->safe_psql('postgres',
	"COPY (SELECT * FROM staging WHERE sale_id > 20000 ORDER BY sale_id) TO '$text'");
is($coord->safe_psql('postgres', "SELECT shardload.create_inbox('sales')"),
	'sales_inbox', 'the inbox is made beside its target');

# psql running each command in turn in one session; returns (exit code,
# stdout, stderr)
sub psql_run
{
	my (@commands) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			'-d', $coord->connstr('postgres'), map { ('-c', $_) } @commands ],
		'>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

sub batch_state
{
	my ($key) = @_;
	return $coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_total || ' ' || rows_loaded FROM shardload.batches WHERE batch_key = '$key'");
}

sub wait_loaded
{
	my ($key) = @_;
	return $coord->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM shardload.batches WHERE batch_key = '$key'");
}

sub digest
{
	my ($node, $from) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || md5(string_agg(format('%s|%s|%s|%s|%s', sale_id, region_id, "
		  . "sale_amount, sale_date, coalesce(note, '<null>')), ',' ORDER BY sale_id)) FROM $from");
}

# ==== psql \copy, CSV with a header: the worker loads it ====
my ($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'file-csv'", "\\copy sales_inbox FROM '$csv' WITH (FORMAT csv, HEADER)");
is($rc, 0, '\copy into the inbox succeeds') or diag($err);
like($out, qr/^COPY 20000$/m, 'COPY reports the batch\'s rows');
ok(wait_loaded('file-csv'), 'the worker loaded the batch');
is(batch_state('file-csv'), 'succeeded 20000 20000', 'every row loaded');

# ==== psql \copy, text format: the second file ====
($rc, $out, $err) = psql_run("SET shardload.batch_key = 'file-text'", "\\copy sales_inbox FROM '$text'");
is($rc, 0, '\copy of a text file succeeds') or diag($err);
like($out, qr/^COPY 10000$/m, 'COPY reports 10000 rows');
ok(wait_loaded('file-text'), 'the worker loaded the text batch');
for my $i (1 .. 3)
{
	is(digest($shards[ $i - 1 ], "sales_region_$i"),
		digest($coord, "staging WHERE region_id = $i"),
		"shard $i holds exactly the staged rows, byte for byte");
}

# ==== the same file again: nothing new; other content under the key: SL001 ====
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'file-csv'", "\\copy sales_inbox FROM '$csv' WITH (FORMAT csv, HEADER)");
is($rc, 0, 'copying the same file under the same key succeeds');
like($err, qr/already submitted as batch \d+ with the same content/, 'and says nothing new was queued');
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'file-csv'", "\\copy sales_inbox FROM '$text'");
isnt($rc, 0, 'other content under a used key fails');
like($err, qr/ERROR:  SL001: batch key "file-csv" of table "sales" was already used for other content/,
	'with SQLSTATE SL001');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM shardload.batches'), '2',
	'no batch was added');

# ==== another encoding: COPY converts, the shard gets the same characters ====
my $latin1 = "$dir/latin1.csv";
open(my $fh, '>:raw', $latin1) or die;
print $fh "90001,1,1.00,2026-11-30,caf\xe9 cr\xe8me \xbd\n";
close($fh);
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'file-latin1'", "\\copy sales_inbox FROM '$latin1' WITH (FORMAT csv, ENCODING 'LATIN1')");
is($rc, 0, 'a LATIN1 file is taken') or diag($err);
ok(wait_loaded('file-latin1'), 'and loaded');
is($shards[0]->safe_psql('postgres', 'SELECT note FROM sales_region_1 WHERE sale_id = 90001'),
	"caf\xc3\xa9 cr\xc3\xa8me \xc2\xbd", 'the shard holds the same characters, in UTF-8');

# ==== a COPY cut off half way leaves no batch; the retry loads once ====
my $big = "$dir/big.csv";
$coord->safe_psql('postgres',
	"COPY (SELECT g + 100000, (g % 3) + 1, 1.00, '2026-11-30', repeat('x', 200) FROM generate_series(1, 400000) g) TO '$big' (FORMAT csv)");
# a trigger on the inbox slows the COPY down, so that it can be cut off
$coord->safe_psql('postgres', q{
	CREATE FUNCTION slow_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.sale_id::bigint % 2000 = 0 THEN PERFORM pg_sleep(0.05); END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER slow_inbox BEFORE INSERT ON sales_inbox FOR EACH ROW EXECUTE FUNCTION slow_inbox();
});
my ($h, $hout, $herr) = start_psql($coord,
	"SET shardload.batch_key = 'file-cut';\n\\copy sales_inbox FROM '$big' WITH (FORMAT csv)\n");
ok($coord->poll_query_until('postgres',
		"SELECT coalesce(max(tuples_processed), 0) > 1000 FROM pg_stat_progress_copy"),
	'the big COPY is under way');
$coord->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_progress_copy WHERE relid = 'sales_inbox'::regclass");
$h->finish;
like($$herr, qr/terminat|connection/i, 'the client saw its COPY cut off');
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key = 'file-cut'"),
	'0', 'no batch was left behind');
$coord->safe_psql('postgres', 'DROP TRIGGER slow_inbox ON sales_inbox');
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'file-cut'", "\\copy sales_inbox FROM '$big' WITH (FORMAT csv)");
is($rc, 0, 'the COPY runs again') or diag($err);
ok(wait_loaded('file-cut'), 'and is loaded');
is($coord->safe_psql('postgres',
		"SELECT count(*) || ' ' || count(DISTINCT sale_id) FROM sales WHERE sale_id > 100000"),
	'400000 400000', 'every row of the cut COPY once');

# ==== shardload.inbox_load = now: the COPY loads its batch before it returns ====
my $now = "$dir/now.txt";
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 100000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 3000 ORDER BY sale_id) TO '$now'");
# who ran the attempt: this session (t), not a runner of the worker
my $by_me = "SELECT b.state || ' ' || b.rows_loaded || ' ' || bool_and(a.runner_pid = pg_backend_pid())"
  . " FROM shardload.batches b JOIN shardload.attempt a USING (batch_id) WHERE b.batch_key = '%s'"
  . " GROUP BY b.state, b.rows_loaded";
($rc, $out, $err) = psql_run("SET shardload.inbox_load = now", "SET shardload.batch_key = 'now-1'",
	"\\copy sales_inbox FROM '$now'", sprintf($by_me, 'now-1'));
is($rc, 0, '\copy with inbox_load now succeeds') or diag($err);
like($out, qr/^COPY 3000$/m, 'COPY reports the batch\'s rows');
like($out, qr/^ succeeded 3000 true$/m, 'the batch is loaded when the COPY returns, by this session');
is($coord->safe_psql('postgres', "SELECT count(*) FROM sales WHERE sale_id BETWEEN -99999 AND -97000"), '3000',
	'its rows are on the shards');

# inside a transaction block: loaded at COMMIT, nothing at ROLLBACK
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 200000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 300 ORDER BY sale_id) TO '$now'");
($rc, $out, $err) = psql_run("SET shardload.inbox_load = now", "SET shardload.batch_key = 'now-2'",
	"BEGIN", "\\copy sales_inbox FROM '$now'", "SELECT 'before ' || state FROM shardload.batches WHERE batch_key = 'now-2'",
	"COMMIT", sprintf($by_me, 'now-2'));
is($rc, 0, 'BEGIN; \copy; COMMIT succeeds') or diag($err);
like($out, qr/^ before pending$/m, 'the batch waits for the COMMIT');
like($out, qr/^ succeeded 300 true$/m, 'the COMMIT loads it before it returns');
($rc, $out, $err) = psql_run("SET shardload.inbox_load = now", "SET shardload.batch_key = 'now-3'",
	"BEGIN", "\\copy sales_inbox FROM '$now'", "ROLLBACK",
	"SELECT count(*) FROM shardload.batches WHERE batch_key = 'now-3'");
like($out, qr/^ +0$/m, 'a ROLLBACK leaves no batch');

# a COPY among other statements of one query string: its transaction ends
# without a COMMIT statement, so the worker loads the batch, and it says so
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 400000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 30 ORDER BY sale_id) TO '$now'");
($rc, $out, $err) = psql_run(
	"SET shardload.inbox_load = now; SET shardload.batch_key = 'now-5'; COPY sales_inbox FROM '$now'");
is($rc, 0, 'a COPY in a query string of several statements succeeds') or diag($err);
like($err, qr/batch \d+ is left to the background worker/, 'it says its batch is left to the worker');
like($err, qr/ends without a COMMIT statement/, 'and why');
ok(wait_loaded('now-5'), 'which loads it');

# an error of the load after the COPY has committed (here statement_timeout,
# while a shard is slow) is a WARNING: the client gets COPY n, the batch
# stands, and the worker loads it
slow_down_shard($shards[0], 1, 1, 0.3);	# every row
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 500000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 30 ORDER BY sale_id) TO '$now'");
($rc, $out, $err) = psql_run("SET shardload.inbox_load = now", "SET shardload.batch_key = 'now-6'",
	"SET statement_timeout = '1s'", "\\copy sales_inbox FROM '$now'");
is($rc, 0, 'a COPY whose load runs out of time succeeds') or diag($err);
like($out, qr/^COPY 30$/m, 'with its row count');
like($err, qr/batch \d+ is committed, but loading it failed: canceling statement due to statement timeout/,
	'the load\'s error is a WARNING');
# the same at the COMMIT of a transaction block that loads two batches
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 600000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 30 ORDER BY sale_id) TO '$now'");
my $now2 = "$dir/now2.txt";
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 700000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 30 ORDER BY sale_id) TO '$now2'");
($rc, $out, $err) = psql_run("SET shardload.inbox_load = now", "SET statement_timeout = '1s'", "BEGIN",
	"SET LOCAL shardload.batch_key = 'now-7'", "\\copy sales_inbox FROM '$now'",
	"SET LOCAL shardload.batch_key = 'now-8'", "\\copy sales_inbox FROM '$now2'", "COMMIT");
is($rc, 0, 'a COMMIT whose loads run out of time succeeds') or diag($err);
like($err, qr/batch \d+ is committed, but loading it failed: canceling statement due to statement timeout/,
	'the load\'s error is a WARNING there too');
$shards[0]->safe_psql('postgres', 'DROP TRIGGER slow_insert ON sales_region_1');
ok(wait_loaded('now-6') && wait_loaded('now-7') && wait_loaded('now-8'), 'the worker loads the batches');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM sales WHERE sale_id BETWEEN -499999 AND -499970"
		  . " OR sale_id BETWEEN -599999 AND -599970 OR sale_id BETWEEN -699999 AND -699970"), '90',
	'every row once');

# the inbox's own option does it for clients that cannot set a setting
$coord->safe_psql('postgres', "ALTER FOREIGN TABLE sales_inbox OPTIONS (ADD load 'now')");
$coord->safe_psql('postgres',
	"COPY (SELECT sale_id - 300000, region_id, sale_amount, sale_date, note FROM staging"
	  . " WHERE sale_id <= 30 ORDER BY sale_id) TO '$now'");
($rc, $out, $err) = psql_run("SET shardload.batch_key = 'now-4'", "\\copy sales_inbox FROM '$now'",
	sprintf($by_me, 'now-4'));
like($out, qr/^ succeeded 30 true$/m, 'an inbox with load \'now\' loads at once');
$coord->safe_psql('postgres', "ALTER FOREIGN TABLE sales_inbox OPTIONS (DROP load)");
($rc, $out, $err) = psql_run("ALTER FOREIGN TABLE sales_inbox OPTIONS (ADD load 'soon')");
like($err, qr/invalid value for load: "soon"/, 'other values are refused');

# ==== pgloader: one file, several COPY statements, "%n" keys, rejects ====
SKIP:
{
	skip 'pgloader is not installed', 8 unless system('pgloader --version >/dev/null 2>&1') == 0;
	my $pgl_csv = "$dir/pgloader.csv";
	$coord->safe_psql('postgres',
		"COPY (SELECT g + 600000, (g % 3) + 1, (g % 1000) / 10.0, '2026-11-30', 'pgloader ' || g FROM generate_series(1, 5000) g) TO '$pgl_csv' (FORMAT csv)");
	PostgreSQL::Test::Utils::append_to_file($pgl_csv, "700001,1,not a number,2026-11-30,bad\n700002,7,1.00,2026-11-30,no shard\n");
	$coord->safe_psql('postgres',
		"SELECT shardload.create_inbox('sales', 'sales_pgloader', on_error => 'reject', reject_limit => 10, batch_key => 'pgloader-%n')");
	# pgloader COPYs in a transaction: each part is loaded at its COMMIT
	$coord->safe_psql('postgres', "ALTER FOREIGN TABLE sales_pgloader OPTIONS (ADD load 'now')");
	my $user = getpwuid($<);
	my $load = "$dir/sales.load";
	PostgreSQL::Test::Utils::append_to_file($load, qq{LOAD CSV FROM '$pgl_csv'
  INTO postgresql://$user\@unix:${\ $coord->host}:${\ $coord->port}/postgres?tablename=sales_pgloader
  WITH fields terminated by ',', batch rows = 2000
  -- pgloader takes a NOTICE for an error and drops the COPY: keep them out
  SET client_min_messages to 'warning';
});
	for my $run (1 .. 2)
	{
		my ($pout, $perr) = ('', '');
		IPC::Run::run([ 'pgloader', '--root-dir', "$dir/pgloader", $load ], '>', \$pout, '2>', \$perr);
		is($? >> 8, 0, "pgloader run $run succeeds") or diag($pout . $perr);
	}
	my $parts = $coord->safe_psql('postgres',
		"SELECT count(*) FROM shardload.batches WHERE batch_key LIKE 'pgloader-%'");
	cmp_ok($parts, '>', 1, "pgloader sent the file as $parts COPY statements, one batch each");
	is($coord->safe_psql('postgres',
			"SELECT sum(rows_total) || ' ' || sum(rows_rejected) FROM shardload.batches WHERE batch_key LIKE 'pgloader-%'"),
		'5002 2', 'the second run added nothing; two rows were rejected');
	is($coord->safe_psql('postgres',
			"SELECT bool_and(state = 'succeeded') FROM shardload.batches WHERE batch_key LIKE 'pgloader-%'"),
		't', 'every part was loaded by the time pgloader returned');
	is($coord->safe_psql('postgres',
			"SELECT count(*) || ' ' || count(DISTINCT sale_id) FROM sales WHERE sale_id > 600000"),
		'5000 5000', 'every good row once');
	is($coord->safe_psql('postgres',
			"SELECT string_agg(sqlstate || ' ' || raw_row, '; ' ORDER BY raw_row) FROM shardload.rejects r "
			  . "JOIN shardload.batches b USING (batch_id) WHERE b.batch_key LIKE 'pgloader-%'"),
		"22P02 700001\t1\tnot a number\t2026-11-30\tbad; 23514 700002\t7\t1.00\t2026-11-30\tno shard",
		'the bad rows are kept with their reason (as the COPY text pgloader sent)');
	is(ledger_count($shards[0]) + ledger_count($shards[1]) + ledger_count($shards[2]),
		$coord->safe_psql('postgres', "SELECT count(*) FROM shardload.slices WHERE state = 'committed'"),
		'one ledger row per committed slice');
}

done_testing();
