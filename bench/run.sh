#!/usr/bin/env bash
#
# bench/run.sh -- pg_shardload throughput and memory benchmark.
#
# Starts a coordinator and three shards (four throwaway PostgreSQL 15
# instances under $BENCH_DIR, ports 5601-5604), loads the same rows several
# ways, and prints rows/s, the ratio to "the limit" (a direct parallel COPY
# into the three shards) and PASS/MISS against the targets of the issue.
# A MISS is informational: the script only exits non-zero if it cannot run.
#
# Run as root (server processes and psql run as the "postgres" OS user), or
# as postgres itself.  pg_shardload must be installed (make install).
# See bench/README.md for what is measured and how.
#
# Environment (all optional):
#   BENCH_DIR     throwaway directory, removed at start  (/tmp/pg_shardload_bench)
#   PG_BIN        PostgreSQL binaries                    (/usr/lib/postgresql/15/bin)
#   BENCH_PORT    first port; the shards use the next 3  (5601)
#   BENCH_SHARED_BUFFERS  shared_buffers of every server    (256MB)
#   ROWS          rows of the main data set              (1000000)
#   SLOW_ROWS     rows for the slow row-by-row fdw paths (100000)
#   MEM_SMALL     rows of the small memory run           (100000)
#   MEM_MID       rows of the middle run (per-row cost)  (1000000)
#   MEM_LARGE     rows of the large memory run           (5000000)
#   REPEAT        runs of each fast phase; best is kept  (5)
#                 (the 1M and 5M runs take turns REPEAT times)
#   PHASES        which phases to run                    (limit run atomic e2e copy rej fdw mem)
#   BENCH_KEEP    1: leave the servers' data dirs behind (0)
#   BENCH_OUT     where results and logs are copied      (<repo>/bench/out)

set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/tmp/pg_shardload_bench}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_PORT=${BENCH_PORT:-5601}
ROWS=${ROWS:-1000000}
SLOW_ROWS=${SLOW_ROWS:-100000}
MEM_SMALL=${MEM_SMALL:-100000}
MEM_MID=${MEM_MID:-1000000}
MEM_LARGE=${MEM_LARGE:-5000000}
REPEAT=${REPEAT:-5}
PHASES=${PHASES:-limit run atomic e2e copy rej fdw mem}
BENCH_KEEP=${BENCH_KEEP:-0}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_OUT=${BENCH_OUT:-$SCRIPT_DIR/out}

# Targets from the issue.
TARGET_LOAD=0.8        # load phase / limit
TARGET_ATOMIC=0.9      # atomic load phase / plain load phase
TARGET_E2E=0.8         # end to end (load, COPY path) / limit
TARGET_FDW=3.5         # end to end / fastest path through the foreign partitions
TARGET_MEM_MB=64       # peak(MEM_LARGE) - peak(MEM_SMALL)
TARGET_PER_ROW=1.2     # cost per row at MEM_LARGE / at MEM_MID (same generated source)
TARGET_REJ=2.0         # time with 1% bad rows / time of the clean batch, on_error => 'reject'

# Rows of the reject phase: every REJ_EVERY-th sale_id is bad (1%).
REJ_EVERY=100

NSHARDS=3
COORD_PORT=$BENCH_PORT
DATA=$BENCH_DIR/data
LOGDIR=$BENCH_DIR/log
FILES=$BENCH_DIR/files
RESULTS=$BENCH_DIR/results.txt
BENCH_LOG=$LOGDIR/bench.log
# shared helpers: log, pg, record/get, the servers and the sales schema
source "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- helpers


# Keep the larger (max) or smaller (min) of the values recorded under key.
record_extreme() {
	local op=$1 key=$2 value=$3 old
	old=$(get "$key")
	if [[ -z $old ]] || awk -v a="$value" -v b="$old" -v op="$op" \
		'BEGIN { exit !(op == "max" ? a + 0 > b + 0 : a + 0 < b + 0) }'; then
		record "$key" "$value"
	fi
}

# Keep the faster of several runs of a phase: key.secs is the best time.
record_time() {
	local key=$1 rows=$2 secs=$3
	record_extreme min "$key.secs" "$secs"
	record "$key.rows" "$rows"
	log "  $key: $rows rows in ${secs}s ($(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }') rows/s)"
}

# Empty the shard tables and ledgers, and the coordinator's batch catalog
# (the payload of earlier runs), so every run starts from the same state.
reset_all() {
	truncate_shards
	pg coord -c 'TRUNCATE shardload.batch CASCADE' >/dev/null 2>&1
	checkpoint_all
}

# Check that shard n holds exactly the expected rows: "$1" is a space
# separated list of expected counts for shards 1..N.
verify_shards() {
	local expected n got
	read -r -a expected <<<"$1"
	for ((n = 1; n <= NSHARDS; n++)); do
		got=$(pg "shard$n" -c "SELECT count(*) FROM sales_region_$n")
		if [[ $got != "${expected[n - 1]}" ]]; then
			log "  VERIFY FAILED: shard$n holds $got rows, expected ${expected[n - 1]}"
			return 1
		fi
	done
}

