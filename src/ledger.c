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
#include "value_forms.h"

/* Any constant works: it only serializes ledger creators on one shard. */
#define LEDGER_CREATE_LOCK	"7305741139183"

#define LEDGER_NAME SHARDLOAD_LEDGER_SCHEMA "." SHARDLOAD_LEDGER_TABLE

/*
 * The ledger, created by the shard role that loads through it and private
 * to that role: no other role on the shard may read what was loaded or add
 * rows that would make a slice count as loaded.  Its one source: docs and
 * shardload.ledger_ddl() show this text.
 */
static const char ledger_ddl[] =
"CREATE SCHEMA IF NOT EXISTS " SHARDLOAD_LEDGER_SCHEMA ";\n"
"CREATE TABLE IF NOT EXISTS " LEDGER_NAME " (\n"
"    coordinator_id uuid NOT NULL,\n"
"    batch_id bigint NOT NULL,\n"
"    slice_no int NOT NULL,\n"
"    target_table text NOT NULL,\n"
"    content_hash text NOT NULL,\n"
"    rows bigint NOT NULL,\n"
"    skipped_lines bigint[] NOT NULL DEFAULT '{}',\n"
"    skipped_reasons text[] NOT NULL DEFAULT '{}',\n"
"    committed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
"    PRIMARY KEY (coordinator_id, batch_id, slice_no));\n"
"REVOKE ALL ON SCHEMA " SHARDLOAD_LEDGER_SCHEMA " FROM PUBLIC;\n"
"REVOKE ALL ON TABLE " LEDGER_NAME " FROM PUBLIC;\n";

/*
 * ShardloadLedgerDdl
 *	  The SQL that creates the ledger (idempotent), for a shard's
 *	  administrator to run as the loading role.
 */
const char *
ShardloadLedgerDdl(void)
{
	return ledger_ddl;
}

/*
 * ShardloadLedgerTightenSql
 *	  For a ledger that exists: if this role owns it, take away the PUBLIC
 *	  grants a 0.1 ledger had and add the column for reasons; else nothing.
 */
const char *
ShardloadLedgerTightenSql(void)
{
	return "DO $shardload$ BEGIN"
		" IF pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c"
		"   WHERE c.oid = '" LEDGER_NAME "'::pg_catalog.regclass), 'USAGE') THEN"
		"  REVOKE ALL ON SCHEMA " SHARDLOAD_LEDGER_SCHEMA " FROM PUBLIC;"
		"  REVOKE ALL ON TABLE " LEDGER_NAME " FROM PUBLIC;"
		"  ALTER TABLE " LEDGER_NAME
		"   ADD COLUMN IF NOT EXISTS skipped_reasons text[] NOT NULL DEFAULT '{}';"
		" END IF;"
		" END $shardload$";
}

/*
 * ShardloadLedgerProbeSql
 *	  Configures the shard session to read the fixed value forms (with the
 *	  batch's lc_monetary, or NULL; a batch captured before 0.2, whose
 *	  payload is not in them, only gets the search_path), then asks: does
 *	  the ledger exist, may this role use it, does it keep reasons, and
 *	  which server is this (system identifier and database), does it
 *	  allow prepared transactions, and what is extra (a text expression,
 *	  or NULL).
 */
char *
ShardloadLedgerProbeSql(const char *lc_monetary, bool fixed_forms, const char *extra)
{
	return psprintf("%s SELECT l IS NOT NULL,"
					" l IS NOT NULL AND pg_catalog.has_schema_privilege('" SHARDLOAD_LEDGER_SCHEMA "', 'USAGE')"
					"  AND pg_catalog.has_table_privilege(l, 'SELECT')"
					"  AND pg_catalog.has_table_privilege(l, 'INSERT'),"
					" EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = l"
					"  AND a.attname = 'skipped_reasons' AND NOT a.attisdropped),"
					" (SELECT c.system_identifier::text FROM pg_catalog.pg_control_system() c)"
					"  || '/' || pg_catalog.current_database(),"
					/* trusted only if this role controls table and schema */
					" l IS NULL OR (SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE')"
					"  AND pg_catalog.pg_has_role(n.nspowner, 'USAGE')"
					"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
					"  WHERE c.oid = l),"
					" l IS NOT NULL AND pg_catalog.has_table_privilege('public', l, 'INSERT, UPDATE, DELETE, TRUNCATE'),"
					" pg_catalog.current_setting('max_prepared_transactions')::int > 0,"
					" %s"
					" FROM pg_catalog.to_regclass('" LEDGER_NAME "') AS l",
					fixed_forms ? ShardloadRemoteSessionSql(lc_monetary)
					: "SET search_path = pg_catalog, pg_temp;",
					extra ? extra : "NULL::pg_catalog.text");
}

/*
 * ShardloadLedgerCreateSql
 *	  Creates the ledger once, under an advisory lock so that concurrent
 *	  loaders do not race.
 */
char *
ShardloadLedgerCreateSql(void)
{
	return psprintf("DO $shardload$ BEGIN"
					" PERFORM pg_catalog.pg_advisory_xact_lock(" LEDGER_CREATE_LOCK ");"
					" IF pg_catalog.to_regclass('" LEDGER_NAME "') IS NULL THEN"
					"  EXECUTE %s;"
					" END IF;"
					" END $shardload$",
					quote_literal_cstr(ledger_ddl));
}

