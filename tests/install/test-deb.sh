#!/usr/bin/env bash
# Debian package test: build libzinc1, libzinc-dev and zincfs with
# scripts/package-deb.sh (or take the .debs in DEBDIR), then
# - check with `dpkg-deb -c` that every file is where Debian policy puts it
#   (exact file lists: nothing missing, nothing extra), with the right
#   owner and mode, and the control fields (Depends, Multi-Arch, Section);
# - run lintian on the packages and fail on any error;
# - unpack them into a scratch root (a container-free sandbox) and run
#   tests/install/test-install.sh --root on it: layout, symbols, pkg-config
#   build of the README example, man pages, systemd unit, mounting.
#
#   tests/install/test-deb.sh [DEBDIR]
#
# Needs root (build dependencies are installed with apt-get, the install
# test mounts).  Takes 25 to 75 seconds (machine load), plus apt-get the
# first time.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

[ "$(id -u)" -eq 0 ] || { echo "test-deb: needs root" >&2; exit 1; }

PASS=0
FAILS=()
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAILS+=("$*"); echo "FAIL $*"; }
die() { echo "FAIL $*"; exit 1; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

T=$(mktemp -d /tmp/zinc-deb-test.XXXXXX)
cleanup() {
	local rc=$?
	rm -rf "$T"
	if [ $rc -eq 0 ] && [ ${#FAILS[@]} -eq 0 ]; then
		echo "test-deb: all $PASS checks passed"
	else
		echo "test-deb: ${#FAILS[@]} failed, $PASS passed:"
		printf '  %s\n' "${FAILS[@]}"
		[ $rc -ne 0 ] || rc=1
	fi
	exit $rc
}
trap cleanup EXIT

if [ $# -ge 1 ]; then
	DEBS=$(cd "$1" && pwd)
else
	echo "== [${SECONDS}s] scripts/package-deb.sh"
	# nocheck: scripts/test.sh has run the unit tests already (dh_auto_test
	# would run them again inside dpkg-buildpackage).
	DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
		"$SRC/scripts/package-deb.sh" "$T/debs" || die "scripts/package-deb.sh"
	DEBS=$T/debs
fi

VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb() { echo "$DEBS/${1}_${VERSION}_$ARCH.deb"; }
for p in libzinc1 libzinc-dev zincfs; do
	[ -f "$(deb $p)" ] || die "no $(deb $p)"
done

# The public functions (zinc.h): one man page each in libzinc-dev.
API=$(sed -n 's/^[a-z][a-z0-9_ ]*[ *]\(zinc_[a-z_]*\)(.*/\1/p' "$SRC/include/zinc.h" | sort -u)
[ "$(echo "$API" | wc -w)" -ge 20 ] || die "could not read the API from zinc.h"

# ---- file lists (dpkg-deb -c) ----
echo "== [${SECONDS}s] dpkg-deb -c"
# contents PKG: "TYPE MODE OWNER PATH[ -> TARGET]" per non-directory entry
contents() {
	dpkg-deb -c "$(deb "$1")" | awk '{
		type = substr($1, 1, 1); mode = substr($1, 2)
		path = $6; sub(/^\.\//, "/", path)
		if (type == "d") next
		line = type " " mode " " $2 " " path
		if (type == "l") line = line " -> " $8
		print line }' | sort
}
doc() { printf '%s\n' "- rw-r--r-- root/root /usr/share/doc/$1/changelog.gz" \
	"- rw-r--r-- root/root /usr/share/doc/$1/copyright"; }

{
	doc libzinc1
	echo "- rw-r--r-- root/root /usr/lib/$MA/libzinc.so.1.0.0"
	echo "l rwxrwxrwx root/root /usr/lib/$MA/libzinc.so.1 -> libzinc.so.1.0.0"
	echo "- rw-r--r-- root/root /usr/lib/$MA/libzinc_core.so"
	echo "- rw-r--r-- root/root /usr/share/lintian/overrides/libzinc1"
} | sort >"$T/want.libzinc1"

{
	doc libzinc-dev
	echo "- rw-r--r-- root/root /usr/include/zinc.h"
	echo "- rw-r--r-- root/root /usr/lib/$MA/libzinc.a"
	echo "- rw-r--r-- root/root /usr/lib/$MA/pkgconfig/libzinc.pc"
	echo "l rwxrwxrwx root/root /usr/lib/$MA/libzinc.so -> libzinc.so.1"
} | sort >"$T/want.libzinc-dev"

{
	doc zincfs
	echo "- rwxr-xr-x root/root /usr/bin/zinc"
	echo "- rwxr-xr-x root/root /usr/bin/zincfs"
	echo "- rwxr-xr-x root/root /usr/sbin/mount.zincfs"
	echo "- rwxr-xr-x root/root /usr/sbin/zinc-bridge"
	echo "- rw-r--r-- root/root /lib/systemd/system/zinc-bridge.service"
	echo "- rw-r--r-- root/root /usr/share/man/man8/zinc-bridge.8.gz"
	echo "l rwxrwxrwx root/root /usr/sbin/mount.fuse.zincfs -> mount.zincfs"
	echo "- rw-r--r-- root/root /lib/systemd/system/run-zinc.mount"
	echo "- rw-r--r-- root/root /usr/share/man/man1/zinc.1.gz"
	echo "- rw-r--r-- root/root /usr/share/man/man7/zinc.7.gz"
	echo "- rw-r--r-- root/root /usr/share/man/man8/zincfs.8.gz"
	echo "l rwxrwxrwx root/root /usr/share/man/man8/mount.zincfs.8.gz -> zincfs.8.gz"
	echo "l rwxrwxrwx root/root /usr/share/man/man8/mount.fuse.zincfs.8.gz -> zincfs.8.gz"
} | sort >"$T/want.zincfs"

for p in libzinc1 libzinc-dev zincfs; do
	contents $p >"$T/got.$p"
	if [ $p = libzinc-dev ]; then
		# man3: a page or a link to one per function, nothing else
		grep ' /usr/share/man/man3/' "$T/got.$p" >"$T/man3" || :
		grep -v ' /usr/share/man/man3/' "$T/got.$p" >"$T/got.tmp"
		mv "$T/got.tmp" "$T/got.$p"
		pages=$(sed -n 's|.* /usr/share/man/man3/\(zinc_[a-z_]*\)\.3\.gz\( -> zinc_[a-z_]*\.3\.gz\)\?$|\1|p' "$T/man3" | sort)
		check "libzinc-dev: /usr/share/man/man3/zinc_*.3.gz, one per function of zinc.h, 0644 or links" \
			test "$pages" = "$API" -a "$(grep -cvE '^(- rw-r--r--|l rwxrwxrwx) root/root ' "$T/man3")" = 0
	fi
	if cmp -s "$T/want.$p" "$T/got.$p"; then
		ok "$p: files, owners, modes and places as expected"
	else
		fail "$p: dpkg-deb -c differs from the expected list"
		diff -U0 "$T/want.$p" "$T/got.$p" | grep '^[-+][^-+]' | sed 's/^-/    missing: /; s/^+/    unexpected: /'
	fi
done

# ---- control fields ----
echo "== [${SECONDS}s] dpkg-deb -f"
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
check "libzinc1: Section libs, Multi-Arch same" \
	test "$(field libzinc1 Section) $(field libzinc1 Multi-Arch)" = "libs same"
check "libzinc-dev: Section libdevel, Multi-Arch same" \
	test "$(field libzinc-dev Section) $(field libzinc-dev Multi-Arch)" = "libdevel same"
check "libzinc-dev: Depends libzinc1 (= $VERSION)" \
	grep -qF "libzinc1 (= $VERSION)" <<<"$(field libzinc-dev Depends)"
deps=$(field zincfs Depends)
check "zincfs: Depends fuse3, libfuse3-3, libmosquitto1, libzinc1 (>= $VERSION) ($deps)" \
	sh -c "echo '$deps' | grep -q 'fuse3' && echo '$deps' | grep -q 'libfuse3-3' && echo '$deps' | grep -q 'libmosquitto1' && echo '$deps' | grep -qF 'libzinc1 (>= $VERSION)'"
check "libzinc1: shlibs and symbols control files" \
	sh -c "dpkg-deb --ctrl-tarfile '$(deb libzinc1)' | tar -t | grep -qx './symbols' &&
	       dpkg-deb --ctrl-tarfile '$(deb libzinc1)' | tar -t | grep -qx './shlibs'"
check "libzinc1: ldconfig trigger" \
	sh -c "dpkg-deb --ctrl-tarfile '$(deb libzinc1)' | tar -xO ./triggers | grep -q ldconfig"

# ---- lintian ----
echo "== [${SECONDS}s] lintian"
if ! command -v lintian >/dev/null; then
	echo "installing: lintian"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends lintian >/dev/null; } ||
		die "apt-get install lintian failed"
fi
command -v lintian >/dev/null || die "lintian not found (apt-get install lintian)"
changes=$(ls "$DEBS"/*.changes 2>/dev/null | head -1)
lint_in=("$(deb libzinc1)" "$(deb libzinc-dev)" "$(deb zincfs)")
[ -z "$changes" ] || lint_in=("$changes")
# As root lintian says so on stderr: only its tags matter.
lintian --pedantic --display-info --tag-display-limit 0 "${lint_in[@]}" >"$T/lintian" 2>"$T/lintian.err" || :
sed 's/^/    /' "$T/lintian"
errors=$(grep -c '^E: ' "$T/lintian" || :)
check "lintian: no errors ($(grep -c '^W: ' "$T/lintian" || :) warnings, $(grep -c '^[IP]: ' "$T/lintian" || :) info/pedantic)" \
	test "$errors" = 0
check "lintian ran (no failure messages)" test -z "$(grep -v 'running with root privileges' "$T/lintian.err")"

# ---- unpack and test as installed ----
echo "== [${SECONDS}s] unpack the packages and run test-install.sh --root"
mkdir "$T/root"
for p in libzinc1 libzinc-dev zincfs; do dpkg-deb -x "$(deb $p)" "$T/root"; done
if "$HERE/test-install.sh" --root "$T/root" >"$T/install.log" 2>&1; then
	ok "test-install.sh --root on the unpacked packages ($(tail -1 "$T/install.log"))"
else
	sed 's/^/    /' "$T/install.log"
	fail "test-install.sh --root on the unpacked packages"
fi
echo "== [${SECONDS}s] done"
