/*-------------------------------------------------------------------------
 * value_forms.h
 *	  Values travel in fixed, session-independent text forms.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_VALUE_FORMS_H
#define SHARDLOAD_VALUE_FORMS_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/relcache.h"


/* fixed output settings, swapped in around output function calls */
extern void ShardloadFixedFormsBegin(void);
extern void ShardloadFixedFormsEnd(void);
extern char *ShardloadOutputFixed(FmgrInfo *output, Oid type, Datum value);

/* the same settings for the sessions that read the text back */
extern const char *ShardloadRemoteSessionSql(const char *lc_monetary);
extern void ShardloadSetReadSettings(const char *lc_monetary);

extern bool ShardloadTypeTextVaries(Oid type);
extern bool ShardloadTypeHasMoney(Oid type);
extern bool ShardloadTypeHasOid(Oid type);

#endif							/* SHARDLOAD_VALUE_FORMS_H */
