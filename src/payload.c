/*-------------------------------------------------------------------------
 * payload.c
 *	  Reading a batch's payload back: one chunk at a time for the shard
 *	  streams, and through PostgreSQL's own COPY FROM for local partitions,
 *	  so local rows get the same parsing, constraints and triggers as a
 *	  COPY would give them.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "metadata.h"
#include "payload.h"

/* Where local_copy_source() reads from (COPY callbacks take no argument). */
static struct
{
	int64		batch_id;
	int			slice_no;
	int			next_chunk;
	bytea	   *chunk;
	int			offset;
	bool		done;
	MemoryContext context;		/* holds chunk: COPY calls us in short-lived contexts */
}			local_source;

static int	local_copy_source(void *outbuf, int minread, int maxread);

/*
 * fetch_chunk
 *	  Chunk chunk_no of a slice and, if lines is not NULL, its rows' input
 *	  line numbers (NULL if not kept), palloc'd in the current memory
 *	  context.  Returns NULL past the last chunk.
 */
static bytea *
fetch_chunk(int64 batch_id, int slice_no, int chunk_no, bytea **lines)
{
	ShardloadCatalogSession session;
	Oid			argtypes[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3];
	bytea	   *chunk = NULL;

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(slice_no);
	values[2] = Int32GetDatum(chunk_no);
	if (lines)
		*lines = NULL;
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec(lines ? "SELECT data, line_numbers FROM shardload.payload"
					 " WHERE batch_id = $1 AND slice_no = $2 AND chunk_no = $3"
					 : "SELECT data FROM shardload.payload"
					 " WHERE batch_id = $1 AND slice_no = $2 AND chunk_no = $3",
					 3, argtypes, values, NULL);
	if (SPI_processed == 1)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(session.outer);
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		chunk = DatumGetByteaPCopy(d);
		if (lines)
		{
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			if (!isnull)
				*lines = DatumGetByteaPCopy(d);
		}
		MemoryContextSwitchTo(old);
	}
	ShardloadCatalogEnd(&session);
	return chunk;
}

/*
 * ShardloadPayloadChunk
 *	  Chunk chunk_no of a slice, palloc'd in the current memory context, or
 *	  NULL past the last one.
 */
bytea *
ShardloadPayloadChunk(int64 batch_id, int slice_no, int chunk_no)
{
	return fetch_chunk(batch_id, slice_no, chunk_no, NULL);
}

/*
 * ShardloadPayloadStore
 *	  Store chunk chunk_no of a slice: its COPY text and its rows' input
 *	  line numbers.
 */
void
ShardloadPayloadStore(int64 batch_id, int slice_no, int chunk_no, bytea *data, bytea *lines)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, batch_id);
	ShardloadArgInt4(&args, slice_no);
	ShardloadArgInt4(&args, chunk_no);
	ShardloadArgBytea(&args, data);
	ShardloadArgBytea(&args, lines);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("INSERT INTO shardload.payload (batch_id, slice_no, chunk_no, data, line_numbers)"
					" VALUES ($1, $2, $3, $4, $5)", &args);
	ShardloadCatalogEnd(&session);
}

/*
 * ShardloadPayloadLine
 *	  The slice_line-th row (1-based) of a slice: its input line number
 *	  (if the batch kept them, else 0) and its COPY text.  False if the
 *	  slice is shorter.  Reads the slice's chunks from the start.
 */
bool
ShardloadPayloadLine(int64 batch_id, int slice_no, int64 slice_line, int64 *line_no,
					 char **raw_row)
{
	int64		seen = 0;

	for (int chunk_no = 0;; chunk_no++)
	{
		bytea	   *lines;
		bytea	   *data = fetch_chunk(batch_id, slice_no, chunk_no, &lines);
		const char *p;
		const char *end;

		if (data == NULL)
			return false;
		p = VARDATA_ANY(data);
		end = p + VARSIZE_ANY_EXHDR(data);
		for (int64 row = 0; p < end; row++)
		{
			const char *nl = memchr(p, '\n', end - p);

			if (nl == NULL)
				nl = end;
			if (++seen == slice_line)
			{
				*raw_row = pnstrdup(p, nl - p);
				*line_no = 0;
				if (lines && (row + 1) * (int64) sizeof(int64) <= (int64) VARSIZE_ANY_EXHDR(lines))
					memcpy(line_no, VARDATA_ANY(lines) + row * sizeof(int64), sizeof(int64));
				return true;
			}
			p = nl + 1;
		}
		pfree(data);
		if (lines)
			pfree(lines);
	}
}

/*
 * local_copy_source
 *	  COPY data source callback: the slice's chunks one after another.
 */
static int
local_copy_source(void *outbuf, int minread, int maxread)
{
	int			copied = 0;

	while (copied < minread && !local_source.done)
	{
		int			left;
		int			n;

		if (local_source.chunk == NULL ||
			local_source.offset >= (int) VARSIZE_ANY_EXHDR(local_source.chunk))
		{
			MemoryContext old = MemoryContextSwitchTo(local_source.context);

			MemoryContextReset(local_source.context);
			local_source.chunk = ShardloadPayloadChunk(local_source.batch_id,
													   local_source.slice_no,
													   local_source.next_chunk++);
			MemoryContextSwitchTo(old);
			local_source.offset = 0;
			if (local_source.chunk == NULL)
			{
				local_source.done = true;
				break;
			}
		}
		left = VARSIZE_ANY_EXHDR(local_source.chunk) - local_source.offset;
		n = Min(left, maxread - copied);
		memcpy((char *) outbuf + copied, VARDATA_ANY(local_source.chunk) + local_source.offset, n);
		local_source.offset += n;
		copied += n;
	}
	return copied;
}

/*
 * ShardloadLoadLocalSlice
 *	  COPY a slice into the local partition in this transaction; returns
 *	  the rows copied.  Throws what COPY throws.  The caller's INSERT right
 *	  on the partitioned table covers its partitions, as for INSERT.
 */
uint64
ShardloadLoadLocalSlice(int64 batch_id, int slice_no, Oid partition, List *column_names)
{
	Relation	rel = table_open(partition, RowExclusiveLock);
	ParseState *pstate = make_parsestate(NULL);
	CopyFromState cstate;
	uint64		rows;

	addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	memset(&local_source, 0, sizeof(local_source));
	local_source.batch_id = batch_id;
	local_source.slice_no = slice_no;
	local_source.context = AllocSetContextCreate(CurrentMemoryContext,
												 "pg_shardload local slice",
												 ALLOCSET_DEFAULT_SIZES);

	PushActiveSnapshot(GetTransactionSnapshot());
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, local_copy_source,
						   column_names, NIL);
	rows = CopyFrom(cstate);
	EndCopyFrom(cstate);
	PopActiveSnapshot();

	MemoryContextDelete(local_source.context);
	free_parsestate(pstate);
	table_close(rel, NoLock);
	return rows;
}
