/* SPDX-License-Identifier: MIT */
/*
 * The region format: struct zinc_header's layout, and the bytes of an object
 * libzinc creates, read back through a separate plain fd (not libzinc's
 * mapping), compared with independently computed values.  Also the version,
 * zinc_strerror and the NULL-handle conventions of every accessor.
 */
#include <stddef.h>
#include "testutil.h"

static uint64_t rd64(const unsigned char *b, size_t off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static uint32_t rd32(const unsigned char *b, size_t off)
{
	uint32_t v;
	memcpy(&v, b + off, 4);
	return v;
}

static uint16_t rd16(const unsigned char *b, size_t off)
{
	uint16_t v;
	memcpy(&v, b + off, 2);
	return v;
}

static void test_struct_layout(void)
{
	CHECK_EQ(sizeof(struct zinc_header), 64);
	CHECK_EQ(offsetof(struct zinc_header, magic), 0);
	CHECK_EQ(offsetof(struct zinc_header, version), 8);
	CHECK_EQ(offsetof(struct zinc_header, flags), 10);
	CHECK_EQ(offsetof(struct zinc_header, notify_seq), 12);
	CHECK_EQ(offsetof(struct zinc_header, capacity), 16);
	CHECK_EQ(offsetof(struct zinc_header, ref_count), 24);
	CHECK_EQ(offsetof(struct zinc_header, owner_pid), 28);
	CHECK_EQ(offsetof(struct zinc_header, created_at), 32);
	CHECK_EQ(offsetof(struct zinc_header, name_hash), 40);
	CHECK_EQ(offsetof(struct zinc_header, ring_head), 48);
	CHECK_EQ(offsetof(struct zinc_header, ring_tail), 56);
	CHECK_EQ(sizeof(((struct zinc_header *)0)->version), 2);
	CHECK_EQ(sizeof(((struct zinc_header *)0)->notify_seq), 4);
	CHECK_EQ(sizeof(((struct zinc_header *)0)->owner_pid), 4);
	/* "ZINC_REG" read as a big-endian number */
	CHECK_EQ(ZINC_MAGIC, 0x5A494E435F524547ULL);
	CHECK(memcmp("ZINC_REG", (const char[]){ 0x5A, 0x49, 0x4E, 0x43, 0x5F,
						0x52, 0x45, 0x47 }, 8) == 0);
	CHECK_EQ(ZINC_FORMAT_VERSION, 2);
	CHECK_EQ(ZINC_NAME_MAX, 250);
	CHECK(strcmp(ZINC_OBJECT_PREFIX, "zinc_") == 0);
	CHECK_EQ(zinc_data_offset(), (size_t)sysconf(_SC_PAGESIZE));
}

static void test_fnv_vectors(void)
{
	/* Published FNV-1a 64 test vectors: our helper must match them. */
	CHECK_EQ(tu_fnv1a(""), 0xcbf29ce484222325ULL);
	CHECK_EQ(tu_fnv1a("a"), 0xaf63dc4c8601ec8cULL);
	CHECK_EQ(tu_fnv1a("foobar"), 0x85944171f73967e8ULL);
}

/* Create NAME with `pages` data pages and check every header byte. */
static void check_created_bytes(const char *name, uint64_t want_hash,
				size_t pages)
{
	size_t page = tu_page();
	zinc_region *r;
	int64_t t0 = tu_realtime_ns();
	CHECK_OK(zinc_create(name, pages * page, &r));
	int64_t t1 = tu_realtime_ns();

	char p[PATH_MAX];
	tu_path(name, p, sizeof(p));
	struct stat st;
	CHECK_SYS(stat(p, &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(st.st_size, (off_t)(page + pages * page));
	/* The memory is reserved (fallocate), not a sparse file. */
	CHECK(st.st_blocks * 512 >= (off_t)(page + pages * page));

	int fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK_SYS(fd);
	unsigned char b[128];
	CHECK_EQ(pread(fd, b, sizeof(b), 0), (long)sizeof(b));
	CHECK_EQ(rd64(b, 0), ZINC_MAGIC);
	CHECK_EQ(rd16(b, 8), 2);
	CHECK_EQ(rd16(b, 10), 0);
	CHECK_EQ(rd32(b, 12), 0);
	CHECK_EQ(rd64(b, 16), pages * page);
	CHECK_EQ(rd32(b, 24), 1);
	CHECK_EQ(rd32(b, 28), (uint32_t)getpid());
	CHECK_RANGE(rd64(b, 32), t0, t1);
	CHECK_EQ(rd64(b, 40), want_hash);
	CHECK_EQ(rd64(b, 48), 0);
	CHECK_EQ(rd64(b, 56), 0);

	/* The handle's view agrees with the file. */
	CHECK_EQ(zinc_capacity(r), pages * page);
	CHECK(zinc_ptr(r) != NULL);
	CHECK_EQ((uintptr_t)zinc_ptr(r) % page, 0);
	CHECK(strcmp(zinc_name(r), name) == 0);
	CHECK_EQ(zinc_seq(r), 0);
	CHECK(zinc_fd(r) >= 0);
	CHECK(zinc_futex_word(r) == &tu_hdr(r)->notify_seq);
	CHECK_EQ(zinc_removed(r), 0);

	/* Data byte i is at file offset page + i; the data area starts
	 * zeroed and every byte of it is usable. */
	uint8_t *d = zinc_ptr(r);
	for (size_t i = 0; i < pages * page; i++)
		CHECK_EQ(d[i], 0);
	memcpy(d, "hello", 5);
	d[pages * page - 1] = 0x7e;
	char got[5];
	CHECK_EQ(pread(fd, got, 5, (off_t)zinc_data_offset()), 5);
	CHECK(memcmp(got, "hello", 5) == 0);
	unsigned char last;
	CHECK_EQ(pread(fd, &last, 1, (off_t)(page + pages * page - 1)), 1);
	CHECK_EQ(last, 0x7e);

	/* notify_seq at offset 12 is the counter. */
	zinc_notify(r);
	zinc_notify(r);
	CHECK_EQ(pread(fd, b, 16, 0), 16);
	CHECK_EQ(rd32(b, 12), 2);
	CHECK_EQ(zinc_seq(r), 2);

	/* ref_count at 24 counts handles. */
	zinc_region *r2, *r3;
	CHECK_OK(zinc_open(name, &r2));
	CHECK_OK(zinc_open(name, &r3));
	CHECK_EQ(pread(fd, b, 32, 0), 32);
	CHECK_EQ(rd32(b, 24), 3);
	CHECK_EQ(zinc_capacity(r2), pages * page);
	CHECK(memcmp(zinc_ptr(r2), "hello", 5) == 0);
	zinc_close(r3);
	CHECK_EQ(pread(fd, b, 32, 0), 32);
	CHECK_EQ(rd32(b, 24), 2);
	zinc_close(r2);
	CHECK_EQ(pread(fd, b, 32, 0), 32);
	CHECK_EQ(rd32(b, 24), 1);
	/* Nothing else in the 64 bytes changed. */
	CHECK_EQ(rd64(b, 0), ZINC_MAGIC);
	CHECK_EQ(rd64(b, 16), pages * page);

	/* zinc_capacity is the handle's own: a scribbled header field does
	 * not change it (nor make any handle reach past the mapping). */
	uint64_t saved = tu_hdr(r)->capacity;
	tu_hdr(r)->capacity = saved * 1000;
	CHECK_EQ(zinc_capacity(r), pages * page);
	struct zinc_info info;
	CHECK_OK(zinc_handle_stat(r, &info));
	CHECK_EQ(info.capacity, pages * page);
	tu_hdr(r)->capacity = saved;

	close(fd);
	zinc_close(r);
	CHECK(!tu_exists(name));
}

static void test_created_bytes(void)
{
	check_created_bytes("foobar", 0x85944171f73967e8ULL, 1);
	check_created_bytes("a", 0xaf63dc4c8601ec8cULL, 3);
	check_created_bytes("Zinc-Layout_42", tu_fnv1a("Zinc-Layout_42"), 2);
}

static void test_umask(void)
{
	/* mode 0600 "subject to umask" */
	mode_t old = umask(0077);
	zinc_region *r;
	CHECK_OK(zinc_create("umask", tu_page(), &r));
	char p[PATH_MAX];
	struct stat st;
	tu_path("umask", p, sizeof(p));
	CHECK_SYS(stat(p, &st));
	CHECK_EQ(st.st_mode & 0777, 0600);
	zinc_close(r);
	umask(0266);
	CHECK_OK(zinc_create("umask", tu_page(), &r));
	CHECK_SYS(stat(p, &st));
	CHECK_EQ(st.st_mode & 0777, 0400 & 0600);
	zinc_close(r);
	umask(old);
}

static void test_version_strerror(void)
{
	CHECK_EQ(zinc_version(), 0x00020001);
	for (int e = -4200; e <= 4200; e++) {
		const char *s = zinc_strerror(e);
		CHECK(s != NULL);
		CHECK(s[0] != 0);
	}
	const int codes[] = { 0, -EEXIST, -ENOENT, -EINVAL, -EPERM, -EAGAIN,
			      -EBADMSG, -ETIMEDOUT, -ENOSPC, -EIDRM, -ENOMEM,
			      -EBUSY,
			      INT32_MIN, INT32_MAX, INT32_MIN + 1 };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		CHECK(zinc_strerror(codes[i]) && *zinc_strerror(codes[i]));
	/* Distinct, meaningful texts for the codes libzinc returns. */
	CHECK(strcmp(zinc_strerror(-EEXIST), zinc_strerror(-ENOENT)) != 0);
	CHECK(strcmp(zinc_strerror(-EIDRM), zinc_strerror(-ETIMEDOUT)) != 0);
	CHECK(strcmp(zinc_strerror(-EBADMSG), zinc_strerror(-EINVAL)) != 0);
	CHECK(strcmp(zinc_strerror(-ENOSPC), zinc_strerror(-EAGAIN)) != 0);
	CHECK(strcmp(zinc_strerror(-EBUSY), zinc_strerror(-EAGAIN)) != 0);
	CHECK(strstr(zinc_strerror(-EBUSY), "removed") != NULL);
}

static int count_cb(const char *name, void *arg)
{
	(void)name;
	++*(int *)arg;
	return 0;
}

static void test_null_handle(void)
{
	struct zinc_info info;
	CHECK(zinc_ptr(NULL) == NULL);
	CHECK_EQ(zinc_capacity(NULL), 0);
	CHECK(zinc_name(NULL) == NULL);
	CHECK_EQ(zinc_seq(NULL), 0);
	CHECK(zinc_futex_word(NULL) == NULL);
	CHECK_RC(zinc_fd(NULL), -EINVAL);
	CHECK_RC(zinc_wait(NULL, 0), -EINVAL);
	CHECK_RC(zinc_wait(NULL, 10), -EINVAL);
	CHECK_RC(zinc_try_wait(NULL), -EINVAL);
	CHECK_RC(zinc_set_spin(NULL, 1000), -EINVAL);
	CHECK_RC(zinc_watch(NULL, 1), -EINVAL);
	CHECK_RC(zinc_removed(NULL), -EINVAL);
	CHECK_RC(zinc_handle_stat(NULL, &info), -EINVAL);
	zinc_notify(NULL);
	zinc_close(NULL);
	zinc_region *r;
	CHECK_OK(zinc_create("nullinfo", tu_page(), &r));
	CHECK_RC(zinc_handle_stat(r, NULL), -EINVAL);
	CHECK_RC(zinc_stat("nullinfo", NULL), -EINVAL);
	CHECK_RC(zinc_list(NULL, NULL), -EINVAL);
	int n = 0;
	CHECK_RC(zinc_list(count_cb, &n), 1);
	CHECK_EQ(n, 1);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	TU_RUN(test_struct_layout);
	TU_RUN(test_fnv_vectors);
	TU_RUN(test_created_bytes);
	TU_RUN(test_umask);
	TU_RUN(test_version_strerror);
	TU_RUN(test_null_handle);
	return T_PASS;
}
