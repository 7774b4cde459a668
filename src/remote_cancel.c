/*-------------------------------------------------------------------------
 * remote_cancel.c
 *	  Cancelling what shard backends still run when an attempt ends early.
 *
 *	  Closing a connection does not stop a shard backend that is not
 *	  reading from it (a slow trigger, a lock wait, a long COMMIT): it goes
 *	  on, holding its locks, until it next reads.  So every shard with work
 *	  in flight is asked to cancel it, through a connection of its own
 *	  (pg_cancel_backend, allowed for the same role), all shards at once
 *	  and within a time limit.  libpq's PQcancel is not used: it waits
 *	  without limit for the server to answer, and a frozen server never
 *	  does.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "remote_cancel.h"

typedef struct CancelConn
{
	PGconn	   *conn;
	bool		require_password;
	bool		fd_reserved;
	bool		connected;
	bool		done;
	int			want;
	int			pid;
} CancelConn;

static void cancel_all(CancelConn *conns, ShardConnParams **params, int *pids, int n,
					   TimestampTz deadline);
static void step_cancel(CancelConn *c);
static void finish_cancel(CancelConn *c);

/*
 * ShardloadCancelRemote
 *	  Ask each backend pids[i] of the shard params[i] to cancel its query,
 *	  giving up on all after timeout_ms.  Never throws for a shard's sake;
 *	  interrupts are held meanwhile, so it can run while an error or a
 *	  cancel unwinds the attempt, or while the process exits.
 */
void
ShardloadCancelRemote(ShardConnParams **params, int *pids, int n, int timeout_ms)
{
	CancelConn *conns;
	TimestampTz deadline;
	MemoryContext cxt;
	MemoryContext old;

	if (n == 0)
		return;
	HOLD_INTERRUPTS();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_shardload cancel",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	conns = palloc0(sizeof(CancelConn) * n);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	PG_TRY();
	{
		cancel_all(conns, params, pids, n, deadline);
	}
	PG_FINALLY();
	{
		/* nothing left open (on error, the error resets the interrupt holdoff) */
		for (int i = 0; i < n; i++)
			finish_cancel(&conns[i]);
		MemoryContextSwitchTo(old);
	}
	PG_END_TRY();
	MemoryContextDelete(cxt);
	RESUME_INTERRUPTS();
}

/*
 * cancel_all
 *	  Start the cancel connections and drive them until all are done or the
 *	  deadline passes.
 */
static void
cancel_all(CancelConn *conns, ShardConnParams **params, int *pids, int n,
		   TimestampTz deadline)
{
	for (int i = 0; i < n; i++)
	{
		CancelConn *c = &conns[i];

		c->pid = pids[i];
		c->require_password = params[i]->require_password;
		c->done = true;
		if (!AcquireExternalFD())
			continue;
		c->fd_reserved = true;
		c->conn = PQconnectStartParams(params[i]->keywords, params[i]->values, false);
		if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD)
		{
			finish_cancel(c);
			continue;
		}
		c->done = false;
		c->want = WL_SOCKET_WRITEABLE;
	}

	for (;;)
	{
		WaitEventSet *set;
		WaitEvent  *events;
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		int			active = 0;
		int			nevents;

		for (int i = 0; i < n; i++)
			active += !conns[i].done;
		if (active == 0 || left <= 0)
			break;
		set = ShardloadCreateWaitEventSet(active + 1);
		events = palloc(sizeof(WaitEvent) * (active + 1));
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < n; i++)
			if (!conns[i].done)
				AddWaitEventToSet(set, conns[i].want, PQsocket(conns[i].conn), NULL, &conns[i]);
		nevents = WaitEventSetWait(set, left, events, active + 1, PG_WAIT_EXTENSION);
		for (int i = 0; i < nevents; i++)
			if (events[i].user_data)
				step_cancel((CancelConn *) events[i].user_data);
		FreeWaitEventSet(set);
	}
}

/*
 * step_cancel
 *	  Move one cancel connection on: connect, send the cancel, read its
 *	  answer.
 */
static void
step_cancel(CancelConn *c)
{
	if (!c->connected)
	{
		switch (PQconnectPoll(c->conn))
		{
			case PGRES_POLLING_OK:
				c->connected = true;
				/* postgres_fdw's password rule holds here too */
				if ((c->require_password && !PQconnectionUsedPassword(c->conn)) ||
					PQsetnonblocking(c->conn, 1) != 0)
				{
					finish_cancel(c);
					return;
				}

				/*
				 * Only a client backend of this same role: never another
				 * session that happens to have the pid the shard reported.
				 */
				if (!PQsendQuery(c->conn,
								 psprintf("SELECT pg_catalog.pg_cancel_backend(a.pid)"
										  " FROM pg_catalog.pg_stat_activity a"
										  " WHERE a.pid = %d AND a.backend_type = 'client backend'"
										  " AND a.usesysid = (SELECT r.oid FROM pg_catalog.pg_roles r"
										  "  WHERE r.rolname = current_user)", c->pid)))
				{
					finish_cancel(c);
					return;
				}
				(void) PQflush(c->conn);
				c->want = WL_SOCKET_READABLE;
				return;
			case PGRES_POLLING_READING:
				c->want = WL_SOCKET_READABLE;
				return;
			case PGRES_POLLING_WRITING:
				c->want = WL_SOCKET_WRITEABLE;
				return;
			default:
				finish_cancel(c);
				return;
		}
	}
	if (!PQconsumeInput(c->conn))
	{
		finish_cancel(c);
		return;
	}
	while (!PQisBusy(c->conn))
	{
		PGresult   *res = PQgetResult(c->conn);

		if (res == NULL)
		{
			finish_cancel(c);
			return;
		}
		PQclear(res);
	}
}

static void
finish_cancel(CancelConn *c)
{
	if (c->conn)
	{
		PQfinish(c->conn);
		c->conn = NULL;
	}
	if (c->fd_reserved)
	{
		ReleaseExternalFD();
		c->fd_reserved = false;
	}
	c->done = true;
}
