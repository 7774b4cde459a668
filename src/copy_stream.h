/*-------------------------------------------------------------------------
 * copy_stream.h
 *	  Streaming slices to their shards with COPY, all shards at once.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_COPY_STREAM_H
#define SHARDLOAD_COPY_STREAM_H

#include "postgres.h"

#include "libpq-fe.h"
#include "datatype/timestamp.h"

#include "connection.h"
#include "pg_shardload.h"

typedef struct StreamBatch StreamBatch;

/*
 * Chunks of a batch that is still being captured (direct_load.c): chunk()
 * returns chunk chunk_no of a slice, palloc'd, as COPY text or binary,
 * with its number of rows and the size of its text; or NULL if there is
 * none (yet: until done, a slice's COPY stays open for more).
 */
typedef struct ShardloadChunkFeed
{
	bytea	   *(*chunk) (void *arg, int slice_no, int chunk_no, bool binary, int64 *rows,
						  int64 *text_bytes);
	void	   *arg;
	bool		done;
} ShardloadChunkFeed;

/* One slice bound for a shard, and what became of it. */
typedef struct StreamSlice
{
	StreamBatch *batch;			/* its batch (NULL: the stream's) */
	int			slice_no;
	int64		rows;
	int64		bytes;
	char	   *remote_table;	/* quoted schema.table on the shard */
	char	   *copy_sql;		/* COPY ... FROM STDIN with remote column names */

	/*
	 * From a feed whose chunks come in binary too: the binary COPY, and
	 * what the shard's probe asks (its shard's binary_checks has it) and
	 * must answer for the slice to use it.
	 */
	char	   *binary_copy_sql;	/* NULL: text only */
	char	   *binary_check;	/* SQL: the remote columns' type OIDs */
	const char *binary_type_list;	/* the answer that allows binary */
	bool		binary_known;	/* decided: binary, or COPY text for good */
	bool		binary;			/* its chunks go in binary (copy_sql is it) */
	bool		committed;		/* loaded now, or found in the ledger */
	bool		pending;		/* sent, to commit with a shared transaction */
	bool		found_in_ledger;
	bool		prepared;		/* atomic: PREPAREd, to commit on the decision */
	bool		prepare_unknown;	/* atomic: PREPARE sent, answer never came */
	ShardloadFailure *failure;
	int64		rows_sent;		/* progress of this attempt */
	int64		bytes_sent;
	int			progress_slot;	/* its progress parameter, -1 if none */

	/* on_error reject: rows the shard refused are set aside, slice resent */
	bool		reject_mode;
	int			nskip;
	int			maxskip;
	int64	   *skip;			/* sorted slice lines (1-based) not to send */
	char	  **skip_reasons;	/* why each was refused: "SQLSTATE message" */
	int64		line_base;		/* lines in the chunks sent before this one */

	/* the shard this slice went to before, if its outcome may be unknown */
	const char *expected_identity;
	const char *sent_identity;	/* the shard it was sent to in this attempt */
} StreamSlice;

/* One shard connection and the slices it carries (private fields below). */
typedef struct StreamShard
{
	ShardConnParams *params;
	int			nslices;
	StreamSlice **slices;

	PGconn	   *conn;
	bool		fd_reserved;
	int			state;
	int			current;		/* index of the slice being worked on */
	int			want;			/* WL_SOCKET_* events the state waits for */
	int			ready;			/* WL_SOCKET_* events seen since last step */
	bool		flush_pending;
	int			chunk_no;
	bytea	   *chunk;
	int64		chunk_rows;		/* rows in chunk, -1: count its newlines */
	int64		chunk_text_bytes;	/* its size as COPY text (if chunk_rows) */
	int			offset;
	PGresult   *result;			/* last result of the query in flight */
	bool		retry_slice;	/* after the ROLLBACK, send the slice again */
	ShardloadFailure *error;	/* first error of the query in flight */
	char	   *identity;		/* system identifier/database, once connected */
	TimestampTz deadline;		/* connect or progress limit */
	int			backend_pid;	/* of the shard backend, once connected */
	bool		stalled;		/* failed by the progress limit */
	bool		ledger_reasons; /* the ledger keeps reasons of refused rows */
	char	   *cache_key;		/* what a kept connection must match */
	bool		shared;			/* its slices share one remote transaction */
	bool		in_txn;			/* that transaction is open */
	int			shared_first;	/* its first slice */
	bool		falling_back;	/* it is being rolled back: then one by one */
	int			run_last;		/* the last slice of the COPY in flight */
	bool		awaiting_feed;	/* its COPY waits for rows still being captured */
	bool		can_prepare;	/* the shard allows prepared transactions */

	/*
	 * What the probe asks about the tables the shard may get slices of in
	 * binary (each a slice's binary_check), and its answers once it has.
	 */
	int			nbinary_checks;
	char	  **binary_checks;
	char	  **binary_answers; /* NULL until the probe answered */
} StreamShard;

/*
 * What every shard needs to know about a batch.  The stream's own batch
 * also gives the session settings, the stage and progress of the stream.
 */
struct StreamBatch
{
	int64		batch_id;
	Oid			target;			/* for progress reporting */
	int64		bytes_sent;
	int64		rows_sent;
	int64		reject_budget;	/* rows the shards may still refuse */
	const char *coordinator_id;
	const char *content_hash;
	const char *lc_monetary;	/* for batches with money values, else NULL */
	bool		fixed_forms;	/* payload in fixed forms (captured by 0.2+) */
	const char *gid_prefix;		/* atomic: each slice is PREPAREd as this
								 * prefix and its number; NULL: committed */
	ShardloadStage *stage_out;		/* kept up to date: where the stream is, for
								 * an error raised meanwhile (NULL: none) */
	ShardloadChunkFeed *feed;	/* chunks still being captured; NULL: payload */
};

extern void ShardloadStreamSlices(StreamBatch *batch, StreamShard **shards, int nshards);
extern void ShardloadStreamBegin(StreamBatch *batch, StreamShard **shards, int nshards);
extern void ShardloadStreamAddShard(StreamBatch *batch, StreamShard **shards, int *nshards,
									StreamShard *sh);
extern bool ShardloadStreamTurn(StreamBatch *batch, StreamShard **shards, int nshards,
								bool block);
extern void ShardloadStreamEnd(StreamShard **shards, int nshards);

#endif							/* SHARDLOAD_COPY_STREAM_H */
