#!/usr/bin/env bash
# Makes DEST: a copy of this machine's PostgreSQL installation with
# pg_shardload 0.1 built and installed in it, plus the 0.1--0.2 update
# script, for test/t/011_upgrade.pl.  The 0.1 sources are
# test/release-0.1.tar.gz (git archive of commit 065d8897 -- its Makefile,
# control file, SQL script and src/ -- kept in the tree so that the test
# does not depend on the depth of a clone).  PostgreSQL's Debian builds
# find their libraries and extension files relative to their binaries, so
# the copy runs on its own.  Prints the copy's bin directory's parent;
# exits non-zero, saying why, if it cannot be made.
#   scripts/old-release.sh DEST
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: old-release.sh DEST}
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

if [ "$major" != 15 ]; then
	echo "pg_shardload 0.1 was made for PostgreSQL 15 only (this is $major)"
	exit 1
fi
rm -rf "$dest"
mkdir -p "$dest$(dirname "$(dirname "$bindir")")" "$dest$(dirname "$sharedir")" "$dest/build"
cp -a "$(dirname "$bindir")" "$dest$(dirname "$(dirname "$bindir")")/"
cp -a "$sharedir" "$dest$(dirname "$sharedir")/"
rm -f "$dest$sharedir"/extension/pg_shardload* "$dest$(dirname "$bindir")"/lib/pg_shardload.so
tar -C "$dest/build" -xzf "$top/test/release-0.1.tar.gz"
make -C "$dest/build" -s PG_CONFIG="$PG_CONFIG" >"$dest/build.log" 2>&1 ||
	{ echo "pg_shardload 0.1 did not build: see $dest/build.log"; exit 1; }
make -C "$dest/build" -s PG_CONFIG="$PG_CONFIG" install DESTDIR="$dest" >>"$dest/build.log" 2>&1 ||
	{ echo "pg_shardload 0.1 did not install: see $dest/build.log"; exit 1; }
# the update script, so that the 0.1 library can be tried on a 0.2 catalog
cp "$top/pg_shardload--0.1--0.2.sql" "$dest$sharedir/extension/"
echo "$dest$(dirname "$bindir")"
