/*-------------------------------------------------------------------------
 * inbox.c
 *	  The COPY path: an inbox is a foreign table of pg_shardload's own
 *	  foreign-data wrapper that takes rows for one target, so any COPY
 *	  client (psql \copy, a driver's COPY FROM STDIN, pgloader) or an
 *	  INSERT can submit a batch without a staging table.
 *
 *	  Each COPY or INSERT statement into an inbox is one batch, named by
 *	  the setting shardload.batch_key: its rows are captured exactly as
 *	  submit_csv() captures CSV fields (the inbox's columns are text), and
 *	  the statement's end finishes the batch with the usual idempotency.
 *	  Because the inbox's handler is in this library, writing into an
 *	  inbox loads the library: there is no path on which the rows could
 *	  go to the shards any other way.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/xact.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/varlena.h"

#include "capture.h"
#include "direct_load.h"
#include "inbox.h"
#include "pg_shardload.h"

PG_FUNCTION_INFO_V1(shardload_inbox_handler);
PG_FUNCTION_INFO_V1(shardload_inbox_validator);

/* What an inbox statement keeps between its rows (inbox.h: InboxBatch). */
struct InboxBatch
{
	ShardloadSubmission *sub;
	Capture    *cap;
	DirectLoad *direct;			/* a COPY loaded at once, going direct */
	bool		load_now;		/* a COPY whose batch is loaded when it ends */
	char	   *key;			/* the key as given, "%n" and all */
	int		   *inbox_column;	/* the inbox attribute of each target column */
	char	  **values;
};

/*
 * How many inbox statements of this session have ended under a key: those
 * of committed transactions (statements), and those of the transaction in
 * progress, by the subtransaction that ran them (pending), which count
 * only once it commits, so that a statement rolled back is numbered again.
 */
typedef struct KeyCount
{
	char	   *key;			/* as given, "%n" and all */
	int64		statements;
	List	   *pending;		/* SubTransactionIds, one per statement */
} KeyCount;

char	   *shardload_batch_key = NULL;
static List *key_counts = NIL;	/* of KeyCount, in TopMemoryContext */
static bool callbacks_registered = false;

static void count_at_xact_end(XactEvent event, void *arg);
static void count_at_subxact_end(SubXactEvent event, SubTransactionId mySubid,
								 SubTransactionId parentSubid, void *arg);

static void inbox_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid);
static int	inbox_updatable(Relation rel);
static List *inbox_plan_modify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
							   int subplan_index);
static void inbox_begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
							   List *fdw_private, int subplan_index, int eflags);
static void inbox_begin_copy(ModifyTableState *mtstate, ResultRelInfo *rinfo);
static TupleTableSlot *inbox_insert(EState *estate, ResultRelInfo *rinfo,
									TupleTableSlot *slot, TupleTableSlot *plan_slot);
static void inbox_end(EState *estate, ResultRelInfo *rinfo);
static void read_inbox_options(Relation inbox, ShardloadSubmitArgs *args, char **batch_key,
							   bool *load_now);
static char *statement_batch_key(Relation inbox, KeyCount *count);
static KeyCount *key_count(const char *key);
static int *match_inbox_columns(Relation inbox, ShardloadRouter *router);
static CopyFromState current_copy(Relation inbox);
static void count_statement(const char *key);

/*
 * shardload_inbox_handler
 *	  Inboxes take INSERT and COPY FROM; nothing can read them.
 */
Datum
shardload_inbox_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	/* every scan is refused while the planner sizes it */
	routine->GetForeignRelSize = inbox_rel_size;
	routine->IsForeignRelUpdatable = inbox_updatable;
	routine->PlanForeignModify = inbox_plan_modify;
	routine->BeginForeignModify = inbox_begin_modify;
	routine->ExecForeignInsert = inbox_insert;
	routine->EndForeignModify = inbox_end;
	routine->BeginForeignInsert = inbox_begin_copy;
	routine->EndForeignInsert = inbox_end;
	PG_RETURN_POINTER(routine);
}

/*
 * shardload_inbox_validator
 *	  Options of an inbox (target, batch_key, on_error, reject_limit, policy,
 *	  tenant, atomic, load);
 *	  the wrapper, its server and user mappings take none.
 */
