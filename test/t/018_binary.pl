# A direct load (CALL shardload.load) sends a query's rows to a shard in
# COPY's binary format when every column's type allows it here and on the
# shard; otherwise in COPY text, as before.  Either way every value must
# arrive as the source holds it: the edges of each type (NaN, infinities,
# -0, numerics short and long, dates and timestamps at their limits, text
# with every byte COPY text escapes, unicode, long values, padded char,
# NULLs) are compared row by row with the source, and with a load in COPY
# text (shardload.binary_copy off).  A shard whose column has another type
# (a domain, a wider integer) gets COPY text, and the values still arrive.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ShardloadCluster;

my $coord = start_coordinator('coordinator');
my $columns = q{id bigint, region int, b bool, i2 int2, i4 int, i8 bigint, f4 real,
	f8 float8, n numeric, n2 numeric(12,3), d date, ts timestamp, tstz timestamptz,
	t text, vc varchar(20), bp char(5), u uuid};

$coord->safe_psql('postgres', qq{
	CREATE TABLE typed ($columns) PARTITION BY LIST (region);
	CREATE TABLE typed_source ($columns);
});

# shard 1: the same types (binary); shard 2: i4 is bigint and t a domain there
my @shards;
for my $i (1 .. 2)
{
	my $shard = PostgreSQL::Test::Cluster->new("shard$i");
	$shard->init;
	$shard->append_conf('postgresql.conf', "max_prepared_transactions = 70\nlog_statement = all");
	$shard->start;
	my $shard_columns = $columns;
	if ($i == 2)
	{
		$shard->safe_psql('postgres', 'CREATE DOMAIN note_text AS text');
		$shard_columns =~ s/i4 int,/i4 bigint,/;
		$shard_columns =~ s/t text,/t note_text,/;
	}
	for my $table ("typed_$i", "typed_text_$i")
	{
		$shard->safe_psql('postgres', "CREATE TABLE $table ($shard_columns)");
	}
	my ($host, $port) = ($shard->host, $shard->port);
	$coord->safe_psql('postgres', qq{
		CREATE SERVER shard_$i FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '$host', port '$port', dbname 'postgres');
		CREATE USER MAPPING FOR CURRENT_USER SERVER shard_$i;
		CREATE FOREIGN TABLE typed_$i PARTITION OF typed FOR VALUES IN ($i) SERVER shard_$i
			OPTIONS (schema_name 'public', table_name 'typed_$i');
	});
	push @shards, $shard;
}

