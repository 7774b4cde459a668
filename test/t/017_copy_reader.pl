# COPY text read by pg_shardload itself (src/copy_reader.c), with
# PostgreSQL's reader taking over at the first line that is not plain:
# whatever a client sends, every row reaches its shard as COPY into a
# local table of the same columns stores it, the batch is the same bytes
# as through CopyFrom, and input COPY refuses is refused with COPY's error.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my @shards = start_shards($coord, 2);
$coord->safe_psql('postgres',
	"SELECT shardload.create_inbox('sales'); CREATE TABLE ref (LIKE sales)");
my $dir = PostgreSQL::Test::Utils::tempdir;

# psql in one session, with a DateStyle that makes dates be rewritten;
# returns (exit code, stdout, stderr)
sub psql_run
{
	my (@commands) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $coord->connstr('postgres'),
			'-c', "SET datestyle = 'SQL, DMY'", map { ('-c', $_) } @commands ],
		'>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

sub write_file
{
	my ($name, @lines) = @_;
	open(my $fh, '>:raw', "$dir/$name") or die;
	print $fh @lines;
	close($fh);
	return "$dir/$name";
}

# each row as its shard and the local reference hold it
sub digest
{
	my ($node, $from) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY sale_id)) FROM $from t");
}

sub load_batch
{
	my ($key) = @_;
	my $id = $coord->safe_psql('postgres',
		"SELECT batch_id FROM shardload.batches WHERE batch_key = '$key'");
	$coord->safe_psql('postgres', "CALL shardload.run($id)");
	return $coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded FROM shardload.batches WHERE batch_id = $id");
}

# Notes that need no escape in COPY text (the reader's own lines), and
# ones that do (PostgreSQL's reader reads from the first of them on).
my @plain = ('plain', '', "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e", q{"dq" 'sq'},
	'{"k": [1, {"a": null}]}', '{a,"b c",NULL}', 'x' x 100000, ' lead and trail ',
	'semi;colon,comma|pipe', 'N', '\N');
my @escaped = ('tab\there', 'new\nline', 'back\\\\slash', 'cr\rhere', '\101\x42\\\\',
	'\\\\N is text', "end\\\\");
my $row = 0;
sub line
{
	my ($note) = @_;
	$row++;
	my $date = $row % 2 ? '2026-11-30' : sprintf('%02d/01/2026', $row % 28 + 1);
	return join("\t", $row, $row % 2 + 1, $row % 5 ? "$row.5" : '\N', $date, $note) . "\n";
}
my @lines = ("sale_id\tregion_id\tsale_amount\tsale_date\tnote\n");
push @lines, line($row % 13 == 0 ? '\N' : $plain[ $row % @plain ]) for 1 .. 3000;
push @lines, line($_ % 3 ? $escaped[ $_ % @escaped ] : $plain[ $_ % @plain ]) for 1 .. 300;
my $mixed = write_file('mixed.txt', @lines);
my $plain_only = write_file('plain.txt', @lines[ 0 .. 3000 ]);

# ==== plain lines, then escaped ones: as COPY stores them ====
my ($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'mixed'", "\\copy sales_inbox FROM '$mixed' WITH (HEADER)",
	"\\copy ref FROM '$mixed' WITH (HEADER)");
is($rc, 0, '\copy of plain and escaped lines succeeds') or diag($err);
like($out, qr/^COPY 3300\nCOPY 3300$/m, 'COPY reports every row, as into a table');
is(load_batch('mixed'), 'succeeded 3300', 'the batch loads');
for my $i (1 .. 2)
{
	is(digest($shards[ $i - 1 ], "sales_region_$i"), digest($coord, "(SELECT * FROM ref WHERE region_id = $i)"),
		"shard $i holds every row as COPY into a table stored it");
}

# ==== the same rows through CopyFrom (an inbox with a trigger) are the same batch ====
$coord->safe_psql('postgres', q{
	CREATE FUNCTION pass() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
	CREATE TRIGGER pass BEFORE INSERT ON sales_inbox FOR EACH ROW EXECUTE FUNCTION pass();
});
for my $file ($mixed, $plain_only)
{
	($rc, $out, $err) = psql_run(
		"SET shardload.batch_key = 'same-$row'", "\\copy sales_inbox FROM '$file' WITH (HEADER)");
	is($rc, 0, 'through CopyFrom') or diag($err);
	$coord->safe_psql('postgres', 'ALTER TABLE sales_inbox DISABLE TRIGGER pass');
	($rc, $out, $err) = psql_run(
		"SET shardload.batch_key = 'same-$row'", "\\copy sales_inbox FROM '$file' WITH (HEADER)");
	is($rc, 0, 'and read by pg_shardload') or diag($err);
	like($err, qr/already submitted as batch \d+ with the same content/,
		'the same rows under the same key: the same batch, byte for byte');
	$coord->safe_psql('postgres', 'ALTER TABLE sales_inbox ENABLE TRIGGER pass');
	$row++;
}
$coord->safe_psql('postgres', 'DROP TRIGGER pass ON sales_inbox');

