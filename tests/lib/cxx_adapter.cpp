// SPDX-License-Identifier: MIT
//
// zinc's C++ adapter (zinc.hpp) built against our zinc.h: a header-only RAII
// class over ZincHandle and the nine functions, written the way that adapter
// is (ZincHandle h{}; zinc_create(name, cap, &h); nullptr checks; moves;
// std::system_error from the negative errno), then used across two handles.
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "testutil.h"

namespace adapter {

class SharedRegion {
public:
	static SharedRegion create(std::string_view name, std::size_t capacity)
	{
		ZincHandle h{};
		if (int e = zinc_create(std::string(name).c_str(), capacity, &h); e != 0)
			throw std::system_error(-e, std::generic_category(), "zinc_create");
		return SharedRegion{h};
	}

	static SharedRegion open(std::string_view name)
	{
		ZincHandle h{};
		if (int e = zinc_open(std::string(name).c_str(), &h); e != 0)
			throw std::system_error(-e, std::generic_category(), "zinc_open");
		return SharedRegion{h};
	}

	SharedRegion(SharedRegion &&o) noexcept : h_{std::exchange(o.h_, nullptr)} {}
	SharedRegion &operator=(SharedRegion &&o) noexcept
	{
		if (this != &o) {
			close();
			h_ = std::exchange(o.h_, nullptr);
		}
		return *this;
	}
	SharedRegion(const SharedRegion &) = delete;
	SharedRegion &operator=(const SharedRegion &) = delete;
	~SharedRegion() { close(); }

	std::span<std::byte> bytes()
	{
		return {reinterpret_cast<std::byte *>(zinc_ptr(h_)), zinc_capacity(h_)};
	}
	std::size_t capacity() const { return zinc_capacity(h_); }
	void notify() { zinc_notify(h_); }

	bool wait(uint32_t timeout_ms)
	{
		int code = zinc_wait(h_, timeout_ms);
		if (code == -ETIMEDOUT)
			return false;
		if (code != 0)
			throw std::system_error(-code, std::generic_category(), "zinc_wait");
		return true;
	}

	bool try_wait()
	{
		int code = zinc_try_wait(h_);
		if (code == -EAGAIN)
			return false;
		if (code != 0)
			throw std::system_error(-code, std::generic_category(), "zinc_try_wait");
		return true;
	}

	void close()
	{
		if (h_ != nullptr) {
			zinc_close(h_);
			h_ = nullptr;
		}
	}

	ZincHandle handle() const { return h_; }

private:
	explicit SharedRegion(ZincHandle h) : h_{h} {}
	ZincHandle h_{};
};

} // namespace adapter

static int open_errno(const char *name)
{
	try {
		adapter::SharedRegion::open(name);
	} catch (const std::system_error &e) {
		return e.code().value();
	}
	return 0;
}

int main()
{
	tu_init();
	// zinc's VERSION is 2 and its ABI revision 1, as zinc-core reports.
	CHECK_EQ(zinc_version(), (ZINC_FORMAT_VERSION << 16) | 1);
	CHECK_EQ(open_errno("cxx"), ENOENT);
	{
		auto owner = adapter::SharedRegion::create("cxx", 2 * tu_page());
		CHECK_EQ(owner.capacity(), 2 * tu_page());
		auto reader = adapter::SharedRegion::open("cxx");
		std::memcpy(owner.bytes().data(), "hello", 5);
		CHECK(std::memcmp(reader.bytes().data(), "hello", 5) == 0);
		CHECK(reader.bytes().size() == 2 * tu_page());

		// A waiter on the reader's handle wakes from the owner's notify.
		struct tu_waiter w = {};
		w.r = reader.handle();
		w.timeout = 10000;
		tu_waiter_start(&w);
		CHECK_THREAD_ASLEEP(w.tid);
		owner.notify();
		CHECK_EQ(pthread_join(w.thread, NULL), 0);
		CHECK_OK(w.rc);
		CHECK(!reader.try_wait()); // consumed by that wait
		CHECK(!reader.wait(0));    // timeout maps to false
		owner.notify();
		CHECK(reader.try_wait());

		// Moves hand the handle over; the moved-from object closes nothing.
		adapter::SharedRegion moved = std::move(reader);
		CHECK(reader.handle() == nullptr);
		CHECK(moved.handle() != nullptr);
		reader.close();
		CHECK(tu_exists("cxx"));
		CHECK(std::memcmp(moved.bytes().data(), "hello", 5) == 0);
	} // destructors close both handles: the name goes with the last
	CHECK(!tu_exists("cxx"));
	CHECK_EQ(open_errno("cxx"), ENOENT);
	CHECK_NO_OBJECTS();
	printf("cxx_adapter: ok\n");
	return T_PASS;
}
