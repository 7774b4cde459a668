/*-------------------------------------------------------------------------
 * classify.h
 *	  Failure classes and the retry decision.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CLASSIFY_H
#define SHARDLOAD_CLASSIFY_H

#include "postgres.h"

#include "metadata.h"
#include "pg_shardload.h"

/* A retry policy, delays in seconds. */
typedef struct ShardloadPolicy
{
	char	   *name;
	int			max_attempts;
	double		base_delay;
	double		max_delay;
	double		jitter_ratio;
	int			unknown_attempts;
} ShardloadPolicy;

/* What an attempt's failure leads to. */
typedef struct ShardloadDecision
{
	ShardloadFailureType failure_type;
	char	   *failure_type_name;
	char	   *reason;
	ShardloadBatchState state;	/* next batch state */
	const char *next_action;
	double		delay;			/* seconds until the next attempt, if RETRY */
} ShardloadDecision;

extern void ShardloadClassify(ShardloadCatalogSession *session, const char *sqlstate,
							  ShardloadDecision *decision);
extern ShardloadPolicy *ShardloadPolicyFor(ShardloadCatalogSession *session,
										   ShardloadBatch *batch);
extern void ShardloadDecide(ShardloadPolicy *policy, int series_attempt,
							ShardloadDecision *decision);
extern double ShardloadBackoffSeconds(ShardloadPolicy *policy, int attempt);

#endif							/* SHARDLOAD_CLASSIFY_H */
