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
 *	  The caller must be a non-atomic SPI connection (a CALL).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
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

#include "attempt.h"
#include "circuit.h"
#include "classify.h"
#include "connection.h"
#include "copy_stream.h"
#include "metadata.h"
#include "payload.h"
#include "pg_shardload.h"
#include "role_context.h"
#include "route_check.h"
#include "routing.h"
#include "stream_skip.h"
#include "subxact.h"
#include "value_forms.h"

/* Arguments of the steps run in subtransactions. */
typedef struct LocalSliceStep
{
	RunState   *rs;
	RunSlice   *slice;
	List	   *column_names;
} LocalSliceStep;

typedef struct ConnParamsStep
{
	StreamShard *sh;
	Oid			serverid;
	Oid			owner;
} ConnParamsStep;

static void run_locked(int64 batch_id, bool runner);
static void load_slices_step(void *arg);
static void local_slice_step(void *arg);
static void conn_params_step(void *arg);
static bool defer_for_open_circuit(ShardloadBatch *batch);
static void commit_step(bool runner);

/* shardload.attempt_timeout of runners: its timer, and whether it fired */
static TimeoutId attempt_timeout_id = 0;
static volatile sig_atomic_t attempt_timed_out = false;
static void attempt_timeout_handler(void);
static void disarm_attempt_timeout(void);
static RunState *begin_attempt(int64 batch_id);
static void load_batch(RunState *rs);
static void load_slices(RunState *rs);
static void load_local_slice(RunState *rs, RunSlice *slice, List *column_names);
static StreamSlice *stream_slice_for(RunSlice *slice, ShardloadRouter *router);
static void read_slices(RunState *rs);
static bool batch_cannot_run(RunState *rs, ShardloadRouter *router);
static void plan_foreign_slice(RunState *rs, RunSlice *slice, ShardloadRouter *router,
							   List **servers, List **shard_list);
static void stream_foreign_slices(RunState *rs, List *servers, List *shard_list);
static bool destination_changed(ShardloadBatch *batch, RunSlice *slice,
								ShardloadRouter *router);
static void skip_known_rejects(int64 batch_id, StreamSlice *ss);
static int64 count_rejects(int64 batch_id);

/*
 * ShardloadRunBatch
 *	  Run one attempt of batch_id now.  While another session runs the same
 *	  batch, waits for it (wait) or returns false at once.  Commits several
 *	  times.
 */
