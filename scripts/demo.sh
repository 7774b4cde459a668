#!/usr/bin/env bash
# Sets up everything and runs a demonstration load: installs PostgreSQL
# (version PG_MAJOR, default 15, Debian 12's) and the build tools from Debian's packages, builds and installs
# pg_shardload, starts a coordinator and three shard servers on this machine
# (unix sockets and 127.0.0.1 only, data in a throwaway folder), shards a
# "sales" table by hand the classic way, loads a batch through pg_shardload,
# then submits it again to show that nothing is loaded twice.
# Run as root on Debian 12 (or on Debian 13 with PG_MAJOR=17).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${PG_SHARDLOAD_DEMO_DIR:-/tmp/pg_shardload_demo}
base_port=${PG_SHARDLOAD_DEMO_PORT:-5701}
export PG_MAJOR=${PG_MAJOR:-15}
bin=/usr/lib/postgresql/$PG_MAJOR/bin
export PG_CONFIG=$bin/pg_config

step() { printf '\n==== %s ====\n' "$*"; }
# from /: the postgres user may not enter the folder this was started from
as_pg() { (cd / && runuser -u postgres -- "$@"); }
psql_on() { local port=$1; shift; as_pg "$bin/psql" -X -q -h "$demo" -p "$port" -d postgres -v ON_ERROR_STOP=1 "$@"; }

step "installing PostgreSQL $PG_MAJOR and building pg_shardload"
"$top/scripts/install-deps.sh"
make -C "$top" -s >/dev/null
make -C "$top" -s install >/dev/null

step "starting a coordinator (port $base_port) and three shards in $demo"
if [ -d "$demo" ]; then
	for d in "$demo"/*/; do
		[ -f "$d/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$d" -m fast stop >/dev/null 2>&1 || true
	done
	rm -rf "$demo"
fi
mkdir -p "$demo"
chown postgres:postgres "$demo"
names=(coordinator shard1 shard2 shard3)
for i in 0 1 2 3; do
	name=${names[$i]}
	port=$((base_port + i))
	as_pg "$bin/initdb" -D "$demo/$name" -A trust -E UTF8 --locale=C >/dev/null
	cat >>"$demo/$name/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$demo'
CONF
	# the demo runs its batch by hand; shardload.database = 'postgres' would
	# let the background worker run it as soon as it is submitted
	[ "$name" = coordinator ] &&
		printf "shared_preload_libraries = 'pg_shardload'\nshardload.database = ''\n" \
			>>"$demo/$name/postgresql.conf"
	as_pg "$bin/pg_ctl" -D "$demo/$name" -l "$demo/$name.log" -w start >/dev/null
	echo "  $name: port $port, log $demo/$name.log"
done
cat >"$demo/stop.sh" <<STOP
#!/usr/bin/env bash
cd /
for d in $demo/coordinator $demo/shard1 $demo/shard2 $demo/shard3; do
	runuser -u postgres -- $bin/pg_ctl -D "\$d" -m fast stop
done
STOP
chmod +x "$demo/stop.sh"

step "the classic hand-made sharding: one foreign partition per region"
for r in 1 2 3; do
	psql_on $((base_port + r)) -c "CREATE TABLE sales_region_$r (sale_id bigint PRIMARY KEY,
		region_id int NOT NULL, sale_amount numeric(10,2), sale_date date NOT NULL, note text)"
done
psql_on "$base_port" <<SQL
CREATE EXTENSION pg_shardload CASCADE;
CREATE TABLE sales (sale_id bigint, region_id int NOT NULL, sale_amount numeric(10,2),
					sale_date date NOT NULL, note text) PARTITION BY LIST (region_id);
$(for r in 1 2 3; do cat <<PART
CREATE SERVER shard_$r FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$demo', port '$((base_port + r))', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard_$r;
CREATE FOREIGN TABLE sales_region_$r PARTITION OF sales FOR VALUES IN ($r)
	SERVER shard_$r OPTIONS (schema_name 'public', table_name 'sales_region_$r');
PART
done)
CREATE TABLE staging_sales AS
SELECT g AS sale_id, g % 3 + 1 AS region_id, (random() * 1000)::numeric(10,2) AS sale_amount,
	   date '2026-11-25' - (g % 30) AS sale_date,
	   CASE WHEN g % 50 = 0 THEN NULL ELSE E'order ' || g || E' \t "gift" \\\\ ünïcode' END AS note
FROM generate_series(1, 300000) g;
SQL
psql_on "$base_port" -c '\d+ sales'

step "loading 300,000 rows as one batch"
psql_on "$base_port" <<'SQL'
\timing on
SELECT shardload.submit('sales', 'sales-2026-11-25-part-0001',
						$$SELECT * FROM staging_sales$$) AS batch_id \gset
CALL shardload.run(:batch_id);
\timing off
SELECT batch_id, target, batch_key, state, attempts, rows_total, rows_loaded, finished_at - created_at AS took
FROM shardload.batches;
SELECT partition, shard, rows, state FROM shardload.slices ORDER BY partition;
SQL

show_counts() {
	for r in 1 2 3; do
		printf '  shard %s (port %s): ' "$r" $((base_port + r))
		psql_on $((base_port + r)) -At -c "SELECT count(*) || ' rows in sales_region_$r, ' || count(DISTINCT sale_id) || ' distinct ids' FROM sales_region_$r"
	done
}
step "rows on each shard"
show_counts

step "the ETL script runs again: same key, same rows"
psql_on "$base_port" <<'SQL'
SELECT shardload.submit('sales', 'sales-2026-11-25-part-0001',
						$$SELECT * FROM staging_sales$$) AS batch_id \gset
CALL shardload.run(:batch_id);
SELECT batch_id, state, attempts, rows_loaded FROM shardload.batches;
SQL
step "rows on each shard after the re-run: nothing was loaded twice"
show_counts

cat <<DONE

The servers are still running:
  coordinator: psql -h $demo -p $base_port -U postgres postgres   (as the postgres user)
  shards:      ports $((base_port + 1))-$((base_port + 3))
Stop them with:  $demo/stop.sh
DONE
