#!/usr/bin/env bash
# Soak test of libzinc and zincfs with a checker and fault injection
# (tests/soak/soak.py and tests/soak/zinc-soak.c explain the checks).
#
#   scripts/soak.sh [--ci] [--seconds N] [soak.py options...]
#
# Builds (ninja -C build), mounts zincfs on a temporary directory with a
# private 8 MiB tmpfs as region directory, runs producers and consumers
# while killing them and zincfs with SIGKILL, and prints the summary.
# --ci: 60 s.  Default: 600 s.  Exits non-zero on any violation, lost wake,
# leftover zinc_* object, process stuck in D state, bad exit or zincfs error.
# Must run as root.  Always cleans up (unmount, kill, remove the tmpfs).
# Other options go to tests/soak/soak.py (--help): e.g. --seed N, --keep,
# --tolerate-wedge (report, not fail, a zincfs wedged after kill -9; see
# tests/soak/repro-inval-wedge.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds=600
keep=0
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--ci) seconds=60 ;;
	--keep) keep=1; args+=("$1") ;;
	--seconds) [ $# -ge 2 ] || die "--seconds needs a value"; seconds=$2; shift ;;
	--seconds=*) seconds=${1#--seconds=} ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) args+=("$1") ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || die "the soak needs root (tmpfs mount, FUSE)"
ensure_fuse
ensure_fusectl # the driver's recovery aborts wedged connections there

if [ ! -f build/build.ninja ]; then
	configure_build build -Dbuildtype=debugoptimized
fi
ninja -C build >/dev/null || die "build failed (ninja -C build)"

base=$(mktemp -d /tmp/zinc-soak.XXXXXX)
pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# the driver leads its own process group: everything it started
		kill -TERM -- "-$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	# Processes of ours that survive SIGKILL hang in D behind a wedged FUSE
	# connection: abort our connections (not ones a mount elsewhere reuses;
	# a connection without a directory has ended).
	sleep 0.5
	if [ -n "$pid" ] && pgrep -g "$pid" >/dev/null 2>&1 && [ -f "$base/conns" ]; then
		( ensure_fusectl ) || rc=1
		while read -r c; do
			awk -v d="0:$c" -v b="$base/" '$3 == d && index($5, b) != 1 { f = 1 } END { exit !f }' \
				/proc/self/mountinfo && continue
			[ -e "/sys/fs/fuse/connections/$c/abort" ] || continue
			echo 1 >"/sys/fs/fuse/connections/$c/abort" ||
				{ echo "soak: error: cannot abort FUSE connection $c" >&2; rc=1; }
		done <"$base/conns"
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	# deepest mounts first: zincfs, then the region tmpfs
	awk -v b="$base" '$5 == b || index($5, b "/") == 1 { print length($5), $5 }' \
		/proc/self/mountinfo | sort -rn | cut -d' ' -f2- | while read -r mp; do
		fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
	done
	if [ "$keep" = 1 ]; then
		echo "soak: kept $base (logs/, ledger)"
	else
		rm -rf --one-file-system "$base"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "== soak: ${seconds} s, zincfs and libzinc of $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- libzinc zincfs include || echo ' + uncommitted changes')"
# setsid: the driver and all its children form one process group that the
# trap can kill; wait keeps this shell responsive to signals.
setsid /usr/bin/python3 tests/soak/soak.py --build build --base "$base" \
	--seconds "$seconds" "${args[@]}" &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
exit "$rc"
