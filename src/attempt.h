/*-------------------------------------------------------------------------
 * attempt.h
 *	  One attempt to run a batch, as loader.c runs it and outcome.c
 *	  records it.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ATTEMPT_H
#define SHARDLOAD_ATTEMPT_H

#include "nodes/pg_list.h"
#include "utils/rel.h"

#include "copy_stream.h"
#include "failure.h"
#include "metadata.h"

/* A slice of the batch as this attempt sees it. */
typedef struct RunSlice
{
	int			slice_no;
	Oid			partition;
	int64		rows;
	int64		bytes;
	bool		was_committed;	/* before this attempt */
	bool		committed;
	bool		prepared;		/* atomic: PREPAREd on its shard */
	bool		local;
	bool		load_later;		/* atomic: a local slice loaded after the PREPAREs */
	char	   *shard;
	int64		first_line;
	char	   *first_detail;
	bool		deferred;		/* its server's circuit is open */
	char	   *signature;		/* its destination at capture (route_check.c) */
	char	   *identity;		/* the shard it was last sent to */
	struct StreamSlice *stream; /* foreign slices: what the stream made of it */
	ShardloadFailure *failure;
} RunSlice;

typedef struct RunState
{
	ShardloadBatch *batch;
	int			attempt;
	char	   *coordinator_id;
	int			nslices;
	RunSlice   *slices;
	ShardloadFailure *failure;	/* a failure of the whole attempt */
	ShardloadStage stage;			/* where the attempt is, for caught errors */
	ErrorData  *cancel;			/* a cancel to pass on once it is recorded */
	bool		fixed_forms;	/* payload in fixed value forms */
	bool		atomic_began;	/* atomic: may leave prepared slices (atomic.c) */
	bool		decided;		/* atomic: the decision to commit is made */
	bool		prepare_unanswered; /* atomic: a PREPARE's answer never came */

	/* the load step's (load_step.c) */
	Relation	target;			/* open while the load runs; NULL: cannot run */
	List	   *servers;		/* foreign servers of its slices (OIDs) */
	List	   *shard_list;		/* and their streams (StreamShard *) */
	List	   *column_names;	/* the target's, for local slices loaded later */
} RunState;

/*
 * Batches loaded together: one, or a runner's small batches of one owner
 * with the same session settings, whose slices share the shard streams.
 */
typedef struct ShardloadGroup
{
	RunState  **members;
	int			n;
	bool		streamed;		/* the stream began: its stage is the group's */
	ShardloadStage stage;		/* where the stream is, for caught errors */
} ShardloadGroup;

extern void ShardloadRecordOutcomes(RunState **rs, int n);
extern void ShardloadRecordOutcome(RunState *rs);
extern void ShardloadLoadGroupStep(void *arg);

#endif							/* SHARDLOAD_ATTEMPT_H */
