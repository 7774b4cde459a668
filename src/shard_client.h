/*-------------------------------------------------------------------------
 * shard_client.h
 *	  Short synchronous sessions with a shard, bounded by a deadline.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_SHARD_CLIENT_H
#define SHARDLOAD_SHARD_CLIENT_H

#include "postgres.h"

#include "libpq-fe.h"
#include "utils/timestamp.h"

#include "connection.h"

extern PGconn *ShardloadClientConnect(ShardConnParams *params, TimestampTz deadline,
									  char **error);
extern PGresult *ShardloadClientQuery(PGconn *conn, const char *sql, TimestampTz deadline,
									  char **error, char *sqlstate);

#endif							/* SHARDLOAD_SHARD_CLIENT_H */
