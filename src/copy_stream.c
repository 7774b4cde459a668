/*-------------------------------------------------------------------------
 * copy_stream.c
 *	  Streams slices to their shards with COPY, every shard at once, over
 *	  non-blocking libpq connections (one per foreign server).
 *
 *	  Each connection is a small state machine driven from one loop:
 *	  connect, make sure the ledger exists, then for each slice: BEGIN and
 *	  look it up in the ledger, COPY its payload chunks, add its ledger row
 *	  and COMMIT.  Several slices for one server (a batch's partitions
 *	  there, or a runner's group of small batches) share one remote
 *	  transaction instead, each still with its ledger row: one ledger
 *	  lookup for all of them, one COPY for each run of slices into the same
 *	  table, and their ledger rows in one INSERT sent with the COMMIT, so
 *	  that a group of small batches costs a few round trips, not a few per
 *	  slice.  If anything in it fails, it is rolled back and the slices go
 *	  one by one.  A connection only gets more data once libpq has flushed
 *	  what it had, so buffers stay bounded and a slow shard delays no other.
 *	  Failures are recorded per slice as data, never thrown: one shard's
 *	  error does not stop the others.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "commands/progress.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "conn_cache.h"
#include "copy_binary.h"
#include "ledger.h"
#include "payload.h"
#include "remote_cancel.h"
#include "socket_wait.h"
#include "stream_skip.h"

typedef enum StreamState
{
	STREAM_CONNECTING,
	STREAM_PROBE,				/* does the ledger exist? */
	STREAM_CREATE_LEDGER,
	STREAM_SLICE_CHECK,			/* BEGIN; is the slice in the ledger? */
	STREAM_GROUP_CHECK,			/* BEGIN; which of the slices are in it? */
	STREAM_COPY_START,
	STREAM_COPYING,
	STREAM_COPY_END,
	STREAM_COMMIT,				/* ledger row; COMMIT */
	STREAM_SHARED_COMMIT,		/* ledger rows and COMMIT of a shared transaction */
	STREAM_ROLLBACK,
	STREAM_DONE
} StreamState;

/* How long cancelling the shards' remote work may take at most. */
#define CANCEL_TIMEOUT_MS	2000

/* The shards being streamed to, for the exit callback. */
static struct
{
	StreamShard **shards;
	int			nshards;
}			streaming;
static bool exit_callback_registered = false;

/* Data messages sent to one shard before the loop turns to the next. */
#define MESSAGES_PER_TURN 16

/*
 * Progress goes to the backend's COPY progress slots (pg_stat_progress_copy
 * shows the totals; shardload.slices the rows of each slice): bytes sent and
 * total in the standard slots, the batch id in PROGRESS_BATCH_ID, and for
 * the first PROGRESS_SLICES slices (slice_no << 40 | rows sent).
 */
#define PROGRESS_BATCH_ID	8
#define PROGRESS_FIRST_SLICE 10
#define PROGRESS_SLICES		10

static void start_connect(StreamBatch *batch, StreamShard *sh);
static void finish_shard(StreamShard *sh);
static ShardloadStage stream_stage(StreamShard **shards, int nshards);
static void fail_timeout(StreamShard *sh);
typedef struct CancelTargets
{
	ShardConnParams **params;
	int		   *pids;
	int			n;
} CancelTargets;

static CancelTargets cancel_targets(StreamShard **shards, int nshards);
static void cancel_at_exit(int code, Datum arg);
static bool step(StreamBatch *batch, StreamShard *sh);
static bool step_connecting(StreamBatch *batch, StreamShard *sh);
static void ledger_probed(StreamBatch *batch, StreamShard *sh, PGresult *res);
static void ledger_created(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error);
static void send_probe(StreamBatch *batch, StreamShard *sh);
static void fail_ledger(StreamShard *sh, const char *sqlstate, const char *message,
						const char *detail);
static bool step_copying(StreamBatch *batch, StreamShard *sh);
static bool collect_results(StreamShard *sh);
static void dispatch(StreamBatch *batch, StreamShard *sh);
static void slice_checked(StreamBatch *batch, StreamShard *sh, StreamSlice *slice,
						  PGresult *res, ShardloadFailure *error);
static void start_copying(StreamBatch *batch, StreamShard *sh, StreamSlice *slice);
static void forget_sent(StreamBatch *batch, StreamSlice *slice);
static void publish_progress(StreamBatch *batch, StreamSlice *slice);
static void copy_failed(StreamBatch *batch, StreamShard *sh, StreamSlice *slice,
						ShardloadFailure *error);
static void record_slice(StreamBatch *batch, StreamShard *sh, StreamSlice *slice);
static int	next_to_send(StreamShard *sh);
static void commit_done(StreamBatch *batch, StreamShard *sh, StreamSlice *slice,
						PGresult *res, ShardloadFailure *error);
static void send_query(StreamShard *sh, const char *sql, StreamState next);
static void start_next_slice(StreamBatch *batch, StreamShard *sh);
static void fail_slice(StreamShard *sh, ShardloadFailure *failure);
static bool can_share(StreamShard *sh);
static void fall_back(StreamShard *sh);
static void one_by_one(StreamBatch *batch, StreamShard *sh);
static void shared_committed(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error);
static int	first_open(StreamShard *sh);
static void start_group(StreamBatch *batch, StreamShard *sh);
static void sort_by_table(StreamShard *sh);
static void group_checked(StreamBatch *batch, StreamShard *sh, PGresult *res,
						  ShardloadFailure *error);
static void next_copy_run(StreamBatch *batch, StreamShard *sh);
static void commit_group(StreamBatch *batch, StreamShard *sh);
static bool next_in_run(StreamBatch *batch, StreamShard *sh);
static void fail_connection(StreamShard *sh, ShardloadStage stage, const char *sqlstate);
static void wait_for_shards(StreamShard **shards, int nshards, long timeout);
static void close_shard(StreamShard *sh);
static LedgerSliceKey slice_key(StreamBatch *batch, StreamShard *sh);
static LedgerSliceKey key_of(StreamBatch *batch, StreamSlice *slice);
static ShardloadStage stage_of(int state);
static bool try_reject(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error);
static void note_unanswered_prepare(StreamShard *sh);
static ShardloadFailure *prepare_failure(StreamSlice *slice, StreamShard *sh,
										 ShardloadFailure *error);
static bool ledger_row_matches(StreamBatch *batch, StreamShard *sh, const char *hash,
							   const char *skipped, const char *reasons);
static void report_progress(StreamBatch *batch, StreamSlice *slice, StreamShard *sh,
							int len);
static bytea *next_chunk(StreamSlice *slice, StreamShard *sh, int chunk_no);

/*
 * ShardloadStreamSlices
 *	  Load every slice of every shard; the outcome is left in each slice
 *	  (committed, found_in_ledger, failure).  Throws only for local errors
 *	  (interrupts, out of memory); connections are closed either way.
 */
void
ShardloadStreamSlices(StreamBatch *batch, StreamShard **shards, int nshards)
{
	ShardloadStreamBegin(batch, shards, nshards);
	PG_TRY();
	{
		while (ShardloadStreamTurn(batch, shards, nshards, true))
			;
	}
	PG_FINALLY();
	{
		ShardloadStreamEnd(shards, nshards);
	}
	PG_END_TRY();
}

