/*-------------------------------------------------------------------------
 * api.c
 *	  SQL-callable entry points: check arguments and rights, then hand over
 *	  to the code the background worker uses too.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "batch_control.h"
#include "jobs.h"
#include "direct_load.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(shardload_submit);
PG_FUNCTION_INFO_V1(shardload_submit_csv);
PG_FUNCTION_INFO_V1(shardload_load_submit);
PG_FUNCTION_INFO_V1(shardload_submit_file);
PG_FUNCTION_INFO_V1(shardload_run);
PG_FUNCTION_INFO_V1(shardload_cancel);
PG_FUNCTION_INFO_V1(shardload_replay);
PG_FUNCTION_INFO_V1(shardload_purge_payloads);
PG_FUNCTION_INFO_V1(shardload_run_due);
PG_FUNCTION_INFO_V1(shardload_schedule);
PG_FUNCTION_INFO_V1(shardload_unschedule);
PG_FUNCTION_INFO_V1(shardload_cron_next);

static char *required_text(FunctionCallInfo fcinfo, int argno, const char *name);
static int64 submit_common(FunctionCallInfo fcinfo, const char *kind, const char *source_name,
						   bool for_load);

static char *
required_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * submit_common
 *	  Arguments shared by the submit functions: target, batch_key, source,
 *	  policy, on_error, reject_limit, tenant, then by kind: header (csv,
 *	  file), format (file) and atomic, at positions of their own.  Each is
 *	  read only if the function has it (the 0.1 functions, which an upgrade
 *	  test calls with this library, have no atomic).
 */
static int64
submit_common(FunctionCallInfo fcinfo, const char *kind, const char *source_name,
			  bool for_load)
{
	bool		is_file = strcmp(kind, "file") == 0;
	int			header_arg = strcmp(kind, "query") == 0 ? -1 : 7;
	int			format_arg = is_file ? 8 : -1;
	int			atomic_arg = is_file ? 9 : header_arg >= 0 ? 8 : 7;

	ShardloadSubmitArgs args;

	memset(&args, 0, sizeof(args));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	args.target = PG_GETARG_OID(0);
	args.batch_key = required_text(fcinfo, 1, "batch_key");
	args.source = required_text(fcinfo, 2, source_name);
	args.source_kind = kind;
	args.policy = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	args.on_error = PG_ARGISNULL(4) ? "stop" : text_to_cstring(PG_GETARG_TEXT_PP(4));
	args.reject_limit = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT64(5);
	args.tenant = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	args.header = header_arg >= 0 && PG_NARGS() > header_arg && !PG_ARGISNULL(header_arg) &&
		PG_GETARG_BOOL(header_arg);
	args.format = (format_arg >= 0 && PG_NARGS() > format_arg && !PG_ARGISNULL(format_arg)) ?
		text_to_cstring(PG_GETARG_TEXT_PP(format_arg)) : "csv";
	args.atomic_given = PG_NARGS() > atomic_arg && !PG_ARGISNULL(atomic_arg);
	args.atomic = args.atomic_given && PG_GETARG_BOOL(atomic_arg);
	return for_load ? ShardloadDirectSubmit(&args) : ShardloadSubmit(&args);
}

Datum
shardload_submit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(submit_common(fcinfo, "query", "source_query", false));
}

/*
 * shardload_load_submit
 *	  shardload.load()'s submit: the same, streaming a new batch to its
 *	  shards while it is captured when it can (direct_load.c); the CALL of
 *	  shardload.run that follows finishes it.
 */
Datum
shardload_load_submit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(submit_common(fcinfo, "query", "source_query", true));
}

Datum
shardload_submit_csv(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(submit_common(fcinfo, "csv", "data", false));
}

Datum
shardload_submit_file(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(submit_common(fcinfo, "file", "path", false));
}

/*
 * shardload_run
 *	  CALL shardload.run(batch_id): one attempt, committing its records as
 *	  it goes, which a CALL inside a transaction block cannot do.
 */
Datum
shardload_run(PG_FUNCTION_ARGS)
{
	bool		atomic = true;

	if (fcinfo->context && IsA(fcinfo->context, CallContext))
		atomic = ((CallContext *) fcinfo->context)->atomic;
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_id must not be null")));
	if (atomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("shardload.run() cannot run inside a transaction block"),
				 errdetail("An attempt commits its records as it goes, so that a failed attempt stays on record."),
				 errhint("CALL it outside BEGIN ... COMMIT and outside functions, or leave the batch to the background worker.")));

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (ShardloadDirectPending(PG_GETARG_INT64(0)))
		ShardloadDirectFinish();
	else
		(void) ShardloadRunBatch(PG_GETARG_INT64(0), true, false);
	SPI_finish();
	PG_RETURN_VOID();
}

Datum
shardload_cancel(PG_FUNCTION_ARGS)
{
	ShardloadChangeBatch(PG_GETARG_INT64(0), false);
	PG_RETURN_VOID();
}

Datum
shardload_replay(PG_FUNCTION_ARGS)
{
	ShardloadChangeBatch(PG_GETARG_INT64(0), true);
	PG_RETURN_VOID();
}

Datum
shardload_purge_payloads(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ShardloadPurgePayloads());
}

/*
 * shardload_run_due
 *	  run_due(max_batches): what the scheduler does, for any cron.
 */
Datum
shardload_run_due(PG_FUNCTION_ARGS)
{
	int32		max_batches = PG_ARGISNULL(0) ? 10 : PG_GETARG_INT32(0);

	if (max_batches < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batches must not be negative")));
	PG_RETURN_INT32(ShardloadRunDue(max_batches));
}

/*
 * shardload_schedule
 *	  schedule(job_name, cron, target, source_query, policy, on_error,
 *	  reject_limit, tenant, catch_up)
 */
Datum
shardload_schedule(PG_FUNCTION_ARGS)
{
	char	   *name = required_text(fcinfo, 0, "job_name");
	char	   *cron = required_text(fcinfo, 1, "cron");
	char	   *query;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	query = required_text(fcinfo, 3, "source_query");
	ShardloadScheduleJob(name, cron, PG_GETARG_OID(2), query,
						 PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
						 PG_ARGISNULL(5) ? "stop" : text_to_cstring(PG_GETARG_TEXT_PP(5)),
						 PG_ARGISNULL(6) ? 0 : PG_GETARG_INT64(6),
						 PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7)),
						 !PG_ARGISNULL(8) && PG_GETARG_BOOL(8));
	PG_RETURN_VOID();
}

Datum
shardload_unschedule(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ShardloadUnscheduleJob(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

Datum
shardload_cron_next(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(ShardloadCronNextTick(text_to_cstring(PG_GETARG_TEXT_PP(0)),
												PG_GETARG_TIMESTAMPTZ(1)));
}
