/*-------------------------------------------------------------------------
 * copy_binary.c
 *	  Rows in COPY's binary format, for a direct load's live stream, and
 *	  which of its slices may take them.
 *
 *	  A shard reads binary COPY for about a fifth less CPU than COPY text:
 *	  no line to split and unescape, no text to parse.  The direct load
 *	  (direct_load.c) of a query's rows has each value as a Datum of its
 *	  column's type, so it writes the binary form beside the COPY text
 *	  line (which stays the payload, hashed and resent by every retry)
 *	  and streams the binary one.
 *
 *	  Only types whose binary form is the same value as their fixed text
 *	  form, whose OIDs are built in (the same on every server) and whose
 *	  send and receive functions have not changed across the supported
 *	  versions take this path, and a slice takes it only if the shard's
 *	  remote columns have exactly those types: the stream's probe asks the
 *	  shard about the tables of every partition on it (route_check.c
 *	  writes the question), and the answer decides each slice.  For
 *	  anything else the text goes, as before.  Text values go as
 *	  their bytes in the database encoding, which is the shard
 *	  connection's client_encoding, as COPY text does; textsend would
 *	  convert them to the submitting client's encoding instead.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "compat.h"
#include "copy_binary.h"
#include "copy_stream.h"

bool		shardload_binary_copy = true;

/*
 * numeric's stored form (numeric.c keeps its macros to itself): the first
 * 16 bits say short (sign, display scale and weight in them), long (sign
 * and display scale; a 16-bit weight follows) or special.
 */
#define NUMERIC_FORM_MASK				0xC000
#define NUMERIC_FORM_SHORT				0x8000
#define NUMERIC_FORM_SPECIAL			0xC000
#define NUMERIC_SHORT_NEGATIVE			0x2000
#define NUMERIC_SHORT_DSCALE_MASK		0x1F80
#define NUMERIC_SHORT_DSCALE_SHIFT		7
#define NUMERIC_SHORT_WEIGHT_NEGATIVE	0x0040
#define NUMERIC_SHORT_WEIGHT_MASK		0x003F
#define NUMERIC_LONG_DSCALE_MASK		0x3FFF
#define DEC_DIGITS						4	/* decimal digits per base-10000 digit */
#define DECIMAL_FEW_GROUPS				32	/* a decimal's groups kept on the stack */
/* the sign as numeric_send writes it */
#define NUMERIC_SIGN_POSITIVE			0x0000
#define NUMERIC_SIGN_NEGATIVE			0x4000

/*
 * Longest plain decimal taken: numeric_in refuses more than 16383 digits
 * after the point, which this with an exponent of 3 digits cannot reach.
 */
#define PLAIN_DECIMAL_MAX_LEN	10000

static bool type_travels_binary(Oid type);
static inline bool plain_space(char c);
static bool text_value(StringInfo buf, Oid type, const char *text);
static bool plain_integer(const char *text, int64 min, int64 max, int64 *result);
static bool plain_bool(const char *text, bool *result);
static bool plain_decimal(const char *text);
static bool plain_float(const char *text, bool single, double *result);
static bool append_decimal(StringInfo buf, const char *text);
static bool plain_uuid(const char *text);
static void append_value(StringInfo buf, Oid type, Datum value);
static void append_numeric(StringInfo buf, Datum value);
static inline void put_int16(StringInfo buf, int16 value);
static inline void put_int32(StringInfo buf, int32 value);
static inline void put_int64(StringInfo buf, int64 value);

/*
 * ShardloadBinaryTypes
 *	  The types of rel's columns (by attribute number) if all of them can
 *	  travel in binary, with *type_list their OIDs as "20,23,..." (what the
 *	  shard's columns must have); NULL otherwise.
 */
Oid *
ShardloadBinaryTypes(Relation rel, int ncolumns, const AttrNumber *columns, char **type_list)
{
	Oid		   *types = palloc(sizeof(Oid) * ncolumns);
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; i < ncolumns; i++)
	{
		types[i] = TupleDescAttr(RelationGetDescr(rel), columns[i] - 1)->atttypid;
		if (!type_travels_binary(types[i]))
		{
			pfree(types);
			pfree(list.data);
			return NULL;
		}
		appendStringInfo(&list, "%s%u", i > 0 ? "," : "", types[i]);
	}
	*type_list = list.data;
	return types;
}

