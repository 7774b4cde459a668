/*-------------------------------------------------------------------------
 * capture.c
 *	  A batch's rows as COPY text lines, routed to their slice at capture,
 *	  hashed, and stored in shardload.payload in chunks.
 *
 *	  Routing at capture fixes each row's slice for good: every later
 *	  attempt sends exactly the same slices, whatever happens to the
 *	  partitions in between, so a slice's ledger row can stand for it.
 *	  Memory is one chunk buffer per slice, whatever the batch size.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "foreign/foreign.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "capture.h"
#include "compat.h"
#include "copy_binary.h"
#include "metadata.h"
#include "payload.h"
#include "pg_shardload.h"
#include "route_check.h"

static void append_line(Capture *cap, char **values, const bool *plain);
static void take_line(Capture *cap, const char *line, int len);
static void end_line(Capture *cap);
static void hash_pending(Capture *cap);
static void append_binary(Capture *cap, CaptureSlice *slice, char **values);
static void flush_slice(Capture *cap, int slice_no);
static void record_reject(Capture *cap, int64 line_no, const char *sqlstate,
						  const char *message);

/*
 * ShardloadCaptureCreate
 *	  Start capturing rows for batch_id (in the current memory context).
 */
Capture *
ShardloadCaptureCreate(ShardloadRouter *router, int64 batch_id, bool write_payload,
			  bool reject_mode)
{
	Capture    *cap = palloc0(sizeof(Capture));

	cap->reject_mode = reject_mode;
	cap->batch_id = batch_id;
	cap->write_payload = write_payload;
	cap->router = router;
	cap->nslices = router->nparts + 1;
	cap->slices = palloc0(sizeof(CaptureSlice) * cap->nslices);
	for (int i = 0; i < cap->nslices; i++)
	{
		initStringInfo(&cap->slices[i].buf);
		initStringInfo(&cap->slices[i].lines);
		initStringInfo(&cap->slices[i].bin);
	}
	initStringInfo(&cap->line);
	initStringInfo(&cap->to_hash);
	cap->hash = pg_cryptohash_create(PG_SHA256);
	if (cap->hash == NULL || pg_cryptohash_init(cap->hash) < 0)
		elog(ERROR, "could not initialize SHA-256 context");
	cap->context = CurrentMemoryContext;
	cap->row_context = AllocSetContextCreate(CurrentMemoryContext,
											 "pg_shardload capture row",
											 ALLOCSET_DEFAULT_SIZES);
	return cap;
}

/*
 * ShardloadCaptureBinaryBegin
 *	  A direct load (cap->sink set) whose column types can travel in binary
 *	  writes its chunks in binary too (shardload.binary_copy): true if so.
 *	  The source then says where each row's values are.
 */
bool
ShardloadCaptureBinaryBegin(Capture *cap)
{
	ShardloadRouter *router = cap->router;
	char	   *type_list;
	MemoryContext old;

	if (cap->sink == NULL || !shardload_binary_copy)
		return false;
	old = MemoryContextSwitchTo(cap->context);
	cap->binary_types = ShardloadBinaryTypes(router->rel, router->ncolumns, router->columns,
											 &type_list);
	cap->binary_type_list = type_list;
	MemoryContextSwitchTo(old);
	return cap->binary_types != NULL;
}

/*
 * ShardloadAppendCopyText
 *	  Append one value in COPY text format: backslash, tab, newline and
 *	  carriage return escaped, NULL as \N.  Every other byte goes as it is,
 *	  so the shard's input function sees exactly the text it was given.
 */
