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

/*
 * The text forms of one row's values for a target: the columns whose text
 * means something else under other settings are parsed in the submitting
 * session and written again in the fixed forms.
 */
typedef struct ShardloadRecoder
{
	int			ncolumns;
	bool	   *recode;			/* parse and write again */
	FmgrInfo   *input;
	FmgrInfo   *output;
	Oid		   *ioparam;
	Oid		   *type;
	int32	   *typmod;
	bool		any;
} ShardloadRecoder;

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
extern ShardloadRecoder *ShardloadRecoderCreate(Relation rel, int ncolumns,
												AttrNumber *columns);
extern Datum ShardloadRecodeValue(ShardloadRecoder *recoder, int col, char **value);

#endif							/* SHARDLOAD_VALUE_FORMS_H */
