/*-------------------------------------------------------------------------
 * socket_wait.h
 *	  Waiting for several sockets at once with a wait set kept from one
 *	  wait to the next.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_SOCKET_WAIT_H
#define SHARDLOAD_SOCKET_WAIT_H

#include "postgres.h"

#include "storage/latch.h"

/* One socket to wait for, and what happened to it. */
typedef struct ShardloadSocketWait
{
	pgsocket	sock;
	const void *owner;			/* what the socket belongs to (a connection) */
	int			events;			/* WL_SOCKET_* to wait for */
	bool		renewed;		/* may be a new socket under an old number */
	int			ready;			/* out: WL_SOCKET_* that happened */
} ShardloadSocketWait;

extern void ShardloadWaitSockets(ShardloadSocketWait *sockets, int n, long timeout);
extern void ShardloadWaitSocketsRelease(void);

#endif							/* SHARDLOAD_SOCKET_WAIT_H */
