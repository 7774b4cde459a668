/*-------------------------------------------------------------------------
 * metadata.h
 *	  Access to the shardload.* catalog tables.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_METADATA_H
#define SHARDLOAD_METADATA_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"

/* A catalog session: SPI connected, running as the extension owner. */
typedef struct ShardloadCatalogSession
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
	MemoryContext outer;		/* where results are copied to */
} ShardloadCatalogSession;

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
	char	   *state;
	int			attempts;
	int			series_start;
	int64		rows_total;
	int64		rows_rejected;
	bool		payload_purged;
	char	   *columns;		/* the column layout of the payload */
	char	   *lc_monetary;	/* of the submitting session, if money values */
} ShardloadBatch;

extern Oid	ShardloadExtensionOwner(void);
extern void ShardloadCatalogBegin(ShardloadCatalogSession *session);
extern void ShardloadCatalogEnd(ShardloadCatalogSession *session);
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
extern char *ShardloadCoordinatorId(ShardloadCatalogSession *session);
extern int64 ShardloadPurgePayloads(void);

#endif							/* SHARDLOAD_METADATA_H */