Datum
shardload_inbox_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	bool		has_target = false;
	ListCell   *cell;

	foreach(cell, options)
	{
		DefElem    *def = lfirst_node(DefElem, cell);
		char	   *value = defGetString(def);

		if (catalog != ForeignTableRelationId ||
			!(strcmp(def->defname, "target") == 0 || strcmp(def->defname, "on_error") == 0 ||
			  strcmp(def->defname, "reject_limit") == 0 || strcmp(def->defname, "policy") == 0 ||
			  strcmp(def->defname, "tenant") == 0 || strcmp(def->defname, "batch_key") == 0 ||
			  strcmp(def->defname, "atomic") == 0 || strcmp(def->defname, "load") == 0))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 catalog == ForeignTableRelationId ?
					 errhint("An inbox takes the options target, batch_key, on_error, reject_limit, policy, tenant, atomic and load.") :
					 errhint("Only the inboxes (foreign tables) of pg_shardload's wrapper take options.")));
		has_target |= strcmp(def->defname, "target") == 0;
		if (strcmp(def->defname, "on_error") == 0 &&
			strcmp(value, "stop") != 0 && strcmp(value, "reject") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for on_error: \"%s\"", value),
					 errdetail("Valid values are \"stop\" and \"reject\".")));
		if (strcmp(def->defname, "atomic") == 0)
			(void) defGetBoolean(def);	/* errors on anything but a boolean */
		if (strcmp(def->defname, "load") == 0 &&
			strcmp(value, "now") != 0 && strcmp(value, "worker") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for load: \"%s\"", value),
					 errdetail("Valid values are \"now\" and \"worker\".")));
		if (strcmp(def->defname, "reject_limit") == 0)
		{
			int64		limit = pg_strtoint64(value);

			if (limit < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("reject_limit must not be negative")));
		}
	}
	if (catalog == ForeignTableRelationId && !has_target)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("an inbox needs the option \"target\""),
				 errhint("Make inboxes with shardload.create_inbox(target).")));
	PG_RETURN_VOID();
}

static void
inbox_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot read from inbox \"%s\"", get_rel_name(foreigntableid)),
			 errdetail("An inbox only takes rows: COPY ... FROM or INSERT."),
			 errhint("Read the loaded rows from the target table, the batches from shardload.batches.")));
}

static int
inbox_updatable(Relation rel)
{
	return 1 << CMD_INSERT;
}

/*
 * inbox_plan_modify
 *	  An INSERT into an inbox: nothing can come back from it.
 */
static List *
inbox_plan_modify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
				  int subplan_index)
{
	if (plan->returningLists != NIL && list_nth(plan->returningLists, subplan_index) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an inbox cannot return rows"),
				 errhint("Leave out RETURNING; the batch's rows are counted in shardload.batches.")));
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an inbox does not take ON CONFLICT"),
				 errhint("The batch key makes a repeated statement load once.")));
	return NIL;
}

static void
inbox_begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo, List *fdw_private,
				   int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	rinfo->ri_FdwState = ShardloadInboxBegin(rinfo->ri_RelationDesc, false);
}

static void
inbox_begin_copy(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = ShardloadInboxBegin(rinfo->ri_RelationDesc, true);
}

/*
 * ShardloadIsInbox
 *	  Whether rel is an inbox (a foreign table of pg_shardload's wrapper).
 */
bool
ShardloadIsInbox(Relation rel)
{
	return rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE &&
		GetFdwRoutineForRelation(rel, false)->ExecForeignInsert == inbox_insert;
}

/*
 * ShardloadInboxBegin
 *	  Start the statement's batch: claim its key and start its capture, as
 *	  submit_csv() does, with the inbox's options (copy: for a COPY into
 *	  the inbox, which may load it at once).
 */
InboxBatch *
ShardloadInboxBegin(Relation inbox, bool copy)
{
	ShardloadSubmitArgs *args = palloc0(sizeof(ShardloadSubmitArgs));
	InboxBatch *state = palloc0(sizeof(InboxBatch));
	char	   *inbox_key = NULL;
	bool		load_now = false;

	args->source_kind = "copy";
	args->source = "";
	args->format = "csv";
	args->on_error = "stop";
	read_inbox_options(inbox, args, &inbox_key, &load_now);
	load_now = copy && (load_now || shardload_inbox_load == SHARDLOAD_INBOX_LOAD_NOW);
	state->key = pstrdup(shardload_batch_key && shardload_batch_key[0] != '\0' ?
						 shardload_batch_key : inbox_key ? inbox_key : "");
	args->batch_key = statement_batch_key(inbox, key_count(state->key));

	/* a COPY loaded at once streams while it is captured, if it can */
	state->load_now = load_now;
	if (load_now && ShardloadInboxCopyLoadsNow() && ShardloadDirectAllowed(args))
	{
		state->sub = ShardloadSubmitBegin(args);
		state->direct = ShardloadDirectBegin(state->sub, args->target);
	}
	else
		state->sub = ShardloadSubmitBegin(args);
	state->cap = ShardloadSubmissionCapture(state->sub);
	state->inbox_column = match_inbox_columns(inbox, state->cap->router);
	ShardloadCaptureExpectText(state->cap);
	state->values = palloc(sizeof(char *) * state->cap->router->ncolumns);
	return state;
}

