#!/usr/bin/env bash
# Build everything and run every test:
#   - libzinc's C unit tests and the man page check (meson test),
#   - the same unit tests under ASan+UBSan and under ThreadSanitizer,
#   - the pytest suites of the zinc tool and of zincfs (which mount it),
#     against the plain build, the ASan+UBSan build, and with the daemon
#     under valgrind; the security suite (a second user attacks a mount)
#     against the plain build.
# Installs missing Debian packages when run as root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages
ensure_fuse
PYTEST="$(pytest_cmd) -q -p no:cacheprovider"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1

step() { echo; echo "== [${SECONDS}s] $*"; }

step "build (-Werror)"
configure_build build -Dwerror=true -Dbuildtype=debugoptimized
ninja -C build

step "unit tests and man pages"
meson test -C build --print-errorlogs

step "build with ASan+UBSan"
configure_build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
step "unit tests under ASan+UBSan"
meson test -C build-asan --suite libzinc --print-errorlogs

# No -Werror here: gcc warns that TSan cannot see fences (tests/soak uses them).
step "build with ThreadSanitizer"
configure_build build-tsan -Dwerror=false -Db_sanitize=thread -Db_lundef=false
ninja -C build-tsan
step "unit tests under ThreadSanitizer"
meson test -C build-tsan --suite libzinc --print-errorlogs

# The first zincfs run starts with the FUSE control file system unmounted,
# as on a machine without systemd's unit for it: what must mount it to abort
# a connection (zincfs's guardian, the test fixtures) then does.
step "unmount fusectl (/sys/fs/fuse/connections) for the first zincfs run"
if findmnt -n -t fusectl -M /sys/fs/fuse/connections >/dev/null; then
	umount /sys/fs/fuse/connections || umount -l /sys/fs/fuse/connections
fi

# Each pytest suite runs on its own: each has its own conftest.py.
for dir in build build-asan; do
	step "zinc tool tests ($dir)"
	ZINC_BUILD_DIR="$ROOT/$dir" $PYTEST tests/cli
	step "zincfs tests ($dir)"
	ZINC_BUILD_DIR="$ROOT/$dir" $PYTEST tests/zincfs
done

# zinc-bridge: a private mosquitto per test, two simulated hosts.
step "bridge tests"
ZINC_BUILD_DIR="$ROOT/build" $PYTEST tests/bridge

# A second user (uid 4244, through setpriv) attacks a root-run allow_other
# mount: races, locks, resource floods, kill -9 (about a minute).
step "security tests (build)"
ZINC_BUILD_DIR="$ROOT/build" $PYTEST tests/security

# Valgrind costs about 1.7 s per daemon start, and every test starts one:
# the 173 rows of the hostile-input table (test_hostile.py) run with the
# plain and the ASan+UBSan daemon above, not here, which keeps this step
# near 6 minutes instead of 11.
step "zincfs tests with the daemon under valgrind"
ZINC_BUILD_DIR="$ROOT/build" \
ZINCFS_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
	$PYTEST --ignore=tests/zincfs/test_hostile.py --durations=5 tests/zincfs

step "install test (meson install, pkg-config, mount helper, fstab, systemd unit)"
tests/install/test-install.sh
step "Debian packages (dpkg-buildpackage, dpkg-deb -c, lintian)"
tests/install/test-deb.sh

step "fuzzing (45 s per target)"
scripts/fuzz.sh --ci
# No --tolerate-wedge: zincfs's guardian aborts the connection of a zincfs
# killed inside a page cache invalidation, so none may stay wedged.
# --known-stale-mmap: see docs/RELIABILITY.md.
step "soak with fault injection (60 s)"
scripts/soak.sh --ci --known-stale-mmap
