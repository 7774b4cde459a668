/*-------------------------------------------------------------------------
 * direct_load.c
 *	  CALL shardload.load(): a new batch streamed to its shards while its
 *	  rows are still being captured, its payload never written unless it
 *	  is needed.
 *
 *	  1. capture (shardload.load_submit, in the procedure's first
 *	     transaction): rows go to a temporary file (direct_spill.c) instead
 *	     of shardload.payload, and the shards read them from there at once,
 *	     each slice in an open COPY.  The batch row, its slices, attempt 1
 *	     and an atomic_attempt row for "attempt 0" commit; payload_stored
 *	     is false.
 *	  2. finish (CALL shardload.run of the same batch, next): the COPYs
 *	     end, each slice with its ledger row is PREPAREd as attempt 0; if
 *	     all are, the decision (atomic_attempt.decided_at) and the outcome
 *	     commit together, then COMMIT PREPARED.  Otherwise the temporary
 *	     file becomes the payload in that same transaction, the failure is
 *	     recorded as attempt 1's, and retries go as for any batch.
 *
 *	  Until step 2 commits, the rows are nowhere durable: a batch that was
 *	  interrupted before (payload_stored false, not succeeded) is resolved
 *	  like an atomic attempt without decision and removed, by whoever next
 *	  takes its lock (atomic.c), so that submitting it again loads it.  The
 *	  batch's lock is held from step 1 to the end of step 2.
 *
 *	  Anything unusual (a key already taken, local partitions, rows that
 *	  fit no partition, on_error reject, a shard without prepared
 *	  transactions, any failure during capture) falls back to the usual
 *	  path: the payload is written and the batch runs as submitted.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "atomic.h"
#include "attempt.h"
#include "capture.h"
#include "circuit.h"
#include "connection.h"
#include "copy_binary.h"
#include "copy_stream.h"
#include "direct_load.h"
#include "direct_spill.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "route_check.h"
#include "subxact.h"
#include "value_forms.h"

bool		shardload_direct_load = true;

struct DirectLoad
{
	MemoryContext cxt;			/* lives from capture to finish */
	int64		batch_id;
	Oid			owner;
	bool		atomic;
	LOCKTAG		lock;
	Capture    *cap;
	int			nparts;
	Oid		   *server_of;		/* by slice_no: the partition's server */
	Oid		   *part_of;		/* by slice_no: the partition */
	StreamSlice **slices;		/* by slice_no, once it has rows */
	StreamShard **shards;
	Oid		   *shard_server;
	int			nshards;
	StreamBatch sb;
	ShardloadChunkFeed feed;
	ShardloadStage stage;
	DirectSpill *spill;
	bool		streaming;		/* between ShardloadStreamBegin and End */
	bool		locked;			/* the batch's lock is held */
	bool		broken;			/* a slice cannot go direct */
	bool		given_up;		/* the payload is written instead */
	bool		binary_ended;	/* the capture stopped writing binary */
	int			commits;		/* transactions committed since the capture */
	TimestampTz started_at;		/* attempt 1's start: the capture's */
	bool		capturing;		/* its capture has not ended yet */
};

typedef struct ParamsStep
{
	Oid			serverid;
	Oid			owner;
	ShardConnParams *params;
} ParamsStep;

/* The session's direct load between its capture and its finish. */
static DirectLoad *pending = NULL;
static bool callback_registered = false;

static bool all_foreign(ShardloadRouter *router, Oid **servers);
static void start_direct(DirectLoad *d, Capture *cap, Oid *servers, Oid target);
static void sink_chunk(void *arg, int slice_no, int chunk_no, StringInfo data, StringInfo lines,
					   StringInfo bin);
