/*-------------------------------------------------------------------------
 * routing.c
 *	  Row routing from a list-partitioned table's own partition bounds.
 *
 *	  The partitioned table is the routing truth: a row goes to the partition
 *	  whose FOR VALUES IN list holds its key, else to the NULL-accepting or
 *	  DEFAULT partition, as INSERT would route it.  Only the key column is
 *	  ever decoded.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "lib/stringinfo.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"

#include "routing.h"

static const char *strategy_name(char strategy);

/*
 * ShardloadRouterCreate
 *	  Check that rel can be loaded (LIST partitioned on one plain column, no
 *	  sub-partitioned partitions) and build its router in the current memory
 *	  context.  Throws ERRCODE_FEATURE_NOT_SUPPORTED otherwise.
 */
ShardloadRouter *
ShardloadRouterCreate(Relation rel)
{
	ShardloadRouter *router = palloc0(sizeof(ShardloadRouter));
	TupleDesc	tupdesc = RelationGetDescr(rel);
	const char *relname = RelationGetRelationName(rel);
	PartitionKey key;
	PartitionDesc partdesc;
	Oid			input_func;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not partitioned", relname),
				 errhint("pg_shardload loads into a table PARTITION BY LIST (column) whose partitions are postgres_fdw foreign tables or local tables.")));
	key = RelationGetPartitionKey(rel);
	if (key->strategy != PARTITION_STRATEGY_LIST)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is partitioned by %s, not by list",
						relname, strategy_name(key->strategy)),
				 errhint("pg_shardload loads into a table PARTITION BY LIST (column).")));
	if (key->partnatts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("partition key of table \"%s\" has %d columns", relname, key->partnatts),
				 errhint("pg_shardload needs a partition key of exactly one column.")));
	if (key->partattrs[0] == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("partition key of table \"%s\" is an expression", relname),
				 errhint("pg_shardload needs a partition key that is a plain column.")));

	router->rel = rel;
	router->columns = palloc(sizeof(AttrNumber) * tupdesc->natts);
	router->column_names = palloc(sizeof(char *) * tupdesc->natts);
	router->key_column = -1;
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (att->attnum == key->partattrs[0])
			router->key_column = router->ncolumns;
		router->columns[router->ncolumns] = att->attnum;
		router->column_names[router->ncolumns] = pstrdup(NameStr(att->attname));
		router->ncolumns++;
	}
	if (router->key_column < 0)
		elog(ERROR, "partition key column of \"%s\" is not insertable", relname);

	router->key_type = key->parttypid[0];
	router->key_typmod = key->parttypmod[0];
	getTypeInputInfo(router->key_type, &input_func, &router->key_ioparam);
	fmgr_info(input_func, &router->key_input);

	/*
	 * Route with this descriptor to the end: a partition attached meanwhile
	 * (which takes no lock that conflicts with ours) must not shift the
	 * indexes.  The relcache keeps it while the relation is open.
	 */
	partdesc = RelationGetPartitionDesc(rel, true);
	router->key = key;
	router->partdesc = partdesc;
	router->nparts = partdesc->nparts;
	router->part_oids = palloc(sizeof(Oid) * Max(partdesc->nparts, 1));
	for (int i = 0; i < partdesc->nparts; i++)
	{
		router->part_oids[i] = partdesc->oids[i];
		if (get_rel_relkind(partdesc->oids[i]) == RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("partition \"%s\" of table \"%s\" is itself partitioned",
							get_rel_name(partdesc->oids[i]), relname),
					 errhint("pg_shardload loads one level of list partitions.")));
	}
	return router;
}

/*
 * ShardloadRoute
 *	  The index (into router->part_oids) of the partition that takes a row
 *	  with this key, or -1 if none does.
 */
int
ShardloadRoute(ShardloadRouter *router, Datum value, bool isnull)
{
	PartitionKey key = router->key;
	PartitionBoundInfo bounds = router->partdesc->boundinfo;
	bool		equal = false;
	int			offset;

	if (bounds == NULL)
		return -1;
	if (isnull)
		return partition_bound_accepts_nulls(bounds) ? bounds->null_index
			: bounds->default_index;

	offset = partition_list_bsearch(key->partsupfunc, key->partcollation,
									bounds, value, &equal);
	if (offset >= 0 && equal)
		return bounds->indexes[offset];
	return bounds->default_index;
}

/*
 * ShardloadRouterParseKey
 *	  The key column's value from its text form; throws the type's own
 *	  error for bad input.
 */
Datum
ShardloadRouterParseKey(ShardloadRouter *router, const char *text)
{
	return InputFunctionCall(&router->key_input, (char *) text,
							 router->key_ioparam, router->key_typmod);
}

/*
 * ShardloadColumnNameList
 *	  The insertable columns as a List of String nodes (for COPY).
 */
List *
ShardloadColumnNameList(ShardloadRouter *router)
{
	List	   *names = NIL;

	for (int i = 0; i < router->ncolumns; i++)
		names = lappend(names, makeString(router->column_names[i]));
	return names;
}

/*
 * ShardloadColumnListText
 *	  The insertable columns as "a, b, c" (quoted as needed): the layout a
 *	  batch's payload lines follow.
 */
char *
ShardloadColumnListText(ShardloadRouter *router)
{
	StringInfoData names;

	initStringInfo(&names);
	for (int i = 0; i < router->ncolumns; i++)
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(router->column_names[i]));
	return names.data;
}

static const char *
strategy_name(char strategy)
{
	switch (strategy)
	{
		case PARTITION_STRATEGY_RANGE:
			return "range";
		case PARTITION_STRATEGY_HASH:
			return "hash";
		default:
			return "list";
	}
}
