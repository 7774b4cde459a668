/*-------------------------------------------------------------------------
 * atomic.c
 *	  Atomic batches: all shards or none.  An attempt of an atomic batch
 *	  PREPAREs each slice, with its ledger row, on its shard under a
 *	  transaction id that names this coordinator, the batch, the attempt
 *	  and the slice (ShardloadAtomicGidPrefix); the decision is
 *	  shardload.atomic_attempt.decided_at, set in the coordinator
 *	  transaction that commits the local slices; then every prepared slice
 *	  is committed, or, without a decision, rolled back.
 *
 *	  The atomic_attempt row is committed before the first PREPARE, and
 *	  the batch's lock is held from then until the decision is committed,
 *	  so recovery (which takes that lock) never judges an attempt that is
 *	  still deciding: with the lock, no decision means none will come.
 *	  Recovery runs before each attempt of the batch (a prepared slice
 *	  would block the new one's ledger row), in run_due and in runners.
 *	  A prepared transaction is ended by the role that made it: the
 *	  batch's owner, through its user mapping.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "atomic.h"
#include "connection.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "shard_client.h"
#include "subxact.h"

/* How long ending one server's prepared transactions may take. */
#define RESOLVE_TIMEOUT_MS	(10 * 1000)

typedef struct RecoverStep
{
	int64		batch_id;
	int			attempt;
	Oid			owner;
	bool		resolved;
} RecoverStep;

typedef struct ParamsStep
{
	Oid			serverid;
	Oid			owner;
	ShardConnParams *params;
} ParamsStep;

static void recover_step(void *arg);
static void params_step(void *arg);
static bool resolve_on_server(const char *servername, Oid owner, const char *pattern,
							  bool commit, char **error);
static char *gid_pattern(const char *coordinator_id, int64 batch_id, int attempt);

/*
 * ShardloadAtomicGidPrefix
 *	  The prepared transactions of an attempt are named this prefix and
 *	  their slice number: "shardload:<coordinator id>:<batch>:<attempt>:".
 */
char *
ShardloadAtomicGidPrefix(const char *coordinator_id, int64 batch_id, int attempt)
{
	return psprintf("shardload:%s:%lld:%d:", coordinator_id, (long long) batch_id, attempt);
}

static char *
gid_pattern(const char *coordinator_id, int64 batch_id, int attempt)
{
	return psprintf("%s%%", ShardloadAtomicGidPrefix(coordinator_id, batch_id, attempt));
}

/*
 * ShardloadAtomicBegin
 *	  An attempt of an atomic batch begins (in the begin step, before
 *	  anything is PREPAREd): record that it may leave prepared slices.
 */
void
ShardloadAtomicBegin(int64 batch_id, int attempt)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, batch_id);
	ShardloadArgInt4(&args, attempt);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("INSERT INTO shardload.atomic_attempt (batch_id, attempt) VALUES ($1, $2)"
					" ON CONFLICT DO NOTHING", &args);
	ShardloadCatalogEnd(&session);
}

/*
 * ShardloadAtomicDecide
 *	  Every slice is prepared or loaded locally: the decision to commit,
 *	  in the transaction that commits the local slices.
 */
void
ShardloadAtomicDecide(int64 batch_id, int attempt)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, batch_id);
	ShardloadArgInt4(&args, attempt);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("UPDATE shardload.atomic_attempt SET decided_at = clock_timestamp()"
					" WHERE batch_id = $1 AND attempt = $2", &args);
	ShardloadCatalogEnd(&session);
}

/*
 * ShardloadAtomicResolve
 *	  End the prepared slices of one attempt on every server the batch's
 *	  slices go to: COMMIT PREPARED if commit (the decision is recorded),
 *	  else ROLLBACK PREPARED.  Once every server has answered, the
 *	  attempt's atomic_attempt row goes.  The caller holds the batch's
 *	  lock.  Returns NULL, or what kept a server from being resolved.
 */