static void
append_key_condition(StringInfo sql, LedgerSliceKey *key)
{
	appendStringInfo(sql, "coordinator_id = %s AND batch_id = " INT64_FORMAT
					 " AND slice_no = %d",
					 quote_literal_cstr(key->coordinator_id), key->batch_id, key->slice_no);
}

/*
 * ShardloadLedgerBeginAndCheckSql
 *	  Opens the slice's remote transaction and returns its ledger row, if
 *	  any: content hash, the slice lines left out (rows refused) and, if the
 *	  ledger keeps them, their reasons.
 */
char *
ShardloadLedgerBeginAndCheckSql(LedgerSliceKey *key, bool with_reasons)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "BEGIN; SELECT content_hash, skipped_lines::text, %s FROM "
					 LEDGER_NAME " WHERE ",
					 /* reasons apart by the unit separator, kept out of them */
					 with_reasons ? "pg_catalog.array_to_string(skipped_reasons, E'\\x1f')"
					 : "NULL::text");
	append_key_condition(&sql, key);
	return sql.data;
}

/*
 * ShardloadLedgerGroupCheckSql
 *	  Opens the remote transaction of a group of slices and returns the
 *	  ledger rows of their batches (batch_id, slice_no, then the columns of
 *	  ShardloadLedgerBeginAndCheckSql): one round trip for the group.  The
 *	  caller picks out its slices.
 */
char *
ShardloadLedgerGroupCheckSql(const char *coordinator_id, int64 *batch_ids, int n,
							 bool with_reasons)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "BEGIN; SELECT batch_id, slice_no, content_hash, skipped_lines::text, %s FROM "
					 LEDGER_NAME " WHERE coordinator_id = %s AND batch_id = ANY ('{",
					 with_reasons ? "pg_catalog.array_to_string(skipped_reasons, E'\\x1f')"
					 : "NULL::text",
					 quote_literal_cstr(coordinator_id));
	for (int i = 0; i < n; i++)
		appendStringInfo(&sql, "%s" INT64_FORMAT, i > 0 ? "," : "", batch_ids[i]);
	appendStringInfoString(&sql, "}'::pg_catalog.int8[])");
	return sql.data;
}

/*
 * ShardloadLedgerInsertStart
 *	  Begins an INSERT of ledger rows into sql; ShardloadLedgerInsertRow
 *	  adds each row.  with_reasons: the ledger has a column for reasons.
 */
void
ShardloadLedgerInsertStart(StringInfo sql, bool with_reasons)
{
	appendStringInfo(sql, "INSERT INTO " LEDGER_NAME
					 " (coordinator_id, batch_id, slice_no, target_table, content_hash, rows,"
					 " skipped_lines%s) VALUES ",
					 with_reasons ? ", skipped_reasons" : "");
}

/*
 * ShardloadLedgerInsertRow
 *	  One slice's ledger row (the next of the INSERT begun in sql).  With
 *	  with_reasons, reasons (NULL: none known) hold why each skipped line
 *	  was refused, so a record lost on the coordinator can be rebuilt with
 *	  its reason.
 */
void
ShardloadLedgerInsertRow(StringInfo sql, bool first, LedgerSliceKey *key,
						 const char *remote_table, int64 rows, int64 *skipped,
						 char **reasons, int nskipped, bool with_reasons)
{
	appendStringInfo(sql, "%s(%s, " INT64_FORMAT ", %d, %s, %s, " INT64_FORMAT ", '{",
					 first ? "" : ", ",
					 quote_literal_cstr(key->coordinator_id), key->batch_id, key->slice_no,
					 quote_literal_cstr(remote_table), quote_literal_cstr(key->content_hash),
					 rows);
	for (int i = 0; i < nskipped; i++)
		appendStringInfo(sql, "%s" INT64_FORMAT, i > 0 ? "," : "", skipped[i]);
	appendStringInfoString(sql, "}'");
	if (with_reasons)
	{
		appendStringInfoString(sql, ", ARRAY[");
		for (int i = 0; i < nskipped; i++)
		{
			/* 0x1f separates reasons when they are read back */
			char	   *reason = pstrdup(reasons && reasons[i] ? reasons[i] : "");

			for (char *c = reason; *c; c++)
				if (*c == '\x1f')
					*c = ' ';
			appendStringInfo(sql, "%s%s", i > 0 ? ", " : "", quote_literal_cstr(reason));
		}
		appendStringInfoString(sql, "]::text[]");
	}
	appendStringInfoChar(sql, ')');
}

/*
 * ShardloadLedgerRecordAndCommitSql
 *	  Adds the slice's ledger row and commits it with the copied rows
 *	  (commit; else the transaction stays open).  reasons: as for
 *	  ShardloadLedgerInsertRow, NULL if the ledger has no column for them.
 */
char *
ShardloadLedgerRecordAndCommitSql(LedgerSliceKey *key, const char *remote_table, int64 rows,
								  int64 *skipped, char **reasons, int nskipped, bool commit)
{
	StringInfoData sql;

	initStringInfo(&sql);
	ShardloadLedgerInsertStart(&sql, reasons != NULL);
	ShardloadLedgerInsertRow(&sql, true, key, remote_table, rows, skipped, reasons, nskipped,
							 reasons != NULL);
	if (commit)
		appendStringInfoString(&sql, "; COMMIT");
	return sql.data;
}