# the edges of every type that can travel in binary, in both regions
my $edges = <<'SQL';
	INSERT INTO typed_source
	SELECT row_number() OVER () * 2 + r - 2, r, v.*
	FROM (VALUES
		(true, 0::int2, 0, 0::bigint, 0::real, 0::float8, 0::numeric, 0::numeric,
		 date '2000-01-01', timestamp '2000-01-01', timestamptz '2000-01-01 00:00+00',
		 '', '', '', '00000000-0000-0000-0000-000000000000'::uuid),
		(false, -32768, -2147483648, -9223372036854775808, '-0', '-0', -0.0, -0.000,
		 'infinity', 'infinity', 'infinity', E'tab\there \\ back\nnew\rcr "q" ''s'' \u00e9\u4e2d\U0001F600',
		 E'\\N', 'ab', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
		(NULL, 32767, 2147483647, 9223372036854775807, 'NaN', 'NaN', 'NaN', 123456789.123,
		 '-infinity', '-infinity', '-infinity', repeat('long ', 40000), 'twenty characters!!!',
		 'abcde', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
		(true, 1, 1, 1, 'Infinity', 'Infinity', 'Infinity', -0.001, '4713-01-01 BC',
		 '4713-01-01 00:00 BC', '4713-01-01 00:00+00 BC', '\N', NULL, ' ', NULL),
		(false, -1, -1, -1, '-Infinity', '-Infinity', '-Infinity', 999999999.999,
		 '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00',
		 E'\\', E'x\ty', E'\t', NULL),
		(NULL, NULL, NULL, NULL, 1.17549435e-38, 2.2250738585072014e-308,
		 123456789012345678901234567890.123456789012345678901234567890, 0.5,
		 NULL, '2026-11-30 12:34:56.789012', '2026-11-30 12:34:56.789012+05:30',
		 NULL, NULL, NULL, NULL),
		(true, 2, 10000, 100000000, 3.4028235e38, 1.7976931348623157e308,
		 0.00000000000000000000000000000000000000000000000001, 1000000.5, '1999-12-31',
		 '1999-12-31 23:59:59', '1999-12-31 23:59:59-08', 'caf' || chr(233), 'é',
		 'éé', NULL),
		(false, 3, 9999, 99990000, 1.0000001, 0.1, -10000.0001, -0.0005, '0001-01-01',
		 '0001-01-01 00:00', '0001-01-01 00:00+00', chr(1) || chr(127), NULL, NULL, NULL),
		(NULL, 4, 0, 0, -1e-30, -1e300, 1e-1000, 12.3456, '2026-02-28', NULL, NULL,
		 'last', 'last', 'last', NULL),
		(true, 5, 5, 5, 5, 5, -1e1000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
	) AS v, generate_series(1, 2) r;
SQL
$coord->safe_psql('postgres', $edges);
my $rows = $coord->safe_psql('postgres', 'SELECT count(*) FROM typed_source');
is($rows, 20, 'the source holds 20 rows of edge values');

# every value as text under this test's fixed settings, row by row
my $row_text = q{string_agg(concat_ws(' | ', id, region, b, i2, i4, i8, f4, f8, n, n2, d, ts,
	tstz, md5(t), length(t), vc, bp || '<', u), E'\n' ORDER BY id)};
my $settings = q{SET datestyle = ISO; SET timezone = 'UTC'; SET extra_float_digits = 1;};

sub source_rows
{
	my ($region) = @_;
	return $coord->safe_psql('postgres',
		"$settings SELECT $row_text FROM typed_source WHERE region = $region");
}

sub shard_rows
{
	my ($i, $table) = @_;
	return $shards[ $i - 1 ]->safe_psql('postgres', "$settings SELECT $row_text FROM $table");
}

sub copies_in
{
	my ($i, $format) = @_;
	my $log = slurp_file($shards[ $i - 1 ]->logfile);
	my @copies = $log =~ /statement: (COPY public\.\w+ [^\n]*)/g;
	return scalar grep { $format eq 'binary' ? /FORMAT binary/ : !/FORMAT binary/ } @copies;
}

# the load: binary to shard 1, COPY text to shard 2 (its types differ)
$coord->safe_psql('postgres',
	q{CALL shardload.load('typed', 'binary-1', $$SELECT * FROM typed_source$$)});
is( $coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded || ' ' || payload_kept::int"
		  . " FROM shardload.batches WHERE batch_key = 'binary-1'"),
	'succeeded 20 0',
	'the direct load succeeded with every row and no payload');
is(copies_in(1, 'binary'), 1, 'shard 1 got its slice in COPY binary');
is(copies_in(2, 'binary'), 0, 'shard 2, whose column types differ, got no COPY binary');
is(copies_in(2, 'text'), 1, 'shard 2 got its slice in COPY text');
for my $i (1 .. 2)
{
	is(shard_rows($i, "typed_$i"), source_rows($i), "shard $i holds every value as the source does");
}

# the same rows in COPY text only: the same values
$coord->safe_psql('postgres', q{
	ALTER FOREIGN TABLE typed_1 OPTIONS (SET table_name 'typed_text_1');
	ALTER FOREIGN TABLE typed_2 OPTIONS (SET table_name 'typed_text_2');
});
$coord->safe_psql('postgres', q{SET shardload.binary_copy = off;
	CALL shardload.load('typed', 'text-1', $$SELECT * FROM typed_source$$)});
is(copies_in(1, 'binary'), 1, 'with shardload.binary_copy off, no COPY binary');
for my $i (1 .. 2)
{
	is(shard_rows($i, "typed_text_$i"), shard_rows($i, "typed_$i"),
		"shard $i: COPY text and COPY binary store the same values");
}

# a value the shard's column refuses: the batch fails there as in COPY text,
# its payload (COPY text) is kept, and its replay loads the same values
$shards[0]->safe_psql('postgres',
	"CREATE TABLE typed_refuse_1 ($columns, CHECK (i8 < 1000000000))");
$coord->safe_psql('postgres',
	q{ALTER FOREIGN TABLE typed_1 OPTIONS (SET table_name 'typed_refuse_1')});
$coord->psql('postgres',
	q{CALL shardload.load('typed', 'refused-1', $$SELECT * FROM typed_source WHERE region = 1$$)});
my $b = $coord->safe_psql('postgres',
	"SELECT batch_id FROM shardload.batches WHERE batch_key = 'refused-1'");
is(copies_in(1, 'binary'), 2, 'the refused slice went in COPY binary');
is( $coord->safe_psql('postgres',
		"SELECT b.state || ' ' || a.shard || ' ' || a.sqlstate || ' ' || a.failure_type || ' '"
		  . " || a.next_action || ' ' || b.payload_kept::int FROM shardload.batches b"
		  . " JOIN shardload.attempts a USING (batch_id) WHERE batch_id = $b"),
	'failed shard_1 23514 NON_RETRYABLE STOP 1',
	'the refusal is recorded as NON_RETRYABLE 23514, and the payload is kept');
is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM typed_refuse_1'),
	0, 'shard 1 holds no row of the refused slice');
$shards[0]->safe_psql('postgres', 'ALTER TABLE typed_refuse_1 DROP CONSTRAINT typed_refuse_1_i8_check');
$coord->safe_psql('postgres', "SELECT shardload.replay($b)");
$coord->safe_psql('postgres', "CALL shardload.run($b)");
is($coord->safe_psql('postgres', "SELECT state FROM shardload.batches WHERE batch_id = $b"),
	'succeeded', 'its replay (COPY text, from the payload) succeeds');
is(copies_in(1, 'binary'), 2, 'the replay sent COPY text');
is(shard_rows(1, 'typed_refuse_1'), source_rows(1), 'and stores every value as the source holds it');
is( join(' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } @shards),
	'0 0', 'nothing is left prepared');

# ==== the COPY path: \copy into the inbox, loaded at once ====
# rows as text go in binary too (the recoder's values, the others from
# their text); a row in a spelling the coordinator does not read in binary
# (a UUID in braces) sends the batch the usual way, in COPY text
my $dir = PostgreSQL::Test::Utils::tempdir;
$coord->safe_psql('postgres', qq{
	COPY typed_source TO '$dir/typed.txt';
	COPY typed_source TO '$dir/typed.csv' WITH (FORMAT csv, HEADER);
	COPY (SELECT id, region, b, i2, i4, i8, f4, f8, n, n2, d, ts, tstz, t, vc, bp,
			CASE WHEN id = 1 THEN '{' || u || '}' ELSE u::text END FROM typed_source)
		TO '$dir/odd.txt';
	SELECT shardload.create_inbox('typed');
});

sub copy_into
{
	my ($name, $file, $options) = @_;
	for my $i (1 .. 2)
	{
		# the types of typed_$i there: shard 2's differ
		$shards[ $i - 1 ]->safe_psql('postgres', "CREATE TABLE ${name}_$i (LIKE typed_$i)");
		$coord->safe_psql('postgres',
			"ALTER FOREIGN TABLE typed_$i OPTIONS (SET table_name '${name}_$i')");
	}
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $coord->connstr('postgres'),
			'-c', 'SET shardload.inbox_load = now', '-c', "SET shardload.batch_key = '$name'",
			'-c', "\\copy typed_inbox FROM '$file' $options" ],
		'>', \$out, '2>', \$err);
	is($? >> 8, 0, "$name: \\copy succeeds") or diag($err);
	like($out, qr/^COPY 20$/m, "$name: COPY reports 20 rows");
	is($coord->safe_psql('postgres',
			"SELECT state || ' ' || rows_loaded FROM shardload.batches WHERE batch_key = '$name'"),
		'succeeded 20', "$name: the batch is loaded");
	for my $i (1 .. 2)
	{
		is(shard_rows($i, "${name}_$i"), source_rows($i),
			"$name: shard $i holds every value as the source does");
	}
}