/*
 * type_travels_binary
 *	  Built-in types whose binary form is fixed since long before the
 *	  oldest supported version, and means what their fixed text form means.
 *	  No domains, arrays (their element OIDs), json (no binary of its own)
 *	  or types whose text depends on settings the shard reads them with.
 */
static bool
type_travels_binary(Oid type)
{
	switch (type)
	{
		case BOOLOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case UUIDOID:
			return true;
		default:
			return false;
	}
}

/*
 * ShardloadBinaryProbeSql
 *	  What a shard's probe asks about the remote columns of the tables it
 *	  may get in binary (the shard's binary_checks): an expression, or NULL
 *	  if there is nothing to ask (any more).  An array, not concat(): a
 *	  shard may take more than 100 tables.
 */
char *
ShardloadBinaryProbeSql(StreamShard *sh)
{
	StringInfoData types;

	if (sh->nbinary_checks == 0 || sh->binary_answers != NULL)
		return NULL;
	initStringInfo(&types);
	appendStringInfoString(&types, "pg_catalog.array_to_string(ARRAY[");
	for (int i = 0; i < sh->nbinary_checks; i++)
		appendStringInfo(&types, "%s%s", i > 0 ? ", " : "", sh->binary_checks[i]);
	appendStringInfoString(&types, "]::pg_catalog.text[], '|', '')");
	return types.data;
}

/*
 * ShardloadBinaryProbed
 *	  The probe's answer about the remote columns (column 8: "types|...",
 *	  one for each of the shard's binary_checks, in order, or NULL if it
 *	  was not asked): decide every slice the shard has so far.
 */
void
ShardloadBinaryProbed(StreamShard *sh, const PGresult *res)
{
	const char *p = PQgetvalue(res, 0, 7);

	if (PQgetisnull(res, 0, 7) || sh->binary_answers != NULL)
		return;
	sh->binary_answers = palloc0(sizeof(char *) * sh->nbinary_checks);
	for (int i = 0; i < sh->nbinary_checks && p != NULL; i++)
	{
		const char *end = strchr(p, '|');

		sh->binary_answers[i] = end ? pnstrdup(p, end - p) : pstrdup(p);
		p = end ? end + 1 : NULL;
	}
	for (int i = 0; i < sh->nslices; i++)
		ShardloadBinaryDecide(sh, sh->slices[i]);
}

/*
 * ShardloadBinaryDecide
 *	  Once the shard's probe has answered, a slice whose table's columns
 *	  have the types it writes in binary goes in binary (copy_sql becomes
 *	  the binary COPY); any other, or one whose capture stopped writing
 *	  binary (binary_copy_sql gone), in COPY text for good.
 */
void
ShardloadBinaryDecide(StreamShard *sh, StreamSlice *slice)
{
	if (slice->binary_known || sh->binary_answers == NULL)
		return;
	slice->binary_known = true;
	if (slice->binary_copy_sql == NULL)
		return;
	for (int i = 0; i < sh->nbinary_checks; i++)
		if (strcmp(sh->binary_checks[i], slice->binary_check) == 0)
		{
			if (sh->binary_answers[i] != NULL &&
				strcmp(sh->binary_answers[i], slice->binary_type_list) == 0)
			{
				slice->binary = true;
				slice->copy_sql = slice->binary_copy_sql;
			}
			return;
		}
}

/*
 * ShardloadBinaryHeader
 *	  The header a binary COPY starts with: signature, flags, no extension.
 */
void
ShardloadBinaryHeader(StringInfo buf)
{
	static const char signature[11] = "PGCOPY\n\377\r\n\0";

	appendBinaryStringInfo(buf, signature, sizeof(signature));
	enlargeStringInfo(buf, 8);
	put_int32(buf, 0);
	put_int32(buf, 0);
	buf->data[buf->len] = '\0';
}

/*
 * ShardloadBinaryAppendRow
 *	  One row: its field count, then each field's length (-1: NULL) and
 *	  bytes, as the type's send function writes them.
 */
