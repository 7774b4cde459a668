/*-------------------------------------------------------------------------
 * pg_shardload.c
 *	  Module entry: settings.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "miscadmin.h"

#include "copy_binary.h"
#include "direct_load.h"
#include "inbox.h"
#include "pg_shardload.h"
#include "worker.h"

PG_MODULE_MAGIC;

int			shardload_payload_retention = 7 * 24 * 3600;
char	   *shardload_database = NULL;
int			shardload_naptime = 5;
int			shardload_max_workers = 2;
int			shardload_circuit_failures = 5;
int			shardload_circuit_cooldown = 30;
int			shardload_job_timeout = 60 * 1000;
int			shardload_connect_timeout = 10 * 1000;
int			shardload_progress_timeout = 60 * 1000;
int			shardload_attempt_timeout = 3600 * 1000;

void		_PG_init(void);

static const struct config_enum_entry inbox_load_options[] = {
	{"worker", SHARDLOAD_INBOX_LOAD_WORKER, false},
	{"now", SHARDLOAD_INBOX_LOAD_NOW, false},
	{NULL, 0, false}
};

void
_PG_init(void)
{
	DefineCustomIntVariable("shardload.payload_retention",
							"Sets how long the rows of a finished batch are kept for replay.",
							"After this time shardload.purge_payloads() removes them.",
							&shardload_payload_retention,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("shardload.direct_load",
							 "Lets shardload.load() stream a new batch to its shards while capturing it.",
							 "Its rows then reach shardload.payload only if the load cannot finish at once.",
							 &shardload_direct_load,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("shardload.binary_copy",
							 "Lets a direct load send rows to the shards in COPY's binary format.",
							 "Only where every column's type allows it, on the shard as here; the payload stays COPY text.",
							 &shardload_binary_copy,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("shardload.inbox_load",
							 "Sets who loads the batch of a COPY into an inbox.",
							 "\"now\": the COPY loads it before it returns, when it runs on its own; \"worker\": the background worker.",
							 &shardload_inbox_load,
							 SHARDLOAD_INBOX_LOAD_WORKER, inbox_load_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("shardload.database",
							   "Sets the databases the background worker serves (comma-separated).",
							   "Read when the server starts; a change takes a restart.",
							   &shardload_database,
							   "postgres",
							   /* PostgreSQL allows PGC_POSTMASTER only while preloading */
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.naptime",
							"Sets how often the background worker looks for due work.",
							NULL,
							&shardload_naptime,
							5, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.max_workers",
							"Sets how many batches the background worker runs at once.",
							NULL,
							&shardload_max_workers,
							2, 1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.circuit_failures",
							"Sets how many failures in a row to reach a shard open its circuit.",
							NULL,
							&shardload_circuit_failures,
							5, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.circuit_cooldown",
							"Sets how long an open circuit keeps slices away from its shard.",
							NULL,
							&shardload_circuit_cooldown,
							30, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.job_timeout",
							"Sets how long a cron job's query may run at one tick.",
							"A tick that takes longer is cancelled and tried again at the next wake-up; 0 means no limit.",
							&shardload_job_timeout,
							60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.connect_timeout",
							"Sets how long connecting to a shard may take.",
							"A shard that has not answered by then fails its slices with a TRANSIENT timeout at stage CONNECT.",
							&shardload_connect_timeout,
							10 * 1000, 100, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.progress_timeout",
							"Sets how long a shard may make no progress while a slice is sent or committed.",
							"A shard silent for longer fails its slices with a TRANSIENT timeout at the stage it was in.",
							&shardload_progress_timeout,
							60 * 1000, 100, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shardload.attempt_timeout",
							"Sets how long one attempt run by the background worker may take.",
							"An attempt that takes longer is cancelled and recorded as a TRANSIENT timeout; 0 means no limit.",
							&shardload_attempt_timeout,
							3600 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("shardload.batch_key",
							   "Names the batch that the next COPY or INSERT into an inbox submits.",
							   "\"%n\" in the key stands for the statement's number under this key in this session (1, 2, ...); setting the key starts the count again.",
							   &shardload_batch_key,
							   "",
							   PGC_USERSET, 0,
							   NULL, ShardloadBatchKeyAssign, NULL);
	MarkGUCPrefixReserved("shardload");
	ShardloadInboxLoadInit();

	/* no workers while pg_upgrade runs the server */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		ShardloadWorkerInit();
}
