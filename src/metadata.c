/*-------------------------------------------------------------------------
 * metadata.c
 *	  Access to the shardload.* catalog tables.
 *
 *	  The tables are readable only by the extension owner; callers read them
 *	  through filtered views.  C code reaches them in a "catalog session":
 *	  SPI connected, user switched to the extension owner and search_path
 *	  pinned to pg_catalog, so nothing the caller defines can take part.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "metadata.h"
#include "pg_shardload.h"
#include "role_context.h"

/*
 * ShardloadInstalledVersion
 *	  The version (extversion) of pg_shardload's catalog in this database,
 *	  and its owner; NULL if the extension is not installed.
 */
char *
ShardloadInstalledVersion(Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	/* one look-up by name (as get_extension_oid, which would be a second) */
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pg_shardload"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		version = isnull ? pstrdup("") : TextDatumGetCString(d);
		if (owner)
			*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * ShardloadExtensionOwner
 *	  The role that owns the pg_shardload extension in this database.
 *	  Throws if the extension is not installed, or if its catalog is of
 *	  another version than this library's: another version's columns and
 *	  constraints differ, and acting on them would misbehave.  Not checked
 *	  while pg_shardload's own script runs (CREATE or ALTER EXTENSION moves
 *	  the version itself).
 */
Oid
ShardloadExtensionOwner(void)
{
	Oid			owner = InvalidOid;
	char	   *installed = ShardloadInstalledVersion(&owner);

	if (installed == NULL || !OidIsValid(owner))
		elog(ERROR, "could not find the owner of extension pg_shardload");
	if (strcmp(installed, SHARDLOAD_CATALOG_VERSION) != 0 &&
		!(creating_extension && CurrentExtensionObject == get_extension_oid("pg_shardload", false)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_shardload's catalog in this database is version %s, but its library is version %s",
						installed, SHARDLOAD_CATALOG_VERSION),
				 errhint("Run ALTER EXTENSION pg_shardload UPDATE to bring the catalog to the library's version,"
						 " or install the library of version %s and restart the server.", installed)));
	return owner;
}

/*
 * ShardloadCatalogBegin
 *	  Connect SPI and become the extension owner with a safe search_path.
 *	  Results that must outlive the session are copied to session->outer,
 *	  the memory context current at the call.
 *
 *	  Its statements are planned with seq scans disabled.  They are written
 *	  for the catalog's indexes, and a process keeps the plans it makes
 *	  (spi_plans.c): one made while a table was empty, or just truncated,
 *	  would otherwise read the whole table on every run once it has
 *	  filled, since a scan of nothing costs less than any index scan (a
 *	  transaction that submits thousands of batches fills one as it goes).
 *	  JIT is off: a seq scan that cannot be avoided now costs more than
 *	  jit_above_cost, and no catalog statement gains from compiling.
 */
void
ShardloadCatalogBegin(ShardloadCatalogSession *session)
{
	static const char *const catalog_settings[][2] = {
		{"search_path", SHARDLOAD_SAFE_SEARCH_PATH},
		{"enable_seqscan", "off"},
		{"jit", "off"},
	};
	Oid			owner = ShardloadExtensionOwner();

	session->outer = CurrentMemoryContext;
	GetUserIdAndSecContext(&session->saved_userid, &session->saved_sec_context);
	SetUserIdAndSecContext(owner, session->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE);
	session->guc_nestlevel = NewGUCNestLevel();
	for (int i = 0; i < lengthof(catalog_settings); i++)
		(void) set_config_option(catalog_settings[i][0], catalog_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * ShardloadCatalogEnd
 *	  Undo ShardloadCatalogBegin.  On error, transaction abort does the same.
 */
void
ShardloadCatalogEnd(ShardloadCatalogSession *session)
{
	SPI_finish();
	AtEOXact_GUC(true, session->guc_nestlevel);
	SetUserIdAndSecContext(session->saved_userid, session->saved_sec_context);
}

/*
 * ShardloadSpiExec
 *	  Run one parameterized statement; returns the number of rows.  Throws
 *	  on any SPI failure.
 */
uint64
ShardloadSpiExec(const char *sql, int nargs, Oid *argtypes, Datum *values,
				 const char *nulls)
{
	SPIPlanPtr	plan = ShardloadSpiPlan(sql, nargs, argtypes);
	int			rc;

	if (plan != NULL)
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
	else
		rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * ShardloadArg
 *	  Add the next parameter of a statement (see ShardloadArgs).
 */
void
ShardloadArg(ShardloadArgs *args, Oid type, Datum value, bool isnull)
{
	if (args->n >= SHARDLOAD_MAX_ARGS)
		elog(ERROR, "too many parameters for a catalog statement");
	args->types[args->n] = type;
	args->values[args->n] = isnull ? (Datum) 0 : value;
	args->nulls[args->n] = isnull ? 'n' : ' ';
	args->n++;
}

void
ShardloadArgText(ShardloadArgs *args, const char *value)
{
	ShardloadArg(args, TEXTOID, value ? CStringGetTextDatum(value) : (Datum) 0, value == NULL);
}

void
ShardloadArgBytea(ShardloadArgs *args, bytea *value)
{
	ShardloadArg(args, BYTEAOID, PointerGetDatum(value), value == NULL);
}

/*
 * ShardloadSpiRun
 *	  ShardloadSpiExec with the parameters of args.
 */
uint64
ShardloadSpiRun(const char *sql, ShardloadArgs *args)
{
	return ShardloadSpiExec(sql, args->n, args->types, args->values, args->nulls);
}

/*
 * ShardloadSpiText
 *	  Column col (1-based) of row of the last result as a string in the
 *	  session's outer context, or NULL.
 */
char *
ShardloadSpiText(ShardloadCatalogSession *session, int row, int col)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return value ? MemoryContextStrdup(session->outer, value) : NULL;
}

/*
 * ShardloadSpiInt64
 *	  Column col of row as an int64 (any integer type); 0 if NULL.
 */
int64
ShardloadSpiInt64(int row, int col, bool *isnull)
{
	bool		null;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &null);
	Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, col);

	if (isnull)
		*isnull = null;
	if (null)
		return 0;
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return (int64) DatumGetInt32(d);
		case OIDOID:
		case REGCLASSOID:
		case REGROLEOID:
			return (int64) DatumGetObjectId(d);	/* unsigned */
		case INT8OID:
			return DatumGetInt64(d);
		default:
			elog(ERROR, "unexpected type %u in catalog result", type);
	}
	return 0;
}

