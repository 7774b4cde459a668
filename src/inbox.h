/*-------------------------------------------------------------------------
 * inbox.h
 *	  The COPY path: inboxes, foreign tables that take a batch's rows.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_INBOX_H
#define SHARDLOAD_INBOX_H

#include "postgres.h"

/* shardload.inbox_load: who loads a COPY's batch */
typedef enum
{
	SHARDLOAD_INBOX_LOAD_WORKER,
	SHARDLOAD_INBOX_LOAD_NOW
} ShardloadInboxLoad;

extern char *shardload_batch_key;
extern int	shardload_inbox_load;

extern void ShardloadBatchKeyAssign(const char *newval, void *extra);
extern void ShardloadInboxLoadInit(void);
extern bool ShardloadInboxCopyLoadsNow(void);
extern void ShardloadInboxCopyBatch(int64 batch_id);

#endif							/* SHARDLOAD_INBOX_H */
