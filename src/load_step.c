/*-------------------------------------------------------------------------
 * load_step.c
 *	  The load step of an attempt (loader.c): route checks, local slices
 *	  by in-process COPY, foreign slices streamed to their shards.  A
 *	  runner loads a group of small batches of one owner together, so that
 *	  their slices share one connection per server and one stream.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "atomic.h"
#include "compat.h"
#include "attempt.h"
#include "circuit.h"
#include "connection.h"
#include "copy_stream.h"
#include "metadata.h"
#include "payload.h"
#include "role_context.h"
#include "route_check.h"
#include "routing.h"
#include "stream_skip.h"
#include "subxact.h"
#include "value_forms.h"

/* Arguments of the steps run in subtransactions. */
typedef struct LocalSliceStep
{
	RunState   *rs;
	RunSlice   *slice;
	List	   *column_names;
} LocalSliceStep;

typedef struct ConnParamsStep
{
	StreamShard *sh;
	Oid			serverid;
	Oid			owner;
} ConnParamsStep;

static void prepare_slices(RunState *rs);
static void local_slice_step(void *arg);
static void conn_params_step(void *arg);
static void load_local_slice(RunState *rs, RunSlice *slice, List *column_names);
static StreamSlice *stream_slice_for(RunSlice *slice, ShardloadRouter *router);
static void read_slices(RunState *rs);
static bool batch_cannot_run(RunState *rs, ShardloadRouter *router);
static void plan_foreign_slice(RunState *rs, RunSlice *slice, ShardloadRouter *router,
							   List **servers, List **shard_list);
static void stream_foreign_slices(ShardloadGroup *group, bool fixed_forms);
static void merge_servers(RunState **members, int nmembers, int capacity, List **servers,
						  List **shard_list);
static void describe_batch(RunState *rs, StreamBatch *sb, bool fixed_forms);
static bool destination_changed(ShardloadBatch *batch, RunSlice *slice,
								ShardloadRouter *router);
static void skip_known_rejects(int64 batch_id, StreamSlice *ss);
static void decide_atomic(RunState *rs);
static void load_later_step(void *arg);
static int64 count_rejects(int64 batch_id);

/*
 * ShardloadLoadGroupStep
 *	  The load of a group of batches (one batch, or a runner's batches of
 *	  one owner): route checks and local slices batch by batch, then the
 *	  foreign slices of all of them streamed at once, one connection per
 *	  server.  It runs as the batches' owner, whoever runs it (runner,
 *	  run_due, an admin's CALL): the owner's rights and user mappings, its
 *	  triggers in a security-restricted operation, nothing left behind.
 *	  Runs in the caller's subtransaction (ShardloadStep).
 */
void
ShardloadLoadGroupStep(void *arg)
{
	ShardloadGroup *group = (ShardloadGroup *) arg;
	RunState   *lead = group->members[0];
	ShardloadRoleContext role;

	ShardloadCheckRoleExists(lead->batch->owner,
							 psprintf("batch %lld", (long long) lead->batch->batch_id));
	ShardloadBecomeRole(&role, lead->batch->owner, NULL);
	for (int i = 0; i < group->n; i++)
		prepare_slices(group->members[i]);
	/* a connection's session reads the fixed forms or not: two streams */
	stream_foreign_slices(group, true);
	stream_foreign_slices(group, false);
	for (int i = 0; i < group->n; i++)
		if (group->members[i]->atomic_began)
			decide_atomic(group->members[i]);
	for (int i = 0; i < group->n; i++)
		if (group->members[i]->target != NULL)
			table_close(group->members[i]->target, AccessShareLock);
	ShardloadRestoreRole(&role);
}

/*
 * prepare_slices
 *	  Route checks, then local slices one by one; foreign slices are put on
 *	  their servers' streams (rs->servers, rs->shard_list).  Leaves the
 *	  target open in rs->target (NULL if the batch cannot run).
 */
