/*-------------------------------------------------------------------------
 * states.h
 *	  The stages of an attempt and the states of a batch, as enums, and
 *	  their names in the catalog (shardload.attempt.stage,
 *	  shardload.batch.state): the one place that maps between the two.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_STATES_H
#define SHARDLOAD_STATES_H

/* Stages in the order an attempt passes them on each shard. */
typedef enum ShardloadStage
{
	SHARDLOAD_STAGE_CAPTURE,
	SHARDLOAD_STAGE_ROUTE,
	SHARDLOAD_STAGE_CONNECT,
	SHARDLOAD_STAGE_LEDGER,
	SHARDLOAD_STAGE_VERIFY,
	SHARDLOAD_STAGE_COPY,
	SHARDLOAD_STAGE_COMMIT
} ShardloadStage;

typedef enum ShardloadBatchState
{
	SHARDLOAD_BATCH_PENDING,
	SHARDLOAD_BATCH_RUNNING,
	SHARDLOAD_BATCH_RETRY_WAIT,
	SHARDLOAD_BATCH_SUCCEEDED,
	SHARDLOAD_BATCH_FAILED,
	SHARDLOAD_BATCH_QUARANTINED,
	SHARDLOAD_BATCH_DEAD,
	SHARDLOAD_BATCH_CANCELLED
} ShardloadBatchState;

extern const char *ShardloadStageName(ShardloadStage stage);
extern const char *ShardloadBatchStateName(ShardloadBatchState state);
extern ShardloadBatchState ShardloadBatchStateFromName(const char *name);

#endif							/* SHARDLOAD_STATES_H */
