/*-------------------------------------------------------------------------
 * states.c
 *	  Names of attempt stages and batch states, as the catalog's CHECK
 *	  constraints spell them.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "states.h"

static const char *const stage_names[] = {
	[SHARDLOAD_STAGE_CAPTURE] = "CAPTURE",
	[SHARDLOAD_STAGE_ROUTE] = "ROUTE",
	[SHARDLOAD_STAGE_CONNECT] = "CONNECT",
	[SHARDLOAD_STAGE_LEDGER] = "LEDGER",
	[SHARDLOAD_STAGE_VERIFY] = "VERIFY",
	[SHARDLOAD_STAGE_COPY] = "COPY",
	[SHARDLOAD_STAGE_COMMIT] = "COMMIT",
};

static const char *const batch_state_names[] = {
	[SHARDLOAD_BATCH_PENDING] = "pending",
	[SHARDLOAD_BATCH_RUNNING] = "running",
	[SHARDLOAD_BATCH_RETRY_WAIT] = "retry_wait",
	[SHARDLOAD_BATCH_SUCCEEDED] = "succeeded",
	[SHARDLOAD_BATCH_FAILED] = "failed",
	[SHARDLOAD_BATCH_QUARANTINED] = "quarantined",
	[SHARDLOAD_BATCH_DEAD] = "dead",
	[SHARDLOAD_BATCH_CANCELLED] = "cancelled",
};

const char *
ShardloadStageName(ShardloadStage stage)
{
	Assert(stage >= 0 && stage < lengthof(stage_names));
	return stage_names[stage];
}

const char *
ShardloadBatchStateName(ShardloadBatchState state)
{
	Assert(state >= 0 && state < lengthof(batch_state_names));
	return batch_state_names[state];
}

ShardloadBatchState
ShardloadBatchStateFromName(const char *name)
{
	for (int i = 0; i < lengthof(batch_state_names); i++)
		if (strcmp(batch_state_names[i], name) == 0)
			return (ShardloadBatchState) i;
	elog(ERROR, "unknown batch state \"%s\"", name);
	pg_unreachable();
}
