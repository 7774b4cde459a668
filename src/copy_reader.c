/*-------------------------------------------------------------------------
 * copy_reader.c
 *	  A reader for the common case of COPY FROM STDIN in text format: it
 *	  takes CopyData messages from the client and splits lines that need no
 *	  unescaping (no backslash but a NULL marker, no carriage return) where
 *	  they lie, with no copy per field and no per-byte state machine.
 *
 *	  Any other line (an escape, the end-of-data marker, a carriage return,
 *	  too few or too many fields, bytes that are not valid in the server
 *	  encoding) is where this reader stops: the rest of the input, from that
 *	  line on, goes to PostgreSQL's own COPY reader (ShardloadCopyReaderSource
 *	  as its data source), which then reads it exactly as COPY would,
 *	  errors and all.  So this reader never has to know COPY's rules beyond
 *	  the plain case.
 *
 *	  It reads only input already in the server encoding: the caller checks
 *	  that the client sends that encoding.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/copyfrom_internal.h"
#include "commands/progress.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "copy_reader.h"

static void receive_more(CopyReader *reader);
static bool split_line(CopyReader *reader, char *line, int len);
static int	scan_to_marker(const char *data, int len, bool *marker, bool *pending);

/* the reader whose input PostgreSQL's reader may take over (one at a time) */
static CopyReader *source_reader = NULL;

/*
 * ShardloadCopyReaderBegin
 *	  Tell the client to send its rows (natts columns, text), and get ready
 *	  to read them with opts (text format, in the server encoding).
 */
CopyReader *
ShardloadCopyReaderBegin(const CopyFormatOptions *opts, int natts)
{
	CopyReader *reader = palloc0(sizeof(CopyReader));
	StringInfoData msg;

	reader->delim = opts->delim[0];
	reader->null_print = opts->null_print;
	reader->null_print_len = opts->null_print_len;
	/* a marker with a backslash in it may escape what follows, unless \N */
	reader->null_is_plain = strchr(opts->null_print, '\\') == NULL ||
		strcmp(opts->null_print, "\\N") == 0;
	reader->skip_header = opts->header_line != COPY_HEADER_FALSE;
	reader->natts = natts;
	reader->fields = palloc(sizeof(char *) * natts);
	/* a plain line is already COPY text as a capture writes it */
	reader->line_is_copy_text = reader->delim == '\t' && strcmp(opts->null_print, "\\N") == 0;
	initStringInfo(&reader->input);
	initStringInfo(&reader->message);
	initStringInfo(&reader->split);

	/* CopyInResponse, as COPY sends it for text: every column as text */
	pq_beginmessage(&msg, 'G');
	pq_sendbyte(&msg, 0);
	pq_sendint16(&msg, natts);
	for (int i = 0; i < natts; i++)
		pq_sendint16(&msg, 0);
	pq_endmessage(&msg);
	pq_flush();
	source_reader = reader;
	return reader;
}

/*
 * ShardloadCopyReaderNext
 *	  The next row: COPY_READER_ROW with reader->fields (NULL for the NULL
 *	  marker), reader->line (the line as sent, NUL-terminated) and
 *	  reader->lineno set; COPY_READER_END at the end of the input; or
 *	  COPY_READER_HAND_OFF: the next line is not plain, and the input from
 *	  there on is for PostgreSQL's reader.
 */
CopyReaderResult
ShardloadCopyReaderNext(CopyReader *reader)
{
	reader->line = NULL;		/* no line read yet, for error messages */
	for (;;)
	{
		char	   *start = reader->input.data + reader->input_pos;
		int			avail = reader->input.len - reader->input_pos;
		char	   *newline;
		int			len;

		/* a line that comes in several messages is scanned once */
		newline = memchr(start + reader->scanned, '\n', avail - reader->scanned);
		if (newline == NULL && !reader->done)
		{
			/* a carriage return: not plain, whatever follows */
			if (memchr(start + reader->scanned, '\r', avail - reader->scanned) != NULL)
				return COPY_READER_HAND_OFF;
			reader->scanned = avail;
			receive_more(reader);
			continue;
		}
		if (newline == NULL && avail == 0)
			return COPY_READER_END;
		/* the last line may have no newline */
		len = newline ? newline - start : avail;
		if (!split_line(reader, start, len))
			return COPY_READER_HAND_OFF;
		start[len] = '\0';		/* the newline, or the input's terminator */
		reader->input_pos += newline ? len + 1 : len;
		reader->scanned = 0;
		reader->lineno++;
		if (reader->skip_header)
		{
			reader->skip_header = false;
			continue;
		}
		reader->line = start;
		reader->line_len = len;
		return COPY_READER_ROW;
	}
}

/*
 * ShardloadCopyReaderHandOff
 *	  PostgreSQL's reader, cstate (reading from ShardloadCopyReaderSource),
 *	  takes over at the current line: it goes on counting lines from here,
 *	  and expects the newlines this reader has seen.
 */
void
ShardloadCopyReaderHandOff(CopyReader *reader, CopyFromState cstate)
{
	Assert(source_reader == reader);
	reader->cstate = cstate;
	cstate->cur_lineno = reader->lineno;
	if (reader->lineno > 0)
		cstate->eol_type = EOL_NL;
}

/*
 * ShardloadCopyReaderSource
 *	  The data source of PostgreSQL's reader after a hand-off: the input
 *	  not yet taken, then the client's further messages.  0 at the end.
 *
 *	  From the client, COPY stops reading at the end-of-data marker (\.)
 *	  and skips the rest of the input; from a data source it would read on.
 *	  So the source ends with the marker: the bytes before it go first, so
 *	  that PostgreSQL's reader has seen every line before it (and knows
 *	  their newline kind), then the marker with as many bytes as that
 *	  reader looks at after it (two after \r\n lines, else one).
 */
