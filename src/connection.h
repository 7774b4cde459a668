/*-------------------------------------------------------------------------
 * connection.h
 *	  libpq connection parameters for a shard, postgres_fdw's way.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CONNECTION_H
#define SHARDLOAD_CONNECTION_H

#include "postgres.h"

#include "libpq-fe.h"

/* How to reach one foreign server as one role. */
typedef struct ShardConnParams
{
	char	   *servername;
	const char **keywords;		/* NULL-terminated, for PQconnectStartParams */
	const char **values;
	bool		require_password;	/* must hold PQconnectionUsedPassword() */
} ShardConnParams;

extern ShardConnParams *ShardloadConnParams(Oid serverid, Oid owner);
extern const char *ShardloadConnectFailureSqlstate(const char *message);

#endif							/* SHARDLOAD_CONNECTION_H */
