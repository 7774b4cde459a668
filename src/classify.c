/*-------------------------------------------------------------------------
 * classify.c
 *	  Failure classes from shardload.error_rule (the longest matching
 *	  SQLSTATE prefix wins; no match is UNKNOWN), the batch's retry policy,
 *	  and what a failure leads to: retry, stop, quarantine or dead letter.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "classify.h"

/*
 * ShardloadClassify
 *	  Fill decision's failure_type and reason for sqlstate, inside a
 *	  catalog session.  Rules are read at every call, so operators' changes
 *	  apply to the next attempt.
 */
void
ShardloadClassify(ShardloadCatalogSession *session, const char *sqlstate,
				  ShardloadDecision *decision)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(sqlstate)};

	ShardloadSpiExec("SELECT failure_type, reason FROM shardload.classify($1)",
					 1, argtypes, values, NULL);
	decision->failure_type_name = ShardloadSpiText(session, 0, 1);
	decision->reason = ShardloadSpiText(session, 0, 2);
	if (strcmp(decision->failure_type_name, "TRANSIENT") == 0)
		decision->failure_type = SHARDLOAD_CLASS_TRANSIENT;
	else if (strcmp(decision->failure_type_name, "NON_RETRYABLE") == 0)
		decision->failure_type = SHARDLOAD_CLASS_NON_RETRYABLE;
	else
		decision->failure_type = SHARDLOAD_CLASS_UNKNOWN;
}

/*
 * ShardloadPolicyFor
 *	  The batch's policy: its own, else its target's, else "default".
 */
ShardloadPolicy *
ShardloadPolicyFor(ShardloadCatalogSession *session, ShardloadBatch *batch)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	ShardloadPolicy *policy;

	if (batch->policy_name)
		values[0] = CStringGetTextDatum(batch->policy_name);
	else
		nulls[0] = 'n';
	values[1] = ObjectIdGetDatum(batch->target);
	ShardloadSpiExec("SELECT p.policy_name, p.max_attempts,"
					 " extract(epoch FROM p.base_delay)::float8,"
					 " extract(epoch FROM p.max_delay)::float8,"
					 " p.jitter_ratio, p.unknown_attempts"
					 " FROM shardload.retry_policy p"
					 " WHERE p.policy_name = coalesce($1,"
					 "  (SELECT t.policy_name FROM shardload.target_policy t"
					 "   WHERE t.target = $2::regclass), 'default')",
					 2, argtypes, values, nulls);
	if (SPI_processed != 1)
	{
		/*
		 * The policy was deleted since the batch was submitted.  Throwing
		 * here would leave the attempt unrecorded; use the defaults.
		 */
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("retry policy \"%s\" does not exist, using the built-in defaults",
						batch->policy_name ? batch->policy_name : "default")));
		policy = MemoryContextAllocZero(session->outer, sizeof(ShardloadPolicy));
		policy->name = "default";
		policy->max_attempts = 5;
		policy->base_delay = 0.5;
		policy->max_delay = 15;
		policy->jitter_ratio = 0.2;
		policy->unknown_attempts = 1;
		return policy;
	}
	policy = MemoryContextAllocZero(session->outer, sizeof(ShardloadPolicy));
	policy->name = ShardloadSpiText(session, 0, 1);
	policy->max_attempts = (int) ShardloadSpiInt64(0, 2, NULL);
	/* read as float8, not as text that extra_float_digits would round */
	policy->base_delay = ShardloadSpiFloat8(0, 3, NULL);
	policy->max_delay = ShardloadSpiFloat8(0, 4, NULL);
	policy->jitter_ratio = ShardloadSpiFloat8(0, 5, NULL);
	policy->unknown_attempts = (int) ShardloadSpiInt64(0, 6, NULL);
	return policy;
}

/*
 * ShardloadDecide
 *	  The next state after a failure of class decision->failure_type on the
 *	  series_attempt-th attempt since the batch was (re)queued.
 */
void
ShardloadDecide(ShardloadPolicy *policy, int series_attempt, ShardloadDecision *decision)
{
	decision->delay = 0;
	switch (decision->failure_type)
	{
		case SHARDLOAD_CLASS_NON_RETRYABLE:
			decision->state = SHARDLOAD_BATCH_FAILED;
			decision->next_action = "STOP";
			return;
		case SHARDLOAD_CLASS_UNKNOWN:
			if (series_attempt >= policy->unknown_attempts)
			{
				decision->state = SHARDLOAD_BATCH_QUARANTINED;
				decision->next_action = "QUARANTINE";
				return;
			}
			break;
		default:
			break;
	}
	if (series_attempt >= policy->max_attempts)
	{
		decision->state = SHARDLOAD_BATCH_DEAD;
		decision->next_action = "DLQ";
		return;
	}
	decision->state = SHARDLOAD_BATCH_RETRY_WAIT;
	decision->next_action = "RETRY";
	decision->delay = ShardloadBackoffSeconds(policy, series_attempt);
}
