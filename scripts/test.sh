#!/usr/bin/env bash
# Build everything and run every test: libzinc's C unit tests (plain and
# under AddressSanitizer+UndefinedBehaviorSanitizer) and the pytest suite
# that mounts zincfs.  Installs missing Debian packages when run as root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages
ensure_fuse
PYTEST=$(pytest_cmd)

echo "== build (-Werror)"
configure_build build -Dwerror=true -Dbuildtype=debugoptimized
ninja -C build

echo "== libzinc unit tests"
meson test -C build --print-errorlogs

echo "== libzinc unit tests under ASan+UBSan"
configure_build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs

# One pytest run per suite: each has its own conftest.py.
export ZINC_BUILD_DIR="$ROOT/build"
echo "== zinc tool tests (pytest)"
$PYTEST -q -p no:cacheprovider tests/cli
echo "== zincfs tests (pytest)"
$PYTEST -q -p no:cacheprovider tests/zincfs
