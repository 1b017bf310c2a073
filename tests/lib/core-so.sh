#!/bin/sh
# SPDX-License-Identifier: MIT
# libzinc_core.so works alone: a program linked with -lzinc_core records
# NEEDED libzinc_core.so (not libzinc.so.1) and runs with only a copy of
# that one file on its library path, as zinc's adapters ship it.
#
# Usage: core-so.sh LIBDIR INCLUDE_DIR CC [CFLAGS]   (exit 0 pass, 1 fail)
set -u
LIBDIR=$1 INC=$2 CC=$3 CFLAGS=${4:-}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL $*"; exit 1; }

cat >"$T/prog.c" <<'SRC'
#include <stdio.h>
#include <string.h>
#include <zinc.h>
int main(void)
{
	ZincHandle a = NULL, b = NULL;
	int rc = zinc_create("coreso", 4096, &a);
	if (rc == 0)
		rc = zinc_open("coreso", &b);
	if (rc == 0) {
		memcpy(zinc_ptr(a), "hi", 3);
		zinc_notify(a);
		rc = zinc_try_wait(b);
	}
	if (rc == 0 && strcmp((char *)zinc_ptr(b), "hi") != 0)
		rc = -1;
	zinc_close(b);
	zinc_close(a);
	printf("%s\n", rc ? zinc_strerror(rc) : "ok");
	return rc != 0;
}
SRC
"$CC" $CFLAGS -Wall -Wextra -Werror -I"$INC" -o "$T/prog" "$T/prog.c" -L"$LIBDIR" -lzinc_core ||
	fail "cc prog.c -lzinc_core"
needed=$(readelf -d "$T/prog" | sed -n 's/.*(NEEDED).*\[\(libzinc[^]]*\)\].*/\1/p')
[ "$needed" = libzinc_core.so ] || fail "prog needs '$needed', not libzinc_core.so"
soname=$(readelf -d "$LIBDIR/libzinc_core.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libzinc_core.so ] || fail "SONAME of libzinc_core.so is '$soname'"
[ ! -L "$LIBDIR/libzinc_core.so" ] || fail "libzinc_core.so is a symlink"
mkdir "$T/lib" "$T/shm"
cp "$LIBDIR/libzinc_core.so" "$T/lib/"
out=$(env ZINC_SHM_DIR="$T/shm" LD_LIBRARY_PATH="$T/lib" "$T/prog" 2>&1) ||
	fail "prog with only libzinc_core.so on its path: $out"
[ "$out" = ok ] || fail "prog printed '$out'"
[ -z "$(ls -A "$T/shm")" ] || fail "objects left: $(ls -A "$T/shm")"
echo "ok: NEEDED libzinc_core.so, SONAME libzinc_core.so, runs alone"
