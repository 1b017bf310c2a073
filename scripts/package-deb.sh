#!/usr/bin/env bash
# Build the Debian packages libzinc1, libzinc-dev and zincfs with
# `dpkg-buildpackage -us -uc -b` from a copy of the tree in a temporary
# directory (dpkg-buildpackage writes ../*.deb and debian/ build files: none
# of that lands in the source tree), and put the .deb, .changes and
# .buildinfo files into OUTDIR (default: build-deb/ in the tree, ignored by
# git like the other build directories).
#
#   scripts/package-deb.sh [--check] [OUTDIR]
#
# As root it installs the build dependencies of debian/control with apt-get;
# otherwise it prints the apt-get line to run.  The build skips the unit
# tests (DEB_BUILD_OPTIONS=nocheck: scripts/test.sh runs them, also under
# sanitizers) unless --check is given.  Takes about 15 seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

CHECK=0
if [ "${1:-}" = --check ]; then CHECK=1; shift; fi
OUT=${1:-$ROOT/build-deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# dpkg-buildpackage itself, then what debian/control asks for.
ensure_debs dpkg-dev build-essential

WORK=$(mktemp -d /tmp/zinc-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
SRC=$WORK/zinc-$VERSION
mkdir "$SRC"

# The files of the tree: tracked and new ones when this is a git checkout
# (not build directories or other ignored files), else everything but build*/.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
		(cd "$ROOT" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$ROOT" --null -T - -cf - | tar -C "$SRC" -xf -
else
	tar -C "$ROOT" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$SRC" -xf -
fi

cd "$SRC"
apt_profiles=()
if [ $CHECK -eq 0 ]; then
	export DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}"
	export DEB_BUILD_PROFILES="nocheck${DEB_BUILD_PROFILES:+ $DEB_BUILD_PROFILES}"
	apt_profiles=(-P "${DEB_BUILD_PROFILES// /,}")
fi
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] ||
		die "missing build dependencies ($(dpkg-checkbuilddeps 2>&1 | sed 's/.*: //')); run as root or: sudo apt-get build-dep $ROOT"
	echo "installing the build dependencies of debian/control"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get build-dep -y -qq --no-install-recommends "${apt_profiles[@]}" "$SRC" >/dev/null ||
		die "apt-get build-dep failed"
	dpkg-checkbuilddeps || die "build dependencies still unmet"
fi

echo "== dpkg-buildpackage -us -uc -b (log: $OUT/build.log)"
if ! dpkg-buildpackage -us -uc -b >"$OUT/build.log" 2>&1; then
	tail -n 40 "$OUT/build.log" >&2
	die "dpkg-buildpackage failed (full log: $OUT/build.log)"
fi

cd "$WORK"
shopt -s nullglob
files=(*.deb *.ddeb *.changes *.buildinfo)
[ ${#files[@]} -gt 0 ] || die "dpkg-buildpackage produced no packages"
# Replace the packages of an earlier run, not just add to them.
rm -f "$OUT"/*.deb "$OUT"/*.ddeb "$OUT"/*.changes "$OUT"/*.buildinfo
mv "${files[@]}" "$OUT"/
echo "== packages in $OUT:"
(cd "$OUT" && ls -1 -- *.deb)