# ==== other delimiters and NULL markers ====
my $pipes = write_file('pipes.txt', "1|1|2.5|31/12/2026|\n", "2|2||01/02/2026|NULL\n",
	"3|1|1|2026-01-01|a b\n");
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'pipes'", "TRUNCATE ref",
	"\\copy sales_inbox FROM '$pipes' WITH (DELIMITER '|', NULL '')",
	"\\copy ref FROM '$pipes' WITH (DELIMITER '|', NULL '')");
is($rc, 0, 'DELIMITER and NULL') or diag($err);
$shards[ $_ - 1 ]->safe_psql('postgres', "TRUNCATE sales_region_$_") for 1 .. 2;
is(load_batch('pipes'), 'succeeded 3', 'the batch loads');
for my $i (1 .. 2)
{
	is(digest($shards[ $i - 1 ], "sales_region_$i"), digest($coord, "(SELECT * FROM ref WHERE region_id = $i)"),
		"shard $i holds the rows as COPY stored them");
}

# ==== reject mode: bad rows kept with their line as sent ====
$coord->safe_psql('postgres',
	"SELECT shardload.create_inbox('sales', 'sales_lenient', on_error => 'reject')");
my @lenient = ("20\t1\t1.5\t2026-01-01\tgood\n", "21\t1\tone\t2026-01-01\tbad amount\n",
	"22\t2\t1\t31/02/2026\tbad date\n", "23\t9\t1\t2026-01-01\tno partition\n",
	"24\t2\t\\N\t2026-01-02\tgood\n");
($rc, $out, $err) = psql_run("SET shardload.batch_key = 'lenient'",
	"\\copy sales_lenient FROM '" . write_file('lenient.txt', @lenient) . "'");
is($rc, 0, 'a COPY with bad rows into a lenient inbox succeeds') or diag($err);
like($out, qr/^COPY 5$/m, 'and counts every row');
is($coord->safe_psql('postgres', q{
	SELECT string_agg(line || ' ' || sqlstate || ' ' || raw_row, E'\n' ORDER BY line)
	FROM shardload.rejects r JOIN shardload.batches b USING (batch_id) WHERE b.batch_key = 'lenient'}),
	join("\n", "2 22P02 21\t1\tone\t2026-01-01\tbad amount", "3 22008 22\t2\t1\t31/02/2026\tbad date",
		"4 23514 23\t9\t1\t2026-01-01\tno partition"),
	'the bad rows are kept with their SQLSTATE and line as sent');

# ==== input COPY refuses: COPY's own error, naming the same line ====
my $ok = "7\t1\t1\t2026-01-01\tfine\n";
my %bad = (
	'a carriage return' => [ $ok, $ok, "8\t1\t1\t2026-01-01\tcr\r\n", $ok ],
	'bytes not in UTF-8' => [ $ok, $ok, $ok, "9\t1\t1\t2026-01-01\tbad \xff byte\n" ],
	'too many fields' => [ $ok, "10\t1\t1\t2026-01-01\ta\tb\n" ],
	'too few fields' => [ $ok, $ok, "11\t1\t1\n" ],
	'a bad date' => [ $ok, "12\t1\t1\t31/02/2026\tx\n" ],
	'an escape that is not UTF-8' => [ $ok, "13\t1\t1\t2026-01-01\tx\\377y\n" ],);
for my $case (sort keys %bad)
{
	my $file = write_file('bad.txt', @{ $bad{$case} });
	my (undef, undef, $inbox_err) = psql_run(
		"SET shardload.batch_key = 'bad'", "\\copy sales_inbox FROM '$file'");
	my (undef, undef, $table_err) = psql_run("\\copy ref FROM '$file'");
	$inbox_err =~ s/sales_inbox/TABLE/g;
	$table_err =~ s/\bref\b/TABLE/g;
	# a date is parsed by the capture, not by COPY: its context names no column
	($inbox_err, $table_err) = map { s/^CONTEXT: .*\n//mgr } ($inbox_err, $table_err)
	  if $case eq 'a bad date';
	isnt($inbox_err, '', "$case: refused");
	is($inbox_err, $table_err, "$case: with the error COPY gives");
}
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key = 'bad'"),
	'0', 'and no batch is left');