/*
 * typed_value
 *	  Column col (1-based) of row of the last result, which must be of
 *	  type; (Datum) 0 if NULL.
 */
static Datum
typed_value(int row, int col, Oid type, bool *isnull)
{
	bool		null;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &null);

	if (SPI_gettypeid(SPI_tuptable->tupdesc, col) != type)
		elog(ERROR, "unexpected type %u in catalog result", SPI_gettypeid(SPI_tuptable->tupdesc, col));
	if (isnull)
		*isnull = null;
	return null ? (Datum) 0 : d;
}

/*
 * ShardloadSpiBool
 *	  Column col (1-based) of row of the last result as a boolean; false
 *	  if NULL.
 */
bool
ShardloadSpiBool(int row, int col, bool *isnull)
{
	return DatumGetBool(typed_value(row, col, BOOLOID, isnull));
}

/*
 * ShardloadSpiFloat8
 *	  Column col (1-based) of row of the last result as a float8; 0 if
 *	  NULL.
 */
double
ShardloadSpiFloat8(int row, int col, bool *isnull)
{
	bool		null;
	Datum		d = typed_value(row, col, FLOAT8OID, &null);

	if (isnull)
		*isnull = null;
	return null ? 0 : DatumGetFloat8(d);	/* float8 Datums are pointers on some platforms */
}

/*
 * ShardloadSpiTimestampTz
 *	  Column col (1-based) of row of the last result as a timestamptz; 0
 *	  if NULL.
 */
TimestampTz
ShardloadSpiTimestampTz(int row, int col, bool *isnull)
{
	bool		null;
	Datum		d = typed_value(row, col, TIMESTAMPTZOID, &null);

	if (isnull)
		*isnull = null;
	return null ? 0 : DatumGetTimestampTz(d);	/* int8 Datums may be pointers too */
}

/*
 * ShardloadBatchFetch
 *	  Read one batch inside a catalog session, optionally locking its row.
 *	  Throws ERRCODE_UNDEFINED_OBJECT if it does not exist.
 */
