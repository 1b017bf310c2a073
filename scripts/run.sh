#!/usr/bin/env bash
# Build zinc, mount zincfs (default /run/zinc, or the first argument) and
# start a demo producer on region "demo", then show what to try.
#   scripts/run.sh [MOUNTPOINT]         start
#   scripts/run.sh --stop [MOUNTPOINT]  unmount and stop the demo
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

stop=0
if [ "${1:-}" = "--stop" ]; then stop=1; shift; fi
if [ "$(id -u)" -eq 0 ]; then default_mnt=/run/zinc
else default_mnt="${XDG_RUNTIME_DIR:-/tmp}/zinc"; fi
MNT=${1:-$default_mnt}
PIDFILE="$ROOT/build/demo-producer.pid"

stop_all() {
	if [ -f "$PIDFILE" ]; then
		kill "$(cat "$PIDFILE")" 2>/dev/null || true
		rm -f "$PIDFILE"
		# Killed, the producer could not close its region: remove it.
		build/libzinc/tools/zinc rm -f demo || true
	fi
	if grep -qs " $MNT fuse.zincfs " /proc/mounts; then
		fusermount3 -u "$MNT" && echo "unmounted $MNT"
	fi
}

if [ $stop -eq 1 ]; then stop_all; exit 0; fi

ensure_packages
ensure_fuse
configure_build build
ninja -C build >/dev/null || die "build failed (run: ninja -C build)"

mkdir -p "$MNT"
if grep -qs " $MNT fuse.zincfs " /proc/mounts; then
	echo "zincfs is already mounted on $MNT"
else
	build/zincfs/zincfs "$MNT" || die "zincfs could not mount $MNT"
	echo "mounted zincfs on $MNT"
fi

if [ ! -f "$PIDFILE" ] || ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	# One message a second for an hour on region "demo".
	setsid build/libzinc/zinc-producer demo 3600 1000 >/dev/null 2>&1 &
	echo $! > "$PIDFILE"
fi
for _ in $(seq 100); do [ -e "$MNT/demo" ] && break; sleep 0.05; done

cat <<MSG

A demo producer (build/libzinc/zinc-producer) writes to region "demo" and
notifies once a second.  Try, in a shell:

  ls -l $MNT                          # demo, demo.notify, demo.wait
  head -n1 $MNT/demo.wait             # blocks until the next notification
  cat $MNT/demo                       # the region's data
  while read seq; do head -c 32 $MNT/demo; done < $MNT/demo.wait
  touch $MNT/mine && echo hello > $MNT/mine && echo > $MNT/mine.notify
  getfattr -d $MNT/demo               # seq, capacity, refs, owner pid

Stop it all with:  scripts/run.sh --stop $MNT
MSG
