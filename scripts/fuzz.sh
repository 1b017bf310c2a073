#!/usr/bin/env bash
# Fuzz libzinc and zincfs for a bounded time (run as root):
#   1. region_fuzz (libFuzzer, ASan+UBSan): arbitrary objects handed to
#      zinc_stat/zinc_open/zinc_create/...; corpus tests/fuzz/corpus/region_fuzz
#      plus what earlier runs found (build-fuzz/fuzz-corpus, not committed);
#   2. zincfs_fuzz.py: random request sequences against a live mount of the
#      ASan+UBSan zincfs from the same build.
# Builds build-fuzz (clang: CC=clang meson setup build-fuzz -Dfuzz=true
# -Db_sanitize=address,undefined -Db_lundef=false), prints a summary and
# exits non-zero on any finding (crash, sanitizer report, hang, wedge).
#
# Usage: scripts/fuzz.sh [--ci] [--time SECONDS] [--seed N]
#   --time S   seconds for each of the two fuzzers (default 300)
#   --ci       45 s each (the whole script stays under ~2 minutes)
#   --seed N   seed of the zincfs fuzzer (default random; printed)
# Findings: build-fuzz/artifacts/ (libFuzzer crash inputs, zincfs op logs).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

TIME=300
SEED=
while [ $# -gt 0 ]; do
	case $1 in
	--ci) TIME=45 ;;
	--time) TIME=${2:?--time needs seconds}; shift ;;
	--seed) SEED=${2:?--seed needs a number}; shift ;;
	-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || die "run as root: the zincfs fuzzer mounts file systems"

ZINC_PACKAGES+=(clang libclang-rt-dev)
ensure_packages
ensure_fuse
ensure_fusectl # the zincfs fuzzer aborts a wedged connection there

BUILD=build-fuzz
ART=$ROOT/$BUILD/artifacts
echo "== build $BUILD (clang, ASan+UBSan, -Dfuzz=true)"
if [ -f "$BUILD/build.ninja" ] &&
	! grep -q '^ command = clang ' "$BUILD/build.ninja"; then
	die "$BUILD exists but was not configured with clang: remove it"
fi
CC=clang configure_build "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debugoptimized
ninja -C "$BUILD" tests/fuzz/region_fuzz zincfs/zincfs
mkdir -p "$ART"

shm_before=$(ls /dev/shm | grep '^zinc_' || true)
TMP=$(mktemp -d /tmp/zinc-fuzz-XXXXXX)
cleanup() {
	if mountpoint -q "$TMP/shm" 2>/dev/null; then
		umount "$TMP/shm" || umount -l "$TMP/shm"
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
mkdir "$TMP/shm"
mount -t tmpfs -o size=256m,mode=0700 zincfuzz "$TMP/shm"

# ---- 1. region validation (libFuzzer)
echo "== region_fuzz: $TIME s"
WORK=$BUILD/fuzz-corpus/region_fuzz
mkdir -p "$WORK"
region_rc=0
ZINC_FUZZ_DIR=$TMP/shm \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	"$BUILD/tests/fuzz/region_fuzz" -max_total_time="$TIME" -max_len=17000 \
	-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$ART/region_fuzz-" \
	"$WORK" tests/fuzz/corpus/region_fuzz >"$TMP/region.log" 2>&1 || region_rc=$?
region_runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$TMP/region.log")
region_secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$TMP/region.log")
region_cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$TMP/region.log" | tail -1 || true)
region_corpus=$(find "$WORK" -type f | wc -l)
left=$(ls -A "$TMP/shm")
if [ "$region_rc" -ne 0 ] || [ -n "$left" ]; then
	tail -n 60 "$TMP/region.log"
	[ -n "$left" ] && echo "region_fuzz left objects behind: $left"
	cp "$TMP/region.log" "$ART/region_fuzz.log"
	[ "$region_rc" -ne 0 ] || region_rc=1
fi

# ---- 2. zincfs requests (Python driver, ASan+UBSan daemon)
echo "== zincfs_fuzz: $TIME s"
set +e
/usr/bin/python3 tests/fuzz/zincfs_fuzz.py --time "$TIME" ${SEED:+--seed "$SEED"} \
	--build "$BUILD" --artifacts "$ART" 2>&1 | tee "$TMP/zincfs.log"
fs_rc=${PIPESTATUS[0]}
set -e
fs_summary=$(sed -n 's/^zincfs_fuzz: summary: //p' "$TMP/zincfs.log")

shm_after=$(ls /dev/shm | grep '^zinc_' || true)
new_shm=$(comm -13 <(echo "$shm_before") <(echo "$shm_after") | tr '\n' ' ')

echo "== fuzz summary"
echo "region_fuzz: ${region_runs:-?} executions in ${region_secs:-?} s," \
	"${region_cov:-no coverage line}, corpus $region_corpus inputs" \
	"($(find tests/fuzz/corpus/region_fuzz -type f | wc -l) seeds)," \
	"crashes: $([ "$region_rc" -eq 0 ] && echo 0 || echo "1 (exit $region_rc, see $ART)")"
echo "zincfs_fuzz: ${fs_summary:-no summary (driver failed, exit $fs_rc)}"
if [ -n "${new_shm// }" ]; then
	echo "warning: new zinc_* objects in /dev/shm (not ours: we use private dirs): $new_shm"
fi
if [ "$region_rc" -ne 0 ] || [ "$fs_rc" -ne 0 ]; then
	echo "fuzz: FINDINGS (region_fuzz exit $region_rc, zincfs_fuzz exit $fs_rc); see $ART"
	exit 1
fi
echo "fuzz: no findings"