char *
ShardloadAtomicResolve(int64 batch_id, int attempt, Oid owner, bool commit)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	List	   *servers = NIL;
	char	   *coordinator_id;
	char	   *failed = NULL;
	ListCell   *lc;

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(attempt);
	ShardloadCatalogBegin(&session);
	coordinator_id = ShardloadCoordinatorId(&session);
	ShardloadSpiExec("SELECT DISTINCT shard FROM shardload.slice"
					 " WHERE batch_id = $1 AND shard IS NOT NULL ORDER BY shard",
					 1, argtypes, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
		servers = lappend(servers, ShardloadSpiText(&session, i, 1));
	ShardloadCatalogEnd(&session);

	foreach(lc, servers)
	{
		char	   *error = NULL;

		if (!resolve_on_server(lfirst(lc), owner, gid_pattern(coordinator_id, batch_id, attempt),
							   commit, &error) && failed == NULL)
			failed = psprintf("server \"%s\": %s", (char *) lfirst(lc), error);
	}
	if (failed != NULL)
		return failed;
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("DELETE FROM shardload.atomic_attempt WHERE batch_id = $1 AND attempt = $2",
					 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
	return NULL;
}

/*
 * ShardloadAtomicRecoverBatch
 *	  Before a new attempt of an atomic batch (its lock held): end what
 *	  earlier attempts left prepared, by their decisions.  Returns NULL,
 *	  or what is still unresolved (the new attempt must not run: its
 *	  ledger rows would wait on the prepared ones).
 */
char *
ShardloadAtomicRecoverBatch(int64 batch_id, Oid owner)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	int			n;
	int		   *attempts;
	bool	   *decided;

	ShardloadCatalogBegin(&session);
	n = (int) ShardloadSpiExec("SELECT attempt, decided_at IS NOT NULL FROM shardload.atomic_attempt"
							   " WHERE batch_id = $1 ORDER BY attempt", 1, argtypes, values, NULL);
	attempts = MemoryContextAlloc(session.outer, sizeof(int) * Max(n, 1));
	decided = MemoryContextAlloc(session.outer, sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		attempts[i] = (int) ShardloadSpiInt64(i, 1, NULL);
		decided[i] = ShardloadSpiBool(i, 2, NULL);
	}
	ShardloadCatalogEnd(&session);
	for (int i = 0; i < n; i++)
	{
		char	   *failed = ShardloadAtomicResolve(batch_id, attempts[i], owner, decided[i]);

		if (failed)
			return psprintf("attempt %d: %s", attempts[i], failed);
	}
	return NULL;
}

/*
 * ShardloadAtomicRecoverAll
 *	  A recovery pass (run_due, runners): every attempt that may have left
 *	  prepared slices and whose batch no one runs now is resolved by its
 *	  decision; only_own: only the current role's batches, unless it is a
 *	  shardload_admin.  Returns how many attempts were resolved.
 */
int
ShardloadAtomicRecoverAll(bool only_own)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	int			n;
	int			resolved = 0;
	int64	   *batches;
	int		   *attempts;
	Oid		   *owners;

	ShardloadArgOid(&args, GetUserId());
	ShardloadArgBool(&args, only_own && !ShardloadIsAdmin(GetUserId()));
	ShardloadCatalogBegin(&session);
	n = (int) ShardloadSpiRun("SELECT a.batch_id, a.attempt, b.owner::oid"
							  " FROM shardload.atomic_attempt a JOIN shardload.batch b USING (batch_id)"
							  " WHERE NOT $2 OR b.owner = $1"
							  " ORDER BY a.batch_id, a.attempt LIMIT 100", &args);
	batches = MemoryContextAlloc(session.outer, sizeof(int64) * Max(n, 1));
	attempts = MemoryContextAlloc(session.outer, sizeof(int) * Max(n, 1));
	owners = MemoryContextAlloc(session.outer, sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		batches[i] = ShardloadSpiInt64(i, 1, NULL);
		attempts[i] = (int) ShardloadSpiInt64(i, 2, NULL);
		owners[i] = (Oid) ShardloadSpiInt64(i, 3, NULL);
	}
	ShardloadCatalogEnd(&session);

	for (int i = 0; i < n; i++)
	{
		RecoverStep step = {batches[i], attempts[i], owners[i], false};
		LOCKTAG		tag;
		ErrorData  *edata;

		ShardloadBatchLockTag(&tag, batches[i]);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			continue;			/* an attempt is running: it decides */
		PG_TRY();
		{
			/* a batch that cannot be resolved (no user mapping, say) holds up no other */
			edata = ShardloadTryStep(recover_step, &step, false);
			if (edata != NULL)
				ereport(WARNING,
						(errmsg("could not resolve the prepared transactions of batch %lld: %s",
								(long long) batches[i], edata->message)));
		}
		PG_FINALLY();
		{
			LockRelease(&tag, ExclusiveLock, true);
		}
		PG_END_TRY();
		resolved += step.resolved ? 1 : 0;
	}
	return resolved;
}