static void
prepare_slices(RunState *rs)
{
	ShardloadBatch *batch = rs->batch;
	Relation	target;
	ShardloadRouter *router;
	List	   *column_names;

	read_slices(rs);
	target = try_relation_open(batch->target, AccessShareLock);
	if (target == NULL)
	{
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P01",
										   psprintf("relation \"%s\" does not exist", batch->target_name),
										   NULL, NULL);
		return;
	}
	router = ShardloadRouterCreate(target);
	column_names = ShardloadColumnNameList(router);
	if (batch_cannot_run(rs, router))
	{
		table_close(target, AccessShareLock);
		return;
	}
	rs->target = target;

	/* local slices first, each on its own; foreign ones grouped by server */
	rs->stage = SHARDLOAD_STAGE_COPY;
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];
		char		relkind;

		if (slice->committed)
			continue;
		relkind = get_rel_relkind(slice->partition);
		if (relkind == '\0' || !get_rel_relispartition(slice->partition) ||
			get_partition_parent(slice->partition, true) != batch->target)
		{
			slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P01",
												  psprintf("partition of slice %d is no longer a partition of \"%s\"",
														   slice->slice_no, RelationGetRelationName(target)),
												  NULL, NULL);
			continue;
		}
		if (destination_changed(batch, slice, router))
			continue;
		if (relkind == RELKIND_RELATION && batch->atomic)
		{
			/* loaded once every shard has PREPAREd (decide_atomic) */
			slice->local = slice->load_later = true;
			rs->column_names = column_names;
		}
		else if (relkind == RELKIND_RELATION)
			load_local_slice(rs, slice, column_names);
		else if (relkind == RELKIND_FOREIGN_TABLE)
			plan_foreign_slice(rs, slice, router, &rs->servers, &rs->shard_list);
		else
			slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "0A000",
												  psprintf("partition \"%s\" is neither a table nor a foreign table",
														   get_rel_name(slice->partition)),
												  NULL, NULL);
	}
}

/*
 * read_slices
 *	  The batch's slices as this attempt sees them, into rs.
 */
static void
read_slices(RunState *rs)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(rs->batch->batch_id)};

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT slice_no, coalesce(partition::oid, 0), rows, state,"
					 " first_row_line, first_row_detail, bytes, route_signature, shard_identity"
					 " FROM shardload.slice WHERE batch_id = $1 ORDER BY slice_no",
					 1, argtypes, values, NULL);
	rs->nslices = (int) SPI_processed;
	rs->slices = MemoryContextAllocZero(session.outer, sizeof(RunSlice) * Max(rs->nslices, 1));
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		slice->slice_no = (int) ShardloadSpiInt64(i, 1, NULL);
		slice->partition = (Oid) ShardloadSpiInt64(i, 2, NULL);
		slice->rows = ShardloadSpiInt64(i, 3, NULL);
		slice->was_committed = strcmp(ShardloadSpiText(&session, i, 4), "committed") == 0;
		slice->committed = slice->was_committed;
		slice->first_line = ShardloadSpiInt64(i, 5, NULL);
		slice->first_detail = ShardloadSpiText(&session, i, 6);
		slice->bytes = ShardloadSpiInt64(i, 7, NULL);
		slice->signature = ShardloadSpiText(&session, i, 8);
		slice->identity = ShardloadSpiText(&session, i, 9);
		/* only 0.2+ captures sign their slices and write fixed forms */
		rs->fixed_forms |= slice->signature != NULL;
	}
	ShardloadCatalogEnd(&session);
}

/*
 * batch_cannot_run
 *	  The checks of the whole batch before anything is sent; true (with
 *	  rs->failure set) if one fails.
 */
