/*-------------------------------------------------------------------------
 * copy_reader.h
 *	  Reading plain COPY text from the client, with PostgreSQL's reader
 *	  taking over at the first line that is not plain.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_COPY_READER_H
#define SHARDLOAD_COPY_READER_H

#include "postgres.h"

#include "commands/copy.h"
#include "lib/stringinfo.h"

typedef enum CopyReaderResult
{
	COPY_READER_ROW,
	COPY_READER_END,
	COPY_READER_HAND_OFF
} CopyReaderResult;

typedef struct CopyReader
{
	/* the input's form */
	char		delim;
	const char *null_print;
	int			null_print_len;
	bool		null_is_plain;	/* the NULL marker escapes nothing */
	bool		skip_header;	/* a header line is still to come */
	int			natts;
	bool		line_is_copy_text;	/* plain lines are COPY text as is */

	/* the input: received bytes, taken up to input_pos */
	StringInfoData input;
	int			input_pos;
	int			scanned;		/* bytes from input_pos on with no newline */
	StringInfoData message;
	bool		done;			/* the client sent CopyDone */
	int64		bytes_received;	/* for pg_stat_progress_copy */

	/* the current row */
	StringInfoData split;		/* the line's copy, cut into fields */
	char	  **fields;
	const char *line;
	int			line_len;
	uint64		lineno;

	/* after a hand-off: PostgreSQL's reader, and whether its input ended */
	CopyFromState cstate;
	bool		source_ended;
} CopyReader;

extern CopyReader *ShardloadCopyReaderBegin(const CopyFormatOptions *opts, int natts);
extern CopyReaderResult ShardloadCopyReaderNext(CopyReader *reader);
extern void ShardloadCopyReaderHandOff(CopyReader *reader, CopyFromState cstate);
extern int	ShardloadCopyReaderSource(void *outbuf, int minread, int maxread);
extern void ShardloadCopyReaderFinish(CopyReader *reader);

#endif							/* SHARDLOAD_COPY_READER_H */