static void tick(void *arg);
static void add_slice(DirectLoad *d, int slice_no);
static bool trouble(DirectLoad *d, bool after_capture);
static void give_up(DirectLoad *d);
static bool ready_to_commit(DirectLoad *d);
static void mark_direct(DirectLoad *d);
static void record_finish(DirectLoad *d);
static void end_prepared(DirectLoad *d);
static void release(DirectLoad *d);
static void unhook_capture(DirectLoad *d);
static void ask_binary(DirectLoad *d, StreamShard *sh, Oid serverid);
static void params_step(void *arg);
static bytea *feed_chunk(void *arg, int slice_no, int chunk_no, bool binary, int64 *rows,
						 int64 *text_bytes);
static StringInfo binary_to_keep(DirectLoad *d, int slice_no, StringInfo bin);
static void end_binary(DirectLoad *d);
static void at_xact_end(XactEvent event, void *arg);

/*
 * ShardloadDirectSubmit
 *	  shardload.load_submit(): submit as shardload.submit() does, streaming
 *	  the rows to the shards meanwhile when the batch can go direct.
 */
int64
ShardloadDirectSubmit(ShardloadSubmitArgs *args)
{
	ShardloadSubmission *sub;
	DirectLoad *d;

	/* in a transaction block, load's COMMIT would fail after the streaming */
	if (IsTransactionBlock() || !ShardloadDirectAllowed(args))
		return ShardloadSubmit(args);
	sub = ShardloadSubmitBegin(args);
	d = ShardloadDirectBegin(sub, args->target);
	ShardloadSubmitCaptureRows(sub);
	return ShardloadDirectEnd(sub, d);
}

/*
 * ShardloadDirectBegin
 *	  The capture of a submission begun (its key claimed) goes direct if it
 *	  can: returns its direct load (the session's pending one, abandoned if
 *	  the transaction aborts), or NULL for the usual path.
 */
DirectLoad *
ShardloadDirectBegin(ShardloadSubmission *sub, Oid target)
{
	Capture    *cap = ShardloadSubmissionCapture(sub);
	Oid		   *servers;
	DirectLoad *d;

	/* a taken key only hashes its rows; local partitions load in-process */
	if (!cap->write_payload || !all_foreign(cap->router, &servers))
		return NULL;
	d = MemoryContextAllocZero(TopMemoryContext, sizeof(DirectLoad));
	d->capturing = true;
	pending = d;
	start_direct(d, cap, servers, target);
	return d;
}

/*
 * ShardloadDirectEnd
 *	  The rows are captured: finish the submission; a direct load commits
 *	  without payload (its finish is next), or, if it cannot, writes the
 *	  payload now.  Returns the batch id.
 */
int64
ShardloadDirectEnd(ShardloadSubmission *sub, DirectLoad *d)
{
	int64		batch_id = ShardloadSubmitEnd(sub);
	bool		ready;

	if (d == NULL)
		return batch_id;
	ready = !d->given_up && ready_to_commit(d);
	if (!ready)
		give_up(d);
	/* the capture lives in the caller's memory, which goes before the finish */
	unhook_capture(d);
	if (ready)
	{
		mark_direct(d);
		d->capturing = false;
	}
	else
		release(d);
	return batch_id;
}

/*
 * ShardloadDirectAllowed
 *	  The batch's settings allow a direct load.  A temp_file_limit could
 *	  fail a capture that the payload would take, and recovery ends
 *	  prepared transactions only in READ COMMITTED.
 */
bool
ShardloadDirectAllowed(ShardloadSubmitArgs *args)
{
	if (pending != NULL && pending->capturing)
		return false;			/* a submit in another's source query */
	if (pending != NULL)
		release(pending);		/* a capture whose finish never came */
	return shardload_direct_load && strcmp(args->on_error, "stop") == 0 &&
		!IsolationUsesXactSnapshot() && temp_file_limit < 0 && !IsSubTransaction();
}

/*
 * all_foreign
 *	  Every partition is a foreign table whose server's circuit is closed;
 *	  *servers: each one's server, by slice number.
 */
