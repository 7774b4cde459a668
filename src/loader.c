/*-------------------------------------------------------------------------
 * loader.c
 *	  One attempt to run a batch, in three committed steps:
 *
 *	  1. begin: take the batch (a session lock keeps other runners out),
 *	     count the attempt and record it as running;
 *	  2. load: local slices by in-process COPY, foreign slices streamed to
 *	     their shards in parallel, each committed with its ledger row;
 *	  3. record (outcome.c): slice states, the attempt's outcome and the
 *	     batch's next state (retry, stop, quarantine or dead letter).
 *
 *	  Each step commits, so a failed or interrupted attempt is still on
 *	  record, and only slices not yet committed are ever sent again.
 *	  The caller must be a non-atomic SPI connection (a CALL), or a runner.
 *
 *	  A runner takes several due batches at once: each has its own
 *	  attempt, lock and record exactly as above, but the steps of all of
 *	  them share their transactions, and the small batches of one owner
 *	  share one stream (load_step.c), so that a batch of a few rows does
 *	  not cost a transaction per step and a connection round per shard.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "atomic.h"
#include "attempt.h"
#include "circuit.h"
#include "classify.h"
#include "connection.h"
#include "copy_stream.h"
#include "direct_load.h"
#include "group_catalog.h"
#include "metadata.h"
#include "payload.h"
#include "pg_shardload.h"
#include "role_context.h"
#include "route_check.h"
#include "routing.h"
#include "stream_skip.h"
#include "subxact.h"
#include "value_forms.h"

/* A runner's batches of at most this many rows are loaded in groups. */
#define GROUP_MAX_ROWS	10000

static void run_locked(int64 *ids, bool *locked, int n, bool runner);
static void begin_group(int64 *ids, bool *locked, int n, RunState **rs);
static RunState *begin_member_caught(int64 batch_id);
static void begin_member_step(void *arg);
static int	group_with(RunState **rs, int n, int first, bool *loaded, RunState **members);
static bool defer_for_open_circuit(ShardloadBatch *batch);
static void commit_step(bool runner);

/* shardload.attempt_timeout of runners: its timer, and whether it fired */
static TimeoutId attempt_timeout_id = 0;
static volatile sig_atomic_t attempt_timed_out = false;
static void attempt_timeout_handler(void);
static void disarm_attempt_timeout(void);
static RunState *begin_attempt(int64 batch_id);
static RunState *check_attempt(int64 batch_id);
static void mark_running(RunState *rs);
static void finish_begin(RunState *rs);
static void begin_atomic(RunState *rs);
static void recover_direct(RunState *rs);
static ShardloadFailure *unresolved_failure(RunState *rs, char *unresolved);
static ErrorData *end_atomic(RunState *rs);
static void end_atomic_step(void *arg);
static void end_atomic_groups(RunState **rs, int n, bool runner, ErrorData **cancel);
static void load_group(RunState **members, int n);

/*
 * ShardloadRunBatch
 *	  Run one attempt of batch_id now.  While another session runs the same
 *	  batch, waits for it (wait) or returns false at once.  Commits several
 *	  times.
 */
bool
ShardloadRunBatch(int64 batch_id, bool wait, bool runner)
{
	bool		ran;

	ShardloadRunBatches(&batch_id, 1, wait, runner, &ran);
	return ran;
}

/*
 * ShardloadRunBatches
 *	  Run one attempt of each of the n batches in ids (a runner's claim);
 *	  ran[i] is false for a batch another session holds.  With more than
 *	  one batch, a batch that cannot begin (cancelled meanwhile, say) is
 *	  skipped with a WARNING instead of failing the others.
 */
void
ShardloadRunBatches(int64 *ids, int n, bool wait, bool runner, bool *ran)
{
	LOCKTAG    *tags = palloc(sizeof(LOCKTAG) * n);

	for (int i = 0; i < n; i++)
	{
		ShardloadBatchLockTag(&tags[i], ids[i]);
		ran[i] = LockAcquire(&tags[i], ExclusiveLock, true, !wait) != LOCKACQUIRE_NOT_AVAIL;
	}
	PG_TRY();
	{
		run_locked(ids, ran, n, runner);
	}
	PG_FINALLY();
	{
		disarm_attempt_timeout();
		for (int i = 0; i < n; i++)
			if (ran[i])
				LockRelease(&tags[i], ExclusiveLock, true);
	}
	PG_END_TRY();
}

