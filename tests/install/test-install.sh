#!/usr/bin/env bash
# Install test: what `meson install` (or the .deb packages) put on a system,
# used the way users use it.
#
#   tests/install/test-install.sh              build the tree with --prefix=/usr
#                                              into a temp dir, meson install
#                                              --destdir, test that
#   tests/install/test-install.sh --root DIR   test an installed tree (e.g. the
#                                              .debs unpacked by test-deb.sh)
#
# Checks: the file layout; libzinc.so.1 exports exactly the functions of
# zinc.h (each in its node of libzinc.map) and libzinc.a hides its internals; the
# README's example builds with `cc prog.c $(pkg-config --cflags --libs
# libzinc)` against the tree and runs with LD_LIBRARY_PATH; the man pages;
# `systemd-analyze verify` of the mount unit; and mounting with
# `mount -t fuse.zincfs`, `mount -t zincfs` and fstab lines (`mount -T FILE`)
# through the installed mount helper and daemon.
#
# Needs root (mounts).  Everything happens in a private mount namespace:
# the installed bin, sbin and lib directories are overlaid on /usr/bin,
# /usr/sbin and /usr/lib/<multiarch> there, because mount(8) only looks for
# helpers in /sbin and the helper runs the daemon by its installed path; the
# rest of the system never sees these mounts.  Regions live in a private
# tmpfs (zincfs -o shm_dir, ZINC_SHM_DIR); nothing is left in /dev/shm.
# Takes 10 to 40 seconds (machine load), the build included.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

ROOT=
while [ $# -gt 0 ]; do
	case $1 in
	--root) ROOT=$(cd "$2" && pwd); shift 2 ;;
	*) echo "usage: $0 [--root DIR]" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || { echo "test-install: needs root (mounts)" >&2; exit 1; }

# Re-run in a private mount namespace: nothing mounted here is visible outside.
if [ -z "${ZINC_INSTALL_TEST_NS:-}" ]; then
	args=()
	[ -z "$ROOT" ] || args=(--root "$ROOT")
	exec unshare --mount --propagation private \
		env ZINC_INSTALL_TEST_NS=1 bash "$0" "${args[@]}"
fi

PASS=0
FAILS=()
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAILS+=("$*"); echo "FAIL $*"; }
die() { echo "FAIL $*"; exit 1; }
LAST_OK=1
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then LAST_OK=1; ok "$what"; else LAST_OK=0; fail "$what"; fi
}
explain() { # explain TEXT: show TEXT under the check that just failed
	[ $LAST_OK -eq 1 ] || sed 's/^/    /' <<<"$*"
}

T=$(mktemp -d /tmp/zinc-install-test.XXXXXX)
MOUNTS=()   # mounted by us, unmounted in reverse order
cleanup() {
	local rc=$? i p
	set +e
	# zincfs daemons started here: unmount their mounts, then make sure
	# they are gone (by pid: those running the tree's daemon with our dir).
	for m in "$T"/mnt*; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	for p in $(daemon_pids); do kill "$p"; done
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount -l "${MOUNTS[i]}" 2>/dev/null
	done
	rm -rf "$T"
	if [ $rc -eq 0 ] && [ ${#FAILS[@]} -eq 0 ]; then
		echo "test-install: all $PASS checks passed"
	else
		echo "test-install: ${#FAILS[@]} failed, $PASS passed:"
		printf '  %s\n' "${FAILS[@]}"
		[ $rc -ne 0 ] || rc=1
	fi
	exit $rc
}
trap cleanup EXIT

# Pids of zincfs daemons serving a mount point under $T.
daemon_pids() {
	local d
	for d in /proc/[0-9]*; do
		case $(readlink "$d/exe" 2>/dev/null) in
		/usr/bin/zincfs|/usr/local/bin/zincfs) ;;
		*) continue ;;
		esac
		# not a daemon's guardian process (zincfs/guardian.c)
		[ "$(cat "$d/comm" 2>/dev/null)" = zincfs-guardian ] && continue
		tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF " $T/mnt" && echo "${d#/proc/}"
	done
}

MULTIARCH=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -n "$MULTIARCH" ] || die "cannot tell the multiarch triplet"

