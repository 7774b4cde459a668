/*-------------------------------------------------------------------------
 * circuit.h
 *	  Per-shard circuit breaker.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CIRCUIT_H
#define SHARDLOAD_CIRCUIT_H

#include "postgres.h"

#include "datatype/timestamp.h"

extern bool ShardloadCircuitOpen(const char *server, TimestampTz *reopen_at);
extern TimestampTz ShardloadCircuitDeferral(int64 batch_id, bool any, char **server);
extern void ShardloadShardIdentitySet(const char *server, const char *identity);
extern void ShardloadCircuitRecord(const char *server, bool success, const char *sqlstate,
								   const char *message);

#endif							/* SHARDLOAD_CIRCUIT_H */
