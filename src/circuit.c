/*-------------------------------------------------------------------------
 * circuit.c
 *	  A circuit breaker per foreign server.  After
 *	  shardload.circuit_failures consecutive failures to reach a server
 *	  (SQLSTATE class 08, or 57P01-57P03), its circuit opens: its slices
 *	  are not sent for shardload.circuit_cooldown, and a batch waiting only
 *	  on open circuits is deferred without using up an attempt.  The first
 *	  attempt after the cool-down is the probe: success closes the circuit,
 *	  failure opens it again.  State lives in shardload.shard_state.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "circuit.h"
#include "metadata.h"
#include "pg_shardload.h"

static bool is_unreachable(const char *sqlstate);

/*
 * ShardloadCircuitOpen
 *	  Whether server's circuit is open and cooling down; if so, when it
 *	  lets a probe through.
 */
bool
ShardloadCircuitOpen(const char *server, TimestampTz *reopen_at)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bool		open = false;

	values[0] = CStringGetTextDatum(server);
	values[1] = Int32GetDatum(shardload_circuit_cooldown);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT opened_at + make_interval(secs => $2) FROM shardload.shard_state"
					 " WHERE server = $1 AND circuit = 'open'"
					 " AND opened_at + make_interval(secs => $2) > now()",
					 2, argtypes, values, NULL);
	if (SPI_processed == 1)
	{
		open = true;
		*reopen_at = ShardloadSpiTimestampTz(0, 1, NULL);
	}
	ShardloadCatalogEnd(&session);
	return open;
}

/*
 * ShardloadCircuitDeferral
 *	  If every slice the batch still has to send is bound for a server
 *	  whose circuit is open (any: one of them is, for an atomic batch that
 *	  needs them all), the time the earliest of them reopens (and one such
 *	  server's name); else 0.
 */
TimestampTz
ShardloadCircuitDeferral(int64 batch_id, bool any, char **server)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	TimestampTz reopen = 0;

	values[0] = Int64GetDatum(batch_id);
	values[1] = Int32GetDatum(shardload_circuit_cooldown);
	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("SELECT min(c.opened_at + make_interval(secs => $2)), min(c.server),"
					 " bool_and(c.server IS NOT NULL), count(*), bool_or(c.server IS NOT NULL)"
					 " FROM shardload.slice s"
					 " LEFT JOIN shardload.shard_state c ON c.server = s.shard AND c.circuit = 'open'"
					 "  AND c.opened_at + make_interval(secs => $2) > now()"
					 " WHERE s.batch_id = $1 AND s.state IN ('pending', 'failed')",
					 2, argtypes, values, NULL);
	if (ShardloadSpiInt64(0, 4, NULL) > 0 && ShardloadSpiBool(0, any ? 5 : 3, NULL))
	{
		reopen = ShardloadSpiTimestampTz(0, 1, NULL);
		*server = ShardloadSpiText(&session, 0, 2);
	}
	ShardloadCatalogEnd(&session);
	return reopen;
}

/*
 * ShardloadCircuitRecord
 *	  Count a success (closes the circuit) or a failure (only failures to
 *	  reach the server count) of one server in this attempt.
 */
void
ShardloadCircuitRecord(const char *server, bool success, const char *sqlstate,
					   const char *message)
{
	ShardloadCatalogSession session;
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	if (!success && !is_unreachable(sqlstate))
		return;
	values[0] = CStringGetTextDatum(server);
	values[1] = Int32GetDatum(shardload_circuit_failures);
	if (message)
		values[2] = CStringGetTextDatum(message);
	else
		nulls[2] = 'n';
	ShardloadCatalogBegin(&session);
	if (success)
		ShardloadSpiExec("INSERT INTO shardload.shard_state AS c (server, circuit, last_success_at)"
						 " VALUES ($1, 'closed', now())"
						 " ON CONFLICT (server) DO UPDATE SET circuit = 'closed',"
						 " consecutive_failures = 0, opened_at = NULL, last_success_at = now()",
						 1, argtypes, values, nulls);
	else
		ShardloadSpiExec("INSERT INTO shardload.shard_state AS c (server, circuit,"
						 " consecutive_failures, last_failure_at, last_error, opened_at)"
						 " VALUES ($1, CASE WHEN $2 <= 1 THEN 'open' ELSE 'closed' END, 1, now(), $3,"
						 "  CASE WHEN $2 <= 1 THEN now() END)"
						 " ON CONFLICT (server) DO UPDATE SET"
						 " consecutive_failures = c.consecutive_failures + 1,"
						 " last_failure_at = now(), last_error = $3,"
						 " circuit = CASE WHEN c.consecutive_failures + 1 >= $2 THEN 'open' ELSE 'closed' END,"
						 " opened_at = CASE WHEN c.consecutive_failures + 1 >= $2 THEN now() END",
						 3, argtypes, values, nulls);
	ShardloadCatalogEnd(&session);
}

static bool
is_unreachable(const char *sqlstate)
{
	return strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
		strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

/*
 * ShardloadShardIdentitySet
 *	  Remember the database the server reached in this attempt.
 */
void
ShardloadShardIdentitySet(const char *server, const char *identity)
{
	ShardloadCatalogSession session;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(server), CStringGetTextDatum(identity)};

	ShardloadCatalogBegin(&session);
	ShardloadSpiExec("INSERT INTO shardload.shard_state AS c (server, identity) VALUES ($1, $2)"
					 " ON CONFLICT (server) DO UPDATE SET identity = $2"
					 " WHERE c.identity IS DISTINCT FROM $2",
					 2, argtypes, values, NULL);
	ShardloadCatalogEnd(&session);
}
