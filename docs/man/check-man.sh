#!/bin/bash
# SPDX-License-Identifier: MIT
# Render every man page the way man(1) would and fail on any warning.
#
#   check-man.sh SRCDIR HEADER PAGE...
#
# - every PAGE is rendered with `man --warnings -l` (man-db + groff), with
#   `groff -man -t -ww -z`, and with `mandoc -T lint` when mandoc is
#   installed; anything on stderr, a non-zero status or empty output fails;
# - pages are rendered from a man1/ man3/ ... tree, as installed, so that
#   `.so man3/X.3` links resolve;
# - every public function of HEADER has a page that names it in SYNOPSIS;
# - every page in SRCDIR is in the PAGE list (so meson installs it).
set -u
export LC_ALL=C.UTF-8 MANWIDTH=80
# man-db may want a pager or a cache: neither is needed for -l.
export MANPAGER=cat PAGER=cat MAN_DISABLE_SECCOMP=1

srcdir=$(realpath "$1") header=$(realpath "$2")
shift 2
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

for tool in man groff; do
	if ! command -v "$tool" >/dev/null; then
		echo "FAIL: '$tool' not found: apt-get install man-db groff-base" >&2
		exit 1
	fi
done
have_mandoc=0
command -v mandoc >/dev/null && have_mandoc=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -A listed
pages=()
for p in "$@"; do
	base=${p##*/}
	sec=${base##*.}
	case $sec in [1-8]) ;; *) err "$base: no man section suffix"; continue ;; esac
	mkdir -p "$tmp/man$sec"
	cp "$(realpath "$p")" "$tmp/man$sec/$base"
	listed[$base]=1
	pages+=("man$sec/$base")
done

# Every page in the source directory must be installed.
for f in "$srcdir"/*.[1-8]; do
	[ -e "$f" ] || continue
	[ -n "${listed[${f##*/}]:-}" ] || err "${f##*/} is not listed in docs/man/meson.build"
done

cd "$tmp" || exit 1
for page in "${pages[@]}"; do
	# man-db: groff warnings appear on stderr.
	if ! man --warnings -l -E UTF-8 "$page" >out 2>errs; then
		err "$page: man exited with status $?"
	fi
	if [ -s errs ]; then
		err "$page: man --warnings:"; sed 's/^/    /' errs >&2
	fi
	if ! grep -q '^NAME' out || ! grep -q '^SEE ALSO' out; then
		err "$page: rendered page lacks NAME or SEE ALSO"
	fi
	cp out "${page//\//_}.txt"

	# groff with every warning enabled (tbl for pages that have tables).
	groff -man -t -ww -z "$page" >/dev/null 2>errs || err "$page: groff exited with status $?"
	if [ -s errs ]; then
		err "$page: groff -ww:"; sed 's/^/    /' errs >&2
	fi

	if [ $have_mandoc = 1 ]; then
		# A page that is only a `.so` link is what Debian policy asks
		# for (dh_installman turns it into a symlink): mandoc's style
		# warning about .so is accepted for such pages only.
		mandoc -T lint -W warning "$page" 2>&1 |
			if [ "$(grep -vc '^\.\\"' "$page")" = 1 ] && grep -q '^\.so ' "$page"; then
				grep -v 'WARNING: \.so is fragile'
			else
				cat
			fi >errs
		if [ -s errs ]; then
			err "$page: mandoc -T lint:"; sed 's/^/    /' errs >&2
		fi
	fi
done

# Every public function has a page whose SYNOPSIS declares it.
funcs=$(grep -E '^[a-z].*\bzinc_[a-z_]+\(' "$header" | grep -oE '\bzinc_[a-z_]+\(' | tr -d '(' | sort -u)
[ -n "$funcs" ] || err "no functions found in $header"
for f in $funcs; do
	txt=man3_$f.3.txt
	if [ ! -e "$txt" ]; then
		err "$f: no page man3/$f.3"
		continue
	fi
	# SYNOPSIS up to the next section must show "NAME(".
	if ! sed -n '/^SYNOPSIS/,/^[A-Z]/p' "$txt" | grep -q "\b$f("; then
		err "$f: man3/$f.3 does not declare $f() in SYNOPSIS"
	fi
	if ! sed -n '/^RETURN VALUE/,$p' "$txt" | grep -q '^ERRORS'; then
		err "$f: man3/$f.3 lacks RETURN VALUE or ERRORS"
	fi
done

n=${#pages[@]}
if [ $fail = 0 ]; then
	echo "ok: $n pages rendered without warnings (man, groff$([ $have_mandoc = 1 ] && echo ', mandoc'))"
fi
exit $fail
