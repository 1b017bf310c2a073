/* SPDX-License-Identifier: MIT */
/* zinc-bench rows 4-7: through a zincfs mount. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

void fs_rows(int (*want_row)(int row))
{
	int any = want_row(4) || want_row(5) || want_row(6) || want_row(7);
	if (!any)
		return;
	if (!opt.mnt) {
		add_skip("4-7", opt.skip_fs ? opt.skip_fs : "no zincfs mount given (--mnt)");
		return;
	}
	add_skip("4-7", "zincfs rows not implemented yet in this zinc-bench");
}
