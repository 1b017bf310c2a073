/* Producer: create region NAME, write a message and notify, COUNT times.
 * Usage: zinc-producer NAME [COUNT] [INTERVAL_MS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zinc.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s NAME [COUNT] [INTERVAL_MS]\n", argv[0]);
		return 2;
	}
	long count = argc > 2 ? atol(argv[2]) : 10;
	long interval_ms = argc > 3 ? atol(argv[3]) : 500;
	zinc_region *r;
	int rc = zinc_create(argv[1], 4096, &r);
	if (rc) {
		fprintf(stderr, "zinc_create %s: %s\n", argv[1], zinc_strerror(rc));
		return 1;
	}
	for (long i = 1; count == 0 || i <= count; i++) {
		snprintf((char *)zinc_ptr(r), zinc_capacity(r), "message %ld\n", i);
		zinc_notify(r);
		printf("sent message %ld (seq %u)\n", i, zinc_seq(r));
		fflush(stdout);
		struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000 };
		nanosleep(&ts, NULL);
	}
	zinc_close(r);
	return 0;
}
