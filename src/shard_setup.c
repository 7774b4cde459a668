/*-------------------------------------------------------------------------
 * shard_setup.c
 *	  shardload.prepare_shard(server) and shardload.ledger_ddl(): creating
 *	  the slice ledger on a shard ahead of the first load, as the role that
 *	  will load through it (its user mapping), so the ledger is that role's
 *	  and nobody else's.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "connection.h"
#include "ledger.h"
#include "pg_shardload.h"
#include "shard_client.h"

PG_FUNCTION_INFO_V1(shardload_ledger_ddl);
PG_FUNCTION_INFO_V1(shardload_prepare_shard);

/* How long prepare_shard waits for the shard, connecting and running. */
#define PREPARE_TIMEOUT_MS	(30 * 1000)

static PGresult *run_query(PGconn *conn, const char *sql, TimestampTz deadline,
						   const char *server);

Datum
shardload_ledger_ddl(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ShardloadLedgerDdl()));
}

/*
 * shardload_prepare_shard
 *	  Connect to server through the caller's user mapping and create the
 *	  ledger there (idempotent).  Returns what it found or did.
 */
Datum
shardload_prepare_shard(PG_FUNCTION_ARGS)
{
	char	   *servername = NameStr(*PG_GETARG_NAME(0));
	ForeignServer *server = GetForeignServerByName(servername, false);
	ShardConnParams *params = ShardloadConnParams(server->serverid, GetUserId());
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PREPARE_TIMEOUT_MS);
	PGconn	   *volatile conn = NULL;
	char	   *outcome = NULL;

	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not connect to server \"%s\": out of file descriptors", servername)));
	PG_TRY();
	{
		PGresult   *res;
		bool		existed;
		char	   *error = NULL;

		ShardConnParams any_auth = *params;

		/* the password rule is checked here, to say so in postgres_fdw's words */
		any_auth.require_password = false;
		conn = ShardloadClientConnect(&any_auth, deadline, &error);
		if (conn == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to server \"%s\"", servername),
					 errdetail_internal("%s", error)));
		if (params->require_password && !PQconnectionUsedPassword(conn))
			ereport(ERROR,
					(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
					 errmsg("password is required"),
					 errdetail("Non-superuser cannot connect if the server does not request a password."),
					 errhint("Target server's authentication method must be changed or password_required=false set in the user mapping attributes.")));
		res = run_query(conn, "SET search_path = pg_catalog, pg_temp;"
						" SELECT pg_catalog.to_regclass('" SHARDLOAD_LEDGER_SCHEMA "."
						SHARDLOAD_LEDGER_TABLE "') IS NOT NULL",
						deadline, servername);
		existed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		/* CREATE SCHEMA IF NOT EXISTS needs CREATE even when the schema is there */
		PQclear(run_query(conn, existed ? ShardloadLedgerTightenSql() : ShardloadLedgerDdl(),
						  deadline, servername));
		outcome = psprintf("ledger %s.%s %s on server \"%s\"", SHARDLOAD_LEDGER_SCHEMA,
						   SHARDLOAD_LEDGER_TABLE, existed ? "already exists" : "created",
						   servername);
	}
	PG_FINALLY();
	{
		if (conn)
			PQfinish(conn);
		ReleaseExternalFD();
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/*
 * run_query
 *	  Run sql (several statements allowed) by the deadline; returns the
 *	  last result, throws the shard's error.
 */
static PGresult *
run_query(PGconn *conn, const char *sql, TimestampTz deadline, const char *server)
{
	char	   *error;
	char		sqlstate[6];
	PGresult   *res = ShardloadClientQuery(conn, sql, deadline, &error, sqlstate);

	if (res == NULL)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
				 errmsg("could not prepare the slice ledger on server \"%s\": %s", server, error),
				 errhint("The role of the user mapping needs CREATE on the shard's database, or the shard's administrator runs the SQL of shardload.ledger_ddl() there as that role.")));
	return res;
}