static void
read_inbox_options(Relation inbox, ShardloadSubmitArgs *args, char **batch_key, bool *load_now)
{
	ListCell   *cell;

	foreach(cell, GetForeignTable(RelationGetRelid(inbox))->options)
	{
		DefElem    *def = lfirst_node(DefElem, cell);
		char	   *value = defGetString(def);

		if (strcmp(def->defname, "target") == 0)
			args->target = DatumGetObjectId(DirectFunctionCall1(regclassin, CStringGetDatum(value)));
		else if (strcmp(def->defname, "on_error") == 0)
			args->on_error = value;
		else if (strcmp(def->defname, "reject_limit") == 0)
			args->reject_limit = pg_strtoint64(value);
		else if (strcmp(def->defname, "policy") == 0)
			args->policy = value;
		else if (strcmp(def->defname, "tenant") == 0)
			args->tenant = value;
		else if (strcmp(def->defname, "atomic") == 0)
		{
			args->atomic_given = true;
			args->atomic = defGetBoolean(def);
		}
		else if (strcmp(def->defname, "batch_key") == 0)
			*batch_key = value;
		else if (strcmp(def->defname, "load") == 0)
			*load_now = strcmp(value, "now") == 0;
	}
}

/*
 * statement_batch_key
 *	  The key of this statement's batch: shardload.batch_key, else the
 *	  inbox's batch_key option (for clients that cannot set a setting),
 *	  with "%n" replaced by the statement's number under that key in this
 *	  session, for clients that send one input as several COPY statements.
 */
static char *
statement_batch_key(Relation inbox, KeyCount *count)
{
	StringInfoData key;
	const char *p;

	if (count == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a batch key is needed to load into inbox \"%s\"",
						RelationGetRelationName(inbox)),
				 errdetail("shardload.batch_key is not set, and the inbox has no batch_key option."),
				 errhint("Name the batch first, for example SET shardload.batch_key = 'sales-2026-11-30'; the same key with the same rows loads once.")));
	initStringInfo(&key);
	for (p = count->key; *p; p++)
	{
		if (p[0] == '%' && p[1] == 'n')
		{
			appendStringInfo(&key, INT64_FORMAT,
							 count->statements + list_length(count->pending) + 1);
			p++;
		}
		else
			appendStringInfoChar(&key, *p);
	}
	return key.data;
}

/*
 * key_count
 *	  The count of statements under key in this session (NULL for no key).
 */
static KeyCount *
key_count(const char *key)
{
	ListCell   *cell;
	KeyCount   *count;
	MemoryContext old;

	if (key == NULL || key[0] == '\0')
		return NULL;
	if (!callbacks_registered)
	{
		RegisterXactCallback(count_at_xact_end, NULL);
		RegisterSubXactCallback(count_at_subxact_end, NULL);
		callbacks_registered = true;
	}
	foreach(cell, key_counts)
	{
		count = lfirst(cell);
		if (strcmp(count->key, key) == 0)
			return count;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	count = palloc0(sizeof(KeyCount));
	count->key = pstrdup(key);
	key_counts = lappend(key_counts, count);
	MemoryContextSwitchTo(old);
	return count;
}

/*
 * ShardloadBatchKeyAssign
 *	  Setting shardload.batch_key starts every count of statements again.
 */
void
ShardloadBatchKeyAssign(const char *newval, void *extra)
{
	ListCell   *cell;

	foreach(cell, key_counts)
		list_free(((KeyCount *) lfirst(cell))->pending);
	list_free_deep(key_counts);
	key_counts = NIL;
}

/*
 * count_statement
 *	  An inbox statement under key ended: it counts once its (sub)transaction
 *	  commits.
 */
static void
count_statement(const char *key)
{
	KeyCount   *count = key_count(key);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	count->pending = lappend_int(count->pending, (int) GetCurrentSubTransactionId());
	MemoryContextSwitchTo(old);
}

static void
count_at_xact_end(XactEvent event, void *arg)
{
	ListCell   *cell;

	/* a prepared transaction's fate is unknown: its statements do not count */
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	foreach(cell, key_counts)
	{
		KeyCount   *count = lfirst(cell);

		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
			count->statements += list_length(count->pending);
		list_free(count->pending);
		count->pending = NIL;
	}
}

static void
count_at_subxact_end(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	ListCell   *cell;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(cell, key_counts)
	{
		KeyCount   *count = lfirst(cell);
		ListCell   *pc;

		foreach(pc, count->pending)
		{
			if ((SubTransactionId) lfirst_int(pc) != mySubid)
				continue;
			if (event == SUBXACT_EVENT_ABORT_SUB)
				count->pending = foreach_delete_current(count->pending, pc);
			else
				lfirst_int(pc) = (int) parentSubid;
		}
	}
}

/*
 * match_inbox_columns
 *	  The inbox must have the target's insertable columns, by name, in
 *	  order, as text: a column added to the target later must not silently
 *	  get NULLs.  Returns the inbox attribute index of each.
 */
static int *
match_inbox_columns(Relation inbox, ShardloadRouter *router)
{
	TupleDesc	tupdesc = RelationGetDescr(inbox);
	int		   *attrs = palloc(sizeof(int) * router->ncolumns);
	int			n = 0;
	bool		matches = true;

	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (n >= router->ncolumns || att->atttypid != TEXTOID ||
			strcmp(NameStr(att->attname), router->column_names[n]) != 0)
			matches = false;
		else
			attrs[n] = i;
		n++;
	}
	if (!matches || n != router->ncolumns)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("inbox \"%s\" does not match table \"%s\"",
						RelationGetRelationName(inbox), RelationGetRelationName(router->rel)),
				 errdetail("An inbox has the table's columns (%s), in order, all of type text.",
						   ShardloadColumnListText(router)),
				 errhint("Drop the inbox and make it again with shardload.create_inbox('%s').",
						 RelationGetRelationName(router->rel))));
	return attrs;
}

