# Helpers for pg_shardload's TAP tests: a coordinator with the extension and
# shard servers holding one "sales" partition each, wired the classic way
# (a postgres_fdw server, user mapping and foreign partition per region).
package ShardloadCluster;

use strict;
use warnings FATAL => 'all';
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(start_coordinator start_shards stage_rows shard_count
  ledger_count start_psql slow_down_shard create_hold_function);

my $SALES_COLUMNS = 'sale_id bigint, region_id int NOT NULL, '
  . 'sale_amount numeric(10,2), sale_date date NOT NULL, note text';

# A coordinator with shared_preload_libraries and the extension created.
# The background scheduler serves no database unless %opts says which
# (worker => 1: database postgres), so tests that drive runs by hand are
# not raced by it.  install_path => DIR: PostgreSQL (and pg_shardload) from
# DIR; version => V: CREATE EXTENSION ... VERSION V; allows_streaming => 1:
# a node that can be backed up.
sub start_coordinator
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name,
		$opts{install_path} ? (install_path => $opts{install_path}) : ());
	my $databases = $opts{worker} ? 'postgres' : '';
	$node->init(allows_streaming => $opts{allows_streaming} // 0);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'pg_shardload'\nmax_connections = 40\n"
		  . "shardload.database = '$databases'\nshardload.naptime = 1\n"
		  . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_shardload '
		  . ($opts{version} ? "VERSION '$opts{version}' " : '') . 'CASCADE');
	$node->safe_psql('postgres',
		"CREATE TABLE sales ($SALES_COLUMNS) PARTITION BY LIST (region_id)");
	return $node;
}

# $n shard servers; shard $i holds region $i in table sales_region_$i
# (primary key on sale_id, so a duplicate cannot hide).
sub start_shards
{
	my ($coord, $n) = @_;
	my @shards;
	for my $i (1 .. $n)
	{
		my $shard = PostgreSQL::Test::Cluster->new("shard$i");
		$shard->init;
		$shard->start;
		$shard->safe_psql('postgres',
			"CREATE TABLE sales_region_$i ($SALES_COLUMNS, PRIMARY KEY (sale_id))");
		my ($host, $port) = ($shard->host, $shard->port);
		$coord->safe_psql(
			'postgres', qq{
			CREATE SERVER shard_$i FOREIGN DATA WRAPPER postgres_fdw
				OPTIONS (host '$host', port '$port', dbname 'postgres');
			CREATE USER MAPPING FOR CURRENT_USER SERVER shard_$i;
			CREATE FOREIGN TABLE sales_region_$i PARTITION OF sales
				FOR VALUES IN ($i) SERVER shard_$i
				OPTIONS (schema_name 'public', table_name 'sales_region_$i');
		});
		push @shards, $shard;
	}
	return @shards;
}

# A staging table of $rows rows spread over $regions regions, with awkward
# text in the note column.
sub stage_rows
{
	my ($coord, $table, $rows, $regions) = @_;
	$coord->safe_psql(
		'postgres', qq{
		CREATE TABLE $table AS
		SELECT g::bigint AS sale_id, (g % $regions) + 1 AS region_id,
			   ((g % 100000) / 100.0)::numeric(10,2) AS sale_amount, date '2026-11-25' + (g % 30) AS sale_date,
			   CASE WHEN g % 10 = 0 THEN NULL
					ELSE E'note \\t' || g || E'\\n"x" \\\\ ü' END AS note
		FROM generate_series(1, $rows) g;
	});
}

sub shard_count
{
	my ($shard, $i) = @_;
	return $shard->safe_psql('postgres', "SELECT count(*) FROM sales_region_$i");
}

sub ledger_count
{
	my ($shard) = @_;
	return $shard->safe_psql('postgres',
		"SELECT CASE WHEN to_regclass('shardload_ledger.slices') IS NULL THEN 0 "
		  . "ELSE (SELECT count(*) FROM shardload_ledger.slices) END");
}

# Run SQL in a psql of its own, in the background; returns the harness and
# refs to its stdout and stderr.  The script goes in a file: the harness is
# not pumped while it runs, so it could not be fed through stdin.
my $script_no = 0;

sub start_psql
{
	my ($node, $sql) = @_;
	my ($stdout, $stderr) = ('', '');
	my $file = "$PostgreSQL::Test::Utils::tmp_check/script_$$" . '_' . $script_no++ . '.sql';
	unlink $file;
	PostgreSQL::Test::Utils::append_to_file($file, $sql);
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres'), '-f', $file
		],
		'<', \undef, '>', \$stdout, '2>', \$stderr);
	return ($h, \$stdout, \$stderr);
}

# A trigger that sleeps now and then, so a load into this shard lasts a few
# seconds and can be interrupted half way.
sub slow_down_shard
{
	my ($shard, $i, $every, $seconds) = @_;
	$shard->safe_psql(
		'postgres', qq{
		CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
			IF NEW.sale_id % $every = 0 THEN PERFORM pg_sleep($seconds); END IF;
			RETURN NEW;
		END \$\$;
		CREATE TRIGGER slow_insert BEFORE INSERT ON sales_region_$i
			FOR EACH ROW EXECUTE FUNCTION slow_insert();
	});
}

# A function hold() for a trigger that sleeps 4 s on the row noted 'hold',
# so that a load can be caught half way.
sub create_hold_function
{
	my ($shard) = @_;
	$shard->safe_psql(
		'postgres', q{
		CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.note = 'hold' THEN PERFORM pg_sleep(4); END IF;
			RETURN NEW;
		END $$;
	});
}

1;