/*
 * disarm_attempt_timeout
 *	  Stop the attempt's time limit; if it fired after the load was over,
 *	  forget the cancel it asked for, so it hits nothing else.
 */
static void
disarm_attempt_timeout(void)
{
	if (attempt_timeout_id == 0)
		return;
	disable_timeout(attempt_timeout_id, false);
	if (attempt_timed_out)
	{
		QueryCancelPending = false;
		attempt_timed_out = false;
	}
}

/*
 * attempt_timeout_handler
 *	  shardload.attempt_timeout has passed: cancel the attempt as a cancel
 *	  request would (the load step records it).  Runs in a signal handler.
 */
static void
attempt_timeout_handler(void)
{
	attempt_timed_out = true;
	kill(MyProcPid, SIGINT);
}

/*
 * run_locked
 *	  The attempts, with the batches' locks held: begin, load, record,
 *	  each step committed (for all batches at once).  runner: a background
 *	  runner drives it (no CALL, no portal), with shardload.attempt_timeout
 *	  for each load.
 */
static void
run_locked(int64 *ids, bool *locked, int n, bool runner)
{
	RunState  **rs = palloc0(sizeof(RunState *) * n);
	RunState  **members = palloc(sizeof(RunState *) * n);
	bool	   *loaded = palloc0(sizeof(bool) * n);
	ErrorData  *cancel = NULL;

	if (n == 1)
		rs[0] = locked[0] ? begin_attempt(ids[0]) : NULL;
	else
		begin_group(ids, locked, n, rs);
	commit_step(runner);
	/* an atomic attempt's row must be durable before anything is PREPAREd */
	for (int i = 0; i < n; i++)
		if (rs[i] != NULL && rs[i]->atomic_began)
		{
			XLogFlush(XactLastCommitEnd);
			break;
		}

	for (int i = 0; i < n; i++)
	{
		int			k = group_with(rs, n, i, loaded, members);

		if (k == 0)
			continue;
		if (cancel != NULL)
		{
			/* cancelled: the groups not loaded yet are recorded so */
			for (int m = 0; m < k; m++)
			{
				members[m]->failure = ShardloadFailureFromError(cancel, members[m]->stage, NULL);
				members[m]->cancel = cancel;
			}
			continue;
		}
		/* an attempt in the background has a time limit of its own */
		if (runner && shardload_attempt_timeout > 0)
		{
			if (attempt_timeout_id == 0)
				attempt_timeout_id = RegisterTimeout(USER_TIMEOUT, attempt_timeout_handler);
			attempt_timed_out = false;
			enable_timeout_after(attempt_timeout_id, shardload_attempt_timeout);
		}
		load_group(members, k);
		disarm_attempt_timeout();
		/* an atomic batch's decision commits at once, not after the others */
		if (members[0]->atomic_began)
			end_atomic_groups(members, k, runner, &cancel);
		if (members[0]->cancel != NULL)
			cancel = members[0]->cancel;
	}
	commit_step(runner);
	end_atomic_groups(rs, n, runner, &cancel);

	ShardloadRecordOutcomes(rs, n);
	commit_step(runner);
	if (cancel)
		ReThrowError(cancel);
}

/*
 * end_atomic
 *	  The load step of an atomic batch is committed, with its decision or
 *	  without: commit or roll back its prepared slices.  The decision is
 *	  flushed first (with synchronous_commit off it could still be in WAL
 *	  buffers, and lost in a crash after a shard has committed).  A server
 *	  that cannot be reached now is left to recovery; with the decision
 *	  made, its slice counts as committed all the same.  An error here is
 *	  a WARNING: the attempt's outcome is decided already.  Returns a
 *	  cancel to pass on once the attempt is recorded, or NULL.
 */
static ErrorData *
end_atomic(RunState *rs)
{
	ErrorData  *edata;

	if (rs->decided)
		XLogFlush(XactLastCommitEnd);
	for (int i = 0; i < rs->nslices; i++)
		if (rs->slices[i].prepared && rs->decided)
			rs->slices[i].committed = true;
	edata = ShardloadTryStep(end_atomic_step, rs, true);
	rs->atomic_began = false;	/* ended, or left to recovery */
	if (edata == NULL)
		return NULL;
	ereport(WARNING,
			(errmsg("batch %lld: its prepared slices were not %s on every shard yet: %s",
					(long long) rs->batch->batch_id, rs->decided ? "committed" : "rolled back",
					edata->message),
			 errhint("Recovery ends them once the server is reachable; shardload.in_doubt shows them.")));
	return edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? edata : NULL;
}