void
ShardloadBinaryAppendRow(StringInfo buf, int ncolumns, const Oid *types,
						 const Datum *values, const bool *nulls)
{
	enlargeStringInfo(buf, 2);
	put_int16(buf, (int16) ncolumns);
	for (int i = 0; i < ncolumns; i++)
	{
		/* room for a length and any fixed-size value */
		enlargeStringInfo(buf, 4 + 8);
		if (nulls[i])
			put_int32(buf, -1);
		else
			append_value(buf, types[i], values[i]);
	}
	buf->data[buf->len] = '\0';
}

/*
 * ShardloadBinaryAppendText
 *	  One row given as text (COPY, CSV): the values the recoder parsed
 *	  (recoded) from recoded_values, the others from their text.  Text
 *	  goes as it is; integers, booleans, floats, numerics and UUIDs only
 *	  in the plain spellings that every version reads alike (text_value);
 *	  false, with nothing added, for a row with any other.
 */
bool
ShardloadBinaryAppendText(StringInfo buf, int ncolumns, const Oid *types, char **values,
						  const bool *recoded, const Datum *recoded_values)
{
	int			start = buf->len;

	enlargeStringInfo(buf, 2);
	put_int16(buf, (int16) ncolumns);
	for (int i = 0; i < ncolumns; i++)
	{
		enlargeStringInfo(buf, 4 + 8);
		if (values[i] == NULL)
			put_int32(buf, -1);
		else if (recoded[i])
			append_value(buf, types[i], recoded_values[i]);
		else if (!text_value(buf, types[i], values[i]))
		{
			buf->len = start;
			buf->data[start] = '\0';
			return false;
		}
	}
	buf->data[buf->len] = '\0';
	return true;
}

/*
 * text_value
 *	  A value given as text, of a type the recoder leaves as it is, in
 *	  binary; false if it is not in a plain spelling (the shard's input
 *	  function is then left to read it, in COPY text).
 */
static bool
text_value(StringInfo buf, Oid type, const char *text)
{
	int64		integer;
	bool		boolean;

	switch (type)
	{
		case INT2OID:
			if (!plain_integer(text, PG_INT16_MIN, PG_INT16_MAX, &integer))
				return false;
			put_int32(buf, 2);
			put_int16(buf, (int16) integer);
			return true;
		case INT4OID:
			if (!plain_integer(text, PG_INT32_MIN, PG_INT32_MAX, &integer))
				return false;
			put_int32(buf, 4);
			put_int32(buf, (int32) integer);
			return true;
		case INT8OID:
			if (!plain_integer(text, PG_INT64_MIN, PG_INT64_MAX, &integer))
				return false;
			put_int32(buf, 8);
			put_int64(buf, integer);
			return true;
		case BOOLOID:
			if (!plain_bool(text, &boolean))
				return false;
			append_value(buf, type, BoolGetDatum(boolean));
			return true;
		case FLOAT4OID:
		case FLOAT8OID:
			{
				double		number;

				if (!plain_float(text, type == FLOAT4OID, &number))
					return false;
				append_value(buf, type, type == FLOAT4OID ? Float4GetDatum((float4) number)
							 : Float8GetDatum(number));
				return true;
			}
		case NUMERICOID:
			/* digits and a point are written here; exponents, NaN... by numeric_in */
			if (append_decimal(buf, text))
				return true;
			if (!plain_decimal(text))
				return false;
			append_numeric(buf, DirectFunctionCall3(numeric_in, CStringGetDatum(text),
													ObjectIdGetDatum(InvalidOid),
													Int32GetDatum(-1)));
			return true;
		case UUIDOID:
			if (!plain_uuid(text))
				return false;
			append_value(buf, type, DirectFunctionCall1(uuid_in, CStringGetDatum(text)));
			return true;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			{
				int			len = strlen(text);

				put_int32(buf, len);
				appendBinaryStringInfo(buf, text, len);
				return true;
			}
		default:
			return false;		/* the recoder parses every other type */
	}
}

/*
 * plain_integer
 *	  Decimal digits with an optional sign and surrounding spaces, within
 *	  [min, max]: what every version's integer input reads the same way.
 */