/*
 * ShardloadStreamBegin
 *	  Start streaming to shards (connections begin); then turn the loop
 *	  with ShardloadStreamTurn, and always end with ShardloadStreamEnd,
 *	  also on error.  shards may grow meanwhile (ShardloadStreamAddShard).
 */
void
ShardloadStreamBegin(StreamBatch *batch, StreamShard **shards, int nshards)
{
	int			slot = 0;
	int64		bytes_total = 0;

	for (int i = 0; i < nshards; i++)
		for (int j = 0; j < shards[i]->nslices; j++)
		{
			StreamSlice *slice = shards[i]->slices[j];

			/* a slice of another batch of a runner's group names its own */
			if (slice->batch == NULL)
				slice->batch = batch;
			/* the progress slots show the slices of the stream's batch */
			slice->progress_slot = slice->batch == batch && slot < PROGRESS_SLICES ? slot++ : -1;
			bytes_total += shards[i]->slices[j]->bytes;
		}
	pgstat_progress_start_command(PROGRESS_COMMAND_COPY, batch->target);
	pgstat_progress_update_param(PROGRESS_COPY_COMMAND, PROGRESS_COPY_COMMAND_FROM);
	pgstat_progress_update_param(PROGRESS_COPY_TYPE, PROGRESS_COPY_TYPE_CALLBACK);
	pgstat_progress_update_param(PROGRESS_COPY_BYTES_TOTAL, bytes_total);
	pgstat_progress_update_param(PROGRESS_BATCH_ID, batch->batch_id);
	streaming.shards = shards;
	streaming.nshards = nshards;
	ShardloadWaitSocketsRelease();
	if (!exit_callback_registered)
	{
		before_shmem_exit(cancel_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	for (int i = 0; i < nshards; i++)
		start_connect(batch, shards[i]);
}

/*
 * ShardloadStreamAddShard
 *	  One more shard joins a stream that has begun (its slices' rows are
 *	  still being captured): shards[*nshards] is sh, connecting.
 */
void
ShardloadStreamAddShard(StreamBatch *batch, StreamShard **shards, int *nshards,
						StreamShard *sh)
{
	for (int j = 0; j < sh->nslices; j++)
	{
		sh->slices[j]->batch = batch;
		sh->slices[j]->progress_slot = -1;
	}
	shards[(*nshards)++] = sh;
	streaming.shards = shards;
	streaming.nshards = *nshards;
	start_connect(batch, sh);
}

/*
 * ShardloadStreamTurn
 *	  Advance every shard as far as it goes; with block, wait for one of
 *	  them if none moved.  False once every shard is done.  A shard that
 *	  waits for chunks the feed has not captured yet is not stalled.
 */
bool
ShardloadStreamTurn(StreamBatch *batch, StreamShard **shards, int nshards, bool block)
{
	bool		active = false;
	bool		progress = false;
	TimestampTz now;

	if (batch->stage_out)
		*batch->stage_out = stream_stage(shards, nshards);
	CHECK_FOR_INTERRUPTS();
	now = GetCurrentTimestamp();
	for (int i = 0; i < nshards; i++)
	{
		StreamShard *sh = shards[i];

		if (sh->state == STREAM_DONE)
			continue;
		active = true;
		if (step(batch, sh))
		{
			progress = true;
			if (sh->state != STREAM_CONNECTING)
				sh->deadline = TimestampTzPlusMilliseconds(now, shardload_progress_timeout);
		}
		else if (sh->awaiting_feed)
		{
			/* it waits for us, not we for it: no progress, and no stall */
			sh->deadline = TimestampTzPlusMilliseconds(now, shardload_progress_timeout);
		}
		else if (now >= sh->deadline)
			fail_timeout(sh);
	}
	if (!active)
		return false;
	/* with progress, only look at the sockets: no shard waits unread */
	wait_for_shards(shards, nshards, progress || !block ? 0 : -1);
	return true;
}

/*
 * ShardloadStreamEnd
 *	  The stream is over, or ended early (an error, a cancel) or with
 *	  shards that stopped answering: close every connection first, so that
 *	  nothing below can leave one open, then ask the shards to cancel what
 *	  their backends still run.
 */
void
ShardloadStreamEnd(StreamShard **shards, int nshards)
{
	CancelTargets targets = cancel_targets(shards, nshards);

	for (int i = 0; i < nshards; i++)
		close_shard(shards[i]);
	streaming.shards = NULL;
	streaming.nshards = 0;
	ShardloadWaitSocketsRelease();
	pgstat_progress_end_command();
	ShardloadCancelRemote(targets.params, targets.pids, targets.n, CANCEL_TIMEOUT_MS);
}

/*
 * stream_stage
 *	  The stage of the least advanced shard still at work: where an error
 *	  raised now (a cancel, a time limit) is recorded.
 */
static ShardloadStage
stream_stage(StreamShard **shards, int nshards)
{
	ShardloadStage least = SHARDLOAD_STAGE_COMMIT;

	for (int i = 0; i < nshards; i++)
		if (shards[i]->state != STREAM_DONE)
			least = Min(least, stage_of(shards[i]->state));
	return least;
}

/*
 * fail_timeout
 *	  The shard did not connect within shardload.connect_timeout, or made
 *	  no progress for shardload.progress_timeout: its slices fail with a
 *	  TRANSIENT timeout that names the limit and the stage.  A shard that
 *	  stopped making progress may be alive but stuck (a lock wait): its
 *	  backend is asked to cancel when the stream ends; one that never
 *	  connected has no backend to ask.
 */
static void
fail_timeout(StreamShard *sh)
{
	ShardloadStage stage = stage_of(sh->state);
	ShardloadFailure *f;

	if (sh->state == STREAM_CONNECTING)
		f = ShardloadFailureMake(stage, sh->params->servername, "57014",
								 psprintf("could not connect to server \"%s\" within %d ms",
										  sh->params->servername, shardload_connect_timeout),
								 "The limit is shardload.connect_timeout.", NULL);
	else
		f = ShardloadFailureMake(stage, sh->params->servername, "57014",
								 psprintf("server \"%s\" made no progress for %d ms at stage %s",
										  sh->params->servername, shardload_progress_timeout, ShardloadStageName(stage)),
								 "The limit is shardload.progress_timeout.", NULL);
	f->unreachable = true;
	note_unanswered_prepare(sh);
	/* alive but stuck (a lock wait)? its backend is asked to cancel at the end */
	sh->stalled = sh->state != STREAM_CONNECTING;
	for (int i = first_open(sh); i < sh->nslices; i++)
		if (!sh->slices[i]->committed && sh->slices[i]->failure == NULL)
			sh->slices[i]->failure = f;
	close_shard(sh);
	sh->state = STREAM_DONE;
}

/*
 * cancel_targets
 *	  The shard backends that may still run a query of this attempt: those
 *	  of connections in a query or transaction, and those of shards that
 *	  stopped making progress (alive but stuck, say in a lock wait).
 */
static CancelTargets
cancel_targets(StreamShard **shards, int nshards)
{
	CancelTargets targets;

	targets.params = palloc(sizeof(ShardConnParams *) * Max(nshards, 1));
	targets.pids = palloc(sizeof(int) * Max(nshards, 1));
	targets.n = 0;
	for (int i = 0; i < nshards; i++)
	{
		StreamShard *sh = shards[i];

		if (sh->backend_pid == 0)
			continue;
		if (!sh->stalled &&
			(sh->state == STREAM_DONE || sh->conn == NULL ||
			 PQtransactionStatus(sh->conn) == PQTRANS_IDLE))
			continue;
		targets.params[targets.n] = sh->params;
		targets.pids[targets.n++] = sh->backend_pid;
	}
	return targets;
}

/*
 * cancel_at_exit
 *	  The process exits mid-stream (pg_terminate_backend, a runner's
 *	  SIGTERM): no error unwinds the stream, so cancel its remote work here.
 */
static void
cancel_at_exit(int code, Datum arg)
{
	CancelTargets targets;

	if (streaming.shards == NULL)
		return;
	targets = cancel_targets(streaming.shards, streaming.nshards);
	for (int i = 0; i < streaming.nshards; i++)
		close_shard(streaming.shards[i]);
	streaming.shards = NULL;
	ShardloadCancelRemote(targets.params, targets.pids, targets.n, CANCEL_TIMEOUT_MS);
}

/*
 * next_chunk
 *	  Chunk chunk_no of the slice: from the feed while its batch is being
 *	  captured, else from the payload.  NULL: past the last (or, from a
 *	  feed that is not done, not captured yet).
 */
static bytea *
next_chunk(StreamSlice *slice, StreamShard *sh, int chunk_no)
{
	ShardloadChunkFeed *feed = slice->batch->feed;

	if (feed)
		return feed->chunk(feed->arg, slice->slice_no, chunk_no, slice->binary,
						   &sh->chunk_rows, &sh->chunk_text_bytes);
	sh->chunk_rows = -1;
	return ShardloadPayloadChunk(slice->batch->batch_id, slice->slice_no, chunk_no);
}

/*
 * report_progress
 *	  Count the rows and bytes in the len bytes of the shard's chunk just
 *	  handed to libpq for slice: its newlines, or, if the chunk's rows are
 *	  known, all of them and the size of its text once its last bytes go
 *	  (a binary chunk's bytes are not the ones the batch's size counts).
 */
static void
report_progress(StreamBatch *batch, StreamSlice *slice, StreamShard *sh, int len)
{
	const char *data = VARDATA_ANY(sh->chunk) + sh->offset;
	const char *end = data + len;
	int64		rows = 0;
	int64		bytes = len;

	if (sh->chunk_rows >= 0)
	{
		bool		last = sh->offset + len == (int) VARSIZE_ANY_EXHDR(sh->chunk);

		rows = last ? sh->chunk_rows : 0;
		bytes = last ? sh->chunk_text_bytes : 0;
	}
	else
		for (const char *p = data; (p = memchr(p, '\n', end - p)) != NULL; p++)
			rows++;
	slice->rows_sent += rows;
	slice->bytes_sent += bytes;
	batch->bytes_sent += bytes;
	batch->rows_sent += rows;
	publish_progress(batch, slice);
}

/*
 * forget_sent
 *	  The slice is sent again from its first row (alone after its shared
 *	  transaction rolled back, or without a row the shard refused): what
 *	  it sent before no longer counts in the progress shown.
 */
static void
forget_sent(StreamBatch *batch, StreamSlice *slice)
{
	if (slice->rows_sent == 0 && slice->bytes_sent == 0)
		return;
	batch->rows_sent -= slice->rows_sent;
	batch->bytes_sent -= slice->bytes_sent;
	slice->rows_sent = 0;
	slice->bytes_sent = 0;
	publish_progress(batch, slice);
}

/*
 * publish_progress
 *	  Show the slice's rows sent and the batch's totals.
 */
static void
publish_progress(StreamBatch *batch, StreamSlice *slice)
{
	if (slice->progress_slot >= 0)
		pgstat_progress_update_param(PROGRESS_FIRST_SLICE + slice->progress_slot,
									 ((int64) slice->slice_no << 40) | slice->rows_sent);
	pgstat_progress_update_param(PROGRESS_COPY_BYTES_PROCESSED, batch->bytes_sent);
	pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, batch->rows_sent);
}

/*
 * start_connect
 *	  Reserve a file descriptor and begin a non-blocking connection.
 */
static void
start_connect(StreamBatch *batch, StreamShard *sh)
{
	sh->state = STREAM_CONNECTING;
	sh->current = 0;
	if (sh->nslices == 0)
	{
		sh->state = STREAM_DONE;
		return;
	}
	/* a runner's connection kept from an earlier batch, if any */
	sh->cache_key = ShardloadConnCacheKey(sh->params, batch->lc_monetary, batch->fixed_forms);
	sh->conn = ShardloadConnCacheTake(sh->cache_key);
	/* a kept connection passed the password rule when it was made */
	if (sh->conn != NULL && sh->params->require_password && !PQconnectionUsedPassword(sh->conn))
	{
		PQfinish(sh->conn);
		ReleaseExternalFD();
		sh->conn = NULL;
	}
	if (sh->conn != NULL)
	{
		sh->fd_reserved = true;
		sh->backend_pid = PQbackendPID(sh->conn);
		sh->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), shardload_progress_timeout);
		send_probe(batch, sh);
		return;
	}
	if (!AcquireExternalFD())
	{
		ShardloadFailure *f = ShardloadFailureMake(SHARDLOAD_STAGE_CONNECT, sh->params->servername, "53000",
												   psprintf("could not connect to server \"%s\": out of file descriptors",
															sh->params->servername),
												   NULL, NULL);
		for (; sh->current < sh->nslices; sh->current++)
			sh->slices[sh->current]->failure = f;
		sh->state = STREAM_DONE;
		return;
	}
	sh->fd_reserved = true;
	sh->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), shardload_connect_timeout);
	sh->conn = PQconnectStartParams(sh->params->keywords, sh->params->values, false);
	if (sh->conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (PQstatus(sh->conn) == CONNECTION_BAD)
	{
		fail_connection(sh, SHARDLOAD_STAGE_CONNECT, NULL);
		return;
	}
	sh->want = WL_SOCKET_WRITEABLE;
	sh->ready = WL_SOCKET_WRITEABLE;	/* poll once right away */
}

