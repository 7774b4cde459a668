/*-------------------------------------------------------------------------
 * remote_cancel.h
 *	  Cancelling what shard backends still run when an attempt ends early.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_REMOTE_CANCEL_H
#define SHARDLOAD_REMOTE_CANCEL_H

#include "postgres.h"

#include "connection.h"

extern void ShardloadCancelRemote(ShardConnParams **params, int *pids, int n, int timeout_ms);

#endif							/* SHARDLOAD_REMOTE_CANCEL_H */
