#!/usr/bin/env bash
# Makes DEST: a copy of this machine's PostgreSQL installation with
# pg_shardload 0.1 (the commit in test/release-0.1.commit, from this
# repository's history) built and installed in it, plus the 0.1--0.2 update
# script, for test/t/011_upgrade.pl.  PostgreSQL's Debian builds find their
# libraries and extension files relative to their binaries, so the copy
# runs on its own.  Exits non-zero, saying why, if it cannot be made (no
# git history, or 0.1 does not build on this PostgreSQL version).
#   scripts/old-release.sh DEST
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: old-release.sh DEST}
PG_CONFIG=${PG_CONFIG:-pg_config}
commit=$(cat "$top/test/release-0.1.commit")
bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

if [ "$major" != 15 ]; then
	echo "pg_shardload 0.1 was made for PostgreSQL 15 only (this is $major)"
	exit 1
fi
if ! command -v git >/dev/null || ! git -C "$top" cat-file -e "$commit^{commit}" 2>/dev/null; then
	echo "commit $commit of pg_shardload 0.1 is not in this checkout's history"
	exit 1
fi
rm -rf "$dest"
mkdir -p "$dest$(dirname "$(dirname "$bindir")")" "$dest$(dirname "$sharedir")" "$dest/build"
cp -a "$(dirname "$bindir")" "$dest$(dirname "$(dirname "$bindir")")/"
cp -a "$sharedir" "$dest$(dirname "$sharedir")/"
rm -f "$dest$sharedir"/extension/pg_shardload* "$dest$(dirname "$bindir")"/lib/pg_shardload.so
git -C "$top" archive "$commit" | tar -C "$dest/build" -xf -
make -C "$dest/build" -s PG_CONFIG="$PG_CONFIG" >/dev/null
make -C "$dest/build" -s PG_CONFIG="$PG_CONFIG" install DESTDIR="$dest" >/dev/null
# the update script, so that the 0.1 library can be tried on a 0.2 catalog
cp "$top/pg_shardload--0.1--0.2.sql" "$dest$sharedir/extension/"
echo "$dest$(dirname "$bindir")"
