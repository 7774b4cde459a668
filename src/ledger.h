/*-------------------------------------------------------------------------
 * ledger.h
 *	  The slice ledger kept on each shard.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_LEDGER_H
#define SHARDLOAD_LEDGER_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* Identifies one slice in every shard's ledger. */
typedef struct LedgerSliceKey
{
	const char *coordinator_id;
	int64		batch_id;
	int			slice_no;
	const char *content_hash;
} LedgerSliceKey;

extern const char *ShardloadLedgerDdl(void);
extern const char *ShardloadLedgerTightenSql(void);
extern char *ShardloadLedgerProbeSql(const char *lc_monetary, bool fixed_forms,
									 const char *extra);
extern char *ShardloadLedgerCreateSql(void);
extern char *ShardloadLedgerBeginAndCheckSql(LedgerSliceKey *key, bool with_reasons);
extern char *ShardloadLedgerGroupCheckSql(const char *coordinator_id, int64 *batch_ids, int n,
										  bool with_reasons);
extern void ShardloadLedgerInsertStart(StringInfo sql, bool with_reasons);
extern void ShardloadLedgerInsertRow(StringInfo sql, bool first, LedgerSliceKey *key,
									 const char *remote_table, int64 rows, int64 *skipped,
									 char **reasons, int nskipped, bool with_reasons);
extern char *ShardloadLedgerRecordAndCommitSql(LedgerSliceKey *key, const char *remote_table,
											   int64 rows, int64 *skipped, char **reasons,
											   int nskipped, bool commit);

#endif							/* SHARDLOAD_LEDGER_H */
