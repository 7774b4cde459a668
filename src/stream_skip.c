/*-------------------------------------------------------------------------
 * stream_skip.c
 *	  Rows left out of a slice while it streams: the lines to skip, and,
 *	  with on_error => 'reject', the rows a shard refused, set aside in
 *	  shardload.reject with their reason.  The catalog side of
 *	  copy_stream.c, kept out of its I/O state machine.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "compat.h"
#include "payload.h"
#include "reject.h"
#include "stream_skip.h"

static int64 failing_slice_line(StreamSlice *slice, ShardloadFailure *error);
static void record_skipped_row(int64 batch_id, StreamSlice *slice, int64 line,
							   const char *reason, const char *servername);

/*
 * ShardloadStreamSliceSkip
 *	  Do not send line slice_line (1-based) of the slice any more; reason
 *	  ("SQLSTATE message", or NULL) is kept with it in the ledger.
 */
void
ShardloadStreamSliceSkip(StreamSlice *slice, int64 slice_line, const char *reason)
{
	int			i;

	if (slice->nskip == slice->maxskip)
	{
		slice->maxskip = Max(16, slice->maxskip * 2);
		slice->skip = slice->skip ? repalloc(slice->skip, sizeof(int64) * slice->maxskip)
			: palloc(sizeof(int64) * slice->maxskip);
		slice->skip_reasons = slice->skip_reasons ?
			repalloc(slice->skip_reasons, sizeof(char *) * slice->maxskip)
			: palloc(sizeof(char *) * slice->maxskip);
	}
	for (i = slice->nskip; i > 0 && slice->skip[i - 1] > slice_line; i--)
	{
		slice->skip[i] = slice->skip[i - 1];
		slice->skip_reasons[i] = slice->skip_reasons[i - 1];
	}
	slice->skip[i] = slice_line;
	slice->skip_reasons[i] = reason ? pstrdup(reason) : NULL;
	slice->nskip++;
}

/*
 * ShardloadStreamSkipLines
 *	  The chunk without the slice's skipped lines (frees the original).
 */
bytea *
ShardloadStreamSkipLines(StreamSlice *slice, bytea *chunk)
{
	const char *p = VARDATA_ANY(chunk);
	const char *end = p + VARSIZE_ANY_EXHDR(chunk);
	StringInfoData out;
	bytea	   *result;
	int			next = 0;

	/* skip entries before this chunk */
	while (next < slice->nskip && slice->skip[next] <= slice->line_base)
		next++;
	initStringInfo(&out);
	while (p < end)
	{
		const char *nl = memchr(p, '\n', end - p);

		nl = nl ? nl + 1 : end;
		slice->line_base++;
		if (next < slice->nskip && slice->skip[next] == slice->line_base)
			next++;
		else
			appendBinaryStringInfo(&out, p, nl - p);
		p = nl;
	}
	result = palloc(VARHDRSZ + out.len);
	SET_VARSIZE(result, VARHDRSZ + out.len);
	memcpy(VARDATA(result), out.data, out.len);
	pfree(out.data);
	pfree(chunk);
	return result;
}

/*
 * ShardloadStreamRejectRow
 *	  on_error reject: a data error the shard raised at one line of a
 *	  slice's COPY sets that row aside in shardload.reject, and the line is
 *	  skipped from now on; the caller sends the slice again.  Each refused
 *	  row costs one resend of its slice, so shard-side rejects are for the
 *	  few rows only the shard can judge (its CHECK constraints, triggers,
 *	  keys); rows of the wrong type were set aside at capture.  False when
 *	  the error is not about one row or the batch's budget is spent (then
 *	  the error says so).
 */
bool
ShardloadStreamRejectRow(StreamBatch *batch, StreamSlice *slice, const char *servername,
						 ShardloadFailure *error)
{
	int64		line;
	int64		line_no;
	char	   *raw_row;
	char	   *primary;

	if (!slice->reject_mode || error->context == NULL ||
		(strncmp(error->sqlstate, "22", 2) != 0 && strncmp(error->sqlstate, "23", 2) != 0))
		return false;
	if ((line = failing_slice_line(slice, error)) <= 0)
		return false;
	if (batch->reject_budget <= 0)
	{
		error->detail = psprintf("The last one, line %lld of the slice: %s%s%s", (long long) line,
								 error->message, error->detail ? " " : "",
								 error->detail ? error->detail : "");
		strlcpy(error->sqlstate, "22000", sizeof(error->sqlstate));
		error->message = pstrdup("more rows were rejected than the batch's reject_limit allows");
		return false;
	}
	if (!ShardloadPayloadLine(batch->batch_id, slice->slice_no, line, &line_no, &raw_row))
		return false;
	primary = psprintf("%s (on server \"%s\")", error->message, servername);
	ShardloadRecordReject(batch->batch_id, line_no, error->sqlstate, primary,
						  raw_row, slice->slice_no, line);
	ShardloadStreamSliceSkip(slice, line, psprintf("%s %s", error->sqlstate, primary));
	batch->reject_budget--;
	return true;
}