static bool
batch_cannot_run(RunState *rs, ShardloadRouter *router)
{
	ShardloadBatch *batch = rs->batch;
	const char *relname = RelationGetRelationName(router->rel);

	if (strcmp(batch->columns, ShardloadColumnListText(router)) != 0)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P16",
										   psprintf("columns of table \"%s\" changed since batch %lld was submitted",
													relname, (long long) batch->batch_id),
										   psprintf("The rows were captured for (%s); the table now has (%s).",
													batch->columns, ShardloadColumnListText(router)),
										   "Submit the rows again under a new batch key.");
	else if (pg_class_aclcheck(batch->target, batch->owner, ACL_INSERT) != ACLCHECK_OK)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42501",
										   psprintf("permission denied for table %s", relname),
										   psprintf("Role \"%s\" submitted the batch and no longer has INSERT on it.",
													GetUserNameFromId(batch->owner, false)),
										   NULL);
	else if (batch->rows_rejected > batch->reject_limit)
		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "22000",
										   psprintf("batch has %lld rejected rows, more than its reject_limit of %lld",
													(long long) batch->rows_rejected,
													(long long) batch->reject_limit),
										   "No slice was sent. The rows and their reasons are in shardload.rejects.",
										   NULL);
	else if (rs->nslices > 0 && rs->slices[0].slice_no == 0)
	{
		RunSlice   *bad = &rs->slices[0];

		rs->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "23514",
										   psprintf("no partition of relation \"%s\" found for row", relname),
										   psprintf("Partition key of the failing row contains %s (line %lld); "
													"%lld rows of the batch fit no partition.",
													bad->first_detail, (long long) bad->first_line,
													(long long) bad->rows),
										   NULL);
	}
	return rs->failure != NULL;
}

/*
 * plan_foreign_slice
 *	  Put a foreign partition's slice on its server's stream (*servers and
 *	  *shard_list, one entry per server), unless the server's circuit is
 *	  open.
 */
static void
plan_foreign_slice(RunState *rs, RunSlice *slice, ShardloadRouter *router,
				   List **servers, List **shard_list)
{
	Oid			serverid = GetForeignTable(slice->partition)->serverid;
	char	   *servername = GetForeignServer(serverid)->servername;
	StreamShard *sh = NULL;
	TimestampTz reopen;
	ListCell   *lc;
	ListCell   *sc;

	slice->shard = servername;
	if (ShardloadCircuitOpen(servername, &reopen))
	{
		slice->deferred = true;
		slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_CONNECT, servername, "08000",
											  psprintf("circuit of server \"%s\" is open until %s; the slice was not sent",
													   servername, timestamptz_to_str(reopen)),
											  NULL, NULL);
		return;
	}
	forboth(lc, *servers, sc, *shard_list)
	{
		if (lfirst_oid(lc) == serverid)
			sh = lfirst(sc);
	}
	if (sh == NULL)
	{
		sh = palloc0(sizeof(StreamShard));
		sh->slices = palloc0(sizeof(StreamSlice *) * rs->nslices);
		*servers = lappend_oid(*servers, serverid);
		*shard_list = lappend(*shard_list, sh);
	}
	slice->stream = stream_slice_for(slice, router);
	/* tried before, outcome maybe unknown: only to the same database */
	slice->stream->expected_identity = rs->attempt > 1 ? slice->identity : NULL;
	if (strcmp(rs->batch->on_error, "reject") == 0)
	{
		slice->stream->reject_mode = true;
		skip_known_rejects(rs->batch->batch_id, slice->stream);
	}
	sh->slices[sh->nslices++] = slice->stream;
}

/*
 * stream_foreign_slices
 *	  The foreign slices of the group's batches whose payload is (or is not)
 *	  in the fixed forms: connection parameters per server (a missing user
 *	  mapping fails only its server), then every server's slices streamed
 *	  at once; the outcome goes back to each batch's slices.
 */
