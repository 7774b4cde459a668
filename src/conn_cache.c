/*-------------------------------------------------------------------------
 * conn_cache.c
 *	  Shard connections a runner keeps between the batches it runs.
 *
 *	  Opening a connection costs the shard a backend (fork, authentication,
 *	  catalog caches): for small batches, far more than the batch itself.
 *	  A runner (a background worker that runs one batch after another)
 *	  therefore keeps each connection that ended its work idle and clean,
 *	  and the next attempt that needs the same connection takes it again.
 *
 *	  A connection is only ever reused for the same role, the same
 *	  connection options (server, user mapping) and the same session
 *	  settings, so nothing of one role's session reaches another's batch.
 *	  Sessions of the SQL functions (CALL run) keep nothing: their
 *	  connections close with the attempt, as before.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <poll.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/memutils.h"

#include "conn_cache.h"

/* Connections kept at most: one per shard and role is the usual need. */
#define CONN_CACHE_MAX 32

typedef struct CachedConn
{
	char	   *key;
	PGconn	   *conn;
} CachedConn;

static CachedConn cache[CONN_CACHE_MAX];
static int	ncached = 0;
static bool enabled = false;

static void close_all(int code, Datum arg);

/*
 * still_usable
 *	  An idle session gets nothing from its server unless the server ends
 *	  it (a FATAL message, then EOF): anything to read means it is gone.
 */
static bool
still_usable(PGconn *conn)
{
	struct pollfd pfd;

	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE ||
		PQisBusy(conn))
		return false;
	pfd.fd = PQsocket(conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	return pfd.fd >= 0 && poll(&pfd, 1, 0) == 0;
}

/*
 * ShardloadConnCacheEnable
 *	  From now on this process keeps connections (runners only).
 */
void
ShardloadConnCacheEnable(void)
{
	if (enabled)
		return;
	enabled = true;
	on_proc_exit(close_all, (Datum) 0);
}

/*
 * ShardloadConnCacheKey
 *	  What must be equal for a connection to be reused: the role, the
 *	  settings the session was configured with, and every connection option.
 */
char *
ShardloadConnCacheKey(const ShardConnParams *params, const char *lc_monetary, bool fixed_forms)
{
	StringInfoData key;

	/* each part with its length, so no two different lists read the same */
	initStringInfo(&key);
	appendStringInfo(&key, "%u|%d|%d|%zu:%s|%zu:%s", GetUserId(), fixed_forms ? 1 : 0,
					 params->require_password ? 1 : 0,
					 lc_monetary ? strlen(lc_monetary) : 0, lc_monetary ? lc_monetary : "",
					 strlen(params->servername), params->servername);
	for (int i = 0; params->keywords[i] != NULL; i++)
		appendStringInfo(&key, "|%zu:%s=%zu:%s", strlen(params->keywords[i]), params->keywords[i],
						 strlen(params->values[i]), params->values[i]);
	return key.data;
}

/*
 * ShardloadConnCacheTake
 *	  A kept connection for key, or NULL.  One the shard has closed meanwhile
 *	  (a restart, idle_session_timeout) is dropped here instead of failing
 *	  the batch.  The caller
 *	  owns the connection and the external file descriptor it holds.
 */
PGconn *
ShardloadConnCacheTake(const char *key)
{
	for (int i = 0; i < ncached; i++)
	{
		PGconn	   *conn;

		if (strcmp(cache[i].key, key) != 0)
			continue;
		conn = cache[i].conn;
		pfree(cache[i].key);
		cache[i] = cache[--ncached];
		if (still_usable(conn))
			return conn;
		PQfinish(conn);
		ReleaseExternalFD();
		i--;
	}
	return NULL;
}

/*
 * ShardloadConnCacheKeep
 *	  Keep conn (idle, in no transaction) for the next attempt that needs
 *	  key; false if it is not kept, and the caller closes it.
 */
bool
ShardloadConnCacheKeep(const char *key, PGconn *conn)
{
	if (!enabled || ncached >= CONN_CACHE_MAX || PQstatus(conn) != CONNECTION_OK ||
		PQtransactionStatus(conn) != PQTRANS_IDLE || PQisBusy(conn))
		return false;
	cache[ncached].key = MemoryContextStrdup(TopMemoryContext, key);
	cache[ncached].conn = conn;
	ncached++;
	return true;
}

static void
close_all(int code, Datum arg)
{
	for (int i = 0; i < ncached; i++)
	{
		PQfinish(cache[i].conn);
		ReleaseExternalFD();
	}
	ncached = 0;
}