static bool
all_foreign(ShardloadRouter *router, Oid **servers)
{
	*servers = palloc0(sizeof(Oid) * (router->nparts + 1));
	for (int i = 0; i < router->nparts; i++)
	{
		Oid			serverid;
		TimestampTz reopen;

		if (get_rel_relkind(router->part_oids[i]) != RELKIND_FOREIGN_TABLE)
			return false;
		serverid = GetForeignTable(router->part_oids[i])->serverid;
		if (ShardloadCircuitOpen(GetForeignServer(serverid)->servername, &reopen))
			return false;
		(*servers)[i + 1] = serverid;
	}
	return true;
}

/*
 * start_direct
 *	  Take the new batch's lock, hook the capture to the spill and the
 *	  stream, and begin the stream (its shards join as rows come).
 */
static void
start_direct(DirectLoad *d, Capture *cap, Oid *servers, Oid target)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	ShardloadRouter *router = cap->router;
	MemoryContext old;
	TupleDesc	tupdesc = RelationGetDescr(router->rel);

	d->cxt = AllocSetContextCreate(TopMemoryContext, "pg_shardload direct load",
								   ALLOCSET_DEFAULT_SIZES);
	if (!callback_registered)
	{
		RegisterXactCallback(at_xact_end, NULL);
		callback_registered = true;
	}
	old = MemoryContextSwitchTo(d->cxt);
	d->batch_id = cap->batch_id;
	d->owner = GetUserId();
	d->started_at = GetCurrentTimestamp();
	d->cap = cap;
	d->nparts = router->nparts;
	d->server_of = palloc(sizeof(Oid) * (d->nparts + 1));
	memcpy(d->server_of, servers, sizeof(Oid) * (d->nparts + 1));
	d->part_of = palloc0(sizeof(Oid) * (d->nparts + 1));
	memcpy(d->part_of + 1, router->part_oids, sizeof(Oid) * d->nparts);
	d->slices = palloc0(sizeof(StreamSlice *) * (d->nparts + 1));
	d->shards = palloc0(sizeof(StreamShard *) * (d->nparts + 1));
	d->shard_server = palloc0(sizeof(Oid) * (d->nparts + 1));
	d->spill = ShardloadSpillCreate(d->nparts + 1);

	ShardloadCatalogBegin(&session);
	d->sb.coordinator_id = MemoryContextStrdup(d->cxt, ShardloadCoordinatorId(&session));
	ShardloadArgInt8(&args, d->batch_id);
	ShardloadSpiRun("SELECT atomic FROM shardload.batch WHERE batch_id = $1", &args);
	d->atomic = ShardloadSpiBool(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	d->sb.batch_id = d->batch_id;
	d->sb.target = target;
	d->sb.fixed_forms = true;
	/* money travels in this session's lc_monetary, as the capture wrote it */
	for (int i = 0; i < router->ncolumns; i++)
		if (ShardloadTypeHasMoney(TupleDescAttr(tupdesc, router->columns[i] - 1)->atttypid))
			d->sb.lc_monetary = pstrdup(GetConfigOption("lc_monetary", false, false));
	d->sb.gid_prefix = ShardloadAtomicGidPrefix(d->sb.coordinator_id, d->batch_id, 0);
	d->sb.stage_out = &d->stage;
	d->feed.chunk = feed_chunk;
	d->feed.arg = d;
	d->sb.feed = &d->feed;
	MemoryContextSwitchTo(old);

	ShardloadBatchLockTag(&d->lock, d->batch_id);
	(void) LockAcquire(&d->lock, ExclusiveLock, true, false);
	d->locked = true;
	ShardloadStreamBegin(&d->sb, d->shards, 0);
	d->streaming = true;
	cap->sink = sink_chunk;
	cap->tick = tick;
	cap->sink_arg = d;
}

/*
 * sink_chunk
 *	  A full chunk: keep it in the spill, and give its slice a stream.
 */
static void
sink_chunk(void *arg, int slice_no, int chunk_no, StringInfo data, StringInfo lines,
		   StringInfo bin)
{
	DirectLoad *d = arg;
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	if (ShardloadSpillAdd(d->spill, slice_no, data, lines,
						  binary_to_keep(d, slice_no, bin)) != chunk_no)
		elog(ERROR, "chunk %d of slice %d is out of order", chunk_no, slice_no);
	if (!d->given_up && slice_no > 0 && d->slices[slice_no] == NULL)
		add_slice(d, slice_no);
	if (!d->given_up && trouble(d, false))
		give_up(d);
	MemoryContextSwitchTo(old);
}

