/*-------------------------------------------------------------------------
 * column_text.c
 *	  One column's values in their fixed text forms (value_forms.c): from
 *	  values (a query's rows) and from text parsed as the submitting
 *	  session reads it (the recoder, for CSV and COPY text).  The common
 *	  types go quickly: integers and dates are written here, into the
 *	  column's scratch buffer, with no output function call and no palloc,
 *	  and the types whose text is only digits, signs, letters and
 *	  punctuation are marked plain, so that the COPY line skips its escape
 *	  scan for them.  The text is the same as the output function's under
 *	  the fixed forms; a date this does not write (infinite, BC, after
 *	  9999) goes to date_out, and a date already written YYYY-MM-DD is
 *	  only checked, not parsed and written again.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "column_text.h"
#include "value_forms.h"

static bool write_date(char *out, DateADT date);
static int	two_digits(const char *p);

/*
 * ShardloadColumnTextInit
 *	  Set col up to write values of type (the column's own type: a domain
 *	  takes the general path).
 */
void
ShardloadColumnTextInit(ShardloadColumnText *col, Oid type)
{
	Oid			func;
	bool		isvarlena;

	col->type = type;
	getTypeOutputInfo(type, &func, &isvarlena);
	fmgr_info(func, &col->output);
	switch (type)
	{
		case INT2OID:
			col->form = COLUMN_TEXT_INT2;
			break;
		case INT4OID:
			col->form = COLUMN_TEXT_INT4;
			break;
		case INT8OID:
			col->form = COLUMN_TEXT_INT8;
			break;
		case DATEOID:
			col->form = COLUMN_TEXT_DATE;
			break;
		default:
			col->form = COLUMN_TEXT_OUTPUT;
			break;
	}
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case BOOLOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case UUIDOID:
			col->plain = true;
			break;
		default:
			col->plain = false;
			break;
	}
}

/*
 * ShardloadColumnTextValue
 *	  value (not NULL) in its fixed text form, with the fixed forms swapped
 *	  in.  The text is in col's scratch buffer (valid until the column's
 *	  next value) or palloc'd.
 */
char *
ShardloadColumnTextValue(ShardloadColumnText *col, Datum value)
{
	switch (col->form)
	{
		case COLUMN_TEXT_INT2:
			pg_itoa(DatumGetInt16(value), col->scratch);
			return col->scratch;
		case COLUMN_TEXT_INT4:
			pg_ltoa(DatumGetInt32(value), col->scratch);
			return col->scratch;
		case COLUMN_TEXT_INT8:
			pg_lltoa(DatumGetInt64(value), col->scratch);
			return col->scratch;
		case COLUMN_TEXT_DATE:
			if (write_date(col->scratch, DatumGetDateADT(value)))
				return col->scratch;
			break;
		case COLUMN_TEXT_OUTPUT:
			break;
	}
	return ShardloadOutputFixed(&col->output, col->type, value);
}

/*
 * write_date
 *	  date as DateStyle ISO writes it (YYYY-MM-DD), for the years 1 to
 *	  9999; false for any other date.
 */
static bool
write_date(char *out, DateADT date)
{
	int			year;
	int			month;
	int			day;

	if (DATE_NOT_FINITE(date))
		return false;
	j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
	if (year < 1 || year > 9999)
		return false;
	out[0] = '0' + year / 1000;
	out[1] = '0' + year / 100 % 10;
	out[2] = '0' + year / 10 % 10;
	out[3] = '0' + year % 10;
	out[4] = '-';
	out[5] = '0' + month / 10;
	out[6] = '0' + month % 10;
	out[7] = '-';
	out[8] = '0' + day / 10;
	out[9] = '0' + day % 10;
	out[10] = '\0';
	return true;
}

/*
 * ShardloadIsoDate
 *	  Whether text is a valid date written YYYY-MM-DD (years 1 to 9999):
 *	  every DateStyle reads it so (a four-digit year first is ISO 8601
 *	  whatever the field order), and the fixed form writes it back the
 *	  same, so it needs neither.  *date is its value.  False for anything
 *	  else, which date_in is left to read.
 */
bool
ShardloadIsoDate(const char *text, DateADT *date)
{
	int			year;
	int			month;
	int			day;

	if (strlen(text) != 10 || text[4] != '-' || text[7] != '-')
		return false;
	if (two_digits(text) < 0 || two_digits(text + 2) < 0)
		return false;
	year = two_digits(text) * 100 + two_digits(text + 2);
	month = two_digits(text + 5);
	day = two_digits(text + 8);
	if (year < 1 || month < 1 || month > MONTHS_PER_YEAR || day < 1 ||
		day > day_tab[isleap(year)][month - 1])
		return false;
	*date = date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
	return true;
}

/* Two decimal digits at p, or -1 if they are not both digits. */
static int
two_digits(const char *p)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/*
 * ShardloadRecoderCreate
 *	  For text input (CSV, COPY text) into rel's columns: which columns
 *	  must be parsed in this session and written again in the fixed forms.
 */
ShardloadRecoder *
ShardloadRecoderCreate(Relation rel, int ncolumns, AttrNumber *columns)
{
	ShardloadRecoder *recoder = palloc0(sizeof(ShardloadRecoder));
	TupleDesc	tupdesc = RelationGetDescr(rel);

	recoder->ncolumns = ncolumns;
	recoder->recode = palloc0(sizeof(bool) * ncolumns);
	recoder->input = palloc0(sizeof(FmgrInfo) * ncolumns);
	recoder->output = palloc0(sizeof(ShardloadColumnText) * ncolumns);
	recoder->ioparam = palloc0(sizeof(Oid) * ncolumns);
	recoder->typmod = palloc0(sizeof(int32) * ncolumns);
	for (int i = 0; i < ncolumns; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, columns[i] - 1);
		Oid			func;

		if (!ShardloadTypeTextVaries(att->atttypid))
			continue;
		recoder->recode[i] = true;
		recoder->any = true;
		recoder->typmod[i] = att->atttypmod;
		getTypeInputInfo(att->atttypid, &func, &recoder->ioparam[i]);
		fmgr_info(func, &recoder->input[i]);
		ShardloadColumnTextInit(&recoder->output[i], att->atttypid);
	}
	return recoder;
}

/*
 * ShardloadRecodeValue
 *	  Parse *value (non-NULL, a column the recoder recodes) as this session
 *	  would, replace it with its fixed form (palloc'd, or the column's
 *	  scratch buffer) and return the parsed value.  Throws what the input
 *	  function throws.
 */
Datum
ShardloadRecodeValue(ShardloadRecoder *recoder, int col, char **value)
{
	ShardloadColumnText *output = &recoder->output[col];
	Datum		parsed;
	DateADT		date;

	if (output->type == DATEOID && ShardloadIsoDate(*value, &date))
		return DateADTGetDatum(date);	/* already in its fixed form */
	parsed = InputFunctionCall(&recoder->input[col], *value,
							   recoder->ioparam[col], recoder->typmod[col]);
	ShardloadFixedFormsBegin();
	*value = ShardloadColumnTextValue(output, parsed);
	ShardloadFixedFormsEnd();
	return parsed;
}
