/*-------------------------------------------------------------------------
 * value_forms.c
 *	  Values travel in fixed, session-independent text forms, as
 *	  postgres_fdw sends them (set_transmission_modes and
 *	  configure_remote_session): DateStyle ISO, IntervalStyle postgres,
 *	  extra_float_digits 3, bytea_output hex and TimeZone UTC (and names
 *	  quoted only where needed, whatever quote_all_identifiers says).
 *
 *	  Capture writes every value in these forms; the sessions that read
 *	  them back (each shard's COPY, the in-process COPY of local
 *	  partitions) read under the same settings.  What a value means is
 *	  decided once, in the submitting session: a query's values are its
 *	  own, COPY text is parsed there with that session's DateStyle,
 *	  TimeZone and IntervalStyle, as COPY would parse it.
 *
 *	  Output settings are swapped in per row as plain variables (a GUC
 *	  nest level per row would cost more than the row); an error between
 *	  the swap and its undo is caught by the (sub)transaction callbacks.
 *
 *	  money is the exception: its text follows lc_monetary, a locale, that
 *	  cannot be swapped per row.  It is written under the submitting
 *	  session's lc_monetary, which the batch records and the reading
 *	  sessions set.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"
#include "utils/xml.h"

#include "value_forms.h"

/* The session's values while the fixed ones are swapped in. */
typedef struct SavedForms
{
	bool		active;
	int			date_style;
	int			date_order;
	int			interval_style;
	int			float_digits;
	int			bytea_form;
	pg_tz	   *timezone;
	bool		quote_all;
} SavedForms;

static SavedForms saved;
static pg_tz *utc_zone = NULL;
static bool callbacks_registered = false;

static void restore_on_abort(XactEvent event, void *arg);
static void restore_on_subabort(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg);
/* What type_text_varies looks for. */
#define VARIES_ANY		0
#define VARIES_MONEY	1
#define VARIES_OID		2

static bool type_text_varies(Oid type, int depth, int what);
static bool is_oid_alias(Oid type);

/*
 * ShardloadFixedFormsBegin
 *	  Make output functions write the fixed forms until
 *	  ShardloadFixedFormsEnd.  Cheap: meant for every row.
 */
void
ShardloadFixedFormsBegin(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(restore_on_abort, NULL);
		RegisterSubXactCallback(restore_on_subabort, NULL);
		callbacks_registered = true;
	}
	if (utc_zone == NULL)
	{
		utc_zone = pg_tzset("UTC");
		if (utc_zone == NULL)
			elog(ERROR, "could not load time zone \"UTC\"");
	}
	if (saved.active)
		return;
	saved.date_style = DateStyle;
	saved.date_order = DateOrder;
	saved.interval_style = IntervalStyle;
	saved.float_digits = extra_float_digits;
	saved.bytea_form = bytea_output;
	saved.timezone = session_timezone;
	saved.quote_all = quote_all_identifiers;
	saved.active = true;
	DateStyle = USE_ISO_DATES;
	DateOrder = DATEORDER_MDY;
	IntervalStyle = INTSTYLE_POSTGRES;
	extra_float_digits = 3;
	bytea_output = BYTEA_OUTPUT_HEX;
	session_timezone = utc_zone;
	quote_all_identifiers = false;
}

/*
 * ShardloadFixedFormsEnd
 *	  Give the session its own settings back.
 */
void
ShardloadFixedFormsEnd(void)
{
	if (!saved.active)
		return;
	DateStyle = saved.date_style;
	DateOrder = saved.date_order;
	IntervalStyle = saved.interval_style;
	extra_float_digits = saved.float_digits;
	bytea_output = saved.bytea_form;
	session_timezone = saved.timezone;
	quote_all_identifiers = saved.quote_all;
	saved.active = false;
}

static void
restore_on_abort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ShardloadFixedFormsEnd();
}

static void
restore_on_subabort(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ShardloadFixedFormsEnd();
}

/*
 * ShardloadOutputFixed
 *	  value of type in its fixed text form (palloc'd); the caller has the
 *	  fixed forms swapped in.  Object identifier types (regclass and the
 *	  like) are written as the bare OID: their names depend on the
 *	  search_path, their OIDs do not.
 */
