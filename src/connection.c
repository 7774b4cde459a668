/*-------------------------------------------------------------------------
 * connection.c
 *	  libpq connection parameters for a shard, built the way postgres_fdw
 *	  builds them: the foreign server's options plus the batch owner's user
 *	  mapping, libpq keywords only, and postgres_fdw's rule that a
 *	  non-superuser must authenticate with a password.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"

#include "connection.h"
#include "pg_shardload.h"

static bool is_libpq_keyword(const char *name);
static bool has_option(List *options, const char *name);

/* libpq socket options set unless the server or the user mapping sets them */
static const char *const socket_defaults[][2] = {
	{"keepalives", "1"},
	{"keepalives_idle", "10"},
	{"keepalives_interval", "5"},
	{"keepalives_count", "3"},
};
static bool mapping_requires_password(UserMapping *mapping);

/*
 * ShardloadConnParams
 *	  Connection parameters for serverid as role owner, in the current
 *	  memory context.  Throws 42704 if owner has no user mapping for the
 *	  server, and 2F003 if owner is not a superuser and the mapping holds
 *	  no password (unless it says password_required 'false').
 */
ShardConnParams *
ShardloadConnParams(Oid serverid, Oid owner)
{
	ForeignServer *server = GetForeignServer(serverid);
	UserMapping *mapping;
	ShardConnParams *params = palloc0(sizeof(ShardConnParams));
	int			n;
	int			i = 0;
	bool		has_password = false;
	ListCell   *lc;
	List	   *options;

	/* only postgres_fdw validates these options (password_required above all) */
	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "postgres_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not use postgres_fdw", server->servername),
				 errhint("pg_shardload loads foreign partitions of postgres_fdw servers only.")));
	mapping = GetUserMapping(owner, serverid);
	options = list_concat_copy(server->options, mapping->options);
	n = list_length(options) + 3 + lengthof(socket_defaults) + 1;

	params->servername = pstrdup(server->servername);
	params->keywords = palloc0(sizeof(char *) * n);
	params->values = palloc0(sizeof(char *) * n);
	foreach(lc, options)
	{
		DefElem    *opt = lfirst(lc);

		if (!is_libpq_keyword(opt->defname))
			continue;
		if (strcmp(opt->defname, "password") == 0 && defGetString(opt)[0] != '\0')
			has_password = true;
		params->keywords[i] = opt->defname;
		params->values[i] = defGetString(opt);
		i++;
	}
	/*
	 * Notice a host that vanished: TCP keepalives, and a limit on data left
	 * unacknowledged, unless the server or mapping says otherwise.
	 */
	for (int d = 0; d < lengthof(socket_defaults); d++)
		if (!has_option(options, socket_defaults[d][0]))
		{
			params->keywords[i] = socket_defaults[d][0];
			params->values[i++] = socket_defaults[d][1];
		}
	if (!has_option(options, "tcp_user_timeout"))
	{
		params->keywords[i] = "tcp_user_timeout";
		/* a margin, so that the progress limit (which names itself) fires first */
		params->values[i++] = psprintf("%d", Min(shardload_progress_timeout, INT_MAX - 10000) + 10000);
	}
	params->keywords[i] = "fallback_application_name";
	params->values[i++] = "pg_shardload";
	params->keywords[i] = "client_encoding";
	params->values[i++] = GetDatabaseEncodingName();
	params->keywords[i] = NULL;

	params->require_password = !superuser_arg(owner) && mapping_requires_password(mapping);
	if (params->require_password && !has_password)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required"),
				 errdetail("Non-superusers must provide a password in the user mapping for server \"%s\".",
						   server->servername)));
	return params;
}

/*
 * is_libpq_keyword
 *	  Whether name is a libpq connection option (postgres_fdw's own options
 *	  such as fetch_size or password_required are not).  client_encoding
 *	  and fallback_application_name are always ours to set.
 */
static bool
is_libpq_keyword(const char *name)
{
	static PQconninfoOption *defaults = NULL;

	if (strcmp(name, "client_encoding") == 0 ||
		strcmp(name, "fallback_application_name") == 0)
		return false;
	if (defaults == NULL)
	{
		defaults = PQconndefaults();
		if (defaults == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	for (PQconninfoOption *opt = defaults; opt->keyword; opt++)
	{
		/* debug options ("D" dispchar) are never passed on */
		if (strcmp(opt->keyword, name) == 0)
			return strchr(opt->dispchar, 'D') == NULL;
	}
	return false;
}

static bool
has_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, name) == 0)
			return true;
	return false;
}

static bool
mapping_requires_password(UserMapping *mapping)
{
	ListCell   *lc;

	foreach(lc, mapping->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "password_required") == 0)
			return defGetBoolean(opt);
	}
	return true;
}

/*
 * ShardloadConnectFailureSqlstate
 *	  libpq reports a failed connection as text only.  Recognize the
 *	  server's authentication and configuration errors, which no retry can
 *	  mend, and call everything else a failure to connect (08001).
 *
 *	  XXX: matches the server's English messages; a shard running with
 *	  another lc_messages is classified as 08001 (TRANSIENT).
 */
const char *
ShardloadConnectFailureSqlstate(const char *message)
{
	if (strstr(message, "password authentication failed"))
		return "28P01";
	if (strstr(message, "authentication failed") ||
		strstr(message, "no pg_hba.conf entry") ||
		strstr(message, "password is required") ||
		(strstr(message, "role \"") && strstr(message, "does not exist")))
		return "28000";
	if (strstr(message, "database \"") && strstr(message, "does not exist"))
		return "3D000";
	if (strstr(message, "too many connections") ||
		strstr(message, "remaining connection slots are reserved"))
		return "53300";
	if (strstr(message, "the database system is starting up") ||
		strstr(message, "the database system is shutting down") ||
		strstr(message, "the database system is in recovery mode"))
		return "57P03";
	return "08001";
}