/*
 * step
 *	  Advance one shard as far as it goes without blocking; true if
 *	  anything happened.
 */
static bool
step(StreamBatch *batch, StreamShard *sh)
{
	bool		progress = false;

	if (sh->state == STREAM_CONNECTING)
		return step_connecting(batch, sh);
	if (sh->state == STREAM_COPYING)
		return step_copying(batch, sh);

	if (sh->flush_pending)
	{
		int			rc = PQflush(sh->conn);

		if (rc < 0)
		{
			fail_connection(sh, stage_of(sh->state), "08006");
			return true;
		}
		sh->flush_pending = rc == 1;
		progress = !sh->flush_pending;
	}
	if (sh->ready & WL_SOCKET_READABLE)
	{
		sh->ready = 0;
		if (!PQconsumeInput(sh->conn))
		{
			fail_connection(sh, stage_of(sh->state), "08006");
			return true;
		}
	}
	if (collect_results(sh))
	{
		dispatch(batch, sh);
		return true;
	}
	sh->want = WL_SOCKET_READABLE | (sh->flush_pending ? WL_SOCKET_WRITEABLE : 0);
	return progress;
}

static bool
step_connecting(StreamBatch *batch, StreamShard *sh)
{
	PostgresPollingStatusType poll;

	if ((sh->ready & sh->want) == 0)
		return false;
	sh->ready = 0;
	poll = PQconnectPoll(sh->conn);
	switch (poll)
	{
		case PGRES_POLLING_OK:
			sh->backend_pid = PQbackendPID(sh->conn);
			if (PQsetnonblocking(sh->conn, 1) != 0)
			{
				fail_connection(sh, SHARDLOAD_STAGE_CONNECT, "08006");
				return true;
			}
			if (sh->params->require_password && !PQconnectionUsedPassword(sh->conn))
			{
				ShardloadFailure *f =
					ShardloadFailureMake(SHARDLOAD_STAGE_CONNECT, sh->params->servername, "2F003",
										 "password is required",
										 "Non-superuser cannot connect if the server does not request a password.",
										 "Target server's authentication method must be changed or password_required=false set in the user mapping attributes.");
				for (; sh->current < sh->nslices; sh->current++)
					sh->slices[sh->current]->failure = f;
				close_shard(sh);
				sh->state = STREAM_DONE;
				return true;
			}
			send_probe(batch, sh);
			return true;
		case PGRES_POLLING_READING:
			sh->want = WL_SOCKET_READABLE;
			return true;
		case PGRES_POLLING_WRITING:
			sh->want = WL_SOCKET_WRITEABLE;
			return true;
		default:
			fail_connection(sh, SHARDLOAD_STAGE_CONNECT, NULL);
			return true;
	}
}

