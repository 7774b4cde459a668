/*-------------------------------------------------------------------------
 * routing.h
 *	  Row routing from a list-partitioned table's own partition bounds.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ROUTING_H
#define SHARDLOAD_ROUTING_H

#include "postgres.h"

#include "fmgr.h"
#include "partitioning/partdefs.h"
#include "utils/partcache.h"
#include "utils/rel.h"

/*
 * What routing needs from the target.  Valid while the target stays open;
 * the partition list is copied, the bounds belong to the relcache.
 */
typedef struct ShardloadRouter
{
	Relation	rel;
	int			ncolumns;		/* insertable columns, in attribute order */
	AttrNumber *columns;
	char	  **column_names;
	int			key_column;		/* index of the partition key in columns */
	Oid			key_type;
	int32		key_typmod;
	Oid			key_ioparam;
	FmgrInfo	key_input;
	int			nparts;
	Oid		   *part_oids;
	PartitionKey key;
	PartitionDesc partdesc;		/* the layout seen at creation, kept by the relcache */
} ShardloadRouter;

extern ShardloadRouter *ShardloadRouterCreate(Relation rel);
extern int	ShardloadRoute(ShardloadRouter *router, Datum value, bool isnull);
extern Datum ShardloadRouterParseKey(ShardloadRouter *router, const char *text);
extern List *ShardloadColumnNameList(ShardloadRouter *router);
extern char *ShardloadColumnListText(ShardloadRouter *router);

#endif							/* SHARDLOAD_ROUTING_H */
