/*-------------------------------------------------------------------------
 * wake.h
 *	  Where submitters find the scheduler of their database to wake it.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_WAKE_H
#define SHARDLOAD_WAKE_H

#include "postgres.h"

/* Databases one server's schedulers serve at most. */
#define SHARDLOAD_MAX_SCHEDULERS 16

extern void ShardloadWakeInit(void);
extern void ShardloadSchedulerRegister(void);
extern void ShardloadWakeSchedulerAtCommit(void);

#endif							/* SHARDLOAD_WAKE_H */