/*
 * tick
 *	  Every few rows captured: let the shards take what is ready.
 */
static void
tick(void *arg)
{
	DirectLoad *d = arg;
	MemoryContext old;

	if (d->given_up)
		return;
	old = MemoryContextSwitchTo(d->cxt);
	(void) ShardloadStreamTurn(&d->sb, d->shards, d->nshards, false);
	if (trouble(d, false))
		give_up(d);
	MemoryContextSwitchTo(old);
}

/*
 * add_slice
 *	  A slice got its first chunk: its COPY command, and its server's
 *	  stream (a new one connects at once).
 */
static void
add_slice(DirectLoad *d, int slice_no)
{
	StreamSlice *ss = palloc0(sizeof(StreamSlice));
	Oid			partition = d->part_of[slice_no];
	Oid			serverid = d->server_of[slice_no];
	StreamShard *sh = NULL;

	ss->slice_no = slice_no;
	ss->batch = &d->sb;
	ss->progress_slot = -1;
	ss->remote_table = ShardloadRemoteTable(partition);
	ss->copy_sql = psprintf("COPY %s %s FROM STDIN", ss->remote_table,
							ShardloadRemoteColumns(partition, d->cap->router));
	if (d->cap->binary_types)
	{
		/* binary if the shard's columns have these types (its probe says) */
		ss->binary_copy_sql = psprintf("%s (FORMAT binary)", ss->copy_sql);
		ss->binary_type_list = pstrdup(d->cap->binary_type_list);
		ss->binary_check = ShardloadRemoteTypesSql(partition, d->cap->router);
	}
	d->slices[slice_no] = ss;
	for (int i = 0; i < d->nshards; i++)
		if (d->shard_server[i] == serverid)
			sh = d->shards[i];
	if (sh != NULL)
	{
		sh->slices[sh->nslices++] = ss;
		ShardloadBinaryDecide(sh, ss);	/* if its probe has answered */
		return;
	}
	{
		ParamsStep step = {serverid, d->owner, NULL};
		ErrorData  *edata = ShardloadTryStep(params_step, &step, false);

		if (edata != NULL)
		{
			/* no user mapping, say: the usual path records it */
			FreeErrorData(edata);
			d->broken = true;
			return;
		}
		sh = palloc0(sizeof(StreamShard));
		sh->params = step.params;
		sh->slices = palloc0(sizeof(StreamSlice *) * (d->nparts + 1));
		sh->slices[sh->nslices++] = ss;
		if (ss->binary_check)
			ask_binary(d, sh, serverid);
		d->shard_server[d->nshards] = serverid;
		ShardloadStreamAddShard(&d->sb, d->shards, &d->nshards, sh);
	}
}

/*
 * ask_binary
 *	  The shard's probe is to ask about the columns of every partition on
 *	  the server, so that slices that come later can go in binary too.
 */
static void
ask_binary(DirectLoad *d, StreamShard *sh, Oid serverid)
{
	sh->binary_checks = palloc(sizeof(char *) * d->nparts);
	for (int i = 1; i <= d->nparts; i++)
		if (d->server_of[i] == serverid)
			sh->binary_checks[sh->nbinary_checks++] =
				ShardloadRemoteTypesSql(d->part_of[i], d->cap->router);
}

static void
params_step(void *arg)
{
	ParamsStep *step = arg;

	step->params = ShardloadConnParams(step->serverid, step->owner);
}

/*
 * trouble
 *	  Whether the direct load cannot go on: a slice failed, a shard cannot
 *	  prepare transactions, or a slice goes in binary and the capture could
 *	  not write a row so; after the capture also rows that fit no partition
 *	  or were rejected.
 */