/*
 * inbox_insert
 *	  One row: its text fields go to the capture, with the COPY input line
 *	  (number and text, for rejects) when a COPY sends it.
 */
static TupleTableSlot *
inbox_insert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
			 TupleTableSlot *plan_slot)
{
	InboxBatch *state = rinfo->ri_FdwState;
	Capture    *cap = state->cap;
	CopyFromState copy = current_copy(rinfo->ri_RelationDesc);
	MemoryContext old = MemoryContextSwitchTo(cap->row_context);
	int64		line_no = cap->rows + 1;
	const char *line = NULL;

	/* the texts live in the row's memory, which the row's end resets */
	slot_getallattrs(slot);
	for (int i = 0; i < cap->router->ncolumns; i++)
	{
		int			att = state->inbox_column[i];

		state->values[i] = slot->tts_isnull[att] ? NULL :
			TextDatumGetCString(slot->tts_values[att]);
	}
	MemoryContextSwitchTo(old);
	if (copy != NULL && !copy->opts.binary)
	{
		line_no = (int64) copy->cur_lineno;
		line = copy->line_buf.data;
	}
	ShardloadInboxAddFields(state, line_no, state->values, line, 0, false);
	return slot;
}

static void
inbox_end(EState *estate, ResultRelInfo *rinfo)
{
	if (rinfo->ri_FdwState == NULL)
		return;
	ShardloadInboxEnd(rinfo->ri_FdwState);
	rinfo->ri_FdwState = NULL;
}

/*
 * ShardloadInboxAddFields
 *	  One row: its text fields, in the target's column order, and its input
 *	  line if known (NULL: none), which is the row's COPY text as a payload
 *	  holds it (line_len bytes) if copy_text is true.  Resets the capture's
 *	  row memory.
 */
void
ShardloadInboxAddFields(InboxBatch *state, int64 line_no, char **fields, const char *line,
						int line_len, bool copy_text)
{
	Capture    *cap = state->cap;
	MemoryContext old = MemoryContextSwitchTo(cap->row_context);

	cap->raw_line = line;
	cap->copy_line = copy_text ? line : NULL;
	cap->copy_line_len = line_len;
	ShardloadCaptureAddRow(cap, line_no, fields, (Datum) 0,
						   fields[cap->router->key_column] == NULL, false);
	cap->raw_line = NULL;
	cap->copy_line = NULL;
	MemoryContextSwitchTo(old);
	MemoryContextReset(cap->row_context);
}

/*
 * ShardloadInboxEnd
 *	  The statement's rows are all in: finish the batch.
 */
void
ShardloadInboxEnd(InboxBatch *state)
{
	int64		batch_id = ShardloadDirectEnd(state->sub, state->direct);

	if (state->load_now)
		ShardloadInboxCopyBatch(batch_id);
	/* looked up again: a SET in the statement may have reset the counts */
	count_statement(state->key);
}

/*
 * current_copy
 *	  The COPY FROM into inbox that is calling us, if any: it names itself on the
 *	  error context stack, which is how its input line can be kept with a
 *	  rejected row just as submit_csv() keeps it.
 */
static CopyFromState
current_copy(Relation inbox)
{
	for (ErrorContextCallback *cb = error_context_stack; cb != NULL; cb = cb->previous)
		if (cb->callback == CopyFromErrorCallback)
		{
			CopyFromState copy = (CopyFromState) cb->arg;

			/* not another COPY whose trigger inserts into the inbox */
			return copy->rel == inbox ? copy : NULL;
		}
	return NULL;
}
