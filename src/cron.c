/*-------------------------------------------------------------------------
 * cron.c
 *	  Cron expressions: the five standard fields (minute hour day-of-month
 *	  month day-of-week) with *, lists, ranges and steps, read in UTC, and
 *	  an optional leading seconds field for schedules finer than a minute.
 *	  As in cron, when both day fields are restricted a day matching
 *	  either one matches.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "cron.h"

static const char *field_names[] = {"second", "minute", "hour", "day of month",
"month", "day of week"};
static const int field_min[] = {0, 0, 0, 1, 1, 0};
static const int field_max[] = {59, 59, 23, 31, 12, 7};

static void parse_field(const char *expr, const char *text, int field, bool *bits,
						bool *restricted);
static bool matches_minute(ShardloadCron *cron, struct pg_tm *tm);

/*
 * ShardloadCronParse
 *	  Parse expr; throws ERRCODE_INVALID_PARAMETER_VALUE naming the bad
 *	  field.
 */
ShardloadCron *
ShardloadCronParse(const char *expr)
{
	ShardloadCron *cron = palloc0(sizeof(ShardloadCron));
	char	   *copy = pstrdup(expr);
	char	   *fields[7];
	int			n = 0;
	char	   *save;
	int			first;

	for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
	{
		if (n == 6)
		{
			n++;
			break;
		}
		fields[n++] = tok;
	}
	if (n != 5 && n != 6)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression: \"%s\"", expr),
				 errdetail("A cron expression has five fields (minute hour day-of-month month day-of-week), or six with a leading seconds field."),
				 errhint("For example \"*/15 * * * *\" runs every 15 minutes.")));

	cron->has_seconds = n == 6;
	first = cron->has_seconds ? 0 : 1;
	if (!cron->has_seconds)
		cron->seconds[0] = true;
	for (int i = 0; i < n; i++)
	{
		int			field = first + i;
		bool	   *bits = field == 0 ? cron->seconds : field == 1 ? cron->minutes :
			field == 2 ? cron->hours : field == 3 ? cron->days :
			field == 4 ? cron->months : cron->weekdays;
		bool		restricted;

		parse_field(expr, fields[i], field, bits, &restricted);
		if (field == 3)
			cron->days_restricted = restricted;
		if (field == 5)
			cron->weekdays_restricted = restricted;
	}
	cron->weekdays[0] = cron->weekdays[0] || cron->weekdays[7];	/* 7 is Sunday too */
	return cron;
}

/*
 * parse_field
 *	  One field: "*", or a comma list of N, N-M, with an optional /step.
 */
static void
parse_field(const char *expr, const char *text, int field, bool *bits, bool *restricted)
{
	char	   *copy = pstrdup(text);
	char	   *save;
	int			lo = field_min[field];
	int			hi = field_max[field];

	*restricted = strcmp(text, "*") != 0;
	/* strtok_r would skip empty list items: "1,,2", ",5" and "5," are errors */
	if (text[0] == ',' || text[strlen(text) - 1] == ',' || strstr(text, ",,") != NULL)
		goto bad;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		long		from,
					to,
					step = 1;
		char	   *slash = strchr(item, '/');
		char	   *end;

		if (slash)
		{
			*slash = '\0';
			if (!isdigit((unsigned char) slash[1]))
				goto bad;
			step = strtol(slash + 1, &end, 10);
			if (*end != '\0' || step <= 0)
				goto bad;
		}
		if (strcmp(item, "*") == 0)
		{
			from = lo;
			to = hi;
		}
		else
		{
			char	   *dash;

			/* digits only: strtol would also take " 5", "+5" and "-5" */
			if (!isdigit((unsigned char) item[0]))
				goto bad;
			from = strtol(item, &end, 10);
			dash = end;
			if (*dash == '-')
			{
				if (!isdigit((unsigned char) dash[1]))
					goto bad;
				to = strtol(dash + 1, &end, 10);
			}
			else
				to = slash ? hi : from;
			if (*end != '\0')
				goto bad;
		}
		if (from < lo || to > hi || from > to)
			goto bad;
		/* (long: a huge number is out of range, not wrapped into it) */
		for (long v = from; v <= to; v += Min(step, hi + 1))
			bits[v] = true;
	}
	return;

bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron expression: \"%s\"", expr),
			 errdetail("The %s field \"%s\" is not valid; it takes values from %d to %d.",
					   field_names[field], text, lo, hi)));
}

static bool
matches_minute(ShardloadCron *cron, struct pg_tm *tm)
{
	bool		day_ok;

	if (!cron->minutes[tm->tm_min] || !cron->hours[tm->tm_hour] ||
		!cron->months[tm->tm_mon + 1])
		return false;
	if (cron->days_restricted && cron->weekdays_restricted)
		day_ok = cron->days[tm->tm_mday] || cron->weekdays[tm->tm_wday];
	else
		day_ok = cron->days[tm->tm_mday] && cron->weekdays[tm->tm_wday];
	return day_ok;
}

/*
 * ShardloadCronNext
 *	  The first tick strictly after `after`; DT_NOEND if none within about
 *	  five years (an expression such as "0 0 31 2 *").  Skips whole days
 *	  and hours that cannot match, so even that costs a few thousand steps.
 */
TimestampTz
ShardloadCronNext(ShardloadCron *cron, TimestampTz after)
{
	pg_time_t	t = (pg_time_t) timestamptz_to_time_t(after) + 1;
	pg_time_t	minute = t - (t % 60);
	pg_time_t	end = minute + (pg_time_t) 5 * 366 * 24 * 3600;

	while (minute < end)
	{
		struct pg_tm *tm = pg_gmtime(&minute);
		bool		day_ok;

		if (cron->days_restricted && cron->weekdays_restricted)
			day_ok = cron->days[tm->tm_mday] || cron->weekdays[tm->tm_wday];
		else
			day_ok = cron->days[tm->tm_mday] && cron->weekdays[tm->tm_wday];
		if (!cron->months[tm->tm_mon + 1] || !day_ok)
		{
			minute += 24 * 3600 - (tm->tm_hour * 3600 + tm->tm_min * 60);
			continue;
		}
		if (!cron->hours[tm->tm_hour])
		{
			minute += 3600 - tm->tm_min * 60;
			continue;
		}
		if (matches_minute(cron, tm))
			for (int s = (minute < t) ? (int) (t - minute) : 0; s < 60; s++)
				if (cron->seconds[s])
					return time_t_to_timestamptz(minute + s);
		minute += 60;
	}
	return DT_NOEND;
}

/*
 * ShardloadCheckCronFires
 *	  Parse expr and make sure it fires (within about five years); throws
 *	  ERRCODE_INVALID_PARAMETER_VALUE otherwise.
 */
void
ShardloadCheckCronFires(const char *expr)
{
	if (ShardloadCronNext(ShardloadCronParse(expr), GetCurrentTimestamp()) == DT_NOEND)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cron expression \"%s\" never fires", expr),
				 errdetail("No time in the next five years matches it (UTC)."),
				 errhint("Check the day of month against the month, such as \"0 0 30 2 *\", which names February 30.")));
}