static void
stream_foreign_slices(ShardloadGroup *group, bool fixed_forms)
{
	RunState  **members = palloc(sizeof(RunState *) * group->n);
	StreamBatch *stream_batches;
	List	   *servers = NIL;
	List	   *shard_list = NIL;
	StreamShard **shards;
	int			nmembers = 0;
	int			nshards = 0;
	int			capacity = 0;
	ListCell   *lc;
	ListCell   *lc2;

	for (int i = 0; i < group->n; i++)
	{
		RunState   *rs = group->members[i];

		if (rs->target == NULL || rs->fixed_forms != fixed_forms || rs->shard_list == NIL)
			continue;
		members[nmembers++] = rs;
		capacity += rs->nslices;
	}
	if (nmembers == 0)
		return;

	merge_servers(members, nmembers, capacity, &servers, &shard_list);
	shards = palloc0(sizeof(StreamShard *) * Max(list_length(shard_list), 1));
	forboth(lc, servers, lc2, shard_list)
	{
		StreamShard *sh = lfirst(lc2);
		ConnParamsStep step = {sh, lfirst_oid(lc), members[0]->batch->owner};
		ErrorData  *edata = ShardloadTryStep(conn_params_step, &step, false);

		if (edata == NULL)
			shards[nshards++] = sh;
		else
		{
			ShardloadFailure *f = ShardloadFailureFromError(edata, SHARDLOAD_STAGE_CONNECT,
													 GetForeignServer(step.serverid)->servername);

			for (int i = 0; i < sh->nslices; i++)
				sh->slices[i]->failure = f;
		}
	}

	stream_batches = palloc0(sizeof(StreamBatch) * nmembers);
	for (int i = 0; i < nmembers; i++)
		describe_batch(members[i], &stream_batches[i], fixed_forms);
	/* the stream's stage is the group's (group->stage) */
	stream_batches[0].stage_out = &group->stage;
	group->streamed = true;
	ShardloadStreamSlices(&stream_batches[0], shards, nshards);

	for (int i = 0; i < nmembers; i++)
	{
		RunState   *rs = members[i];

		for (int j = 0; j < rs->nslices; j++)
		{
			RunSlice   *slice = &rs->slices[j];

			if (slice->stream == NULL)
				continue;
			slice->committed = slice->stream->committed;
			slice->prepared = slice->stream->prepared;
			rs->prepare_unanswered |= slice->stream->prepare_unknown;
			if (slice->stream->failure)
				slice->failure = slice->stream->failure;
		}
	}
}

/*
 * merge_servers
 *	  One stream per server (*servers, *shard_list), with the slices of
 *	  every member bound for it (capacity: the members' slices in all).
 */
static void
merge_servers(RunState **members, int nmembers, int capacity, List **servers,
			  List **shard_list)
{
	ListCell   *lc;
	ListCell   *lc2;

	for (int i = 0; i < nmembers; i++)
	{
		forboth(lc, members[i]->servers, lc2, members[i]->shard_list)
		{
			StreamShard *own = lfirst(lc2);
			StreamShard *sh = NULL;
			ListCell   *sc;
			ListCell   *shc;

			forboth(sc, *servers, shc, *shard_list)
			{
				if (lfirst_oid(sc) == lfirst_oid(lc))
					sh = lfirst(shc);
			}
			if (sh == NULL)
			{
				sh = palloc0(sizeof(StreamShard));
				sh->slices = palloc0(sizeof(StreamSlice *) * capacity);
				*servers = lappend_oid(*servers, lfirst_oid(lc));
				*shard_list = lappend(*shard_list, sh);
			}
			for (int j = 0; j < own->nslices; j++)
				sh->slices[sh->nslices++] = own->slices[j];
		}
	}
}

/*
 * describe_batch
 *	  What the stream needs to know of rs's batch, into sb, which its
 *	  slices then point to.
 */
