/*-------------------------------------------------------------------------
 * route_check.h
 *	  Where a slice goes, described so that a change can be seen.
 *-------------------------------------------------------------------------
 */
#ifndef SHARDLOAD_ROUTE_CHECK_H
#define SHARDLOAD_ROUTE_CHECK_H

#include "postgres.h"

#include "routing.h"

extern char *ShardloadRemoteTable(Oid partition);
extern char *ShardloadRemoteColumns(Oid partition, ShardloadRouter *router);
extern char *ShardloadRemoteTypesSql(Oid partition, ShardloadRouter *router);
extern char *ShardloadSliceSignature(Oid partition, ShardloadRouter *router);

#endif							/* SHARDLOAD_ROUTE_CHECK_H */