static bool
trouble(DirectLoad *d, bool after_capture)
{
	if (d->cap != NULL && d->cap->binary_broken && !d->binary_ended)
		end_binary(d);
	if (d->broken)
		return true;
	for (int i = 0; i < d->nshards; i++)
	{
		StreamShard *sh = d->shards[i];

		if (sh->identity != NULL && !sh->can_prepare)
			return true;
		for (int j = 0; j < sh->nslices; j++)
			if (sh->slices[j]->failure != NULL)
				return true;
	}
	return after_capture && (d->cap->slices[0].rows > 0 || d->cap->rejected > 0);
}

/*
 * binary_to_keep
 *	  The binary form of a slice's chunk, if its slice may still go in
 *	  binary; for one that goes in COPY text for good, an empty one, and
 *	  the capture stops writing it.
 */
static StringInfo
binary_to_keep(DirectLoad *d, int slice_no, StringInfo bin)
{
	static char empty[1];
	static StringInfoData none = {empty, 0, 1, 0};
	StreamSlice *ss = d->slices[slice_no];

	if (bin->len == 0 || !(d->binary_ended || (ss != NULL && ss->binary_known && !ss->binary)))
		return bin;
	if (d->cap != NULL)
		d->cap->slices[slice_no].no_binary = true;
	return &none;
}

/*
 * end_binary
 *	  The capture met a row it could not write in binary: the slices that
 *	  go in binary cannot go on (the load goes the usual way), the others
 *	  go in COPY text, even if their probe's answer is still to come.
 */
static void
end_binary(DirectLoad *d)
{
	d->binary_ended = true;
	for (int i = 1; i <= d->nparts; i++)
	{
		StreamSlice *ss = d->slices[i];

		if (ss == NULL)
			continue;
		if (ss->binary)
			d->broken = true;
		ss->binary_copy_sql = NULL;
		ss->binary_known = true;
	}
}

/*
 * give_up
 *	  Go the usual way: stop the streams (their shards roll back), write
 *	  what the spill holds as the payload, and the rest of the capture
 *	  writes the payload itself.
 */
static void
give_up(DirectLoad *d)
{
	if (d->given_up)
		return;
	d->given_up = true;
	unhook_capture(d);
	if (d->streaming)
	{
		d->streaming = false;
		ShardloadStreamEnd(d->shards, d->nshards);
	}
	ShardloadSpillStore(d->spill, d->batch_id);
}

/*
 * ready_to_commit
 *	  The capture is done: every slice has its stream and count, and every
 *	  shard has said it can prepare (waiting for the slow ones to answer).
 */
static bool
ready_to_commit(DirectLoad *d)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);
	bool		ok = true;

	for (int i = 1; i <= d->nparts && !d->given_up; i++)
		if (d->cap->slices[i].rows > 0)
		{
			if (d->slices[i] == NULL)
				add_slice(d, i);
			if (d->slices[i] != NULL)
			{
				d->slices[i]->rows = d->cap->slices[i].rows;
				d->slices[i]->bytes = d->cap->slices[i].bytes;
			}
		}
	for (;;)
	{
		bool		answered = true;

		if (trouble(d, true))
		{
			ok = false;
			break;
		}
		for (int i = 0; i < d->nshards; i++)
			answered &= d->shards[i]->identity != NULL;
		if (answered)
			break;
		(void) ShardloadStreamTurn(&d->sb, d->shards, d->nshards, true);
	}
	MemoryContextSwitchTo(old);
	return ok;
}

/*
 * mark_direct
 *	  The batch commits without payload: attempt 1 is running, and attempt
 *	  0's prepared slices are on record (recovery's, if the finish never
 *	  comes).  Its content hash goes into the ledger rows.
 */
static void
mark_direct(DirectLoad *d)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, d->batch_id);
	ShardloadArgInt4(&args, MyProcPid);
	ShardloadArgTimestampTz(&args, d->started_at);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("UPDATE shardload.batch SET payload_stored = false, state = 'running',"
					" attempts = 1 WHERE batch_id = $1"
					" RETURNING content_hash", &args);
	d->sb.content_hash = MemoryContextStrdup(d->cxt, ShardloadSpiText(&session, 0, 1));
	ShardloadSpiRun("INSERT INTO shardload.attempt (batch_id, attempt, runner_pid, started_at)"
					" VALUES ($1, 1, $2, $3)", &args);
	ShardloadCatalogEnd(&session);
	ShardloadAtomicBegin(d->batch_id, 0);
}

