/*-------------------------------------------------------------------------
 * spi_plans.c
 *	  Catalog statements planned once per process.
 *
 *	  A runner executes the same few dozen catalog statements for every
 *	  batch; parsing and planning them each time cost it more than the
 *	  batch itself.  Each statement text (with its parameter types) is
 *	  prepared once and kept; PostgreSQL's plan cache replans it when the
 *	  tables it reads change.  Statement texts made on the fly would fill
 *	  the cache with one-offs, so it holds a bounded number and runs the
 *	  rest unprepared.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/memutils.h"

#include "metadata.h"

#define SPI_PLANS_MAX 256

typedef struct KeptPlan
{
	uint32		hash;
	char	   *sql;
	int			nargs;
	Oid		   *argtypes;
	SPIPlanPtr	plan;
} KeptPlan;

static KeptPlan plans[SPI_PLANS_MAX];
static int	nplans = 0;

static uint32
plan_hash(const char *sql, int nargs, const Oid *argtypes)
{
	uint32		h = hash_bytes((const unsigned char *) sql, strlen(sql));

	if (nargs > 0)
		h = hash_combine(h, hash_bytes((const unsigned char *) argtypes, sizeof(Oid) * nargs));
	return h;
}

/*
 * ShardloadSpiPlan
 *	  The kept plan of sql with these parameter types, prepared now if it is
 *	  new; NULL when the cache is full (the caller runs sql unprepared).
 *	  Needs a connected SPI.
 */
SPIPlanPtr
ShardloadSpiPlan(const char *sql, int nargs, Oid *argtypes)
{
	uint32		hash = plan_hash(sql, nargs, argtypes);
	SPIPlanPtr	plan;
	KeptPlan   *kept;

	for (int i = 0; i < nplans; i++)
	{
		if (plans[i].hash == hash && plans[i].nargs == nargs &&
			strcmp(plans[i].sql, sql) == 0 &&
			(nargs == 0 || memcmp(plans[i].argtypes, argtypes, sizeof(Oid) * nargs) == 0))
			return plans[i].plan;
	}
	if (nplans >= SPI_PLANS_MAX)
		return NULL;
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	kept = &plans[nplans++];
	kept->hash = hash;
	kept->sql = MemoryContextStrdup(TopMemoryContext, sql);
	kept->nargs = nargs;
	kept->argtypes = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(nargs, 1));
	if (nargs > 0)
		memcpy(kept->argtypes, argtypes, sizeof(Oid) * nargs);
	kept->plan = plan;
	return plan;
}
