/*-------------------------------------------------------------------------
 * capture_source.c
 *	  The two ways rows enter a capture: a query's result, read straight
 *	  from the executor through a DestReceiver (no tuplestore), and COPY
 *	  input (CSV or text, inline or from a server file) parsed by
 *	  PostgreSQL's own COPY reader.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "nodes/params.h"
#include "parser/parse_node.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "assign.h"
#include "capture.h"
#include "column_text.h"
#include "pg_shardload.h"
#include "value_forms.h"

/* DestReceiver that feeds a query's rows into a capture. */
typedef struct CaptureReceiver
{
	DestReceiver pub;
	Capture    *cap;
	ShardloadAssigner *assigner;
	ShardloadColumnText *columns;	/* writes the target's column types */
	Datum	   *assigned;		/* a row's values as the target's types */
	bool	   *isnull;
	char	  **values;
} CaptureReceiver;

/* The inline text that copy_from_string() hands to the COPY reader. */
static const char *copy_string_data;
static size_t copy_string_left;

static void receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo);
static bool receiver_receive(TupleTableSlot *slot, DestReceiver *self);
static bool assign_row(CaptureReceiver *receiver, TupleTableSlot *slot, Datum *key,
					   bool *key_isnull, char *sqlstate, char **message);
static bool convert_row(CaptureReceiver *receiver, TupleTableSlot *slot, char *sqlstate,
						char **message);
static void receiver_shutdown(DestReceiver *self);
static void receiver_destroy(DestReceiver *self);
static int	copy_from_string(void *outbuf, int minread, int maxread);
static void copy_input_error_context(void *arg);

/*
 * ShardloadCaptureFromQuery
 *	  Run query (one SELECT-like statement, as the calling role) and add
 *	  every row it returns to cap.  Columns map to the target's insertable
 *	  columns by position, as in INSERT ... SELECT.  A cron job's query gets
 *	  its tick and previous tick as $1 and $2 (ticks non-NULL).
 */
void
ShardloadCaptureFromQuery(Capture *cap, const char *query, Datum *ticks)
{
	Oid			tick_types[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	CaptureReceiver receiver;
	SPIPlanPtr	plan;
	SPIExecuteOptions options;
	int			rc;

	memset(&receiver, 0, sizeof(receiver));
	receiver.pub.receiveSlot = receiver_receive;
	receiver.pub.rStartup = receiver_startup;
	receiver.pub.rShutdown = receiver_shutdown;
	receiver.pub.rDestroy = receiver_destroy;
	receiver.pub.mydest = DestNone;
	receiver.cap = cap;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, ticks ? 2 : 0, ticks ? tick_types : NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare source query: %s",
			 SPI_result_code_string(SPI_result));
	if (list_length(SPI_plan_get_plan_sources(plan)) != 1 || !SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source query must be a single statement that returns rows"),
				 errhint("Pass a SELECT, VALUES or TABLE query, for example $$SELECT * FROM staging$$.")));

	memset(&options, 0, sizeof(options));
	options.dest = (DestReceiver *) &receiver;
	options.read_only = false;
	if (ticks)
	{
		ParamListInfo params = makeParamList(2);

		for (int i = 0; i < 2; i++)
		{
			params->params[i].value = ticks[i];
			params->params[i].isnull = false;
			params->params[i].pflags = PARAM_FLAG_CONST;
			params->params[i].ptype = TIMESTAMPTZOID;
		}
		options.params = params;
	}
	rc = SPI_execute_plan_extended(plan, &options);
	if (rc < 0)
		elog(ERROR, "could not run source query: %s", SPI_result_code_string(rc));
	SPI_finish();
}

static void
receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CaptureReceiver *receiver = (CaptureReceiver *) self;
	ShardloadRouter *router = receiver->cap->router;
	TupleDesc	target = RelationGetDescr(router->rel);
	int			natts = 0;

	for (int i = 0; i < typeinfo->natts; i++)
		if (!TupleDescAttr(typeinfo, i)->attisdropped)
			natts++;
	if (natts != router->ncolumns)
	{
		StringInfoData names;

		initStringInfo(&names);
		for (int i = 0; i < router->ncolumns; i++)
			appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
							 quote_identifier(router->column_names[i]));
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("source query returns %d columns, but table \"%s\" has %d",
						natts, RelationGetRelationName(router->rel), router->ncolumns),
				 errhint("Select the columns in the table's order: %s.", names.data)));
	}

	/* values become the target's types in this session, then fixed text */
	receiver->assigner = ShardloadAssignerCreate(router->rel, router->ncolumns,
												 router->columns, router->column_names,
												 typeinfo);
	receiver->columns = palloc(sizeof(ShardloadColumnText) * router->ncolumns);
	receiver->cap->plain = palloc(sizeof(bool) * router->ncolumns);
	for (int i = 0; i < router->ncolumns; i++)
	{
		ShardloadColumnTextInit(&receiver->columns[i],
								TupleDescAttr(target, router->columns[i] - 1)->atttypid);
		receiver->cap->plain[i] = receiver->columns[i].plain;
	}
	receiver->assigned = palloc(sizeof(Datum) * router->ncolumns);
	receiver->isnull = palloc(sizeof(bool) * router->ncolumns);
	if (receiver->cap->reject_mode)
	{
		/* values arrive as the columns' types: only NULLs are left to check */
		receiver->cap->checker = ShardloadRowCheckerCreate(router, NULL);
		memset(receiver->cap->checker->check_input, 0, sizeof(bool) * router->ncolumns);
	}
	receiver->values = palloc(sizeof(char *) * router->ncolumns);
	if (ShardloadCaptureBinaryBegin(receiver->cap))
	{
		receiver->cap->row_values = receiver->assigned;
		receiver->cap->row_nulls = receiver->isnull;
	}
}

