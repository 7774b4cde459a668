/*-------------------------------------------------------------------------
 * runner.c
 *	  Short-lived background workers: a runner runs attempts of due
 *	  batches (started by a scheduler or by shardload.run_due()), a job
 *	  runner the due ticks of one cron job.  A runner runs each attempt as
 *	  the role that submitted the batch; the batch's session lock keeps a
 *	  second runner out.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "atomic.h"
#include "conn_cache.h"
#include "jobs.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "wake.h"
#include "worker.h"

/* Batches one scheduler's runner runs before it makes way for a new one. */
#define RUNNER_MAX_BATCHES 2000
/* Due batches a runner claims at once (their steps share transactions). */
#define RUNNER_GROUP 20

/*
 * ShardloadClaimDueBatches
 *	  Up to max due batches, one per tenant per round, oldest first,
 *	  skipping those in running[] and those whose session lock is held.
 *	  With only_own, only the calling role's batches (unless it is an
 *	  admin).  Runs in the caller's transaction.
 */
int
ShardloadClaimDueBatches(int64 *ids, int max, int64 *running, int nrunning, bool only_own)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	Datum	   *elems = palloc(sizeof(Datum) * Max(nrunning, 1));
	Oid			user = GetUserId();
	int			n;

	for (int i = 0; i < nrunning; i++)
		elems[i] = Int64GetDatum(running[i]);
	ShardloadArg(&args, INT8ARRAYOID,
				 PointerGetDatum(construct_array(elems, nrunning, INT8OID, 8, true, TYPALIGN_DOUBLE)),
				 false);
	ShardloadArgInt4(&args, max);
	ShardloadArgOid(&args, user);
	ShardloadArgBool(&args, only_own && !ShardloadIsAdmin(user));
	ShardloadArgInt4(&args, shardload_naptime);

	ShardloadCatalogBegin(&session);
	/*
	 * The tenants that have waiting batches, found by skipping through
	 * batch_tenant_due_idx (one probe per tenant); then for each tenant its
	 * first $2 due batches from the same index.  So a claim reads at most
	 * tenants x $2 rows, however many batches are due.  Batches left
	 * "running" by a runner that died come from their own small index.
	 */
	ShardloadSpiRun("WITH RECURSIVE tenants(t) AS ("
					"   (SELECT coalesce(tenant, '') FROM shardload.batch"
					"    WHERE state IN ('pending', 'retry_wait')"
					"    ORDER BY coalesce(tenant, '') LIMIT 1)"
					"   UNION ALL"
					"   SELECT (SELECT coalesce(b.tenant, '') FROM shardload.batch b"
					"           WHERE b.state IN ('pending', 'retry_wait')"
					"             AND coalesce(b.tenant, '') > tenants.t"
					"           ORDER BY coalesce(b.tenant, '') LIMIT 1)"
					"   FROM tenants WHERE tenants.t IS NOT NULL)"
					" SELECT batch_id FROM ("
					" SELECT c.batch_id, row_number() OVER (PARTITION BY c.t ORDER BY c.due, c.batch_id) AS turn,"
					"   c.due"
					" FROM ("
					"   SELECT tenants.t, d.batch_id, d.due FROM tenants"
					"   CROSS JOIN LATERAL ("
					"     SELECT b.batch_id, coalesce(b.next_attempt_at, b.created_at) AS due"
					"     FROM shardload.batch b"
					"     WHERE b.state IN ('pending', 'retry_wait')"
					"       AND coalesce(b.tenant, '') = tenants.t"
					"       AND coalesce(b.next_attempt_at, b.created_at) <= now()"
					"       AND b.batch_id <> ALL ($1)"
					"       AND (NOT $4 OR b.owner = $3)"
					"     ORDER BY coalesce(b.next_attempt_at, b.created_at), b.batch_id"
					"     LIMIT $2) d"
					"   WHERE tenants.t IS NOT NULL"
					"   UNION ALL"
					"   SELECT coalesce(r.tenant, ''), r.batch_id, coalesce(r.next_attempt_at, r.created_at)"
					"   FROM shardload.batch r WHERE r.state = 'running'"
					"     AND r.batch_id <> ALL ($1)"
					"     AND (NOT $4 OR r.owner = $3)"
					"     AND NOT EXISTS (SELECT 1 FROM shardload.attempt a WHERE a.batch_id = r.batch_id"
					"       AND a.status = 'running'"
					"       AND a.started_at > now() - make_interval(secs => $5))"
					"     AND NOT EXISTS ("
					"       SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
					"       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
					"       AND l.classid::bigint = r.batch_id >> 32"
					"       AND l.objid::bigint = r.batch_id & 4294967295"
					"       AND l.objsubid = " CppAsString2(SHARDLOAD_LOCK_FIELD4) ")) c) e"
					" ORDER BY turn, due, batch_id LIMIT $2",
					&args);
	n = (int) SPI_processed;
	for (int i = 0; i < n; i++)
		ids[i] = ShardloadSpiInt64(i, 1, NULL);
	ShardloadCatalogEnd(&session);
	return n;
}

/*
 * ShardloadInitDynamicWorker
 *	  A dynamic worker of this library in this database (its OID first in
 *	  bgw_extra), never restarted; the caller names it and adds its data.
 */
void
ShardloadInitDynamicWorker(BackgroundWorker *worker, const char *function, const char *type)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker->bgw_library_name, "pg_shardload", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	memcpy(worker->bgw_extra, &MyDatabaseId, sizeof(Oid));
}

