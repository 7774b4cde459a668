# bench/lib.sh -- what bench/run.sh and bench/worker.sh share: logging,
# psql as the postgres OS user, the results file, a coordinator and
# NSHARDS shards started under $BENCH_DIR, and the sales schema on them.
#
# Sourced after the script has set PG_BIN, BENCH_DIR, BENCH_OUT, BENCH_KEEP,
# NSHARDS, COORD_PORT, DATA, LOGDIR, RESULTS and BENCH_LOG.  The script
# provides coord_conf (extra postgresql.conf lines of the coordinator) and
# may provide cleanup_hook (run first at exit) and EXTRA_DIR (one more
# directory to create, chown and remove with the data).

# shared_buffers of every server (bench/README.md says why this size)
BENCH_SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-256MB}

SERVERS=(coord)
for ((n = 1; n <= NSHARDS; n++)); do SERVERS+=("shard$n"); done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$BENCH_LOG" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Run a command as the postgres OS user.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_of() {
	case $1 in
		coord) echo "$COORD_PORT" ;;
		shard*) echo $((COORD_PORT + ${1#shard})) ;;
	esac
}

# psql against one server: unaligned, tuples only, stop on error.
# Output goes to stdout; everything psql says on stderr also lands in the log.
pg() {
	local server=$1
	shift
	as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_DIR" \
		-p "$(port_of "$server")" -d postgres "$@" 2> >(tee -a "$BENCH_LOG" >&2)
}

now() { date +%s.%N; }
want() { [[ " $PHASES " == *" $1 "* ]]; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

record() { echo "$1 $2" >>"$RESULTS"; }
# The last value recorded under key, or empty.
get() { awk -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$RESULTS"; }

checkpoint_all() {
	local s
	for s in "${SERVERS[@]}"; do pg "$s" -c 'CHECKPOINT' >/dev/null; done
}

# Empty the shard tables and ledgers.
truncate_shards() {
	local n
	for ((n = 1; n <= NSHARDS; n++)); do
		pg "shard$n" -c "TRUNCATE sales_region_$n" \
			-c "DO \$\$ BEGIN IF to_regclass('shardload_ledger.slices') IS NOT NULL THEN
			        TRUNCATE shardload_ledger.slices; END IF; END \$\$" >/dev/null
	done
}

# ---------------------------------------------------------------- servers

stop_servers() {
	local s
	for s in "${SERVERS[@]}"; do
		if [[ -f $DATA/$s/postmaster.pid ]]; then
			as_pg "$PG_BIN/pg_ctl" -D "$DATA/$s" -m fast -w -t 60 stop >/dev/null 2>&1 ||
				as_pg "$PG_BIN/pg_ctl" -D "$DATA/$s" -m immediate -w stop >/dev/null 2>&1 || true
		fi
	done
}

# At exit: stop the servers, copy logs and results to BENCH_OUT, remove the data.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
	if [[ -d $DATA ]]; then
		stop_servers
		if mkdir -p "$BENCH_OUT" 2>/dev/null; then
			cp -f "$LOGDIR"/* "$RESULTS"* "$BENCH_OUT"/ 2>/dev/null || true
		fi
		if [[ $BENCH_KEEP != 1 ]]; then
			rm -rf "$DATA"
			[[ -z ${EXTRA_DIR:-} ]] || rm -rf "$EXTRA_DIR"
		fi
	fi
	exit "$rc"
}

start_server() {
	# 9>&-: the servers must not hold a run's lock
	as_pg "$PG_BIN/pg_ctl" -D "$DATA/$1" -l "$LOGDIR/$1.log" -w -t 60 start >/dev/null 9>&- ||
		die "could not start $1, see $LOGDIR/$1.log"
}

# initdb and start every server; what is left of an earlier run goes first.
setup_servers() {
	local s port conf
	stop_servers
	rm -rf "$BENCH_DIR"
	mkdir -p "$DATA" "$LOGDIR"
	[[ -z ${EXTRA_DIR:-} ]] || mkdir -p "$EXTRA_DIR"
	: >"$RESULTS"
	: >"$BENCH_LOG"
	if [[ $EUID -eq 0 ]]; then chown -R postgres: "$BENCH_DIR"; fi
	chmod 755 "$BENCH_DIR"

	for s in "${SERVERS[@]}"; do
		port=$(port_of "$s")
		if as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
			die "port $port is already in use"
		fi
		as_pg "$PG_BIN/initdb" -D "$DATA/$s" -U postgres -A trust -E UTF8 \
			--locale=C --no-sync >>"$LOGDIR/initdb.log" 2>&1 ||
			die "initdb of $s failed, see $LOGDIR/initdb.log"
		conf=$DATA/$s/postgresql.conf
		{
			echo "# pg_shardload $(basename "$0")"
			echo "port = $port"
			echo "listen_addresses = '127.0.0.1'"
			echo "unix_socket_directories = '$BENCH_DIR'"
			echo "shared_buffers = $BENCH_SHARED_BUFFERS"
			echo "max_wal_size = 4GB"
			# atomic batches PREPARE on the shards
			echo "max_prepared_transactions = 10"
			if [[ $s == coord ]]; then coord_conf; fi
		} >>"$conf"
	done
	for s in "${SERVERS[@]}"; do
		start_server "$s"
	done
}

# Table sales on the coordinator, list-partitioned by region_id: partition
# n is the foreign table sales_region_n on shard n.
setup_schema() {
	local n
	for ((n = 1; n <= NSHARDS; n++)); do
		pg "shard$n" -c "CREATE TABLE sales_region_$n (
			sale_id bigint PRIMARY KEY,
			region_id int NOT NULL,
			sale_amount numeric(10,2),
			sale_date date NOT NULL,
			note text)"
	done
	pg coord -c 'CREATE EXTENSION pg_shardload CASCADE' -c "
		CREATE TABLE sales (
			sale_id bigint,
			region_id int NOT NULL,
			sale_amount numeric(10,2),
			sale_date date NOT NULL,
			note text) PARTITION BY LIST (region_id)"
	for ((n = 1; n <= NSHARDS; n++)); do
		pg coord -c "CREATE SERVER shard$n FOREIGN DATA WRAPPER postgres_fdw
		                 OPTIONS (host '$BENCH_DIR', port '$(port_of "shard$n")', dbname 'postgres')" \
			-c "CREATE USER MAPPING FOR postgres SERVER shard$n OPTIONS (user 'postgres')" \
			-c "CREATE FOREIGN TABLE sales_region_$n PARTITION OF sales FOR VALUES IN ($n)
			        SERVER shard$n OPTIONS (schema_name 'public', table_name 'sales_region_$n')"
	done
}

# The source rows: sale_id 1..N, regions 1..NSHARDS round robin, a
# 78-character note; a row is about 100 bytes as COPY text.
SOURCE_SQL="SELECT i::bigint AS sale_id, (i % $NSHARDS + 1)::int AS region_id,
        ((i::bigint * 7919) % 1000000 / 100.0)::numeric(10,2) AS sale_amount,
        (date '2024-01-01' + (i % 365)::int) AS sale_date,
        md5(i::text) || left(md5((-i)::text), 46) AS note"