bool
ShardloadRunBatch(int64 batch_id, bool wait, bool runner)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (batch_id >> 32),
						 (uint32) batch_id, SHARDLOAD_LOCK_FIELD4);
	if (LockAcquire(&tag, ExclusiveLock, true, !wait) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	PG_TRY();
	{
		run_locked(batch_id, runner);
	}
	PG_FINALLY();
	{
		disarm_attempt_timeout();
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();
	return true;
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
 *	  The attempt, with the batch's lock held: begin, load, record, each
 *	  step committed.  runner: a background runner drives it (no CALL, no
 *	  portal), with shardload.attempt_timeout.
 */
static void
run_locked(int64 batch_id, bool runner)
{
	RunState   *rs;

	rs = begin_attempt(batch_id);
	commit_step(runner);
	if (rs == NULL)
		return;

	/* an attempt in the background has a time limit of its own */
	if (runner && shardload_attempt_timeout > 0)
	{
		if (attempt_timeout_id == 0)
			attempt_timeout_id = RegisterTimeout(USER_TIMEOUT, attempt_timeout_handler);
		attempt_timed_out = false;
		enable_timeout_after(attempt_timeout_id, shardload_attempt_timeout);
	}
	load_batch(rs);
	disarm_attempt_timeout();
	commit_step(runner);

	ShardloadRecordOutcome(rs);
	commit_step(runner);
	if (rs->cancel)
		ReThrowError(rs->cancel);
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
	ShardloadCatalogSession session;
	ShardloadBatch *batch;
	RunState   *rs;
	Oid			argtypes[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3];

	ShardloadCatalogBegin(&session);
	batch = ShardloadBatchFetch(&session, batch_id, true);
	ShardloadCatalogEnd(&session);
	ShardloadCheckBatchAccess(batch);

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
	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(rs->attempt);
	values[2] = Int32GetDatum(MyProcPid);

	ShardloadCatalogBegin(&session);
	/* we hold the batch's lock: a "running" attempt is one that died */
	ShardloadSpiExec("UPDATE shardload.attempt SET status = 'interrupted',"
					 " finished_at = clock_timestamp(),"
					 " message = 'the attempt ended without recording its outcome'"
					 " WHERE batch_id = $1 AND status = 'running'",
					 1, argtypes, values, NULL);
	ShardloadSpiExec("UPDATE shardload.batch SET state = 'running', attempts = $2,"
					 " next_attempt_at = NULL, finished_at = NULL WHERE batch_id = $1",
					 2, argtypes, values, NULL);
	ShardloadSpiExec("INSERT INTO shardload.attempt (batch_id, attempt, runner_pid)"
					 " VALUES ($1, $2, $3)", 3, argtypes, values, NULL);

	/*
	 * Pin each slice still to be loaded to the database its server reached
	 * last, before anything is sent: if this attempt's outcome is lost, the
	 * next one knows where the slice may have gone (the record step puts
	 * where it did go).
	 */
	ShardloadSpiExec("UPDATE shardload.slice s SET shard_identity = st.identity"
					 " FROM shardload.shard_state st"
					 " WHERE s.batch_id = $1 AND s.shard_identity IS NULL AND s.state <> 'committed'"
					 " AND st.server = s.shard AND st.identity IS NOT NULL",
					 1, argtypes, values, NULL);
	rs->coordinator_id = ShardloadCoordinatorId(&session);
	ShardloadCatalogEnd(&session);
	return rs;
}

/*
 * defer_for_open_circuit
 *	  A batch whose remaining slices all wait for open circuits is put off
 *	  until the first probe time, without an attempt.
 */
static bool
defer_for_open_circuit(ShardloadBatch *batch)
{
	ShardloadCatalogSession session;
	char	   *server = NULL;
	TimestampTz reopen = ShardloadCircuitDeferral(batch->batch_id, &server);
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
 * load_batch
 *	  Load every slice not yet committed, in a subtransaction so that an
 *	  error thrown anywhere becomes the attempt's recorded failure.
 */
static void
load_batch(RunState *rs)
{
	ErrorData  *edata = ShardloadTryStep(load_slices_step, rs, true);

	if (edata == NULL)
		return;
	rs->failure = ShardloadFailureFromError(edata, rs->stage, NULL);
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && attempt_timed_out)
	{
		/* our own limit: record it as such, and the runner goes on */
		rs->failure->message = psprintf("attempt of batch %lld ran longer than %d ms",
										(long long) rs->batch->batch_id, shardload_attempt_timeout);
		rs->failure->detail = pstrdup("The limit is shardload.attempt_timeout.");
		rs->failure->hint = NULL;
		rs->failure->context = NULL;
		attempt_timed_out = false;
	}
	else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		rs->cancel = edata;		/* recorded first, then the caller gets it */
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		/* local slices loaded in this attempt were rolled back with it */
		if (slice->local && !slice->was_committed)
			slice->committed = false;
		/* slices a shard committed before the error stay committed */
		if (slice->stream && slice->stream->committed)
			slice->committed = true;
	}
}

/*
 * load_slices_step
 *	  The load runs as the batch's owner, whoever runs it (runner, run_due,
 *	  an admin's CALL): the owner's rights and user mappings, its triggers
 *	  in a security-restricted operation, nothing left behind.
 */
static void
load_slices_step(void *arg)
{
	RunState   *rs = (RunState *) arg;
	ShardloadRoleContext role;

	ShardloadCheckRoleExists(rs->batch->owner,
							 psprintf("batch %lld", (long long) rs->batch->batch_id));
	ShardloadBecomeRole(&role, rs->batch->owner, NULL);
	load_slices(rs);
	ShardloadRestoreRole(&role);
}

/*
 * load_slices
 *	  Route checks, then local slices one by one, then all foreign slices
 *	  streamed at once.
 */
static void
load_slices(RunState *rs)
{
	ShardloadBatch *batch = rs->batch;
	Relation	target;
	ShardloadRouter *router;
	List	   *column_names;
	List	   *servers = NIL;
	List	   *shard_list = NIL;

	read_slices(rs);
	target = try_relation_open(batch->target, AccessShareLock);
	if (target == NULL)
	{
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P01",
										   psprintf("relation \"%s\" does not exist", batch->target_name),
										   NULL, NULL);
		return;
	}
	router = ShardloadRouterCreate(target);
	column_names = ShardloadColumnNameList(router);
	if (batch_cannot_run(rs, router))
	{
		table_close(target, AccessShareLock);
		return;
	}

	/* local slices first, each on its own; foreign ones grouped by server */
	rs->stage = SHARDLOAD_STAGE_COPY;
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];
		char		relkind;

		if (slice->committed)
			continue;
		relkind = get_rel_relkind(slice->partition);
		if (relkind == '\0' || !get_rel_relispartition(slice->partition) ||
			get_partition_parent(slice->partition, true) != batch->target)
		{
			slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P01",
												  psprintf("partition of slice %d is no longer a partition of \"%s\"",
														   slice->slice_no, RelationGetRelationName(target)),
												  NULL, NULL);
			continue;
		}
		if (destination_changed(batch, slice, router))
			continue;
		if (relkind == RELKIND_RELATION)
			load_local_slice(rs, slice, column_names);
		else if (relkind == RELKIND_FOREIGN_TABLE)
			plan_foreign_slice(rs, slice, router, &servers, &shard_list);
		else
			slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "0A000",
												  psprintf("partition \"%s\" is neither a table nor a foreign table",
														   get_rel_name(slice->partition)),
												  NULL, NULL);
	}
	stream_foreign_slices(rs, servers, shard_list);
	table_close(target, AccessShareLock);
}