copy_into('copy_text', "$dir/typed.txt", '');
is(copies_in(1, 'binary'), 3, 'COPY text into the inbox went to shard 1 in COPY binary');
copy_into('copy_csv', "$dir/typed.csv", 'WITH (FORMAT csv, HEADER)');
is(copies_in(1, 'binary'), 4, 'CSV into the inbox went to shard 1 in COPY binary');
is(copies_in(2, 'binary'), 0, 'and never to shard 2, whose types differ');
copy_into('copy_odd', "$dir/odd.txt", '');
is(copies_in(1, 'binary'), 4, 'a UUID in braces sends the batch in COPY text');

# ==== 60 partitions on one shard: one probe asks about all of them ====
# the first partition's rows fill a chunk, so its slice connects and
# probes while the capture goes on; the other 59 slices come later and
# still go in binary, from the probe's answers
my $many = 60;
$coord->safe_psql('postgres', 'CREATE TABLE many (id bigint, part int, note text) PARTITION BY LIST (part)');
for my $p (1 .. $many)
{
	$shards[0]->safe_psql('postgres', "CREATE TABLE many_$p (id bigint, part int, note text)");
	$coord->safe_psql('postgres',
		"CREATE FOREIGN TABLE many_$p PARTITION OF many FOR VALUES IN ($p) SERVER shard_1"
		  . " OPTIONS (schema_name 'public', table_name 'many_$p')");
}
$coord->safe_psql('postgres', qq{
	CALL shardload.load('many', 'many-1', \$\$
		SELECT g, CASE WHEN g <= 15000 THEN 1 ELSE (g - 15000) % $many + 1 END,
			repeat(E'x\\ty', 50) || g
		FROM generate_series(1, 15000 + 10 * $many) g ORDER BY g\$\$)});
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || rows_loaded || ' ' || payload_kept::int FROM shardload.batches WHERE batch_key = 'many-1'"),
	'succeeded ' . (15000 + 10 * $many) . ' 0', 'the load over 60 partitions of one shard went direct');
my @many_copies = slurp_file($shards[0]->logfile) =~ /statement: (COPY public\.many_\d+ [^\n]*)/g;
is(scalar(grep { /FORMAT binary/ } @many_copies) . ' of ' . scalar(@many_copies), "$many of $many",
	'every one of its slices went in COPY binary');
is( $shards[0]->safe_psql('postgres',
		join(' UNION ALL ', map { "SELECT id, part, note FROM many_$_" } 1 .. $many)
		  =~ s/^/SELECT count(*) || ' ' || md5(string_agg(format('%s|%s|%s', id, part, note), ',' ORDER BY id)) FROM (/r
		  . ') m'),
	$coord->safe_psql('postgres',
		"SELECT count(*) || ' ' || md5(string_agg(format('%s|%s|%s', g, CASE WHEN g <= 15000 THEN 1"
		  . " ELSE (g - 15000) % $many + 1 END, repeat(E'x\\ty', 50) || g), ',' ORDER BY g))"
		  . " FROM generate_series(1, 15000 + 10 * $many) g"),
	'and every row is there as it was sent');

done_testing();
