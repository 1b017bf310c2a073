#!/usr/bin/env bash
# Benchmarks: libzinc and zincfs next to the kernel's own mechanisms, every
# figure with its baseline from the same run (issue 4, docs/BENCHMARKS.md).
#
#   scripts/bench.sh [--quick] [--no-fs] [--spin-ns NS] [--rows 1,2,...] [--fs-opts OPTS]
#
# Builds an optimized build dir (build-bench: release, -O2, no sanitizers),
# runs tests/bench/zinc-bench against a private region directory, mounts
# zincfs on a temporary directory for rows 4-7 and 9 when the daemon builds and
# mounts, starts a private mosquitto and two zinc-bridge processes (two
# region directories) for row 10, prints one table, writes build-bench/results.json and
# build-bench/results.txt, and draws build-bench/bench.png (gnuplot).
# Cleans up always: unmount, stop the daemon, the bridges and the broker,
# remove the region directories.
# --quick: fewer samples, under a minute.  Full run: under five minutes.
# --fs-opts OPTS: more zincfs -o options, e.g. max_read=128K,read_ahead_kb=128
# to measure row 5 without the larger READs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=() NOFS=0 SPIN=() ROWS=() FS_OPTS=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=(--quick) ;;
	--no-fs) NOFS=1 ;;
	--spin-ns) SPIN=(--spin-ns "$2"); shift ;;
	--rows) ROWS=(--rows "$2"); shift ;;
	--fs-opts) FS_OPTS=",$2"; shift ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--quick] [--no-fs] [--spin-ns NS] [--rows 1,2,...] [--fs-opts OPTS]" >&2
	   exit 2 ;;
	esac
	shift
done

die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
START=$EPOCHREALTIME
BUILD=build-bench
MAX_THREADS=10

# ---- cleanup (always) ----
TMP="" SHM="" MNT="" DAEMON_PID="" BENCH_PID="" SHM_IS_TMPFS=0
BROKER_PID="" BRIDGE_PIDS=() BRIDGE_DIRS=()
mounted() { [ -n "$1" ] && grep -q " $(realpath "$1" 2>/dev/null) " /proc/self/mountinfo; }
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	if [ -n "$MNT" ] && mounted "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null ||
			umount -l "$MNT" 2>/dev/null || say "warning: could not unmount $MNT"
	fi
	if [ -n "$DAEMON_PID" ]; then
		local i
		for i in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			say "warning: zincfs did not exit after unmount: killing it"
			kill -KILL "$DAEMON_PID" 2>/dev/null || true
		fi
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	[ -n "$MNT" ] && rmdir "$MNT" 2>/dev/null || true
	local p
	for p in "${BRIDGE_PIDS[@]}" $BROKER_PID; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for p in "${BRIDGE_DIRS[@]}"; do rm -rf "$p"; done
	if [ -n "$SHM" ]; then
		if [ "$SHM_IS_TMPFS" = 1 ]; then
			umount "$SHM" 2>/dev/null || umount -l "$SHM" 2>/dev/null || true
			rmdir "$SHM" 2>/dev/null || true
		else
			rm -rf "$SHM"
		fi
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ----
command -v meson >/dev/null && command -v ninja >/dev/null && command -v cc >/dev/null ||
	die "meson, ninja and a C compiler are needed (Debian: apt-get install meson ninja-build gcc)"
if [ -f "$BUILD/build.ninja" ]; then
	meson configure "$BUILD" -Dbuildtype=release -Doptimization=2 -Db_sanitize=none >/dev/null
else
	meson setup "$BUILD" -Dbuildtype=release -Doptimization=2 -Db_sanitize=none >/dev/null ||
		die "meson setup $BUILD failed"
fi
say "building $BUILD (release, -O2, no sanitizers)"
ninja -C "$BUILD" tests/bench/zinc-bench >/dev/null || die "building zinc-bench failed"

FS_ARGS=() FS_WHY=""
if [ "$NOFS" = 1 ]; then
	FS_WHY="--no-fs given"
elif ! ninja -C "$BUILD" -t targets all 2>/dev/null | grep '^zincfs/zincfs:' >/dev/null; then
	FS_WHY="zincfs is not built yet (no zincfs/zincfs target in zincfs/meson.build)"
elif ! ninja -C "$BUILD" zincfs/zincfs >"$BUILD/zincfs-build.log" 2>&1; then
	FS_WHY="zincfs/zincfs does not build (see $BUILD/zincfs-build.log)"