/*
 * ShardloadStartRunner
 *	  Start a dynamic worker for one attempt of batch_id; NULL if no
 *	  worker slot is free.  With notify, the runner's end sets our latch.
 */
BackgroundWorkerHandle *
ShardloadStartRunner(int64 batch_id, bool notify, bool keep_going)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	ShardloadInitDynamicWorker(&worker, "ShardloadRunnerMain", "pg_shardload runner");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_shardload runner for batch %lld",
			 (long long) batch_id);
	worker.bgw_main_arg = Int64GetDatum(batch_id);
	memcpy(worker.bgw_extra + sizeof(Oid), &keep_going, sizeof(bool));
	worker.bgw_notify_pid = notify ? MyProcPid : 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start background worker for batch %lld",
						(long long) batch_id),
				 errhint("Raise max_worker_processes or lower shardload.max_workers.")));
		return NULL;
	}
	return handle;
}

/*
 * ShardloadRunnerMain
 *	  One attempt of one batch, as the role that submitted it.
 */
void
ShardloadRunnerMain(Datum main_arg)
{
	int64		batch_id = DatumGetInt64(main_arg);
	Oid			database;
	MemoryContext cxt;
	bool		keep_going;
	int64		busy[RUNNER_MAX_BATCHES];
	int			nbusy = 0;

	memcpy(&database, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	memcpy(&keep_going, MyBgworkerEntry->bgw_extra + sizeof(Oid), sizeof(bool));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
	pgstat_report_appname("pg_shardload runner");
	/* whatever the database's default: recovery must see the latest decisions */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	/* shard connections outlive an attempt, for the runner's next batch */
	ShardloadConnCacheEnable();

	cxt = AllocSetContextCreate(TopMemoryContext, "pg_shardload runner",
								ALLOCSET_DEFAULT_SIZES);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
	if (batch_id == 0)
	{
		/* the scheduler's recovery runner: prepared slices left behind (atomic.c) */
		pgstat_report_activity(STATE_RUNNING, "pg_shardload: ending prepared transactions");
		(void) ShardloadAtomicRecoverAll(false);
	}
	else
	{
		pgstat_report_activity(STATE_RUNNING, psprintf("pg_shardload: batch %lld", (long long) batch_id));
		/* the load itself runs as the batch's owner, isolated (loader.c) */
		(void) ShardloadRunBatch(batch_id, false, true);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();

	/*
	 * A scheduler's runner goes on with the next due batch, sparing a
	 * process start per batch; a batch another runner holds is skipped.
	 */
	for (int done = 1; keep_going && done < RUNNER_MAX_BATCHES;)
	{
		int64		next[RUNNER_GROUP];
		bool		ran[RUNNER_GROUP];
		int			n;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		MemoryContextSwitchTo(cxt);
		n = ShardloadClaimDueBatches(next, Min(RUNNER_GROUP, RUNNER_MAX_BATCHES - done),
									 busy, nbusy, false);
		if (n == 0)
		{
			PopActiveSnapshot();
			CommitTransactionCommand();
			break;
		}
		pgstat_report_activity(STATE_RUNNING, n == 1 ?
							   psprintf("pg_shardload: batch %lld", (long long) next[0]) :
							   psprintf("pg_shardload: batches %lld and %d more",
										(long long) next[0], n - 1));
		ShardloadRunBatches(next, n, false, true, ran);
		for (int i = 0; i < n; i++)
			if (!ran[i] && nbusy < RUNNER_MAX_BATCHES)
				busy[nbusy++] = next[i];
		done += n;
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextReset(cxt);
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/*
 * ShardloadRunDue
 *	  Run up to max_batches due batches in runners and wait for them;
 *	  returns how many were started.  For schedulers outside the server
 *	  (cron); works without shared_preload_libraries.
 */
int
ShardloadRunDue(int max_batches)
{
	int64	   *ids = palloc(sizeof(int64) * Max(max_batches, 1));
	BackgroundWorkerHandle **handles = palloc0(sizeof(*handles) * Max(max_batches, 1));
	int			n;
	int			started = 0;

	/* prepared slices of atomic batches left behind go first (atomic.c) */
	(void) ShardloadAtomicRecoverAll(true);
	if (max_batches <= 0)
		return 0;
	n = ShardloadClaimDueBatches(ids, max_batches, NULL, 0, true);
	for (int i = 0; i < n; i++)
	{
		handles[i] = ShardloadStartRunner(ids[i], true, false);
		if (handles[i])
			started++;
	}
	for (int i = 0; i < n; i++)
		if (handles[i])
			(void) WaitForBackgroundWorkerShutdown(handles[i]);
	return started;
}

/*
 * ShardloadJobRunnerMain
 *	  The due ticks of one job (jobs.c), then exit.
 */
void
ShardloadJobRunnerMain(Datum main_arg)
{
	Oid			database;
	char		name[SHARDLOAD_JOB_RUNNER_NAME_MAX + 1];

	memcpy(&database, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	strlcpy(name, MyBgworkerEntry->bgw_extra + sizeof(Oid), sizeof(name));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
	pgstat_report_appname("pg_shardload job runner");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, psprintf("pg_shardload: job %s", name));
	if (OidIsValid(get_extension_oid("pg_shardload", true)))
		ShardloadRunJob(name);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
