/*-------------------------------------------------------------------------
 * inbox_create.c
 *	  shardload.create_inbox(): make the foreign table a COPY client loads
 *	  a target's batches through.
 *
 *	  The inbox has the target's insertable columns, in order, as text, so
 *	  that every field reaches the capture as the client sent it (a bad
 *	  value can then be rejected with its line instead of failing COPY).
 *	  A column's default is the target's, as text, so a COPY with a column
 *	  list fills the others as COPY into the target would.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/varlena.h"

#include "routing.h"

PG_FUNCTION_INFO_V1(shardload_create_inbox);

static RangeVar *inbox_name(Relation target, text *name);
static char *column_default(Relation target, AttrNumber attnum);

/*
 * shardload_create_inbox
 *	  create_inbox(target, inbox, on_error, reject_limit, policy, tenant,
 *	  batch_key, atomic):
 *	  make the inbox (by default "<target>_inbox" beside the target) as
 *	  the calling role, and return it.
 */
Datum
shardload_create_inbox(PG_FUNCTION_ARGS)
{
	Relation	target;
	ShardloadRouter *router;
	RangeVar   *inbox;
	StringInfoData sql;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	target = table_open(PG_GETARG_OID(0), AccessShareLock);
	if (pg_class_aclcheck(RelationGetRelid(target), GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(target));
	router = ShardloadRouterCreate(target);
	inbox = inbox_name(target, PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE FOREIGN TABLE %s (",
					 quote_qualified_identifier(inbox->schemaname, inbox->relname));
	for (int i = 0; i < router->ncolumns; i++)
	{
		char	   *def = column_default(target, router->columns[i]);

		appendStringInfo(&sql, "%s%s pg_catalog.text", i > 0 ? ", " : "",
						 quote_identifier(router->column_names[i]));
		if (def != NULL)
			appendStringInfo(&sql, " DEFAULT ((%s)::pg_catalog.text)", def);
	}
	appendStringInfo(&sql, ") SERVER shardload_inbox OPTIONS (target %s",
					 quote_literal_cstr(quote_qualified_identifier(get_namespace_name(RelationGetNamespace(target)),
																   RelationGetRelationName(target))));
	appendStringInfo(&sql, ", on_error %s",
					 quote_literal_cstr(PG_ARGISNULL(2) ? "stop" : text_to_cstring(PG_GETARG_TEXT_PP(2))));
	appendStringInfo(&sql, ", reject_limit '" INT64_FORMAT "'",
					 PG_ARGISNULL(3) ? (int64) 0 : PG_GETARG_INT64(3));
	if (!PG_ARGISNULL(4))
		appendStringInfo(&sql, ", policy %s", quote_literal_cstr(text_to_cstring(PG_GETARG_TEXT_PP(4))));
	if (!PG_ARGISNULL(5))
		appendStringInfo(&sql, ", tenant %s", quote_literal_cstr(text_to_cstring(PG_GETARG_TEXT_PP(5))));
	if (!PG_ARGISNULL(6))
		appendStringInfo(&sql, ", batch_key %s", quote_literal_cstr(text_to_cstring(PG_GETARG_TEXT_PP(6))));
	/* without it, the target's default applies when each batch is made */
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
		appendStringInfo(&sql, ", atomic '%s'", PG_GETARG_BOOL(7) ? "true" : "false");
	appendStringInfoString(&sql, ")");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create inbox \"%s\"", inbox->relname);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "COMMENT ON FOREIGN TABLE %s IS %s",
					 quote_qualified_identifier(inbox->schemaname, inbox->relname),
					 quote_literal_cstr(psprintf("pg_shardload inbox of %s: set shardload.batch_key, then COPY rows in",
												 RelationGetRelationName(target))));
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not comment on inbox \"%s\"", inbox->relname);
	SPI_finish();
	CommandCounterIncrement();
	table_close(target, NoLock);
	PG_RETURN_OID(RangeVarGetRelid(inbox, NoLock, false));
}

/*
 * inbox_name
 *	  The name given (qualified or not), else "<target>_inbox"; an
 *	  unqualified name goes in the target's schema.
 */
static RangeVar *
inbox_name(Relation target, text *name)
{
	List	   *names;
	RangeVar   *rv;

	if (name == NULL)
		return makeRangeVar(get_namespace_name(RelationGetNamespace(target)),
							psprintf("%s_inbox", RelationGetRelationName(target)), -1);
	names = textToQualifiedNameList(name);
	rv = makeRangeVarFromNameList(names);
	if (rv->catalogname != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("inbox name \"%s\" names another database", text_to_cstring(name))));
	if (rv->schemaname == NULL)
		rv->schemaname = get_namespace_name(RelationGetNamespace(target));
	return rv;
}

/*
 * column_default
 *	  The target column's default expression as SQL text, or NULL.
 */
static char *
column_default(Relation target, AttrNumber attnum)
{
	TupleConstr *constr = RelationGetDescr(target)->constr;

	if (constr == NULL)
		return NULL;
	for (int i = 0; i < constr->num_defval; i++)
	{
		if (constr->defval[i].adnum != attnum)
			continue;
		return deparse_expression(stringToNode(constr->defval[i].adbin),
								  deparse_context_for(RelationGetRelationName(target),
													  RelationGetRelid(target)),
								  false, false);
	}
	return NULL;
}