elif [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	FS_WHY="no /dev/fuse or fusermount3 (package fuse3)"
fi

# ---- private region directory ----
TMP=$(mktemp -d /tmp/zinc-bench.XXXXXX)
SHM=$(mktemp -d /tmp/zinc-bench-shm.XXXXXX)
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=2g,mode=1777 zinc-bench "$SHM" 2>/dev/null; then
	SHM_IS_TMPFS=1
else
	# Not root: a directory in /dev/shm (tmpfs) instead.
	rmdir "$SHM"
	SHM=$(mktemp -d /dev/shm/zinc-bench.XXXXXX)
fi
export ZINC_SHM_DIR=$SHM

# ---- zincfs mount ----
if [ -z "$FS_WHY" ]; then
	MNT=$(mktemp -d /tmp/zinc-bench-mnt.XXXXXX)
	"$BUILD/zincfs/zincfs" -f -o "shm_dir=$SHM,max_threads=$MAX_THREADS$FS_OPTS" "$MNT" \
		2>"$TMP/zincfs.log" &
	DAEMON_PID=$!
	deadline=$(( $(date +%s) + 10 ))
	until mounted "$MNT"; do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID" 2>/dev/null || true
			DAEMON_PID=""
			FS_WHY="zincfs failed to mount: $(tail -n 2 "$TMP/zincfs.log" | tr '\n' ' ')"
			break
		fi
		[ "$(date +%s)" -le $deadline ] || { FS_WHY="zincfs did not mount within 10 s"; break; }
		sleep 0.05
	done
	if [ -z "$FS_WHY" ]; then
		say "zincfs mounted on $MNT (pid $DAEMON_PID, max_threads=$MAX_THREADS$FS_OPTS)"
		FS_ARGS=(--mnt "$MNT" --daemon-pid "$DAEMON_PID" --max-threads "$MAX_THREADS")
	fi
fi
[ -n "$FS_WHY" ] && FS_ARGS=(--skip-fs "$FS_WHY") && say "rows 4-7 and 9 skipped: $FS_WHY"

# ---- row 10: a private broker and two bridges, hosts A and B ----
BRIDGE_ARGS=() BRIDGE_WHY=""
if [ ${#ROWS[@]} = 0 ] || [[ ",${ROWS[1]}," == *,10,* ]]; then
	MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
	if [ ! -x "$MOSQUITTO" ]; then
		BRIDGE_WHY="no mosquitto broker (Debian: apt-get install mosquitto)"
	elif ! ninja -C "$BUILD" bridge/zinc-bridge >"$BUILD/bridge-build.log" 2>&1; then
		BRIDGE_WHY="bridge/zinc-bridge does not build (see $BUILD/bridge-build.log)"
	fi
fi
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ ${#ROWS[@]} != 0 ] && [[ ",${ROWS[1]}," != *,10,* ]]; then
	:
elif [ -z "$BRIDGE_WHY" ]; then
	PORT=""
	for _ in $(seq 20); do # a free port: nothing listens there
		p=$((20000 + RANDOM % 40000))
		listening "$p" || { PORT=$p; break; }
	done
	# user: mosquitto started as root switches to the mosquitto user otherwise.
	printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser %s\n%s\n' \
		"$PORT" "$(id -un)" "max_queued_messages 100" >"$TMP/mosquitto.conf"
	"$MOSQUITTO" -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
	BROKER_PID=$!
	deadline=$(( $(date +%s) + 10 ))
	until listening "$PORT"; do
		kill -0 "$BROKER_PID" 2>/dev/null && [ "$(date +%s)" -le $deadline ] ||
			{ BRIDGE_WHY="mosquitto did not listen on $PORT: $(tail -n 2 "$TMP/mosquitto.log" | tr '\n' ' ')"; break; }
		sleep 0.05
	done
	for host in A B; do
		[ -z "$BRIDGE_WHY" ] || break
		dir=$(mktemp -d "/dev/shm/zinc-bench-$host.XXXXXX")
		BRIDGE_DIRS+=("$dir")
		if [ $host = A ]; then role=(--publish 'b*'); else role=(--subscribe 'b*'); fi
		ZINC_SHM_DIR=$dir "$BUILD/bridge/zinc-bridge" -f --broker "mqtt://127.0.0.1:$PORT" \
			--id "zinc-bench-$host-$$" "${role[@]}" >"$TMP/bridge-$host.log" 2>&1 &
		BRIDGE_PIDS+=($!)
		deadline=$(( $(date +%s) + 10 ))
		until grep -q 'connected to' "$TMP/bridge-$host.log"; do
			kill -0 "$!" 2>/dev/null && [ "$(date +%s)" -le $deadline ] ||
				{ BRIDGE_WHY="bridge $host not connected: $(tail -n 2 "$TMP/bridge-$host.log" | tr '\n' ' ')"; break; }
			sleep 0.05
		done
	done
	[ -z "$BRIDGE_WHY" ] && BRIDGE_ARGS=(--bridge "$PORT:${BRIDGE_DIRS[0]}:${BRIDGE_DIRS[1]}") &&
		say "row 10: mosquitto on 127.0.0.1:$PORT, bridges A (publish b*) and B (subscribe b*)"
fi
[ -n "$BRIDGE_WHY" ] && BRIDGE_ARGS=(--skip-bridge "$BRIDGE_WHY") && say "row 10 skipped: $BRIDGE_WHY"

# ---- run ----
ulimit -n 65536 2>/dev/null || true
"$BUILD/tests/bench/zinc-bench" "${QUICK[@]}" "${SPIN[@]}" "${ROWS[@]}" "${FS_ARGS[@]}" \
	"${BRIDGE_ARGS[@]}" \
	--json "$BUILD/results.json" --dat "$TMP" >"$BUILD/results.txt" &
BENCH_PID=$!
wait "$BENCH_PID" || die "zinc-bench failed (exit $?)"
BENCH_PID=""
cat "$BUILD/results.txt"

for host in A B; do
	[ -s "$TMP/bridge-$host.log" ] && grep -qiE 'error|warn' "$TMP/bridge-$host.log" &&
		say "bridge $host logged: $(grep -iE 'error|warn' "$TMP/bridge-$host.log" | head -3)"
done
if [ -n "$DAEMON_PID" ] && grep -q 'error:' "$TMP/zincfs.log"; then
	say "warning: zincfs logged errors:"; grep 'error:' "$TMP/zincfs.log" | head -5 >&2
fi

# ---- chart ----
panels=0
for f in row1 row3 row4 row5; do [ -s "$TMP/$f.dat" ] && panels=$((panels + 1)); done
if [ "$panels" != 0 ] && ! command -v gnuplot >/dev/null && [ "$(id -u)" = 0 ] &&
	command -v apt-get >/dev/null; then
	say "installing gnuplot-nox for the chart"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox \
		>/dev/null 2>&1 || say "warning: apt-get install gnuplot-nox failed"
fi
if [ "$panels" = 0 ]; then
	say "no chart: none of the rows run (1, 3, 4, 5) is charted"
elif command -v gnuplot >/dev/null; then
	{
		echo "set terminal pngcairo size 1200,$((380 * panels)) font ',9' noenhanced"
		echo "set output '$BUILD/bench.png'"
		echo "set multiplot layout $panels,1"
		echo "set style fill solid 0.6 border -1; set boxwidth 0.6"
		echo "set xtics rotate by 25 right; set grid ytics; set key top left"
		echo "set bmargin 10; set lmargin 16; set rmargin 4"
		echo "set linetype 1 lc rgb '#9a9a9a'; set linetype 2 lc rgb '#7b3fbf'"
		plot() { # file title ylabel log
			[ -s "$TMP/$1.dat" ] || return 0
			echo "set title '$2'; set ylabel '$3'"
			if [ "$4" = log ]; then echo "set logscale y"; else echo "unset logscale y"; fi
			echo "plot '$TMP/$1.dat' using 0:2:4:xtic(1) with boxes lc variable \
title 'median (grey: baseline)', '' using 0:3 with points pt 7 ps 0.8 lc rgb 'black' title 'p99'"
		}
		plot row1 "Row 1: ping-pong round trip, two processes (median bars, p99 dots)" "us (log)" log
		plot row3 "Row 3: one notify, N waiter processes: time until first/last returned" "us (log)" log
		plot row4 "Row 4: through zincfs" "us (log)" log
		plot row5 "Row 5: read bandwidth of a 64 MiB region" "GiB/s" lin
		echo "unset multiplot"
	} >"$TMP/chart.gp"
	if gnuplot "$TMP/chart.gp" 2>"$TMP/gnuplot.log"; then
		say "chart: $BUILD/bench.png"
	else
		say "warning: gnuplot failed: $(head -3 "$TMP/gnuplot.log")"
	fi
else
	say "no chart: gnuplot not found (as root: apt-get install gnuplot-nox)"
fi

say "results: $BUILD/results.json, $BUILD/results.txt"
say "total time (build, mount, run, chart): $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $START }") s"
