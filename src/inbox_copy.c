/*-------------------------------------------------------------------------
 * inbox_copy.c
 *	  A COPY FROM STDIN into an inbox, read here instead of by CopyFrom.
 *
 *	  CopyFrom would turn every field into a text datum, form a tuple and
 *	  hand it to the inbox's handler, which takes the text out again: about
 *	  a quarter of what the coordinator spends on a COPY.  Here PostgreSQL's
 *	  own COPY reader (NextCopyFromRawFields) splits the rows, and their raw
 *	  fields go straight to the capture, which gets the same text either
 *	  way: the batch, its hash and its rejects are the same bytes.
 *
 *	  Only the plain form is read here: all the inbox's columns, from the
 *	  client, text or CSV with the options that only shape the input.
 *	  Anything else (a column list that is not all columns, FREEZE, WHERE,
 *	  FORCE_NULL, binary, a trigger on the inbox, a role that has INSERT on
 *	  some columns only, a read-only transaction) goes through CopyFrom and
 *	  the inbox's handler, which also check and report it as COPY does; so
 *	  does every COPY when another module hooks utility statements below
 *	  this one or permission checks (pgaudit, sepgsql), so that it sees it.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/defrem.h"
#include "commands/progress.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "copy_reader.h"
#include "inbox.h"

static bool plain_options(List *options);
static bool all_columns(Relation rel, List *attlist);
static bool readable_here(Relation rel, List *attlist);
static bool reader_can_read(const CopyFormatOptions *opts);
static uint64 copy_with_reader(ParseState *pstate, CopyStmt *stmt, Relation rel,
							   CopyFormatOptions *opts);
static void reader_error_context(void *arg);
static char *printable_line(const char *line);
static int	dropped_columns(Relation rel);
static uint64 read_rows(CopyFromState cstate, InboxBatch *batch, Relation rel, uint64 processed);

/* What reader_error_context names */
typedef struct ReaderContext
{
	const char *relname;
	CopyReader *reader;
} ReaderContext;

/*
 * ShardloadInboxCopy
 *	  Run stmt, a COPY FROM, here if it is a plain COPY FROM STDIN into an
 *	  inbox: then *processed is its row count and the result true.  false:
 *	  leave it to PostgreSQL (and, for an inbox, its handler).
 */
bool
ShardloadInboxCopy(CopyStmt *stmt, const char *query_string, uint64 *processed)
{
	ParseState *pstate;
	CopyFormatOptions opts = {0};
	Relation	rel;
	Oid			relid;

	/* a permission hook (sepgsql, pgaudit) sees COPY through CopyFrom */
	if (!stmt->is_from || stmt->relation == NULL || stmt->filename != NULL ||
		stmt->is_program || stmt->whereClause != NULL || !plain_options(stmt->options) ||
		ExecutorCheckPerms_hook != NULL)
		return false;
	/* a missing relation is COPY's own error */
	relid = RangeVarGetRelid(stmt->relation, RowExclusiveLock, true);
	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, NoLock);
	if (!readable_here(rel, stmt->attlist))
	{
		table_close(rel, NoLock);
		return false;
	}

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = query_string;
	ProcessCopyOptions(pstate, &opts, true, stmt->options);
	if (reader_can_read(&opts))
		*processed = copy_with_reader(pstate, stmt, rel, &opts);
	else
	{
		/* in the order CopyFrom takes them: the options, then the batch */
		CopyFromState cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, NULL,
											 stmt->attlist, stmt->options);
		InboxBatch *batch = ShardloadInboxBegin(rel, true);

		*processed = read_rows(cstate, batch, rel, 0);
		ShardloadInboxEnd(batch);
		EndCopyFrom(cstate);
	}
	free_parsestate(pstate);
	table_close(rel, NoLock);
	return true;
}

/*
 * reader_can_read
 *	  Whether copy_reader.c can read a COPY with opts: text from the client
 *	  (over the protocol) in the server encoding.
 */
static bool
reader_can_read(const CopyFormatOptions *opts)
{
	int			encoding = opts->file_encoding >= 0 ? opts->file_encoding : pg_get_client_encoding();

	return !opts->binary && !opts->csv_mode && opts->header_line != COPY_HEADER_MATCH &&
		whereToSendOutput == DestRemote && encoding == GetDatabaseEncoding();
}

/*
 * copy_with_reader
 *	  Read the rows with copy_reader.c, and from the first line that is not
 *	  plain on with PostgreSQL's reader.  Returns the row count.
 */
static uint64
copy_with_reader(ParseState *pstate, CopyStmt *stmt, Relation rel, CopyFormatOptions *opts)
{
	CopyReader *reader;
	InboxBatch *batch;
	CopyReaderResult result;
	ErrorContextCallback errcallback;
	ReaderContext context;
	uint64		processed = 0;

	pgstat_progress_start_command(PROGRESS_COMMAND_COPY, RelationGetRelid(rel));
	pgstat_progress_update_param(PROGRESS_COPY_COMMAND, PROGRESS_COPY_COMMAND_FROM);
	pgstat_progress_update_param(PROGRESS_COPY_TYPE, PROGRESS_COPY_TYPE_PIPE);
	reader = ShardloadCopyReaderBegin(opts, RelationGetDescr(rel)->natts - dropped_columns(rel));
	batch = ShardloadInboxBegin(rel, true);

	context.relname = RelationGetRelationName(rel);
	context.reader = reader;
	errcallback.callback = reader_error_context;
	errcallback.arg = &context;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		result = ShardloadCopyReaderNext(reader);
		if (result != COPY_READER_ROW)
			break;
		ShardloadInboxAddFields(batch, (int64) reader->lineno, reader->fields, reader->line,
								reader->line_len, reader->line_is_copy_text);
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, (int64) ++processed);
	}
	error_context_stack = errcallback.previous;

	if (result == COPY_READER_HAND_OFF)
	{
		CopyFromState cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false,
											 ShardloadCopyReaderSource,
											 stmt->attlist, stmt->options);

		ShardloadCopyReaderHandOff(reader, cstate);
		processed = read_rows(cstate, batch, rel, processed);
		/* what follows an end-of-data marker is skipped as COPY skips it */
		errcallback.callback = CopyFromErrorCallback;
		errcallback.arg = (void *) cstate;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;
		ShardloadCopyReaderFinish(reader);
		error_context_stack = errcallback.previous;
		EndCopyFrom(cstate);
	}
	else
		ShardloadCopyReaderFinish(reader);
	ShardloadInboxEnd(batch);
	pgstat_progress_end_command();
	return processed;
}

