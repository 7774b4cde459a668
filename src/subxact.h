/*-------------------------------------------------------------------------
 * subxact.h
 *	  Running a step in a subtransaction and catching its error.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_SUBXACT_H
#define SHARDLOAD_SUBXACT_H

#include "postgres.h"

typedef void (*ShardloadStep) (void *arg);

extern ErrorData *ShardloadTryStep(ShardloadStep step, void *arg, bool catch_cancel);

#endif							/* SHARDLOAD_SUBXACT_H */
