/*-------------------------------------------------------------------------
 * compat.h
 *	  Differences between the PostgreSQL versions pg_shardload supports,
 *	  in one place.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_COMPAT_H
#define SHARDLOAD_COMPAT_H

#include "postgres.h"

#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

/* The varlena macros (VARDATA, VARSIZE, ...) moved to varatt.h in 16. */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* CreateWaitEventSet takes a resource owner from PostgreSQL 17 on. */
#if PG_VERSION_NUM >= 170000
#define ShardloadCreateWaitEventSet(nevents) \
	CreateWaitEventSet(CurrentResourceOwner, (nevents))
#else
#define ShardloadCreateWaitEventSet(nevents) \
	CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/* A set that lives until FreeWaitEventSet, whatever ends meanwhile. */
#if PG_VERSION_NUM >= 170000
#define ShardloadCreateLastingWaitEventSet(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define ShardloadCreateLastingWaitEventSet(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/* A backend's index in ProcGlobal->allProcs: MyProcNumber from 17 on. */
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#define ShardloadMyProcNumber() ((int) MyProcNumber)
#else
#include "storage/proc.h"
#define ShardloadMyProcNumber() (MyProc->pgprocno)
#endif

/* LockHeldByMe takes "or a stronger mode" from PostgreSQL 17 on. */
#if PG_VERSION_NUM >= 170000
#define ShardloadLockHeldByMe(tag, mode) LockHeldByMe((tag), (mode), false)
#else
#define ShardloadLockHeldByMe(tag, mode) LockHeldByMe((tag), (mode))
#endif

#endif							/* SHARDLOAD_COMPAT_H */