/*
 * failing_slice_line
 *	  The slice line (1-based, skipped lines counted) that a shard's COPY
 *	  error names in its context ("COPY t, line N..."), or 0.
 */
static int64
failing_slice_line(StreamSlice *slice, ShardloadFailure *error)
{
	const char *at;
	int64		line;

	if (error->context == NULL || (at = strstr(error->context, ", line ")) == NULL ||
		(line = strtoll(at + 7, NULL, 10)) <= 0)
		return 0;
	/* the shard counts the lines it was sent; count the skipped ones too */
	for (int i = 0; i < slice->nskip; i++)
		if (slice->skip[i] <= line)
			line++;
	return line;
}

/*
 * ShardloadStreamNameInputLine
 *	  The shard names the failing row by its line in the slice; add the
 *	  line of the batch's input it came from.
 */
void
ShardloadStreamNameInputLine(StreamBatch *batch, StreamSlice *slice, ShardloadFailure *error)
{
	int64		line = failing_slice_line(slice, error);
	int64		input_line;
	char	   *raw_row;

	if (line <= 0 ||
		!ShardloadPayloadLine(batch->batch_id, slice->slice_no, line, &input_line, &raw_row) ||
		input_line <= 0)
		return;
	ShardloadFailureAddDetail(error, psprintf("The row is line %lld of the batch's input.",
											  (long long) input_line));
}

/*
 * ShardloadStreamRecordLostRejects
 *	  The slice was found in a shard's ledger with the lines the shard
 *	  refused when it was loaded (skipped: an int8[] as text; reasons:
 *	  "SQLSTATE message" each, separated by 0x1f, or NULL).  Rows whose
 *	  reject records were lost with that attempt (a crash between the
 *	  shard's COMMIT and ours) are recorded again, with the kept reason.
 */
void
ShardloadStreamRecordLostRejects(StreamBatch *batch, StreamSlice *slice, const char *servername,
								 const char *skipped, const char *reasons)
{
	const char *p = skipped;
	const char *r = reasons;

	while (p && *p)
	{
		char	   *end;
		int64		line = strtoll(p, &end, 10);
		bool		known = false;
		char	   *reason = NULL;

		if (end == p)
		{
			p++;				/* '{', '}' or ',' */
			continue;
		}
		p = end;
		if (r && *r)
		{
			const char *sep = strchr(r, '\x1f');

			reason = sep ? pnstrdup(r, sep - r) : pstrdup(r);
			r = sep ? sep + 1 : r + strlen(r);
		}
		for (int i = 0; i < slice->nskip; i++)
			known |= slice->skip[i] == line;
		if (!known)
		{
			record_skipped_row(batch->batch_id, slice, line, reason, servername);
			ShardloadStreamSliceSkip(slice, line, reason);
		}
	}
}

/*
 * ShardloadStreamRecordRejectsAgain
 *	  The slice committed on its shard, but the load step that recorded the
 *	  rows the shard refused was rolled back after that (an error or a
 *	  cancel later in the step): record again those no longer in
 *	  shardload.reject, or they would be neither loaded nor set aside.
 */
void
ShardloadStreamRecordRejectsAgain(int64 batch_id, StreamSlice *slice, const char *servername)
{
	for (int i = 0; i < slice->nskip; i++)
		if (!ShardloadRejectRecorded(batch_id, slice->slice_no, slice->skip[i]))
			record_skipped_row(batch_id, slice, slice->skip[i], slice->skip_reasons[i], servername);
}

/*
 * record_skipped_row
 *	  Keep the row at a skipped line of the slice in shardload.reject, with
 *	  its kept reason ("SQLSTATE message", or NULL if none was kept).
 */
static void
record_skipped_row(int64 batch_id, StreamSlice *slice, int64 line, const char *reason,
				   const char *servername)
{
	int64		line_no;
	char	   *raw_row;
	char		sqlstate[6] = "22000";
	const char *message = psprintf("refused by server \"%s\" in an attempt whose record was lost; the reason was not kept",
								   servername);

	if (reason && strlen(reason) > 6 && reason[5] == ' ')
	{
		memcpy(sqlstate, reason, 5);
		message = reason + 6;
	}
	if (ShardloadPayloadLine(batch_id, slice->slice_no, line, &line_no, &raw_row))
		ShardloadRecordReject(batch_id, line_no, sqlstate, message, raw_row, slice->slice_no, line);
}
