/*-------------------------------------------------------------------------
 * reject.c
 *	  With on_error => 'reject', rows that cannot be loaded are set aside at
 *	  capture, each with its line, SQLSTATE, message and raw text, and the
 *	  other rows go on.  Checked here: the text of every column parses as
 *	  the column's type, NOT NULL columns of the target hold a value (and
 *	  in capture.c: the key fits a partition).  Each row costs one input
 *	  call per column that arrived as text; the set-aside rows cost one
 *	  INSERT each, so the cost is linear in the batch.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "metadata.h"
#include "reject.h"

static bool input_parses(RowChecker *checker, int col, const char *value,
						 char *sqlstate, char **message);

/*
 * ShardloadRowCheckerCreate
 *	  Checks for the target's insertable columns.  source_types are the
 *	  types rows arrive as (NULL: all text); a column that arrives as its
 *	  own type needs no input check.
 */
RowChecker *
ShardloadRowCheckerCreate(ShardloadRouter *router, Oid *source_types)
{
	RowChecker *checker = palloc0(sizeof(RowChecker));
	TupleDesc	tupdesc = RelationGetDescr(router->rel);
	int			n = router->ncolumns;

	checker->router = router;
	checker->check_input = palloc0(sizeof(bool) * n);
	checker->not_null = palloc0(sizeof(bool) * n);
	checker->is_domain = palloc0(sizeof(bool) * n);
	checker->input = palloc0(sizeof(FmgrInfo) * n);
	checker->ioparam = palloc0(sizeof(Oid) * n);
	checker->typmod = palloc0(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, router->columns[i] - 1);
		Oid			func;

		checker->not_null[i] = att->attnotnull;
		checker->check_input[i] = source_types == NULL ||
			source_types[i] != att->atttypid || att->atttypmod >= 0;
		checker->is_domain[i] = get_typtype(att->atttypid) == TYPTYPE_DOMAIN;
		checker->typmod[i] = att->atttypmod;
		getTypeInputInfo(att->atttypid, &func, &checker->ioparam[i]);
		fmgr_info(func, &checker->input[i]);
	}
	return checker;
}

/*
 * ShardloadRowCheckerCheck
 *	  True if the row passes; else fills sqlstate (6 bytes) and a palloc'd
 *	  message naming the column.  Throws errors other than bad data.
 */
bool
ShardloadRowCheckerCheck(RowChecker *checker, char **values, char *sqlstate, char **message)
{
	ShardloadRouter *router = checker->router;

	for (int i = 0; i < router->ncolumns; i++)
	{
		if (values[i] == NULL)
		{
			if (!checker->not_null[i])
				continue;
			strlcpy(sqlstate, "23502", 6);
			*message = psprintf("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
								router->column_names[i], RelationGetRelationName(router->rel));
			return false;
		}
		if (checker->check_input[i] &&
			!input_parses(checker, i, values[i], sqlstate, message))
			return false;
	}
	return true;
}

/*
 * input_parses
 *	  Run the column's input function on value and catch a data error.
 *	  A domain's input may run SQL, so it gets a subtransaction; base type
 *	  input functions only raise errors and allocate memory, so catching
 *	  their error without one is safe.  XXX: PostgreSQL 16's soft input
 *	  errors would make this cheaper and tidier.
 */
static bool
input_parses(RowChecker *checker, int col, const char *value, char *sqlstate,
			 char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		subxact = checker->is_domain[col];
	bool		ok = true;

	if (subxact)
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
	}
	PG_TRY();
	{
		(void) InputFunctionCall(&checker->input[col], (char *) value,
								 checker->ioparam[col], checker->typmod[col]);
		if (subxact)
		{
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			class;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (!subxact && class != ERRCODE_DATA_EXCEPTION &&
			class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
			PG_RE_THROW();		/* a cancel or worse is not bad data */
		FlushErrorState();
		if (subxact)
		{
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (class != ERRCODE_DATA_EXCEPTION &&
				class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
				ReThrowError(edata);
		}
		strlcpy(sqlstate, unpack_sql_state(edata->sqlerrcode), 6);
		*message = psprintf("column \"%s\": %s", checker->router->column_names[col],
							edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * ShardloadRecordReject
 *	  Keep one rejected row with its reason.
 */
void
ShardloadRecordReject(int64 batch_id, int64 line, const char *sqlstate,
					  const char *message, const char *raw_row,
					  int slice_no, int64 slice_line)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, batch_id);
	ShardloadArgInt8(&args, line);
	ShardloadArgText(&args, sqlstate);
	ShardloadArgText(&args, message);
	ShardloadArgText(&args, raw_row);
	/* a row set aside at capture has no slice line */
	ShardloadArg(&args, INT4OID, Int32GetDatum(slice_no), slice_line <= 0);
	ShardloadArg(&args, INT8OID, Int64GetDatum(slice_line), slice_line <= 0);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("INSERT INTO shardload.reject (batch_id, line, sqlstate, message, raw_row,"
					" slice_no, slice_line) VALUES ($1, $2, $3, $4, $5, $6, $7)",
					&args);
	ShardloadCatalogEnd(&session);
}

/*
 * ShardloadRejectRecorded
 *	  Whether the row at a slice line is kept in shardload.reject.
 */
bool
ShardloadRejectRecorded(int64 batch_id, int slice_no, int64 slice_line)
{
	ShardloadCatalogSession session;
	Oid			argtypes[3] = {INT8OID, INT4OID, INT8OID};
	Datum		values[3];
	bool		found;

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(slice_no);
	values[2] = Int64GetDatum(slice_line);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT 1 FROM shardload.reject WHERE batch_id = $1 AND slice_no = $2"
					 " AND slice_line = $3", 3, argtypes, values, NULL);
	found = SPI_processed > 0;
	ShardloadCatalogEnd(&session);
	return found;
}
