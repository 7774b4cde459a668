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

/* CreateWaitEventSet takes a resource owner from PostgreSQL 17 on. */
#if PG_VERSION_NUM >= 170000
#define ShardloadCreateWaitEventSet(nevents) \
	CreateWaitEventSet(CurrentResourceOwner, (nevents))
#else
#define ShardloadCreateWaitEventSet(nevents) \
	CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

#endif							/* SHARDLOAD_COMPAT_H */
