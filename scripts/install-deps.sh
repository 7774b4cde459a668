#!/usr/bin/env bash
# Installs what building and testing pg_shardload needs, from Debian's
# packages only.  Run as root on Debian 12; does nothing if all is there.
set -euo pipefail
packages=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 postgresql-common
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
