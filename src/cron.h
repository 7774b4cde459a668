/*-------------------------------------------------------------------------
 * cron.h
 *	  Cron expressions and their next tick.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_CRON_H
#define SHARDLOAD_CRON_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef struct ShardloadCron
{
	bool		has_seconds;
	bool		seconds[60];
	bool		minutes[60];
	bool		hours[24];
	bool		days[32];
	bool		months[13];
	bool		weekdays[8];
	bool		days_restricted;
	bool		weekdays_restricted;
} ShardloadCron;

extern ShardloadCron *ShardloadCronParse(const char *expr);
extern void ShardloadCheckCronFires(const char *expr);
extern TimestampTz ShardloadCronNext(ShardloadCron *cron, TimestampTz after);

#endif							/* SHARDLOAD_CRON_H */
