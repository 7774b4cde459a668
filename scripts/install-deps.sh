#!/usr/bin/env bash
# Installs what building and testing pg_shardload needs, from Debian's
# packages only.  Run as root on Debian 12 (or in the Debian 13 / unstable
# roots of scripts/test-matrix.sh, with PG_MAJOR 17 / 18); does nothing if
# all is there.
set -euo pipefail
v=${PG_MAJOR:-15}
packages=(postgresql-$v postgresql-client-$v postgresql-server-dev-$v postgresql-common
          libpq-dev libkrb5-dev libipc-run-perl build-essential make gcc perl)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "Installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Optional: pg_cron for test/t/012_pg_cron.pl, pgloader for test/t/013_copy_path.pl
# (and bench/run.sh), psycopg for test/t/017_copy_reader.pl; what is not
# packaged is skipped by its test
for p in "postgresql-$v-cron" pgloader python3-psycopg; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" && continue
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -qq --no-install-recommends "$p" ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "$p"; }; } \
		>/dev/null 2>&1 || echo "note: $p could not be installed; the tests that need it are skipped"
done
