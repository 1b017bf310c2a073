/* Consumer: open region NAME and print its data after each notification.
 * Usage: zinc-consumer NAME [COUNT] [TIMEOUT_MS] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zinc.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s NAME [COUNT] [TIMEOUT_MS]\n", argv[0]);
		return 2;
	}
	long count = argc > 2 ? atol(argv[2]) : 10;
	uint32_t timeout = argc > 3 ? (uint32_t)atol(argv[3]) : 5000;
	zinc_region *r;
	int rc = zinc_open(argv[1], &r);
	if (rc) {
		fprintf(stderr, "zinc_open %s: %s\n", argv[1], zinc_strerror(rc));
		return 1;
	}
	zinc_try_wait(r); /* skip what was sent before we came */
	for (long i = 0; count == 0 || i < count; i++) {
		rc = zinc_wait(r, timeout);
		if (rc) {
			fprintf(stderr, "zinc_wait %s: %s\n", argv[1], zinc_strerror(rc));
			break;
		}
		printf("seq %u: %.*s", zinc_seq(r), (int)zinc_capacity(r),
		       (const char *)zinc_ptr(r));
		fflush(stdout);
	}
	zinc_close(r);
	return rc ? 1 : 0;
}
