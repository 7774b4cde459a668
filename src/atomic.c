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
 *	  The atomic_attempt row is committed (and flushed) before the first
 *	  PREPARE, and the batch's lock is held from then until the decision is
 *	  committed, so recovery (which takes that lock, and reads decisions in
 *	  READ COMMITTED) never judges an attempt that is still deciding: with
 *	  the lock, no decision means none will come.  Recovery runs before
 *	  each attempt of the batch (a prepared slice would block the new one's
 *	  ledger row), in run_due and in the scheduler's recovery runner.  A
 *	  prepared transaction is ended by the role that made it: the batch's
 *	  owner, through its user mapping.
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
static void attempt_row_exec(const char *sql, int64 batch_id, int attempt);
static void params_step(void *arg);
static bool resolve_on_server(const char *servername, Oid owner, const char *prefix,
							  List *decided, char **error);

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

/*
 * ShardloadAtomicBegin
 *	  An attempt of an atomic batch begins (in the begin step, before
 *	  anything is PREPAREd): record that it may leave prepared slices.
 */
void
ShardloadAtomicBegin(int64 batch_id, int attempt)
{
	attempt_row_exec("INSERT INTO shardload.atomic_attempt (batch_id, attempt) VALUES ($1, $2)"
					 " ON CONFLICT DO NOTHING", batch_id, attempt);
}

/*
 * ShardloadAtomicDecide
 *	  Every slice is prepared or loaded locally: the decision to commit,
 *	  in the transaction that commits the local slices.
 */
void
ShardloadAtomicDecide(int64 batch_id, int attempt)
{
	attempt_row_exec("UPDATE shardload.atomic_attempt SET decided_at = clock_timestamp()"
					 " WHERE batch_id = $1 AND attempt = $2", batch_id, attempt);
}

/*
 * ShardloadAtomicResolve
 *	  End every prepared slice of the batch on every server its slices go
 *	  to: COMMIT PREPARED those of an attempt whose decision is recorded,
 *	  ROLLBACK PREPARED all others (also those of an attempt whose row is
 *	  gone: a PREPARE that landed after its attempt was settled).  The
 *	  caller holds the batch's lock, so no attempt of it is deciding.  Once
 *	  every server has answered, the batch's atomic_attempt rows go, but one
 *	  whose settle_after is still ahead stays (a PREPARE of it may still be
 *	  on its way), and a batch whose direct load was
 *	  interrupted before its rows were stored (direct_load.c) goes too.
 *	  Returns NULL, or what kept a server from being resolved.
 */
char *
ShardloadAtomicResolve(int64 batch_id, Oid owner)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	List	   *servers = NIL;
	List	   *decided = NIL;
	char	   *prefix;
	char	   *failed = NULL;
	ListCell   *lc;

	/*
	 * With one snapshot for the whole transaction, a decision committed
	 * after it began would be invisible and its slices rolled back.
	 */
	if (IsolationUsesXactSnapshot())
		return pstrdup("prepared slices are only ended in a READ COMMITTED transaction");

	ShardloadCatalogBegin(&session);
	prefix = psprintf("shardload:%s:%lld:", ShardloadCoordinatorId(&session), (long long) batch_id);
	/* locked: a recovery in another session waits for none of this */
	ShardloadSpiExec("SELECT attempt FROM shardload.atomic_attempt"
					 " WHERE batch_id = $1 AND decided_at IS NOT NULL FOR UPDATE NOWAIT",
					 1, argtypes, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
		decided = lappend_int(decided, (int) ShardloadSpiInt64(i, 1, NULL));
	ShardloadSpiExec("SELECT DISTINCT shard FROM shardload.slice"
					 " WHERE batch_id = $1 AND shard IS NOT NULL ORDER BY shard",
					 1, argtypes, values, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
		servers = lappend(servers, ShardloadSpiText(&session, i, 1));
	ShardloadCatalogEnd(&session);

	foreach(lc, servers)
	{
		char	   *error = NULL;

		if (!resolve_on_server(lfirst(lc), owner, prefix, decided, &error) && failed == NULL)
			failed = psprintf("server \"%s\": %s", (char *) lfirst(lc), error);
	}
	if (failed != NULL)
		return failed;
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("DELETE FROM shardload.atomic_attempt WHERE batch_id = $1"
					 " AND (settle_after IS NULL OR settle_after < now())",
					 1, argtypes, values, NULL);
	/* a direct load interrupted before its rows were stored: as if never submitted */
	if (ShardloadSpiExec("DELETE FROM shardload.batch WHERE batch_id = $1 AND NOT payload_stored"
						 " AND state <> 'succeeded' AND NOT EXISTS (SELECT FROM shardload.atomic_attempt"
						 "  WHERE batch_id = $1)", 1, argtypes, values, NULL) > 0)
		ereport(LOG,
				(errmsg("batch %lld was removed: its direct load was interrupted before its rows were stored",
						(long long) batch_id)));
	ShardloadCatalogEnd(&session);
	return NULL;
}

/*
 * ShardloadAtomicUnsettled
 *	  A PREPARE of this undecided attempt was sent and its answer never
 *	  came (the connection was given up): it may still land, so the
 *	  attempt's row is kept for a while, and recovery passes look again.
 */
void
ShardloadAtomicUnsettled(int64 batch_id, int attempt)
{
	attempt_row_exec("UPDATE shardload.atomic_attempt SET settle_after = now() + interval '1 minute'"
					 " WHERE batch_id = $1 AND attempt = $2 AND decided_at IS NULL", batch_id, attempt);
}

/*
 * ShardloadAtomicRecoverBatch
 *	  Before a new attempt of an atomic batch (its lock held): end what
 *	  earlier attempts left prepared, by their decisions, if any may have
 *	  (a row is left, or this is not the first attempt: a late PREPARE).
 *	  Returns NULL, or what is still unresolved (the new attempt must not
 *	  run: its ledger rows would wait on the prepared ones).
 */
char *
ShardloadAtomicRecoverBatch(int64 batch_id, int attempt, Oid owner)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	bool		rows;

	ShardloadCatalogBegin(&session);
	rows = ShardloadSpiExec("SELECT 1 FROM shardload.atomic_attempt WHERE batch_id = $1 LIMIT 1",
							1, argtypes, values, NULL) > 0;
	ShardloadCatalogEnd(&session);
	if (!rows && attempt <= 1)
		return NULL;
	return ShardloadAtomicResolve(batch_id, owner);
}