static void
describe_batch(RunState *rs, StreamBatch *sb, bool fixed_forms)
{
	ShardloadBatch *batch = rs->batch;

	sb->reject_budget = strcmp(batch->on_error, "reject") == 0 ?
		batch->reject_limit - count_rejects(batch->batch_id) : 0;
	sb->batch_id = batch->batch_id;
	sb->target = batch->target;
	sb->coordinator_id = rs->coordinator_id;
	sb->content_hash = batch->content_hash;
	sb->lc_monetary = batch->lc_monetary;
	sb->fixed_forms = fixed_forms;
	sb->gid_prefix = rs->atomic_began ?
		ShardloadAtomicGidPrefix(rs->coordinator_id, batch->batch_id, rs->attempt) : NULL;
	for (int j = 0; j < rs->nslices; j++)
		if (rs->slices[j].stream != NULL)
			rs->slices[j].stream->batch = sb;
}

/*
 * load_local_slice
 *	  COPY one slice into its local partition and mark it committed, both
 *	  in a subtransaction: a bad slice fails alone.
 */
static void
load_local_slice(RunState *rs, RunSlice *slice, List *column_names)
{
	LocalSliceStep step = {rs, slice, column_names};
	ErrorData  *edata;

	slice->local = true;
	edata = ShardloadTryStep(local_slice_step, &step, false);
	if (edata == NULL)
		slice->committed = true;
	else
		slice->failure = ShardloadFailureFromError(edata, SHARDLOAD_STAGE_COPY, NULL);
}

/*
 * local_slice_step
 *	  Lock the slice's row and load it only if it is not committed yet:
 *	  the right to load it is decided in the transaction that loads it, so
 *	  no interleaving of runs (nor user code releasing the batch's lock)
 *	  loads it twice.  The COPY reads the fixed value forms.
 */
static void
local_slice_step(void *arg)
{
	LocalSliceStep *step = arg;
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	int			nestlevel;
	bool		done;

	values[0] = Int64GetDatum(step->rs->batch->batch_id);
	values[1] = Int32GetDatum(step->slice->slice_no);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT state = 'committed' FROM shardload.slice"
					 " WHERE batch_id = $1 AND slice_no = $2 FOR UPDATE",
					 2, argtypes, values, NULL);
	done = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false}));
	ShardloadCatalogEnd(&session);
	if (done)
	{
		step->slice->was_committed = true;	/* another run loaded it */
		return;
	}

	nestlevel = NewGUCNestLevel();
	if (step->rs->fixed_forms)
		ShardloadSetReadSettings(step->rs->batch->lc_monetary);
	ShardloadLoadLocalSlice(step->rs->batch->batch_id, step->slice->slice_no,
							step->slice->partition, step->column_names);
	AtEOXact_GUC(false, nestlevel);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.slice SET state = 'committed',"
					 " committed_at = now(), shard = NULL"
					 " WHERE batch_id = $1 AND slice_no = $2",
					 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}

static void
conn_params_step(void *arg)
{
	ConnParamsStep *step = arg;

	step->sh->params = ShardloadConnParams(step->serverid, step->owner);
}

/*
 * stream_slice_for
 *	  The COPY command for a foreign partition's slice, with the remote
 *	  table and column names from the foreign table's options.
 */
static StreamSlice *
stream_slice_for(RunSlice *slice, ShardloadRouter *router)
{
	StreamSlice *ss = palloc0(sizeof(StreamSlice));

	ss->slice_no = slice->slice_no;
	ss->rows = slice->rows;
	ss->bytes = slice->bytes;
	ss->remote_table = ShardloadRemoteTable(slice->partition);
	ss->copy_sql = psprintf("COPY %s %s FROM STDIN", ss->remote_table,
							ShardloadRemoteColumns(slice->partition, router));
	return ss;
}

/*
 * destination_changed
 *	  A slice whose partition was re-attached with another bound, moved to
 *	  another server, table or columns since capture fails at ROUTE: its
 *	  rows were routed for the old destination.
 */
