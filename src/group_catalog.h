/*-------------------------------------------------------------------------
 * group_catalog.h
 *	  The catalog writes of a runner's group of batches, all at once.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_GROUP_CATALOG_H
#define SHARDLOAD_GROUP_CATALOG_H

#include "attempt.h"

extern void ShardloadGroupMarkRunning(RunState **rs, int n);
extern void ShardloadGroupRecordSucceeded(RunState **rs, int n);

#endif							/* SHARDLOAD_GROUP_CATALOG_H */