/*
 * read_slices
 *	  The batch's slices as this attempt sees them, into rs.
 */
static void
read_slices(RunState *rs)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(rs->batch->batch_id)};

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT slice_no, coalesce(partition::oid, 0), rows, state,"
					 " first_row_line, first_row_detail, bytes, route_signature, shard_identity"
					 " FROM shardload.slice WHERE batch_id = $1 ORDER BY slice_no",
					 1, argtypes, values, NULL);
	rs->nslices = (int) SPI_processed;
	rs->slices = MemoryContextAllocZero(session.outer, sizeof(RunSlice) * Max(rs->nslices, 1));
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		slice->slice_no = (int) ShardloadSpiInt64(i, 1, NULL);
		slice->partition = (Oid) ShardloadSpiInt64(i, 2, NULL);
		slice->rows = ShardloadSpiInt64(i, 3, NULL);
		slice->was_committed = strcmp(ShardloadSpiText(&session, i, 4), "committed") == 0;
		slice->committed = slice->was_committed;
		slice->first_line = ShardloadSpiInt64(i, 5, NULL);
		slice->first_detail = ShardloadSpiText(&session, i, 6);
		slice->bytes = ShardloadSpiInt64(i, 7, NULL);
		slice->signature = ShardloadSpiText(&session, i, 8);
		slice->identity = ShardloadSpiText(&session, i, 9);
		/* only 0.2+ captures sign their slices and write fixed forms */
		rs->fixed_forms |= slice->signature != NULL;
	}
	ShardloadCatalogEnd(&session);
}

/*
 * batch_cannot_run
 *	  The checks of the whole batch before anything is sent; true (with
 *	  rs->failure set) if one fails.
 */
static bool
batch_cannot_run(RunState *rs, ShardloadRouter *router)
{
	ShardloadBatch *batch = rs->batch;
	const char *relname = RelationGetRelationName(router->rel);

	if (strcmp(batch->columns, ShardloadColumnListText(router)) != 0)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P16",
										   psprintf("columns of table \"%s\" changed since batch %lld was submitted",
													relname, (long long) batch->batch_id),
										   psprintf("The rows were captured for (%s); the table now has (%s).",
													batch->columns, ShardloadColumnListText(router)),
										   "Submit the rows again under a new batch key.");
	else if (pg_class_aclcheck(batch->target, batch->owner, ACL_INSERT) != ACLCHECK_OK)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42501",
										   psprintf("permission denied for table %s", relname),
										   psprintf("Role \"%s\" submitted the batch and no longer has INSERT on it.",
													GetUserNameFromId(batch->owner, false)),
										   NULL);
	else if (batch->rows_rejected > batch->reject_limit)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "22000",
										   psprintf("batch has %lld rejected rows, more than its reject_limit of %lld",
													(long long) batch->rows_rejected,
													(long long) batch->reject_limit),
										   "No slice was sent. The rows and their reasons are in shardload.rejects.",
										   NULL);
	else if (rs->nslices > 0 && rs->slices[0].slice_no == 0)
	{
		RunSlice   *bad = &rs->slices[0];

		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "23514",
										   psprintf("no partition of relation \"%s\" found for row", relname),
										   psprintf("Partition key of the failing row contains %s (line %lld); "
													"%lld rows of the batch fit no partition.",
													bad->first_detail, (long long) bad->first_line,
													(long long) bad->rows),
										   NULL);
	}
	return rs->failure != NULL;
}

