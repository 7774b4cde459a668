/*-------------------------------------------------------------------------
 * assign.h
 *	  A source query's values converted to the target's column types.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ASSIGN_H
#define SHARDLOAD_ASSIGN_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/relcache.h"

typedef struct ShardloadAssigner
{
	int			ncolumns;
	int		   *source_column;	/* source attribute index of each column */
	ExprState **coerce;			/* assignment cast, NULL if none */
	bool	   *via_input;		/* text read by the column type's input */
	FmgrInfo   *source_output;
	FmgrInfo   *input;
	Oid		   *ioparam;
	int32	   *typmod;
	ExprContext *econtext;
	bool		may_run_sql;	/* some conversion may run user code */
	bool		identity;		/* every column is stored as it is */
} ShardloadAssigner;

extern ShardloadAssigner *ShardloadAssignerCreate(Relation rel, int ncolumns,
												  AttrNumber *columns,
												  char **column_names,
												  TupleDesc source);
extern Datum ShardloadAssign(ShardloadAssigner *a, int col, Datum value, bool *isnull);
extern void ShardloadAssignerReset(ShardloadAssigner *a);

#endif							/* SHARDLOAD_ASSIGN_H */
