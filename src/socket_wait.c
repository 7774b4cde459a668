/*-------------------------------------------------------------------------
 * socket_wait.c
 *	  Waiting for several sockets at once (and the latch, and postmaster
 *	  death) with one wait set, kept from one wait to the next while the
 *	  same sockets wait: making a set takes a system call per socket and
 *	  two more, and a stream of small batches waits hundreds of times.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "socket_wait.h"

/* The latch and postmaster death come first in the set, then the sockets. */
#define FIRST_SOCKET 2

/* The kept set and the sockets in it, with the events each waits for. */
static struct
{
	WaitEventSet *set;
	int			n;
	pgsocket   *sockets;
	const void **owners;
	int		   *events;
}			kept;

static WaitEventSet *set_for(ShardloadSocketWait *sockets, int n);
static bool can_keep(ShardloadSocketWait *sockets, int n);

/*
 * ShardloadWaitSockets
 *	  Sleep until one of the sockets is ready for what it waits for, the
 *	  latch is set or timeout milliseconds have passed (-1: no limit); each
 *	  socket's ready tells what happened to it.  Interrupts are the
 *	  caller's to check.
 */
void
ShardloadWaitSockets(ShardloadSocketWait *sockets, int n, long timeout)
{
	WaitEventSet *set = set_for(sockets, n);
	WaitEvent  *events = palloc(sizeof(WaitEvent) * (n + FIRST_SOCKET));
	int			nevents;

	for (int i = 0; i < n; i++)
		sockets[i].ready = 0;
	nevents = WaitEventSetWait(set, timeout, events, n + FIRST_SOCKET, PG_WAIT_EXTENSION);
	for (int e = 0; e < nevents; e++)
	{
		if (events[e].events & WL_LATCH_SET)
			ResetLatch(MyLatch);
		else if (events[e].pos >= FIRST_SOCKET)
			sockets[events[e].pos - FIRST_SOCKET].ready |= events[e].events;
	}
	pfree(events);
}

/*
 * set_for
 *	  The kept set, with the events changed where they did, if it holds
 *	  these sockets in this order; else a new one.
 */
static WaitEventSet *
set_for(ShardloadSocketWait *sockets, int n)
{
	MemoryContext old;

	if (can_keep(sockets, n))
	{
		for (int i = 0; i < n; i++)
			if (kept.events[i] != sockets[i].events)
			{
				ModifyWaitEvent(kept.set, i + FIRST_SOCKET, sockets[i].events, NULL);
				kept.events[i] = sockets[i].events;
			}
		return kept.set;
	}

	ShardloadWaitSocketsRelease();
	old = MemoryContextSwitchTo(TopMemoryContext);
	kept.set = ShardloadCreateLastingWaitEventSet(n + FIRST_SOCKET);
	kept.sockets = palloc(sizeof(pgsocket) * Max(n, 1));
	kept.owners = palloc(sizeof(void *) * Max(n, 1));
	kept.events = palloc(sizeof(int) * Max(n, 1));
	MemoryContextSwitchTo(old);
	AddWaitEventToSet(kept.set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(kept.set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int i = 0; i < n; i++)
	{
		kept.sockets[i] = sockets[i].sock;
		kept.owners[i] = sockets[i].owner;
		kept.events[i] = sockets[i].events;
		AddWaitEventToSet(kept.set, sockets[i].events, sockets[i].sock, NULL, NULL);
	}
	kept.n = n;
	return kept.set;
}

/*
 * can_keep
 *	  The kept set holds exactly these sockets of the same owners, in this
 *	  order, and none of them may have been closed and opened again under
 *	  the same number (a set cannot drop a socket before PostgreSQL 17).
 */
static bool
can_keep(ShardloadSocketWait *sockets, int n)
{
	if (kept.set == NULL || kept.n != n)
		return false;
	for (int i = 0; i < n; i++)
		if (sockets[i].renewed || kept.sockets[i] != sockets[i].sock ||
			kept.owners[i] != sockets[i].owner)
			return false;
	return true;
}

/*
 * ShardloadWaitSocketsRelease
 *	  Give the kept set back (its epoll descriptor).
 */
void
ShardloadWaitSocketsRelease(void)
{
	if (kept.set != NULL)
		FreeWaitEventSet(kept.set);
	if (kept.sockets != NULL)
		pfree(kept.sockets);
	if (kept.owners != NULL)
		pfree(kept.owners);
	if (kept.events != NULL)
		pfree(kept.events);
	memset(&kept, 0, sizeof(kept));
}
