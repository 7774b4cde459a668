/*-------------------------------------------------------------------------
 * atomic.h
 *	  Atomic batches: two-phase commit over the shard connections, and the
 *	  recovery of prepared transactions left behind.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ATOMIC_H
#define SHARDLOAD_ATOMIC_H

#include "postgres.h"

extern char *ShardloadAtomicGidPrefix(const char *coordinator_id, int64 batch_id, int attempt);
extern void ShardloadAtomicBegin(int64 batch_id, int attempt);
extern void ShardloadAtomicDecide(int64 batch_id, int attempt);
extern char *ShardloadAtomicResolve(int64 batch_id, Oid owner);
extern void ShardloadAtomicUnsettled(int64 batch_id, int attempt);
extern char *ShardloadAtomicRecoverBatch(int64 batch_id, int attempt, Oid owner);
extern int	ShardloadAtomicRecoverAll(bool only_own);
extern bool ShardloadAtomicInDoubt(void);

#endif							/* SHARDLOAD_ATOMIC_H */
