/* SPDX-License-Identifier: MIT */
/*
 * The region name rule of zinc-core: 1 to ZINC_NAME_MAX bytes of
 * [A-Za-z0-9_-].  Header-only so that zincfs and the zinc tool apply the
 * very rule libzinc applies, without an exported symbol.
 */
#ifndef ZINC_NAME_H
#define ZINC_NAME_H

#include <stddef.h>
#include "zinc.h"

static inline int zinc__valid_name(const char *name)
{
	size_t n = 0;
	if (!name)
		return 0;
	for (; name[n]; n++) {
		char c = name[n];
		if (n >= ZINC_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

#endif
