/*-------------------------------------------------------------------------
 * scheduler.c
 *	  One scheduler per database named in shardload.database (started
 *	  from shared_preload_libraries).  It wakes every shardload.naptime,
 *	  and at once when a batch is submitted (wake.c), claims due batches
 *	  (pending, retry_wait whose time has come, or running under a lock
 *	  nobody holds any more: its runner died) taking one batch of each
 *	  tenant per round, and keeps up to shardload.max_workers runners
 *	  (runner.c) busy; each due cron job ticks in a job runner of its own.
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
#include "jobs.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "wake.h"
#include "worker.h"

/* The job runners one scheduler has started, by job name. */
#define MAX_JOB_RUNNERS 64
typedef struct JobRunners
{
	BackgroundWorkerHandle *handles[MAX_JOB_RUNNERS];
	char	   *names[MAX_JOB_RUNNERS];
} JobRunners;

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
static bool catalog_is_current(void);
static bool recovery_due(void);
static bool recovery_running(RunnerSlots *slots);

/* How often at most a runner starts to end prepared slices left behind. */
#define RECOVERY_INTERVAL_MS	5000

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
 * still_running
 *	  Whether the worker of *handle runs; a stopped one's handle is freed
 *	  and cleared, so its slot is free again.
 */
static bool
still_running(BackgroundWorkerHandle **handle)
{
	pid_t		pid;

	if (*handle == NULL)
		return false;
	if (GetBackgroundWorkerPid(*handle, &pid) != BGWH_STOPPED)
		return true;
	pfree(*handle);
	*handle = NULL;
	return false;
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
		if (still_running(&slots->handles[i]))
			nrunning++;
		else
			slots->running[i] = 0;
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
	if (catalog_is_current())
	{
		*next_tick = ShardloadDueJobs(due_jobs);
		if (free_slots > 0)
			n = ShardloadClaimDueBatches(ids, free_slots, busy, nbusy, false);
		/* prepared slices left behind: a runner that ends them (batch 0), one at a time */
		if (n < free_slots && !recovery_running(slots) && recovery_due())
			ids[n++] = 0;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

/*
 * recovery_running
 *	  Whether the runner that ends prepared slices (batch 0) still runs.
 */
static bool
recovery_running(RunnerSlots *slots)
{
	for (int i = 0; i < RUNNER_SLOTS; i++)
		if (slots->handles[i] != NULL && slots->running[i] == 0)
			return true;
	return false;
}

/*
 * recovery_due
 *	  Whether to start a runner that ends prepared transactions of atomic
 *	  batches left behind (atomic.c): at most one every RECOVERY_INTERVAL_MS,
 *	  so an unreachable shard does not start one at every turn.
 */
static bool
recovery_due(void)
{
	static TimestampTz last = 0;

	if (!TimestampDifferenceExceeds(last, GetCurrentTimestamp(), RECOVERY_INTERVAL_MS) ||
		!ShardloadAtomicInDoubt())
		return false;
	last = GetCurrentTimestamp();
	return true;
}

/*
 * catalog_is_current
 *	  The extension is installed, not being created, and its catalog is
 *	  this library's version.  A catalog of another version (the library
 *	  was updated, ALTER EXTENSION UPDATE not run yet) is left alone, with
 *	  one WARNING, rather than failed on at every turn.
 */
static bool
catalog_is_current(void)
{
	static bool warned = false;
	char	   *installed;

	if (creating_extension || (installed = ShardloadInstalledVersion(NULL)) == NULL)
		return false;
	if (strcmp(installed, SHARDLOAD_CATALOG_VERSION) == 0)
		return true;
	if (!warned)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_shardload's catalog in database \"%s\" is version %s, but its library is version %s",
						get_database_name(MyDatabaseId), installed, SHARDLOAD_CATALOG_VERSION),
				 errdetail("The scheduler runs nothing in this database until the versions match."),
				 errhint("Run ALTER EXTENSION pg_shardload UPDATE in it.")));
	warned = true;
	return false;
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
				slots->handles[i] = ShardloadStartRunner(ids[j], true, true);
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
		if (still_running(&runners->handles[i]))
			nrunning++;
		else if (runners->names[i])
		{
			pfree(runners->names[i]);
			runners->names[i] = NULL;
		}
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
		if (strlen(name) > SHARDLOAD_JOB_RUNNER_NAME_MAX)
		{
			ereport(WARNING,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("job name \"%s\" is too long to run", name),
					 errhint("Schedule the job again under a name of at most %d bytes.",
							 (int) SHARDLOAD_JOB_RUNNER_NAME_MAX)));
			continue;
		}
		ShardloadInitDynamicWorker(&worker, "ShardloadJobRunnerMain", "pg_shardload job runner");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_shardload job runner for %s", name);
		strlcpy(worker.bgw_extra + sizeof(Oid), name, SHARDLOAD_JOB_RUNNER_NAME_MAX + 1);
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
