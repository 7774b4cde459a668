/*-------------------------------------------------------------------------
 * stream_skip.h
 *	  Lines left out of a streaming slice, and rows a shard refused.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_STREAM_SKIP_H
#define SHARDLOAD_STREAM_SKIP_H

#include "copy_stream.h"
#include "failure.h"

extern void ShardloadStreamSliceSkip(StreamSlice *slice, int64 slice_line, const char *reason);
extern bytea *ShardloadStreamSkipLines(StreamSlice *slice, bytea *chunk);
extern bool ShardloadStreamRejectRow(StreamBatch *batch, StreamSlice *slice,
									 const char *servername, ShardloadFailure *error);
extern void ShardloadStreamNameInputLine(StreamBatch *batch, StreamSlice *slice,
										 ShardloadFailure *error);
extern void ShardloadStreamRecordLostRejects(StreamBatch *batch, StreamSlice *slice,
											 const char *servername, const char *skipped,
											 const char *reasons);
extern void ShardloadStreamRecordRejectsAgain(int64 batch_id, StreamSlice *slice,
											  const char *servername);

#endif							/* SHARDLOAD_STREAM_SKIP_H */