# Expected rows per region of staging_sales among sale_id <= limit, and
# matching the condition "$2" if given.
expected_counts() {
	pg coord -c "SELECT string_agg(coalesce(c, 0)::text, ' ' ORDER BY r)
	             FROM generate_series(1, $NSHARDS) r
	             LEFT JOIN (SELECT region_id, count(*) c FROM staging_sales
	                        WHERE sale_id <= $1 AND (${2:-true}) GROUP BY region_id) s ON s.region_id = r"
}

# Check a batch succeeded with every row loaded; print its details if not.
verify_batch() {
	local bid=$1 rows=$2 st
	st=$(pg coord -c "SELECT state || ' ' || rows_total || ' ' || rows_loaded
	                  FROM shardload.batches WHERE batch_id = $bid")
	if [[ $st != "succeeded $rows $rows" ]]; then
		log "  VERIFY FAILED: batch $bid is '$st' (want 'succeeded $rows $rows')"
		pg coord -c "SELECT * FROM shardload.attempts WHERE batch_id = $bid" \
			-c "SELECT * FROM shardload.slices WHERE batch_id = $bid" | tee -a "$BENCH_LOG" >&2 || true
		return 1
	fi
}

# Run a phase in a subshell with errexit on; a failing phase is recorded
# and reported, and the benchmark goes on with the next one.
phase() {
	local name=$1 rc
	shift
	log "phase: $name"
	set +e
	(
		set -e
		"$@"
	)
	rc=$?
	set -e
	if [[ $rc -ne 0 ]]; then
		log "  phase $name FAILED (exit $rc); see $BENCH_LOG and $LOGDIR/*.log"
		record "failed.$name" 1
	fi
}

# ---------------------------------------------------------------- servers


SAMPLER_PID=
cleanup_hook() {
	if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
}
EXTRA_DIR=$FILES

# no background scheduler: it would run the submitted batches before the timed CALL
coord_conf() {
	echo "shared_preload_libraries = 'pg_shardload'"
	echo "shardload.database = ''"
}




setup_data() {
	local n
	pg coord -c "CREATE TABLE staging_sales AS $SOURCE_SQL FROM generate_series(1, $ROWS) i" \
		-c 'ALTER TABLE staging_sales ADD PRIMARY KEY (sale_id)' \
		-c 'VACUUM ANALYZE staging_sales'
	# per-region COPY text files for the limit, all rows for the parent COPY
	for ((n = 1; n <= NSHARDS; n++)); do
		pg coord -c "COPY (SELECT * FROM staging_sales WHERE region_id = $n ORDER BY sale_id)
		             TO '$FILES/region_$n.copy'"
	done
	pg coord -c "COPY (SELECT * FROM staging_sales WHERE sale_id <= $SLOW_ROWS ORDER BY sale_id)
	             TO '$FILES/slow.copy'"
	# every row, in one file, for the COPY path
	pg coord -c "COPY (SELECT * FROM staging_sales ORDER BY sale_id) TO '$FILES/all.copy'"
	pg coord -c "SELECT shardload.create_inbox('sales')" \
		-c "SELECT shardload.create_inbox('sales', 'sales_pgloader', batch_key => 'bench-pgloader-%n')" \
		-c "ALTER FOREIGN TABLE sales_pgloader OPTIONS (ADD load 'now')" >/dev/null
	record avg_row_bytes "$(cat "$FILES"/region_*.copy | wc -c | awk -v r="$ROWS" '{ printf "%.1f", $1 / r }')"
	log "  $ROWS rows, $(get avg_row_bytes) bytes per row as COPY text," \
		"staging table $(pg coord -c "SELECT pg_size_pretty(pg_table_size('staging_sales'))")"
}

# The text-typed staging of the reject phase: the rows of staging_sales with
# every column as text.  staging_text is clean; staging_text_bad is the same
# except that sale_amount is 'not-a-number' on every REJ_EVERY-th sale_id
# (1%, spread evenly), which pg_shardload cannot parse as numeric.
setup_rej_data() {
	local t amount
	for t in staging_text staging_text_bad; do
		amount="sale_amount::text"
		if [[ $t == staging_text_bad ]]; then
			amount="CASE WHEN sale_id % $REJ_EVERY = 0 THEN 'not-a-number' ELSE sale_amount::text END"
		fi
		pg coord -c "CREATE TABLE $t AS
		                 SELECT sale_id::text AS sale_id, region_id::text AS region_id,
		                        $amount AS sale_amount, sale_date::text AS sale_date, note
		                 FROM staging_sales ORDER BY sale_id" \
			-c "VACUUM ANALYZE $t"
	done
	REJ_BAD=$((ROWS / REJ_EVERY))
	REJ_LIMIT=$((2 * REJ_BAD > 0 ? 2 * REJ_BAD : 1))
	EXPECT_GOOD=$(expected_counts "$ROWS" "sale_id % $REJ_EVERY <> 0")
	log "  text staging: staging_text $(pg coord -c "SELECT pg_size_pretty(pg_table_size('staging_text'))")," \
		"staging_text_bad $(pg coord -c "SELECT pg_size_pretty(pg_table_size('staging_text_bad'))")" \
		"with $REJ_BAD bad rows; reject_limit $REJ_LIMIT; good rows per region: $EXPECT_GOOD"
}

# Check that the shards hold exactly the rows of staging_sales that match
# the condition "$1", values included: per shard, the count and the sums of
# sale_id, sale_amount, sale_date and a hash of note must equal those of
# staging_sales' rows of that region.
verify_shard_rows() {
	local cond=$1 n want got
	local fp="count(*) || ' ' || coalesce(sum(sale_id), 0) || ' ' || coalesce(sum(sale_amount), 0)
	          || ' ' || coalesce(sum(sale_date - date '2024-01-01'), 0) || ' ' || coalesce(sum(hashtext(note)), 0)"
	for ((n = 1; n <= NSHARDS; n++)); do
		want=$(pg coord -c "SELECT $fp FROM staging_sales WHERE region_id = $n AND ($cond)")
		got=$(pg "shard$n" -c "SELECT $fp FROM sales_region_$n")
		if [[ $got != "$want" ]]; then
			log "  VERIFY FAILED: shard$n holds '$got' (count, sums), expected '$want'"
			return 1
		fi
	done
}


# ---------------------------------------------------------------- phases

# 3. The limit: COPY FROM STDIN into each shard directly, all at once.
phase_limit() {
	local n t0 t1 pids=() p
	reset_all
	t0=$(now)
	for ((n = 1; n <= NSHARDS; n++)); do
		pg "shard$n" -c "COPY sales_region_$n FROM STDIN" <"$FILES/region_$n.copy" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	t1=$(now)
	verify_shards "$EXPECT_ALL"
	record_time limit "$ROWS" "$(secs_between "$t0" "$t1")"
}

# 1. pg_shardload's load phase: submit, checkpoint, then time CALL run;
# with atomic=true (1c), the same for an atomic batch (two-phase commit).
phase_shardload_run() {
	local key=$1 atomic=${2:-false} bid t0 t1 t2 name=run
	[[ $atomic == true ]] && name=run_atomic
	reset_all
	t0=$(now)
	bid=$(pg coord -c "SELECT shardload.submit('sales', '$key', \$\$SELECT * FROM staging_sales\$\$, atomic => $atomic)")
	t1=$(now)
	[[ $atomic == true ]] || record_time submit "$ROWS" "$(secs_between "$t0" "$t1")"
	checkpoint_all
	t1=$(now)
	pg coord -c "CALL shardload.run($bid)"
	t2=$(now)
	verify_batch "$bid" "$ROWS"
	verify_shards "$EXPECT_ALL"
	[[ $atomic == true ]] || record payload_bytes "$(pg coord -c "SELECT payload_bytes FROM shardload.batches WHERE batch_id = $bid")"
	record_time "$name" "$ROWS" "$(secs_between "$t1" "$t2")"
}

# 2. End to end: CALL shardload.load (submit, commit, run) in one call.
phase_shardload_e2e() {
	local key=$1 bid t0 t1
	reset_all
	t0=$(now)
	bid=$(pg coord -c "CALL shardload.load('sales', '$key', \$\$SELECT * FROM staging_sales\$\$)")
	t1=$(now)
	verify_batch "$bid" "$ROWS"
	verify_shards "$EXPECT_ALL"
	record_time e2e "$ROWS" "$(secs_between "$t0" "$t1")"
}

# 8. The COPY path: a COPY client (psql) sends every row into the inbox
# with shardload.inbox_load = now, so that the COPY loads the batch before it
# returns (copy_path); then the same with the COPY alone (copy_in) and a CALL
# shardload.run after it (copy_two).
phase_copy_path() {
	local key=$1 bid t0 t1 t2
	reset_all
	t0=$(now)
	pg coord -c "SET shardload.inbox_load = now" -c "SET shardload.batch_key = '$key'" \
		-c "COPY sales_inbox FROM STDIN" <"$FILES/all.copy" >/dev/null
	t1=$(now)
	bid=$(pg coord -c "SELECT batch_id FROM shardload.batches WHERE batch_key = '$key'")
	verify_batch "$bid" "$ROWS"
	verify_shards "$EXPECT_ALL"
	record_time copy_path "$ROWS" "$(secs_between "$t0" "$t1")"

	reset_all
	t0=$(now)
	pg coord -c "SET shardload.batch_key = '$key-two'" -c "COPY sales_inbox FROM STDIN" <"$FILES/all.copy" >/dev/null
	t1=$(now)
	bid=$(pg coord -c "SELECT batch_id FROM shardload.batches WHERE batch_key = '$key-two'")
	pg coord -c "CALL shardload.run($bid)"
	t2=$(now)
	verify_batch "$bid" "$ROWS"
	verify_shards "$EXPECT_ALL"
	record_time copy_in "$ROWS" "$(secs_between "$t0" "$t1")"
	record_time copy_two "$ROWS" "$(secs_between "$t0" "$t2")"
}

# 6. The cost of rejecting rows: CALL shardload.load (submit, commit, run)
# with on_error => 'reject' from the text-typed staging, clean (rej_clean) or
# with 1% bad rows (rej_bad).  The submit part is taken from the server's
# clock: the batch's created_at to the start of its first attempt.
phase_reject() {
	local key=$1 table=$2 bkey=$3 bid t0 t1 want st old secs got
	if [[ $table == staging_text_bad ]]; then
		want="succeeded $ROWS $((ROWS - REJ_BAD)) $REJ_BAD"
	else
		want="succeeded $ROWS $ROWS 0"
	fi
	reset_all
	t0=$(now)
	# the NOTICE "N of M rows of batch B were rejected" is left out; the
	# counts are checked and logged below
	bid=$(pg coord -c 'SET client_min_messages = warning' \
		-c "CALL shardload.load('sales', '$bkey', \$\$SELECT * FROM $table\$\$,
		                        on_error => 'reject', reject_limit => $REJ_LIMIT)")
	t1=$(now)
	st=$(pg coord -c "SELECT state || ' ' || rows_total || ' ' || rows_loaded || ' ' || rows_rejected
	                  FROM shardload.batches WHERE batch_id = $bid")
	if [[ $st != "$want" ]]; then
		log "  VERIFY FAILED: batch $bid is '$st' (state rows_total rows_loaded rows_rejected; want '$want')"
		pg coord -c "SELECT * FROM shardload.attempts WHERE batch_id = $bid" \
			-c "SELECT * FROM shardload.slices WHERE batch_id = $bid" \
			-c "SELECT line, sqlstate, message FROM shardload.rejects WHERE batch_id = $bid ORDER BY line LIMIT 5" |
			tee -a "$BENCH_LOG" >&2 || true
		return 1
	fi
	if [[ $table == staging_text_bad ]]; then
		verify_shards "$EXPECT_GOOD"
		verify_shard_rows "sale_id % $REJ_EVERY <> 0"
		# every reject is one of the bad rows, each once, for the bad amount
		got=$(pg coord -c "SELECT count(*) || ' ' || count(DISTINCT id) FILTER (WHERE id % $REJ_EVERY = 0
		                          AND sqlstate = '22P02' AND message LIKE '%\"sale_amount\"%not-a-number%')
		                   FROM (SELECT (regexp_match(raw_row, '^(\d+)\t'))[1]::bigint AS id, sqlstate, message
		                         FROM shardload.rejects WHERE batch_id = $bid) r")
		if [[ $got != "$REJ_BAD $REJ_BAD" ]]; then
			log "  VERIFY FAILED: shardload.rejects of batch $bid: '$got' (rows, bad rows for sale_amount), want '$REJ_BAD $REJ_BAD'"
			pg coord -c "SELECT line, sqlstate, message, raw_row FROM shardload.rejects
			             WHERE batch_id = $bid ORDER BY line LIMIT 5" | tee -a "$BENCH_LOG" >&2 || true
			return 1
		fi
	else
		verify_shards "$EXPECT_ALL"
		verify_shard_rows true
	fi
	secs=$(secs_between "$t0" "$t1")
	old=$(get "$key.secs")
	record_time "$key" "$ROWS" "$secs"
	got=$(pg coord -c "SELECT round(extract(epoch FROM min(a.started_at) - b.created_at), 3)
	                   FROM shardload.batches b JOIN shardload.attempts a USING (batch_id)
	                   WHERE batch_id = $bid GROUP BY b.created_at")
	if [[ $(get "$key.secs") == "$secs" && $old != "$secs" ]]; then record "$key.submit_secs" "$got"; fi
	log "  batch $bid: $st; submit ${got}s of it"
}

# 4. INSERT ... SELECT through the foreign partitions.
phase_fdw_insert() {
	local key=$1 rows=$2 expect=$3 t0 t1
	reset_all
	t0=$(now)
	pg coord -c "INSERT INTO sales SELECT * FROM staging_sales WHERE sale_id <= $rows"
	t1=$(now)
	verify_shards "$expect"
	record_time "$key" "$rows" "$(secs_between "$t0" "$t1")"
}

# 5. COPY into the partitioned parent (row by row through postgres_fdw).
phase_fdw_copy() {
	local t0 t1
	reset_all
	t0=$(now)
	pg coord -c 'COPY sales FROM STDIN' <"$FILES/slow.copy"
	t1=$(now)
	verify_shards "$EXPECT_SLOW"
	record_time fdw_copy "$SLOW_ROWS" "$(secs_between "$t0" "$t1")"
}

# pgloader (Debian's package) loading the same COPY-text file into the
# parent, as a user would without pg_shardload: its rows reach the shards
# through postgres_fdw.  Skipped (recorded as failed) without pgloader.
phase_pgloader() {
	local t0 t1
	command -v pgloader >/dev/null || { log "  pgloader is not installed (apt-get install pgloader)"; return 1; }
	reset_all
	t0=$(now)
	pgloader --type copy --field "sale_id,region_id,sale_amount,sale_date,note" \
		--logfile "$LOGDIR/pgloader.log" --root-dir "$BENCH_DIR/pgloader" \
		"$FILES/slow.copy" "postgresql://postgres@127.0.0.1:$COORD_PORT/postgres?tablename=sales" \
		>>"$LOGDIR/pgloader.log" 2>&1 || { log "  pgloader failed, see $LOGDIR/pgloader.log"; return 1; }
	t1=$(now)
	verify_shards "$EXPECT_SLOW"
	record_time pgloader "$SLOW_ROWS" "$(secs_between "$t0" "$t1")"
}

# 9. pgloader through the COPY path: the same file as 7., into the inbox
# (keys "bench-pgloader-%n", one batch per COPY pgloader sends, option load
# 'now': each loaded by the COMMIT of pgloader's transaction); a batch left
# pending would be run after.
phase_pgloader_inbox() {
	local t0 t1 bid
	command -v pgloader >/dev/null || { log "  pgloader is not installed (apt-get install pgloader)"; return 1; }
	reset_all
	t0=$(now)
	pgloader --type copy --field "sale_id,region_id,sale_amount,sale_date,note" \
		--with "batch rows = 50000" --set "client_min_messages='warning'" \
		--logfile "$LOGDIR/pgloader_inbox.log" --root-dir "$BENCH_DIR/pgloader" \
		"$FILES/slow.copy" "postgresql://postgres@127.0.0.1:$COORD_PORT/postgres?tablename=sales_pgloader" \
		>>"$LOGDIR/pgloader_inbox.log" 2>&1 || { log "  pgloader failed, see $LOGDIR/pgloader_inbox.log"; return 1; }
	for bid in $(pg coord -c "SELECT batch_id FROM shardload.batches WHERE batch_key LIKE 'bench-pgloader-%' AND state <> 'succeeded' ORDER BY 1"); do
		pg coord -c "CALL shardload.run($bid)"
	done
	t1=$(now)
	verify_shards "$EXPECT_SLOW"
	log "  pgloader sent $(pg coord -c "SELECT count(*) FROM shardload.batches WHERE batch_key LIKE 'bench-pgloader-%'") batches"
	record_time pgloader_inbox "$SLOW_ROWS" "$(secs_between "$t0" "$t1")"
}

set_batch_size() {
	local n
	for ((n = 1; n <= NSHARDS; n++)); do
		if [[ $1 == default ]]; then
			pg coord -c "ALTER SERVER shard$n OPTIONS (DROP batch_size)"
		else
			pg coord -c "ALTER SERVER shard$n OPTIONS (ADD batch_size '$1')"
		fi
	done
}

# The value of "name|value" line $1 of psql output file $2.
field() { grep -o "^$1|[0-9.]*" "$2" | cut -d'|' -f2; }

# CPU time of the whole machine (user, nice, system, irq, softirq; not
# idle, iowait or steal) in ticks of 1/100 s, from /proc/stat: beside the
# seconds, a measure of work done that other tenants of the host do not
# stretch.
MACHINE_CPU_SQL_EXPR="(SELECT f[2]::bigint + f[3]::bigint + f[4]::bigint + f[7]::bigint + f[8]::bigint
	FROM regexp_split_to_array(split_part(pg_read_file('/proc/stat'), E'\\n', 1), '\\s+') f)"
MACHINE_CPU_SQL="SELECT $MACHINE_CPU_SQL_EXPR"

# Peak memory of the coordinator backend doing submit + run of rows rows.
# VmHWM (kernel's peak RSS, includes shared buffers touched) and RssShmem
# are read by the backend itself at the end; a sampler polls the private
# (anonymous) RSS every 20 ms while it works.
phase_memory() {
	local tag=$1 rows=$2 app="shardload_bench_mem_$1" pid="" i t0 t1 out
	reset_all
	out=$LOGDIR/mem_$tag.out
	PGAPPNAME=$app pg coord -v ON_ERROR_STOP=1 >"$out" <<-EOF &
		SELECT pg_sleep(1);
		$MACHINE_CPU_SQL AS c0 \gset
		SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
		SELECT shardload.submit('sales', 'mem-$tag', \$\$$SOURCE_SQL FROM generate_series(1, $rows) i\$\$) AS bid \gset
		SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
		$MACHINE_CPU_SQL AS c1 \gset
		CALL shardload.run(:bid);
		SELECT 'secs', round(extract(epoch FROM clock_timestamp()) - :t0, 3);
		SELECT 'submit_secs', round(:t1 - :t0, 3);
		SELECT 'run_secs', round(extract(epoch FROM clock_timestamp()) - :t1, 3);
		SELECT 'submit_cpu', round((:c1 - :c0) / 100.0, 2);
		SELECT 'run_cpu', round(($MACHINE_CPU_SQL_EXPR - :c1) / 100.0, 2);
		SELECT 'batch', state || ' ' || rows_total || ' ' || rows_loaded FROM shardload.batches WHERE batch_id = :bid;
		SELECT 'bid', :bid;
		SELECT m[1], m[2] FROM regexp_matches(pg_read_file('/proc/self/status'),
		                                      '(VmHWM|VmRSS|RssAnon|RssFile|RssShmem):\s+(\d+) kB', 'g') m;
	EOF
	local psql_pid=$!
	for ((i = 0; i < 100; i++)); do
		pid=$(pg coord -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'")
		[[ -n $pid ]] && break
		sleep 0.05
	done
	[[ -n $pid ]] || { log "  could not find the backend of $app"; wait "$psql_pid" || true; return 1; }
	sample_anon "$pid" >"$LOGDIR/mem_$tag.sampled" &
	SAMPLER_PID=$!
	wait "$psql_pid"
	wait "$SAMPLER_PID" || true
	SAMPLER_PID=
	local k v anon rss
	while IFS='|' read -r k v; do
		case $k in
			# of several runs, the largest memory and the shortest times
			VmHWM | VmRSS | RssAnon | RssFile | RssShmem) record_extreme max "mem_$tag.$k" "$v" ;;
			secs | submit_secs | run_secs | submit_cpu | run_cpu) record_extreme min "mem_$tag.$k" "$v" ;;
			batch) [[ $v == "succeeded $rows $rows" ]] || { log "  VERIFY FAILED: batch is '$v'"; return 1; } ;;
		esac
	done <"$out"
	read -r anon rss <"$LOGDIR/mem_$tag.sampled"
	record_extreme max "mem_$tag.peak_anon" "$anon"
	record_extreme max "mem_$tag.peak_rss_sampled" "$rss"
	record "mem_$tag.rows" "$rows"
	log "  $tag: $rows rows, submit $(field submit_secs "$out")s, run $(field run_secs "$out")s" \
		"(CPU of the machine: $(field submit_cpu "$out")s, $(field run_cpu "$out")s);" \
		"sampled peaks: RssAnon $anon kB, VmRSS $rss kB"
}

