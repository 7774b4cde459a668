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

#include "storage/buffile.h"

#include "direct_spill.h"
#include "payload.h"

/* Where one chunk is in the file. */
typedef struct SpillChunk
{
	int			fileno;
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

struct DirectSpill
{
	BufFile    *file;
	int			nslices;
	SpillSlice *slices;
	int			nlatest;		/* slices with a latest chunk */
	int			end_fileno;		/* where the next chunk goes */
	off_t		end_offset;
};

static void read_exactly(DirectSpill *spill, char *into, int len);

/*
 * ShardloadSpillCreate
 *	  A spill for slices 0..nslices-1, in the current memory context.
 */
DirectSpill *
ShardloadSpillCreate(int nslices)
{
	DirectSpill *spill = palloc0(sizeof(DirectSpill));

	spill->file = BufFileCreateTemp(true);
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
	chunk->fileno = spill->end_fileno;
	chunk->offset = spill->end_offset;
	chunk->len = data->len;
	chunk->lines_len = lines->len;
	if (BufFileSeek(spill->file, spill->end_fileno, spill->end_offset, SEEK_SET) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in temporary file: %m")));
	BufFileWrite(spill->file, data->data, data->len);
	BufFileWrite(spill->file, lines->data, lines->len);
	BufFileTell(spill->file, &spill->end_fileno, &spill->end_offset);
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
	if (BufFileSeek(spill->file, chunk->fileno, chunk->offset, SEEK_SET) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in temporary file: %m")));
	read_exactly(spill, VARDATA(data), chunk->len);
	if (lines)
	{
		*lines = palloc(VARHDRSZ + chunk->lines_len);
		SET_VARSIZE(*lines, VARHDRSZ + chunk->lines_len);
		read_exactly(spill, VARDATA(*lines), chunk->lines_len);
	}
	return data;
}

/*
 * read_exactly
 *	  len bytes from where the file is (BufFileRead reports its own I/O
 *	  errors: a short read is a file cut short).
 */
static void
read_exactly(DirectSpill *spill, char *into, int len)
{
	size_t		got = BufFileRead(spill->file, into, len);

	if (got != (size_t) len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not read temporary file: read only %zu of %d bytes", got, len)));
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
	if (spill->file)
		BufFileClose(spill->file);
	spill->file = NULL;
}