# ---- build and install into a destdir (unless --root) ----
BUILT=
if [ -z "$ROOT" ]; then
	BUILT=1
	echo "== [${SECONDS}s] meson setup --prefix=/usr, ninja, meson install --destdir"
	meson setup "$T/build" "$SRC" --prefix=/usr -Dbuildtype=debugoptimized \
		>"$T/build.log" 2>&1 || { cat "$T/build.log"; die "meson setup"; }
	ninja -C "$T/build" >>"$T/build.log" 2>&1 || { tail -30 "$T/build.log"; die "ninja"; }
	ROOT=$T/root
	meson install -C "$T/build" --destdir "$ROOT" >>"$T/build.log" 2>&1 ||
		{ tail -30 "$T/build.log"; die "meson install"; }
	ok "meson install --destdir"
fi
LIBDIR=$ROOT/usr/lib/$MULTIARCH
MAN=$ROOT/usr/share/man

# ---- layout ----
echo "== [${SECONDS}s] layout"
is_file() { [ -f "$1" ] && [ ! -L "$1" ]; }
is_link_to() { [ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]; }
mode_is() { [ "$(stat -c %a "$1")" = "$2" ]; }
check "header usr/include/zinc.h" is_file "$ROOT/usr/include/zinc.h"
check "libzinc.so.1.0.0" is_file "$LIBDIR/libzinc.so.1.0.0"
check "libzinc.so.1 -> libzinc.so.1.0.0 (soname link)" is_link_to "$LIBDIR/libzinc.so.1" libzinc.so.1.0.0
check "libzinc.so -> libzinc.so.1 (link for -lzinc)" is_link_to "$LIBDIR/libzinc.so" libzinc.so.1
check "libzinc_core.so (zinc adapters; a library of its own)" is_file "$LIBDIR/libzinc_core.so"
check "libzinc.a" is_file "$LIBDIR/libzinc.a"
check "pkgconfig/libzinc.pc" is_file "$LIBDIR/pkgconfig/libzinc.pc"
check "usr/bin/zincfs (0755)" mode_is "$ROOT/usr/bin/zincfs" 755
check "usr/bin/zinc (0755)" mode_is "$ROOT/usr/bin/zinc" 755
check "usr/sbin/mount.zincfs (0755)" mode_is "$ROOT/usr/sbin/mount.zincfs" 755
check "usr/sbin/mount.fuse.zincfs -> mount.zincfs" is_link_to "$ROOT/usr/sbin/mount.fuse.zincfs" mount.zincfs
check "mount helper runs /usr/bin/zincfs" grep -qx "ZINCFS='/usr/bin/zincfs'" "$ROOT/usr/sbin/mount.zincfs"
UNIT=$ROOT/lib/systemd/system/run-zinc.mount
check "lib/systemd/system/run-zinc.mount" is_file "$UNIT"
check "usr/sbin/zinc-bridge (0755)" mode_is "$ROOT/usr/sbin/zinc-bridge" 755
BRIDGE_UNIT=$ROOT/lib/systemd/system/zinc-bridge.service
check "lib/systemd/system/zinc-bridge.service" is_file "$BRIDGE_UNIT"
check "zinc-bridge.service runs /usr/sbin/zinc-bridge" grep -q '^ExecStart=/usr/sbin/zinc-bridge -f ' "$BRIDGE_UNIT"
leftover=$(cd "$ROOT" && find . -path ./usr/local -prune -o -name '*.la' -print)
check "no libtool .la files" test -z "$leftover"
check "nothing under usr/local" test ! -e "$ROOT/usr/local"

# ---- exported symbols ----
echo "== [${SECONDS}s] symbols"
# The functions zinc.h declares (a declaration line starts with a type).
sed -n 's/^[a-z][a-z0-9_ ]*[ *]\(zinc_[a-z_]*\)(.*/\1/p' "$SRC/include/zinc.h" | sort -u >"$T/api"
nm -D --defined-only "$LIBDIR/libzinc.so.1" | awk '{print $2, $3}' | sort >"$T/dynsym"
awk '$1 == "T" {print $2}' "$T/dynsym" >"$T/exported"
# Each function's version node (ZINC_1, ZINC_1.1, ...), from libzinc.map.
awk '/^ZINC_[0-9.]* *\{/ {node = $1} /global:/ {g = 1; next} /local:|\}/ {g = 0}
     g {gsub(/;/, " "); for (i = 1; i <= NF; i++) print $i "@@" node}' \
	"$SRC/libzinc/libzinc.map" | sort >"$T/api.versioned"