# Largest RssAnon and VmRSS (kB) of process $1 until it exits, as
# "anon rss"; no forks in the loop.
sample_anon() {
	local pid=$1 max_anon=0 max_rss=0 k v _
	while [[ -r /proc/$pid/status ]]; do
		while read -r k v _; do
			case $k in
				VmRSS:) ((v > max_rss)) && max_rss=$v ;;
				RssAnon:)
					((v > max_anon)) && max_anon=$v
					break
					;;
			esac
		done <"/proc/$pid/status" 2>/dev/null || break
		sleep 0.02
	done
	echo "$max_anon $max_rss"
}

# ---------------------------------------------------------------- report

rate() { awk -v r="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
info() { if [[ $1 == - ]]; then echo n/a; else echo info; fi; }
# Memory-phase figure $1 per row at MEM_LARGE rows / per row at MEM_MID rows.
per_row_ratio() { awk -v m="$(get "mem_mid.$1")" -v mr="$MEM_MID" -v l="$(get "mem_large.$1")" -v lr="$MEM_LARGE" \
	'BEGIN { if (m > 0 && l > 0) printf "%.2f", (l / lr) / (m / mr); else print "-" }'; }
verdict() { awk -v a="$1" -v t="$2" -v op="$3" 'BEGIN {
	if (a == "" || a == "-") { print "n/a"; exit }
	ok = (op == "ge") ? (a + 0 >= t + 0) : (a + 0 <= t + 0)
	print ok ? "PASS" : "MISS" }'; }

report() {
	local lim_rate key fkey label rows secs r fastest_key="" fastest=0
	lim_rate=$(rate "$(get limit.rows)" "$(get limit.secs)")
	{
		echo
		echo "pg_shardload benchmark -- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $("$PG_BIN/postgres" --version)"
		echo "rows of ~$(get avg_row_bytes) bytes (COPY text), 3 regions, 1 coordinator + $NSHARDS shards on this host;"
		echo "all servers: shared_buffers=$BENCH_SHARED_BUFFERS, max_wal_size=4GB, other settings default; best of $REPEAT run(s)"
		echo
		printf '%-52s %9s %9s %10s %9s\n' phase rows seconds rows/s vs_limit
		printf '%-52s %9s %9s %10s %9s\n' ---- ---- ------- ------ --------
		for key in limit run run_atomic submit e2e split_e2e copy_path copy_two copy_in rej_clean rej_clean_submit rej_bad rej_bad_submit ref_e2e \
			fdw_insert_bs1 fdw_insert_bs1000 fdw_copy pgloader pgloader_inbox; do
			case $key in
				limit) label="3. limit: direct COPY into the 3 shards in parallel" ;;
				run) label="1. pg_shardload load phase (CALL shardload.run)" ;;
				run_atomic) label="1c. load phase of an atomic batch (2PC)" ;;
				submit) label="   pg_shardload submit alone" ;;
				e2e) label="2. pg_shardload end to end (CALL shardload.load)" ;;
				split_e2e) label="   pg_shardload submit + run (sum of the above)" ;;
				fdw_insert_bs1) label="4a. INSERT..SELECT via postgres_fdw, batch_size 1" ;;
				fdw_insert_bs1000) label="4b. INSERT..SELECT via postgres_fdw, batch_size 1000" ;;
				fdw_copy) label="5. COPY into the parent via postgres_fdw" ;;
				pgloader) label="7. pgloader into the parent (via postgres_fdw)" ;;
				copy_path) label="8. COPY path: one COPY, inbox_load = now" ;;
				copy_two) label="   COPY into the inbox, then CALL run" ;;
				copy_in) label="   of which COPY into the inbox" ;;
				pgloader_inbox) label="9. pgloader through the COPY path (inbox + run)" ;;
				rej_clean) label="6a. end to end, on_error reject, clean text rows" ;;
				rej_bad) label="6b. end to end, on_error reject, 1% bad text rows" ;;
				rej_*_submit) label="    of which submit (server clock)" ;;
				ref_e2e) label="    for reference: 2. (on_error stop, typed rows)" ;;
			esac
			fkey=$key
			case $key in
				split_e2e)
					rows=$(get run.rows)
					secs=$(awk -v a="$(get submit.secs)" -v b="$(get run.secs)" 'BEGIN { if (a != "" && b != "") printf "%.3f", a + b }')
					;;
				rej_*_submit)
					fkey=${key%_submit}
					rows=$(get "$fkey.rows")
					secs=$(get "$fkey.submit_secs")
					;;
				ref_e2e)
					want rej || continue
					fkey=e2e
					rows=$(get e2e.rows)
					secs=$(get e2e.secs)
					;;
				*)
					rows=$(get "$key.rows")
					secs=$(get "$key.secs")
					;;
			esac
			if [[ -n $(get "failed.$fkey") ]]; then
				printf '%-52s %9s\n' "$label" "FAILED"
				continue
			fi
			if [[ -z $secs ]]; then
				printf '%-52s %9s\n' "$label" "-"
				continue
			fi
			r=$(rate "$rows" "$secs")
			printf '%-52s %9s %9s %10s %9s\n' "$label" "$rows" "$secs" "$r" "$(ratio "$r" "$lim_rate")"
			case $key in fdw_*)
				if ((r > fastest)); then fastest=$r fastest_key=$key; fi ;;
			esac
		done

		local run_rate e2e_rate a b m
		run_rate=$(rate "$(get run.rows)" "$(get run.secs)")
		e2e_rate=$(rate "$(get e2e.rows)" "$(get e2e.secs)")
		echo
		echo "peak memory of the coordinator backend, submit + run (kB; the largest of the runs, seconds: the best)"
		printf '%-40s %12s %12s %12s %12s\n' "" "$MEM_SMALL rows" "$MEM_MID rows" "$MEM_LARGE rows" "large-small"
		for key in VmHWM peak_rss_sampled RssShmem RssFile peak_anon secs submit_secs run_secs submit_cpu run_cpu; do
			case $key in
				VmHWM) label="VmHWM (kernel's peak RSS, all kinds)" ;;
				peak_rss_sampled) label="  peak VmRSS seen by the 20ms sampler" ;;
				RssShmem) label="  RssShmem at the end (shared buffers)" ;;
				RssFile) label="  RssFile at the end (libraries, LLVM JIT)" ;;
				peak_anon) label="  peak RssAnon (private heap, sampled)" ;;
				secs) label="seconds, submit + run" ;;
				submit_secs) label="  seconds, submit" ;;
				run_secs) label="  seconds, run" ;;
				submit_cpu) label="CPU seconds of the machine, submit" ;;
				run_cpu) label="CPU seconds of the machine, run" ;;
			esac
			a=$(get "mem_small.$key")
			m=$(get "mem_mid.$key")
			b=$(get "mem_large.$key")
			if [[ $key == *secs || $key == *cpu ]]; then
				printf '%-40s %12.2f %12.2f %12.2f\n' "$label" "${a:-0}" "${m:-0}" "${b:-0}"
				continue
			fi
			printf '%-40s %12s %12s %12s %12s\n' "$label" "${a:--}" "${m:--}" "${b:--}" \
				"$(awk -v a="$a" -v b="$b" 'BEGIN { if (a != "" && b != "") printf "%.0f", b - a; else print "-" }')"
		done
		local hwm_diff anon_diff
		hwm_diff=$(awk -v a="$(get mem_small.VmHWM)" -v b="$(get mem_large.VmHWM)" \
			'BEGIN { if (a != "" && b != "") printf "%.1f", (b - a) / 1024; else print "-" }')
		anon_diff=$(awk -v a="$(get mem_small.peak_anon)" -v b="$(get mem_large.peak_anon)" \
			'BEGIN { if (a != "" && b != "") printf "%.1f", (b - a) / 1024; else print "-" }')

		echo
		echo "targets (informational)"
		a=$(ratio "$run_rate" "$lim_rate")
		printf '%-64s %8s  %s\n' "load phase >= $TARGET_LOAD x limit" "$a" "$(verdict "$a" "$TARGET_LOAD" ge)"
		a=$(ratio "$(rate "$(get run_atomic.rows)" "$(get run_atomic.secs)")" "$run_rate")
		printf '%-64s %8s  %s\n' "atomic load phase >= $TARGET_ATOMIC x the plain one" "$a" "$(verdict "$a" "$TARGET_ATOMIC" ge)"
		a=$(ratio "$e2e_rate" "$lim_rate")
		printf '%-64s %8s  %s\n' "end to end >= $TARGET_E2E x limit" "$a" "$(verdict "$a" "$TARGET_E2E" ge)"
		a=$(ratio "$e2e_rate" "$fastest")
		printf '%-64s %8s  %s\n' "end to end >= $TARGET_FDW x fastest fdw path (${fastest_key:-none})" "$a" "$(verdict "$a" "$TARGET_FDW" ge)"
		local copy_rate
		copy_rate=$(rate "$(get copy_path.rows)" "$(get copy_path.secs)")
		a=$(ratio "$copy_rate" "$lim_rate")
		printf '%-64s %8s  %s\n' "COPY path >= $TARGET_E2E x limit" "$a" "$(verdict "$a" "$TARGET_E2E" ge)"
		a=$(ratio "$copy_rate" "$fastest")
		printf '%-64s %8s  %s\n' "COPY path >= $TARGET_FDW x fastest fdw path (${fastest_key:-none})" "$a" "$(verdict "$a" "$TARGET_FDW" ge)"
		a=$(ratio "$run_rate" "$fastest")
		printf '%-64s %8s  %s\n' "(load phase >= $TARGET_FDW x fastest fdw path)" "$a" "$(verdict "$a" "$TARGET_FDW" ge)"
		a=$(ratio "$(get rej_bad.secs)" "$(get rej_clean.secs)")
		printf '%-64s %8s  %s\n' "1% bad rows (6b) in <= $TARGET_REJ x the time of the clean batch (6a)" "$a" "$(verdict "$a" "$TARGET_REJ" le)"
		a=$(ratio "$(get rej_clean.secs)" "$(get e2e.secs)")
		printf '%-64s %8s  %s\n' "(time of 6a / time of 2.: text input and checks, no bad rows)" "$a" "$(info "$a")"
		a=$(ratio "$(get rej_bad.secs)" "$(get e2e.secs)")
		printf '%-64s %8s  %s\n' "(time of 6b / time of 2.)" "$a" "$(info "$a")"
		printf '%-64s %8s  %s\n' "peak memory $MEM_LARGE rows - $MEM_SMALL rows <= $TARGET_MEM_MB MB (private RssAnon)" "$anon_diff" "$(verdict "$anon_diff" "$TARGET_MEM_MB" le)"
		# VmHWM counts the shared buffers this backend touched (bounded by
		# shared_buffers, shared by every backend), not memory of its own
		printf '%-64s %8s  %s\n' "(peak memory $MEM_LARGE rows - $MEM_SMALL rows, VmHWM: with shared buffers, MB)" "$hwm_diff" "$(info "$hwm_diff")"
		# the same generated source at both sizes, so the rates compare
		for key in submit_secs run_secs; do
			a=$(per_row_ratio "$key")
			printf '%-64s %8s  %s\n' "${key%_secs} cost per row, $MEM_LARGE rows / $MEM_MID rows <= $TARGET_PER_ROW" "$a" "$(verdict "$a" "$TARGET_PER_ROW" le)"
		done
		# the same ratio in CPU time, which a slow spell of the host does not stretch
		for key in submit_cpu run_cpu; do
			a=$(per_row_ratio "$key")
			printf '%-64s %8s  %s\n' "(${key%_cpu} CPU per row, $MEM_LARGE rows / $MEM_MID rows)" "$a" "$(info "$a")"
		done
		if grep -q '^failed\.' "$RESULTS"; then
			echo
			echo "FAILED phases: $(grep '^failed\.' "$RESULTS" | sed 's/^failed\.//; s/ 1$//' | tr '\n' ' ')"
		fi
		echo
		echo "logs: $BENCH_OUT (bench.log, coord.log, shard*.log)"
	} | tee -a "$RESULTS.table"
}