/*
 * ShardloadAtomicRecoverAll
 *	  A recovery pass (run_due, the scheduler's recovery runner): every
 *	  batch that may have left prepared slices and that no one runs now is
 *	  resolved; only_own: only the current role's batches, unless it is a
 *	  shardload_admin.  Returns how many batches were resolved.
 */
int
ShardloadAtomicRecoverAll(bool only_own)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};
	int			n;
	int			resolved = 0;
	int64	   *batches;
	Oid		   *owners;

	if (IsolationUsesXactSnapshot() && ShardloadAtomicInDoubt())
	{
		ereport(WARNING,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("prepared slices of atomic batches were not ended"),
				 errdetail("Recovery needs a READ COMMITTED transaction."),
				 errhint("Run it with default_transaction_isolation = 'read committed'.")));
		return 0;
	}
	if (IsolationUsesXactSnapshot())
		return 0;
	ShardloadArgOid(&args, GetUserId());
	ShardloadArgBool(&args, only_own && !ShardloadIsAdmin(GetUserId()));
	ShardloadCatalogBegin(&session);
	/* the longest waiting first, so that none waits behind the others */
	n = (int) ShardloadSpiRun("SELECT a.batch_id, b.owner::oid"
							  " FROM shardload.atomic_attempt a JOIN shardload.batch b USING (batch_id)"
							  " WHERE NOT $2 OR b.owner = $1"
							  " GROUP BY a.batch_id, b.owner ORDER BY min(a.last_try) NULLS FIRST, a.batch_id"
							  " LIMIT 100", &args);
	batches = MemoryContextAlloc(session.outer, sizeof(int64) * Max(n, 1));
	owners = MemoryContextAlloc(session.outer, sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		batches[i] = ShardloadSpiInt64(i, 1, NULL);
		owners[i] = (Oid) ShardloadSpiInt64(i, 2, NULL);
	}
	ShardloadCatalogEnd(&session);

	for (int i = 0; i < n; i++)
	{
		RecoverStep step = {batches[i], owners[i], false};
		LOCKTAG		tag;
		ErrorData  *edata;

		ShardloadBatchLockTag(&tag, batches[i]);
		if (!ShardloadBatchLockFree(&tag))
			continue;			/* an attempt is running: it decides */
		PG_TRY();
		{
			/* a batch that cannot be resolved holds up no other */
			edata = ShardloadTryStep(recover_step, &step, false);
			if (edata != NULL)
				ereport(WARNING,
						(errmsg("could not end the prepared slices of batch %lld: %s",
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
 *	  One batch of a recovery pass, its lock held; what cannot be resolved
 *	  yet is logged, and tried again after the others.
 */
static void
recover_step(void *arg)
{
	RecoverStep *step = arg;
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(step->batch_id)};
	char	   *failed = ShardloadAtomicResolve(step->batch_id, step->owner);

	step->resolved = failed == NULL;
	if (failed == NULL)
		return;
	ereport(LOG,
			(errmsg("prepared slices of batch %lld are not ended yet: %s",
					(long long) step->batch_id, failed)));
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("UPDATE shardload.atomic_attempt SET last_try = now() WHERE batch_id = $1",
					 1, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}

/*
 * resolve_on_server
 *	  Connect to the server as owner and end each of our prepared
 *	  transactions whose id starts with prefix (one batch's), in its
 *	  database: committed if its attempt is in decided, else rolled back.
 *	  Goes on past a transaction it cannot end.  False (with *error, the
 *	  first thing that went wrong) unless every one was ended.
 */
static bool
resolve_on_server(const char *servername, Oid owner, const char *prefix, List *decided,
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
												   " AND pg_catalog.starts_with(gid, %s) ORDER BY gid",
												   quote_literal_cstr(prefix)),
										  deadline, error, NULL) : NULL;
		if (res != NULL)
		{
			ok = true;
			for (int i = 0; i < PQntuples(res); i++)
			{
				const char *gid = PQgetvalue(res, i, 0);
				int			attempt = atoi(gid + strlen(prefix));
				char	   *gid_error = NULL;
				PGresult   *done;

				done = ShardloadClientQuery(conn,
											psprintf("%s PREPARED %s",
													 list_member_int(decided, attempt) ? "COMMIT" : "ROLLBACK",
													 quote_literal_cstr(gid)),
											deadline, &gid_error, NULL);
				if (done)
					PQclear(done);
				else
				{
					if (ok)
						*error = psprintf("%s: %s", gid, gid_error);
					ok = false;
				}
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

/*
 * attempt_row_exec
 *	  One statement on an attempt's atomic_attempt row ($1 batch, $2 attempt).
 */
static void
attempt_row_exec(const char *sql, int64 batch_id, int attempt)
{
	ShardloadCatalogSession session;
	ShardloadArgs args = {0};

	ShardloadArgInt8(&args, batch_id);
	ShardloadArgInt4(&args, attempt);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun(sql, &args);
	ShardloadCatalogEnd(&session);
}