/*
 * step_copying
 *	  Send up to MESSAGES_PER_TURN data messages of the current slice; at
 *	  its end, finish the COPY.
 */
static bool
step_copying(StreamBatch *batch, StreamShard *sh)
{
	StreamSlice *slice = sh->slices[sh->current];
	bool		progress = false;

	if (sh->ready & WL_SOCKET_READABLE)
	{
		/* the shard only talks during COPY to say it is going away */
		if (!PQconsumeInput(sh->conn))
		{
			fail_connection(sh, SHARDLOAD_STAGE_COPY, "08006");
			return true;
		}
	}
	sh->ready = 0;

	for (int sent = 0; sent < MESSAGES_PER_TURN; sent++)
	{
		int			rc;
		int			len;

		if (sh->flush_pending)
		{
			rc = PQflush(sh->conn);
			if (rc < 0)
			{
				fail_connection(sh, SHARDLOAD_STAGE_COPY, "08006");
				return true;
			}
			if (rc == 1)
				break;
			sh->flush_pending = false;
			progress = true;
		}
		if (sh->chunk == NULL || sh->offset >= (int) VARSIZE_ANY_EXHDR(sh->chunk))
		{
			if (sh->chunk)
				pfree(sh->chunk);
			sh->chunk = next_chunk(slice, sh, sh->chunk_no++);
			sh->offset = 0;
			sh->awaiting_feed = false;
			if (sh->chunk == NULL && slice->batch->feed && !slice->batch->feed->done)
			{
				/* captured later: the COPY stays open until then */
				sh->chunk_no--;
				sh->awaiting_feed = true;
				break;
			}
			if (sh->chunk && slice->nskip > 0)
			{
				/* lines are COPY text's: rows refused come only from a payload */
				if (slice->binary)
					elog(ERROR, "slice %d cannot leave rows out of a binary COPY", slice->slice_no);
				sh->chunk = ShardloadStreamSkipLines(slice, sh->chunk);
				sh->chunk_rows = -1;
			}
			if (sh->chunk == NULL && next_in_run(batch, sh))
			{
				slice = sh->slices[sh->current];
				continue;
			}
			if (sh->chunk == NULL)
			{
				rc = PQputCopyEnd(sh->conn, NULL);
				if (rc < 0)
				{
					fail_connection(sh, SHARDLOAD_STAGE_COPY, "08006");
					return true;
				}
				if (rc == 0)
				{
					sh->chunk_no--;	/* try the end again */
					break;
				}
				sh->state = STREAM_COPY_END;
				sh->flush_pending = PQflush(sh->conn) != 0;
				sh->want = WL_SOCKET_READABLE | (sh->flush_pending ? WL_SOCKET_WRITEABLE : 0);
				return true;
			}
		}
		len = Min(SHARDLOAD_MESSAGE_BYTES, (int) VARSIZE_ANY_EXHDR(sh->chunk) - sh->offset);
		rc = PQputCopyData(sh->conn, VARDATA_ANY(sh->chunk) + sh->offset, len);
		if (rc < 0)
		{
			fail_connection(sh, SHARDLOAD_STAGE_COPY, "08006");
			return true;
		}
		if (rc == 0)
		{
			sh->flush_pending = true;
			break;
		}
		report_progress(batch, slice, sh, len);
		sh->offset += len;
		progress = true;
		rc = PQflush(sh->conn);
		if (rc < 0)
		{
			fail_connection(sh, SHARDLOAD_STAGE_COPY, "08006");
			return true;
		}
		sh->flush_pending = rc == 1;
	}
	sh->want = WL_SOCKET_READABLE | (sh->flush_pending ? WL_SOCKET_WRITEABLE : 0);
	return progress;
}

/*
 * collect_results
 *	  Gather the results of the query in flight without blocking; true
 *	  once it is complete (or COPY IN has begun).  Keeps the last result
 *	  in sh->result and the first error in sh->error.
 */
static bool
collect_results(StreamShard *sh)
{
	while (!PQisBusy(sh->conn))
	{
		PGresult   *res = PQgetResult(sh->conn);
		ExecStatusType status;

		if (res == NULL)
			return true;
		status = PQresultStatus(res);
		if (status == PGRES_COPY_IN)
		{
			if (sh->result)
				PQclear(sh->result);
			sh->result = res;
			return true;
		}
		if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE ||
			status == PGRES_NONFATAL_ERROR)
		{
			if (sh->error == NULL)
				sh->error = ShardloadFailureFromResult(res, stage_of(sh->state),
												sh->params->servername);
			PQclear(res);
			continue;
		}
		if (sh->result)
			PQclear(sh->result);
		sh->result = res;
	}
	return false;
}

/*
 * dispatch
 *	  The query in flight is complete: act on its outcome, by the state
 *	  the shard was in.
 */
static void
dispatch(StreamBatch *batch, StreamShard *sh)
{
	ShardloadFailure *error = sh->error;
	PGresult   *res = sh->result;
	StreamSlice *slice = sh->current < sh->nslices ? sh->slices[sh->current] : NULL;

	sh->error = NULL;
	sh->result = NULL;

	switch ((StreamState) sh->state)
	{
		case STREAM_PROBE:
			if (error)
			{
				/* the session settings or the probe itself were refused */
				for (int i = 0; i < sh->nslices; i++)
					if (sh->slices[i]->failure == NULL)
						sh->slices[i]->failure = error;
				close_shard(sh);
				sh->state = STREAM_DONE;
				break;
			}
			ledger_probed(batch, sh, res);
			break;

		case STREAM_CREATE_LEDGER:
			ledger_created(batch, sh, error);
			break;

		case STREAM_SLICE_CHECK:
			slice_checked(batch, sh, slice, res, error);
			break;

		case STREAM_GROUP_CHECK:
			group_checked(batch, sh, res, error);
			break;

		case STREAM_COPY_START:
			if (error)
				copy_failed(batch, sh, slice, error);
			else if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
				fail_connection(sh, SHARDLOAD_STAGE_COPY, "08P01");
			else
				start_copying(batch, sh, slice);
			break;

		case STREAM_COPY_END:
			if (error)
				copy_failed(batch, sh, slice, error);
			else if (sh->in_txn)
			{
				/* a run of a shared transaction: its ledger rows come last */
				slice->pending = true;
				next_copy_run(batch, sh);
			}
			else
				record_slice(batch, sh, slice);
			break;

		case STREAM_COMMIT:
			commit_done(batch, sh, slice, res, error);
			break;

		case STREAM_SHARED_COMMIT:
			/* a COMMIT answered ROLLBACK committed nothing */
			if (error == NULL && (res == NULL || strcmp(PQcmdStatus(res), "COMMIT") != 0))
				error = ShardloadFailureMake(SHARDLOAD_STAGE_COMMIT, sh->params->servername, "40000",
											 "the shared transaction was rolled back at COMMIT",
											 NULL, NULL);
			shared_committed(batch, sh, error);
			break;

		case STREAM_ROLLBACK:
			if (sh->falling_back)
			{
				one_by_one(batch, sh);
				break;
			}
			if (sh->retry_slice)
			{
				sh->retry_slice = false;
				sh->current--;	/* the same slice again, without its bad rows */
			}
			start_next_slice(batch, sh);
			break;

		default:
			elog(ERROR, "unexpected pg_shardload stream state %d", sh->state);
	}
	if (res)
		PQclear(res);
}

