/*-------------------------------------------------------------------------
 * group_catalog.c
 *	  The catalog writes of a runner's group of batches, one statement for
 *	  all of them: the begin step's (each attempt counted and recorded as
 *	  running) and the record step's for the attempts that succeeded.  Row
 *	  for row what loader.c and outcome.c write for one attempt, so that a
 *	  group of twenty small batches costs a handful of statements instead
 *	  of a hundred.
 *
 *	  A runner keeps its plans for its life, and one made while the catalog
 *	  looked empty must not read every slice of it once per group later:
 *	  each statement that joins the catalog with the unnested values also
 *	  asks for batch_id = ANY ($1), which bounds the catalog's side of the
 *	  join whatever its order, and reads the values once (MATERIALIZED),
 *	  not once per catalog row.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "attempt.h"
#include "group_catalog.h"
#include "metadata.h"

/* One column of values for unnest(), built up row by row. */
typedef struct ColumnValues
{
	Oid			type;
	Datum	   *values;
	bool	   *nulls;
	int			n;
} ColumnValues;

static void column_init(ColumnValues *col, Oid type, int capacity);
static void column_add(ColumnValues *col, Datum value, bool isnull);
static void column_arg(ShardloadArgs *args, ColumnValues *col);

/*
 * ShardloadGroupMarkRunning
 *	  The begin step's rows for each attempt in rs[0..n-1]: an attempt
 *	  still "running" ended without its outcome (we hold the batches'
 *	  locks), the batch is running this attempt, the attempt's row, and
 *	  each slice still to load pinned to the database its server reached
 *	  last, before anything is sent: if the attempt's outcome is lost, the
 *	  next one knows where the slice may have gone (the record step puts
 *	  where it did go).
 */
void
ShardloadGroupMarkRunning(RunState **rs, int n)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	ColumnValues batch_ids;
	ColumnValues attempts;

	if (n == 0)
		return;
	column_init(&batch_ids, INT8OID, n);
	column_init(&attempts, INT4OID, n);
	for (int i = 0; i < n; i++)
	{
		column_add(&batch_ids, Int64GetDatum(rs[i]->batch->batch_id), false);
		column_add(&attempts, Int32GetDatum(rs[i]->attempt), false);
	}
	column_arg(&args, &batch_ids);	/* $1 */
	column_arg(&args, &attempts);	/* $2 */
	ShardloadArgInt4(&args, MyProcPid); /* $3 */

	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("UPDATE shardload.attempt SET status = 'interrupted',"
					" finished_at = clock_timestamp(),"
					" message = 'the attempt ended without recording its outcome'"
					" WHERE batch_id = ANY ($1) AND status = 'running'",
					&args);
	ShardloadSpiRun("WITH u AS MATERIALIZED (SELECT * FROM unnest($1, $2) AS u(batch_id, attempt))"
					" UPDATE shardload.batch b SET state = 'running', attempts = u.attempt,"
					" next_attempt_at = NULL, finished_at = NULL FROM u"
					" WHERE b.batch_id = u.batch_id AND b.batch_id = ANY ($1)",
					&args);
	ShardloadSpiRun("INSERT INTO shardload.attempt (batch_id, attempt, runner_pid)"
					" SELECT u.batch_id, u.attempt, $3 FROM unnest($1, $2) AS u(batch_id, attempt)",
					&args);
	ShardloadSpiRun("UPDATE shardload.slice s SET shard_identity = st.identity"
					" FROM shardload.shard_state st"
					" WHERE s.batch_id = ANY ($1) AND s.shard_identity IS NULL AND s.state <> 'committed'"
					" AND st.server = s.shard AND st.identity IS NOT NULL",
					&args);
	ShardloadCatalogEnd(&session);
}

/*
 * ShardloadGroupRecordSucceeded
 *	  Record the attempts in rs that succeeded (every slice committed, now
 *	  or before), as ShardloadRecordOutcome does for one: their slices
 *	  committed where they went, the attempts succeeded, the batches
 *	  succeeded with the rows they loaded and refused.
 */
