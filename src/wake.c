/*-------------------------------------------------------------------------
 * wake.c
 *	  Where submitters find the scheduler of their database to wake it: a
 *	  small registry in shared memory (database, scheduler's process),
 *	  guarded by a lock of our own, and the commit callback that sets the
 *	  scheduler's latch once a submitting transaction commits.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "compat.h"
#include "wake.h"

typedef struct SchedulerSlot
{
	Oid			database;
	int			procno;			/* index in ProcGlobal->allProcs of the scheduler, -1 if none */
} SchedulerSlot;

typedef struct SchedulerRegistry
{
	LWLock	   *lock;
	SchedulerSlot slots[SHARDLOAD_MAX_SCHEDULERS];
} SchedulerRegistry;

static SchedulerRegistry *registry = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_at_commit = false;
static bool xact_callback_registered = false;

static void wake_shmem_request(void);
static void wake_shmem_startup(void);
static void wake_scheduler_at_commit(XactEvent event, void *arg);
static void scheduler_unregister(int code, Datum arg);

/*
 * ShardloadWakeInit
 *	  From _PG_init while preloading: ask for the registry's memory.
 */
void
ShardloadWakeInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wake_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wake_shmem_startup;
}

static void
wake_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SchedulerRegistry)));
	RequestNamedLWLockTranche("pg_shardload", 1);
}

static void
wake_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	registry = ShmemInitStruct("pg_shardload schedulers", sizeof(SchedulerRegistry), &found);
	if (!found)
	{
		registry->lock = &(GetNamedLWLockTranche("pg_shardload"))->lock;
		for (int i = 0; i < SHARDLOAD_MAX_SCHEDULERS; i++)
		{
			registry->slots[i].database = InvalidOid;
			registry->slots[i].procno = -1;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * ShardloadSchedulerRegister
 *	  The calling scheduler serves this database: submitters may wake it.
 *	  Undone when the process exits.
 */
void
ShardloadSchedulerRegister(void)
{
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < SHARDLOAD_MAX_SCHEDULERS; i++)
		if (registry->slots[i].procno < 0 || registry->slots[i].database == MyDatabaseId)
		{
			registry->slots[i].database = MyDatabaseId;
			registry->slots[i].procno = ShardloadMyProcNumber();
			break;
		}
	LWLockRelease(registry->lock);
	before_shmem_exit(scheduler_unregister, (Datum) 0);
}

static void
scheduler_unregister(int code, Datum arg)
{
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < SHARDLOAD_MAX_SCHEDULERS; i++)
		if (registry->slots[i].procno == ShardloadMyProcNumber())
			registry->slots[i].procno = -1;
	LWLockRelease(registry->lock);
}

/*
 * ShardloadWakeSchedulerAtCommit
 *	  Work was submitted: wake this database's scheduler once the
 *	  transaction commits, so it need not wait for its naptime.
 */
void
ShardloadWakeSchedulerAtCommit(void)
{
	if (registry == NULL)
		return;					/* not preloaded: no scheduler */
	if (!xact_callback_registered)
	{
		RegisterXactCallback(wake_scheduler_at_commit, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

static void
wake_scheduler_at_commit(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT)
		return;
	if (event == XACT_EVENT_COMMIT && wake_at_commit)
		for (int i = 0; i < SHARDLOAD_MAX_SCHEDULERS; i++)
		{
			/* a stale read at worst wakes a scheduler for nothing */
			int			procno = registry->slots[i].procno;

			if (registry->slots[i].database == MyDatabaseId && procno >= 0)
				SetLatch(&ProcGlobal->allProcs[procno].procLatch);
		}
	wake_at_commit = false;
}