char *
ShardloadOutputFixed(FmgrInfo *output, Oid type, Datum value)
{
	char	   *text;

	if (is_oid_alias(type))
		return psprintf("%u", DatumGetObjectId(value));
	Assert(saved.active);
	text = OutputFunctionCall(output, value);
	return text;
}

/*
 * is_oid_alias
 *	  Whether type is one of the object identifier types (regclass and the
 *	  like), whose text names objects through the search_path.
 */
static bool
is_oid_alias(Oid type)
{
	switch (type)
	{
		case REGCLASSOID:
		case REGTYPEOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			return true;
		default:
			return false;
	}
}

/*
 * ShardloadRemoteSessionSql
 *	  Statements that make a shard session read the fixed forms, with the
 *	  batch's lc_monetary if it has money values (NULL: leave it).
 */
const char *
ShardloadRemoteSessionSql(const char *lc_monetary)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SET search_path = pg_catalog, pg_temp; SET datestyle = ISO;"
						   " SET intervalstyle = postgres; SET extra_float_digits = 3;"
						   " SET timezone = 'UTC'; SET xmloption = content;");
	if (lc_monetary)
		appendStringInfo(&sql, " SET lc_monetary = %s;", quote_literal_cstr(lc_monetary));
	return sql.data;
}

/*
 * ShardloadSetReadSettings
 *	  The same settings for an in-process COPY, at the current GUC nest
 *	  level (the caller opens one and closes it).
 */
void
ShardloadSetReadSettings(const char *lc_monetary)
{
	static const char *const settings[][2] = {
		{"datestyle", "ISO"},
		{"intervalstyle", "postgres"},
		{"extra_float_digits", "3"},
		{"timezone", "UTC"},
		{"xmloption", "content"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (lc_monetary)
		(void) set_config_option("lc_monetary", lc_monetary, PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * ShardloadTypeTextVaries
 *	  Whether the text of a value of type may mean another value under
 *	  other settings (dates and times, intervals, money, xml, object
 *	  identifiers), looking through domains, arrays, ranges and composites.
 */
bool
ShardloadTypeTextVaries(Oid type)
{
	return type_text_varies(type, 0, VARIES_ANY);
}

/*
 * ShardloadTypeHasMoney
 *	  Whether type holds money values anywhere.
 */
bool
ShardloadTypeHasMoney(Oid type)
{
	return type_text_varies(type, 0, VARIES_MONEY);
}

/*
 * ShardloadTypeHasOid
 *	  Whether type holds object identifiers (regclass and the like)
 *	  anywhere: values that name objects of this database only.
 */
bool
ShardloadTypeHasOid(Oid type)
{
	return type_text_varies(type, 0, VARIES_OID);
}

static bool
type_text_varies(Oid type, int depth, int what)
{
	Oid			inner;
	char		typtype;

	if (depth > 16)
		return true;			/* too deep to tell: parse it to be safe */
	switch (type)
	{
		case CASHOID:
			return what != VARIES_OID;
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case XMLOID:
			return what == VARIES_ANY;
		default:
			break;
	}
	if (is_oid_alias(type))
		return what != VARIES_MONEY;
	if (type < FirstGenbkiObjectId && type != RECORDOID &&
		!OidIsValid(get_element_type(type)) &&
		get_typtype(type) != TYPTYPE_RANGE && get_typtype(type) != TYPTYPE_MULTIRANGE)
		return false;			/* a built-in scalar not listed above */

	if (OidIsValid(inner = get_element_type(type)))
		return type_text_varies(inner, depth + 1, what);
	typtype = get_typtype(type);
	if (typtype == TYPTYPE_DOMAIN)
		return type_text_varies(getBaseType(type), depth + 1, what);
	if (typtype == TYPTYPE_RANGE)
		return type_text_varies(get_range_subtype(type), depth + 1, what);
	if (typtype == TYPTYPE_MULTIRANGE)
		return type_text_varies(get_range_subtype(get_multirange_range(type)),
								depth + 1, what);
	if (typtype == TYPTYPE_COMPOSITE)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(type, -1);
		bool		varies = false;

		for (int i = 0; i < desc->natts && !varies; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped)
				varies = type_text_varies(att->atttypid, depth + 1, what);
		}
		ReleaseTupleDesc(desc);
		return varies;
	}
	/* enums and other types' text does not depend on settings we know of */
	return false;
}