/*
 * slice_checked
 *	  The slice's ledger lookup (in a new remote transaction) is back:
 *	  found, it was loaded before; else COPY it.
 */
static void
slice_checked(StreamBatch *batch, StreamShard *sh, StreamSlice *slice, PGresult *res,
			  ShardloadFailure *error)
{
	if (error)
		fail_slice(sh, error);
	else if (res && PQntuples(res) == 1)
	{
		if (!ledger_row_matches(batch, sh, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
								PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2)))
			return;
		slice->committed = slice->found_in_ledger = true;
		send_query(sh, "ROLLBACK", STREAM_ROLLBACK);
	}
	else
		send_query(sh, slice->copy_sql, STREAM_COPY_START);
}

/*
 * start_copying
 *	  The shard is in COPY IN: send the slice's chunks from the first.
 */
static void
start_copying(StreamBatch *batch, StreamShard *sh, StreamSlice *slice)
{
	sh->state = STREAM_COPYING;
	slice->line_base = 0;
	forget_sent(batch, slice);
	sh->chunk_no = 0;
	sh->offset = 0;
	sh->chunk = NULL;
	sh->ready = 0;
}

/*
 * copy_failed
 *	  The shard refused the COPY: set the row aside (on_error reject) and
 *	  send the slice again, or fail the slice naming the input line.
 */
static void
copy_failed(StreamBatch *batch, StreamShard *sh, StreamSlice *slice, ShardloadFailure *error)
{
	/* a shared run's line numbers span its slices: one by one tells */
	if (sh->in_txn)
	{
		fall_back(sh);
		return;
	}
	if (try_reject(batch, sh, error))
		return;
	ShardloadStreamNameInputLine(slice->batch, slice, error);
	fail_slice(sh, error);
}

/*
 * record_slice
 *	  A slice of its own transaction is copied: add its ledger row, and
 *	  COMMIT (atomic: PREPARE) it with the rows.
 */
static void
record_slice(StreamBatch *batch, StreamShard *sh, StreamSlice *slice)
{
	LedgerSliceKey key = slice_key(batch, sh);
	const char *gid_prefix = slice->batch->gid_prefix;
	char	   *sql = ShardloadLedgerRecordAndCommitSql(&key, slice->remote_table,
														slice->rows - slice->nskip, slice->skip,
														sh->ledger_reasons ? slice->skip_reasons : NULL,
														slice->nskip, gid_prefix == NULL);

	/* atomic: the rows and the ledger row are prepared, not committed */
	if (gid_prefix)
		sql = psprintf("%s; PREPARE TRANSACTION %s", sql,
					   quote_literal_cstr(psprintf("%s%d", gid_prefix, slice->slice_no)));
	send_query(sh, sql, STREAM_COMMIT);
}

/*
 * next_to_send
 *	  The index of the next slice to send (nslices: none): those refused
 *	  before they were sent, or found in the ledger, are passed over.
 */
static int
next_to_send(StreamShard *sh)
{
	int			i = sh->current + 1;

	while (i < sh->nslices && (sh->slices[i]->failure != NULL || sh->slices[i]->committed))
		i++;
	return i;
}

/*
 * commit_done
 *	  The slice's ledger row and COMMIT are back.  A duplicate ledger key
 *	  means another run of this batch committed the slice first.
 */
static void
commit_done(StreamBatch *batch, StreamShard *sh, StreamSlice *slice, PGresult *res,
			ShardloadFailure *error)
{
	if (error && strcmp(error->sqlstate, "23505") == 0 &&
		error->constraint && strcmp(error->constraint, SHARDLOAD_LEDGER_TABLE "_pkey") == 0 &&
		error->schema && strcmp(error->schema, SHARDLOAD_LEDGER_SCHEMA) == 0)
	{
		slice->committed = slice->found_in_ledger = true;
		send_query(sh, "ROLLBACK", STREAM_ROLLBACK);
	}
	else if (error)
		fail_slice(sh, prepare_failure(slice, sh, error));
	else
	{
		if (slice->batch->gid_prefix)
			slice->prepared = true;
		else
			slice->committed = true;
		start_next_slice(batch, sh);
	}
}

/*
 * can_share
 *	  Slices share a remote transaction if there are several and none may
 *	  set rows aside (that rolls its slice back and sends it again).
 */
static bool
can_share(StreamShard *sh)
{
	if (sh->nslices < 2)
		return false;
	for (int i = 0; i < sh->nslices; i++)
		if (sh->slices[i]->reject_mode || sh->slices[i]->batch->gid_prefix)
			return false;
	return true;
}

/*
 * fall_back
 *	  Something failed in the shared transaction: roll it back, then send
 *	  its slices one by one, each in its own transaction (one_by_one), so
 *	  that a failure is that of its own slice only.
 */
static void
fall_back(StreamShard *sh)
{
	if (PQstatus(sh->conn) != CONNECTION_OK)
	{
		fail_connection(sh, stage_of(sh->state), "08006");
		return;
	}
	sh->falling_back = true;
	send_query(sh, "ROLLBACK", STREAM_ROLLBACK);
}

/*
 * one_by_one
 *	  The shared transaction is over, committing nothing: go again from its
 *	  first slice, one transaction per slice.  Slices found in the ledger
 *	  were committed before and stay so.
 */
static void
one_by_one(StreamBatch *batch, StreamShard *sh)
{
	sh->falling_back = false;
	sh->shared = false;
	sh->in_txn = false;
	for (int i = sh->shared_first; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];

		slice->pending = false;
		if (!slice->found_in_ledger)
			slice->committed = false;
		forget_sent(batch, slice);
	}
	sh->current = sh->shared_first - 1;
	start_next_slice(batch, sh);
}

/*
 * shared_committed
 *	  The ledger rows and COMMIT of the shared transaction are back: every
 *	  slice in it is committed.  If they failed (a slice another run of its
 *	  batch committed first, a deferred check), nothing is: the transaction
 *	  is rolled back if still open, and the slices go one by one.
 */
static void
shared_committed(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error)
{
	if (error && PQtransactionStatus(sh->conn) != PQTRANS_IDLE)
	{
		fall_back(sh);
		return;
	}
	if (error)
	{
		one_by_one(batch, sh);
		return;
	}
	for (int i = sh->shared_first; i < sh->nslices; i++)
		if (sh->slices[i]->pending)
		{
			sh->slices[i]->pending = false;
			sh->slices[i]->committed = true;
		}
	sh->in_txn = false;
	finish_shard(sh);
	sh->state = STREAM_DONE;
}

