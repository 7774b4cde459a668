/*-------------------------------------------------------------------------
 * jobs.c
 *	  Cron-scheduled loads.  Each tick of a job makes one batch, keyed
 *	  "<job>@<tick in UTC>", submitted as the job's owner with $1 = the tick
 *	  and $2 = the previous tick loaded, so an incremental query loads each
 *	  source row once.  The batch and the job's last_tick commit together,
 *	  and the key is unique: a tick is never loaded twice, however often
 *	  the worker restarts.  Ticks missed while the server was down are all
 *	  loaded (catch_up) or only the latest, whose window then covers them.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "cron.h"
#include "jobs.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "role_context.h"
#include "subxact.h"
#include "wake.h"

/* At most this many missed ticks are loaded in one go. */
#define MAX_CATCH_UP_TICKS 1000

typedef struct Job
{
	char	   *name;
	char	   *cron;
	Oid			target;
	char	   *source_query;
	Oid			owner;
	char	   *policy;
	char	   *on_error;
	int64		reject_limit;
	char	   *tenant;
	bool		catch_up;
	TimestampTz last_tick;
	char	   *search_path;	/* its owner's at schedule(); NULL before 0.2 */
} Job;

static void run_job(Job *job, TimestampTz now);
static bool submit_tick(Job *job, TimestampTz tick, TimestampTz prev);
static char *tick_key(const char *job_name, TimestampTz tick);
static void submit_tick_step(void *arg);
static void disable_job_timeout(void);

/*
 * ShardloadScheduleJob
 *	  Create or replace the calling role's job.  Its first tick is the
 *	  first one after now.
 */
void
ShardloadScheduleJob(const char *name, const char *cron, Oid target,
					 const char *source_query, const char *policy,
					 const char *on_error, int64 reject_limit,
					 const char *tenant, bool catch_up)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	Oid			caller = GetUserId();
	Oid			owner;

	ShardloadCheckCronFires(cron);	/* throws on a bad expression */
	if (strlen(name) > SHARDLOAD_JOB_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("job name \"%s\" is too long", name),
				 errdetail("A job name has at most %d bytes.", SHARDLOAD_JOB_NAME_MAX)));
	if (pg_class_aclcheck(target, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(target));
	if (strcmp(on_error, "stop") != 0 && strcmp(on_error, "reject") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for on_error: \"%s\"", on_error),
				 errdetail("Valid values are \"stop\" and \"reject\".")));

	ShardloadArgText(&args, name);
	ShardloadArgText(&args, cron);
	ShardloadArgOid(&args, target);
	ShardloadArgText(&args, source_query);
	ShardloadArgOid(&args, caller);
	ShardloadArgText(&args, policy);
	ShardloadArgText(&args, on_error);
	ShardloadArgInt8(&args, reject_limit);
	ShardloadArgText(&args, tenant);
	ShardloadArgBool(&args, catch_up);
	/* the job's query runs with the search_path its owner has now */
	ShardloadArgText(&args, GetConfigOption("search_path", false, false));

	/*
	 * Insert, or update only a job of the caller's: the owner test is part
	 * of the upsert, so that a concurrent schedule() of the same name by
	 * another role (seen only once it commits) can never be overwritten.
	 */
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("INSERT INTO shardload.job AS j (job_name, cron, target, source_query, owner,"
					" policy_name, on_error, reject_limit, tenant, catch_up, last_tick, search_path)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11)"
					" ON CONFLICT (job_name) DO UPDATE SET cron = $2, target = $3,"
					" source_query = $4, policy_name = $6, on_error = $7, reject_limit = $8,"
					" tenant = $9, catch_up = $10, search_path = $11, last_error = NULL"
					" WHERE j.owner = $5 RETURNING 1",
					&args);
	if (SPI_processed == 0)
	{
		args.n = 1;				/* $1: the job's name */
		ShardloadSpiRun("SELECT owner::oid FROM shardload.job WHERE job_name = $1", &args);
		owner = SPI_processed == 1 ? (Oid) ShardloadSpiInt64(0, 1, NULL) : InvalidOid;
		ShardloadCatalogEnd(&session);
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("job \"%s\" already exists", name),
				 GetUserNameFromId(owner, true) ?
				 errdetail("It belongs to role \"%s\".", GetUserNameFromId(owner, true)) :
				 errdetail("It belongs to the dropped role with OID %u.", owner),
				 errhint("Choose another job name.")));
	}
	ShardloadCatalogEnd(&session);
	ShardloadWakeSchedulerAtCommit();	/* it plans the new job's first tick */
}