[ "$(wc -l <"$T/api")" -ge 20 ] || die "could not read the API from zinc.h"
sed 's/@@.*//' "$T/exported" | sort -u >"$T/exported.names"
check "nm -D: exactly the $(wc -l <"$T/api") functions of zinc.h" \
	cmp -s "$T/api" "$T/exported.names"
explain "$(diff "$T/api" "$T/exported.names")"
check "nm -D: each in its version node of libzinc.map" \
	cmp -s "$T/exported" "$T/api.versioned"
explain "$(diff "$T/api.versioned" "$T/exported")"
nodes=$(sed 's/.*@@//' "$T/api.versioned" | sort -u | tr '\n' ' ')
others=$(awk -v nodes=" $nodes" '$1 != "T" && !($1 == "A" && index(nodes, " " $2 " "))' "$T/dynsym")
check "nm -D: no other defined dynamic symbols" test -z "$others"
explain "$others"
check "SONAME libzinc.so.1" sh -c "objdump -p '$LIBDIR/libzinc.so.1' | grep -q 'SONAME *libzinc.so.1\$'"
check "SONAME libzinc_core.so" sh -c "objdump -p '$LIBDIR/libzinc_core.so' | grep -q 'SONAME *libzinc_core.so\$'"
nm -D --defined-only "$LIBDIR/libzinc_core.so" | awk '{print $2, $3}' | sort >"$T/core.dynsym"
check "libzinc_core.so exports what libzinc.so.1 does" cmp -s "$T/core.dynsym" "$T/dynsym"
explain "$(diff "$T/dynsym" "$T/core.dynsym")"
# -fvisibility=hidden: in the static archive every global function that is
# not public API is STV_HIDDEN (internal calls bind locally).
readelf -sW "$LIBDIR/libzinc.a" |
	awk '$4 == "FUNC" && $5 == "GLOBAL" && $7 != "UND" {print $8, $6}' | sort -u >"$T/a.syms"
public_hidden=$(awk 'NR == FNR {api[$1] = 1; next} ($1 in api) && $2 != "DEFAULT"' "$T/api" "$T/a.syms")
internal_visible=$(awk 'NR == FNR {api[$1] = 1; next} !($1 in api) && $2 != "HIDDEN"' "$T/api" "$T/a.syms")
check "libzinc.a: public functions have default visibility" test -z "$public_hidden"
check "libzinc.a: internal functions are hidden (-fvisibility=hidden)" test -z "$internal_visible"
explain "not hidden: $(echo $internal_visible)"

