/*-------------------------------------------------------------------------
 * inbox.h
 *	  The COPY path: inboxes, foreign tables that take a batch's rows.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_INBOX_H
#define SHARDLOAD_INBOX_H

#include "postgres.h"

extern char *shardload_batch_key;

extern void ShardloadBatchKeyAssign(const char *newval, void *extra);

#endif							/* SHARDLOAD_INBOX_H */