/*
 * ShardloadUnscheduleJob
 *	  Remove a job (its batches stay); false if there is none.
 */
bool
ShardloadUnscheduleJob(const char *name)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			owner;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT owner::oid FROM shardload.job WHERE job_name = $1 FOR UPDATE",
					 1, argtypes, values, NULL);
	if (SPI_processed == 0)
	{
		ShardloadCatalogEnd(&session);
		return false;
	}
	owner = (Oid) ShardloadSpiInt64(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	if (owner != GetUserId() && !ShardloadIsAdmin(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for job \"%s\"", name),
				 errdetail("The job belongs to role \"%s\".", GetUserNameFromId(owner, true)),
				 errhint("Only the role that scheduled a job or members of \"shardload_admin\" may remove it.")));
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("DELETE FROM shardload.job WHERE job_name = $1", 1, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
	return true;
}

/*
 * ShardloadDueJobs
 *	  Appends to *due the names of the jobs whose next tick has come
 *	  (palloc'd in the current context) and returns the earliest tick still
 *	  to come (DT_NOEND if none).  Runs in the caller's transaction.
 */
TimestampTz
ShardloadDueJobs(List **due)
{
	TimestampTz earliest = DT_NOEND;
	TimestampTz now = GetCurrentTimestamp();
	ShardloadCatalogSession session;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT job_name, shardload.cron_next(cron, last_tick) FROM shardload.job",
					 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		TimestampTz next = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 2, &isnull));

		if (isnull)
			continue;
		if (next <= now)
		{
			MemoryContext old = MemoryContextSwitchTo(session.outer);

			*due = lappend(*due, ShardloadSpiText(&session, i, 1));
			MemoryContextSwitchTo(old);
		}
		else if (next < earliest)
			earliest = next;
	}
	ShardloadCatalogEnd(&session);
	return earliest;
}

/*
 * ShardloadRunJob
 *	  Submit the due ticks of one job, unless another process is at it
 *	  (its row stays locked while it ticks).  Runs in the caller's
 *	  transaction, each tick in a subtransaction.
 */
void
ShardloadRunJob(const char *name)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Job		   *job;
	bool		isnull;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT job_name, cron, target::oid, source_query, owner::oid, policy_name,"
					 " on_error, reject_limit, tenant, catch_up, last_tick, search_path"
					 " FROM shardload.job WHERE job_name = $1 FOR UPDATE SKIP LOCKED",
					 1, argtypes, values, NULL);
	if (SPI_processed != 1)
	{
		ShardloadCatalogEnd(&session);
		return;
	}
	job = MemoryContextAllocZero(session.outer, sizeof(Job));
	job->name = ShardloadSpiText(&session, 0, 1);
	job->cron = ShardloadSpiText(&session, 0, 2);
	job->target = (Oid) ShardloadSpiInt64(0, 3, NULL);
	job->source_query = ShardloadSpiText(&session, 0, 4);
	job->owner = (Oid) ShardloadSpiInt64(0, 5, NULL);
	job->policy = ShardloadSpiText(&session, 0, 6);
	job->on_error = ShardloadSpiText(&session, 0, 7);
	job->reject_limit = ShardloadSpiInt64(0, 8, NULL);
	job->tenant = ShardloadSpiText(&session, 0, 9);
	job->catch_up = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   10, &isnull));
	job->last_tick = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 11, &isnull));
	job->search_path = ShardloadSpiText(&session, 0, 12);
	ShardloadCatalogEnd(&session);
	run_job(job, GetCurrentTimestamp());
}

/*
 * run_job
 *	  Submit the job's due ticks, oldest first; stops at the first tick
 *	  that fails (it is tried again at the next wake-up).
 */
