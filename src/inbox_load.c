/*-------------------------------------------------------------------------
 * inbox_load.c
 *	  The COPY path, loaded in the same command: with shardload.inbox_load
 *	  = 'now' or the inbox's option load 'now', a COPY into an inbox that
 *	  runs on its own (not inside a transaction block or a function)
 *	  commits its batch and runs it as CALL shardload.load does, before the
 *	  client gets its "COPY n".
 *
 *	  A utility hook wraps the COPY: it can commit, as a procedure's COMMIT
 *	  does, because the COPY is the whole of its transaction.  Inside a
 *	  transaction block (pgloader, a driver without autocommit) the batch is
 *	  loaded at the client's COMMIT instead, which the hook carries out
 *	  itself first; inside a function it is left to the background worker,
 *	  with a NOTICE.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "tcop/cmdtag.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/memutils.h"

#include "direct_load.h"
#include "metadata.h"
#include "inbox.h"
#include "pg_shardload.h"

int			shardload_inbox_load = SHARDLOAD_INBOX_LOAD_WORKER;

/* Batches of COPYs in the open transaction block, to load at its COMMIT. */
static List *at_commit = NIL;

static ProcessUtility_hook_type prev_process_utility = NULL;

static void inbox_load_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
							   ProcessUtilityContext context, ParamListInfo params,
							   QueryEnvironment *queryEnv, DestReceiver *dest,
							   QueryCompletion *qc);
static void commit_and_load(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
							ProcessUtilityContext context, ParamListInfo params,
							QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc);
static void commit_and_run(List *batches, bool block_end, bool top);
static void run_committed(int64 batch_id, bool top);
static bool batch_exists(int64 batch_id);
static void forget_at_end(XactEvent event, void *arg);
static void run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						ProcessUtilityContext context, ParamListInfo params,
						QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc);

/*
 * ShardloadInboxLoadInit
 *	  Install the hook (at library load).
 */
void
ShardloadInboxLoadInit(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = inbox_load_utility;
	RegisterXactCallback(forget_at_end, NULL);
}

