/*-------------------------------------------------------------------------
 * outcome.c
 *	  The last step of an attempt (loader.c): record how it went.  Each
 *	  slice's state, the circuit breakers of the servers it reached, the
 *	  attempt's failure (classified, with the retry policy's decision) and
 *	  the batch's next state; then tell the caller.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "attempt.h"
#include "circuit.h"
#include "classify.h"
#include "group_catalog.h"
#include "metadata.h"
#include "route_check.h"

/*
 * What the record steps of a runner's group have already written about
 * each server ("I:server=identity", "S:server" for a success), so that
 * twenty batches over the same shards do not write the same row twenty
 * times in one transaction.
 */
static List *group_memo = NIL;

static void record_circuits(RunState *rs);
static bool succeeded(RunState *rs);
static void record_outcomes_begin(RunState **rs, int n);
static bool memo_has(const char *key);
static void memo_set(const char *key, bool on);
static int	record_slices(RunState *rs, ShardloadCatalogSession *session,
						  ShardloadFailure **worst, ShardloadDecision *decision);

/*
 * record_circuits
 *	  Tell each server's circuit breaker how this attempt went with it.
 */
static void
record_circuits(RunState *rs)
{
	List	   *seen = NIL;

	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];
		char	   *key;

		if (slice->stream == NULL || slice->stream->sent_identity == NULL)
			continue;
		/* the server's identity (the slice's own goes with its state) */
		key = psprintf("I:%s=%s", slice->shard, slice->stream->sent_identity);
		if (memo_has(key))
			continue;
		ShardloadShardIdentitySet(slice->shard, slice->stream->sent_identity);
		memo_set(key, true);
	}

	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];
		ListCell   *lc;
		bool		dup = false;

		if (slice->shard == NULL || slice->was_committed || slice->deferred)
			continue;
		foreach(lc, seen)
			if (strcmp(lfirst(lc), slice->shard) == 0)
				dup = true;
		if (dup)
			continue;
		seen = lappend(seen, slice->shard);
		if (slice->committed)
		{
			char	   *key = psprintf("S:%s", slice->shard);

			/* a success right after a success changes nothing */
			if (!memo_has(key))
				ShardloadCircuitRecord(slice->shard, true, NULL, NULL);
			memo_set(key, true);
		}
		else if (slice->failure)
		{
			char	   *key = psprintf("F:%s", slice->shard);

			/* one failure of a server per group: one event, seen by all */
			if (!memo_has(key))
				ShardloadCircuitRecord(slice->shard, false,
									   slice->failure->unreachable ? "08000" : slice->failure->sqlstate,
									   ShardloadFailureText(slice->failure));
			memo_set(key, true);
			memo_set(psprintf("S:%s", slice->shard), false);
		}
	}
}

/*
 * ShardloadRecordOutcomes
 *	  The record step of a group (or of one attempt): rs[0..n-1], NULLs
 *	  allowed.  The attempts of a group that succeeded are written all at
 *	  once (group_catalog.c), the others one by one.
 */
void
ShardloadRecordOutcomes(RunState **rs, int n)
{
	RunState  **done = palloc(sizeof(RunState *) * Max(n, 1));
	int			ndone = 0;

	record_outcomes_begin(rs, n);
	for (int i = 0; i < n; i++)
	{
		if (rs[i] == NULL)
			continue;
		if (n > 1 && succeeded(rs[i]))
		{
			record_circuits(rs[i]);
			done[ndone++] = rs[i];
		}
		else
			ShardloadRecordOutcome(rs[i]);
	}
	if (ndone > 0)
		ShardloadGroupRecordSucceeded(done, ndone);
}

/*
 * succeeded
 *	  The attempt succeeded: no failure, every slice committed (now or
 *	  before).  An atomic batch is recorded alone.
 */
static bool
succeeded(RunState *rs)
{
	if (rs->failure != NULL || rs->batch->atomic)
		return false;
	for (int i = 0; i < rs->nslices; i++)
		if (rs->slices[i].failure != NULL || rs->slices[i].deferred ||
			!(rs->slices[i].committed || rs->slices[i].was_committed))
			return false;
	return true;
}

/*
 * record_outcomes_begin
 *	  The record step of a group (or of one attempt, rs[0..n-1], NULLs
 *	  allowed) begins: nothing is written yet in its transaction.  The
 *	  servers' rows of shardload.shard_state are locked first, in name
 *	  order, so that two runners recording groups over the same servers
 *	  cannot deadlock.
 */
