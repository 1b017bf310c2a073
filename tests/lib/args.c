/* SPDX-License-Identifier: MIT */
/*
 * Bad input: region names (1..250 of [A-Za-z0-9_-]), capacities, NULL
 * arguments and unknown flags give -EINVAL from every entry point, set
 * *out to NULL, and create nothing.
 */
#include "testutil.h"

static zinc_region *const JUNK = (zinc_region *)(uintptr_t)0xdeadbeef;

/* Every name-taking function rejects `name` with -EINVAL. */
static void check_bad_name(const char *name, const char *what)
{
	zinc_region *r = JUNK;
	struct zinc_info info;
	fprintf(stderr, "  bad name: %s\n", what);
	CHECK_RC(zinc_create(name, tu_page(), &r), -EINVAL);
	CHECK(r == NULL);
	r = JUNK;
	CHECK_RC(zinc_open(name, &r), -EINVAL);
	CHECK(r == NULL);
	r = JUNK;
	CHECK_RC(zinc_open_ex(name, ZINC_OPEN_OBSERVE, &r), -EINVAL);
	CHECK(r == NULL);
	CHECK_RC(zinc_unlink(name), -EINVAL);
	CHECK_RC(zinc_stat(name, &info), -EINVAL);
	CHECK_NO_OBJECTS();
}

static void test_bad_names(void)
{
	char n251[252], n300[301];
	memset(n251, 'a', 251);
	n251[251] = 0;
	memset(n300, 'Z', 300);
	n300[300] = 0;

	check_bad_name("", "empty");
	check_bad_name(n251, "251 bytes");
	check_bad_name(n300, "300 bytes");
	check_bad_name("a/b", "slash");
	check_bad_name("/a", "leading slash");
	check_bad_name("..", "dotdot");
	check_bad_name(".", "dot");
	check_bad_name("../etc", "dotdot path");
	check_bad_name("a.b", "dot inside");
	check_bad_name("a b", "space");
	check_bad_name(" a", "leading space");
	check_bad_name("a\n", "newline");
	check_bad_name("a\tb", "tab");
	check_bad_name("caf\xc3\xa9", "UTF-8 e-acute");
	check_bad_name("\xe2\x9c\x93", "UTF-8 check mark");
	check_bad_name("\xff", "byte 0xff");
	check_bad_name("a:b", "colon");
	check_bad_name("a*", "star");
	check_bad_name("a+b", "plus");
	check_bad_name("a=b", "equals");
	check_bad_name("a\\b", "backslash");
	check_bad_name("a@b", "at");
	check_bad_name("a~", "tilde");
	check_bad_name("\x7f", "DEL");

	zinc_region *r = JUNK;
	struct zinc_info info;
	CHECK_RC(zinc_create(NULL, tu_page(), &r), -EINVAL);
	CHECK(r == NULL);
	r = JUNK;
	CHECK_RC(zinc_open(NULL, &r), -EINVAL);
	CHECK(r == NULL);
	r = JUNK;
	CHECK_RC(zinc_open_ex(NULL, 0, &r), -EINVAL);
	CHECK(r == NULL);
	CHECK_RC(zinc_unlink(NULL), -EINVAL);
	CHECK_RC(zinc_stat(NULL, &info), -EINVAL);
	CHECK_NO_OBJECTS();
}

static void check_good_name(const char *name)
{
	zinc_region *r, *r2;
	struct zinc_info info;
	CHECK_OK(zinc_create(name, tu_page(), &r));
	CHECK(tu_exists(name));
	CHECK(strcmp(zinc_name(r), name) == 0);
	CHECK_OK(zinc_open(name, &r2));
	CHECK_OK(zinc_stat(name, &info));
	CHECK_EQ(tu_hdr(r)->name_hash, tu_fnv1a(name));
	zinc_close(r2);
	zinc_close(r);
	CHECK(!tu_exists(name));
	CHECK_OK(zinc_create(name, tu_page(), &r));
	CHECK_OK(zinc_unlink(name));
	CHECK(!tu_exists(name));
	zinc_close(r);
}