void
ShardloadGroupRecordSucceeded(RunState **rs, int n)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	ColumnValues batch_ids;
	ColumnValues attempts;
	ColumnValues slice_batches;
	ColumnValues slice_nos;
	ColumnValues shards;
	ColumnValues identities;
	ColumnValues skipped;
	int			nslices = 0;

	for (int i = 0; i < n; i++)
		nslices += rs[i]->nslices;
	column_init(&batch_ids, INT8OID, n);
	column_init(&attempts, INT4OID, n);
	column_init(&slice_batches, INT8OID, nslices);
	column_init(&slice_nos, INT4OID, nslices);
	column_init(&shards, TEXTOID, nslices);
	column_init(&identities, TEXTOID, nslices);
	column_init(&skipped, INT8OID, nslices);
	for (int i = 0; i < n; i++)
	{
		column_add(&batch_ids, Int64GetDatum(rs[i]->batch->batch_id), false);
		column_add(&attempts, Int32GetDatum(rs[i]->attempt), false);
		for (int j = 0; j < rs[i]->nslices; j++)
		{
			RunSlice   *slice = &rs[i]->slices[j];
			const char *sent_to = slice->stream ? slice->stream->sent_identity : NULL;

			if (slice->was_committed)
				continue;
			column_add(&slice_batches, Int64GetDatum(rs[i]->batch->batch_id), false);
			column_add(&slice_nos, Int32GetDatum(slice->slice_no), false);
			column_add(&shards, slice->shard ? CStringGetTextDatum(slice->shard) : (Datum) 0,
					   slice->shard == NULL);
			/* where it went, so that a retry goes to the same database only */
			column_add(&identities, sent_to ? CStringGetTextDatum(sent_to) : (Datum) 0,
					   sent_to == NULL);
			column_add(&skipped, Int64GetDatum(slice->stream ? slice->stream->nskip : 0), false);
		}
	}
	column_arg(&args, &slice_batches);	/* $1 */
	column_arg(&args, &slice_nos);	/* $2 */
	column_arg(&args, &shards);	/* $3 */
	column_arg(&args, &identities); /* $4 */
	column_arg(&args, &skipped);	/* $5 */

	ShardloadCatalogBegin(&session);
	/* a slice found in the ledger keeps the count it was loaded with */
	ShardloadSpiRun("WITH u AS MATERIALIZED (SELECT * FROM unnest($1, $2, $3, $4, $5)"
					"  AS u(batch_id, slice_no, shard, identity, skipped))"
					" UPDATE shardload.slice s SET state = 'committed',"
					" committed_at = coalesce(s.committed_at, now()), shard = u.shard,"
					" shard_identity = coalesce(u.identity, s.shard_identity),"
					" rows_rejected = CASE WHEN u.skipped > 0 THEN u.skipped ELSE s.rows_rejected END"
					" FROM u"
					" WHERE s.batch_id = u.batch_id AND s.slice_no = u.slice_no AND s.batch_id = ANY ($1)",
					&args);
	memset(&args, 0, sizeof(args));
	column_arg(&args, &batch_ids);	/* $1 */
	column_arg(&args, &attempts);	/* $2 */
	ShardloadSpiRun("WITH u AS MATERIALIZED (SELECT * FROM unnest($1, $2) AS u(batch_id, attempt))"
					" UPDATE shardload.attempt a SET finished_at = clock_timestamp(),"
					" status = 'succeeded', stage = NULL, shard = NULL, failure_type = NULL,"
					" reason = NULL, sqlstate = NULL, message = NULL, next_action = 'NONE',"
					" primary_message = NULL, detail = NULL, hint = NULL, context = NULL,"
					" next_attempt_at = NULL FROM u"
					" WHERE a.batch_id = u.batch_id AND a.attempt = u.attempt AND a.batch_id = ANY ($1)",
					&args);
	ShardloadSpiRun("UPDATE shardload.batch b SET state = 'succeeded', last_failure_type = NULL,"
					" last_reason = NULL, next_attempt_at = NULL, finished_at = clock_timestamp(),"
					" rows_loaded = (SELECT coalesce(sum(s.rows - s.rows_rejected), 0)"
					"  FROM shardload.slice s WHERE s.batch_id = b.batch_id AND s.state = 'committed'),"
					" rows_rejected = (SELECT count(*) FROM shardload.reject r WHERE r.batch_id = b.batch_id)"
					" WHERE b.batch_id = ANY ($1)",
					&args);
	ShardloadCatalogEnd(&session);
}

static void
column_init(ColumnValues *col, Oid type, int capacity)
{
	col->type = type;
	col->values = palloc(sizeof(Datum) * Max(capacity, 1));
	col->nulls = palloc(sizeof(bool) * Max(capacity, 1));
	col->n = 0;
}

static void
column_add(ColumnValues *col, Datum value, bool isnull)
{
	col->values[col->n] = value;
	col->nulls[col->n] = isnull;
	col->n++;
}

/*
 * column_arg
 *	  The column as the next parameter of a statement: an array of its
 *	  type.
 */
static void
column_arg(ShardloadArgs *args, ColumnValues *col)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {col->n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(col->type, &typlen, &typbyval, &typalign);
	ShardloadArg(args, get_array_type(col->type),
				 PointerGetDatum(construct_md_array(col->values, col->nulls, 1, dims, lbs,
													col->type, typlen, typbyval, typalign)),
				 false);
}