static bool
receiver_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CaptureReceiver *receiver = (CaptureReceiver *) self;
	Capture    *cap = receiver->cap;
	MemoryContext old = MemoryContextSwitchTo(cap->row_context);
	Datum		key = (Datum) 0;
	bool		key_isnull = true;
	int64		line_no = cap->rows + 1;
	char		sqlstate[6];
	char	   *message;

	slot_getallattrs(slot);
	if (!assign_row(receiver, slot, &key, &key_isnull, sqlstate, &message))
	{
		/* the row as the source gave it, in fixed forms (it is hashed) */
		ShardloadFixedFormsBegin();
		for (int i = 0; i < cap->router->ncolumns; i++)
		{
			int			src = receiver->assigner->source_column[i];
			Oid			func;
			bool		isvarlena;

			getTypeOutputInfo(TupleDescAttr(slot->tts_tupleDescriptor, src)->atttypid,
							  &func, &isvarlena);
			receiver->values[i] = slot->tts_isnull[src] ? NULL :
				OidOutputFunctionCall(func, slot->tts_values[src]);
		}
		ShardloadFixedFormsEnd();
		ShardloadCaptureRejectRow(cap, line_no, receiver->values, sqlstate, message);
	}
	else
		ShardloadCaptureAddRow(cap, line_no, receiver->values, key, key_isnull, true);
	if (!receiver->assigner->identity)
		ShardloadAssignerReset(receiver->assigner);
	MemoryContextSwitchTo(old);
	MemoryContextReset(cap->row_context);
	return true;
}

/*
 * assign_row
 *	  The slot's values as the target's types, in their fixed text forms,
 *	  into receiver->values; the key's value too.  In reject mode a value
 *	  the target column refuses (too long, out of range) returns false with
 *	  the reason; otherwise it throws, as INSERT would.
 */
static bool
assign_row(CaptureReceiver *receiver, TupleTableSlot *slot, Datum *key, bool *key_isnull,
		   char *sqlstate, char **message)
{
	ShardloadAssigner *assigner = receiver->assigner;
	Capture    *cap = receiver->cap;
	Datum	   *assigned = receiver->assigned;
	bool	   *isnull = receiver->isnull;

	if (!assigner->identity)
	{
		if (!convert_row(receiver, slot, sqlstate, message))
			return false;
	}
	else
	{
		/* nothing to convert, nothing that can fail */
		for (int i = 0; i < assigner->ncolumns; i++)
		{
			int			src = assigner->source_column[i];

			isnull[i] = slot->tts_isnull[src];
			assigned[i] = slot->tts_values[src];
		}
	}

	ShardloadFixedFormsBegin();
	for (int i = 0; i < assigner->ncolumns; i++)
		receiver->values[i] = isnull[i] ? NULL :
			ShardloadColumnTextValue(&receiver->columns[i], assigned[i]);
	ShardloadFixedFormsEnd();
	*key = assigned[cap->router->key_column];
	*key_isnull = isnull[cap->router->key_column];
	return true;
}

/*
 * convert_row
 *	  The slot's values as the target's types, into receiver->assigned; in
 *	  reject mode false, with the reason, for a value the target refuses.
 */
