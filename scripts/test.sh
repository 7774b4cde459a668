#!/usr/bin/env bash
# Runs every pg_shardload test: pg_regress (one server, loopback shards) and
# TAP (a coordinator and three shard servers).  Run as root on Debian 12:
# installs what it needs, builds, installs, then runs the tests as the
# unprivileged "postgres" user (PostgreSQL refuses to run as root) in a copy
# of the tree, and ends with a pass/fail summary.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=${PG_SHARDLOAD_TEST_DIR:-/tmp/pg_shardload-test}
export PG_MAJOR=${PG_MAJOR:-15}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}

"$top/scripts/install-deps.sh" || exit 1
make -C "$top" -s PG_CFLAGS="${PG_CFLAGS:-}" >/dev/null || { echo "FAIL: build"; exit 1; }
make -C "$top" -s install >/dev/null || { echo "FAIL: install"; exit 1; }

rm -rf "$work"
mkdir -p "$work"
tar -C "$top" --exclude=.git --exclude=tmp_check --exclude=tmp_check_regress \
	--exclude=results -cf - . | tar -C "$work" -xf -
chown -R postgres:postgres "$work"

# pg_shardload 0.1 in a copy of this PostgreSQL, for the upgrade test
# (test/t/011_upgrade.pl); 0.1 was made for PostgreSQL 15, where not having
# it fails the run
old_release=PASS
old_install=${PG_SHARDLOAD_OLD_DIR:-/tmp/pg_shardload-0.1}
if old_why=$("$top/scripts/old-release.sh" "$old_install" 2>&1); then
	SHARDLOAD_OLD_INSTALL=$(echo "$old_why" | tail -n 1)
	old_why=
	chown -R postgres:postgres "$old_install"
else
	SHARDLOAD_OLD_INSTALL=
	old_why=$(echo "$old_why" | tail -n 1)
	if [ "$PG_MAJOR" = 15 ]; then
		echo "FAIL: pg_shardload 0.1 for the upgrade test: $old_why"
		old_release=FAIL
	else
		echo "upgrade test from 0.1 skipped: $old_why"
		old_release=SKIPPED
	fi
fi

as_postgres() {
	# from /: the postgres user may not enter the folder this was started from
	(cd / && runuser -u postgres -- env PG_CONFIG="$PG_CONFIG" SHARDLOAD_OLD_INSTALL="$SHARDLOAD_OLD_INSTALL" \
		SHARDLOAD_OLD_INSTALL_WHY="$old_why" "$@")
}

regress=PASS
tap=PASS
docs=PASS
# the ledger's DDL has one source, shardload.ledger_ddl(): no copy in the docs
if grep -nE "CREATE TABLE (IF NOT EXISTS )?shardload_ledger" "$top"/docs/*.md "$top"/README.md; then
	echo "docs: the ledger DDL above is a copy; show shardload.ledger_ddl() instead"
	docs=FAIL
fi
if [ -z "${SKIP_REGRESS:-}" ]; then
	as_postgres make -C "$work" -s installcheck TAP_TESTS= ${REGRESS:+REGRESS="$REGRESS"} || regress=FAIL
else
	regress=SKIPPED
fi
if [ "$regress" = FAIL ] && [ -f "$work/regression.diffs" ]; then
	echo "---- regression.diffs ----"
	head -300 "$work/regression.diffs"
fi
if [ -z "${SKIP_TAP:-}" ]; then
	as_postgres make -C "$work" -s installcheck REGRESS= ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} || tap=FAIL
	if [ "$tap" = FAIL ]; then
		for f in "$work"/tmp_check/log/regress_log_*; do
			[ -f "$f" ] || continue
			echo "---- $(basename "$f") (last 80 lines) ----"
			tail -80 "$f"
		done
	fi
else
	tap=SKIPPED
fi

echo
echo "==== pg_shardload test summary ===="
echo "pg_regress: $regress"
echo "TAP:        $tap"
echo "docs:       $docs"
echo "0.1 build:  $old_release (for the upgrade test)"
if [ "$regress" != FAIL ] && [ "$tap" != FAIL ] && [ "$docs" != FAIL ] && [ "$old_release" != FAIL ]; then
	echo "ALL TESTS PASSED"
	exit 0
fi
echo "TESTS FAILED"
exit 1