/*
 * ShardloadAtomicInDoubt
 *	  Whether an attempt may have left prepared slices that no running
 *	  attempt will end (its batch's lock is free): work for a runner.
 */
bool
ShardloadAtomicInDoubt(void)
{
	ShardloadCatalogSession session;
	bool		found;

	ShardloadCatalogBegin(&session);
	found = ShardloadSpiExec("SELECT 1 FROM shardload.atomic_attempt a WHERE NOT EXISTS ("
							 " SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'"
							 " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
							 "   WHERE datname = pg_catalog.current_database())"
							 " AND l.classid::bigint = a.batch_id >> 32"
							 " AND l.objid::bigint = a.batch_id & 4294967295"
							 " AND l.objsubid = " CppAsString2(SHARDLOAD_LOCK_FIELD4) ") LIMIT 1",
							 0, NULL, NULL, NULL) > 0;
	ShardloadCatalogEnd(&session);
	return found;
}

/*
 * recover_step
 *	  One attempt of a recovery pass, its batch's lock held: read its
 *	  decision again (the attempt may have ended since) and resolve it.
 */
static void
recover_step(void *arg)
{
	RecoverStep *step = arg;
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(step->batch_id), Int32GetDatum(step->attempt)};
	uint64		found;
	bool		decided = false;

	ShardloadCatalogBegin(&session);
	found = ShardloadSpiExec("SELECT decided_at IS NOT NULL FROM shardload.atomic_attempt"
							 " WHERE batch_id = $1 AND attempt = $2", 2, argtypes, values, NULL);
	if (found > 0)
		decided = ShardloadSpiBool(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	step->resolved = found > 0 &&
		ShardloadAtomicResolve(step->batch_id, step->attempt, step->owner, decided) == NULL;
}

/*
 * resolve_on_server
 *	  Connect to the server as owner and end each of our prepared
 *	  transactions matching pattern in its database.  False (with *error)
 *	  if the server could not be reached or refused.
 */
static bool
resolve_on_server(const char *servername, Oid owner, const char *pattern, bool commit,
				  char **error)
{
	ForeignServer *server = GetForeignServerByName(servername, true);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RESOLVE_TIMEOUT_MS);
	PGconn	   *volatile conn = NULL;
	bool		ok = false;

	if (server == NULL)
	{
		*error = pstrdup("the server no longer exists");
		return false;
	}
	if (!AcquireExternalFD())
	{
		*error = pstrdup("out of file descriptors");
		return false;
	}
	PG_TRY();
	{
		ParamsStep step = {server->serverid, owner, NULL};
		ErrorData  *edata = ShardloadTryStep(params_step, &step, false);
		PGresult   *res;

		/* no user mapping any more, say: an error of this server only */
		if (edata != NULL)
			*error = edata->message;
		conn = edata ? NULL : ShardloadClientConnect(step.params, deadline, error);
		res = conn ? ShardloadClientQuery(conn,
										  psprintf("SELECT gid FROM pg_catalog.pg_prepared_xacts"
												   " WHERE database = pg_catalog.current_database()"
												   " AND gid LIKE %s ORDER BY gid",
												   quote_literal_cstr(pattern)),
										  deadline, error, NULL) : NULL;
		if (res != NULL)
		{
			ok = true;
			for (int i = 0; ok && i < PQntuples(res); i++)
			{
				PGresult   *done = ShardloadClientQuery(conn,
														psprintf("%s PREPARED %s",
																 commit ? "COMMIT" : "ROLLBACK",
																 quote_literal_cstr(PQgetvalue(res, i, 0))),
														deadline, error, NULL);

				ok = done != NULL;
				if (done)
					PQclear(done);
			}
			PQclear(res);
		}
	}
	PG_FINALLY();
	{
		if (conn)
			PQfinish(conn);
		ReleaseExternalFD();
	}
	PG_END_TRY();
	return ok;
}

static void
params_step(void *arg)
{
	ParamsStep *step = arg;

	step->params = ShardloadConnParams(step->serverid, step->owner);
}