static bool
plain_integer(const char *text, int64 min, int64 max, int64 *result)
{
	const char *p = text;
	bool		negative = false;
	uint64		magnitude = 0;

	while (plain_space(*p))
		p++;
	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	if (!isdigit((unsigned char) *p))
		return false;
	for (; isdigit((unsigned char) *p); p++)
	{
		if (magnitude > (PG_UINT64_MAX - 9) / 10)
			return false;
		magnitude = magnitude * 10 + (*p - '0');
	}
	while (plain_space(*p))
		p++;
	if (*p != '\0')
		return false;
	if (negative ? magnitude > (uint64) PG_INT64_MAX + 1 : magnitude > (uint64) PG_INT64_MAX)
		return false;
	*result = negative ? (int64) (0 - magnitude) : (int64) magnitude;
	return *result >= min && *result <= max;
}

/*
 * plain_bool
 *	  What boolin reads: a spelling of true or false, spaces around it.
 */
static bool
plain_bool(const char *text, bool *result)
{
	size_t		len;

	while (plain_space(*text))
		text++;
	len = strlen(text);
	while (len > 0 && plain_space(text[len - 1]))
		len--;
	return parse_bool_with_len(text, len, result);
}

/*
 * plain_decimal
 *	  Digits with an optional sign, point and exponent, spaces around them,
 *	  short enough that numeric_in cannot refuse them; or NaN or an
 *	  infinity, spelt as numeric_in reads them since 14.
 */
static bool
plain_decimal(const char *text)
{
	static const char *const special[] = {
		"nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"
	};
	const char *p = text;
	int			digits = 0;
	int			exponent_digits = 0;
	size_t		len;

	if (strlen(text) > PLAIN_DECIMAL_MAX_LEN)
		return false;
	while (plain_space(*p))
		p++;
	len = strlen(p);
	while (len > 0 && plain_space(p[len - 1]))
		len--;
	for (int i = 0; i < lengthof(special); i++)
		if (len == strlen(special[i]) && pg_strncasecmp(p, special[i], len) == 0)
			return true;
	if (*p == '-' || *p == '+')
		p++;
	for (; isdigit((unsigned char) *p); p++)
		digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char) *p); p++)
			digits++;
	if (digits == 0)
		return false;
	if (*p == 'e' || *p == 'E')
	{
		p++;
		if (*p == '-' || *p == '+')
			p++;
		for (; isdigit((unsigned char) *p); p++)
			exponent_digits++;
		if (exponent_digits == 0 || exponent_digits > 3)
			return false;
	}
	while (plain_space(*p))
		p++;
	return *p == '\0';
}

/*
 * append_decimal
 *	  A decimal written as digits with an optional sign and point (spaces
 *	  around them), as numeric_send writes what numeric_in makes of it:
 *	  the digits in groups of four (base 10000) aligned at the point,
 *	  without leading or trailing zero groups, the weight of the first
 *	  group, the sign (positive for zero) and the display scale (the
 *	  digits after the point).  False, with nothing added, for anything
 *	  else (an exponent, NaN, an infinity, more digits than a plain
 *	  decimal may have).
 */
