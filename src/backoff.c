/*-------------------------------------------------------------------------
 * backoff.c
 *	  Exponential backoff with jitter:
 *	  delay(n) = min(base_delay * 2^(n-1), max_delay) * (1 + U(-j, +j)).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"

#include "classify.h"

/*
 * ShardloadBackoffSeconds
 *	  Seconds to wait after the attempt-th (1-based) failed attempt.
 */
double
ShardloadBackoffSeconds(ShardloadPolicy *policy, int attempt)
{
	double		delay;

	/* 2^(n-1) overflows nothing: the exponent is capped well before */
	delay = policy->base_delay * pow(2.0, Min(Max(attempt, 1) - 1, 60));
	delay = Min(delay, policy->max_delay);
	if (policy->jitter_ratio > 0)
		delay += delay * policy->jitter_ratio * (2.0 * pg_prng_double(&pg_global_prng_state) - 1.0);
	return Max(delay, 0.0);
}
