/*-------------------------------------------------------------------------
 * worker.c
 *	  Background workers: one scheduler per database named in
 *	  shardload.database (started from shared_preload_libraries), and one
 *	  short-lived runner per batch attempt, started by a scheduler or by
 *	  shardload.run_due().
 *
 *	  A scheduler wakes every shardload.naptime, and at once when a batch
 *	  is submitted, claims due batches (pending, retry_wait whose time has
 *	  come, or running under a lock nobody holds any more: its runner died)
 *	  taking one batch of each tenant per round, and keeps up to
 *	  shardload.max_workers runners busy.  A runner runs one attempt as the
 *	  role that submitted the batch; the batch's session lock keeps a
 *	  second runner out.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
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

#include "jobs.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "wake.h"
#include "worker.h"



/* Batches one scheduler's runner runs before it makes way for a new one. */
#define RUNNER_MAX_BATCHES 200

/* The job runners one scheduler has started, by job name. */
#define MAX_JOB_RUNNERS 64
typedef struct JobRunners
{
	BackgroundWorkerHandle *handles[MAX_JOB_RUNNERS];
	char	   *names[MAX_JOB_RUNNERS];
} JobRunners;

/* bgw_extra of a job runner: the database's OID, then the job's name. */
#define JOB_NAME_MAX	(BGW_EXTRALEN - sizeof(Oid) - 1)

static int	claim_due_batches(int64 *ids, int max, int64 *running, int nrunning,
							  bool only_own);
static BackgroundWorkerHandle *start_runner(int64 batch_id, bool notify, bool keep_going);
static void start_job_runners(JobRunners *runners, List *due);

/*
 * ShardloadWorkerInit
 *	  From _PG_init while preloading: shared memory for the wake-up
 *	  registry and one scheduler per database in shardload.database.
 */
void
ShardloadWorkerInit(void)
{
	List	   *names;
	ListCell   *lc;
	char	   *list = pstrdup(shardload_database);
	int			n = 0;

	ShardloadWakeInit();

	if (!SplitIdentifierString(list, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in parameter \"shardload.database\"")));
	foreach(lc, names)
	{
		BackgroundWorker worker;

		if (++n > SHARDLOAD_MAX_SCHEDULERS)
		{
			ereport(WARNING,
					(errmsg("pg_shardload serves at most %d databases", SHARDLOAD_MAX_SCHEDULERS),
					 errdetail("Database \"%s\" and those after it get no scheduler.",
							   (char *) lfirst(lc))));
			break;
		}
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_shardload");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "ShardloadSchedulerMain");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_shardload scheduler for %s",
				 (char *) lfirst(lc));
		snprintf(worker.bgw_type, BGW_MAXLEN, "pg_shardload scheduler");
		strlcpy(worker.bgw_extra, lfirst(lc), BGW_EXTRALEN);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * The scheduler's batch runners: slot i runs batch running[i] while
 * handles[i] is set.
 */
#define RUNNER_SLOTS 64			/* shardload.max_workers is capped at 64 */
typedef struct RunnerSlots
{
	BackgroundWorkerHandle *handles[RUNNER_SLOTS];
	int64		running[RUNNER_SLOTS];
} RunnerSlots;

static int	reap_runners(RunnerSlots *slots);
static int	find_due_work(RunnerSlots *slots, int free_slots, int64 *ids, List **due_jobs,
						  TimestampTz *next_tick);
static void start_batch_runners(RunnerSlots *slots, int64 *ids, int n);
static void nap(TimestampTz next_tick);

/*
 * ShardloadSchedulerMain
 *	  One database's scheduler; bgw_extra holds the database name.  Each
 *	  turn: forget finished runners, find due batches and cron jobs (in a
 *	  transaction), start their runners, nap until the naptime, the next
 *	  cron tick or a wake-up.
 */
void
ShardloadSchedulerMain(Datum main_arg)
{
	char		dbname[BGW_EXTRALEN];
	RunnerSlots *slots;
	MemoryContext tick_cxt;
	JobRunners	job_runners;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("pg_shardload scheduler");
	ShardloadSchedulerRegister();

	slots = MemoryContextAllocZero(TopMemoryContext, sizeof(RunnerSlots));
	tick_cxt = AllocSetContextCreate(TopMemoryContext, "pg_shardload tick",
									 ALLOCSET_DEFAULT_SIZES);
	memset(&job_runners, 0, sizeof(job_runners));
	elog(LOG, "pg_shardload scheduler started for database \"%s\"", dbname);

	for (;;)
	{
		int64	   *ids;
		int			free_slots;
		int			n;
		TimestampTz next_tick = DT_NOEND;
		List	   *due_jobs = NIL;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		free_slots = Min(shardload_max_workers, RUNNER_SLOTS) - reap_runners(slots);

		/* what is found must outlive its transaction: due jobs, batch ids */
		MemoryContextSwitchTo(tick_cxt);
		ids = palloc(sizeof(int64) * Max(free_slots, 1));
		n = find_due_work(slots, free_slots, ids, &due_jobs, &next_tick);
		/* each due job ticks in a process of its own: a slow one holds up no other */
		MemoryContextSwitchTo(TopMemoryContext);
		start_job_runners(&job_runners, due_jobs);
		start_batch_runners(slots, ids, n);
		MemoryContextReset(tick_cxt);
		nap(next_tick);
	}
}