/*
 * ShardloadDirectInterrupted
 *	  batch (its lock held, not this session's direct load) was committed
 *	  by a direct load that never finished: end its prepared slices, which
 *	  removes it (atomic.c), so that it can be submitted again.
 */
void
ShardloadDirectInterrupted(ShardloadBatch *batch)
{
	char	   *unresolved;

	if (pending != NULL && pending->batch_id == batch->batch_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("batch %lld is being loaded by this session", (long long) batch->batch_id),
				 errhint("COMMIT after shardload.load_submit(), then CALL shardload.run(%lld).",
						 (long long) batch->batch_id)));
	unresolved = ShardloadAtomicResolve(batch->batch_id, batch->owner);
	if (unresolved == NULL)
		ereport(NOTICE,
				(errmsg("batch %lld was removed: its load was interrupted before its rows were stored",
						(long long) batch->batch_id),
				 errdetail("Nothing of it was loaded."),
				 errhint("Submit the rows again; the batch key \"%s\" is free.", batch->batch_key)));
	else
		ereport(NOTICE,
				(errmsg("batch %lld cannot run: its load was interrupted before its rows were stored",
						(long long) batch->batch_id),
				 errdetail("Its prepared slices are not ended yet: %s", unresolved),
				 errhint("Recovery ends them and removes the batch once the server is reachable; then submit the rows again.")));
}

/*
 * ShardloadDirectPending
 *	  Whether batch_id is this session's direct load, captured and
 *	  committed, waiting for its finish.
 */
bool
ShardloadDirectPending(int64 batch_id)
{
	return pending != NULL && pending->batch_id == batch_id && !pending->capturing &&
		pending->commits > 0;
}

/*
 * ShardloadDirectFinish
 *	  Step 2 (see the file header), in a CALL's non-atomic SPI connection.
 */
void
ShardloadDirectFinish(void)
{
	DirectLoad *d = pending;

	pending = NULL;
	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(d->cxt);

		/* the batch must be on disk before anything is PREPAREd */
		XLogFlush(XactLastCommitEnd);
		d->feed.done = true;
		while (ShardloadStreamTurn(&d->sb, d->shards, d->nshards, true))
			;
		d->streaming = false;
		ShardloadStreamEnd(d->shards, d->nshards);
		MemoryContextSwitchTo(old);
		record_finish(d);
		end_prepared(d);
	}
	PG_FINALLY();
	{
		release(d);
	}
	PG_END_TRY();
}

/*
 * record_finish
 *	  Every slice prepared: the decision and the outcome commit together.
 *	  Else the spill becomes the payload, prepared slices of a batch that
 *	  is not atomic are decided all the same, and the failure is attempt
 *	  1's.
 */