static bool
append_decimal(StringInfo buf, const char *text)
{
	const char *p = text;
	bool		negative = false;
	const char *int_start;
	const char *frac_start = NULL;
	int			int_len;
	int			frac_len = 0;
	int			int_pad;
	int			ngroups;
	int16		few[DECIMAL_FEW_GROUPS];
	int16	   *groups = few;
	int			first;
	int			last;

	while (plain_space(*p))
		p++;
	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	int_start = p;
	while (isdigit((unsigned char) *p))
		p++;
	int_len = p - int_start;
	if (*p == '.')
	{
		frac_start = ++p;
		while (isdigit((unsigned char) *p))
			p++;
		frac_len = p - frac_start;
	}
	while (plain_space(*p))
		p++;
	if (*p != '\0' || int_len + frac_len == 0 || int_len + frac_len > PLAIN_DECIMAL_MAX_LEN)
		return false;

	/* the integer digits padded on the left, the fraction on the right */
	int_pad = (DEC_DIGITS - int_len % DEC_DIGITS) % DEC_DIGITS;
	ngroups = (int_pad + int_len) / DEC_DIGITS + (frac_len + DEC_DIGITS - 1) / DEC_DIGITS;
	if (ngroups > DECIMAL_FEW_GROUPS)
		groups = palloc(sizeof(int16) * ngroups);
	memset(groups, 0, sizeof(int16) * ngroups);
	for (int i = 0; i < int_len; i++)
	{
		int			at = int_pad + i;

		groups[at / DEC_DIGITS] = groups[at / DEC_DIGITS] * 10 + (int_start[i] - '0');
	}
	for (int i = 0; i < frac_len; i++)
	{
		int			at = int_pad + int_len + i;

		groups[at / DEC_DIGITS] = groups[at / DEC_DIGITS] * 10 + (frac_start[i] - '0');
	}
	/* a last fraction group of fewer than four digits is short by tens */
	for (int i = frac_len; i % DEC_DIGITS != 0; i++)
		groups[ngroups - 1] *= 10;

	first = 0;
	last = ngroups - 1;
	while (first <= last && groups[first] == 0)
		first++;
	while (last >= first && groups[last] == 0)
		last--;

	enlargeStringInfo(buf, 4 + 8 + (last - first + 1) * 2);
	put_int32(buf, 8 + (last - first + 1) * 2);
	put_int16(buf, (int16) (last - first + 1));
	if (first > last)
	{
		/* zero: no digits, weight 0, positive */
		put_int16(buf, 0);
		put_int16(buf, NUMERIC_SIGN_POSITIVE);
	}
	else
	{
		put_int16(buf, (int16) ((int_pad + int_len) / DEC_DIGITS - 1 - first));
		put_int16(buf, negative ? NUMERIC_SIGN_NEGATIVE : NUMERIC_SIGN_POSITIVE);
	}
	put_int16(buf, (int16) frac_len);
	for (int i = first; i <= last; i++)
		put_int16(buf, groups[i]);
	if (groups != few)
		pfree(groups);
	return true;
}

/*
 * plain_float
 *	  A plain decimal (or NaN, an infinity) read as float4in or float8in
 *	  read it, with strtof or strtod; false where they would refuse it (out
 *	  of range).
 */
static bool
plain_float(const char *text, bool single, double *result)
{
	char	   *end;

	if (!plain_decimal(text))
		return false;
	errno = 0;
	*result = single ? strtof(text, &end) : strtod(text, &end);
	if (end == text || (errno != 0 && errno != ERANGE))
		return false;
	/* ERANGE for a denormal is fine, for zero or an infinity not */
	if (errno == ERANGE && (*result == 0.0 || isinf(*result)))
		return false;
	while (plain_space(*end))
		end++;
	return *end == '\0';
}

/*
 * plain_space
 *	  ASCII white space, which the input functions skip in every locale
 *	  (isspace() would take more in some single-byte ones).
 */
static inline bool
plain_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * plain_uuid
 *	  A UUID as uuid_out writes it (any case): 8-4-4-4-12 hex digits.
 */
static bool
plain_uuid(const char *text)
{
	if (strlen(text) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (text[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) text[i]))
			return false;
	}
	return true;
}

/*
 * append_value
 *	  A non-NULL value's length and binary form (network byte order).  The
 *	  length and a fixed-size form fit in the room ShardloadBinaryAppendRow
 *	  made.
 */
static void
append_value(StringInfo buf, Oid type, Datum value)
{
	switch (type)
	{
		case BOOLOID:
			put_int32(buf, 1);
			buf->data[buf->len++] = DatumGetBool(value) ? 1 : 0;
			return;
		case INT2OID:
			put_int32(buf, 2);
			put_int16(buf, DatumGetInt16(value));
			return;
		case INT4OID:
		case DATEOID:
			put_int32(buf, 4);
			put_int32(buf, DatumGetInt32(value));
			return;
		case FLOAT4OID:
			{
				float4		f = DatumGetFloat4(value);
				int32		bits;

				memcpy(&bits, &f, sizeof(bits));
				put_int32(buf, 4);
				put_int32(buf, bits);
				return;
			}
		case INT8OID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			put_int32(buf, 8);
			put_int64(buf, DatumGetInt64(value));
			return;
		case FLOAT8OID:
			{
				float8		f = DatumGetFloat8(value);
				int64		bits;

				memcpy(&bits, &f, sizeof(bits));
				put_int32(buf, 8);
				put_int64(buf, bits);
				return;
			}
		case UUIDOID:
			put_int32(buf, UUID_LEN);
			appendBinaryStringInfo(buf, (char *) DatumGetUUIDP(value)->data, UUID_LEN);
			return;
		case NUMERICOID:
			append_numeric(buf, value);
			return;
		default:
			{
				/* text, varchar, bpchar: the bytes, unconverted */
				text	   *t = DatumGetTextPP(value);

				put_int32(buf, VARSIZE_ANY_EXHDR(t));
				appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				return;
			}
	}
}