static bool
destination_changed(ShardloadBatch *batch, RunSlice *slice, ShardloadRouter *router)
{
	char	   *now;

	if (slice->signature == NULL)
		return false;			/* captured before 0.2 */
	now = ShardloadSliceSignature(slice->partition, router);
	if (strcmp(now, slice->signature) == 0)
		return false;
	slice->failure = ShardloadFailureMake(SHARDLOAD_STAGE_ROUTE, NULL, "42P16",
										  psprintf("partition \"%s\" of slice %d changed since batch %lld was submitted",
												   get_rel_name(slice->partition), slice->slice_no,
												   (long long) batch->batch_id),
										  psprintf("At submit: %s. Now: %s.", slice->signature, now),
										  "The rows were routed for the old partition; submit them again under a new batch key.");
	return true;
}

/*
 * skip_known_rejects
 *	  Rows the shard refused in earlier attempts are not sent again.
 */
static void
skip_known_rejects(int64 batch_id, StreamSlice *ss)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(ss->slice_no);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT slice_line, sqlstate || ' ' || message FROM shardload.reject"
					 " WHERE batch_id = $1 AND slice_no = $2 ORDER BY slice_line",
					 2, argtypes, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *reason = ShardloadSpiText(&session, i, 2);
		MemoryContext old = MemoryContextSwitchTo(session.outer);

		ShardloadStreamSliceSkip(ss, ShardloadSpiInt64(i, 1, NULL), reason);
		MemoryContextSwitchTo(old);
	}
	ShardloadCatalogEnd(&session);
}

static int64
count_rejects(int64 batch_id)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	int64		n;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT count(*) FROM shardload.reject WHERE batch_id = $1",
					 1, argtypes, values, NULL);
	n = ShardloadSpiInt64(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	return n;
}

/*
 * decide_atomic
 *	  An atomic batch's foreign slices are streamed: if every one is
 *	  PREPAREd (or was loaded before), load its local slices, all or none,
 *	  and record the decision to commit in this transaction.  Otherwise
 *	  nothing is decided and the prepared slices are rolled back once the
 *	  step is over (loader.c).
 */
static void
decide_atomic(RunState *rs)
{
	ErrorData  *edata;
	LOCKTAG		tag;

	if (rs->failure != NULL || rs->target == NULL)
		return;
	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		if (slice->failure != NULL ||
			!(slice->committed || slice->prepared || slice->load_later))
			return;
	}
	edata = ShardloadTryStep(load_later_step, rs, false);
	if (edata != NULL)
	{
		/* the local slices went back with it; the failing one says why */
		for (int i = 0; i < rs->nslices; i++)
			if (rs->slices[i].load_later)
				rs->slices[i].committed = false;
		return;
	}
	/*
	 * A local partition's trigger may have released the batch's lock
	 * (pg_advisory_unlock_all): a recovery pass could then have rolled the
	 * prepared slices back, so no decision can be made.
	 */
	ShardloadBatchLockTag(&tag, rs->batch->batch_id);
	/* the error ends the load step; load_group marks its local slices undone */
	if (!ShardloadLockHeldByMe(&tag, ExclusiveLock))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the lock of batch %lld was released during its attempt",
						(long long) rs->batch->batch_id),
				 errdetail("A trigger or other code run by the load released advisory locks; nothing was committed.")));
	ShardloadAtomicDecide(rs->batch->batch_id, rs->attempt);
	rs->decided = true;
}

/*
 * load_later_step
 *	  The local slices of an atomic batch, each as load_local_slice loads
 *	  it; one failing fails them all (an error ends this subtransaction).
 */
static void
load_later_step(void *arg)
{
	RunState   *rs = arg;

	for (int i = 0; i < rs->nslices; i++)
	{
		RunSlice   *slice = &rs->slices[i];

		if (!slice->load_later || slice->committed)
			continue;
		load_local_slice(rs, slice, rs->column_names);
		if (slice->failure != NULL)
			ereport(ERROR,
					(errmsg("local slice %d of atomic batch %lld failed",
							slice->slice_no, (long long) rs->batch->batch_id)));
	}
}
