/*-------------------------------------------------------------------------
 * failure.h
 *	  One failure of an attempt, kept as structured fields.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_FAILURE_H
#define SHARDLOAD_FAILURE_H

#include "postgres.h"

#include "utils/elog.h"

#include "states.h"

struct pg_result;				/* libpq's PGresult */

/*
 * Where a failure happened and what the server (remote or local) said.
 * Strings are palloc'd; none ever holds a password.
 */
typedef struct ShardloadFailure
{
	ShardloadStage stage;
	char	   *shard;			/* foreign server name, NULL if local */
	char		sqlstate[6];
	char	   *message;		/* primary message */
	char	   *detail;			/* NULL if none */
	char	   *hint;
	char	   *context;		/* the server's CONTEXT, if any */
	char	   *schema;			/* of the table/constraint, if the server said */
	char	   *constraint;
	bool		unreachable;	/* the shard did not answer in time */
} ShardloadFailure;

extern ShardloadFailure *ShardloadFailureMake(ShardloadStage stage, const char *shard,
											  const char *sqlstate, const char *message,
											  const char *detail, const char *hint);
extern ShardloadFailure *ShardloadFailureFromError(ErrorData *edata, ShardloadStage stage,
												   const char *shard);
extern ShardloadFailure *ShardloadFailureFromResult(const struct pg_result *res,
													ShardloadStage stage, const char *shard);
extern void ShardloadFailureAddDetail(ShardloadFailure *f, const char *more);
extern char *ShardloadFailureText(ShardloadFailure *f);
extern char *ShardloadFailureDetailText(ShardloadFailure *f);

#endif							/* SHARDLOAD_FAILURE_H */
