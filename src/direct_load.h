/*-------------------------------------------------------------------------
 * direct_load.h
 *	  CALL shardload.load(): streaming a new batch while it is captured.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_DIRECT_LOAD_H
#define SHARDLOAD_DIRECT_LOAD_H

#include "metadata.h"
#include "pg_shardload.h"

extern bool shardload_direct_load;

typedef struct DirectLoad DirectLoad;

extern int64 ShardloadDirectSubmit(ShardloadSubmitArgs *args);
extern bool ShardloadDirectAllowed(ShardloadSubmitArgs *args);
extern DirectLoad *ShardloadDirectBegin(ShardloadSubmission *sub, Oid target);
extern int64 ShardloadDirectEnd(ShardloadSubmission *sub, DirectLoad *d);
extern bool ShardloadDirectPending(int64 batch_id);
extern void ShardloadDirectInterrupted(ShardloadBatch *batch);
extern void ShardloadDirectFinish(void);

#endif							/* SHARDLOAD_DIRECT_LOAD_H */
