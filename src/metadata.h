/*-------------------------------------------------------------------------
 * metadata.h
 *	  Access to the shardload.* catalog tables.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_METADATA_H
#define SHARDLOAD_METADATA_H

#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"

#include "states.h"

/* A catalog session: SPI connected, running as the extension owner. */
typedef struct ShardloadCatalogSession
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
	MemoryContext outer;		/* where results are copied to */
} ShardloadCatalogSession;

/*
 * The parameters of one catalog statement, added in order ($1, $2, ...)
 * with their types by the ShardloadArg* helpers, then run by
 * ShardloadSpiRun: no parallel arrays of types, values and nulls to keep
 * in step by hand.  A NULL string, bytea or a null Datum is SQL NULL.
 */
#define SHARDLOAD_MAX_ARGS 16
typedef struct ShardloadArgs
{
	int			n;
	Oid			types[SHARDLOAD_MAX_ARGS];
	Datum		values[SHARDLOAD_MAX_ARGS];
	char		nulls[SHARDLOAD_MAX_ARGS];
} ShardloadArgs;

/* A batch as read from shardload.batch (strings in the caller's context). */
typedef struct ShardloadBatch
{
	int64		batch_id;
	Oid			target;
	char	   *target_name;
	char	   *batch_key;
	char	   *tenant;
	Oid			owner;
	char	   *policy_name;
	char	   *on_error;
	int64		reject_limit;
	char	   *content_hash;
	ShardloadBatchState state;
	int			attempts;
	int			series_start;
	int64		rows_total;
	int64		rows_rejected;
	bool		payload_purged;
	char	   *columns;		/* the column layout of the payload */
	char	   *lc_monetary;	/* of the submitting session, if money values */
	bool		atomic;			/* all shards or none (atomic.c) */
	bool		payload_stored; /* false: a direct load (direct_load.c) */
} ShardloadBatch;

extern char *ShardloadInstalledVersion(Oid *owner);
extern Oid	ShardloadExtensionOwner(void);
extern void ShardloadCatalogBegin(ShardloadCatalogSession *session);
extern void ShardloadCatalogEnd(ShardloadCatalogSession *session);
extern void ShardloadArg(ShardloadArgs *args, Oid type, Datum value, bool isnull);
extern void ShardloadArgText(ShardloadArgs *args, const char *value);
extern void ShardloadArgBytea(ShardloadArgs *args, bytea *value);
#define ShardloadArgInt8(args, v)	ShardloadArg((args), INT8OID, Int64GetDatum(v), false)
#define ShardloadArgInt4(args, v)	ShardloadArg((args), INT4OID, Int32GetDatum(v), false)
#define ShardloadArgOid(args, v)	ShardloadArg((args), OIDOID, ObjectIdGetDatum(v), false)
#define ShardloadArgBool(args, v)	ShardloadArg((args), BOOLOID, BoolGetDatum(v), false)
#define ShardloadArgFloat8(args, v)	ShardloadArg((args), FLOAT8OID, Float8GetDatum(v), false)
#define ShardloadArgTimestampTz(args, v) \
	ShardloadArg((args), TIMESTAMPTZOID, TimestampTzGetDatum(v), false)
/* an argument of this type that is NULL */
#define ShardloadArgNull(args, type)	ShardloadArg((args), (type), (Datum) 0, true)
extern uint64 ShardloadSpiRun(const char *sql, ShardloadArgs *args);
extern SPIPlanPtr ShardloadSpiPlan(const char *sql, int nargs, Oid *argtypes);
extern uint64 ShardloadSpiExec(const char *sql, int nargs, Oid *argtypes,
							   Datum *values, const char *nulls);
extern char *ShardloadSpiText(ShardloadCatalogSession *session, int row, int col);
extern int64 ShardloadSpiInt64(int row, int col, bool *isnull);
extern bool ShardloadSpiBool(int row, int col, bool *isnull);
extern double ShardloadSpiFloat8(int row, int col, bool *isnull);
extern TimestampTz ShardloadSpiTimestampTz(int row, int col, bool *isnull);

extern ShardloadBatch *ShardloadBatchFetch(ShardloadCatalogSession *session,
										   int64 batch_id, bool lock);
extern void ShardloadCheckBatchAccess(ShardloadBatch *batch);
extern bool ShardloadIsAdmin(Oid user);
struct LOCKTAG;
extern void ShardloadBatchLockTag(struct LOCKTAG *tag, int64 batch_id);
extern bool ShardloadBatchLockFree(struct LOCKTAG *tag);
extern char *ShardloadCoordinatorId(ShardloadCatalogSession *session);
extern int64 ShardloadPurgePayloads(void);

#endif							/* SHARDLOAD_METADATA_H */
