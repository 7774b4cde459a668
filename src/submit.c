/*-------------------------------------------------------------------------
 * submit.c
 *	  shardload.submit*(): validate, claim the batch key, capture the rows.
 *
 *	  The batch row is inserted first with ON CONFLICT DO NOTHING, so of
 *	  several sessions submitting one key at once exactly one captures the
 *	  payload; the others wait for it, then only hash their input to check
 *	  that it is the same content.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "atomic.h"
#include "capture.h"
#include "metadata.h"
#include "pg_shardload.h"
#include "routing.h"
#include "value_forms.h"
#include "wake.h"

static void validate_args(ShardloadSubmitArgs *args);
static void check_columns_travel(ShardloadRouter *router);
static int64 claim_batch_key(ShardloadSubmitArgs *args, Relation rel, bool *is_new);
static bool remove_interrupted(int64 batch_id, Oid owner);
static void capture_rows(Capture *cap, ShardloadSubmitArgs *args);
static void finish_new_batch(Capture *cap, ShardloadSubmitArgs *args, const char *hash);
static void check_same_content(int64 batch_id, ShardloadSubmitArgs *args,
							   Relation rel, const char *hash);

/* A submission between ShardloadSubmitBegin and ShardloadSubmitEnd. */
struct ShardloadSubmission
{
	ShardloadSubmitArgs *args;
	Relation	rel;
	Capture    *cap;
	bool		is_new;			/* false: the key was taken; only hash */
};

/*
 * ShardloadSubmit
 *	  Capture the rows of args->source as a batch of args->target and
 *	  return its id; the same key with the same content returns the
 *	  existing batch.  Runs in the caller's transaction.
 */
int64
ShardloadSubmit(ShardloadSubmitArgs *args)
{
	ShardloadSubmission *sub = ShardloadSubmitBegin(args);

	capture_rows(sub->cap, args);
	return ShardloadSubmitEnd(sub);
}

/*
 * ShardloadSubmitBegin
 *	  Check the arguments and rights, claim the batch key and start the
 *	  capture its rows go to (ShardloadSubmissionCapture).  Allocates in the
 *	  current memory context, which must last until ShardloadSubmitEnd.
 */
ShardloadSubmission *
ShardloadSubmitBegin(ShardloadSubmitArgs *args)
{
	ShardloadSubmission *sub = palloc0(sizeof(ShardloadSubmission));
	ShardloadRouter *router;
	int64		batch_id;

	validate_args(args);
	sub->args = args;
	sub->rel = table_open(args->target, AccessShareLock);
	if (pg_class_aclcheck(args->target, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(sub->rel));
	router = ShardloadRouterCreate(sub->rel);
	check_columns_travel(router);

	batch_id = claim_batch_key(args, sub->rel, &sub->is_new);
	sub->cap = ShardloadCaptureCreate(router, batch_id, sub->is_new,
									  strcmp(args->on_error, "reject") == 0);
	return sub;
}

/*
 * ShardloadSubmitCaptureRows
 *	  Capture the rows of the submission's source.
 */
void
ShardloadSubmitCaptureRows(ShardloadSubmission *sub)
{
	capture_rows(sub->cap, sub->args);
}

Capture *
ShardloadSubmissionCapture(ShardloadSubmission *sub)
{
	return sub->cap;
}

/*
 * ShardloadSubmitEnd
 *	  Finish the capture: record a new batch's slices and hash, or check
 *	  that a taken key holds the same content.  Returns the batch id.
 */
int64
ShardloadSubmitEnd(ShardloadSubmission *sub)
{
	char	   *hash = ShardloadCaptureFinish(sub->cap);

	if (sub->is_new)
		finish_new_batch(sub->cap, sub->args, hash);
	else
		check_same_content(sub->cap->batch_id, sub->args, sub->rel, hash);

	table_close(sub->rel, NoLock);
	if (sub->is_new)
		ShardloadWakeSchedulerAtCommit();
	return sub->cap->batch_id;
}

static void
validate_args(ShardloadSubmitArgs *args)
{
	if (strcmp(args->on_error, "stop") != 0 && strcmp(args->on_error, "reject") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for on_error: \"%s\"", args->on_error),
				 errdetail("Valid values are \"stop\" and \"reject\".")));
	if (args->reject_limit < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reject_limit must not be negative")));
	if (args->batch_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch key must not be empty"),
				 errhint("Use a key that names the data, such as \"sales-2026-11-25-part-0001\".")));
	if (!args->has_ticks && ShardloadIsTickKey(args->batch_key))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("batch key \"%s\" is reserved for cron jobs", args->batch_key),
				 errdetail("Keys that end in \"@YYYY-MM-DDTHH:MM:SSZ\" name the ticks of shardload.schedule() jobs."),
				 errhint("Use another key.")));
	if (strcmp(args->format, "csv") != 0 && strcmp(args->format, "text") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for format: \"%s\"", args->format),
				 errdetail("Valid values are \"csv\" and \"text\".")));
	if (strcmp(args->source_kind, "file") == 0 &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to submit a batch from a file"),
				 errhint("Only roles with privileges of the \"pg_read_server_files\" role may read server files; use submit_csv() to pass the data inline.")));
	if (args->policy != NULL)
	{
		ShardloadCatalogSession session;
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(args->policy)};
		uint64		found;

		ShardloadCatalogBegin(&session);
		found = ShardloadSpiExec("SELECT 1 FROM shardload.retry_policy WHERE policy_name = $1",
								 1, argtypes, values, NULL);
		ShardloadCatalogEnd(&session);
		if (found == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("retry policy \"%s\" does not exist", args->policy),
					 errhint("Policies are rows of shardload.retry_policy.")));
	}
}

