/*-------------------------------------------------------------------------
 * direct_spill.h
 *	  A direct load's chunks in a temporary file.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_DIRECT_SPILL_H
#define SHARDLOAD_DIRECT_SPILL_H

#include "lib/stringinfo.h"

typedef struct DirectSpill DirectSpill;

extern DirectSpill *ShardloadSpillCreate(int nslices);
extern int	ShardloadSpillAdd(DirectSpill *spill, int slice_no, StringInfo data, StringInfo lines,
							  StringInfo bin);
extern bytea *ShardloadSpillChunk(DirectSpill *spill, int slice_no, int chunk_no, bool binary,
								  int64 *rows, int64 *text_bytes);
extern void ShardloadSpillStore(DirectSpill *spill, int64 batch_id);
extern void ShardloadSpillClose(DirectSpill *spill);

#endif							/* SHARDLOAD_DIRECT_SPILL_H */
