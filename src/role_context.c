/*-------------------------------------------------------------------------
 * role_context.c
 *	  Running work on behalf of a role, isolated from every other role.
 *
 *	  Background processes serve many roles one after another, and an admin
 *	  may run another role's batch: user code (a cron job's query, triggers
 *	  of a local partition) must run as its owner and leave nothing behind.
 *	  As PostgreSQL does for maintenance commands run as a table owner:
 *	  the owner's user id in a security-restricted operation (no SET ROLE,
 *	  no temporary objects that outlive the work), a GUC nest level whose
 *	  changes are all undone at the end (also those user code made with
 *	  set_config(..., false)), and a fixed search_path.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "role_context.h"

/*
 * ShardloadCheckRoleExists
 *	  Throws 42704 if role (the owner of what) was dropped.
 */
void
ShardloadCheckRoleExists(Oid role, const char *what)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u that owns %s no longer exists", role, what),
				 errdetail("Work runs with the rights of the role that submitted or scheduled it, and nobody else's."),
				 errhint("Cancel it (or unschedule the job) and submit it again as an existing role.")));
}

/*
 * ShardloadBecomeRole
 *	  Run as role, security-restricted, in a new GUC nest level with
 *	  search_path set (NULL: SHARDLOAD_SAFE_SEARCH_PATH).  Undo with
 *	  ShardloadRestoreRole in the same transaction; an error undoes it with
 *	  the (sub)transaction.
 */
void
ShardloadBecomeRole(ShardloadRoleContext *ctx, Oid role, const char *search_path)
{
	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	SetUserIdAndSecContext(role, ctx->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	ctx->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path",
							 search_path ? search_path : SHARDLOAD_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * ShardloadRestoreRole
 *	  Undo every setting changed since ShardloadBecomeRole and be who we
 *	  were.
 */
void
ShardloadRestoreRole(ShardloadRoleContext *ctx)
{
	AtEOXact_GUC(false, ctx->guc_nestlevel);
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
}