static void
end_atomic_step(void *arg)
{
	RunState   *rs = arg;
	char	   *unresolved;

	if (!rs->decided && rs->prepare_unanswered)
		ShardloadAtomicUnsettled(rs->batch->batch_id, rs->attempt);
	unresolved = ShardloadAtomicResolve(rs->batch->batch_id, rs->batch->owner);
	if (unresolved != NULL)
		ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE), errmsg("%s", unresolved)));
}

/*
 * end_atomic_groups
 *	  Commit the load step and end the attempts of the atomic batches in
 *	  rs not ended yet (those a cancel kept from loading too: their rows
 *	  go), at once: prepared slices hold locks on their shards until then.
 */
static void
end_atomic_groups(RunState **rs, int n, bool runner, ErrorData **cancel)
{
	bool		any = false;

	for (int i = 0; i < n; i++)
		any |= rs[i] != NULL && rs[i]->atomic_began;
	if (!any)
		return;
	commit_step(runner);
	for (int i = 0; i < n; i++)
		if (rs[i] != NULL && rs[i]->atomic_began)
		{
			ErrorData  *edata = end_atomic(rs[i]);

			if (edata != NULL && *cancel == NULL)
				*cancel = edata;
		}
}

/*
 * group_with
 *	  The batches to load with rs[first] (unless it is loaded or has nothing
 *	  to load): it, and if it is small the later small ones of the same owner
 *	  and lc_monetary, so that they share connections and session settings.
 *	  Marks them loaded; returns how many went into members.
 */
static int
group_with(RunState **rs, int n, int first, bool *loaded, RunState **members)
{
	ShardloadBatch *lead;
	int			k = 0;

	if (rs[first] == NULL || loaded[first] || rs[first]->failure != NULL)
		return 0;
	lead = rs[first]->batch;
	for (int i = first; i < n; i++)
	{
		ShardloadBatch *b;

		if (rs[i] == NULL || loaded[i] || rs[i]->failure != NULL)
			continue;
		b = rs[i]->batch;
		/* an atomic batch decides alone */
		if (i > first &&
			(lead->rows_total > GROUP_MAX_ROWS || b->rows_total > GROUP_MAX_ROWS ||
			 lead->atomic || b->atomic ||
			 b->owner != lead->owner ||
			 (b->lc_monetary == NULL) != (lead->lc_monetary == NULL) ||
			 (b->lc_monetary != NULL && strcmp(b->lc_monetary, lead->lc_monetary) != 0)))
			continue;
		loaded[i] = true;
		members[k++] = rs[i];
	}
	return k;
}

/*
 * begin_group
 *	  The begin step of a runner's group (rs[i]: NULL if there is nothing
 *	  to do): each batch begun on its own, so that one cancelled or purged
 *	  since the claim is skipped alone, but the attempts recorded all at
 *	  once.
 */
static void
begin_group(int64 *ids, bool *locked, int n, RunState **rs)
{
	RunState  **unmarked = palloc(sizeof(RunState *) * Max(n, 1));
	int			nunmarked = 0;

	for (int i = 0; i < n; i++)
		if (locked[i])
		{
			rs[i] = begin_member_caught(ids[i]);
			/* an atomic batch has marked its own */
			if (rs[i] != NULL && !rs[i]->batch->atomic)
				unmarked[nunmarked++] = rs[i];
		}
	ShardloadGroupMarkRunning(unmarked, nunmarked);
	pfree(unmarked);
}

/*
 * begin_member_caught
 *	  The begin step of one of a runner's batches, but for the rows that
 *	  ShardloadGroupMarkRunning writes for the group (an atomic batch, which
 *	  loads alone, writes its own): an error skips only this batch, with
 *	  nothing written.
 */
static RunState *
begin_member_caught(int64 batch_id)
{
	struct
	{
		int64		batch_id;
		RunState   *rs;
	}			step = {batch_id, NULL};
	ErrorData  *edata = ShardloadTryStep(begin_member_step, &step, false);

	if (edata == NULL)
		return step.rs;
	ereport(WARNING,
			(errmsg("batch %lld was not run: %s", (long long) batch_id, edata->message)));
	return NULL;
}