static void
record_finish(DirectLoad *d)
{
	ShardloadCatalogSession session;
	RunState	rs;
	bool		all = true;
	bool		any = false;
	bool		unanswered = false;
	ShardloadArgs args = {0};

	memset(&rs, 0, sizeof(rs));
	ShardloadCatalogBegin(&session);
	rs.batch = ShardloadBatchFetch(&session, d->batch_id, true);
	ShardloadCatalogEnd(&session);
	rs.attempt = 1;
	rs.slices = palloc0(sizeof(RunSlice) * (d->nparts + 1));
	for (int i = 1; i <= d->nparts; i++)
	{
		StreamSlice *ss = d->slices[i];
		RunSlice   *slice;

		if (ss == NULL)
			continue;
		slice = &rs.slices[rs.nslices++];
		slice->slice_no = i;
		slice->partition = d->part_of[i];
		slice->rows = ss->rows;
		slice->shard = GetForeignServer(d->server_of[i])->servername;
		slice->stream = ss;
		slice->prepared = ss->prepared;
		slice->failure = ss->failure;
		all &= ss->prepared;
		any |= ss->prepared;
		unanswered |= ss->prepare_unknown;
	}

	ShardloadArgInt8(&args, d->batch_id);
	ShardloadCatalogBegin(&session);
	if (all)
		ShardloadSpiRun("UPDATE shardload.batch SET payload_purged_at = now() WHERE batch_id = $1",
						&args);
	else
	{
		ShardloadSpillStore(d->spill, d->batch_id);
		ShardloadSpiRun("UPDATE shardload.batch SET payload_stored = true WHERE batch_id = $1",
						&args);
	}
	ShardloadCatalogEnd(&session);
	/* a PREPARE whose answer never came may still land: look again later */
	if (unanswered)
		ShardloadAtomicUnsettled(d->batch_id, 0);
	if (all || (any && !d->atomic))
	{
		ShardloadAtomicDecide(d->batch_id, 0);
		for (int i = 0; i < rs.nslices; i++)
			rs.slices[i].committed = rs.slices[i].prepared;
	}
	ShardloadRecordOutcomes((RunState *[]) {&rs}, 1);
	SPI_commit();
	XLogFlush(XactLastCommitEnd);
}

/*
 * end_prepared
 *	  Commit (or roll back) the prepared slices now; a server that cannot
 *	  be reached is left to recovery, with a WARNING.
 */
static void
end_prepared(DirectLoad *d)
{
	char	   *unresolved = ShardloadAtomicResolve(d->batch_id, d->owner);

	if (unresolved != NULL)
		ereport(WARNING,
				(errmsg("batch %lld: its prepared slices were not ended on every shard yet: %s",
						(long long) d->batch_id, unresolved),
				 errhint("Recovery ends them once the server is reachable; shardload.in_doubt shows them.")));
	SPI_commit();
}

/*
 * release
 *	  The direct load is over (or abandoned): connections, file, lock and
 *	  memory go.  A batch committed without payload that did not finish is
 *	  recovery's.  Called in error paths too: nothing here may throw.
 */
static void
release(DirectLoad *d)
{
	if (pending == d)
		pending = NULL;
	if (d->streaming)
	{
		d->streaming = false;
		ShardloadStreamEnd(d->shards, d->nshards);
	}
	unhook_capture(d);
	if (d->spill)
		ShardloadSpillClose(d->spill);
	if (d->locked)
		LockRelease(&d->lock, ExclusiveLock, true);
	if (d->cxt)
		MemoryContextDelete(d->cxt);
	pfree(d);
}

/*
 * unhook_capture
 *	  The capture no longer feeds the direct load, which forgets it.
 */
static void
unhook_capture(DirectLoad *d)
{
	if (d->cap == NULL)
		return;
	d->cap->sink = NULL;
	d->cap->tick = NULL;
	d->cap->binary_types = NULL;
	d->cap = NULL;
}

static bytea *
feed_chunk(void *arg, int slice_no, int chunk_no, bool binary, int64 *rows, int64 *text_bytes)
{
	DirectLoad *d = arg;

	return ShardloadSpillChunk(d->spill, slice_no, chunk_no, binary, rows, text_bytes);
}

/*
 * at_xact_end
 *	  A pending direct load lives through the commit of its capture and
 *	  until its finish; an abort (also one during the capture), a PREPARE
 *	  TRANSACTION, or a second commit without the finish abandons it.
 *	  Before the commit, not after: releasing talks to the shards, and an
 *	  error once committed would be a PANIC.
 */
static void
at_xact_end(XactEvent event, void *arg)
{
	if (pending == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (!pending->capturing && pending->commits++ == 0)
				return;
			release(pending);
			break;
		case XACT_EVENT_PRE_PREPARE:
			release(pending);
			break;
		case XACT_EVENT_ABORT:
			pending->cap = NULL;	/* a capture in progress dies with the transaction */
			release(pending);
			break;
		default:
			break;
	}
}
