/*-------------------------------------------------------------------------
 * route_check.c
 *	  Where a slice goes, described so that a change can be seen.
 *
 *	  Rows are routed once, at capture.  If between capture and a run a
 *	  partition is re-attached with another bound, moved to another server
 *	  or pointed at another remote table or columns, the captured slice no
 *	  longer belongs where it would go: the run must refuse it, not load
 *	  rows into a partition whose bound excludes them.  Each slice keeps a
 *	  signature of its destination from capture, compared at every run.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "route_check.h"
#include "value_forms.h"

static char *partition_bound_text(Oid partition);

/*
 * ShardloadRemoteTable
 *	  The quoted schema.table a foreign partition names on its server.
 */
char *
ShardloadRemoteTable(Oid partition)
{
	ForeignTable *ft = GetForeignTable(partition);
	const char *schema_name = get_namespace_name(get_rel_namespace(partition));
	const char *table_name = get_rel_name(partition);
	ListCell   *lc;

	foreach(lc, ft->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "schema_name") == 0)
			schema_name = defGetString(opt);
		else if (strcmp(opt->defname, "table_name") == 0)
			table_name = defGetString(opt);
	}
	return quote_qualified_identifier(schema_name, table_name);
}

/*
 * remote_column_name
 *	  The name of partition's column colname on its shard (its column_name
 *	  option, if any).
 */
static const char *
remote_column_name(Oid partition, const char *colname)
{
	ListCell   *lc;

	foreach(lc, GetForeignColumnOptions(partition, get_attnum(partition, colname)))
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "column_name") == 0)
			colname = defGetString(opt);
	}
	return colname;
}

/*
 * ShardloadRemoteColumns
 *	  "(a, b, c)": the remote names of the router's columns in a foreign
 *	  partition (column_name options), quoted.
 */
char *
ShardloadRemoteColumns(Oid partition, ShardloadRouter *router)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoChar(&sql, '(');
	for (int i = 0; i < router->ncolumns; i++)
		appendStringInfo(&sql, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(remote_column_name(partition, router->column_names[i])));
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * ShardloadRemoteTypesSql
 *	  An expression for the shard: the type OIDs of the remote columns of a
 *	  foreign partition, in the router's order, as "20,23,..." (fewer if
 *	  the table or a column is missing, NULL if all are).
 */
char *
ShardloadRemoteTypesSql(Oid partition, ShardloadRouter *router)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "(SELECT pg_catalog.string_agg(a.atttypid::pg_catalog.text, ','"
						   " ORDER BY e.o) FROM pg_catalog.unnest(ARRAY[");
	for (int i = 0; i < router->ncolumns; i++)
		appendStringInfo(&sql, "%s%s", i > 0 ? ", " : "",
						 quote_literal_cstr(remote_column_name(partition, router->column_names[i])));
	appendStringInfo(&sql, "]::pg_catalog.text[]) WITH ORDINALITY AS e(n, o)"
					 " JOIN pg_catalog.pg_attribute a ON a.attname = e.n"
					 " AND a.attrelid = pg_catalog.to_regclass(%s)"
					 " AND a.attnum > 0 AND NOT a.attisdropped)",
					 quote_literal_cstr(ShardloadRemoteTable(partition)));
	return sql.data;
}

/*
 * ShardloadSliceSignature
 *	  The destination of a slice bound for partition, as text: its bound
 *	  and, for a foreign partition, its server, remote table and columns.
 */
char *
ShardloadSliceSignature(Oid partition, ShardloadRouter *router)
{
	char	   *signature;

	/* values and names in fixed forms: the same text in every session */
	ShardloadFixedFormsBegin();
	if (get_rel_relkind(partition) != RELKIND_FOREIGN_TABLE)
		signature = psprintf("bound %s, local table", partition_bound_text(partition));
	else
		signature = psprintf("bound %s, server %s, remote table %s %s",
							 partition_bound_text(partition),
							 quote_identifier(GetForeignServer(GetForeignTable(partition)->serverid)->servername),
							 ShardloadRemoteTable(partition),
							 ShardloadRemoteColumns(partition, router));
	ShardloadFixedFormsEnd();
	return signature;
}

/*
 * partition_bound_text
 *	  "FOR VALUES IN (1)" or "DEFAULT", as pg_get_expr shows it.
 */
static char *
partition_bound_text(Oid partition)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(partition));
	Datum		bound;
	bool		isnull;
	char	   *shown_text = "(none)";

	if (!HeapTupleIsValid(tuple))
		return shown_text;
	bound = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_relpartbound, &isnull);
	if (!isnull)
	{
		Datum		shown;

		shown = DirectFunctionCall2(pg_get_expr, bound, ObjectIdGetDatum(partition));
		shown_text = TextDatumGetCString(shown);
	}
	ReleaseSysCache(tuple);
	return shown_text;
}