/*
 * reap_runners
 *	  Forget runners that have finished; returns how many still run.
 */
static int
reap_runners(RunnerSlots *slots)
{
	int			nrunning = 0;

	for (int i = 0; i < RUNNER_SLOTS; i++)
	{
		pid_t		pid;

		if (slots->handles[i] &&
			GetBackgroundWorkerPid(slots->handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(slots->handles[i]);
			slots->handles[i] = NULL;
			slots->running[i] = 0;
		}
		if (slots->handles[i])
			nrunning++;
	}
	return nrunning;
}

/*
 * find_due_work
 *	  In a transaction of its own: the due cron jobs (into *due_jobs, in
 *	  the current memory context), the next tick of any job, and up to
 *	  free_slots due batches not already running (into ids; returns how
 *	  many).  Nothing while the server is in recovery or the extension is
 *	  not installed (yet).
 */
static int
find_due_work(RunnerSlots *slots, int free_slots, int64 *ids, List **due_jobs,
			  TimestampTz *next_tick)
{
	MemoryContext cxt = CurrentMemoryContext;
	int64		busy[RUNNER_SLOTS];
	int			nbusy = 0;
	int			n = 0;

	if (RecoveryInProgress())
		return 0;
	for (int i = 0; i < RUNNER_SLOTS; i++)
		if (slots->handles[i])
			busy[nbusy++] = slots->running[i];
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_RUNNING, "pg_shardload: looking for due batches");
	if (OidIsValid(get_extension_oid("pg_shardload", true)) && !creating_extension)
	{
		*next_tick = ShardloadDueJobs(due_jobs);
		if (free_slots > 0)
			n = claim_due_batches(ids, free_slots, busy, nbusy, false);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

/*
 * start_batch_runners
 *	  A runner for each of the n batches in ids, in free slots.
 */
static void
start_batch_runners(RunnerSlots *slots, int64 *ids, int n)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < RUNNER_SLOTS; i++)
			if (slots->handles[i] == NULL)
			{
				slots->handles[i] = start_runner(ids[j], true, true);
				slots->running[i] = ids[j];
				break;
			}
}

/*
 * nap
 *	  Sleep for shardload.naptime, or until the next cron tick if it comes
 *	  sooner (a tick already past is one whose batch failed: naptime paces
 *	  it), or until woken.
 */
static void
nap(TimestampTz next_tick)
{
	long		timeout = shardload_naptime * 1000L;	/* as just reloaded */

	if (next_tick != DT_NOEND && next_tick > GetCurrentTimestamp())
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(), next_tick, &secs, &usecs);
		timeout = Min(timeout, secs * 1000L + usecs / 1000 + 1);
	}
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/*
 * claim_due_batches
 *	  Up to max due batches, one per tenant per round, oldest first,
 *	  skipping those in running[] and those whose session lock is held.
 *	  With only_own, only the calling role's batches (unless it is an
 *	  admin).  Runs in the caller's transaction.
 */
static int
claim_due_batches(int64 *ids, int max, int64 *running, int nrunning, bool only_own)
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
	ShardloadSpiRun("SELECT batch_id FROM ("
					" SELECT b.batch_id, row_number() OVER (PARTITION BY coalesce(b.tenant, '')"
					"   ORDER BY coalesce(b.next_attempt_at, b.created_at), b.batch_id) AS turn,"
					"   coalesce(b.next_attempt_at, b.created_at) AS due"
					" FROM ("
					/* each branch reads a partial index, not the whole history */
					"   SELECT * FROM shardload.batch WHERE state IN ('pending', 'retry_wait')"
					"     AND coalesce(next_attempt_at, '-infinity') <= now()"
					"   UNION ALL"
					"   SELECT * FROM shardload.batch r WHERE r.state = 'running'"
					"     AND NOT EXISTS (SELECT 1 FROM shardload.attempt a WHERE a.batch_id = r.batch_id"
					"       AND a.status = 'running'"
					"       AND a.started_at > now() - make_interval(secs => $5))"
					"     AND NOT EXISTS ("
					"       SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
					"       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
					"       AND l.classid::bigint = r.batch_id >> 32"
					"       AND l.objid::bigint = r.batch_id & 4294967295"
					"       AND l.objsubid = " CppAsString2(SHARDLOAD_LOCK_FIELD4) ")) b"
					" WHERE b.batch_id <> ALL ($1)"
					"   AND (NOT $4 OR b.owner = $3)) d"
					" ORDER BY turn, due, batch_id LIMIT $2",
					&args);
	n = (int) SPI_processed;
	for (int i = 0; i < n; i++)
		ids[i] = ShardloadSpiInt64(i, 1, NULL);
	ShardloadCatalogEnd(&session);
	return n;
}

