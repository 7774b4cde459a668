/*-------------------------------------------------------------------------
 * role_context.h
 *	  Running work on behalf of a role, isolated from every other role.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ROLE_CONTEXT_H
#define SHARDLOAD_ROLE_CONTEXT_H

#include "postgres.h"

typedef struct ShardloadRoleContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
} ShardloadRoleContext;

/* What work runs with when no other search_path is given. */
#define SHARDLOAD_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

extern void ShardloadCheckRoleExists(Oid role, const char *what);
extern void ShardloadBecomeRole(ShardloadRoleContext *ctx, Oid role, const char *search_path);
extern void ShardloadRestoreRole(ShardloadRoleContext *ctx);

#endif							/* SHARDLOAD_ROLE_CONTEXT_H */