/*
 * check_columns_travel
 *	  Object identifiers (regclass and the like) name objects of this
 *	  database only: a table with foreign partitions cannot take them, as
 *	  no text of them means the same object on a shard.
 */
static void
check_columns_travel(ShardloadRouter *router)
{
	TupleDesc	tupdesc = RelationGetDescr(router->rel);
	bool		foreign = false;

	for (int i = 0; i < router->nparts; i++)
		foreign |= get_rel_relkind(router->part_oids[i]) == RELKIND_FOREIGN_TABLE;
	if (!foreign)
		return;
	for (int i = 0; i < router->ncolumns; i++)
	{
		Oid			type = TupleDescAttr(tupdesc, router->columns[i] - 1)->atttypid;

		if (ShardloadTypeHasOid(type))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of type %s cannot be loaded into foreign partitions",
							router->column_names[i], format_type_be(type)),
					 errdetail("Its values are object identifiers of this database, which name other objects or none on another server."),
					 errhint("Store the object's name as text instead.")));
	}
}

/*
 * claim_batch_key
 *	  Insert the batch row, or find the one that holds (target, key).
 *	  Waits for a concurrent submitter of the same key to finish.
 */
static int64
claim_batch_key(ShardloadSubmitArgs *args, Relation rel, bool *is_new)
{
	ShardloadCatalogSession session;
	ShardloadArgs row = {0};
	ShardloadArgs key;
	int64		batch_id;
	Oid			owner;
	bool		unstored;
	bool		retried = false;

	ShardloadArgOid(&row, args->target);
	ShardloadArgText(&row, quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													  RelationGetRelationName(rel)));
	ShardloadArgText(&row, args->batch_key);
	ShardloadArgText(&row, args->tenant);
	ShardloadArgOid(&row, GetUserId());
	ShardloadArgText(&row, args->policy);
	ShardloadArgText(&row, args->on_error);
	ShardloadArgInt8(&row, args->reject_limit);
	ShardloadArgText(&row, args->source_kind);
	ShardloadArg(&row, BOOLOID, BoolGetDatum(args->atomic), !args->atomic_given);
	/* (target, batch_key): the first three */
	key = row;
	key.n = 3;

	ShardloadCatalogBegin(&session);
