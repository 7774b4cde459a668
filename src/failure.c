/*-------------------------------------------------------------------------
 * failure.c
 *	  Failures of an attempt as structured fields (message, detail, hint,
 *	  context), made in one place and turned into text only where they are
 *	  stored or reported.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "libpq-fe.h"
#include "utils/builtins.h"

#include "failure.h"

static char *copy_or_null(const char *s);

/*
 * ShardloadFailureMake
 *	  A failure with the given fields (detail and hint may be NULL), in the
 *	  current memory context.
 */
ShardloadFailure *
ShardloadFailureMake(ShardloadStage stage, const char *shard, const char *sqlstate,
					 const char *message, const char *detail, const char *hint)
{
	ShardloadFailure *f = palloc0(sizeof(ShardloadFailure));

	f->stage = stage;
	f->shard = copy_or_null(shard);
	strlcpy(f->sqlstate, sqlstate, sizeof(f->sqlstate));
	f->message = pstrdup(message ? message : "unknown error");
	f->detail = copy_or_null(detail);
	f->hint = copy_or_null(hint);
	return f;
}

/*
 * ShardloadFailureFromError
 *	  A caught local error as a failure, with its own SQLSTATE.
 */
ShardloadFailure *
ShardloadFailureFromError(ErrorData *edata, ShardloadStage stage, const char *shard)
{
	ShardloadFailure *f = ShardloadFailureMake(stage, shard,
											   unpack_sql_state(edata->sqlerrcode),
											   edata->message, edata->detail, edata->hint);

	f->context = copy_or_null(edata->context);
	return f;
}

/*
 * ShardloadFailureFromResult
 *	  A remote error as a failure: the remote SQLSTATE and its text.
 */
ShardloadFailure *
ShardloadFailureFromResult(const PGresult *res, ShardloadStage stage, const char *shard)
{
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
	const char *schema = PQresultErrorField(res, PG_DIAG_SCHEMA_NAME);
	const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	ShardloadFailure *f =
		ShardloadFailureMake(stage, shard, sqlstate ? sqlstate : "XX000",
							 primary ? primary : pchomp(PQresultErrorMessage(res)),
							 PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
							 PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));

	f->context = context ? pstrdup(context) : NULL;
	f->schema = schema ? pstrdup(schema) : NULL;
	f->constraint = constraint ? pstrdup(constraint) : NULL;
	return f;
}

/*
 * ShardloadFailureAddDetail
 *	  Add a sentence to the failure's detail.
 */
void
ShardloadFailureAddDetail(ShardloadFailure *f, const char *more)
{
	f->detail = f->detail ? psprintf("%s %s", f->detail, more) : pstrdup(more);
}

/*
 * ShardloadFailureText
 *	  The failure as psql shows an error: the message, then DETAIL, HINT
 *	  and CONTEXT lines.  What shardload.attempts.message holds.
 */
char *
ShardloadFailureText(ShardloadFailure *f)
{
	char	   *rest = ShardloadFailureDetailText(f);

	if (rest == NULL)
		return pstrdup(f->message);
	return psprintf("%s\n%s%s", f->message, f->detail ? "DETAIL:  " : "", rest);
}

/*
 * ShardloadFailureDetailText
 *	  Everything after the message: the detail, then HINT and CONTEXT
 *	  lines; NULL if there is nothing.
 */
char *
ShardloadFailureDetailText(ShardloadFailure *f)
{
	StringInfoData buf;

	if (f->detail == NULL && f->hint == NULL && f->context == NULL)
		return NULL;
	initStringInfo(&buf);
	if (f->detail)
		appendStringInfoString(&buf, f->detail);
	if (f->hint)
		appendStringInfo(&buf, "%sHINT:  %s", buf.len > 0 || f->detail ? "\n" : "", f->hint);
	if (f->context)
		appendStringInfo(&buf, "%sCONTEXT:  %s", buf.len > 0 ? "\n" : "", f->context);
	return buf.data;
}

static char *
copy_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}