ShardloadBatch *
ShardloadBatchFetch(ShardloadCatalogSession *session, int64 batch_id, bool lock)
{
	ShardloadBatch *batch;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(batch_id)};
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SELECT batch_id, target::oid, target_name, batch_key, tenant,"
						   " owner::oid, policy_name, on_error, reject_limit, content_hash,"
						   " state, attempts, series_start, rows_total,"
						   " payload_purged_at IS NOT NULL, rows_rejected, columns, lc_monetary, atomic,"
						   " payload_stored"
						   " FROM shardload.batch WHERE batch_id = $1");
	if (lock)
		appendStringInfoString(&sql, " FOR UPDATE");
	if (ShardloadSpiExec(sql.data, 1, argtypes, values, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("batch %lld does not exist", (long long) batch_id)));

	batch = MemoryContextAllocZero(session->outer, sizeof(ShardloadBatch));
	batch->batch_id = batch_id;
	batch->target = (Oid) ShardloadSpiInt64(0, 2, NULL);
	batch->target_name = ShardloadSpiText(session, 0, 3);
	batch->batch_key = ShardloadSpiText(session, 0, 4);
	batch->tenant = ShardloadSpiText(session, 0, 5);
	batch->owner = (Oid) ShardloadSpiInt64(0, 6, NULL);
	batch->policy_name = ShardloadSpiText(session, 0, 7);
	batch->on_error = ShardloadSpiText(session, 0, 8);
	batch->reject_limit = ShardloadSpiInt64(0, 9, NULL);
	batch->content_hash = ShardloadSpiText(session, 0, 10);
	batch->state = ShardloadBatchStateFromName(ShardloadSpiText(session, 0, 11));
	batch->attempts = (int) ShardloadSpiInt64(0, 12, NULL);
	batch->series_start = (int) ShardloadSpiInt64(0, 13, NULL);
	batch->rows_total = ShardloadSpiInt64(0, 14, NULL);
	batch->payload_purged = ShardloadSpiBool(0, 15, NULL);
	batch->rows_rejected = ShardloadSpiInt64(0, 16, NULL);
	batch->columns = ShardloadSpiText(session, 0, 17);
	batch->lc_monetary = ShardloadSpiText(session, 0, 18);
	batch->atomic = ShardloadSpiBool(0, 19, NULL);
	batch->payload_stored = ShardloadSpiBool(0, 20, NULL);
	return batch;
}

/*
 * ShardloadCheckBatchAccess
 *	  A role may act only on its own batches unless it is a member of
 *	  shardload_admin.  Uses the caller's identity (GetUserId() is the
 *	  caller's outside a catalog session).  Throws 42501.
 */
void
ShardloadCheckBatchAccess(ShardloadBatch *batch)
{
	if (GetUserId() == batch->owner || ShardloadIsAdmin(GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for batch %lld", (long long) batch->batch_id),
			 errdetail("The batch belongs to role \"%s\".",
					   GetUserNameFromId(batch->owner, true)),
			 errhint("Only the role that submitted a batch or members of \"shardload_admin\" may act on it.")));
}

/*
 * ShardloadIsAdmin
 *	  Superusers and members of shardload_admin act on every role's
 *	  batches and jobs.
 */
bool
ShardloadIsAdmin(Oid user)
{
	Oid			admin = get_role_oid("shardload_admin", true);

	return superuser_arg(user) || (OidIsValid(admin) && has_privs_of_role(user, admin));
}

/*
 * ShardloadCoordinatorId
 *	  This database's identity in shard ledgers (a uuid as text).
 */
char *
ShardloadCoordinatorId(ShardloadCatalogSession *session)
{
	ShardloadSpiExec("SELECT coordinator_id FROM shardload.node", 0, NULL, NULL, NULL);
	if (SPI_processed != 1)
		elog(ERROR, "shardload.node must hold exactly one row");
	return ShardloadSpiText(session, 0, 1);
}

/*
 * ShardloadPurgePayloads
 *	  Delete the payload of batches that finished more than
 *	  shardload.payload_retention ago; returns how many batches were purged.
 *	  Deleted chunks are reused by later batches once vacuum has seen them,
 *	  so the table does not grow with history.
 */
int64
ShardloadPurgePayloads(void)
{
	ShardloadCatalogSession session;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(shardload_payload_retention)};
	int64		purged;

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("WITH done AS ("
					 "  UPDATE shardload.batch SET payload_purged_at = now()"
					 "  WHERE payload_purged_at IS NULL AND finished_at IS NOT NULL"
					 "    AND finished_at < now() - make_interval(secs => $1)"
					 "  RETURNING batch_id),"
					 " gone AS (DELETE FROM shardload.payload p USING done"
					 "  WHERE p.batch_id = done.batch_id)"
					 " SELECT count(*) FROM done",
					 1, argtypes, values, NULL);
	purged = ShardloadSpiInt64(0, 1, NULL);
	ShardloadCatalogEnd(&session);
	return purged;
}

/*
 * ShardloadBatchLockTag
 *	  The session lock an attempt holds on its batch (an advisory lock, so
 *	  that the claim can see it in pg_locks).
 */
void
ShardloadBatchLockTag(LOCKTAG *tag, int64 batch_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (batch_id >> 32),
						 (uint32) batch_id, SHARDLOAD_LOCK_FIELD4);
}

/*
 * ShardloadBatchLockFree
 *	  Take the batch's lock (tag) if no session holds it, this one neither
 *	  (its own direct load in progress holds it): true if taken, and the
 *	  caller releases it.
 */
bool
ShardloadBatchLockFree(LOCKTAG *tag)
{
	LockAcquireResult result = LockAcquire(tag, ExclusiveLock, true, true);

	if (result == LOCKACQUIRE_ALREADY_HELD || result == LOCKACQUIRE_ALREADY_CLEAR)
		LockRelease(tag, ExclusiveLock, true);
	return result == LOCKACQUIRE_OK;
}