/*
 * first_open
 *	  The first slice whose fate is still open: in a shared transaction its
 *	  first slice (nothing in it is committed yet), else the current one.
 */
static int
first_open(StreamShard *sh)
{
	return sh->in_txn ? sh->shared_first : Max(sh->current, 0);
}

/*
 * ledger_probed
 *	  The probe answered: create the ledger if it is missing, refuse one
 *	  this role cannot use, and refuse slices whose earlier outcome is
 *	  unknown if this is not the server they were sent to; then start.
 */
static void
ledger_probed(StreamBatch *batch, StreamShard *sh, PGresult *res)
{
	bool		exists;

	if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 8)
	{
		fail_connection(sh, SHARDLOAD_STAGE_LEDGER, "08P01");
		return;
	}
	ShardloadBinaryProbed(sh, res);
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	sh->ledger_reasons = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	sh->identity = pstrdup(PQgetvalue(res, 0, 3));
	sh->can_prepare = strcmp(PQgetvalue(res, 0, 6), "t") == 0;

	for (int i = 0; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];
		ShardloadFailure *f;

		if (slice->expected_identity == NULL ||
			strcmp(slice->expected_identity, sh->identity) == 0)
			continue;
		f = ShardloadFailureMake(SHARDLOAD_STAGE_VERIFY, sh->params->servername, SQLSTATE_SHARDLOAD_OTHER_SERVER,
								 psprintf("server \"%s\" now reaches another database than slice %d was sent to",
										  sh->params->servername, slice->slice_no),
								 psprintf("The slice was sent to %s and may have been loaded there; the server now reaches %s.",
										  slice->expected_identity, sh->identity),
								 psprintf("Look for batch %lld in the ledger of the database the slice was sent to; "
										  "if it is not there, point the server back or submit the rows again under a new batch key.",
										  (long long) slice->batch->batch_id));
		slice->failure = f;
	}

	if (!exists)
	{
		send_query(sh, ShardloadLedgerCreateSql(), STREAM_CREATE_LEDGER);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 4), "t") != 0)
	{
		fail_ledger(sh, "42501",
					psprintf("the slice ledger on server \"%s\" is not this role's", sh->params->servername),
					"The schema " SHARDLOAD_LEDGER_SCHEMA " or the table " SHARDLOAD_LEDGER_TABLE
					" belongs to a role the role of this user mapping is not a member of; whoever owns"
					" them decides which slices count as loaded.");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 5), "t") == 0)
		ereport(WARNING,
				(errmsg("the slice ledger on server \"%s\" may be changed by every role", sh->params->servername),
				 errdetail("PUBLIC may insert or delete its rows, which decide which slices count as loaded."),
				 errhint("Run SELECT shardload.prepare_shard(%s) as the role of the user mapping that owns it.",
						 quote_literal_cstr(sh->params->servername))));
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		fail_ledger(sh, "42501",
					psprintf("permission denied for the slice ledger on server \"%s\"",
							 sh->params->servername),
					"The ledger " SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE
					" exists, but the role of this user mapping may not read and add rows to it.");
	else
	{
		sh->current = -1;
		sh->shared = can_share(sh);
		start_next_slice(batch, sh);
	}
}

/*
 * ledger_created
 *	  The ledger was created (or a concurrent loader created it first,
 *	  which is fine): probe it again before trusting it; or it could not
 *	  be created.
 */
static void
ledger_created(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error)
{
	if (error && strcmp(error->sqlstate, "42P07") != 0 &&
		strcmp(error->sqlstate, "42P06") != 0 &&
		strcmp(error->sqlstate, "23505") != 0)
	{
		fail_ledger(sh, error->sqlstate,
					psprintf("could not create the slice ledger on server \"%s\"",
							 sh->params->servername),
					ShardloadFailureText(error));
		return;
	}
	/*
	 * Look at it again as at any ledger that was there: another loader may
	 * have made it, or its schema may have been someone else's.
	 */
	send_probe(batch, sh);
}

/*
 * send_probe
 *	  Ask the shard about its ledger (ledger_probed reads the answer), and
 *	  about the remote columns of the slices that could go in binary.
 */
static void
send_probe(StreamBatch *batch, StreamShard *sh)
{
	send_query(sh, ShardloadLedgerProbeSql(batch->lc_monetary, batch->fixed_forms,
										   ShardloadBinaryProbeSql(sh)),
			   STREAM_PROBE);
}

/*
 * fail_ledger
 *	  The ledger cannot be used (missing and not creatable, or not this
 *	  role's): every slice of the shard fails at stage LEDGER, with a hint
 *	  that says how to prepare the shard.
 */
static void
fail_ledger(StreamShard *sh, const char *sqlstate, const char *message, const char *detail)
{
	ShardloadFailure *f =
		ShardloadFailureMake(SHARDLOAD_STAGE_LEDGER, sh->params->servername, sqlstate, message, detail,
							 psprintf("Run SELECT shardload.prepare_shard(%s) on the coordinator as this role, "
									  "or have the shard's administrator run the SQL of shardload.ledger_ddl() on the shard as the role of the user mapping "
									  "(it needs CREATE on the shard's database the first time).",
									  quote_literal_cstr(sh->params->servername)));
	for (int i = 0; i < sh->nslices; i++)
		if (sh->slices[i]->failure == NULL)
			sh->slices[i]->failure = f;
	close_shard(sh);
	sh->state = STREAM_DONE;
}

/*
 * send_query
 *	  Send sql without waiting and move to state next.
 */
static void
send_query(StreamShard *sh, const char *sql, StreamState next)
{
	int			rc;

	sh->state = next;
	if (!PQsendQuery(sh->conn, sql))
	{
		fail_connection(sh, stage_of(next), "08006");
		return;
	}
	rc = PQflush(sh->conn);
	if (rc < 0)
	{
		fail_connection(sh, stage_of(next), "08006");
		return;
	}
	sh->flush_pending = rc == 1;
	sh->want = WL_SOCKET_READABLE | (sh->flush_pending ? WL_SOCKET_WRITEABLE : 0);
}

/*
 * start_next_slice
 *	  Open the next slice's remote transaction, or finish the shard.
 */
static void
start_next_slice(StreamBatch *batch, StreamShard *sh)
{
	LedgerSliceKey key;

	sh->current = next_to_send(sh);
	if (sh->chunk)
	{
		pfree(sh->chunk);
		sh->chunk = NULL;
	}
	if (sh->current >= sh->nslices)
	{
		finish_shard(sh);
		sh->state = STREAM_DONE;
		return;
	}
	if (sh->shared)
	{
		start_group(batch, sh);
		return;
	}
	key = slice_key(batch, sh);
	sh->slices[sh->current]->sent_identity = sh->identity;
	send_query(sh, ShardloadLedgerBeginAndCheckSql(&key, sh->ledger_reasons), STREAM_SLICE_CHECK);
}

/*
 * start_group
 *	  Open the shared transaction from the current slice on, with one
 *	  ledger lookup for all of its slices.
 */
