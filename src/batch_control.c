/*-------------------------------------------------------------------------
 * batch_control.c
 *	  What an operator does to a batch by hand: cancel it, or replay it
 *	  (a new series of attempts), with the state rules that allow each.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "batch_control.h"
#include "metadata.h"
#include "pg_shardload.h"

/*
 * ShardloadChangeBatch
 *	  cancel (replay false) or requeue (replay true) a batch the caller may
 *	  act on; throws 55000 when its state does not allow it.
 */
void
ShardloadChangeBatch(int64 batch_id, bool replay)
{
	ShardloadCatalogSession session;
	ShardloadBatch *batch;
	ShardloadArgs args = {0};
	bool		allowed;

	ShardloadCatalogBegin(&session);
	batch = ShardloadBatchFetch(&session, batch_id, true);
	ShardloadCatalogEnd(&session);
	ShardloadCheckBatchAccess(batch);

	/* replay what ended without loading; cancel what has not ended */
	if (replay)
		allowed = batch->state == SHARDLOAD_BATCH_FAILED ||
			batch->state == SHARDLOAD_BATCH_QUARANTINED ||
			batch->state == SHARDLOAD_BATCH_DEAD ||
			batch->state == SHARDLOAD_BATCH_CANCELLED;
	else
		allowed = batch->state != SHARDLOAD_BATCH_SUCCEEDED &&
			batch->state != SHARDLOAD_BATCH_RUNNING &&
			batch->state != SHARDLOAD_BATCH_CANCELLED;
	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s batch %lld because it is %s",
						replay ? "replay" : "cancel", (long long) batch_id, ShardloadBatchStateName(batch->state)),
				 replay ?
				 errdetail("Only failed, quarantined, dead and cancelled batches can be replayed.") :
				 errdetail("Succeeded, running and cancelled batches cannot be cancelled.")));
	if (replay && batch->payload_purged)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payload of batch %lld was removed", (long long) batch_id),
				 errhint("Submit the rows again under a new batch key.")));

	ShardloadArgInt8(&args, batch_id);
	ShardloadCatalogBegin(&session);
	if (replay)
	{
		ShardloadSpiRun("UPDATE shardload.batch SET state = 'pending', series_start = attempts,"
						" next_attempt_at = now(), finished_at = NULL WHERE batch_id = $1",
						&args);
		ShardloadSpiRun("UPDATE shardload.slice SET state = 'pending'"
						" WHERE batch_id = $1 AND state = 'failed'",
						&args);
	}
	else
		ShardloadSpiRun("UPDATE shardload.batch SET state = 'cancelled', next_attempt_at = NULL,"
						" finished_at = now() WHERE batch_id = $1",
						&args);
	ShardloadCatalogEnd(&session);
}