# ---------------------------------------------------------------- main

main() {
	[[ $EUID -eq 0 ]] || [[ $(id -un) == postgres ]] || die "run as root (or as postgres)"
	[[ -x $PG_BIN/postgres ]] || die "no PostgreSQL binaries in $PG_BIN"
	[[ -f $("$PG_BIN/pg_config" --sharedir)/extension/pg_shardload.control ]] ||
		die "pg_shardload is not installed (make install)"
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	local started i
	started=$(now)
	mkdir -p "$(dirname "$BENCH_DIR")"
	# log() needs the log dir: set up first, quietly
	setup_servers
	log "servers up: coordinator :$COORD_PORT, shards :$((COORD_PORT + 1))-:$((COORD_PORT + NSHARDS)), dir $BENCH_DIR"
	setup_schema
	log "generating $ROWS rows"
	setup_data
	EXPECT_ALL=$(expected_counts "$ROWS")
	EXPECT_SLOW=$(expected_counts "$SLOW_ROWS")
	log "  rows per region: $EXPECT_ALL (slow paths: $EXPECT_SLOW)"
	if want rej; then setup_rej_data; fi

	for ((i = 1; i <= REPEAT; i++)); do
		want limit && phase limit phase_limit
		want run && phase run phase_shardload_run "bench-run-$i"
		want atomic && phase run_atomic phase_shardload_run "bench-atomic-$i" true
		want e2e && phase e2e phase_shardload_e2e "bench-e2e-$i"
		want copy && phase copy_path phase_copy_path "bench-copy-$i"
		if want rej; then
			phase rej_clean phase_reject rej_clean staging_text "bench-rej-clean-$i"
			phase rej_bad phase_reject rej_bad staging_text_bad "bench-rej-bad-$i"
		fi
	done
	if want fdw; then
		# row-by-row paths first, with postgres_fdw's default batch_size (1)
		phase fdw_insert_bs1 phase_fdw_insert fdw_insert_bs1 "$SLOW_ROWS" "$EXPECT_SLOW"
		phase fdw_copy phase_fdw_copy
		phase pgloader phase_pgloader
		phase pgloader_inbox phase_pgloader_inbox
		set_batch_size 1000
		for ((i = 1; i <= REPEAT; i++)); do
			phase fdw_insert_bs1000 phase_fdw_insert fdw_insert_bs1000 "$ROWS" "$EXPECT_ALL"
		done
		set_batch_size default
	fi
	if want mem; then
		phase mem_small phase_memory small "$MEM_SMALL"
		# the cost per row compares single runs of several seconds, which
		# this kind of machine scatters by 15% either way, in spells of a
		# minute or more: best of REPEAT, the middle and large runs
		# taking turns
		for ((i = 1; i <= REPEAT; i++)); do
			phase mem_mid phase_memory mid "$MEM_MID"
			phase mem_large phase_memory large "$MEM_LARGE"
		done
	fi

	log "done in $(secs_between "$started" "$(now)")s"
	: >"$RESULTS.table"
	report
}

main "$@"
