/*-------------------------------------------------------------------------
 * assign.c
 *	  A source query's values as INSERT ... SELECT would store them in the
 *	  target's columns: converted in the submitting session with the
 *	  assignment casts (a timestamp becomes a timestamptz in the session's
 *	  TimeZone, numeric(10,2) rounds, varchar(n) checks its length, domains
 *	  check their constraints), so that what is captured is the value, not
 *	  text a shard would read under its own settings.
 *
 *	  Text sources (and untyped literals, which a SELECT turns into text)
 *	  are read by the column type's input function in the session, as
 *	  INSERT reads an untyped literal.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "nodes/primnodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "assign.h"

static bool is_text_type(Oid type);

/*
 * ShardloadAssignerCreate
 *	  How to turn each column of source into the type of the target column
 *	  at the same position (columns[i] of rel).  Throws 42804 for a column
 *	  INSERT would not accept either.
 */
ShardloadAssigner *
ShardloadAssignerCreate(Relation rel, int ncolumns, AttrNumber *columns,
						char **column_names, TupleDesc source)
{
	ShardloadAssigner *a = palloc0(sizeof(ShardloadAssigner));
	TupleDesc	target = RelationGetDescr(rel);
	int			src = 0;

	a->ncolumns = ncolumns;
	a->coerce = palloc0(sizeof(ExprState *) * ncolumns);
	a->via_input = palloc0(sizeof(bool) * ncolumns);
	a->source_output = palloc0(sizeof(FmgrInfo) * ncolumns);
	a->input = palloc0(sizeof(FmgrInfo) * ncolumns);
	a->ioparam = palloc0(sizeof(Oid) * ncolumns);
	a->typmod = palloc0(sizeof(int32) * ncolumns);
	a->source_column = palloc0(sizeof(int) * ncolumns);
	a->econtext = CreateStandaloneExprContext();
	a->identity = true;

	for (int i = 0; i < ncolumns; i++, src++)
	{
		Form_pg_attribute att = TupleDescAttr(target, columns[i] - 1);
		Form_pg_attribute satt;
		CaseTestExpr *placeholder;
		Node	   *expr;
		Oid			func;
		bool		isvarlena;

		while (TupleDescAttr(source, src)->attisdropped)
			src++;
		a->source_column[i] = src;
		satt = TupleDescAttr(source, src);
		if (satt->atttypid == att->atttypid &&
			(att->atttypmod < 0 || satt->atttypmod == att->atttypmod))
			continue;			/* stored as it is */
		a->identity = false;
		/* a domain's CHECK or a user-defined cast may run SQL */
		if (get_typtype(att->atttypid) == TYPTYPE_DOMAIN ||
			att->atttypid >= FirstNormalObjectId || satt->atttypid >= FirstNormalObjectId)
			a->may_run_sql = true;

		placeholder = makeNode(CaseTestExpr);
		placeholder->typeId = satt->atttypid;
		placeholder->typeMod = satt->atttypmod;
		placeholder->collation = satt->attcollation;
		expr = coerce_to_target_type(NULL, (Node *) placeholder, satt->atttypid,
									 att->atttypid, att->atttypmod,
									 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
		if (expr != NULL)
		{
			a->coerce[i] = ExecInitExpr(expression_planner((Expr *) expr), NULL);
			continue;
		}
		if (!is_text_type(satt->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" is of type %s but source column %d is of type %s",
							column_names[i], format_type_with_typemod(att->atttypid, att->atttypmod),
							i + 1, format_type_be(satt->atttypid)),
					 errhint("Cast the column in the source query, as INSERT ... SELECT would need.")));
		a->via_input[i] = true;
		getTypeOutputInfo(satt->atttypid, &func, &isvarlena);
		fmgr_info(func, &a->source_output[i]);
		getTypeInputInfo(att->atttypid, &func, &a->ioparam[i]);
		fmgr_info(func, &a->input[i]);
		a->typmod[i] = att->atttypmod;
	}
	return a;
}

static bool
is_text_type(Oid type)
{
	char		category;
	bool		preferred;

	if (type == UNKNOWNOID)
		return true;
	get_type_category_preferred(getBaseType(type), &category, &preferred);
	return category == TYPCATEGORY_STRING;
}

/*
 * ShardloadAssign
 *	  Column col of a source row (value, *isnull) as the target column's
 *	  type.  The result lives until ShardloadAssignerReset.  Throws what the
 *	  cast throws, as INSERT would.
 */
Datum
ShardloadAssign(ShardloadAssigner *a, int col, Datum value, bool *isnull)
{
	if (a->coerce[col] != NULL)
	{
		a->econtext->caseValue_datum = value;
		a->econtext->caseValue_isNull = *isnull;
		return ExecEvalExprSwitchContext(a->coerce[col], a->econtext, isnull);
	}
	if (a->via_input[col] && !*isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(a->econtext->ecxt_per_tuple_memory);
		char	   *text = OutputFunctionCall(&a->source_output[col], value);

		value = InputFunctionCall(&a->input[col], text, a->ioparam[col], a->typmod[col]);
		MemoryContextSwitchTo(old);
	}
	return value;
}

/*
 * ShardloadAssignerReset
 *	  Free what the last row's conversions allocated.
 */
void
ShardloadAssignerReset(ShardloadAssigner *a)
{
	ResetExprContext(a->econtext);
}