static void
begin_member_step(void *arg)
{
	struct
	{
		int64		batch_id;
		RunState   *rs;
	}		   *step = arg;
	RunState   *rs = check_attempt(step->batch_id);

	if (rs != NULL && rs->batch->atomic)
		mark_running(rs);
	if (rs != NULL)
		finish_begin(rs);
	step->rs = rs;
}

/*
 * commit_step
 *	  Commit what the attempt has done so far and go on in a new
 *	  transaction.  A CALL commits through its non-atomic SPI connection; a
 *	  background runner (which has no portal to hold a snapshot) commits
 *	  itself and keeps an active snapshot for the SPI calls that follow.
 *	  Either way the current memory context survives.
 */
static void
commit_step(bool runner)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (!runner)
	{
		SPI_commit();
		return;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* now() of the next step is its own start (committed_at, say) */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
}

/*
 * begin_attempt
 *	  Check the caller may run the batch and that it can run; count the
 *	  attempt.  Returns NULL when there is nothing to do.
 */
static RunState *
begin_attempt(int64 batch_id)
{
	RunState   *rs = check_attempt(batch_id);

	if (rs == NULL)
		return NULL;
	mark_running(rs);
	finish_begin(rs);
	return rs;
}

/*
 * check_attempt
 *	  Check the caller may run the batch and that it can run; the attempt
 *	  it would be, or NULL when there is nothing to do.  Writes nothing but
 *	  a deferral (an open circuit).
 */
static RunState *
check_attempt(int64 batch_id)
{
	ShardloadCatalogSession session;
	ShardloadBatch *batch;
	RunState   *rs;

	ShardloadCatalogBegin(&session);
	batch = ShardloadBatchFetch(&session, batch_id, true);
	ShardloadCatalogEnd(&session);
	ShardloadCheckBatchAccess(batch);
	if (!batch->payload_stored && batch->state != SHARDLOAD_BATCH_SUCCEEDED)
	{
		ShardloadDirectInterrupted(batch);
		return NULL;
	}

	if (batch->state == SHARDLOAD_BATCH_SUCCEEDED)
	{
		ereport(NOTICE,
				(errmsg("batch %lld has already succeeded", (long long) batch_id),
				 errdetail("Nothing was loaded again.")));
		return NULL;
	}
	if (batch->state == SHARDLOAD_BATCH_CANCELLED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("batch %lld is cancelled", (long long) batch_id),
				 errhint("Use shardload.replay(%lld) to queue it again.", (long long) batch_id)));
	if (batch->payload_purged)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payload of batch %lld was removed", (long long) batch_id),
				 errdetail("Payloads are kept for shardload.payload_retention after a batch finishes."),
				 errhint("Submit the rows again under a new batch key.")));

	if (defer_for_open_circuit(batch))
		return NULL;

	rs = palloc0(sizeof(RunState));
	rs->batch = batch;
	rs->stage = SHARDLOAD_STAGE_ROUTE;
	rs->attempt = batch->attempts + 1;
	return rs;
}

/*
 * mark_running
 *	  Count the attempt and record it as running, as a group's are.
 */
static void
mark_running(RunState *rs)
{
	ShardloadGroupMarkRunning(&rs, 1);
}

/*
 * finish_begin
 *	  What a counted attempt does before it loads: prepared slices that
 *	  earlier attempts left behind are ended first.
 */
static void
finish_begin(RunState *rs)
{
	ShardloadCatalogSession session;

	ShardloadCatalogBegin(&session);
	rs->coordinator_id = ShardloadCoordinatorId(&session);
	ShardloadCatalogEnd(&session);
	if (rs->batch->atomic)
		begin_atomic(rs);
	else
		recover_direct(rs);
}

/*
 * begin_atomic
 *	  An atomic batch's attempt ends what earlier ones left prepared first
 *	  (their slices' ledger rows would hold up its own), then records that
 *	  it may leave some itself, before anything is sent.
 */
static void
begin_atomic(RunState *rs)
{
	char	   *unresolved = ShardloadAtomicRecoverBatch(rs->batch->batch_id, rs->attempt,
															rs->batch->owner);

	if (unresolved != NULL)
	{
		rs->failure = unresolved_failure(rs, unresolved);
		return;
	}
	ShardloadAtomicBegin(rs->batch->batch_id, rs->attempt);
	rs->atomic_began = true;
}