static void
record_outcomes_begin(RunState **rs, int n)
{
	ShardloadCatalogSession session;
	List	   *servers = NIL;
	Datum	   *elems;
	int			nservers = 0;
	ListCell   *lc;
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		values[1];

	list_free_deep(group_memo);
	group_memo = NIL;
	for (int i = 0; i < n; i++)
		for (int j = 0; rs[i] != NULL && j < rs[i]->nslices; j++)
			if (rs[i]->slices[j].shard != NULL)
				servers = list_append_unique_ptr(servers, rs[i]->slices[j].shard);
	if (list_length(servers) < 2)
		return;
	elems = palloc(sizeof(Datum) * list_length(servers));
	foreach(lc, servers)
		elems[nservers++] = CStringGetTextDatum((char *) lfirst(lc));
	values[0] = PointerGetDatum(construct_array(elems, nservers, TEXTOID, -1, false, TYPALIGN_INT));
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT 1 FROM shardload.shard_state WHERE server = ANY ($1)"
					 " ORDER BY server FOR UPDATE", 1, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}

static bool
memo_has(const char *key)
{
	ListCell   *lc;

	foreach(lc, group_memo)
		if (strcmp(lfirst(lc), key) == 0)
			return true;
	return false;
}

static void
memo_set(const char *key, bool on)
{
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, group_memo)
		if (strcmp(lfirst(lc), key) == 0)
		{
			if (!on)
				group_memo = foreach_delete_current(group_memo, lc);
			return;
		}
	if (!on)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	group_memo = lappend(group_memo, pstrdup(key));
	MemoryContextSwitchTo(old);
}

/*
 * record_slices
 *	  Store the state of each slice this attempt tried, inside the caller's
 *	  catalog session; the most serious failure (and its decision) goes to
 *	  *worst.  Returns how many slices failed.
 */
static int
record_slices(RunState *rs, ShardloadCatalogSession *session, ShardloadFailure **worst,
			  ShardloadDecision *decision)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
	Datum		values[4];
	ShardloadDecision candidate;
	int			nfailed = 0;

	values[0] = Int64GetDatum(rs->batch->batch_id);
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];
		const char *sent_to = slice->stream ? slice->stream->sent_identity : NULL;
		char		snulls[4] = {' ', ' ', ' ', ' '};

		if (slice->was_committed)
			continue;
		values[1] = Int32GetDatum(slice->slice_no);
		if (slice->shard)
			values[2] = CStringGetTextDatum(slice->shard);
		else
			snulls[2] = 'n';
		/* where it went, so that a retry goes to the same database only */
		if (sent_to)
			values[3] = CStringGetTextDatum(sent_to);
		else
			snulls[3] = 'n';
		if (slice->committed)
		{
			Oid			ctypes[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT8OID};
			char		cnulls[5] = {' ', ' ', snulls[2], snulls[3], ' '};
			Datum		cvalues[5] = {values[0], values[1], values[2], values[3],
			Int64GetDatum(slice->stream ? slice->stream->nskip : 0)};

			/* a slice found in the ledger keeps the count it was loaded with */
			ShardloadSpiExec("UPDATE shardload.slice SET state = 'committed',"
							 " committed_at = coalesce(committed_at, now()), shard = $3,"
							 " shard_identity = coalesce($4, shard_identity),"
							 " rows_rejected = CASE WHEN $5 > 0 THEN $5 ELSE rows_rejected END"
							 " WHERE batch_id = $1 AND slice_no = $2",
							 5, ctypes, cvalues, cnulls);
		}
		else if (slice->failure)
		{
			nfailed++;
			ShardloadSpiExec("UPDATE shardload.slice SET state = 'failed', shard = $3,"
							 " shard_identity = coalesce($4, shard_identity)"
							 " WHERE batch_id = $1 AND slice_no = $2 AND slice_no <> 0",
							 4, argtypes, values, snulls);
			/* the most serious failure speaks for the attempt */
			ShardloadClassify(session, slice->failure->sqlstate, &candidate);
			if (*worst == NULL || candidate.failure_type > decision->failure_type)
			{
				*worst = slice->failure;
				*decision = candidate;
			}
		}
		else if (sent_to)
			ShardloadSpiExec("UPDATE shardload.slice SET shard_identity = $4"
							 " WHERE batch_id = $1 AND slice_no = $2",
							 4, argtypes, values, snulls);
	}
	return nfailed;
}

/*
 * ShardloadRecordOutcome
 *	  Store slice states, the attempt's outcome and the batch's next state;
 *	  tell the caller how it went.
 */