void
ShardloadAppendCopyText(StringInfo buf, const char *value)
{
	const char *p = value;

	if (value == NULL)
	{
		appendBinaryStringInfo(buf, "\\N", 2);
		return;
	}
	for (;;)
	{
		/* most values have nothing to escape: copy runs in one go */
		size_t		run = strcspn(p, "\\\t\n\r");
		char		escaped;

		appendBinaryStringInfo(buf, p, run);
		p += run;
		if (*p == '\0')
			return;
		switch (*p)
		{
			case '\\':
				escaped = '\\';
				break;
			case '\t':
				escaped = 't';
				break;
			case '\n':
				escaped = 'n';
				break;
			default:
				escaped = 'r';
				break;
		}
		appendStringInfoCharMacro(buf, '\\');
		appendStringInfoCharMacro(buf, escaped);
		p++;
	}
}

/*
 * append_line
 *	  The row's COPY text line into cap->line, hashed.  plain: the columns
 *	  whose values need no escaping (NULL: none known).
 */
static void
append_line(Capture *cap, char **values, const bool *plain)
{
	resetStringInfo(&cap->line);
	for (int i = 0; i < cap->router->ncolumns; i++)
	{
		if (i > 0)
			appendStringInfoCharMacro(&cap->line, '\t');
		if (plain && plain[i] && values[i] != NULL)
			appendBinaryStringInfo(&cap->line, values[i], strlen(values[i]));
		else
			ShardloadAppendCopyText(&cap->line, values[i]);
	}
	end_line(cap);
}

/*
 * take_line
 *	  A row the source gave as a payload line already into cap->line, hashed.
 */
static void
take_line(Capture *cap, const char *line, int len)
{
	resetStringInfo(&cap->line);
	appendBinaryStringInfo(&cap->line, line, len);
	end_line(cap);
}

/*
 * end_line
 *	  End the row in cap->line and add it to the batch's hash.
 */
static void
end_line(Capture *cap)
{
	appendStringInfoCharMacro(&cap->line, '\n');
	/* hashed a buffer at a time: the hash of the same bytes, fewer calls */
	appendBinaryStringInfo(&cap->to_hash, cap->line.data, cap->line.len);
	if (cap->to_hash.len >= CAPTURE_HASH_BYTES)
		hash_pending(cap);
	cap->rows++;
}

/*
 * hash_pending
 *	  Add the lines waiting in cap->to_hash to the batch's hash.
 */
static void
hash_pending(Capture *cap)
{
	if (pg_cryptohash_update(cap->hash, (uint8 *) cap->to_hash.data, cap->to_hash.len) < 0)
		elog(ERROR, "could not update SHA-256 context");
	resetStringInfo(&cap->to_hash);
}

/*
 * ShardloadCaptureAddRow
 *	  Add one row: values are the insertable columns' text forms (NULL for
 *	  SQL NULL), fixed forms already (key_known: key is the key's value)
 *	  or text input, which is checked (reject mode) and recoded here.  In
 *	  reject mode a row that cannot be loaded is kept in shardload.reject
 *	  instead.  Flushes a full chunk.
 */
