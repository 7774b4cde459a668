#!/usr/bin/env bash
#
# bench/worker.sh -- pg_shardload background worker benchmark.
#
# Starts a coordinator (shared_preload_libraries = 'pg_shardload', the
# scheduler serving database postgres) and three shards, four throwaway
# PostgreSQL 15 instances under $BENCH_DIR on ports 5611-5614, and measures:
#
#   drain: BATCHES small batches (ROWS_PER_BATCH rows each, spread over the
#          three shards) submitted in ONE transaction, so they all become due
#          at COMMIT, then drained by the background worker; batches/s and
#          rows/s from COMMIT until every batch is 'succeeded', once per
#          value of shardload.max_workers in WORKERS (coordinator restarted
#          with the new value before each run).
#   idle:  CPU time (utime + stime from /proc/PID/stat) of the scheduler
#          process over IDLE_SECS seconds with no due batches, as percent of
#          one core, for each shardload.naptime in IDLE_NAPTIMES, with
#          IDLE_FILL finished batches in the catalog (full: what the last
#          drain left, topped up with cancelled batches) and with none (empty).
#
# Run as root (server processes and psql run as the "postgres" OS user), or
# as postgres itself.  pg_shardload must be installed (make install).
# See the "Background worker" section of bench/README.md.
#
# Environment (all optional):
#   BENCH_DIR       throwaway directory, removed at start  (/tmp/pg_shardload_bench_worker)
#   PG_BIN          PostgreSQL binaries                    (/usr/lib/postgresql/15/bin)
#   BENCH_PORT      first port; the shards use the next 3  (5611)
#   BATCHES         batches submitted in one transaction   (10000)
#   ROWS_PER_BATCH  rows of each batch                     (10)
#   WORKERS         shardload.max_workers of each drain    (2 4)
#   DRAIN_NAPTIME   shardload.naptime during the drains    (1)
#   DRAIN_TIMEOUT   give up a drain after this many s      (600)
#   STALL_SECS      give up a drain when no batch finished
#                   for this many s                        (60)
#   POLL            seconds between polls of the drain     (0.5)
#   IDLE_SECS       length of each idle measurement        (60)
#   IDLE_NAPTIMES   shardload.naptime of the idle runs     (5 1)
#   IDLE_CATALOGS   catalog states of the idle runs        (full empty)
#   IDLE_FILL       finished batches in the "full" catalog (10000)
#   PHASES          which phases to run                    (drain idle)
#   BENCH_KEEP      1: leave the servers' data dirs behind (0)
#   BENCH_OUT       where results and logs are copied      (<repo>/bench/out/worker)

set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/tmp/pg_shardload_bench_worker}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_PORT=${BENCH_PORT:-5611}
BATCHES=${BATCHES:-10000}
ROWS_PER_BATCH=${ROWS_PER_BATCH:-10}
WORKERS=${WORKERS:-2 4}
DRAIN_NAPTIME=${DRAIN_NAPTIME:-1}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
STALL_SECS=${STALL_SECS:-60}
POLL=${POLL:-0.5}
IDLE_SECS=${IDLE_SECS:-60}
IDLE_NAPTIMES=${IDLE_NAPTIMES:-5 1}
IDLE_CATALOGS=${IDLE_CATALOGS:-full empty}
IDLE_FILL=${IDLE_FILL:-10000}
PHASES=${PHASES:-drain idle}
BENCH_KEEP=${BENCH_KEEP:-0}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_OUT=${BENCH_OUT:-$SCRIPT_DIR/out/worker}

# Target from the issue: an idle scheduler uses less than this % of a core.
TARGET_IDLE_PCT=1

NSHARDS=3
COORD_PORT=$BENCH_PORT
DATA=$BENCH_DIR/data
LOGDIR=$BENCH_DIR/log
RESULTS=$BENCH_DIR/results.txt
BENCH_LOG=$LOGDIR/bench.log
STAGING_ROWS=$((BATCHES * ROWS_PER_BATCH))
CLK_TCK=$(getconf CLK_TCK)
INSTALLED_SO=$("$PG_BIN/pg_config" --pkglibdir)/pg_shardload.so
SO_ID=
SO_SHA=
# shared helpers: log, pg, record/get, the servers and the sales schema
source "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- helpers

