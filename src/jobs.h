/*-------------------------------------------------------------------------
 * jobs.h
 *	  Cron-scheduled loads.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_JOBS_H
#define SHARDLOAD_JOBS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* Job names travel to their runner in bgw_extra (see runner.c). */
#define SHARDLOAD_JOB_NAME_MAX 100

extern void ShardloadScheduleJob(const char *name, const char *cron, Oid target,
								 const char *source_query, const char *policy,
								 const char *on_error, int64 reject_limit,
								 const char *tenant, bool catch_up);
extern bool ShardloadUnscheduleJob(const char *name);
extern TimestampTz ShardloadDueJobs(List **due);
extern void ShardloadRunJob(const char *name);
extern TimestampTz ShardloadCronNextTick(const char *cron, TimestampTz after);

#endif							/* SHARDLOAD_JOBS_H */