again:
	ShardloadSpiRun("INSERT INTO shardload.batch (target, target_name, batch_key, tenant,"
					" owner, policy_name, on_error, reject_limit, source_kind, atomic)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10,"
					"  (SELECT atomic FROM shardload.target_policy WHERE target = $1), false))"
					" ON CONFLICT (target, batch_key) DO NOTHING RETURNING batch_id",
					&row);
	*is_new = SPI_processed == 1;
	if (*is_new)
	{
		batch_id = ShardloadSpiInt64(0, 1, NULL);
		ShardloadCatalogEnd(&session);
		return batch_id;
	}

	ShardloadSpiRun("SELECT batch_id, owner::oid, NOT payload_stored AND state <> 'succeeded'"
					" FROM shardload.batch WHERE target = $1 AND batch_key = $3",
					&key);
	if (SPI_processed != 1)
		elog(ERROR, "could not find the batch that holds key \"%s\"", args->batch_key);
	batch_id = ShardloadSpiInt64(0, 1, NULL);
	owner = (Oid) ShardloadSpiInt64(0, 2, NULL);
	unstored = ShardloadSpiBool(0, 3, NULL);
	ShardloadCatalogEnd(&session);

	if (owner != GetUserId())
	{
		ShardloadBatch batch = {.batch_id = batch_id,.owner = owner};

		ShardloadCheckBatchAccess(&batch);
	}
	/* a direct load that was interrupted: the key is free once it is ended */
	if (unstored && !retried && remove_interrupted(batch_id, owner))
	{
		retried = true;
		ShardloadCatalogBegin(&session);
		goto again;
	}
	return batch_id;
}

/*
 * remove_interrupted
 *	  The batch holding the key was committed by a direct load that did not
 *	  finish (direct_load.c) and no session runs it: end its prepared
 *	  slices, which removes it.  True if it is gone.
 */
