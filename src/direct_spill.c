/*-------------------------------------------------------------------------
 * direct_spill.c
 *	  The chunks of a batch loaded directly (direct_load.c), kept in a
 *	  temporary file instead of shardload.payload: the shards read them
 *	  from here while the capture goes on, and only if the load cannot
 *	  finish on its own are they stored as the batch's payload, so that
 *	  its retries can resend them.
 *
 *	  The file outlives the transaction that captured the rows (the
 *	  capture commits before the shards' transactions are prepared), so
 *	  its owner closes it, also on error.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/fd.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "direct_spill.h"
#include "payload.h"

/*
 * Where one chunk is in the file: its text, its line numbers, then the
 * same rows in binary if the capture writes them (copy_binary.c).
 */
typedef struct SpillChunk
{
	off_t		offset;
	int			len;
	int			lines_len;
	int			bin_len;
} SpillChunk;

typedef struct SpillSlice
{
	SpillChunk *chunks;
	int			n;
	int			max;
	bytea	   *latest;			/* its last chunk, until a shard takes it */
	bool		latest_binary;	/* latest is the binary form (else text) */
} SpillSlice;

/*
 * At most this many slices keep their last chunk in memory (a chunk is up
 * to SHARDLOAD_CHUNK_BYTES): a target of many partitions stays bounded.
 */
#define SPILL_LATEST_MAX	8

/* Chunks go whole into one file (one write each, no buffer copy). */
struct DirectSpill
{
	File		file;
	int			nslices;
	SpillSlice *slices;
	int			nlatest;		/* slices with a latest chunk */
	off_t		end;			/* where the next chunk goes */
};

static void write_at_end(DirectSpill *spill, char *data, int len);
static bytea *read_bytea(DirectSpill *spill, int len, off_t offset);
static void read_exactly(DirectSpill *spill, char *into, int len, off_t offset);

/*
 * ShardloadSpillCreate
 *	  A spill for slices 0..nslices-1, in the current memory context.
 */
DirectSpill *
ShardloadSpillCreate(int nslices)
{
	DirectSpill *spill = palloc0(sizeof(DirectSpill));

	spill->file = OpenTemporaryFile(true);
	spill->nslices = nslices;
	spill->slices = palloc0(sizeof(SpillSlice) * nslices);
	return spill;
}

/*
 * ShardloadSpillAdd
 *	  Keep the next chunk of a slice: its COPY text, its rows' input line
 *	  numbers and its binary form (empty if none).  Returns its chunk
 *	  number.
 */
int
ShardloadSpillAdd(DirectSpill *spill, int slice_no, StringInfo data, StringInfo lines,
				  StringInfo bin)
{
	/* the form the shard most likely reads is the one kept in memory */
	StringInfo	streamed = bin->len > 0 ? bin : data;

	SpillSlice *slice = &spill->slices[slice_no];
	SpillChunk *chunk;

	if (slice->n == slice->max)
	{
		slice->max = Max(8, slice->max * 2);
		slice->chunks = slice->chunks ? repalloc(slice->chunks, sizeof(SpillChunk) * slice->max)
			: palloc(sizeof(SpillChunk) * slice->max);
	}
	chunk = &slice->chunks[slice->n];
	chunk->offset = spill->end;
	chunk->len = data->len;
	chunk->lines_len = lines->len;
	chunk->bin_len = bin->len;
	write_at_end(spill, data->data, data->len);
	write_at_end(spill, lines->data, lines->len);
	write_at_end(spill, bin->data, bin->len);
	/* a shard that keeps up takes it from memory, not from the file */
	if (slice->latest)
	{
		pfree(slice->latest);
		slice->latest = NULL;
		spill->nlatest--;
	}
	if (spill->nlatest < SPILL_LATEST_MAX)
	{
		slice->latest = palloc(VARHDRSZ + streamed->len);
		SET_VARSIZE(slice->latest, VARHDRSZ + streamed->len);
		memcpy(VARDATA(slice->latest), streamed->data, streamed->len);
		slice->latest_binary = streamed == bin;
		spill->nlatest++;
	}
	return slice->n++;
}

