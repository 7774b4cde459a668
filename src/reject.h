/*-------------------------------------------------------------------------
 * reject.h
 *	  Row checks at capture and shardload.reject records (on_error reject).
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_REJECT_H
#define SHARDLOAD_REJECT_H

#include "postgres.h"

#include "fmgr.h"

#include "routing.h"

/* What is checked of each insertable column before a row is kept. */
typedef struct RowChecker
{
	ShardloadRouter *router;
	bool	   *check_input;	/* text must parse as the column's type */
	bool	   *not_null;
	bool	   *is_domain;		/* input may run SQL: check in a subtransaction */
	FmgrInfo   *input;
	Oid		   *ioparam;
	int32	   *typmod;
} RowChecker;

extern RowChecker *ShardloadRowCheckerCreate(ShardloadRouter *router, Oid *source_types);
extern bool ShardloadRowCheckerCheck(RowChecker *checker, char **values, char *sqlstate,
							char **message);
extern void ShardloadRecordReject(int64 batch_id, int64 line, const char *sqlstate,
								  const char *message, const char *raw_row,
								  int slice_no, int64 slice_line);
extern bool ShardloadRejectRecorded(int64 batch_id, int slice_no, int64 slice_line);

#endif							/* SHARDLOAD_REJECT_H */
