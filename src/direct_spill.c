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

/* Where one chunk is in the file: its text, then its line numbers. */
typedef struct SpillChunk
{
	off_t		offset;
	int			len;
	int			lines_len;
} SpillChunk;

typedef struct SpillSlice
{
	SpillChunk *chunks;
	int			n;
	int			max;
	bytea	   *latest;			/* its last chunk, until a shard takes it */
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
 *	  Keep the next chunk of a slice: its COPY text and its rows' input
 *	  line numbers.  Returns its chunk number.
 */
int
ShardloadSpillAdd(DirectSpill *spill, int slice_no, StringInfo data, StringInfo lines)
{
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
	write_at_end(spill, data->data, data->len);
	write_at_end(spill, lines->data, lines->len);
	/* a shard that keeps up takes it from memory, not from the file */
	if (slice->latest)
	{
		pfree(slice->latest);
		slice->latest = NULL;
		spill->nlatest--;
	}
	if (spill->nlatest < SPILL_LATEST_MAX)
	{
		slice->latest = palloc(VARHDRSZ + data->len);
		SET_VARSIZE(slice->latest, VARHDRSZ + data->len);
		memcpy(VARDATA(slice->latest), data->data, data->len);
		spill->nlatest++;
	}
	return slice->n++;
}

/*
 * read_chunk
 *	  Chunk chunk_no of a slice as a bytea (and its line numbers, if lines
 *	  is not NULL), or NULL if the slice has no such chunk yet.
 */
static bytea *
read_chunk(DirectSpill *spill, int slice_no, int chunk_no, bytea **lines)
{
	SpillSlice *slice = &spill->slices[slice_no];
	SpillChunk *chunk;
	bytea	   *data;

	if (chunk_no >= slice->n)
		return NULL;
	chunk = &slice->chunks[chunk_no];
	data = palloc(VARHDRSZ + chunk->len);
	SET_VARSIZE(data, VARHDRSZ + chunk->len);
	read_exactly(spill, VARDATA(data), chunk->len, chunk->offset);
	if (lines)
	{
		*lines = palloc(VARHDRSZ + chunk->lines_len);
		SET_VARSIZE(*lines, VARHDRSZ + chunk->lines_len);
		read_exactly(spill, VARDATA(*lines), chunk->lines_len, chunk->offset + chunk->len);
	}
	return data;
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
 *	  Chunk chunk_no of a slice, palloc'd (the caller's to free), or NULL
 *	  if it is not kept (yet).
 */
bytea *
ShardloadSpillChunk(DirectSpill *spill, int slice_no, int chunk_no)
{
	SpillSlice *slice = &spill->slices[slice_no];

	if (chunk_no == slice->n - 1 && slice->latest != NULL)
	{
		bytea	   *chunk = slice->latest;

		slice->latest = NULL;
		spill->nlatest--;
		return chunk;
	}
	return read_chunk(spill, slice_no, chunk_no, NULL);
}

/*
 * ShardloadSpillStore
 *	  Store every kept chunk as the batch's payload, as a capture that
 *	  writes its payload would have (in the current transaction).
 */
void
ShardloadSpillStore(DirectSpill *spill, int64 batch_id)
{
	for (int s = 0; s < spill->nslices; s++)
		for (int c = 0; c < spill->slices[s].n; c++)
		{
			bytea	   *lines;
			bytea	   *data = read_chunk(spill, s, c, &lines);

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
