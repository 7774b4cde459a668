#!/usr/bin/env bash
# Installs what building and testing pg_shardload needs, from Debian's
# packages only.  Run as root on Debian 12 (or in the Debian 13 / unstable
# roots of scripts/test-matrix.sh, with PG_MAJOR 17 / 18); does nothing if
# all is there.
set -euo pipefail
v=${PG_MAJOR:-15}
packages=(postgresql-$v postgresql-client-$v postgresql-server-dev-$v postgresql-common
          libpq-dev libipc-run-perl build-essential make gcc perl)
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
# pg_cron, for test/t/012_pg_cron.pl (the test is skipped where it is not packaged)
if ! dpkg-query -W -f='${Status}' "postgresql-$v-cron" 2>/dev/null | grep -q "ok installed"; then
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -qq --no-install-recommends "postgresql-$v-cron" ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "postgresql-$v-cron"; }; } \
		>/dev/null 2>&1 || echo "note: postgresql-$v-cron could not be installed; the pg_cron test is skipped"
fi