void
ShardloadCaptureAddRow(Capture *cap, int64 line_no, char **values, Datum key, bool key_isnull,
			  bool key_known)
{
	ShardloadRouter *router = cap->router;
	int			slice_no;
	CaptureSlice *slice;
	char		sqlstate[6];
	char	   *message;
	const char *copy_line = cap->copy_line;

	if (cap->checker && !ShardloadRowCheckerCheck(cap->checker, values, sqlstate, &message))
	{
		ShardloadCaptureRejectRow(cap, line_no, values, sqlstate, message);
		return;
	}
	if (cap->recoder && cap->recoder->any)
	{
		/* text read as this session reads it, written in the fixed forms */
		for (int i = 0; i < router->ncolumns; i++)
		{
			Datum		parsed;
			char	   *given = values[i];

			if (!cap->recoder->recode[i] || values[i] == NULL)
				continue;
			parsed = ShardloadRecodeValue(cap->recoder, i, &values[i]);
			if (cap->recoded_values)
				cap->recoded_values[i] = parsed;
			if (i == router->key_column)
			{
				key = parsed;
				key_known = true;
			}
			if (values[i] != given && strcmp(values[i], given) != 0)
				copy_line = NULL;	/* the line as given is not the fixed form */
		}
	}
	if (copy_line)
		take_line(cap, copy_line, cap->copy_line_len);
	else
		append_line(cap, values, cap->plain);
	if (!key_known && !key_isnull)
		key = ShardloadRouterParseKey(router, values[router->key_column]);
	slice_no = ShardloadRoute(router, key, key_isnull) + 1;
	slice = &cap->slices[slice_no];

	if (slice_no == 0)
	{
		const char *keytext = values[router->key_column];
		char	   *detail = psprintf("(%s) = (%s)",
									  quote_identifier(router->column_names[router->key_column]),
									  keytext ? keytext : "null");

		if (cap->checker)
		{
			record_reject(cap, line_no, "23514",
						  psprintf("no partition of relation \"%s\" found for row: partition key %s",
								   RelationGetRelationName(router->rel), detail));
			return;
		}
		if (slice->rows == 0)
		{
			slice->first_line = line_no;
			slice->first_detail = MemoryContextStrdup(cap->context, detail);
		}
	}
	slice->rows++;
	slice->bytes += cap->line.len;
	if (!cap->write_payload)
		return;
	appendBinaryStringInfo(&slice->buf, cap->line.data, cap->line.len);
	/* each row's input line, so errors on a shard can name it */
	appendBinaryStringInfo(&slice->lines, (char *) &line_no, sizeof(int64));
	if (cap->binary_types && slice_no > 0 && !slice->no_binary)
		append_binary(cap, slice, values);
	if (slice->buf.len >= SHARDLOAD_CHUNK_BYTES)
		flush_slice(cap, slice_no);
	if (cap->tick && (cap->tick_bytes += cap->line.len) >= CAPTURE_TICK_BYTES)
	{
		cap->tick_bytes = 0;
		cap->tick(cap->sink_arg);
	}
}

/*
 * append_binary
 *	  The row in COPY binary too, into its slice's binary chunk.  A row as
 *	  text whose values this cannot write (copy_binary.c) ends the binary
 *	  form for the capture: its direct load then goes the usual way.
 */
static void
append_binary(Capture *cap, CaptureSlice *slice, char **values)
{
	if (slice->next_chunk == 0 && slice->bin.len == 0)
		ShardloadBinaryHeader(&slice->bin);
	if (cap->recoded_values == NULL)
		ShardloadBinaryAppendRow(&slice->bin, cap->router->ncolumns, cap->binary_types,
								 cap->row_values, cap->row_nulls);
	else if (!ShardloadBinaryAppendText(&slice->bin, cap->router->ncolumns, cap->binary_types,
										values, cap->recoder->recode, cap->recoded_values))
	{
		cap->binary_types = NULL;
		cap->binary_broken = true;
	}
}

/*
 * ShardloadCaptureRejectRow
 *	  Keep a row that cannot be loaded (values: its text, for the hash and
 *	  the record) in shardload.reject with its reason.
 */
void
ShardloadCaptureRejectRow(Capture *cap, int64 line_no, char **values, const char *sqlstate,
				 const char *message)
{
	append_line(cap, values, NULL);
	record_reject(cap, line_no, sqlstate, message);
}

/*
 * record_reject
 *	  Keep the current row (cap->line) in shardload.reject with its reason:
 *	  the input line as given when the source has lines, else its COPY text.
 */
static void
record_reject(Capture *cap, int64 line_no, const char *sqlstate, const char *message)
{
	cap->rejected++;
	if (!cap->write_payload)
		return;
	if (cap->raw_line == NULL)
		cap->line.data[--cap->line.len] = '\0';	/* drop the newline */
	ShardloadRecordReject(cap->batch_id, line_no, sqlstate, message,
						  cap->raw_line ? pchomp(cap->raw_line) : cap->line.data, 0, 0);
}

/*
 * flush_slice
 *	  Store a slice's buffered lines as its next payload chunk (or hand
 *	  them to a direct load's sink).
 */
