/*-------------------------------------------------------------------------
 * column_text.h
 *	  One column's values in their fixed text forms, quickly.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_COLUMN_TEXT_H
#define SHARDLOAD_COLUMN_TEXT_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/date.h"
#include "utils/relcache.h"

/* How a column's values are written. */
typedef enum ColumnTextForm
{
	COLUMN_TEXT_OUTPUT,			/* the type's output function */
	COLUMN_TEXT_INT2,			/* written here, no output function call */
	COLUMN_TEXT_INT4,
	COLUMN_TEXT_INT8,
	COLUMN_TEXT_DATE
} ColumnTextForm;

typedef struct ShardloadColumnText
{
	Oid			type;
	ColumnTextForm form;
	bool		plain;			/* its text never needs COPY escaping */
	FmgrInfo	output;
	char		scratch[32];	/* the last value written here */
} ShardloadColumnText;

extern void ShardloadColumnTextInit(ShardloadColumnText *col, Oid type);
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
	ShardloadColumnText *output;
	Oid		   *ioparam;
	int32	   *typmod;
	bool		any;
} ShardloadRecoder;

extern char *ShardloadColumnTextValue(ShardloadColumnText *col, Datum value);
extern bool ShardloadIsoDate(const char *text, DateADT *date);
extern ShardloadRecoder *ShardloadRecoderCreate(Relation rel, int ncolumns,
												AttrNumber *columns);
extern Datum ShardloadRecodeValue(ShardloadRecoder *recoder, int col, char **value);

#endif							/* SHARDLOAD_COLUMN_TEXT_H */