/*
 * start_runner
 *	  Start a dynamic worker for one attempt of batch_id; NULL if no
 *	  worker slot is free.  With notify, the runner's end sets our latch.
 */
static BackgroundWorkerHandle *
start_runner(int64 batch_id, bool notify, bool keep_going)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_shardload");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ShardloadRunnerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_shardload runner for batch %lld",
			 (long long) batch_id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_shardload runner");
	worker.bgw_main_arg = Int64GetDatum(batch_id);
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
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

	cxt = AllocSetContextCreate(TopMemoryContext, "pg_shardload runner",
								ALLOCSET_DEFAULT_SIZES);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_RUNNING, psprintf("pg_shardload: batch %lld", (long long) batch_id));
	/* the load itself runs as the batch's owner, isolated (loader.c) */
	(void) ShardloadRunBatch(batch_id, false, true);
	PopActiveSnapshot();
	CommitTransactionCommand();

	/*
	 * A scheduler's runner goes on with the next due batch, sparing a
	 * process start per batch; a batch another runner holds is skipped.
	 */
	for (int done = 1; keep_going && done < RUNNER_MAX_BATCHES; done++)
	{
		int64		next;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		MemoryContextSwitchTo(cxt);
		if (claim_due_batches(&next, 1, busy, nbusy, false) == 0)
		{
			PopActiveSnapshot();
			CommitTransactionCommand();
			break;
		}
		pgstat_report_activity(STATE_RUNNING, psprintf("pg_shardload: batch %lld", (long long) next));
		if (!ShardloadRunBatch(next, false, true) && nbusy < RUNNER_MAX_BATCHES)
			busy[nbusy++] = next;
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

	if (max_batches <= 0)
		return 0;
	n = claim_due_batches(ids, max_batches, NULL, 0, true);
	for (int i = 0; i < n; i++)
	{
		handles[i] = start_runner(ids[i], true, false);
		if (handles[i])
			started++;
	}
	for (int i = 0; i < n; i++)
		if (handles[i])
			(void) WaitForBackgroundWorkerShutdown(handles[i]);
	return started;
}

/*
 * start_job_runners
 *	  Start a job runner for each due job that has none yet, up to
 *	  shardload.max_workers at once; forget those that have finished.
 *	  Allocates in the current (long-lived) memory context.
 */
static void
start_job_runners(JobRunners *runners, List *due)
{
	ListCell   *lc;
	int			nrunning = 0;

	for (int i = 0; i < MAX_JOB_RUNNERS; i++)
	{
		pid_t		pid;

		if (runners->handles[i] &&
			GetBackgroundWorkerPid(runners->handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(runners->handles[i]);
			pfree(runners->names[i]);
			runners->handles[i] = NULL;
			runners->names[i] = NULL;
		}
		if (runners->handles[i])
			nrunning++;
	}
	foreach(lc, due)
	{
		const char *name = lfirst(lc);
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		bool		busy = false;
		int			slot = -1;

		for (int i = 0; i < MAX_JOB_RUNNERS; i++)
		{
			if (runners->names[i] && strcmp(runners->names[i], name) == 0)
				busy = true;
			if (runners->handles[i] == NULL && slot < 0)
				slot = i;
		}
		if (busy)
			continue;			/* still at an earlier tick */
		if (slot < 0 || nrunning >= shardload_max_workers)
			break;				/* the rest at the next wake-up */
		if (strlen(name) > JOB_NAME_MAX)
		{
			ereport(WARNING,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("job name \"%s\" is too long to run", name),
					 errhint("Schedule the job again under a name of at most %d bytes.",
							 (int) JOB_NAME_MAX)));
			continue;
		}
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_shardload");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "ShardloadJobRunnerMain");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_shardload job runner for %s", name);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pg_shardload job runner");
		memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
		strlcpy(worker.bgw_extra + sizeof(Oid), name, JOB_NAME_MAX + 1);
		/* no notice at its end: a failing tick is retried at the next wake-up, not at once */
		worker.bgw_notify_pid = 0;
		if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start background worker for job \"%s\"", name),
					 errhint("Raise max_worker_processes or lower shardload.max_workers.")));
			break;
		}
		runners->handles[slot] = handle;
		runners->names[slot] = pstrdup(name);
		nrunning++;
	}
}

/*
 * ShardloadJobRunnerMain
 *	  The due ticks of one job (jobs.c), then exit.
 */
void
ShardloadJobRunnerMain(Datum main_arg)
{
	Oid			database;
	char		name[JOB_NAME_MAX + 1];

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
