/* SPDX-License-Identifier: MIT */
/*
 * ZINC_OPEN_HEADER: a handle that maps only the header page.  zinc_ptr() is
 * NULL, zinc_capacity() is the object's, data goes through zinc_fd() at
 * zinc_data_offset(), notify/wait and lifetime work as for any handle, and
 * a huge (sparse, hostile) object costs one page of address space.
 */
#include "testutil.h"

/* Bytes of this process's address space mapped from inode ino. */
static uint64_t mapped_bytes(ino_t ino)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];
	uint64_t total = 0;
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, in;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %llu", &lo, &hi, &in) == 3 &&
		    in == (unsigned long long)ino)
			total += hi - lo;
	}
	fclose(f);
	return total;
}

static void test_header_handle(void)
{
	size_t page = tu_page(), off = zinc_data_offset();
	zinc_region *owner, *h;
	CHECK_OK(zinc_create("hdr", 4 * page, &owner));
	memset(zinc_ptr(owner), 0x3c, 4 * page);
	zinc_notify(owner);

	CHECK_OK(zinc_open_ex("hdr", ZINC_OPEN_HEADER, &h));
	CHECK(zinc_ptr(h) == NULL);
	CHECK_EQ(zinc_capacity(h), 4 * page);
	CHECK_EQ(mapped_bytes(tu_handle_ino(h)), 4 * page + page + page);
	unsigned char b[2] = { 0 };
	CHECK_EQ(pread(zinc_fd(h), b, 2, (off_t)(off + 4 * page - 2)), 2);
	CHECK_EQ(b[0], 0x3c);
	CHECK_EQ(b[1], 0x3c);
	CHECK_EQ(pwrite(zinc_fd(h), "Z", 1, (off_t)off + 7), 1);
	CHECK_EQ(zinc_ptr(owner)[7], 'Z');

	/* notify/wait in both directions */
	CHECK_OK(zinc_try_wait(h));
	CHECK_RC(zinc_try_wait(h), -EAGAIN);
	zinc_notify(h);
	CHECK_OK(zinc_wait(owner, 1000));
	struct zinc_info info;
	CHECK_OK(zinc_handle_stat(h, &info));
	CHECK_EQ(info.capacity, 4 * page);
	CHECK_EQ(info.owner_alive, 1);
	CHECK_EQ(info.ref_count, 2);

	/* It counts: the name outlives the owner's close, and goes with it. */
	zinc_close(owner);
	CHECK(tu_exists("hdr"));
	CHECK_EQ(zinc_removed(h), 0);
	zinc_close(h);
	CHECK(!tu_exists("hdr"));
}

static void test_header_observer(void)
{
	size_t page = tu_page();
	zinc_region *owner, *h;
	CHECK_OK(zinc_create("hobs", page, &owner));
	CHECK_OK(zinc_open_ex("hobs", ZINC_OPEN_HEADER | ZINC_OPEN_OBSERVE, &h));
	CHECK(zinc_ptr(h) == NULL);
	CHECK_EQ(zinc_capacity(h), page);
	CHECK_EQ(tu_hdr(owner)->ref_count, 1);
	zinc_close(owner); /* the observer keeps nothing alive */
	CHECK(!tu_exists("hobs"));
	CHECK_EQ(zinc_removed(h), 1);
	CHECK_RC(zinc_wait(h, UINT32_MAX), -EIDRM);
	zinc_close(h);

	zinc_region *x = (zinc_region *)1;
	CHECK_RC(zinc_open_ex("hobs", ZINC_OPEN_HEADER | 0x80, &x), -EINVAL);
	CHECK(x == NULL);
}

/* A valid header on a sparse terabyte: a full open maps all of it, a
 * header open one page. */
static void test_huge_object(void)
{
	size_t size = (size_t)1 << 40, page = tu_page();
	struct zinc_header hd = tu_header("huge", size, tu_dead_pid());
	int fd = tu_make_object("huge", size, &hd, 0600);
	struct stat st;
	CHECK_SYS(fstat(fd, &st));
	zinc_region *h;
	CHECK_OK(zinc_open_ex("huge", ZINC_OPEN_HEADER | ZINC_OPEN_OBSERVE, &h));
	CHECK_EQ(zinc_capacity(h), size - page);
	CHECK_EQ(mapped_bytes(st.st_ino), page);
	unsigned char c = 1;
	CHECK_EQ(pread(zinc_fd(h), &c, 1, (off_t)(size - 1)), 1);
	CHECK_EQ(c, 0);
	zinc_close(h);
	CHECK_EQ(mapped_bytes(st.st_ino), 0);

#ifndef __SANITIZE_THREAD__
	/* Not under ThreadSanitizer: its application address ranges do not
	 * always leave a 1 TiB hole (mmap ENOMEM in one CI run). */
	CHECK_OK(zinc_open_ex("huge", ZINC_OPEN_OBSERVE, &h));
	CHECK_EQ(mapped_bytes(st.st_ino), size);
	zinc_close(h);
#endif
	close(fd);
	CHECK_OK(zinc_unlink("huge"));
}

int main(void)
{
	tu_init();
	TU_RUN(test_header_handle);
	TU_RUN(test_header_observer);
	TU_RUN(test_huge_object);
	return T_PASS;
}
