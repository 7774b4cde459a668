/*-------------------------------------------------------------------------
 * payload.h
 *	  Reading a batch's payload back: chunks for the shards, and in-process
 *	  COPY for local partitions.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_PAYLOAD_H
#define SHARDLOAD_PAYLOAD_H

#include "postgres.h"

#include "nodes/pg_list.h"

extern bytea *ShardloadPayloadChunk(int64 batch_id, int slice_no, int chunk_no);
extern void ShardloadPayloadStore(int64 batch_id, int slice_no, int chunk_no, bytea *data,
								  bytea *lines);
extern bool ShardloadPayloadLine(int64 batch_id, int slice_no, int64 slice_line,
								 int64 *line_no, char **raw_row);
extern uint64 ShardloadLoadLocalSlice(int64 batch_id, int slice_no, Oid partition,
									  List *column_names);

#endif							/* SHARDLOAD_PAYLOAD_H */
