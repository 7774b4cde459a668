/*-------------------------------------------------------------------------
 * subxact.c
 *	  Running a step in a subtransaction and catching its error, so that a
 *	  failure is recorded as data (an attempt, a slice, a job's last error)
 *	  instead of aborting the work around it.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "subxact.h"

/*
 * ShardloadTryStep
 *	  Run step(arg) in a subtransaction.  Returns NULL if it succeeded (the
 *	  subtransaction is committed), else its error, copied into the
 *	  caller's memory context (the subtransaction is rolled back).  A
 *	  cancel (57014) is caught only with catch_cancel; otherwise it is
 *	  raised again once the subtransaction is gone, so that a step never
 *	  swallows a user's cancel or a time limit meant for the whole.
 */
ErrorData *
ShardloadTryStep(ShardloadStep step, void *arg, bool catch_cancel)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && !catch_cancel)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}