static void
run_job(Job *job, TimestampTz now)
{
	ShardloadCron *cron = ShardloadCronParse(job->cron);
	TimestampTz prev = job->last_tick;
	TimestampTz tick = ShardloadCronNext(cron, prev);
	int			n = 0;

	if (tick > now)
		return;
	if (!job->catch_up)
	{
		/* only the latest tick; its window ($2, $1] covers the missed ones */
		for (TimestampTz next = ShardloadCronNext(cron, tick);
			 next <= now && n < 100000; next = ShardloadCronNext(cron, tick), n++)
			tick = next;
		(void) submit_tick(job, tick, prev);
		return;
	}
	while (tick <= now && n++ < MAX_CATCH_UP_TICKS)
	{
		if (!submit_tick(job, tick, prev))
			return;
		prev = tick;
		tick = ShardloadCronNext(cron, tick);
	}
}

/* What submit_tick_step needs. */
typedef struct TickStep
{
	Job		   *job;
	TimestampTz tick;
	TimestampTz prev;
} TickStep;

/*
 * submit_tick
 *	  One tick's batch and the job's new last_tick, together, as the job's
 *	  owner; a failure is kept in the job's last_error.
 */
static bool
submit_tick(Job *job, TimestampTz tick, TimestampTz prev)
{
	TickStep	step = {job, tick, prev};
	ErrorData  *edata = ShardloadTryStep(submit_tick_step, &step, true);	/* job_timeout */
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	disable_job_timeout();		/* the step's limit, also after an error */
	if (edata == NULL)
		return true;
	ereport(WARNING,
			(errmsg("could not submit tick %s of job \"%s\": %s",
					timestamptz_to_str(tick), job->name, edata->message)));
	values[0] = CStringGetTextDatum(job->name);
	values[1] = CStringGetTextDatum(psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode),
											 edata->message));
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.job SET last_error = $2 WHERE job_name = $1",
					 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
	return false;
}

static void
submit_tick_step(void *arg)
{
	TickStep   *step = arg;
	Job		   *job = step->job;
	ShardloadSubmitArgs args;
	ShardloadCatalogSession session;
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, INT8OID};
	Datum		values[3];
	ShardloadRoleContext role;

	memset(&args, 0, sizeof(args));
	args.target = job->target;
	args.batch_key = tick_key(job->name, step->tick);
	args.source = job->source_query;
	args.source_kind = "query";
	args.policy = job->policy;
	args.on_error = job->on_error;
	args.reject_limit = job->reject_limit;
	args.tenant = job->tenant;
	args.format = "csv";
	args.has_ticks = true;
	args.ticks[0] = TimestampTzGetDatum(step->tick);
	args.ticks[1] = TimestampTzGetDatum(step->prev);

	/*
	 * As the job's owner, isolated, within the job time limit; an error
	 * rolls the subtransaction back, which undoes all of it too.
	 */
	ShardloadCheckRoleExists(job->owner, psprintf("job \"%s\"", job->name));
	ShardloadBecomeRole(&role, job->owner, job->search_path);
	if (shardload_job_timeout > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, shardload_job_timeout);
	values[2] = Int64GetDatum(ShardloadSubmit(&args));
	disable_job_timeout();
	ShardloadRestoreRole(&role);

	values[0] = CStringGetTextDatum(job->name);
	values[1] = TimestampTzGetDatum(step->tick);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.job SET last_tick = $2, last_batch_id = $3,"
					 " last_error = NULL WHERE job_name = $1", 3, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}

/*
 * disable_job_timeout
 *	  Stop the job time limit; if it fired just now, after the work was
 *	  done, forget the cancel it asked for.
 */
static void
disable_job_timeout(void)
{
	if (get_timeout_indicator(STATEMENT_TIMEOUT, false))
		QueryCancelPending = false;
	disable_timeout(STATEMENT_TIMEOUT, false);
}

/*
 * tick_key
 *	  "<job>@YYYY-MM-DDTHH:MM:SSZ", the tick in UTC.
 */
static char *
tick_key(const char *job_name, TimestampTz tick)
{
	pg_time_t	t = (pg_time_t) timestamptz_to_time_t(tick);
	struct pg_tm *tm = pg_gmtime(&t);

	return psprintf("%s@%04d-%02d-%02dT%02d:%02d:%02dZ", job_name,
					tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
					tm->tm_hour, tm->tm_min, tm->tm_sec);
}

/*
 * ShardloadCronNextTick
 *	  The job's next tick after `after`, for the jobs view.
 */
TimestampTz
ShardloadCronNextTick(const char *cron, TimestampTz after)
{
	return ShardloadCronNext(ShardloadCronParse(cron), after);
}
