/*-------------------------------------------------------------------------
 * worker.h
 *	  Background scheduler and runner workers.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_WORKER_H
#define SHARDLOAD_WORKER_H

#include "postgres.h"

extern void ShardloadWorkerInit(void);
extern int	ShardloadRunDue(int max_batches);
extern PGDLLEXPORT void ShardloadSchedulerMain(Datum main_arg);
extern PGDLLEXPORT void ShardloadRunnerMain(Datum main_arg);
extern PGDLLEXPORT void ShardloadJobRunnerMain(Datum main_arg);

#endif							/* SHARDLOAD_WORKER_H */
