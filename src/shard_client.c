/*-------------------------------------------------------------------------
 * shard_client.c
 *	  A short synchronous session with one shard, for work outside the COPY
 *	  stream (creating the ledger, ending prepared transactions): connect
 *	  and run statements, never waiting past a deadline, and giving errors
 *	  back as text instead of throwing them.  A cancel still ends the wait.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "shard_client.h"

static int	wait_for(PGconn *conn, int events, TimestampTz deadline);

/*
 * ShardloadClientConnect
 *	  Connect with params by the deadline, holding the password rule; NULL
 *	  with *error set if that fails.  The caller PQfinish()es the result.
 *	  An interrupt (a cancel) closes the connection before it goes on.
 */
PGconn *
ShardloadClientConnect(ShardConnParams *params, TimestampTz deadline, char **error)
{
	PGconn	   *volatile conn = PQconnectStartParams(params->keywords, params->values, false);

	*error = NULL;
	if (conn == NULL)
	{
		*error = pstrdup("out of memory");
		return NULL;
	}
	PG_TRY();
	{
		PostgresPollingStatusType poll = PGRES_POLLING_WRITING;

		while (poll != PGRES_POLLING_OK && *error == NULL)
		{
			int			rc;

			/* libpq is asked again only once its socket is ready */
			poll = PQconnectPoll(conn);
			if (poll == PGRES_POLLING_FAILED)
				*error = pchomp(PQerrorMessage(conn));
			else if (poll != PGRES_POLLING_OK)
			{
				while ((rc = wait_for(conn, poll == PGRES_POLLING_READING ?
									  WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, deadline)) == WL_LATCH_SET)
					;
				if (rc == 0)
					*error = pstrdup("the server did not answer in time");
			}
		}
		if (*error == NULL && params->require_password && !PQconnectionUsedPassword(conn))
			*error = pstrdup("password is required: the server did not request a password of a non-superuser's user mapping");
	}
	PG_CATCH();
	{
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (*error != NULL)
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * ShardloadClientQuery
 *	  Run sql (several statements allowed) by the deadline; returns the last
 *	  result, or NULL with *error (and *sqlstate, if the shard gave one)
 *	  set.  The caller PQclear()s the result.
 */
PGresult *
ShardloadClientQuery(PGconn *conn, const char *sql, TimestampTz deadline, char **error,
					 char *sqlstate)
{
	PGresult   *last = NULL;

	*error = NULL;
	if (sqlstate)
		strlcpy(sqlstate, "08006", 6);
	if (!PQsendQuery(conn, sql))
	{
		*error = pchomp(PQerrorMessage(conn));
		return NULL;
	}
	for (;;)
	{
		PGresult   *res;

		while (PQisBusy(conn))
		{
			int			rc = wait_for(conn, WL_SOCKET_READABLE, deadline);

			if (rc == 0)
				*error = pstrdup("the server did not answer in time");
			else if (rc == WL_SOCKET_READABLE && !PQconsumeInput(conn))
				*error = pchomp(PQerrorMessage(conn));
			if (*error)
			{
				if (last)
					PQclear(last);
				return NULL;
			}
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && *error == NULL)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			*error = pstrdup(message ? message : "");
			if (sqlstate && state)
				strlcpy(sqlstate, state, 6);
		}
		if (last)
			PQclear(last);
		last = res;
	}
	if (*error)
	{
		if (last)
			PQclear(last);
		return NULL;
	}
	return last;
}

/*
 * wait_for
 *	  Wait until conn's socket has events (returns them), the deadline
 *	  passes (0) or the latch is set (WL_LATCH_SET); interrupts are served.
 */
static int
wait_for(PGconn *conn, int events, TimestampTz deadline)
{
	long		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	int			rc;

	if (timeout <= 0)
		return 0;
	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
						   PQsocket(conn), timeout, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (rc & events)
		return rc & events;
	return (rc & WL_LATCH_SET) ? WL_LATCH_SET : 0;
}