static void test_good_names(void)
{
	char n250[251], n249[250];
	const char *alphabet =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	for (int i = 0; i < 250; i++)
		n250[i] = alphabet[i % 64];
	n250[250] = 0;
	memset(n249, '-', 249);
	n249[249] = 0;
	check_good_name("a");
	check_good_name("Z");
	check_good_name("0");
	check_good_name("_");
	check_good_name("-");
	check_good_name("--");
	check_good_name(alphabet);
	check_good_name(n250);
	check_good_name(n249);
	/* Case matters: two regions. */
	zinc_region *a, *b;
	CHECK_OK(zinc_create("Case", tu_page(), &a));
	CHECK_OK(zinc_create("case", tu_page(), &b));
	CHECK_EQ(tu_count_objects(), 2);
	zinc_close(a);
	zinc_close(b);
}

static void test_null_out(void)
{
	CHECK_RC(zinc_create("nullout", tu_page(), NULL), -EINVAL);
	CHECK_NO_OBJECTS();
	zinc_region *r;
	CHECK_OK(zinc_create("nullout", tu_page(), &r));
	CHECK_RC(zinc_open("nullout", NULL), -EINVAL);
	CHECK_RC(zinc_open_ex("nullout", 0, NULL), -EINVAL);
	CHECK_EQ(tu_hdr(r)->ref_count, 1);
	/* Unknown open flags. */
	zinc_region *o = JUNK;
	CHECK_RC(zinc_open_ex("nullout", 0x4, &o), -EINVAL);
	CHECK(o == NULL);
	o = JUNK;
	CHECK_RC(zinc_open_ex("nullout", 0x80000000u, &o), -EINVAL);
	CHECK(o == NULL);
	CHECK_EQ(tu_hdr(r)->ref_count, 1);
	zinc_close(r);
}

static void check_bad_size(uintptr_t cap, const char *what)
{
	zinc_region *r = JUNK;
	fprintf(stderr, "  bad size: %s (%ju)\n", what, (uintmax_t)cap);
	CHECK_RC(zinc_create("size", cap, &r), -EINVAL);
	CHECK(r == NULL);
	CHECK_NO_OBJECTS();
}

static void test_sizes(void)
{
	uintptr_t page = tu_page();
	uintptr_t top = (uintptr_t)1 << 63;
	check_bad_size(0, "zero");
	check_bad_size(1, "one");
	check_bad_size(page - 1, "page-1");
	check_bad_size(page + 1, "page+1");
	check_bad_size(page / 2 * 3, "1.5 pages");
	check_bad_size(2 * page - 1, "2 pages-1");
	check_bad_size(UINTPTR_MAX, "UINTPTR_MAX");
	check_bad_size(UINTPTR_MAX - page + 1, "largest page multiple");
	check_bad_size(top, "2^63");
	/* page + capacity must fit off_t */
	check_bad_size(top - page, "2^63 - page");
	check_bad_size(top + page, "2^63 + page");

	/* The largest size whose object size fits off_t passes validation
	 * but cannot be reserved: an error, and nothing left behind. */
	zinc_region *r = JUNK;
	int rc = zinc_create("size", top - 2 * page, &r);
	fprintf(stderr, "  2^63 - 2 pages: %d (%s)\n", rc, zinc_strerror(rc));
	CHECK(rc < 0);
	CHECK(r == NULL);
	CHECK_NO_OBJECTS();

	/* Good sizes. */
	uintptr_t good[] = { page, 2 * page, 17 * page, 256 * page };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_OK(zinc_create("size", good[i], &r));
		CHECK_EQ(zinc_capacity(r), good[i]);
		char p[PATH_MAX];
		struct stat st;
		tu_path("size", p, sizeof(p));
		CHECK_SYS(stat(p, &st));
		CHECK_EQ(st.st_size, (off_t)(page + good[i]));
		zinc_ptr(r)[good[i] - 1] = 1; /* the last byte is usable */
		zinc_close(r);
	}
}

int main(void)
{
	tu_init();
	TU_RUN(test_bad_names);
	TU_RUN(test_good_names);
	TU_RUN(test_null_out);
	TU_RUN(test_sizes);
	return T_PASS;
}