/*
 * append_numeric
 *	  A numeric as numeric_send writes it (digit count, weight, sign,
 *	  display scale, base-10000 digits), read straight from its stored
 *	  form, which has not changed since 9.1 but for the special values of
 *	  14 (NaN and the infinities), which numeric_send writes.
 */
static void
append_numeric(StringInfo buf, Datum value)
{
	struct varlena *num = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(value));
	const char *data = VARDATA_ANY(num);	/* not aligned in a short varlena */
	int			len = VARSIZE_ANY_EXHDR(num);
	uint16		header;
	int16		weight;
	uint16		sign;
	uint16		dscale;
	int			header_len;
	int			ndigits;

	memcpy(&header, data, sizeof(header));
	if ((header & NUMERIC_FORM_MASK) == NUMERIC_FORM_SPECIAL)
	{
		bytea	   *sent = DatumGetByteaPP(DirectFunctionCall1(numeric_send, value));

		put_int32(buf, VARSIZE_ANY_EXHDR(sent));
		appendBinaryStringInfo(buf, VARDATA_ANY(sent), VARSIZE_ANY_EXHDR(sent));
		return;
	}
	if ((header & NUMERIC_FORM_MASK) == NUMERIC_FORM_SHORT)
	{
		sign = (header & NUMERIC_SHORT_NEGATIVE) ? NUMERIC_SIGN_NEGATIVE : NUMERIC_SIGN_POSITIVE;
		dscale = (header & NUMERIC_SHORT_DSCALE_MASK) >> NUMERIC_SHORT_DSCALE_SHIFT;
		weight = (header & NUMERIC_SHORT_WEIGHT_NEGATIVE ? ~NUMERIC_SHORT_WEIGHT_MASK : 0) |
			(header & NUMERIC_SHORT_WEIGHT_MASK);
		header_len = sizeof(uint16);
	}
	else
	{
		sign = header & NUMERIC_FORM_MASK;
		dscale = header & NUMERIC_LONG_DSCALE_MASK;
		memcpy(&weight, data + sizeof(uint16), sizeof(weight));
		header_len = sizeof(uint16) + sizeof(int16);
	}
	ndigits = (len - header_len) / sizeof(int16);
	enlargeStringInfo(buf, 4 + 8 + ndigits * 2);
	put_int32(buf, 8 + ndigits * 2);
	put_int16(buf, (int16) ndigits);
	put_int16(buf, weight);
	put_int16(buf, (int16) sign);
	put_int16(buf, (int16) dscale);
	for (int i = 0; i < ndigits; i++)
	{
		int16		digit;

		memcpy(&digit, data + header_len + i * sizeof(int16), sizeof(digit));
		put_int16(buf, digit);
	}
}

/* The put_ functions write into room already made. */
static inline void
put_int16(StringInfo buf, int16 value)
{
	uint16		n = pg_hton16((uint16) value);

	memcpy(buf->data + buf->len, &n, sizeof(n));
	buf->len += sizeof(n);
}

static inline void
put_int32(StringInfo buf, int32 value)
{
	uint32		n = pg_hton32((uint32) value);

	memcpy(buf->data + buf->len, &n, sizeof(n));
	buf->len += sizeof(n);
}

static inline void
put_int64(StringInfo buf, int64 value)
{
	uint64		n = pg_hton64((uint64) value);

	memcpy(buf->data + buf->len, &n, sizeof(n));
	buf->len += sizeof(n);
}