int
ShardloadCopyReaderSource(void *outbuf, int minread, int maxread)
{
	CopyReader *reader = source_reader;
	char	   *data;
	int			avail;
	int			n;

	if (reader->source_ended)
		return 0;
	for (;;)
	{
		bool		marker;
		bool		pending;

		data = reader->input.data + reader->input_pos;
		avail = reader->input.len - reader->input_pos;
		n = scan_to_marker(data, Min(maxread, avail), &marker, &pending);
		/* a backslash at the end may start a marker: held back */
		if (pending && !(reader->done && n == avail))
			n--;
		if (n > 0)
			break;
		if (marker)
		{
			int			need = 2 + (reader->cstate->eol_type == EOL_CRNL ? 2 : 1);

			if (avail >= need || reader->done)
			{
				n = Min(need, avail);
				reader->source_ended = true;
				break;
			}
		}
		else if (reader->done)
			return 0;
		receive_more(reader);
	}
	memcpy(outbuf, data, n);
	reader->input_pos += n;
	return n;
}

/*
 * scan_to_marker
 *	  The length of data (len bytes) before its first end-of-data marker,
 *	  each backslash taking the byte after it as COPY's text format does;
 *	  *marker: there is one; *pending: the last byte is a backslash that
 *	  takes the byte after it.
 */
static int
scan_to_marker(const char *data, int len, bool *marker, bool *pending)
{
	bool		escaped = false;

	*marker = false;
	for (int i = 0; i < len; i++)
	{
		if (escaped)
		{
			escaped = false;
			if (data[i] == '.')
			{
				*marker = true;
				*pending = false;
				return i - 1;
			}
		}
		else
			escaped = data[i] == '\\';
	}
	*pending = escaped;
	return len;
}

/*
 * ShardloadCopyReaderFinish
 *	  After PostgreSQL's reader saw the end-of-data marker, skip what the
 *	  client still sends up to CopyDone, as COPY does.
 */
void
ShardloadCopyReaderFinish(CopyReader *reader)
{
	while (!reader->done)
	{
		reader->input_pos = reader->input.len;
		receive_more(reader);
	}
	source_reader = NULL;
}

/*
 * receive_more
 *	  Append the client's next CopyData to the input (or note CopyDone),
 *	  with COPY's own handling of the other messages and errors.
 */
static void
receive_more(CopyReader *reader)
{
	/* keep only what is not taken yet */
	if (reader->input_pos > 0)
	{
		reader->input.len -= reader->input_pos;
		memmove(reader->input.data, reader->input.data + reader->input_pos, reader->input.len);
		reader->input.data[reader->input.len] = '\0';
		reader->input_pos = 0;
	}
	for (;;)
	{
		int			mtype;
		int			maxmsglen;

		HOLD_CANCEL_INTERRUPTS();
		pq_startmsgread();
		mtype = pq_getbyte();
		if (mtype == EOF)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("unexpected EOF on client connection with an open transaction")));
		switch (mtype)
		{
			case 'd':			/* CopyData */
				maxmsglen = PQ_LARGE_MESSAGE_LIMIT;
				break;
			case 'c':			/* CopyDone */
			case 'f':			/* CopyFail */
			case 'H':			/* Flush */
			case 'S':			/* Sync */
				maxmsglen = PQ_SMALL_MESSAGE_LIMIT;
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("unexpected message type 0x%02X during COPY from stdin", mtype)));
				maxmsglen = 0;	/* keep compiler quiet */
				break;
		}
		if (pq_getmessage(&reader->message, maxmsglen))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("unexpected EOF on client connection with an open transaction")));
		RESUME_CANCEL_INTERRUPTS();
		switch (mtype)
		{
			case 'd':
				appendBinaryStringInfo(&reader->input, reader->message.data, reader->message.len);
				reader->bytes_received += reader->message.len;
				pgstat_progress_update_param(PROGRESS_COPY_BYTES_PROCESSED, reader->bytes_received);
				return;
			case 'c':
				reader->done = true;
				return;
			case 'f':
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("COPY from stdin failed: %s", pq_getmsgstring(&reader->message))));
				break;
			default:
				/* Flush and Sync: ignored, as COPY does, for client libraries */
				break;
		}
	}
}

/*
 * split_line
 *	  Split a plain line (len bytes at line) into reader->fields, in a copy
 *	  of it; false if it is not plain.
 */
static bool
split_line(CopyReader *reader, char *line, int len)
{
	char	   *field;
	char	   *end;
	int			nfields = 0;
	bool		escapes;

	if (memchr(line, '\r', len) != NULL ||
		!pg_verify_mbstr(GetDatabaseEncoding(), line, len, true))
		return false;
	escapes = memchr(line, '\\', len) != NULL;
	if (escapes && !reader->null_is_plain)
		return false;
	resetStringInfo(&reader->split);
	appendBinaryStringInfo(&reader->split, line, len);
	field = reader->split.data;
	end = field + len;
	for (;;)
	{
		char	   *stop = memchr(field, reader->delim, end - field);
		int			flen;

		if (stop == NULL)
			stop = end;			/* the last field */
		if (nfields == reader->natts)
			return false;
		*stop = '\0';
		flen = stop - field;
		/* the NULL marker is matched as sent, as COPY matches it */
		if (flen == reader->null_print_len && memcmp(field, reader->null_print, flen) == 0)
			reader->fields[nfields++] = NULL;
		else if (escapes && memchr(field, '\\', flen) != NULL)
			return false;
		else
			reader->fields[nfields++] = field;
		if (stop == end)
			break;
		field = stop + 1;
	}
	return nfields == reader->natts;
}