static bool
convert_row(CaptureReceiver *receiver, TupleTableSlot *slot, char *sqlstate, char **message)
{
	ShardloadAssigner *assigner = receiver->assigner;
	Capture    *cap = receiver->cap;
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *assigned = receiver->assigned;
	bool	   *isnull = receiver->isnull;
	volatile int col = 0;

	PG_TRY();
	{
		for (col = 0; col < assigner->ncolumns; col++)
		{
			int			src = assigner->source_column[col];

			isnull[col] = slot->tts_isnull[src];
			assigned[col] = ShardloadAssign(assigner, col, slot->tts_values[src], &isnull[col]);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			class;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

		/*
		 * Built-in casts only raise and allocate, so their data errors can be
		 * caught without a subtransaction; a cast that may run SQL (a domain's
		 * CHECK) cannot, and throws.
		 */
		if (!cap->reject_mode || assigner->may_run_sql ||
			(class != ERRCODE_DATA_EXCEPTION && class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
			PG_RE_THROW();
		FlushErrorState();
		strlcpy(sqlstate, unpack_sql_state(edata->sqlerrcode), 6);
		*message = psprintf("column \"%s\": %s", cap->router->column_names[col],
							edata->message);
		return false;
	}
	PG_END_TRY();
	return true;
}

static void
receiver_shutdown(DestReceiver *self)
{
	Capture    *cap = ((CaptureReceiver *) self)->cap;

	/* the row's values live in the query's memory, which goes next */
	cap->row_values = NULL;
	cap->row_nulls = NULL;
}

static void
receiver_destroy(DestReceiver *self)
{
}

/*
 * copy_from_string
 *	  COPY data source callback over the inline text of submit_csv.
 */
static int
copy_from_string(void *outbuf, int minread, int maxread)
{
	size_t		n = Min((size_t) maxread, copy_string_left);

	memcpy(outbuf, copy_string_data, n);
	copy_string_data += n;
	copy_string_left -= n;
	return (int) n;
}

/*
 * ShardloadCaptureFromCopy
 *	  Parse COPY input (data inline, or the server file filename) with
 *	  PostgreSQL's COPY reader and add every row to cap.  Only the key field
 *	  is converted; the others travel as the text they arrived as.
 *	  Inline data is already in the server encoding; a file is read in the
 *	  client encoding, as COPY FROM does.
 */
void
ShardloadCaptureFromCopy(Capture *cap, const char *data, const char *filename,
				const char *format, bool header)
{
	ShardloadRouter *router = cap->router;
	ParseState *pstate = make_parsestate(NULL);
	List	   *options = NIL;
	CopyFromState cstate;
	char	  **fields;
	int			nfields;
	ErrorContextCallback errcallback;

	options = lappend(options, makeDefElem("format", (Node *) makeString(pstrdup(format)), -1));
	if (header)
		options = lappend(options, makeDefElem("header", (Node *) makeString("true"), -1));
	if (data != NULL)
	{
		options = lappend(options, makeDefElem("encoding",
											   (Node *) makeString((char *) GetDatabaseEncodingName()), -1));
		copy_string_data = data;
		copy_string_left = strlen(data);
	}

	cstate = BeginCopyFrom(pstate, router->rel, NULL, filename, false,
						   data != NULL ? copy_from_string : NULL,
						   ShardloadColumnNameList(router), options);
	errcallback.callback = copy_input_error_context;
	errcallback.arg = cstate;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	ShardloadCaptureExpectText(cap);
	for (;;)
	{
		MemoryContext old;
		Datum		key = (Datum) 0;	/* parsed from its text */
		bool		key_isnull;
		int64		line_no;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(cap->row_context);
		if (!NextCopyFromRawFields(cstate, &fields, &nfields))
		{
			MemoryContextSwitchTo(old);
			break;
		}
		line_no = (int64) cstate->cur_lineno;
		if (nfields != router->ncolumns)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("line %lld has %d fields, but table \"%s\" has %d columns",
							(long long) line_no, nfields,
							RelationGetRelationName(router->rel), router->ncolumns)));
		key_isnull = fields[router->key_column] == NULL;
		cap->raw_line = cstate->line_buf.data;
		ShardloadCaptureAddRow(cap, line_no, fields, key, key_isnull, false);
		MemoryContextSwitchTo(old);
		MemoryContextReset(cap->row_context);
	}
	error_context_stack = errcallback.previous;
	EndCopyFrom(cstate);
	free_parsestate(pstate);
}

/*
 * ShardloadCaptureExpectText
 *	  Rows will come as text fields, as COPY reads them: parse them as this
 *	  session would (recoded to the fixed forms), and in reject mode check
 *	  each one against its column first.
 */
void
ShardloadCaptureExpectText(Capture *cap)
{
	ShardloadRouter *router = cap->router;

	if (cap->reject_mode)
		cap->checker = ShardloadRowCheckerCreate(router, NULL);
	cap->recoder = ShardloadRecoderCreate(router->rel, router->ncolumns, router->columns);
	if (ShardloadCaptureBinaryBegin(cap))
		cap->recoded_values = MemoryContextAllocZero(cap->context,
													 sizeof(Datum) * router->ncolumns);
}

/*
 * copy_input_error_context
 *	  Name the input line in errors raised while reading COPY input.
 */
static void
copy_input_error_context(void *arg)
{
	CopyFromState cstate = (CopyFromState) arg;

	errcontext("batch input, line %llu", (unsigned long long) cstate->cur_lineno);
}
