/*-------------------------------------------------------------------------
 * batch_control.h
 *	  Cancelling and replaying a batch.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_BATCH_CONTROL_H
#define SHARDLOAD_BATCH_CONTROL_H

extern void ShardloadChangeBatch(int64 batch_id, bool replay);

#endif							/* SHARDLOAD_BATCH_CONTROL_H */