/*
 * write_at_end
 *	  Append len bytes to the file.
 */
static void
write_at_end(DirectSpill *spill, char *data, int len)
{
	int			written;

	if (len == 0)
		return;
	written = FileWrite(spill->file, data, len, spill->end, PG_WAIT_EXTENSION);
	if (written != len)
	{
		/* a short write without an error is a full disk */
		if (written >= 0)
			errno = ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write temporary file: %m")));
	}
	spill->end += len;
}

/*
 * read_bytea
 *	  len bytes at offset, as a palloc'd bytea.
 */
static bytea *
read_bytea(DirectSpill *spill, int len, off_t offset)
{
	bytea	   *data = palloc(VARHDRSZ + len);

	SET_VARSIZE(data, VARHDRSZ + len);
	read_exactly(spill, VARDATA(data), len, offset);
	return data;
}

/*
 * read_exactly
 *	  len bytes at offset (a short read is a file cut short).
 */
static void
read_exactly(DirectSpill *spill, char *into, int len, off_t offset)
{
	int			got;

	if (len == 0)
		return;
	got = FileRead(spill->file, into, len, offset, PG_WAIT_EXTENSION);
	if (got < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read temporary file: %m")));
	if (got != len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not read temporary file: read only %d of %d bytes", got, len)));
}

/*
 * ShardloadSpillChunk
 *	  Chunk chunk_no of a slice, palloc'd (the caller's to free), as COPY
 *	  text or binary, with its number of rows and the size of its text;
 *	  NULL if it is not kept (yet).
 */
bytea *
ShardloadSpillChunk(DirectSpill *spill, int slice_no, int chunk_no, bool binary, int64 *rows,
					int64 *text_bytes)
{
	SpillSlice *slice = &spill->slices[slice_no];
	SpillChunk *chunk;
	bytea	   *data;
	off_t		offset;
	int			len;

	if (chunk_no >= slice->n)
		return NULL;
	chunk = &slice->chunks[chunk_no];
	*rows = chunk->lines_len / sizeof(int64);
	*text_bytes = chunk->len;
	if (chunk_no == slice->n - 1 && slice->latest != NULL && slice->latest_binary == binary)
	{
		data = slice->latest;
		slice->latest = NULL;
		spill->nlatest--;
		return data;
	}
	if (binary && chunk->bin_len == 0)
		elog(ERROR, "chunk %d of slice %d has no binary form", chunk_no, slice_no);
	offset = chunk->offset + (binary ? chunk->len + chunk->lines_len : 0);
	len = binary ? chunk->bin_len : chunk->len;
	return read_bytea(spill, len, offset);
}

/*
 * ShardloadSpillStore
 *	  Store every kept chunk (its text and line numbers) as the batch's
 *	  payload, as a capture that writes its payload would have (in the
 *	  current transaction).
 */
void
ShardloadSpillStore(DirectSpill *spill, int64 batch_id)
{
	for (int s = 0; s < spill->nslices; s++)
		for (int c = 0; c < spill->slices[s].n; c++)
		{
			SpillChunk *chunk = &spill->slices[s].chunks[c];
			bytea	   *data = read_bytea(spill, chunk->len, chunk->offset);
			bytea	   *lines = read_bytea(spill, chunk->lines_len, chunk->offset + chunk->len);

			ShardloadPayloadStore(batch_id, s, c, data, lines);
			pfree(data);
			pfree(lines);
		}
}

/*
 * ShardloadSpillClose
 *	  Remove the file.  Safe to call twice.
 */
void
ShardloadSpillClose(DirectSpill *spill)
{
	if (spill->file > 0)
		FileClose(spill->file);	/* a temporary file goes with it */
	spill->file = 0;
}