# ==== unusual input: whatever COPY into a table makes of it ====
# rows, count and errors alike, with the same options into the inbox and ref
my %odd = (
	'only carriage returns' => [ '', "30\t1\t1\t2026-01-01\ta\r31\t2\t1\t2026-01-01\tb\r" ],
	'CRLF' => [ '', "32\t1\t1\t2026-01-01\ta\r\n33\t2\t1\t2026-01-01\tb\r\n" ],
	'a backslash before the newline' => [ '', "34\t1\t1\t2026-01-01\ta\\\nb\n" ],
	'no newline at the end' => [ '', "36\t1\t1\t2026-01-01\ta\n37\t2\t1\t2026-01-01\tb" ],
	'a NULL marker with a backslash' =>
	  [ q{WITH (NULL 'x\')}, "38\t1\t1\t2026-01-01\tx\\\n39\t2\t1\t2026-01-01\tx\\\n" ],
	'a NULL marker that is the end-of-data marker' =>
	  [ q{WITH (NULL '\.')}, "40\t1\t1\t2026-01-01\t\\.\n41\t2\t1\t2026-01-01\tb\n" ],
	'a header, then a line in several messages' =>
	  [ 'WITH (HEADER)', "h\th\th\th\th\n", "42\t1\t1\t2026-01-01\t" . ('z' x 50000) . "\n" ],);
for my $case (sort keys %odd)
{
	my ($options, @content) = @{ $odd{$case} };
	my $file = write_file('odd.txt', @content);
	my ($key) = ($case =~ s/\W/-/gr);
	my @inbox = psql_run("SET shardload.batch_key = 'odd-$key'",
		"\\copy sales_inbox FROM '$file' $options");
	my @table = psql_run('TRUNCATE ref', "\\copy ref FROM '$file' $options");
	$inbox[2] =~ s/sales_inbox/TABLE/g;
	$table[2] =~ s/\bref\b/TABLE/g;
	$table[1] =~ s/^TRUNCATE TABLE\n//m;
	$inbox[1] =~ s/^SET\n//m;
	is("@inbox", "@table", "$case: as into a table");
	next if $inbox[0] != 0;
	$shards[ $_ - 1 ]->safe_psql('postgres', "TRUNCATE sales_region_$_") for 1 .. 2;
	load_batch("odd-$key");
	is(join(' ', map { digest($shards[ $_ - 1 ], "sales_region_$_") } 1 .. 2),
		join(' ', map { digest($coord, "(SELECT * FROM ref WHERE region_id = $_)") } 1 .. 2),
		"$case: the rows a table got");
}

# ==== cut off while a line is still coming in: the error names that line ====
# (a client that sends the header and part of line 2, then waits)
my $cut_script = write_file('cut.sh',
	"printf 'sale_id\\tregion_id\\tsale_amount\\tsale_date\\tnote\\n50\\t1\\t1\\t2026-01-01\\t'\n",
	"head -c 300000 /dev/zero | tr '\\0' w\n", "sleep 600 & echo \$! > $dir/cut.pid; wait\n");
my $connstr = $coord->connstr('postgres');
my $cut = IPC::Run::start([ 'bash', '-c',
		"bash $cut_script | psql -X -d \"$connstr\" -c \"SET shardload.batch_key = 'cut'\" "
		  . "-c '\\copy sales_inbox FROM pstdin WITH (HEADER)'" ],
	'>', \my $cut_out, '2>', \my $cut_err);
my $log_offset = -s $coord->logfile;
ok($coord->poll_query_until('postgres',
		"SELECT coalesce(max(bytes_processed), 0) > 100000 FROM pg_stat_progress_copy"),
	'the COPY has part of its second line');
$coord->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_progress_copy WHERE relid = 'sales_inbox'::regclass");
kill 'TERM', slurp_file("$dir/cut.pid") =~ s/\s+//r;
$cut->finish;
ok($coord->wait_for_log(qr/FATAL:  terminating connection due to administrator command\n.*CONTEXT:  COPY sales_inbox, line 2\n/,
		$log_offset), 'the error names line 2, as COPY would');
is($coord->safe_psql('postgres', "SELECT count(*) FROM shardload.batches WHERE batch_key = 'cut'"),
	'0', 'and leaves no batch');

# ==== the end-of-data marker: what follows it is not read ====
my $marker = write_file('marker.txt', $ok, "\\.\n", "14\t1\t1\t2026-01-01\tafter\n");
($rc, $out, $err) = psql_run(
	"SET shardload.batch_key = 'marker'", "\\copy sales_inbox FROM '$marker'");
my ($rc2, $out2, $err2) = psql_run("\\copy ref FROM '$marker'");
my ($count, $count2) = map { /^(COPY \d+)$/m ? $1 : 'no COPY' } ($out, $out2);
is("$rc $count", "$rc2 $count2", 'the marker ends the input as it does for a table');
is("$rc $count", '0 COPY 1', 'after one row');

# ==== a client library: psycopg's COPY, rows it escapes itself, and raw chunks of any size ====
SKIP:
{
	skip 'python3-psycopg is not installed', 6
	  if system('/usr/bin/python3 -c "import psycopg" 2>/dev/null') != 0;
	my $script = write_file('psycopg_copy.py', <<'PY');
import datetime, random, sys
import psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
cur = conn.cursor()
notes = ['plain', '', None, 'tab\there', 'new\nline', 'back\\slash', '\\N', 'cr\rx',
         '\u00fcn\u00ef \u2713 \U0001D11E', '"q" \'s\'', 'x' * 70000, '\\.', '.\\']
rows = [(60000 + i, i % 2 + 1, None if i % 7 == 0 else '%d.25' % i,
         datetime.date(2026, 1, 1) + datetime.timedelta(days=i % 300),
         'plain \u2713' if i < 3000 else notes[i % len(notes)]) for i in range(5000)]
raw = ''.join('%d\t%d\t%d.5\t2026-01-%02d\t%s\n' % (70000 + i, i % 2 + 1, i, i % 28 + 1,
              'plain' if i < 3000 else ['a\\tb', '\\N', 'c\\\\d', 'x'][i % 4])
              for i in range(5000)).encode()
for target in ('sales_inbox', 'ref'):
    cur.execute("SET shardload.batch_key = 'psycopg-%n'")
    with cur.copy('COPY %s FROM STDIN' % target) as copy:
        for row in rows:
            copy.write_row(row)
    print(cur.statusmessage)
    with cur.copy('COPY %s FROM STDIN' % target) as copy:
        pos = 0
        while pos < len(raw):
            n = random.choice([1, 2, 7, 100, 5000, 70000])
            copy.write(raw[pos:pos + n])
            pos += n
    print(cur.statusmessage)
PY
	$coord->safe_psql('postgres', 'TRUNCATE ref');
	$shards[ $_ - 1 ]->safe_psql('postgres', "TRUNCATE sales_region_$_") for 1 .. 2;
	my ($py_out, $py_err) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', $script, $coord->connstr('postgres') ],
		'>', \$py_out, '2>', \$py_err);
	is($py_out, "COPY 5000\nCOPY 5000\nCOPY 5000\nCOPY 5000\n", 'psycopg copies into the inbox and a table')
	  or diag($py_err);
	is(load_batch('psycopg-1'), 'succeeded 5000', 'the rows psycopg escaped load');
	is(load_batch('psycopg-2'), 'succeeded 5000', 'the chunks psycopg sent load');
	for my $i (1 .. 2)
	{
		is(digest($shards[ $i - 1 ], "sales_region_$i"),
			digest($coord, "(SELECT * FROM ref WHERE region_id = $i)"),
			"shard $i holds every row as COPY into a table stored it");
	}
	is($coord->safe_psql('postgres', "SELECT count(*) FROM ref"), '10000', 'every row, once');
}

# ==== a module that hooks utility statements before pg_shardload sees the COPY ====
$coord->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_stat_statements,pg_shardload'");
$coord->restart;
$coord->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
($rc, $out, $err) = psql_run("SET shardload.batch_key = 'hooked'",
	"\\copy sales_inbox FROM '$plain_only' WITH (HEADER)");
is($rc, 0, 'a COPY with pg_stat_statements loaded first') or diag($err);
is($coord->safe_psql('postgres',
		"SELECT calls || ' ' || rows FROM pg_stat_statements WHERE query ILIKE 'copy%sales_inbox%'"),
	'1 3000', 'pg_stat_statements counted it, with its rows');
is($coord->safe_psql('postgres', "SELECT rows_total FROM shardload.batches WHERE batch_key = 'hooked'"),
	'3000', 'and the batch has them');

done_testing();
