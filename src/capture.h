/*-------------------------------------------------------------------------
 * capture.h
 *	  Capturing a batch's rows as routed COPY text chunks.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CAPTURE_H
#define SHARDLOAD_CAPTURE_H

#include "postgres.h"

#include "common/cryptohash.h"
#include "lib/stringinfo.h"

#include "pg_shardload.h"
#include "reject.h"
#include "routing.h"
#include "column_text.h"
#include "value_forms.h"

/* Rows bound for one slice, buffered until a chunk is full. */
typedef struct CaptureSlice
{
	StringInfoData buf;
	StringInfoData lines;		/* int64 input line per row */
	StringInfoData bin;			/* the same rows in binary (binary_types) */
	bool		no_binary;		/* its slice goes in COPY text: no bin */
	int64		rows;
	int64		bytes;
	int			next_chunk;
	int64		first_line;		/* first row's line (unroutable slice) */
	char	   *first_detail;
} CaptureSlice;

/* One capture in progress; slices[0] holds rows that fit no partition. */
typedef struct Capture
{
	int64		batch_id;
	bool		write_payload;	/* false: only hash (resubmitted key) */
	ShardloadRouter *router;
	int			nslices;
	CaptureSlice *slices;
	pg_cryptohash_ctx *hash;
	StringInfoData to_hash;		/* lines not yet added to the hash */
	StringInfoData line;
	int64		rows;
	MemoryContext context;		/* where the capture lives */
	MemoryContext row_context;	/* reset after every row */
	bool		reject_mode;	/* on_error reject: check rows, keep bad ones */
	RowChecker *checker;		/* made by the source, which knows its types */
	ShardloadRecoder *recoder;	/* text input: columns to parse and rewrite */
	const char *raw_line;		/* the input line as given, if known (a
								 * trailing newline is dropped) */
	const char *copy_line;		/* the row as a payload line already (COPY
								 * text, tab-separated, \N for NULL, no
								 * newline), if the source knows it */
	int			copy_line_len;
	bool	   *plain;			/* columns whose text never needs escaping */
	int64		rejected;

	/*
	 * A direct load (direct_load.c): each full chunk goes to sink instead of
	 * the payload, and tick runs every CAPTURE_TICK_BYTES captured, so that
	 * the shards get rows while the capture goes on.
	 */
	void		(*sink) (void *arg, int slice_no, int chunk_no, StringInfo data,
						 StringInfo lines, StringInfo bin);
	void		(*tick) (void *arg);
	void	   *sink_arg;
	int64		tick_bytes;

	/*
	 * A direct load whose column types can travel in binary
	 * (copy_binary.c): each chunk also in COPY binary, from the row's
	 * values in row_values and row_nulls (a query's rows), or from its
	 * text (rows as text: recoded_values is set).
	 */
	const Oid  *binary_types;	/* NULL: text only */
	const char *binary_type_list;	/* their OIDs, "20,23,..." */
	const Datum *row_values;
	const bool *row_nulls;
	/* rows as text (COPY, CSV): the values the recoder parsed, by column */
	Datum	   *recoded_values;
	bool		binary_broken;	/* a row's values could not go in binary */
} Capture;

#define CAPTURE_TICK_BYTES	(64 * 1024)
#define CAPTURE_HASH_BYTES	(64 * 1024)

extern Capture *ShardloadCaptureCreate(ShardloadRouter *router, int64 batch_id, bool write_payload,
							  bool reject_mode);
extern bool ShardloadCaptureBinaryBegin(Capture *cap);
extern void ShardloadCaptureAddRow(Capture *cap, int64 line_no, char **values,
						  Datum key, bool key_isnull, bool key_known);
extern void ShardloadCaptureRejectRow(Capture *cap, int64 line_no, char **values,
							 const char *sqlstate, const char *message);
extern char *ShardloadCaptureFinish(Capture *cap);
extern void ShardloadCaptureRecordSlices(Capture *cap);
extern void ShardloadAppendCopyText(StringInfo buf, const char *value);

extern Capture *ShardloadSubmissionCapture(ShardloadSubmission *sub);
extern void ShardloadCaptureFromQuery(Capture *cap, const char *query, Datum *ticks);
extern void ShardloadCaptureExpectText(Capture *cap);
extern void ShardloadCaptureFromCopy(Capture *cap, const char *data, const char *filename,
							const char *format, bool header);

#endif							/* SHARDLOAD_CAPTURE_H */
