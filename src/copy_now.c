/*-------------------------------------------------------------------------
 * copy_now.c
 *	  What a COPY FROM in progress is to do with its inbox batch: whether
 *	  it may load it at once, and which batch it made.  The utility hook
 *	  (inbox_load.c) sets it around the COPY; the inbox (inbox.c) reads it
 *	  when its capture starts and names its batch when the rows are in.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "inbox.h"

static bool copy_running = false;	/* a COPY FROM the hook watches */
static bool copy_loads_now = false;	/* which may commit and load at once */
static int64 copy_batch = 0;	/* its inbox batch, once captured */

/*
 * ShardloadCopyNowBegin
 *	  A COPY FROM starts; loads_now: it runs on its own, so that it may
 *	  commit its batch and load it before it returns.
 */
void
ShardloadCopyNowBegin(bool loads_now)
{
	copy_running = true;
	copy_loads_now = loads_now;
	copy_batch = 0;
}

/* The COPY is over (or failed). */
void
ShardloadCopyNowEnd(void)
{
	copy_running = false;
}

bool
ShardloadCopyNowRunning(void)
{
	return copy_running;
}

bool
ShardloadCopyNowLoads(void)
{
	return copy_loads_now;
}

/*
 * ShardloadCopyNowTakeBatch
 *	  The batch the COPY is to load at once (0: none), forgotten here.
 */
int64
ShardloadCopyNowTakeBatch(void)
{
	int64		batch_id = copy_batch;

	copy_batch = 0;
	return batch_id;
}

/*
 * ShardloadInboxCopyLoadsNow
 *	  Whether a COPY into an inbox that is to load its batch at once can
 *	  (it runs on its own): then its capture may go direct.
 */
bool
ShardloadInboxCopyLoadsNow(void)
{
	return copy_running && copy_loads_now;
}

/*
 * ShardloadInboxCopyBatch
 *	  The batch of a COPY into an inbox that is to load it at once is
 *	  captured: it is loaded when the COPY is over (or, if the COPY cannot
 *	  commit, left to the worker with a NOTICE).
 */
void
ShardloadInboxCopyBatch(int64 batch_id)
{
	if (copy_running)
		copy_batch = batch_id;
}