void
ShardloadRecordOutcome(RunState *rs)
{
	ShardloadCatalogSession session;
	ShardloadFailure *worst = rs->failure;
	ShardloadDecision decision;
	int			nfailed;
	ShardloadArgs args = {0};

	memset(&decision, 0, sizeof(decision));
	record_circuits(rs);
	ShardloadCatalogBegin(&session);
	if (worst != NULL)
		ShardloadClassify(&session, worst->sqlstate, &decision);
	nfailed = record_slices(rs, &session, &worst, &decision);
	ShardloadArgInt8(&args, rs->batch->batch_id);	/* $1 */
	ShardloadArgInt4(&args, rs->attempt);	/* $2 */
	if (worst == NULL)
	{
		ShardloadArgText(&args, "succeeded");	/* $3: the batch's state */
		for (int i = 4; i <= 9; i++)	/* $4-$9: stage ... message */
			ShardloadArgText(&args, NULL);
		ShardloadArgNull(&args, FLOAT8OID); /* $10: retry delay */
		ShardloadArgText(&args, "NONE");	/* $11: next action */
		for (int i = 12; i <= 15; i++)	/* $12-$15: the failure's parts */
			ShardloadArgText(&args, NULL);
	}
	else
	{
		ShardloadPolicy *policy = ShardloadPolicyFor(&session, rs->batch);

		ShardloadDecide(policy, rs->attempt - rs->batch->series_start, &decision);
		ShardloadArgText(&args, ShardloadBatchStateName(decision.state));
		ShardloadArgText(&args, ShardloadStageName(worst->stage));
		ShardloadArgText(&args, worst->shard);
		ShardloadArgText(&args, decision.failure_type_name);
		ShardloadArgText(&args, decision.reason);
		ShardloadArgText(&args, worst->sqlstate);
		ShardloadArgText(&args, nfailed > 1 ?
						 psprintf("%s\n(%d slices failed in this attempt)",
								  ShardloadFailureText(worst), nfailed) :
						 ShardloadFailureText(worst));
		if (strcmp(decision.next_action, "RETRY") == 0)
			ShardloadArgFloat8(&args, decision.delay);
		else
			ShardloadArgNull(&args, FLOAT8OID);
		ShardloadArgText(&args, decision.next_action);
		ShardloadArgText(&args, worst->message);
		ShardloadArgText(&args, worst->detail);
		ShardloadArgText(&args, worst->hint);
		ShardloadArgText(&args, worst->context);
	}
	ShardloadSpiRun("UPDATE shardload.attempt SET finished_at = clock_timestamp(),"
					" status = CASE WHEN $3 = 'succeeded' THEN 'succeeded' ELSE 'failed' END,"
					" stage = $4, shard = $5, failure_type = $6, reason = $7, sqlstate = $8,"
					" message = $9, next_action = $11,"
					" primary_message = $12, detail = $13, hint = $14, context = $15,"
					" next_attempt_at = clock_timestamp() + make_interval(secs => $10)"
					" WHERE batch_id = $1 AND attempt = $2",
					&args);
	ShardloadSpiRun("UPDATE shardload.batch SET state = $3, last_failure_type = $6,"
					" last_reason = $7,"
					" next_attempt_at = clock_timestamp() + make_interval(secs => $10),"
					" finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'quarantined', 'dead')"
					"  THEN clock_timestamp() END,"
					" rows_loaded = (SELECT coalesce(sum(s.rows - s.rows_rejected), 0)"
					"  FROM shardload.slice s WHERE s.batch_id = $1 AND s.state = 'committed'),"
					" rows_rejected = (SELECT count(*) FROM shardload.reject r WHERE r.batch_id = $1)"
					" WHERE batch_id = $1",
					&args);
	ShardloadCatalogEnd(&session);

	if (worst != NULL)
	{
		char	   *rest = ShardloadFailureDetailText(worst);

		ereport(WARNING,
				(errmsg("batch %lld failed at stage %s%s%s: %s",
						(long long) rs->batch->batch_id, ShardloadStageName(worst->stage),
						worst->shard ? " on server " : "",
						worst->shard ? quote_identifier(worst->shard) : "", worst->message),
				 rest ? errdetail_internal("%s", rest) : 0,
				 errhint("The failure is %s (%s); the batch is now %s, next action %s.",
						 decision.failure_type_name, decision.reason, ShardloadBatchStateName(decision.state),
						 decision.next_action)));
	}
}