/*
 * plan_foreign_slice
 *	  Put a foreign partition's slice on its server's stream (*servers and
 *	  *shard_list, one entry per server), unless the server's circuit is
 *	  open.
 */
static void
plan_foreign_slice(RunState *rs, RunSlice *slice, ShardloadRouter *router,
				   List **servers, List **shard_list)
{
	Oid			serverid = GetForeignTable(slice->partition)->serverid;
	char	   *servername = GetForeignServer(serverid)->servername;
	StreamShard *sh = NULL;
	TimestampTz reopen;
	ListCell   *lc;
	ListCell   *sc;

	slice->shard = servername;
	if (ShardloadCircuitOpen(servername, &reopen))
	{
		slice->deferred = true;
		slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_CONNECT, servername, "08000",
											  psprintf("circuit of server \"%s\" is open until %s; the slice was not sent",
													   servername, timestamptz_to_str(reopen)),
											  NULL, NULL);
		return;
	}
	forboth(lc, *servers, sc, *shard_list)
	{
		if (lfirst_oid(lc) == serverid)
			sh = lfirst(sc);
	}
	if (sh == NULL)
	{
		sh = palloc0(sizeof(StreamShard));
		sh->slices = palloc0(sizeof(StreamSlice *) * rs->nslices);
		*servers = lappend_oid(*servers, serverid);
		*shard_list = lappend(*shard_list, sh);
	}
	slice->stream = stream_slice_for(slice, router);
	/* tried before, outcome maybe unknown: only to the same database */
	slice->stream->expected_identity = rs->attempt > 1 ? slice->identity : NULL;
	if (strcmp(rs->batch->on_error, "reject") == 0)
	{
		slice->stream->reject_mode = true;
		skip_known_rejects(rs->batch->batch_id, slice->stream);
	}
	sh->slices[sh->nslices++] = slice->stream;
}

/*
 * stream_foreign_slices
 *	  Connection parameters per server (a missing user mapping fails only
 *	  its server), then every server's slices streamed at once; the
 *	  outcome goes back to the attempt's slices.
 */
static void
stream_foreign_slices(RunState *rs, List *servers, List *shard_list)
{
	ShardloadBatch *batch = rs->batch;
	StreamShard **shards = palloc0(sizeof(StreamShard *) * Max(list_length(shard_list), 1));
	StreamBatch stream_batch;
	int			nshards = 0;
	ListCell   *lc;
	ListCell   *lc2;

	forboth(lc, servers, lc2, shard_list)
	{
		StreamShard *sh = lfirst(lc2);
		ConnParamsStep step = {sh, lfirst_oid(lc), batch->owner};
		ErrorData  *edata = ShardloadTryStep(conn_params_step, &step, false);

		if (edata == NULL)
			shards[nshards++] = sh;
		else
		{
			ShardloadFailure *f = ShardloadFailureFromError(edata, SHARDLOAD_STAGE_CONNECT,
													 GetForeignServer(step.serverid)->servername);

			for (int i = 0; i < sh->nslices; i++)
				sh->slices[i]->failure = f;
		}
	}

	memset(&stream_batch, 0, sizeof(stream_batch));
	stream_batch.reject_budget = batch->reject_limit - count_rejects(batch->batch_id);
	stream_batch.batch_id = batch->batch_id;
	stream_batch.target = batch->target;
	stream_batch.coordinator_id = rs->coordinator_id;
	stream_batch.content_hash = batch->content_hash;
	stream_batch.lc_monetary = batch->lc_monetary;
	stream_batch.fixed_forms = rs->fixed_forms;
	stream_batch.stage_out = &rs->stage;
	ShardloadStreamSlices(&stream_batch, shards, nshards);

	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		if (slice->stream == NULL)
			continue;
		slice->committed = slice->stream->committed;
		if (slice->stream->failure)
			slice->failure = slice->stream->failure;
	}
}

/*
 * load_local_slice
 *	  COPY one slice into its local partition and mark it committed, both
 *	  in a subtransaction: a bad slice fails alone.
 */
