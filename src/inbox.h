/*-------------------------------------------------------------------------
 * inbox.h
 *	  The COPY path: inboxes, foreign tables that take a batch's rows.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_INBOX_H
#define SHARDLOAD_INBOX_H

#include "postgres.h"

#include "nodes/parsenodes.h"
#include "utils/relcache.h"

/* shardload.inbox_load: who loads a COPY's batch */
typedef enum
{
	SHARDLOAD_INBOX_LOAD_WORKER,
	SHARDLOAD_INBOX_LOAD_NOW
} ShardloadInboxLoad;

/* One inbox statement's batch while its rows come in (inbox.c). */
typedef struct InboxBatch InboxBatch;

extern char *shardload_batch_key;
extern int	shardload_inbox_load;

extern void ShardloadBatchKeyAssign(const char *newval, void *extra);
extern void ShardloadInboxLoadInit(void);
extern void ShardloadCopyNowBegin(bool loads_now);
extern void ShardloadCopyNowEnd(void);
extern bool ShardloadCopyNowRunning(void);
extern bool ShardloadCopyNowLoads(void);
extern int64 ShardloadCopyNowTakeBatch(void);
extern bool ShardloadInboxCopyLoadsNow(void);
extern void ShardloadInboxCopyBatch(int64 batch_id);

extern bool ShardloadIsInbox(Relation rel);
extern InboxBatch *ShardloadInboxBegin(Relation inbox, bool copy);
extern void ShardloadInboxAddFields(InboxBatch *batch, int64 line_no, char **fields,
									const char *line, int line_len, bool copy_text);
extern void ShardloadInboxEnd(InboxBatch *batch);
extern bool ShardloadInboxCopy(CopyStmt *stmt, const char *query_string, uint64 *processed);

#endif							/* SHARDLOAD_INBOX_H */
