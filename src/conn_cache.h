/*-------------------------------------------------------------------------
 * conn_cache.h
 *	  Shard connections a runner keeps between the batches it runs.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CONN_CACHE_H
#define SHARDLOAD_CONN_CACHE_H

#include "postgres.h"

#include "libpq-fe.h"

#include "connection.h"

extern void ShardloadConnCacheEnable(void);
extern char *ShardloadConnCacheKey(const ShardConnParams *params, const char *lc_monetary,
								   bool fixed_forms);
extern PGconn *ShardloadConnCacheTake(const char *key);
extern bool ShardloadConnCacheKeep(const char *key, PGconn *conn);

#endif							/* SHARDLOAD_CONN_CACHE_H */