static void
flush_slice(Capture *cap, int slice_no)
{
	CaptureSlice *slice = &cap->slices[slice_no];
	bytea	   *data;
	bytea	   *lines;

	if (slice->buf.len == 0)
		return;
	if (cap->sink)
	{
		cap->sink(cap->sink_arg, slice_no, slice->next_chunk++, &slice->buf, &slice->lines,
				  &slice->bin);
		resetStringInfo(&slice->buf);
		resetStringInfo(&slice->lines);
		resetStringInfo(&slice->bin);
		return;
	}
	resetStringInfo(&slice->bin);	/* binary rows of a direct load given up */
	data = palloc(VARHDRSZ + slice->buf.len);
	SET_VARSIZE(data, VARHDRSZ + slice->buf.len);
	memcpy(VARDATA(data), slice->buf.data, slice->buf.len);
	lines = palloc(VARHDRSZ + slice->lines.len);
	SET_VARSIZE(lines, VARHDRSZ + slice->lines.len);
	memcpy(VARDATA(lines), slice->lines.data, slice->lines.len);
	resetStringInfo(&slice->lines);
	ShardloadPayloadStore(cap->batch_id, slice_no, slice->next_chunk, data, lines);
	pfree(data);
	pfree(lines);
	slice->next_chunk++;
	resetStringInfo(&slice->buf);
}

/*
 * ShardloadCaptureFinish
 *	  Flush every slice and return the content hash (hex SHA-256 of all
 *	  lines in input order).
 */
char *
ShardloadCaptureFinish(Capture *cap)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (cap->write_payload)
		for (int i = 0; i < cap->nslices; i++)
			flush_slice(cap, i);
	hash_pending(cap);
	if (pg_cryptohash_final(cap->hash, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not finish SHA-256 context");
	pg_cryptohash_free(cap->hash);
	cap->hash = NULL;
	hex_encode((char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return hex;
}

/*
 * ShardloadCaptureRecordSlices
 *	  Insert a shardload.slice row for every slice that got rows, naming
 *	  its partition and, for a foreign partition, its server.
 */
void
ShardloadCaptureRecordSlices(Capture *cap)
{
	ShardloadCatalogSession session;

	ShardloadCatalogBegin(&session);
	for (int i = 0; i < cap->nslices; i++)
	{
		CaptureSlice *slice = &cap->slices[i];
		ShardloadArgs args = {0};
		Oid			part = i == 0 ? InvalidOid : cap->router->part_oids[i - 1];
		bool		unroutable = i == 0;	/* slice 0: rows no partition takes */

		if (slice->rows == 0)
			continue;
		ShardloadArgInt8(&args, cap->batch_id);
		ShardloadArgInt4(&args, i);
		ShardloadArg(&args, OIDOID, ObjectIdGetDatum(part), unroutable);
		ShardloadArgText(&args, unroutable ? NULL :
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(part)),
													get_rel_name(part)));
		ShardloadArgText(&args, !unroutable && get_rel_relkind(part) == RELKIND_FOREIGN_TABLE ?
						 GetForeignServer(GetForeignTable(part)->serverid)->servername : NULL);
		ShardloadArgInt8(&args, slice->rows);
		ShardloadArgInt8(&args, slice->bytes);
		ShardloadArg(&args, INT8OID, Int64GetDatum(slice->first_line), !unroutable);
		ShardloadArgText(&args, unroutable ? slice->first_detail : NULL);
		ShardloadArgText(&args, unroutable ? NULL : ShardloadSliceSignature(part, cap->router));
		ShardloadSpiRun("INSERT INTO shardload.slice (batch_id, slice_no, partition,"
						" partition_name, shard, rows, bytes, first_row_line,"
						" first_row_detail, route_signature, state)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
						" CASE WHEN $2 = 0 THEN 'unroutable' ELSE 'pending' END)",
						&args);
	}
	ShardloadCatalogEnd(&session);
}