/*
 * reader_error_context
 *	  Name the line in errors, as COPY does: with its text once it is read.
 */
static void
reader_error_context(void *arg)
{
	ReaderContext *context = arg;
	CopyReader *reader = context->reader;

	if (reader->line == NULL)
		errcontext("COPY %s, line %llu", context->relname,
				   (unsigned long long) reader->lineno + 1);
	else
		errcontext("COPY %s, line %llu: \"%s\"", context->relname,
				   (unsigned long long) reader->lineno, printable_line(reader->line));
}

/*
 * printable_line
 *	  A line cut to 100 bytes for a message, as COPY cuts it.
 */
static char *
printable_line(const char *line)
{
	int			len = strlen(line);
	int			clip;

	if (len <= 100)
		return pstrdup(line);
	clip = pg_mbcliplen(line, len, 100);
	return psprintf("%.*s...", clip, line);
}

static int
dropped_columns(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			dropped = 0;

	for (int i = 0; i < tupdesc->natts; i++)
		dropped += TupleDescAttr(tupdesc, i)->attisdropped ? 1 : 0;
	return dropped;
}

/*
 * plain_options
 *	  Whether a COPY's options only shape its text or CSV input, which
 *	  NextCopyFromRawFields applies.  The others (FORCE_NULL, DEFAULT,
 *	  ON_ERROR, FREEZE, binary, and whatever later versions add) are applied
 *	  by CopyFrom and NextCopyFrom.
 */
static bool
plain_options(List *options)
{
	static const char *const plain[] = {"header", "delimiter", "null", "quote", "escape",
	"encoding"};
	ListCell   *cell;

	foreach(cell, options)
	{
		DefElem    *def = lfirst_node(DefElem, cell);
		bool		known = false;

		if (strcmp(def->defname, "format") == 0)
		{
			/* a malformed option is COPY's to report, after the relation's */
			if (def->arg == NULL || !IsA(def->arg, String) ||
				(strcmp(strVal(def->arg), "text") != 0 && strcmp(strVal(def->arg), "csv") != 0))
				return false;
			continue;
		}
		for (int i = 0; i < lengthof(plain); i++)
			known |= strcmp(def->defname, plain[i]) == 0;
		if (!known)
			return false;
	}
	return true;
}

/*
 * readable_here
 *	  Whether a COPY into rel with attlist can be read here: rel is an
 *	  inbox without triggers, row security or generated columns, and not a
 *	  partition (whose constraint CopyFrom checks), the role may insert
 *	  into it as a whole, the transaction may write, and the COPY names all
 *	  of its columns in order (or none).  CopyFrom reports every other case.
 */
static bool
readable_here(Relation rel, List *attlist)
{
	Oid			relid = RelationGetRelid(rel);

	/* the privilege first, as COPY checks it before it opens the wrapper */
	return rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE && !XactReadOnly &&
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
		ShardloadIsInbox(rel) && rel->trigdesc == NULL && !rel->rd_rel->relispartition &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED &&
		all_columns(rel, attlist);
}

static bool
all_columns(Relation rel, List *attlist)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	ListCell   *cell = list_head(attlist);

	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		/* COPY leaves a generated column out, and computes it */
		if (att->attgenerated)
			return false;
		if (attlist == NIL)
			continue;
		if (cell == NULL || strcmp(strVal(lfirst(cell)), NameStr(att->attname)) != 0)
			return false;
		cell = lnext(attlist, cell);
	}
	return cell == NULL;
}

/*
 * read_rows
 *	  Every row of the COPY to the batch, with COPY's own errors and error
 *	  context for rows with too few or too many fields.  Returns the count.
 */
static uint64
read_rows(CopyFromState cstate, InboxBatch *batch, Relation rel, uint64 processed)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			ncolumns = list_length(cstate->attnumlist);
	ErrorContextCallback errcallback;
	char	  **fields;
	int			nfields;

	errcallback.callback = CopyFromErrorCallback;
	errcallback.arg = (void *) cstate;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (!NextCopyFromRawFields(cstate, &fields, &nfields))
			break;
		if (nfields > ncolumns)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("extra data after last expected column")));
		if (nfields < ncolumns)
		{
			int			attnum = list_nth_int(cstate->attnumlist, nfields);

			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("missing data for column \"%s\"",
							NameStr(TupleDescAttr(tupdesc, attnum - 1)->attname))));
		}
		ShardloadInboxAddFields(batch, (int64) cstate->cur_lineno, fields, cstate->line_buf.data,
								cstate->line_buf.len, false);
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, (int64) ++processed);
	}
	error_context_stack = errcallback.previous;
	return processed;
}