static void
load_local_slice(RunState *rs, RunSlice *slice, List *column_names)
{
	LocalSliceStep step = {rs, slice, column_names};
	ErrorData  *edata;

	slice->local = true;
	edata = ShardloadTryStep(local_slice_step, &step, false);
	if (edata == NULL)
		slice->committed = true;
	else
		slice->failure = ShardloadFailureFromError(edata, SHARDLOAD_STAGE_COPY, NULL);
}

/*
 * local_slice_step
 *	  Lock the slice's row and load it only if it is not committed yet:
 *	  the right to load it is decided in the transaction that loads it, so
 *	  no interleaving of runs (nor user code releasing the batch's lock)
 *	  loads it twice.  The COPY reads the fixed value forms.
 */
static void
local_slice_step(void *arg)
{
	LocalSliceStep *step = arg;
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	int			nestlevel;
	bool		done;

	values[0] = Int64GetDatum(step->rs->batch->batch_id);
	values[1] = Int32GetDatum(step->slice->slice_no);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT state = 'committed' FROM shardload.slice"
					 " WHERE batch_id = $1 AND slice_no = $2 FOR UPDATE",
					 2, argtypes, values, NULL);
	done = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false}));
	ShardloadCatalogEnd(&session);
	if (done)
	{
		step->slice->was_committed = true;	/* another run loaded it */
		return;
	}

	nestlevel = NewGUCNestLevel();
	if (step->rs->fixed_forms)
		ShardloadSetReadSettings(step->rs->batch->lc_monetary);
	ShardloadLoadLocalSlice(step->rs->batch->batch_id, step->slice->slice_no,
							step->slice->partition, step->column_names);
	AtEOXact_GUC(false, nestlevel);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.slice SET state = 'committed',"
					 " committed_at = now(), shard = NULL"
					 " WHERE batch_id = $1 AND slice_no = $2",
					 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}

static void
conn_params_step(void *arg)
{
	ConnParamsStep *step = arg;

	step->sh->params = ShardloadConnParams(step->serverid, step->owner);
}

/*
 * stream_slice_for
 *	  The COPY command for a foreign partition's slice, with the remote
 *	  table and column names from the foreign table's options.
 */
static StreamSlice *
stream_slice_for(RunSlice *slice, ShardloadRouter *router)
{
	StreamSlice *ss = palloc0(sizeof(StreamSlice));

	ss->slice_no = slice->slice_no;
	ss->rows = slice->rows;
	ss->bytes = slice->bytes;
	ss->remote_table = ShardloadRemoteTable(slice->partition);
	ss->copy_sql = psprintf("COPY %s %s FROM STDIN", ss->remote_table,
							ShardloadRemoteColumns(slice->partition, router));
	return ss;
}

/*
 * destination_changed
 *	  A slice whose partition was re-attached with another bound, moved to
 *	  another server, table or columns since capture fails at ROUTE: its
 *	  rows were routed for the old destination.
 */
static bool
destination_changed(ShardloadBatch *batch, RunSlice *slice, ShardloadRouter *router)
{
	char	   *now;

	if (slice->signature == NULL)
		return false;			/* captured before 0.2 */
	now = ShardloadSliceSignature(slice->partition, router);
	if (strcmp(now, slice->signature) == 0)
		return false;
	slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P16",
										  psprintf("partition \"%s\" of slice %d changed since batch %lld was submitted",
												   get_rel_name(slice->partition), slice->slice_no,
												   (long long) batch->batch_id),
										  psprintf("At submit: %s. Now: %s.", slice->signature, now),
										  "The rows were routed for the old partition; submit them again under a new batch key.");
	return true;
}

/*
 * skip_known_rejects
 *	  Rows the shard refused in earlier attempts are not sent again.
 */
static void
skip_known_rejects(int64 batch_id, StreamSlice *ss)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(ss->slice_no);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT slice_line, sqlstate || ' ' || message FROM shardload.reject"
					 " WHERE batch_id = $1 AND slice_no = $2 ORDER BY slice_line",
					 2, argtypes, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *reason = ShardloadSpiText(&session, i, 2);
		MemoryContext old = MemoryContextSwitchTo(session.outer);

		ShardloadStreamSliceSkip(ss, ShardloadSpiInt64(i, 1, NULL), reason);
		MemoryContextSwitchTo(old);
	}
	ShardloadCatalogEnd(&session);
}

static int64
count_rejects(int64 batch_id)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	int64		n;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT count(*) FROM shardload.reject WHERE batch_id = $1",
					 1, argtypes, values, NULL);
	n = ShardloadSpiInt64(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	return n;
}
