/*-------------------------------------------------------------------------
 * copy_binary.h
 *	  Rows in COPY's binary format, for a direct load's live stream, and
 *	  which of its slices may take them.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_COPY_BINARY_H
#define SHARDLOAD_COPY_BINARY_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "libpq-fe.h"
#include "utils/relcache.h"

#include "copy_stream.h"

extern bool shardload_binary_copy;

extern Oid *ShardloadBinaryTypes(Relation rel, int ncolumns, const AttrNumber *columns,
								 char **type_list);
extern char *ShardloadBinaryProbeSql(StreamShard *sh);
extern void ShardloadBinaryProbed(StreamShard *sh, const PGresult *res);
extern void ShardloadBinaryDecide(StreamShard *sh, StreamSlice *slice);
extern void ShardloadBinaryHeader(StringInfo buf);
extern void ShardloadBinaryAppendRow(StringInfo buf, int ncolumns, const Oid *types,
									 const Datum *values, const bool *nulls);
extern bool ShardloadBinaryAppendText(StringInfo buf, int ncolumns, const Oid *types,
									  char **values, const bool *recoded,
									  const Datum *recoded_values);

#endif							/* SHARDLOAD_COPY_BINARY_H */
