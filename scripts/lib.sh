# Shared by scripts/*.sh: find the repo, install what the build and the
# tests need, and configure a build directory.  Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build, the daemon and the tests use.
ZINC_PACKAGES=(gcc meson ninja-build pkg-config libfuse3-dev fuse3
	python3 python3-pytest inotify-tools attr util-linux procps
	man-db groff-base mandoc valgrind clang libclang-rt-dev
	dpkg-dev debhelper lintian libncurses-dev tmux
	libmosquitto-dev mosquitto mosquitto-clients openssl)

die() { echo "error: $*" >&2; exit 1; }

# Install those of the given Debian packages that are missing (as root).
ensure_debs() {
	local missing=() p
	command -v dpkg-query >/dev/null ||
		die "not a Debian/Ubuntu system: install by hand: $*"
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing packages; run as root or install them: sudo apt-get install ${missing[*]}"
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

ensure_packages() { ensure_debs "${ZINC_PACKAGES[@]}"; }

ensure_fuse() {
	[ -c /dev/fuse ] || die "/dev/fuse is missing: load the module (modprobe fuse) or run where FUSE works"
	command -v fusermount3 >/dev/null || die "fusermount3 not found (package fuse3)"
}

# The FUSE control file system, where a wedged FUSE connection is aborted
# (/sys/fs/fuse/connections/N/abort): systemd mounts it, a bare machine or
# a container may not, and a write there then fails.
ensure_fusectl() {
	local d=/sys/fs/fuse/connections
	findmnt -n -t fusectl -M "$d" >/dev/null && return 0
	mount -t fusectl none "$d" || die "cannot mount fusectl on $d (needed to abort a wedged FUSE connection)"
}

# Debian's interpreter: a python3 earlier on PATH (pyenv, venv) may lack pytest.
pytest_cmd() {
	if /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
		echo "/usr/bin/python3 -m pytest"
	elif command -v pytest-3 >/dev/null; then
		echo pytest-3
	else
		die "pytest for /usr/bin/python3 not found (package python3-pytest)"
	fi
}

# configure_build DIR [meson options...]: set up or reconfigure DIR.
configure_build() {
	local dir=$1; shift
	if [ -f "$ROOT/$dir/build.ninja" ]; then
		meson configure "$ROOT/$dir" "$@" >/dev/null
	else
		meson setup "$ROOT/$dir" "$ROOT" "$@" >/dev/null
	fi || die "meson setup of $dir failed"
}