# ---- man pages ----
echo "== [${SECONDS}s] man pages"
man_page() { # man_page SECTION NAME: a page, a compressed page or a link
	local f=$MAN/man$1/$2.$1
	[ -e "$f" ] || [ -e "$f.gz" ]
}
check "zincfs(8)" man_page 8 zincfs
check "zinc-bridge(8)" man_page 8 zinc-bridge
check "zinc(7)" man_page 7 zinc
check "zinc(1)" man_page 1 zinc
missing=()
while read -r fn; do man_page 3 "$fn" || missing+=("$fn"); done <"$T/api"
check "a zinc_*(3) page for each of the $(wc -l <"$T/api") functions" test ${#missing[@]} -eq 0
explain "missing: ${missing[*]}"

# ---- systemd unit ----
echo "== [${SECONDS}s] systemd unit"
if command -v systemd-analyze >/dev/null; then
	# It runs man(1) for each Documentation=man:PAGE: in the tree's pages.
	# Without man-db, --man=no (the pages are checked above).
	manopt=()
	command -v man >/dev/null || manopt=(--man=no)
	out=$(MANPATH=$MAN systemd-analyze verify "${manopt[@]}" "$UNIT" 2>&1) && [ -z "$out" ] &&
		ok "systemd-analyze verify${manopt:+ ${manopt[*]}} run-zinc.mount (Documentation= pages from the tree)" ||
		fail "systemd-analyze verify run-zinc.mount: $out"
	# The service's ExecStart must exist: point it at the installed tree.
	sed "s|/usr/sbin/zinc-bridge|$ROOT/usr/sbin/zinc-bridge|" "$BRIDGE_UNIT" >"$T/zinc-bridge.service"
	out=$(MANPATH=$MAN systemd-analyze verify "${manopt[@]}" "$T/zinc-bridge.service" 2>&1) && [ -z "$out" ] &&
		ok "systemd-analyze verify zinc-bridge.service" ||
		fail "systemd-analyze verify zinc-bridge.service: $out"
else
	# No systemd here: check what verify would, by hand.
	echo "     (systemd-analyze not installed: checking the unit by hand)"
	bad=$(awk '/^[ \t]*(#|;|$)/ {next}
		/^\[/ {sec = $0; if (sec !~ /^\[(Unit|Mount|Install)\]$/) print "section " sec; next}
		!/^[A-Za-z]+=/ {print "line " NR; next}
		{k = sec substr($0, 1, index($0, "=") - 1)}
		k !~ /^\[Unit\](Description|Documentation)$/ &&
		k !~ /^\[Mount\](What|Where|Type|Options)$/ &&
		k !~ /^\[Install\]WantedBy$/ {print "key " k}' "$UNIT")
	check "run-zinc.mount: known sections and keys only${bad:+ ($bad)}" test -z "$bad"
	check "run-zinc.mount: Where=/run/zinc matches the unit name" grep -qx 'Where=/run/zinc' "$UNIT"
	check "run-zinc.mount: Type=fuse.zincfs" grep -qx 'Type=fuse.zincfs' "$UNIT"
fi

# ---- the README example, built against the installed tree ----
echo "== [${SECONDS}s] pkg-config and the README example"
SHM=$T/shm
mkdir -p "$SHM"
mount -t tmpfs -o size=16m,mode=1777 zinc-install-test "$SHM"
MOUNTS+=("$SHM")
export ZINC_SHM_DIR=$SHM
PC=(env PKG_CONFIG_PATH="$LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ROOT" PKG_CONFIG_LIBDIR=/nonexistent pkg-config)
flags=$("${PC[@]}" --cflags --libs libzinc) || die "pkg-config --cflags --libs libzinc"
flags=$(echo $flags)  # pkgconf ends with a blank
check "pkg-config points into the tree ($flags)" \
	test "$flags" = "-I$ROOT/usr/include -L$LIBDIR -lzinc"
check "pkg-config --modversion" test "$("${PC[@]}" --modversion libzinc)" = "$(sed -n "s/^ *version *: *'\(.*\)',/\1/p" "$SRC/meson.build" | head -1)"
cp "$HERE/readme-example.c" "$T/prog.c"
# shellcheck disable=SC2086
check "cc prog.c \$(pkg-config --cflags --libs libzinc)" \
	cc -Wall -Wextra -Werror -o "$T/prog" "$T/prog.c" $flags
if [ -x "$T/prog" ]; then
	export LD_LIBRARY_PATH=$LIBDIR
	check "prog uses the installed libzinc.so.1" \
		sh -c "ldd '$T/prog' | grep -q 'libzinc.so.1 => $LIBDIR/libzinc.so.1 '"
	coproc PRODUCER { exec "$T/prog" producer insttest_frames; }
	read -r -t 10 line <&"${PRODUCER[0]}" || line=
	check "producer created the region ($line)" test -e "$SHM/zinc_insttest_frames"
	"$T/prog" consumer insttest_frames >"$T/consumer.out" 2>&1 &
	cons=$!
	# Notify only once the consumer sleeps in zinc_wait (a futex wait).
	for _ in $(seq 500); do
		st=$(awk '{print $3}' "/proc/$cons/stat" 2>/dev/null) || break
		[ "$st" = S ] && grep -q futex "/proc/$cons/wchan" 2>/dev/null && break
		sleep 0.01
	done
	check "consumer blocks in zinc_wait (futex)" grep -q futex "/proc/$cons/wchan"
	echo go >&"${PRODUCER[1]}"
	read -r -t 10 line <&"${PRODUCER[0]}" || line=
	check "producer notified ($line)" test "$line" = "notified seq 1"
	wait "$PRODUCER_PID" && rc=0 || rc=$?
	check "producer exits 0" test "$rc" = 0
	wait "$cons" && rc=0 || rc=$?
	check "consumer woke with the frame ($(head -1 "$T/consumer.out"))" \
		test "$rc" = 0 -a "$(cat "$T/consumer.out")" = "got: frame 1 from the producer"
	check "the region is gone after the last close" test ! -e "$SHM/zinc_insttest_frames"
	unset LD_LIBRARY_PATH
fi

# ---- mounting ----
fstype() { findmnt -n -o FSTYPE --mountpoint "$1"; }
wait_daemon_gone() { # wait_daemon_gone PID...: true if all exit within 10 s
	local p
	for _ in $(seq 1000); do
		for p in "$@"; do [ -d "/proc/$p" ] && break; p=; done
		[ -z "$p" ] && return 0
		sleep 0.01
	done
	return 1
}
# exercise MNT WHAT: create a region through the mount and see it with zinc
exercise() {
	local mnt=$1 what=$2 pids got
	pids=$(daemon_pids)
	got=$(findmnt -n -o FSTYPE,SOURCE --mountpoint "$mnt" | tr -s ' ')
	check "$what: mounted, type fuse.zincfs, source zincfs${got:+ ($got)}" \
		test "$got" = "fuse.zincfs zincfs"
	check "$what: one daemon, $DAEMON from the tree" test "$(echo $pids | wc -w)" = 1
	echo "hello" >"$mnt/insttest_fs" && "$ROOT/usr/bin/zinc" info --json insttest_fs >"$T/info" 2>&1 || :
	check "$what: region made through the mount (zinc info: capacity 8192, owner zincfs)" \
		grep -qE "\"capacity\": 8192,.*\"owner_pid\": $pids," "$T/info"
	check "$what: data through the mount" test "$(head -c 6 "$mnt/insttest_fs")" = "hello"
	umount "$mnt"
	check "$what: umount" test -z "$(fstype "$mnt")"
	# shellcheck disable=SC2086
	check "$what: the daemon exits after umount" wait_daemon_gone $pids
	check "$what: its region is removed with it" test ! -e "$SHM/zinc_insttest_fs"
}

mkdir -p "$T/mnt1" "$T/mnt2" "$T/mnt3"
# mount(8) turns a SOURCE that names an existing file into its full path:
# run where no "zincfs" exists.
cd "$T"
OPTS="shm_dir=$SHM,region_size=8K"

if [ -n "$BUILT" ]; then
	# meson's default prefix, /usr/local: mount(8) only looks for helpers
	# in /sbin, so fuse3's /sbin/mount.fuse runs `zincfs` from PATH, which
	# finds libzinc.so.1 once ldconfig ran (here into a private cache).
	echo "== [${SECONDS}s] meson install with prefix /usr/local, ldconfig, mount -t fuse.zincfs"
	meson configure "$T/build" --prefix=/usr/local >>"$T/build.log" 2>&1 &&
		meson install -C "$T/build" --destdir "$T/local" >>"$T/build.log" 2>&1 ||
		{ tail -30 "$T/build.log"; die "meson install with prefix /usr/local"; }
	check "prefix /usr/local: the helper runs /usr/local/bin/zincfs" \
		grep -qx "ZINCFS='/usr/local/bin/zincfs'" "$T/local/usr/local/sbin/mount.zincfs"
	mount --bind "$T/local/usr/local" /usr/local && MOUNTS+=(/usr/local)
	ldconfig -X -C "$T/ld.so.cache" &&  # -X: no links made anywhere
		mount --bind "$T/ld.so.cache" /etc/ld.so.cache && MOUNTS+=(/etc/ld.so.cache)
	DAEMON=/usr/local/bin/zincfs
	out=$(mount -t fuse.zincfs zincfs "$T/mnt1" -o "$OPTS" 2>&1) ||
		fail "prefix /usr/local: mount -t fuse.zincfs: $out"
	exercise "$T/mnt1" "prefix /usr/local: mount -t fuse.zincfs"
	umount /etc/ld.so.cache /usr/local && unset 'MOUNTS[-1]' 'MOUNTS[-1]'
fi

echo "== [${SECONDS}s] mount -t fuse.zincfs, mount -t zincfs, fstab"
# Put the tree where its files say they are (see the top of this file).
for d in usr/bin usr/sbin "usr/lib/$MULTIARCH"; do
	[ -d "$ROOT/$d" ] || continue
	mount -t overlay "zinc-install-test" -o "lowerdir=$ROOT/$d:/$d" "/$d" ||
		die "overlay of $ROOT/$d on /$d"
	MOUNTS+=("/$d")
done
DAEMON=/usr/bin/zincfs

out=$(mount -v -t fuse.zincfs zincfs "$T/mnt1" -o "$OPTS" 2>&1) || fail "mount -t fuse.zincfs: $out"
check "mount -t fuse.zincfs runs /sbin/mount.fuse.zincfs" \
	grep -qF "mount.fuse.zincfs: running /usr/bin/zincfs zincfs $T/mnt1 -o" <<<"$out"
explain "$out"
exercise "$T/mnt1" "mount -t fuse.zincfs"

out=$(mount -v -n -s -t zincfs zincfs "$T/mnt1" -o "$OPTS,nodev" 2>&1) ||
	fail "mount -t zincfs: $out"
check "mount -v -n -s -t zincfs runs /sbin/mount.zincfs" \
	grep -qE "mount.zincfs: running /usr/bin/zincfs zincfs $T/mnt1 -o [^ ]*shm_dir=$SHM,region_size=8K" <<<"$out"
explain "$out"
exercise "$T/mnt1" "mount -t zincfs"

# The helper by itself, as mount(8) calls it: -f (fake) only says what it
# would run, fstab-only x-* and comment= options are not passed on.
out=$(/usr/sbin/mount.fuse.zincfs zincfs "$T/mnt1" -f -v -n -s -o "rw,x-systemd.automount,comment=x,$OPTS" -t fuse.zincfs 2>&1)
check "mount.fuse.zincfs -f -v: drops x-* and comment= ($out)" \
	test "$out" = "mount.fuse.zincfs: running /usr/bin/zincfs zincfs $T/mnt1 -o rw,$OPTS"
check "mount.fuse.zincfs -f: mounts nothing" test -z "$(fstype "$T/mnt1")$(daemon_pids)"

mount -f -t fuse.zincfs zincfs "$T/mnt1" -o "$OPTS" >/dev/null 2>&1
check "mount -f (fake) mounts nothing" test -z "$(fstype "$T/mnt1")$(daemon_pids)"

out=$(mount -t fuse.zincfs zincfs "$T/mnt1" -o "shm_dir=$SHM,region_size=123" 2>&1) &&
	fail "mount with a bad region_size succeeded" ||
	check "a bad option fails the mount with zincfs's message" \
		grep -q "zincfs: error: region_size=123" <<<"$out"
check "nothing mounted after the failure" test -z "$(fstype "$T/mnt1")$(daemon_pids)"

cat >"$T/fstab" <<EOF
# test fstab (mount -T): as in /etc/fstab
zincfs  $T/mnt2  fuse.zincfs  noauto,nofail,_netdev,x-systemd.automount,x-systemd.idle-timeout=60,nodev,nosuid,noexec,$OPTS  0  0
zincfs  $T/mnt3  fuse.zincfs  defaults,nofail,$OPTS  0  0
EOF
out=$(mount -T "$T/fstab" "$T/mnt2" 2>&1) || fail "mount -T fstab MOUNTPOINT: $out"
check "fstab line (noauto, x-systemd.*, ...): nodev,nosuid,noexec applied" \
	sh -c "findmnt -n -o OPTIONS --mountpoint '$T/mnt2' | tr , '\n' | grep -cxE 'nodev|nosuid|noexec' | grep -qx 3"
exercise "$T/mnt2" "mount -T fstab MOUNTPOINT"

out=$(mount -T "$T/fstab" -a -t fuse.zincfs 2>&1) || fail "mount -T fstab -a: $out"
check "mount -T fstab -a skips the noauto line" test -z "$(fstype "$T/mnt2")"
exercise "$T/mnt3" "mount -T fstab -a"

leftover=$(ls -A "$SHM")
check "the region directory is empty${leftover:+ ($leftover)}" test -z "$leftover"
leftover=$(find /dev/shm -maxdepth 1 -name "*insttest*" -printf "%f ")
check "nothing of ours in /dev/shm${leftover:+ ($leftover)}" test -z "$leftover"