static void
start_group(StreamBatch *batch, StreamShard *sh)
{
	int64	   *batch_ids = palloc(sizeof(int64) * sh->nslices);
	int			n = 0;

	sh->in_txn = true;
	sh->shared_first = sh->current;
	sort_by_table(sh);
	for (int i = sh->current; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];

		if (slice->failure != NULL || slice->committed)
			continue;
		/* it may go there now (or be found there) */
		slice->sent_identity = sh->identity;
		if (n == 0 || batch_ids[n - 1] != slice->batch->batch_id)
			batch_ids[n++] = slice->batch->batch_id;
	}
	send_query(sh, ShardloadLedgerGroupCheckSql(batch->coordinator_id, batch_ids, n,
												sh->ledger_reasons),
			   STREAM_GROUP_CHECK);
	pfree(batch_ids);
}

/*
 * sort_by_table
 *	  Order the shared transaction's slices by their COPY statement (their
 *	  remote table), keeping their order otherwise, so that each table gets
 *	  one COPY: a runner's group of batches with two partitions on this
 *	  server makes two runs, not two per batch.
 */
static void
sort_by_table(StreamShard *sh)
{
	for (int i = sh->shared_first + 1; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];
		int			j = i;

		while (j > sh->shared_first && strcmp(sh->slices[j - 1]->copy_sql, slice->copy_sql) > 0)
		{
			sh->slices[j] = sh->slices[j - 1];
			j--;
		}
		sh->slices[j] = slice;
	}
}

/*
 * group_checked
 *	  The lookup of a shared transaction's slices is back: the slices found
 *	  in the ledger were loaded before (or were loaded with other content:
 *	  then the slices go one by one, which fails that one); copy the rest.
 */
static void
group_checked(StreamBatch *batch, StreamShard *sh, PGresult *res, ShardloadFailure *error)
{
	if (error)
	{
		fail_slice(sh, error);
		return;
	}
	if (res == NULL || PQnfields(res) != 5)
	{
		fail_connection(sh, SHARDLOAD_STAGE_VERIFY, "08P01");
		return;
	}
	for (int r = 0; r < PQntuples(res); r++)
	{
		int64		batch_id = pg_strtoint64(PQgetvalue(res, r, 0));
		int			slice_no = pg_strtoint32(PQgetvalue(res, r, 1));

		for (int i = sh->shared_first; i < sh->nslices; i++)
		{
			StreamSlice *slice = sh->slices[i];

			if (slice->failure != NULL || slice->committed ||
				slice->batch->batch_id != batch_id || slice->slice_no != slice_no)
				continue;
			sh->current = i;
			if (!ledger_row_matches(batch, sh, PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
									PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4)))
				return;
			slice->committed = slice->found_in_ledger = true;
			break;
		}
	}
	sh->current = sh->shared_first - 1;
	next_copy_run(batch, sh);
}

/*
 * next_copy_run
 *	  In a shared transaction, COPY the next run of slices into the same
 *	  table (the same COPY statement) as one; after the last, add their
 *	  ledger rows and COMMIT.
 */
static void
next_copy_run(StreamBatch *batch, StreamShard *sh)
{
	StreamSlice *first;

	sh->current = next_to_send(sh);
	if (sh->chunk)
	{
		pfree(sh->chunk);
		sh->chunk = NULL;
	}
	if (sh->current >= sh->nslices)
	{
		commit_group(batch, sh);
		return;
	}
	first = sh->slices[sh->current];
	for (int i = sh->current; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];

		if (slice->failure != NULL || slice->committed)
			continue;
		if (strcmp(slice->copy_sql, first->copy_sql) != 0)
			break;
		sh->run_last = i;
	}
	send_query(sh, first->copy_sql, STREAM_COPY_START);
}

/*
 * next_in_run
 *	  The current slice's data is all sent: if the COPY carries more slices,
 *	  the next of them becomes current (true); the sent one commits with the
 *	  shared transaction.
 */
static bool
next_in_run(StreamBatch *batch, StreamShard *sh)
{
	StreamSlice *next;

	if (!sh->in_txn || sh->current >= sh->run_last)
		return false;
	sh->slices[sh->current]->pending = true;
	sh->current = next_to_send(sh);
	next = sh->slices[sh->current];
	/* each binary slice's chunks begin with a header: one COPY each */
	if (next->binary)
		elog(ERROR, "slice %d cannot join another slice's binary COPY", next->slice_no);
	next->line_base = 0;
	forget_sent(batch, next);
	sh->chunk_no = 0;
	sh->offset = 0;
	return true;
}

/*
 * commit_group
 *	  Every slice of the shared transaction is copied: add their ledger
 *	  rows in one INSERT and COMMIT, in one round trip.
 */
static void
commit_group(StreamBatch *batch, StreamShard *sh)
{
	StringInfoData sql;
	bool		first = true;

	initStringInfo(&sql);
	for (int i = sh->shared_first; i < sh->nslices; i++)
	{
		StreamSlice *slice = sh->slices[i];
		LedgerSliceKey key;

		if (!slice->pending)
			continue;
		key = key_of(batch, slice);
		if (first)
			ShardloadLedgerInsertStart(&sql, sh->ledger_reasons);
		ShardloadLedgerInsertRow(&sql, first, &key, slice->remote_table,
								 slice->rows - slice->nskip, slice->skip,
								 slice->skip_reasons, slice->nskip, sh->ledger_reasons);
		first = false;
	}
	appendStringInfoString(&sql, first ? "COMMIT" : "; COMMIT");
	send_query(sh, sql.data, STREAM_SHARED_COMMIT);
}

/*
 * fail_slice
 *	  Record the current slice's failure and roll its transaction back; the
 *	  connection goes on with the next slice if it is still usable.
 */
static void
fail_slice(StreamShard *sh, ShardloadFailure *failure)
{
	if (sh->in_txn)
	{
		fall_back(sh);			/* the slice fails again, alone, if it must */
		return;
	}
	sh->slices[sh->current]->failure = failure;
	if (PQstatus(sh->conn) != CONNECTION_OK)
	{
		fail_connection(sh, failure->stage, "08006");
		return;
	}
	send_query(sh, "ROLLBACK", STREAM_ROLLBACK);
}

/*
 * fail_connection
 *	  The connection is lost or never came up: every slice not yet done
 *	  gets the failure, and the connection is closed.  With sqlstate NULL
 *	  the failure is to connect, classified from libpq's message.
 */
static void
fail_connection(StreamShard *sh, ShardloadStage stage, const char *sqlstate)
{
	char	   *libpq_message = pchomp(PQerrorMessage(sh->conn));
	ShardloadFailure *f;

	if (sqlstate == NULL)
		f = ShardloadFailureMake(stage, sh->params->servername,
								 ShardloadConnectFailureSqlstate(libpq_message),
								 psprintf("could not connect to server \"%s\"", sh->params->servername),
								 libpq_message, NULL);
	else
		f = ShardloadFailureMake(stage, sh->params->servername, sqlstate,
								 psprintf("lost connection to server \"%s\"", sh->params->servername),
								 libpq_message, NULL);

	note_unanswered_prepare(sh);
	for (int i = first_open(sh); i < sh->nslices; i++)
		if (!sh->slices[i]->committed && sh->slices[i]->failure == NULL)
			sh->slices[i]->failure = f;
	close_shard(sh);
	sh->state = STREAM_DONE;
}

/*
 * note_unanswered_prepare
 *	  The connection is given up while an atomic slice's PREPARE waits for
 *	  its answer: the shard may still carry it out (atomic.c keeps the
 *	  attempt in doubt for a while).
 */
