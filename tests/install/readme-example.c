/* SPDX-License-Identifier: MIT */
/*
 * The README's "libzinc in 20 lines" as a complete program, built by
 * tests/install/test-install.sh outside the tree with
 *     cc readme-example.c $(pkg-config --cflags --libs libzinc)
 * against an installed libzinc.
 *
 *   readme-example producer NAME   create NAME, write a frame, print
 *                                  "created", wait for a line on stdin,
 *                                  notify, print "notified", close
 *   readme-example consumer NAME   open NAME, wait for one notification
 *                                  (10 s at most), print "got: FRAME"
 */
#include <zinc.h>

#include <stdio.h>
#include <string.h>

static int producer(const char *name)
{
	const char frame[] = "frame 1 from the producer";
	size_t len = sizeof(frame);

	zinc_region *r;
	int rc = zinc_create(name, 1 << 20, &r);   /* 0 or a negative errno */
	if (rc) {
		fprintf(stderr, "zinc_create: %s\n", zinc_strerror(rc));
		return 1;
	}
	memcpy(zinc_ptr(r), frame, len);
	printf("created %s: %zu bytes, libzinc format %#x\n", zinc_name(r),
	       (size_t)zinc_capacity(r), (unsigned)zinc_version());
	fflush(stdout);

	char line[64];                              /* go ahead from the test */
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "no go-ahead on stdin\n");
		zinc_close(r);
		return 1;
	}
	zinc_notify(r);                             /* wakes every waiter */
	printf("notified seq %u\n", (unsigned)zinc_seq(r));
	zinc_close(r);
	return 0;
}

static int consumer(const char *name)
{
	zinc_region *r;
	int rc = zinc_open(name, &r);
	if (rc) {
		fprintf(stderr, "zinc_open: %s\n", zinc_strerror(rc));
		return 1;
	}
	rc = zinc_wait(r, 10000);                   /* or -ETIMEDOUT, -EIDRM */
	if (rc == 0)
		printf("got: %.*s\n", (int)zinc_capacity(r),
		       (const char *)zinc_ptr(r));
	else
		fprintf(stderr, "zinc_wait: %s\n", zinc_strerror(rc));
	zinc_close(r);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "producer") == 0)
		return producer(argv[2]);
	if (argc == 3 && strcmp(argv[1], "consumer") == 0)
		return consumer(argv[2]);
	fprintf(stderr, "usage: %s producer|consumer NAME\n", argv[0]);
	return 2;
}