static bool
remove_interrupted(int64 batch_id, Oid owner)
{
	LOCKTAG		tag;
	bool		gone;

	ShardloadBatchLockTag(&tag, batch_id);
	if (!ShardloadBatchLockFree(&tag))
		return false;			/* its load is still going on */
	PG_TRY();
	{
		gone = ShardloadAtomicResolve(batch_id, owner) == NULL;
	}
	PG_FINALLY();
	{
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();
	return gone;
}

static void
capture_rows(Capture *cap, ShardloadSubmitArgs *args)
{
	if (strcmp(args->source_kind, "query") == 0)
		ShardloadCaptureFromQuery(cap, args->source, args->has_ticks ? args->ticks : NULL);
	else if (strcmp(args->source_kind, "csv") == 0)
		ShardloadCaptureFromCopy(cap, args->source, NULL, "csv", args->header);
	else
		ShardloadCaptureFromCopy(cap, NULL, args->source, args->format, args->header);
}

/*
 * finish_new_batch
 *	  Record the captured slices and content hash; point out an earlier
 *	  batch of the same target with identical content.
 */
static void
finish_new_batch(Capture *cap, ShardloadSubmitArgs *args, const char *hash)
{
	ShardloadCatalogSession session;
	ShardloadArgs update = {0};
	ShardloadArgs same = {0};
	const char *lc_monetary = NULL;
	int64		bytes = 0;
	TupleDesc	tupdesc = RelationGetDescr(cap->router->rel);

	for (int i = 0; i < cap->nslices; i++)
		bytes += cap->slices[i].bytes;
	ShardloadCaptureRecordSlices(cap);

	/* money was written under this session's lc_monetary: read it so too */
	for (int i = 0; i < cap->router->ncolumns; i++)
		if (ShardloadTypeHasMoney(TupleDescAttr(tupdesc, cap->router->columns[i] - 1)->atttypid))
			lc_monetary = GetConfigOption("lc_monetary", false, false);
	ShardloadArgInt8(&update, cap->batch_id);
	ShardloadArgText(&update, hash);
	ShardloadArgInt8(&update, cap->rows);
	ShardloadArgInt8(&update, bytes);
	ShardloadArgInt8(&update, cap->rejected);
	ShardloadArgText(&update, ShardloadColumnListText(cap->router));
	ShardloadArgText(&update, lc_monetary);
	ShardloadCatalogBegin(&session);
	ShardloadSpiRun("UPDATE shardload.batch SET content_hash = $2, rows_total = $3,"
					" payload_bytes = $4, rows_rejected = $5, columns = $6, lc_monetary = $7"
					" WHERE batch_id = $1",
					&update);
	/* only the caller's own batches: another role's keys are not ours to show */
	ShardloadArgInt8(&same, cap->batch_id);
	ShardloadArgText(&same, hash);
	ShardloadArgOid(&same, args->target);
	ShardloadArgOid(&same, GetUserId());
	ShardloadSpiRun("SELECT batch_id, batch_key FROM shardload.batch"
					" WHERE batch_id <> $1 AND content_hash = $2 AND target = $3"
					" AND owner = $4 ORDER BY batch_id LIMIT 1",
					&same);
	if (cap->rejected > 0)
		ereport(NOTICE,
				(errmsg("%lld of %lld rows of batch %lld were rejected",
						(long long) cap->rejected, (long long) cap->rows,
						(long long) cap->batch_id),
				 errdetail("The batch may reject at most %lld rows.", (long long) args->reject_limit),
				 errhint("See SELECT * FROM shardload.rejects WHERE batch_id = %lld.",
						 (long long) cap->batch_id)));
	if (SPI_processed == 1 && cap->rows > 0)
	{
		int64		twin = ShardloadSpiInt64(0, 1, NULL);
		char	   *twin_key = ShardloadSpiText(&session, 0, 2);

		ShardloadCatalogEnd(&session);
		ereport(NOTICE,
				(errmsg("batch %lld has the same content as batch %lld (key \"%s\")",
						(long long) cap->batch_id, (long long) twin, twin_key),
				 errdetail("Both have content hash %.12s.", hash),
				 errhint("The key decides: this batch is loaded as well. Cancel it with shardload.cancel(%lld) if that is not wanted.",
						 (long long) cap->batch_id)));
		return;
	}
	ShardloadCatalogEnd(&session);
}

/*
 * check_same_content
 *	  A resubmitted key: the same content returns the batch with a NOTICE,
 *	  other content is an error.
 */
static void
check_same_content(int64 batch_id, ShardloadSubmitArgs *args, Relation rel,
				   const char *hash)
{
	ShardloadCatalogSession session;
	ShardloadBatch *batch;

	ShardloadCatalogBegin(&session);
	batch = ShardloadBatchFetch(&session, batch_id, false);
	ShardloadCatalogEnd(&session);

	if (strcmp(batch->content_hash, hash) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SHARDLOAD_BATCH_KEY_CONFLICT),
				 errmsg("batch key \"%s\" of table \"%s\" was already used for other content",
						args->batch_key, RelationGetRelationName(rel)),
				 errdetail("Batch %lld has content hash %.12s; this submission has %.12s.",
						   (long long) batch_id, batch->content_hash, hash),
				 errhint("Submit new content under a new batch key.")));
	ereport(NOTICE,
			(errmsg("batch key \"%s\" was already submitted as batch %lld with the same content",
					args->batch_key, (long long) batch_id),
			 errdetail("Nothing new was queued; the batch is %s.", ShardloadBatchStateName(batch->state))));
}

/*
 * ShardloadIsTickKey
 *	  Whether key has the form of a cron tick's key, "<job>@YYYY-MM-DDTHH:MM:SSZ":
 *	  only the scheduler may submit those, so no role can take a job's
 *	  tick key before the job does.
 */
bool
ShardloadIsTickKey(const char *key)
{
	static const char pattern[] = "@dddd-dd-ddTdd:dd:ddZ";
	size_t		len = strlen(key);
	size_t		plen = strlen(pattern);
	const char *tail;

	if (len < plen)
		return false;
	tail = key + len - plen;
	for (size_t i = 0; i < plen; i++)
	{
		if (pattern[i] == 'd' ? !isdigit((unsigned char) tail[i]) : tail[i] != pattern[i])
			return false;
	}
	return true;
}
