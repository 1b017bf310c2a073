// SPDX-License-Identifier: MIT
/*
 * LD_PRELOAD shim for the zincfs tests: a read of /dev/fuse that fails with
 * ENODEV (the kernel ended the connection) fails with ECONNABORTED instead,
 * which is what a worker sees when the connection ends just after it took a
 * request off the queue (fuse_dev_do_read).  That race is rare; this makes
 * every end of a connection look like it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

ssize_t read(int fd, void *buf, size_t count)
{
	static ssize_t (*real_read)(int, void *, size_t);
	if (!real_read)
		real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	ssize_t n = real_read(fd, buf, count);
	struct stat st;
	if (n < 0 && errno == ENODEV && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	    major(st.st_rdev) == 10 && minor(st.st_rdev) == 229) {
		static const char msg[] = "fuse-read-fault: ENODEV made ECONNABORTED\n";
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing to do: the test then fails for want of the line */
		}
		errno = ECONNABORTED;
	}
	return n;
}
