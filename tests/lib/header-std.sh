#!/bin/sh
# SPDX-License-Identifier: MIT
# include/zinc.h builds cleanly as every C and C++ standard we support, with
# gcc and clang (each one installed), as code written against zinc's own
# header uses it (ZincHandle, and MAGIC/VERSION only with
# ZINC_CORE_COMPAT_MACROS), and never defines MAGIC/VERSION by default.
#
# Usage: header-std.sh INCLUDE_DIR     (exit 0 pass, 1 fail, 77 skip)
set -u
INC=$1
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT

cat >"$T/use.c" <<'SRC'
#include <zinc.h>
#if defined(MAGIC) || defined(VERSION)
#error "zinc.h defines MAGIC or VERSION without ZINC_CORE_COMPAT_MACROS"
#endif
/* As code written against zinc's zinc.h does it. */
int use(void);
int use(void)
{
	ZincHandle h = 0;
	int32_t rc = zinc_create("x", 4096, &h);
	if (rc == 0) {
		zinc_notify(h);
		rc = zinc_wait(h, 0);
		zinc_close(h);
	}
	return rc + (int)sizeof(struct zinc_header);
}
SRC
cat >"$T/compat.c" <<'SRC'
#define ZINC_CORE_COMPAT_MACROS
#include <zinc.h>
int check(const struct zinc_header *h);
int check(const struct zinc_header *h)
{
	bool ok = h->magic == MAGIC && h->version == VERSION;
	if (!ok)
		abort(); /* <stdlib.h> comes with the macros, as in zinc's header */
	return ok;
}
SRC

fails=0 ran=0
try() { # try COMPILER STD LANG FILE
	ran=$((ran + 1))
	if "$1" -std="$2" -x "$3" -Wall -Wextra -pedantic -Werror -I"$INC" \
		-c "$4" -o "$T/out.o" 2>"$T/err"; then
		echo "ok   $1 -std=$2 $(basename "$4")"
	else
		echo "FAIL $1 -std=$2 $(basename "$4")"
		sed 's/^/    /' "$T/err" | head -20
		fails=$((fails + 1))
	fi
}
for cc in gcc clang; do
	command -v $cc >/dev/null || { echo "skip $cc (not installed)"; continue; }
	for std in c99 c11 c17; do
		for f in use.c compat.c; do try $cc $std c "$T/$f"; done
	done
done
for cxx in g++ clang++; do
	command -v $cxx >/dev/null || { echo "skip $cxx (not installed)"; continue; }
	for std in c++11 c++14 c++17 c++20; do
		for f in use.c compat.c; do try $cxx $std c++ "$T/$f"; done
	done
done
[ $ran -gt 0 ] || exit 77
[ $fails -eq 0 ] || { echo "$fails of $ran failed"; exit 1; }
echo "all $ran passed"