/*
 * recover_direct
 *	  A batch that is not atomic may still have prepared slices on some
 *	  shard: those of a direct load whose end could not reach it
 *	  (direct_load.c).  They are ended first, or the attempt fails.
 */
static void
recover_direct(RunState *rs)
{
	char	   *unresolved = ShardloadAtomicRecoverBatch(rs->batch->batch_id, 1, rs->batch->owner);

	if (unresolved != NULL)
		rs->failure = unresolved_failure(rs, unresolved);
}

/*
 * unresolved_failure
 *	  The attempt cannot run: prepared slices of an earlier attempt are
 *	  still on a shard it cannot reach (TRANSIENT, as 08006).
 */
static ShardloadFailure *
unresolved_failure(RunState *rs, char *unresolved)
{
	return ShardloadFailureMake(SHARDLOAD_STAGE_CONNECT, NULL, "08006",
								psprintf("prepared transactions of an earlier attempt of batch %lld could not be ended",
										 (long long) rs->batch->batch_id),
								unresolved,
								"Recovery ends them once the server is reachable; shardload.in_doubt shows them.");
}

/*
 * defer_for_open_circuit
 *	  A batch whose remaining slices all wait for open circuits (an atomic
 *	  batch: any of them) is put off until the first probe time, without
 *	  an attempt.
 */
static bool
defer_for_open_circuit(ShardloadBatch *batch)
{
	ShardloadCatalogSession session;
	char	   *server = NULL;
	TimestampTz reopen = ShardloadCircuitDeferral(batch->batch_id, batch->atomic, &server);
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];

	if (reopen == 0)
		return false;
	values[0] = Int64GetDatum(batch->batch_id);
	values[1] = TimestampTzGetDatum(reopen);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.batch SET state = 'retry_wait', next_attempt_at = $2"
					 " WHERE batch_id = $1", 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
	ereport(NOTICE,
			(errmsg("batch %lld is deferred: the circuit of server \"%s\" is open",
					(long long) batch->batch_id, server),
			 errdetail("No attempt was used. The circuit lets a probe through at %s.",
					   timestamptz_to_str(reopen))));
	return true;
}

/*
 * load_group
 *	  Load the members' slices not yet committed, in a subtransaction so
 *	  that an error thrown anywhere becomes each member's recorded failure.
 */
static void
load_group(RunState **members, int n)
{
	ShardloadGroup group = {members, n, false, SHARDLOAD_STAGE_ROUTE};
	ErrorData  *edata = ShardloadTryStep(ShardloadLoadGroupStep, &group, true);
	bool		timed_out;

	if (edata == NULL)
		return;
	timed_out = edata->sqlerrcode == ERRCODE_QUERY_CANCELED && attempt_timed_out;
	attempt_timed_out = false;
	for (int m = 0; m < n; m++)
	{
		RunState   *rs = members[m];

		if (group.streamed)
			rs->stage = group.stage;
		rs->decided = false;	/* it went with the load step */
		rs->prepare_unanswered = true;	/* a PREPARE may still be on its way */
		rs->failure = ShardloadFailureFromError(edata, rs->stage, NULL);
		if (timed_out)
		{
			/* our own limit: record it as such, and the runner goes on */
			rs->failure->message = psprintf("attempt of batch %lld ran longer than %d ms",
											(long long) rs->batch->batch_id, shardload_attempt_timeout);
			rs->failure->detail = pstrdup("The limit is shardload.attempt_timeout.");
			rs->failure->hint = NULL;
			rs->failure->context = NULL;
		}
		else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			rs->cancel = edata; /* recorded first, then the caller gets it */
		for (int i = 0; i < rs->nslices; i++)
		{
			RunSlice   *slice = &rs->slices[i];

			/* local slices loaded in this attempt were rolled back with it */
			if (slice->local && !slice->was_committed)
				slice->committed = false;
			/* slices a shard committed before the error stay committed */
			if (slice->stream && slice->stream->committed)
			{
				slice->committed = true;
				ShardloadStreamRecordRejectsAgain(rs->batch->batch_id, slice->stream, slice->shard);
			}
		}
	}
}