rate() { awk -v r="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", r / s; else print "-" }'; }

# Let the background worker go quiet: cancel the batches still waiting (a
# drain that stopped early leaves them) and wait up to 60 s for the runners
# to finish, so that TRUNCATE does not deadlock with a runner.
quiesce() {
	local i st
	for ((i = 0; i < 120; i++)); do
		st=$(pg coord -c "SELECT (SELECT count(*) FROM shardload.batch WHERE state IN ('pending', 'retry_wait', 'running'))
		                         || ' ' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_shardload runner')")
		[[ $st == "0 0" ]] && return 0
		((i > 0)) || log "  waiting for the worker to go quiet (unfinished batches, runners: $st)"
		# a batch a runner has just claimed cannot be cancelled (55000): skip it
		pg coord -c "DO \$\$ DECLARE b bigint; BEGIN
		               FOR b IN SELECT batch_id FROM shardload.batch WHERE state IN ('pending', 'retry_wait') LOOP
		                 BEGIN PERFORM shardload.cancel(b);
		                 EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END;
		               END LOOP; END \$\$" >/dev/null
		sleep 0.5
	done
	log "  the worker did not go quiet in 60s: $st"
	return 1
}

# Empty the shard tables and ledgers and the coordinator's batch catalog.
reset_all() {
	quiesce
	truncate_shards
	pg coord -c 'TRUNCATE shardload.batch CASCADE' >/dev/null 2>&1
	pg coord -c 'VACUUM ANALYZE shardload.batch' >/dev/null 2>&1 || true
	checkpoint_all
}

# Run a phase in a subshell with errexit on; a failing phase is recorded
# and reported, and the benchmark goes on with the next one.
phase() {
	local name=$1 rc
	shift
	log "phase: $name"
	if [[ $name == drain* ]] && ! check_install; then
		log "  phase $name SKIPPED: pg_shardload.so changed on disk during the run"
		record "failed.$name" 1
		return 0
	fi
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

# The servers load pg_shardload.so from disk at start (and a new backend or
# runner loads it again if the file was replaced: PostgreSQL matches loaded
# libraries by inode).  A "make install" of another build during the run
# therefore mixes builds, and the new build may not match the catalog that
# CREATE EXTENSION made: the results would mean nothing.  SO_ID is the
# file's identity (inode, mtime, size) when the run starts, SO_SHA its
# sha256; a file with the same content (a "make install" of the same build)
# is accepted: its identity is added to $BENCH_DIR/so_same.
so_id() { stat -c '%i %Y %s' "$INSTALLED_SO"; }
check_install() {
	local id
	id=$(so_id)
	[[ -z $SO_ID || $id == "$SO_ID" ]] && return 0
	grep -qxF "$id" "$BENCH_DIR/so_same" 2>/dev/null && return 0
	if [[ ! -e $BENCH_DIR/so_changed && $(sha256sum "$INSTALLED_SO" | cut -d' ' -f1) == "$SO_SHA" ]]; then
		echo "$id" >>"$BENCH_DIR/so_same"
		log "  note: $INSTALLED_SO was reinstalled at $(date -r "$INSTALLED_SO" '+%H:%M:%S') with the same content"
		return 0
	fi
	if [[ ! -e $BENCH_DIR/so_changed ]]; then
		date -r "$INSTALLED_SO" '+%H:%M:%S' >"$BENCH_DIR/so_changed"
		log "  ERROR: $INSTALLED_SO was replaced by another build at $(cat "$BENCH_DIR/so_changed") during the run" \
			"(make install?); every drain from then on is invalid: run again"
	fi
	return 1
}

# The scheduler keeps the library it mapped at start, whatever happens to
# the file: an idle phase is valid if that is the file the run started with
# (or one with the same content), even after a reinstall.
scheduler_lib_ok() {
	local ino
	ino=$(awk '/pg_shardload\.so/ { print $5; exit }' "/proc/$1/maps")
	if [[ $ino != "${SO_ID%% *}" ]] && ! grep -q "^$ino " "$BENCH_DIR/so_same" 2>/dev/null; then
		log "  the scheduler (pid $1) maps pg_shardload.so inode '$ino', not the build the run started with (inode ${SO_ID%% *})"
		return 1
	fi
}

# Runners that exited with an error so far (lines of the coordinator log).
runner_failures() {
	grep -c 'background worker "pg_shardload runner" (PID [0-9]*) exited with exit code [1-9]' "$LOGDIR/coord.log" || true
}

# ---------------------------------------------------------------- servers



coord_conf() {
	echo "shared_preload_libraries = 'pg_shardload'"
	echo "shardload.database = 'postgres'"
	echo "max_worker_processes = 16"
	echo "log_line_prefix = '%m [%p] %b '"
}


restart_coord() {
	as_pg "$PG_BIN/pg_ctl" -D "$DATA/coord" -m fast -w -t 60 stop >/dev/null ||
		die "could not stop coord, see $LOGDIR/coord.log"
	start_server coord
}

# pid of the scheduler, waiting up to 30 s for it to come up.
scheduler_pid() {
	local i pid=
	for ((i = 0; i < 300; i++)); do
		pid=$(pg coord -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shardload scheduler'")
		if [[ -n $pid ]]; then
			[[ $pid != *$'\n'* ]] || { log "  more than one scheduler: ${pid//$'\n'/ }"; return 1; }
			echo "$pid"
			return 0
		fi
		sleep 0.1
	done
	log "  no pg_shardload scheduler in pg_stat_activity after 30s"
	return 1
}

# Set shardload.* settings of the coordinator (ALTER SYSTEM), then restart
# or reload.  "$1": restart|reload; the rest: name=value pairs.
set_coord() {
	local how=$1 kv
	shift
	for kv in "$@"; do
		pg coord -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null
	done
	if [[ $how == restart ]]; then
		restart_coord
	else
		pg coord -c 'SELECT pg_reload_conf()' >/dev/null
	fi
}



setup_data() {
	pg coord -c "CREATE TABLE staging_sales AS $SOURCE_SQL FROM generate_series(1, $STAGING_ROWS) i" \
		-c 'ALTER TABLE staging_sales ADD PRIMARY KEY (sale_id)' \
		-c 'VACUUM ANALYZE staging_sales'
}

# Check that the shards hold exactly the rows of staging_sales with
# sale_id <= $1, values included (count and sums per region).
verify_shard_rows() {
	local upto=$1 n want got
	local fp="count(*) || ' ' || coalesce(sum(sale_id), 0) || ' ' || coalesce(sum(sale_amount), 0)
	          || ' ' || coalesce(sum(sale_date - date '2024-01-01'), 0) || ' ' || coalesce(sum(hashtext(note)), 0)"
	for ((n = 1; n <= NSHARDS; n++)); do
		want=$(pg coord -c "SELECT $fp FROM staging_sales WHERE region_id = $n AND sale_id <= $upto")
		got=$(pg "shard$n" -c "SELECT $fp FROM sales_region_$n")
		log "  shard$n: ${got%% *} rows (expected ${want%% *})"
		if [[ $got != "$want" ]]; then
			log "  VERIFY FAILED: shard$n holds '$got' (count, sums), expected '$want'"
			return 1
		fi
	done
}

# utime + stime of process $1 in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name).
proc_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$rest"
}

# voluntary + involuntary context switches of process $1: about one per
# wake-up of an idle process.
proc_ctxt() {
	awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s }' "/proc/$1/status"
}

# ---------------------------------------------------------------- phases

# Drain: BATCHES batches submitted in one transaction, drained by the
# background worker with shardload.max_workers = $1.
phase_drain() {
	local w=$1 key="drain_w$1" t0 t1 t_commit spid tick0 tick1 st total ok bad busy maxbusy=0
	local last_log elapsed rows tpoll fail0 fail1 last_done=-1 t_progress
	reset_all
	set_coord restart "shardload.max_workers=$w" "shardload.naptime=$DRAIN_NAPTIME"
	spid=$(scheduler_pid)
	log "  max_workers $(pg coord -c 'SHOW shardload.max_workers'), naptime $(pg coord -c 'SHOW shardload.naptime')," \
		"max_worker_processes $(pg coord -c 'SHOW max_worker_processes'); scheduler pid $spid"
	checkpoint_all
	pg coord -c 'SELECT count(*) FROM staging_sales' >/dev/null # warm the staging table

	# One transaction: psql's single -c is one implicit transaction, so
	# nothing is visible (or due) before its COMMIT.  The batches of
	# ROWS_PER_BATCH consecutive sale_ids each have distinct source text
	# and distinct keys.
	t0=$(now)
	pg coord -c "SELECT count(shardload.submit('sales', 'small-' || b,
	                 format('SELECT * FROM staging_sales WHERE sale_id BETWEEN %s AND %s',
	                        (b - 1) * $ROWS_PER_BATCH + 1, b * $ROWS_PER_BATCH)))
	             FROM generate_series(1, $BATCHES) b" >/dev/null
	t_commit=$(now)
	tick0=$(proc_ticks "$spid")
	fail0=$(runner_failures)
	record "$key.submit_secs" "$(secs_between "$t0" "$t_commit")"
	log "  submitted $BATCHES batches of $ROWS_PER_BATCH rows in one transaction in $(get "$key.submit_secs")s; draining"

	# poll every POLL seconds until every batch is finished (or timeout)
	last_log=$t_commit
	t_progress=$t_commit
	while :; do
		st=$(pg coord -c "SELECT count(*) FILTER (WHERE state = 'succeeded') || ' ' ||
		                         count(*) FILTER (WHERE state IN ('failed', 'quarantined', 'dead', 'cancelled')) || ' ' ||
		                         (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_shardload runner')
		                  FROM shardload.batch")
		tpoll=$(now)
		read -r ok bad busy <<<"$st"
		((busy > maxbusy)) && maxbusy=$busy
		if ((ok + bad >= BATCHES)); then
			t1=$tpoll
			break
		fi
		elapsed=$(secs_between "$t_commit" "$tpoll")
		if ! check_install; then
			t1=$tpoll
			break
		fi
		if ((ok + bad != last_done)); then
			last_done=$((ok + bad))
			t_progress=$tpoll
		elif awk -v a="$t_progress" -v b="$tpoll" -v m="$STALL_SECS" 'BEGIN { exit !(b - a > m) }'; then
			t1=$tpoll
			log "  STALLED: no batch finished for ${STALL_SECS}s; $ok succeeded, $bad failed of $BATCHES;" \
				"$(($(runner_failures) - fail0)) runners exited with an error; the last error lines:"
			grep -E 'pg_shardload runner (ERROR|FATAL|PANIC)' "$LOGDIR/coord.log" | tail -3 | tee -a "$BENCH_LOG" >&2 || true
			break
		fi
		if awk -v e="$elapsed" -v m="$DRAIN_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
			t1=$tpoll
			log "  TIMEOUT after ${elapsed}s: $ok succeeded, $bad failed of $BATCHES"
			break
		fi
		if awk -v a="$last_log" -v b="$tpoll" 'BEGIN { exit !(b - a >= 10) }'; then
			log "  ${elapsed}s: $ok succeeded, $bad failed/dead, $busy runners"
			last_log=$tpoll
		fi
		sleep "$POLL"
	done
	tick1=$(proc_ticks "$spid") || tick1=
	fail1=$(runner_failures)
	elapsed=$(secs_between "$t_commit" "$t1")
	rows=$((ok * ROWS_PER_BATCH))
	record "$key.runner_failures" $((fail1 - fail0))
	record "$key.batches" "$ok"
	record "$key.secs" "$elapsed"
	record "$key.max_runners_seen" "$maxbusy"
	if [[ -n $tick1 ]]; then
		record "$key.sched_cpu_pct" "$(awk -v d=$((tick1 - tick0)) -v hz="$CLK_TCK" -v s="$elapsed" \
			'BEGIN { printf "%.1f", 100 * d / hz / s }')"
	fi
	log "  $ok batches ($rows rows) succeeded in ${elapsed}s from COMMIT:" \
		"$(rate "$ok" "$elapsed") batches/s, $(rate "$rows" "$elapsed") rows/s;" \
		"at most $maxbusy runners seen at once; scheduler used $(get "$key.sched_cpu_pct")% of a core;" \
		"$((fail1 - fail0)) runners exited with an error"
	check_install

	# The server's view: COMMIT (created_at is the transaction's start, so
	# the first attempt's start is the earliest sign of the commit) and the
	# last batch's finished_at; per-attempt durations.
	st=$(pg coord -c "SELECT round(extract(epoch FROM min(a.started_at) - max(b.created_at))::numeric, 3) || ' ' ||
	                         round(extract(epoch FROM max(b.finished_at) - min(a.started_at))::numeric, 3) || ' ' ||
	                         round(1000 * avg(extract(epoch FROM a.finished_at - a.started_at))::numeric, 1) || ' ' ||
	                         count(*) || ' ' || count(DISTINCT a.batch_id)
	                  FROM shardload.batch b JOIN shardload.attempt a USING (batch_id)")
	read -r t0 t1 total ok bad <<<"$st"
	record "$key.server_secs" "$t1"
	record "$key.attempt_ms" "$total"
	log "  server clock: submit transaction to first attempt ${t0}s (includes the submit itself);" \
		"first attempt start to last finished_at ${t1}s; mean attempt ${total} ms; $ok attempt rows for $bad batches"

	# The attempts' time split, on one clock (all servers run on this
	# host).  A runner runs the batches it claimed at once as a group, whose
	# attempts are recorded by one transaction (so share their xmin): per
	# group, from its first attempt's start to its first slice's remote BEGIN
	# (the shard ledger's committed_at is that transaction's start): claim,
	# first step, connection or a kept one, session setup and ledger probe;
	# from there to the group's last attempt end: the slices' transactions
	# and the last step.  Mean batches per group, ms per group, ms per batch.
	pg coord -c "DROP TABLE IF EXISTS bench_first_begin" \
		-c "CREATE UNLOGGED TABLE bench_first_begin (batch_id bigint, first_begin timestamptz)" >/dev/null
	for ((n = 1; n <= NSHARDS; n++)); do
		pg "shard$n" -c "COPY (SELECT batch_id, min(committed_at) FROM shardload_ledger.slices GROUP BY 1) TO STDOUT" |
			pg coord -c "COPY bench_first_begin FROM STDIN" >/dev/null
	done
	st=$(pg coord -c "SELECT round(avg(batches), 1) || ' ' || round(avg(to_first_ms)::numeric, 2) || ' ' ||
	                         round(avg(rest_ms)::numeric, 2) || ' ' || round((sum(to_first_ms + rest_ms) / sum(batches))::numeric, 2)
	                  FROM (SELECT count(*) AS batches,
	                               1000 * extract(epoch FROM min(f.first_begin) - min(a.started_at)) AS to_first_ms,
	                               1000 * extract(epoch FROM max(a.finished_at) - min(f.first_begin)) AS rest_ms
	                        FROM shardload.attempt a
	                        JOIN (SELECT batch_id, min(first_begin) AS first_begin FROM bench_first_begin GROUP BY 1) f
	                        USING (batch_id)
	                        GROUP BY a.xmin::text) g")
	read -r split_size split_load split_record split_per_batch <<<"$st"
	record "$key.split_group" "$split_size"
	record "$key.split_load_ms" "$split_load"
	record "$key.split_record_ms" "$split_record"
	record "$key.split_per_batch_ms" "$split_per_batch"
	log "  runner groups: $split_size batches each; per group (mean ms): to the first remote BEGIN $split_load," \
		"from there to the end $split_record; $split_per_batch ms per batch"

	# every batch succeeded, once, with all its rows
	st=$(pg coord -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'succeeded'
	                           AND rows_loaded = $ROWS_PER_BATCH AND rows_total = $ROWS_PER_BATCH) || ' ' ||
	                         count(*) FILTER (WHERE attempts > 1) || ' ' || coalesce(sum(rows_loaded), 0)
	                  FROM shardload.batch")
	read -r total ok bad rows <<<"$st"
	record "$key.retried" "$bad"
	if [[ $ok != "$BATCHES" || $total != "$BATCHES" ]]; then
		log "  VERIFY FAILED: $ok of $total batches are succeeded with $ROWS_PER_BATCH rows loaded (want $BATCHES)"
		pg coord -c "SELECT state, last_failure_type, left(last_reason, 200), count(*) FROM shardload.batch
		             GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10" | tee -a "$BENCH_LOG" >&2 || true
		return 1
	fi
	((bad == 0)) || log "  note: $bad batches needed more than one attempt"
	verify_shard_rows "$STAGING_ROWS"
}

# Top the catalog up to IDLE_FILL finished batches: batches of 10 generated
# rows (sale_id from 1,000,000,001 on, so no content repeats a drain's)
# submitted and cancelled in the same transaction (never due), 2,000 per
# transaction.
fill_catalog() {
	local have chunk from
	have=$(pg coord -c "SELECT count(*) FROM shardload.batch")
	from=1
	while ((have < IDLE_FILL)); do
		chunk=$((IDLE_FILL - have < 2000 ? IDLE_FILL - have : 2000))
		pg coord -c 'SET client_min_messages = warning' \
			-c "SELECT count(*) FROM generate_series($from, $((from + chunk - 1))) b,
			        LATERAL (SELECT shardload.cancel(shardload.submit('sales', 'idle-fill-' || b,
			            \$q\$$SOURCE_SQL FROM generate_series(\$q\$ || 1000000000 + b * 10 + 1 || ', '
			                                                           || 1000000000 + b * 10 + 10 || ') i'))) c" >/dev/null
		from=$((from + chunk))
		have=$((have + chunk))
	done
	pg coord -c 'VACUUM ANALYZE shardload.batch' >/dev/null
	log "  catalog: $(pg coord -c "SELECT sum(n) || ' batches (' || string_agg(n || ' ' || state, ', ') || ')'
	                               FROM (SELECT state, count(*) n FROM shardload.batch GROUP BY state) s")"
}

# Idle: CPU of the scheduler over IDLE_SECS with no due batches, naptime $1.
phase_idle() {
	local nap=$1 cat=$2 key="idle_${2}_n$1" spid spid2 old tick0 tick1 cs0 cs1 t0 t1 due secs
	if [[ $cat == empty ]]; then
		reset_all
	elif ! quiesce; then
		return 1
	elif [[ $(pg coord -c "SELECT count(*) FROM shardload.batch") -lt $IDLE_FILL ]]; then
		fill_catalog
	fi
	old=$(pg coord -c 'SHOW shardload.naptime')
	set_coord reload "shardload.naptime=$nap"
	spid=$(scheduler_pid)
	scheduler_lib_ok "$spid"
	# the scheduler reads the new naptime when it next wakes
	sleep $((${old%s} + 2))
	log "  naptime $(pg coord -c 'SHOW shardload.naptime'); scheduler pid $spid;" \
		"catalog: $(pg coord -c "SELECT count(*) || ' batches, ' || count(*) FILTER (WHERE state IN ('pending', 'retry_wait', 'running')) || ' not finished' FROM shardload.batch")"
	due=$(pg coord -c "SELECT count(*) FROM shardload.batch WHERE state IN ('pending', 'retry_wait', 'running')")
	[[ $due == 0 ]] || { log "  $due batches are not finished: not idle"; return 1; }
	checkpoint_all
	sleep 1
	tick0=$(proc_ticks "$spid")
	cs0=$(proc_ctxt "$spid")
	t0=$(now)
	sleep "$IDLE_SECS"
	tick1=$(proc_ticks "$spid")
	cs1=$(proc_ctxt "$spid")
	t1=$(now)
	scheduler_lib_ok "$spid"
	spid2=$(scheduler_pid)
	[[ $spid2 == "$spid" ]] || { log "  the scheduler changed pid during the run ($spid -> $spid2)"; return 1; }
	secs=$(secs_between "$t0" "$t1")
	record "$key.secs" "$secs"
	record "$key.batches" "$(pg coord -c 'SELECT count(*) FROM shardload.batch')"
	record "$key.ticks" $((tick1 - tick0))
	record "$key.cpu_ms" "$(awk -v d=$((tick1 - tick0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 1000 * d / hz }')"
	record "$key.pct" "$(awk -v d=$((tick1 - tick0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.3f", 100 * d / hz / s }')"
	record "$key.ctxt" $((cs1 - cs0))
	log "  idle ${secs}s, naptime ${nap}s, catalog $cat: $((tick1 - tick0)) ticks ($(get "$key.cpu_ms") ms CPU) =" \
		"$(get "$key.pct")% of one core; $((cs1 - cs0)) context switches"
}

# Lines of the coordinator log that say something went wrong, leaving out
# those of the bench's own restarts (from the shutdown request until the
# server is ready again: workers told to stop exit with code 1 then).
log_problems() {
	awk '/received (fast|smart|immediate) shutdown request/ { down = 1 }
	     /database system is ready to accept connections/ { down = 0; next }
	     !down && /ERROR|WARNING|FATAL|PANIC|exited with exit code|terminated by signal|could not start/' \
		"$LOGDIR/coord.log"
}

# ---------------------------------------------------------------- report

report() {
	local w key nap cat v
	{
		echo
		echo "pg_shardload background worker benchmark -- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $("$PG_BIN/postgres" --version)"
		echo "1 coordinator + $NSHARDS shards on this host; coordinator: max_worker_processes=16, shared_buffers=$BENCH_SHARED_BUFFERS;"
		echo "CLK_TCK $CLK_TCK (CPU time resolution $(awk -v hz="$CLK_TCK" 'BEGIN { print 1000 / hz }') ms)"
		echo "pg_shardload.so installed $(get so_installed), sha256 $(get so_sha256); repo HEAD $(get repo_head)"
		if [[ -e $BENCH_DIR/so_changed ]]; then
			echo "ERROR: pg_shardload.so was replaced by another build at $(cat "$BENCH_DIR/so_changed") during the run: drains from then on are INVALID"
		fi
		if want drain; then
			echo
			echo "drain: $BATCHES batches x $ROWS_PER_BATCH rows (3 shards each), submitted in one transaction, naptime ${DRAIN_NAPTIME}s;"
			echo "timed from COMMIT until all are 'succeeded' (polled every ${POLL}s)"
			printf '%-12s %8s %9s %10s %10s %10s %9s %11s %8s %9s %11s\n' max_workers batches seconds batches/s rows/s \
				submit_s server_s attempt_ms runners sched_cpu runner_errs
			printf '%-12s %8s %9s %10s %10s %10s %9s %11s %8s %9s %11s\n' ----------- ------- ------- --------- ------ \
				-------- -------- ---------- ------- --------- -----------
			for w in $WORKERS; do
				key=drain_w$w
				if [[ -n $(get "failed.$key") ]]; then
					printf '%-12s %8s\n' "$w" FAILED
					[[ -z $(get "$key.secs") ]] && continue
				fi
				v=$(get "$key.secs")
				[[ -n $v ]] || { printf '%-12s %8s\n' "$w" -; continue; }
				printf '%-12s %8s %9s %10s %10s %10s %9s %11s %8s %8s%% %11s\n' "$w" "$(get "$key.batches")" "$v" \
					"$(rate "$(get "$key.batches")" "$v")" "$(rate $(($(get "$key.batches") * ROWS_PER_BATCH)) "$v")" \
					"$(get "$key.submit_secs")" "$(get "$key.server_secs")" "$(get "$key.attempt_ms")" \
					"$(get "$key.max_runners_seen")" "$(get "$key.sched_cpu_pct")" "$(get "$key.runner_failures")"
			done
			echo
			printf '%-12s %14s %20s %22s %14s\n' max_workers "batches/group" "group_to_remote_ms" "group_slices_record_ms" "ms/batch"
			for w in $WORKERS; do
				key=drain_w$w
				printf '%-12s %14s %20s %22s %14s\n' "$w" "$(get "$key.split_group")" "$(get "$key.split_load_ms")" \
					"$(get "$key.split_record_ms")" "$(get "$key.split_per_batch_ms")"
			done
			echo "(submit_s: the one submit transaction; server_s: first attempt start to last finished_at, server clock;"
			echo " attempt_ms: mean attempt duration (a group's, for a runner's group); runners: most runner processes seen at once by the poll;"
			echo " sched_cpu: the scheduler's CPU during the drain, % of one core;"
			echo " runner_errs: runners that exited with an error, from the coordinator log;"
			echo " a runner runs the batches it claims at once as a group, each with its own attempt; per group, mean:"
			echo " batches, ms from its attempts' start (after the claim and the checks) to its first slice's remote BEGIN"
			echo " (first step, connection or a kept one, session setup, ledger probe), ms from there to its end (the"
			echo " shared remote transactions and the last step); ms/batch: group time per batch, one runner)"
		fi
		if want idle; then
			echo
			echo "idle scheduler: CPU (utime+stime) over ${IDLE_SECS}s with no due batches; target < ${TARGET_IDLE_PCT}% of one core"
			printf '%-8s %-22s %9s %8s %8s %10s %9s  %s\n' naptime catalog seconds ticks cpu_ms "% of core" wakeups verdict
			printf '%-8s %-22s %9s %8s %8s %10s %9s  %s\n' ------- ------- ------- ----- ------ --------- ------- -------
			for cat in $IDLE_CATALOGS; do
				for nap in $IDLE_NAPTIMES; do
					key=idle_${cat}_n$nap
					local label=$cat
					[[ $cat == full && -n $(get "$key.batches") ]] && label="full ($(get "$key.batches") batches)"
					[[ $cat == empty ]] && label="empty"
					if [[ -n $(get "failed.$key") ]]; then
						printf '%-8s %-22s %9s\n' "${nap}s" "$label" FAILED
						continue
					fi
					v=$(get "$key.pct")
					[[ -n $v ]] || { printf '%-8s %-22s %9s\n' "${nap}s" "$label" -; continue; }
					printf '%-8s %-22s %9s %8s %8s %10s %9s  %s\n' "${nap}s" "$label" "$(get "$key.secs")" \
						"$(get "$key.ticks")" "$(get "$key.cpu_ms")" "$v" "$(get "$key.ctxt")" \
						"$(awk -v a="$v" -v t="$TARGET_IDLE_PCT" 'BEGIN { print (a + 0 < t + 0) ? "PASS" : "MISS" }')"
				done
			done
			echo "(wakeups: context switches of the scheduler, about one per wake-up)"
		fi
		v=$(log_problems | wc -l)
		echo
		echo "coordinator log: $v line(s) with ERROR/WARNING/FATAL/PANIC or a worker exit"
		log_problems | head -20 | sed 's/^/  /'
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
	mkdir -p "$(dirname "$BENCH_DIR")"
	# One run per BENCH_DIR: setting up (and cleaning up) stops the servers
	# in it, which would be those of a run still going.  The lock is beside
	# the directory (which is removed) and goes with this process; it is
	# taken before the EXIT trap is set, so a refused run touches nothing.
	exec 9>>"$BENCH_DIR.lock"
	flock -n 9 || die "another worker.sh is running in $BENCH_DIR (lock $BENCH_DIR.lock); use another BENCH_DIR and BENCH_PORT"
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	local started w nap cat
	started=$(now)
	SO_ID=$(so_id)
	SO_SHA=$(sha256sum "$INSTALLED_SO" | cut -d' ' -f1)
	setup_servers
	record so_installed "$(date -r "$INSTALLED_SO" -u '+%Y-%m-%dT%H:%M:%SZ')"
	record so_sha256 "${SO_SHA:0:12}"
	record repo_head "$(git -C "$SCRIPT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	log "servers up: coordinator :$COORD_PORT, shards :$((COORD_PORT + 1))-:$((COORD_PORT + NSHARDS)), dir $BENCH_DIR"
	setup_schema
	log "scheduler pid $(scheduler_pid)"
	setup_data
	log "staging_sales: $STAGING_ROWS rows ($BATCHES batches x $ROWS_PER_BATCH)"

	if want drain; then
		for w in $WORKERS; do
			phase "drain_w$w" phase_drain "$w"
		done
	fi
	if want idle; then
		for cat in $IDLE_CATALOGS; do
			for nap in $IDLE_NAPTIMES; do
				phase "idle_${cat}_n$nap" phase_idle "$nap" "$cat"
			done
		done
	fi

	log "done in $(secs_between "$started" "$(now)")s"
	: >"$RESULTS.table"
	report
}

main "$@"
