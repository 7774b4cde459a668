/*-------------------------------------------------------------------------
 * pg_shardload.h
 *	  Shared constants, settings and the types that cross file boundaries.
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHARDLOAD_H
#define PG_SHARDLOAD_H

#include "postgres.h"

#include "utils/elog.h"

#include "failure.h"

/* Same (target, key) submitted again with other content. */
#define ERRCODE_SHARDLOAD_BATCH_KEY_CONFLICT MAKE_SQLSTATE('S','L','0','0','1')
/* The catalog version (extversion) this library reads and writes. */
#define SHARDLOAD_CATALOG_VERSION "0.2"

/* A shard's ledger holds the slice with other content. */
#define SQLSTATE_SHARDLOAD_LEDGER_MISMATCH "SL002"
/* A foreign server now reaches another database than a slice went to. */
#define SQLSTATE_SHARDLOAD_OTHER_SERVER "SL003"
/* A shard cannot PREPARE, so it cannot take part in an atomic batch. */
#define SQLSTATE_SHARDLOAD_NO_PREPARE "SL004"

/* Bytes of COPY text per payload chunk and per COPY data message. */
#define SHARDLOAD_CHUNK_BYTES		(1024 * 1024)
#define SHARDLOAD_MESSAGE_BYTES		(64 * 1024)

/* field4 of our advisory lock tags ("SL"), so they stand apart from users' */
#define SHARDLOAD_LOCK_FIELD4		21324

/* Remote ledger names, created on first use in every shard database. */
#define SHARDLOAD_LEDGER_SCHEMA		"shardload_ledger"
#define SHARDLOAD_LEDGER_TABLE		"slices"

/* settings */
extern int	shardload_payload_retention;	/* seconds */
extern char *shardload_database;
extern int	shardload_naptime;
extern int	shardload_max_workers;
extern int	shardload_circuit_failures;
extern int	shardload_circuit_cooldown;	/* seconds */
extern int	shardload_job_timeout;	/* milliseconds, 0: none */
extern int	shardload_connect_timeout;	/* milliseconds */
extern int	shardload_progress_timeout;	/* milliseconds */
extern int	shardload_attempt_timeout;	/* milliseconds, 0: none */

/* Failure classes, as stored in the catalog. */
typedef enum ShardloadFailureType
{
	SHARDLOAD_CLASS_NONE = 0,
	SHARDLOAD_CLASS_TRANSIENT,
	SHARDLOAD_CLASS_UNKNOWN,
	SHARDLOAD_CLASS_NON_RETRYABLE
} ShardloadFailureType;


/* submit.c */
typedef struct ShardloadSubmitArgs
{
	Oid			target;
	char	   *batch_key;
	char	   *source;			/* query, CSV text or file path */
	const char *source_kind;	/* "query", "csv", "file" or "copy" */
	char	   *policy;
	char	   *on_error;
	int64		reject_limit;
	char	   *tenant;
	bool		header;
	char	   *format;			/* "csv" or "text" (files) */
	bool		atomic_given;	/* atomic was given; else the target's default */
	bool		atomic;
	bool		has_ticks;		/* a cron job's batch: $1 tick, $2 previous */
	Datum		ticks[2];
} ShardloadSubmitArgs;

typedef struct ShardloadSubmission ShardloadSubmission;

extern int64 ShardloadSubmit(ShardloadSubmitArgs *args);
extern ShardloadSubmission *ShardloadSubmitBegin(ShardloadSubmitArgs *args);
extern int64 ShardloadSubmitEnd(ShardloadSubmission *sub);
extern void ShardloadSubmitCaptureRows(ShardloadSubmission *sub);
extern bool ShardloadIsTickKey(const char *key);

/* loader.c */
extern bool ShardloadRunBatch(int64 batch_id, bool wait, bool runner);
extern void ShardloadRunBatches(int64 *ids, int n, bool wait, bool runner, bool *ran);

#endif							/* PG_SHARDLOAD_H */
