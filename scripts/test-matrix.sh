#!/usr/bin/env bash
# Runs the whole suite on one or all supported PostgreSQL versions:
#   bash scripts/test-matrix.sh            # 15, 17 and 18
#   bash scripts/test-matrix.sh 17         # one version
#   bash scripts/test-matrix.sh prepare    # only make the roots
# REGRESS, PROVE_TESTS, SKIP_REGRESS, SKIP_TAP and SHARDLOAD_CHAOS_SECONDS
# pass through to scripts/test.sh, e.g.
#   SKIP_TAP=1 REGRESS=values bash scripts/test-matrix.sh 18
# 15 runs on this machine (Debian 12).  17 and 18 run in minimal Debian roots
# made with debootstrap (17: Debian 13 "trixie", 18: Debian unstable "sid"),
# cached under $SHARDLOAD_ROOTS (default /var/cache/pg_shardload/roots) so
# that a second run skips the minute of debootstrap and apt-get.  Run as root.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
roots=${SHARDLOAD_ROOTS:-/var/cache/pg_shardload/roots}
mirror=${SHARDLOAD_MIRROR:-http://deb.debian.org/debian}
prepare_only=
if [ "${1:-}" = prepare ]; then prepare_only=1; shift; fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(15 17 18)

suite_of() {
	case "$1" in
	17) echo trixie ;;
	18) echo sid ;;
	*) return 1 ;;
	esac
}

# The packages a root needs to build pg_shardload and run its tests.
root_packages() {
	echo "postgresql-$1 postgresql-client-$1 postgresql-server-dev-$1 postgresql-common" \
	     "libpq-dev libkrb5-dev libipc-run-perl build-essential make gcc perl ca-certificates procps"
}

# /proc (postgresql-common and PostgreSQL need it) and /dev/shm (dynamic
# shared memory) inside a root, while it is in use
mount_root() {
	{ mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"; } &&
		{ mountpoint -q "$1/dev/shm" || { mkdir -p "$1/dev/shm" && mount -t tmpfs shm "$1/dev/shm"; }; } ||
		{ echo "could not mount /proc and /dev/shm in $1 (this needs root)" >&2; return 1; }
}

unmount_root() {
	local m
	for m in "$1/dev/shm" "$1/proc"; do
		mountpoint -q "$m" || continue
		umount "$m" 2>/dev/null || umount -l "$m" ||
			echo "warning: could not unmount $m" >&2
	done
	return 0
}

# leave no mount behind, however this script ends
trap 'for r in "$roots"/pg*/; do [ -d "$r" ] && unmount_root "${r%/}"; done' EXIT
trap 'exit 130' INT TERM

# Makes (once) and returns the root for version $1.
prepare_root() {
	local v=$1 suite root apt_opts
	suite=$(suite_of "$v") || { echo "no root for PostgreSQL $v" >&2; return 1; }
	root="$roots/pg$v"
	apt_opts="-o Acquire::Check-Valid-Until=false"
	[ -f "$root/.pg_shardload-ready" ] && { top_up_root "$v" "$root" "$apt_opts"; return; }
	if ! command -v debootstrap >/dev/null; then
		apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
			{ echo "could not install debootstrap" >&2; return 1; }
	fi
	unmount_root "$root"
	rm -rf --one-file-system "$root"
	mkdir -p "$roots"
	echo "== making a $suite root for PostgreSQL $v in $root"
	debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$roots/pg$v.debootstrap.log" 2>&1 ||
		{ echo "debootstrap failed: see $roots/pg$v.debootstrap.log" >&2; return 1; }
	# sid's Release file is past its Valid-Until date on this archive
	echo "APT::Get::Assume-Yes \"true\"; Acquire::Check-Valid-Until \"false\";" \
		>"$root/etc/apt/apt.conf.d/90pg_shardload"
	# no daemons from package scripts in the root (its clusters are the tests')
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
	mount_root "$root" || return 1
	chroot "$root" sh -c "mkdir -p /etc/postgresql-common/createcluster.d &&
		echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/no-main.conf &&
		DEBIAN_FRONTEND=noninteractive apt-get $apt_opts update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends $(root_packages "$v")" \
		>"$roots/pg$v.apt.log" 2>&1
	local rc=$?
	# pg_cron, where the suite packages it, for the pg_cron test
	chroot "$root" sh -c "DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends postgresql-$v-cron" \
		>>"$roots/pg$v.apt.log" 2>&1 || echo "note: postgresql-$v-cron is not packaged in $suite"
	unmount_root "$root"
	[ $rc -eq 0 ] || { echo "apt-get failed: see $roots/pg$v.apt.log" >&2; return 1; }
	touch "$root/.pg_shardload-ready"
}

# A root made by an earlier version of this script gets the packages it
# lacks (root_packages grows as the build needs more).
top_up_root() {
	local v=$1 root=$2 apt_opts=$3 missing rc
	missing=$(chroot "$root" dpkg-query -W -f='${Status}\n' $(root_packages "$v") 2>&1 |
		grep -v '^install ok installed$') || true
	[ -z "$missing" ] && return 0
	echo "== adding missing packages to the root for PostgreSQL $v"
	mount_root "$root" || return 1
	chroot "$root" sh -c "DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends $(root_packages "$v")" \
		>>"$roots/pg$v.apt.log" 2>&1
	rc=$?
	unmount_root "$root"
	[ $rc -eq 0 ] || echo "apt-get failed: see $roots/pg$v.apt.log" >&2
	return $rc
}

# Copies the tree into the root and runs scripts/test.sh there.
run_in_root() {
	local v=$1 root="$roots/pg$1" rc
	prepare_root "$v" || return 1
	rm -rf "$root/build/pg_shardload"
	mkdir -p "$root/build/pg_shardload"
	tar -C "$top" --exclude=.git --exclude=tmp_check --exclude=tmp_check_regress \
		--exclude=results --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
		tar -C "$root/build/pg_shardload" -xf -
	mount_root "$root" || return 1
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		PG_MAJOR="$v" PG_CFLAGS="${PG_CFLAGS:-}" ${SHARDLOAD_CHAOS_SECONDS:+SHARDLOAD_CHAOS_SECONDS="$SHARDLOAD_CHAOS_SECONDS"} \
		${REGRESS:+REGRESS="$REGRESS"} ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} \
		${SKIP_REGRESS:+SKIP_REGRESS=1} ${SKIP_TAP:+SKIP_TAP=1} \
		bash /build/pg_shardload/scripts/test.sh
	rc=$?
	unmount_root "$root"
	return $rc
}

if [ -n "$prepare_only" ]; then
	for v in "${versions[@]}"; do [ "$v" = 15 ] || prepare_root "$v" || exit 1; done
	exit 0
fi

status=0
summary=()
for v in "${versions[@]}"; do
	echo "==== PostgreSQL $v ===="
	start=$(date +%s)
	if [ "$v" = 15 ]; then
		PG_MAJOR=15 bash "$top/scripts/test.sh"
	else
		run_in_root "$v"
	fi
	rc=$?
	summary+=("PostgreSQL $v: $([ $rc -eq 0 ] && echo PASS || echo FAIL) ($(( $(date +%s) - start )) s)")
	[ $rc -eq 0 ] || status=1
done
echo
echo "==== pg_shardload version matrix ===="
printf '%s\n' "${summary[@]}"
exit $status
