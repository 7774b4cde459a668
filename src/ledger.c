/*-------------------------------------------------------------------------
 * ledger.c
 *	  Slice ledger kept on each shard.  A slice commits in the same remote
 *	  transaction as its ledger row, so "in the ledger" means "loaded", even
 *	  after a crash or a lost COMMIT reply.  The primary key makes a second
 *	  loader of the same slice fail at its INSERT and roll its copy back.
 *
 *	  Rows are keyed by the coordinator's id (a uuid made at CREATE
 *	  EXTENSION), so coordinators and databases sharing a shard never
 *	  collide.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "ledger.h"
#include "pg_shardload.h"

/* Any constant works: it only serializes ledger creators on one shard. */
#define LEDGER_CREATE_LOCK	"7305741139183"

/*
 * LedgerProbeSql
 *	  Pins the remote search_path, then asks whether the ledger exists.
 */
const char *
LedgerProbeSql(void)
{
	return "SET search_path = pg_catalog, pg_temp;"
		" SELECT pg_catalog.to_regclass('" SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE "')"
		" IS NOT NULL";
}

/*
 * LedgerCreateSql
 *	  Creates the ledger once, under an advisory lock so that concurrent
 *	  loaders do not race.  Every shard role may read and add rows.
 */
const char *
LedgerCreateSql(void)
{
	return "DO $shardload$ BEGIN"
		" PERFORM pg_catalog.pg_advisory_xact_lock(" LEDGER_CREATE_LOCK ");"
		" IF pg_catalog.to_regclass('" SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE "') IS NULL THEN"
		"  CREATE SCHEMA IF NOT EXISTS " SHARDLOAD_LEDGER_SCHEMA ";"
		"  CREATE TABLE " SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE " ("
		"   coordinator_id uuid NOT NULL,"
		"   batch_id bigint NOT NULL,"
		"   slice_no int NOT NULL,"
		"   target_table text NOT NULL,"
		"   content_hash text NOT NULL,"
		"   rows bigint NOT NULL,"
		"   skipped_lines bigint[] NOT NULL DEFAULT '{}',"
		"   committed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
		"   PRIMARY KEY (coordinator_id, batch_id, slice_no));"
		"  GRANT USAGE ON SCHEMA " SHARDLOAD_LEDGER_SCHEMA " TO PUBLIC;"
		"  GRANT SELECT, INSERT ON " SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE " TO PUBLIC;"
		" END IF;"
		" END $shardload$";
}

static void
append_key_condition(StringInfo sql, LedgerSliceKey *key)
{
	appendStringInfo(sql, "coordinator_id = %s AND batch_id = " INT64_FORMAT
					 " AND slice_no = %d",
					 quote_literal_cstr(key->coordinator_id), key->batch_id, key->slice_no);
}

/*
 * LedgerBeginAndCheckSql
 *	  Opens the slice's remote transaction and returns its ledger row, if
 *	  any: content hash and the slice lines left out (rows refused).
 */
char *
LedgerBeginAndCheckSql(LedgerSliceKey *key)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "BEGIN; SELECT content_hash, skipped_lines::text FROM "
						   SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE " WHERE ");
	append_key_condition(&sql, key);
	return sql.data;
}

/*
 * LedgerRecordAndCommitSql
 *	  Adds the slice's ledger row and commits it with the copied rows.
 */
char *
LedgerRecordAndCommitSql(LedgerSliceKey *key, const char *remote_table, int64 rows,
						 int64 *skipped, int nskipped)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO " SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE
					 " (coordinator_id, batch_id, slice_no, target_table, content_hash, rows,"
					 " skipped_lines) VALUES (%s, " INT64_FORMAT ", %d, %s, %s, " INT64_FORMAT ", '{",
					 quote_literal_cstr(key->coordinator_id), key->batch_id, key->slice_no,
					 quote_literal_cstr(remote_table), quote_literal_cstr(key->content_hash),
					 rows);
	for (int i = 0; i < nskipped; i++)
		appendStringInfo(&sql, "%s" INT64_FORMAT, i > 0 ? "," : "", skipped[i]);
	appendStringInfoString(&sql, "}'); COMMIT");
	return sql.data;
}