static void
note_unanswered_prepare(StreamShard *sh)
{
	if (sh->state == STREAM_COMMIT && sh->current >= 0 && sh->current < sh->nslices &&
		sh->slices[sh->current]->batch->gid_prefix != NULL)
		sh->slices[sh->current]->prepare_unknown = true;
}

/*
 * wait_for_shards
 *	  Sleep until a shard's socket is ready for what its state waits for
 *	  (or a second has passed, or the latch is set), then let interrupts
 *	  in.
 */
static void
wait_for_shards(StreamShard **shards, int nshards, long timeout)
{
	ShardloadSocketWait *sockets = palloc(sizeof(ShardloadSocketWait) * Max(nshards, 1));
	StreamShard **waiting = palloc(sizeof(StreamShard *) * Max(nshards, 1));
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;

	/* -1: sleep at most a second, waking for the nearest time limit */
	if (timeout < 0)
	{
		timeout = 1000;
		for (int i = 0; i < nshards; i++)
			if (shards[i]->state != STREAM_DONE)
				timeout = Min(timeout, Max(TimestampDifferenceMilliseconds(now, shards[i]->deadline), 0) + 1);
	}
	for (int i = 0; i < nshards; i++)
	{
		StreamShard *sh = shards[i];

		if (sh->state == STREAM_DONE || sh->conn == NULL || !sh->want)
			continue;
		sockets[n].sock = PQsocket(sh->conn);
		sockets[n].owner = sh->conn;
		sockets[n].events = sh->want;
		/* libpq may close its socket and open another while it connects */
		sockets[n].renewed = sh->state == STREAM_CONNECTING;
		waiting[n++] = sh;
	}
	ShardloadWaitSockets(sockets, n, timeout);
	for (int i = 0; i < n; i++)
		waiting[i]->ready |= sockets[i].ready;
	pfree(sockets);
	pfree(waiting);
	CHECK_FOR_INTERRUPTS();
}

/*
 * finish_shard
 *	  Every slice of the shard is done and its connection idle: a runner
 *	  keeps it for its next batch (with its file descriptor), else close.
 */
static void
finish_shard(StreamShard *sh)
{
	if (sh->conn && sh->result == NULL && sh->cache_key &&
		ShardloadConnCacheKeep(sh->cache_key, sh->conn))
	{
		sh->conn = NULL;
		sh->fd_reserved = false;
	}
	close_shard(sh);
}

/*
 * close_shard
 *	  Close the connection (an open remote transaction rolls back) and give
 *	  its file descriptor back.  Safe to call twice.
 */
static void
close_shard(StreamShard *sh)
{
	if (sh->result)
	{
		PQclear(sh->result);
		sh->result = NULL;
	}
	if (sh->conn)
	{
		PQfinish(sh->conn);
		sh->conn = NULL;
	}
	if (sh->fd_reserved)
	{
		ReleaseExternalFD();
		sh->fd_reserved = false;
	}
}

static LedgerSliceKey
slice_key(StreamBatch *batch, StreamShard *sh)
{
	return key_of(batch, (sh->current >= 0 && sh->current < sh->nslices) ?
				  sh->slices[sh->current] : NULL);
}

/*
 * key_of
 *	  The ledger key of slice (of its own batch), or of none.
 */
static LedgerSliceKey
key_of(StreamBatch *batch, StreamSlice *slice)
{
	LedgerSliceKey key;

	if (slice != NULL)
		batch = slice->batch;
	key.coordinator_id = batch->coordinator_id;
	key.batch_id = batch->batch_id;
	key.slice_no = slice ? slice->slice_no : -1;
	key.content_hash = batch->content_hash;
	return key;
}

static ShardloadStage
stage_of(int state)
{
	switch ((StreamState) state)
	{
		case STREAM_CONNECTING:
			return SHARDLOAD_STAGE_CONNECT;
		case STREAM_PROBE:
		case STREAM_CREATE_LEDGER:
			return SHARDLOAD_STAGE_LEDGER;
		case STREAM_SLICE_CHECK:
		case STREAM_GROUP_CHECK:
			return SHARDLOAD_STAGE_VERIFY;
		case STREAM_COMMIT:
		case STREAM_SHARED_COMMIT:
		case STREAM_ROLLBACK:
			return SHARDLOAD_STAGE_COMMIT;
		default:
			return SHARDLOAD_STAGE_COPY;
	}
}

/*
 * try_reject
 *	  on_error reject: the shard refused one row of the COPY.  If
 *	  stream_skip.c sets it aside, the slice is sent again without it, in a
 *	  new remote transaction.  False: fail the slice.
 */
static bool
try_reject(StreamBatch *batch, StreamShard *sh, ShardloadFailure *error)
{
	if (PQstatus(sh->conn) != CONNECTION_OK ||
		!ShardloadStreamRejectRow(sh->slices[sh->current]->batch, sh->slices[sh->current],
								  sh->params->servername, error))
		return false;
	sh->retry_slice = true;
	send_query(sh, "ROLLBACK", STREAM_ROLLBACK);
	return true;
}

/*
 * ledger_row_matches
 *	  The slice is in the shard's ledger.  If the ledger row was made for
 *	  other content (a restored or cloned coordinator reusing batch ids),
 *	  fail the slice rather than skip it.  Rows the shard refused back then
 *	  are recorded again if their records were lost (stream_skip.c).
 */
static bool
ledger_row_matches(StreamBatch *batch, StreamShard *sh, const char *hash, const char *skipped,
				   const char *reasons)
{
	StreamSlice *slice = sh->slices[sh->current];

	batch = slice->batch;
	if (strcmp(hash, batch->content_hash) != 0)
	{
		ShardloadFailure *f =
			ShardloadFailureMake(SHARDLOAD_STAGE_VERIFY, sh->params->servername, SQLSTATE_SHARDLOAD_LEDGER_MISMATCH,
								 psprintf("slice %d of batch %lld is in the ledger of server \"%s\" with other content",
										  slice->slice_no, (long long) batch->batch_id, sh->params->servername),
								 psprintf("The ledger row has content hash %.12s; the batch has %.12s.",
										  hash, batch->content_hash),
								 "Was the coordinator's database restored or cloned? Its batch ids now collide with loads it made before.");
		fail_slice(sh, f);
		return false;
	}
	ShardloadStreamRecordLostRejects(batch, slice, sh->params->servername, skipped, reasons);
	return true;
}

/*
 * prepare_failure
 *	  A shard that cannot PREPARE (max_prepared_transactions = 0) cannot
 *	  take part in an atomic batch: say so, naming the server and the
 *	  setting, as a failure no retry can mend.
 */
static ShardloadFailure *
prepare_failure(StreamSlice *slice, StreamShard *sh, ShardloadFailure *error)
{
	if (slice->batch->gid_prefix == NULL || strcmp(error->sqlstate, "55000") != 0 ||
		strstr(error->message, "prepared transactions are disabled") == NULL)
		return error;
	strlcpy(error->sqlstate, SQLSTATE_SHARDLOAD_NO_PREPARE, sizeof(error->sqlstate));
	error->message = psprintf("server \"%s\" cannot take part in an atomic batch: prepared transactions are disabled there",
							  sh->params->servername);
	error->detail = pstrdup("An atomic batch PREPAREs its slice on every shard before it commits any.");
	error->hint = pstrdup("Set max_prepared_transactions to a nonzero value on that server (a restart is needed), or submit the rows without atomic => true.");
	return error;
}