static void
inbox_load_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		top = context == PROCESS_UTILITY_TOPLEVEL;
	int64		batch_id;

	if (IsA(stmt, TransactionStmt) && at_commit != NIL && top)
	{
		commit_and_load(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	if (!IsA(stmt, CopyStmt) || !((CopyStmt *) stmt)->is_from ||
		((CopyStmt *) stmt)->relation == NULL || ShardloadCopyNowRunning())
	{
		run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}

	/* as for CALL: only a statement of its own may commit */
	ShardloadCopyNowBegin((top || context == PROCESS_UTILITY_QUERY_NONATOMIC) && !IsTransactionBlock());
	PG_TRY();
	{
		uint64		processed;

		/* another utility hook below this one must see the COPY */
		if (prev_process_utility == NULL &&
			ShardloadInboxCopy((CopyStmt *) stmt, queryString, &processed))
		{
			if (qc)
				SetQueryCompletion(qc, CMDTAG_COPY, processed);
		}
		else
			run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		ShardloadCopyNowEnd();
	}
	PG_END_TRY();

	batch_id = ShardloadCopyNowTakeBatch();
	if (batch_id == 0)
		return;					/* not into an inbox that loads at once */
	if (ShardloadCopyNowLoads())
		commit_and_run(list_make1(&batch_id), false, top);
	else if (top && IsTransactionBlock())
	{
		/* loaded when the client's COMMIT has committed it */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		int64	   *id = palloc(sizeof(int64));

		*id = batch_id;
		at_commit = lappend(at_commit, id);
		MemoryContextSwitchTo(old);
	}
	else
		ereport(NOTICE,
				(errmsg("batch %lld is left to the background worker", (long long) batch_id),
				 errdetail("The COPY is to load it at once, but runs inside a function."),
				 errhint("Run the COPY on its own to load its batch at once, or CALL shardload.run(%lld) after COMMIT.",
						 (long long) batch_id)));
}

/*
 * commit_and_load
 *	  The client's COMMIT (or END) of a transaction block whose COPYs are to
 *	  load their batches at once: commit it here, then load them, each as
 *	  CALL shardload.run would, before the client gets its "COMMIT".  A
 *	  ROLLBACK (or a failed transaction) loads nothing; AND CHAIN leaves
 *	  them to the worker.
 */
static void
commit_and_load(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	TransactionStmt *stmt = (TransactionStmt *) pstmt->utilityStmt;
	List	   *batches = at_commit;

	if ((stmt->kind != TRANS_STMT_COMMIT) || stmt->chain)
	{
		run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	/* a COMMIT that rolls back says so in qc; one that commits, not yet */
	if (qc == NULL || qc->commandTag == CMDTAG_ROLLBACK)
		return;
	at_commit = NIL;			/* the commit below would forget them */
	commit_and_run(batches, true, true);
	list_free_deep(batches);
}

/*
 * commit_and_run
 *	  Commit the transaction that holds the batches (a COMMIT statement's:
 *	  block_end), then load each that exists (a ROLLBACK TO SAVEPOINT may
 *	  have taken one back), in a non-atomic SPI connection.  Their locks
 *	  are held from before the commit, so that the worker, which the commit
 *	  wakes, leaves them to us; they go in every case.  A batch whose lock
 *	  another session holds is its to run: not waited for.
 */
static void
commit_and_run(List *batches, bool block_end, bool top)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *held = NIL;
	ListCell   *lc;

	/* a batch another session runs (a resent key's) is left to it */
	foreach(lc, batches)
	{
		LOCKTAG		tag;

		ShardloadBatchLockTag(&tag, *(int64 *) lfirst(lc));
		if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
			held = lappend(held, lfirst(lc));
	}
	PG_TRY();
	{
		if (block_end)
		{
			CommitTransactionCommand();
			StartTransactionCommand();
			/* back in the statement's memory, which outlives transactions */
			MemoryContextSwitchTo(caller);
		}
		else
		{
			if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			SPI_commit();
			SPI_finish();
		}
		foreach(lc, held)
			run_committed(*(int64 *) lfirst(lc), top);
	}
	PG_FINALLY();
	{
		foreach(lc, held)
		{
			LOCKTAG		tag;

			ShardloadBatchLockTag(&tag, *(int64 *) lfirst(lc));
			LockRelease(&tag, ExclusiveLock, true);
		}
		list_free(held);
	}
	PG_END_TRY();
}

/*
 * run_committed
 *	  Load a committed batch (finish its direct load, or run one attempt)
 *	  in a non-atomic SPI connection.  At top level an error of the load is
 *	  a WARNING, not the error of the client's COPY or COMMIT: the batch is
 *	  in, the worker retries it, and a client that resent its rows on an
 *	  error would submit them again (under a "%n" key, as a new batch).
 *	  The failed transaction is rolled back and a new one begun, as a
 *	  procedure's ROLLBACK does; inside a procedure, whose SPI connection
 *	  that would take, the error goes on.
 */
static void
run_committed(int64 batch_id, bool top)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (ShardloadDirectPending(batch_id))
			ShardloadDirectFinish();
		else if (batch_exists(batch_id))
			(void) ShardloadRunBatch(batch_id, true, false);
		SPI_finish();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* a subtransaction left open could not be ended here */
		if (!top || IsSubTransaction())
			PG_RE_THROW();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* the abort frees the portal's snapshot: forget it, as SPI_rollback does */
		if (ActivePortal != NULL)
			ActivePortal->portalSnapshot = NULL;
		AbortCurrentTransaction();	/* also ends the SPI connections */
		StartTransactionCommand();
		MemoryContextSwitchTo(cxt);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("batch %lld is committed, but loading it failed: %s",
						(long long) batch_id, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The background worker retries it; shardload.batches shows its state.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

static bool
batch_exists(int64 batch_id)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	bool		found;

	ShardloadArgInt8(&args, batch_id);
	ShardloadCatalogBegin(&session);
	found = ShardloadSpiRun("SELECT 1 FROM shardload.batch WHERE batch_id = $1", &args) > 0;
	ShardloadCatalogEnd(&session);
	return found;
}

/*
 * forget_at_end
 *	  Batches to load at a COMMIT go to the worker if their transaction
 *	  ends any other way.
 */
static void
forget_at_end(XactEvent event, void *arg)
{
	ListCell   *lc;

	/* a commit not by a COMMIT statement: the end of a multi-statement query */
	if (event == XACT_EVENT_PRE_COMMIT)
		foreach(lc, at_commit)
			ereport(NOTICE,
					(errmsg("batch %lld is left to the background worker",
							(long long) *(int64 *) lfirst(lc)),
					 errdetail("The COPY is to load it at once, but its transaction ends without a COMMIT statement of its own (a query string of several statements, or COMMIT AND CHAIN)."),
					 errhint("Send the COPY as a statement of its own, or end its transaction with COMMIT.")));
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
	{
		list_free_deep(at_commit);
		at_commit = NIL;
	}
}

static void
run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}
