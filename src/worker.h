/*-------------------------------------------------------------------------
 * worker.h
 *	  Background workers: the scheduler (scheduler.c) and the batch and
 *	  job runners (runner.c).
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_WORKER_H
#define SHARDLOAD_WORKER_H

#include "postgres.h"

#include "postmaster/bgworker.h"

/* bgw_extra of a job runner: the database's OID, then the job's name. */
#define SHARDLOAD_JOB_RUNNER_NAME_MAX	(BGW_EXTRALEN - sizeof(Oid) - 1)

extern void ShardloadWorkerInit(void);
extern int	ShardloadClaimDueBatches(int64 *ids, int max, int64 *running, int nrunning,
									 bool only_own);
extern void ShardloadInitDynamicWorker(BackgroundWorker *worker, const char *function,
									   const char *type);
extern BackgroundWorkerHandle *ShardloadStartRunner(int64 batch_id, bool notify,
													bool keep_going);
extern int	ShardloadRunDue(int max_batches);
extern PGDLLEXPORT void ShardloadSchedulerMain(Datum main_arg);
extern PGDLLEXPORT void ShardloadRunnerMain(Datum main_arg);
extern PGDLLEXPORT void ShardloadJobRunnerMain(Datum main_arg);

#endif							/* SHARDLOAD_WORKER_H */
