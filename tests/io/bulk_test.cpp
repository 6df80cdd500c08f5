// Bulk data on every backend: large reads into the caller's buffer
// (tcp_stream::read_exact and read_to_end, eddy::stream::read_exact / read_some
// straight into the span, no growing internal buffer, and the cancel safety of
// stream::read_exact), send_file, and zero-copy sends (loop_options::
// send_zerocopy_min: io_uring's SEND_ZC, ignored by the other backends).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <eddy/io/stream.hpp>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

class bulk_test : public eddy_test::loop_test {};

struct pair {
  eddy::tcp_listener l;
  eddy::tcp_stream c, s;
};

task<pair> connected() {
  pair p{eddy_test::loopback_listener(), {}, {}};
  p.c = co_await eddy::tcp_stream::connect(p.l.local_address());
  p.s = co_await p.l.accept();
  co_return p;
}

task<void> send_then_close(eddy::tcp_stream* c, std::span<const std::byte> d) {
  try {
    co_await c->write_all(d);
  } catch (const std::system_error&) {
    // The reader stopped early and closed (read_to_end's limit): a reset is expected.
  }
  co_await c->close();
}

}  // namespace

TEST_P(bulk_test, tcp_read_exact_fills_a_large_buffer_and_reports_a_short_stream) {
  auto f = []() -> task<bool> {
    pair p = co_await connected();
    const auto data = payload((6u << 20) + 123, 3);
    auto w = eddy::spawn(send_then_close(&p.c, data));
    std::vector<std::byte> got(4u << 20);
    co_await p.s.read_exact(got);
    bool ok = checksum(got) == checksum(std::span(data).first(got.size()));
    std::vector<std::byte> rest(3u << 20);
    try {
      co_await p.s.read_exact(rest);
      ok = false;
    } catch (const eddy::incomplete_read_error& e) {
      ok = ok && e.partial.size() == data.size() - got.size();
    }
    co_await w;
    co_await p.s.close();
    co_await p.l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(bulk_test, tcp_read_to_end_reads_everything_and_enforces_its_limit) {
  auto f = []() -> task<bool> {
    bool ok = true;
    for (std::size_t max : {std::size_t{1} << 30, std::size_t{100'000}}) {
      pair p = co_await connected();
      const auto data = payload(3u << 20, 4);
      auto w = eddy::spawn(send_then_close(&p.c, data));
      std::vector<std::byte> out;
      try {
        const std::size_t n = co_await p.s.read_to_end(out, max);
        ok = ok && max > data.size() && n == data.size() && checksum(out) == checksum(data);
      } catch (const eddy::stream_limit_error&) {
        ok = ok && max < data.size() && out.size() == max + 1;
      }
      co_await p.s.close();
      co_await w;
      co_await p.l.close();
    }
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(bulk_test, stream_read_exact_of_16_MiB_keeps_every_byte_and_what_follows) {
  auto f = []() -> task<bool> {
    pair p = co_await connected();
    const auto data = payload((16u << 20) + 5000, 5);
    auto w = eddy::spawn(send_then_close(&p.c, data));
    eddy::stream s(std::move(p.s));
    std::vector<std::byte> big(16u << 20);
    co_await s.read_exact(big);
    bool ok = checksum(big) == checksum(std::span(data).first(big.size()));
    // The internal buffer holds at most one receive's overflow, never the 16 MiB.
    ok = ok && s.read_buffer_size() <= 256u * 1024;
    std::vector<std::byte> tail(5000);
    co_await s.read_exact(tail);
    ok = ok && checksum(tail) == checksum(std::span(data).subspan(big.size()));
    std::byte one[1];
    ok = ok && co_await s.read_some(one) == 0;
    co_await w;
    co_await s.close();
    co_await p.l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(bulk_test, a_cancelled_stream_read_exact_puts_back_what_it_had_read) {
  auto f = []() -> task<bool> {
    pair p = co_await connected();
    eddy::stream s(std::move(p.s));
    const auto first = payload(3000, 6);
    co_await p.c.write_all(first);
    auto reader = [](eddy::stream* s) -> task<void> {
      std::vector<std::byte> want(10'000);
      co_await s->read_exact(want);
    };
    auto h = eddy::spawn(reader(&s));
    co_await eddy::sleep_for(20ms);  // the reader has the 3000 bytes and waits for more
    h.cancel();
    bool ok = false;
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
      ok = true;
    }
    ok = ok && s.read_buffer_size() == 3000;
    const auto second = payload(7000, 7);
    co_await p.c.write_all(second);
    std::vector<std::byte> all(10'000);
    co_await s.read_exact(all);
    ok = ok && checksum(std::span(all).first(3000)) == checksum(first) &&
         checksum(std::span(all).subspan(3000)) == checksum(second);
    co_await p.c.close();
    co_await s.close();
    co_await p.l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(bulk_test, send_file_sends_the_asked_range_and_stops_at_the_end_of_the_file) {
  auto f = []() -> task<bool> {
    char path[] = "/tmp/eddy_send_file_XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) co_return false;
    ::unlink(path);
    eddy::unique_fd file(fd);
    const auto data = payload((3u << 20) + 77, 11);
    if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) co_return false;
    pair p = co_await connected();
    auto sender = [](eddy::tcp_stream* c, int fd, std::size_t total) -> task<std::size_t> {
      const std::size_t a = co_await c->send_file(fd, 1000, (2u << 20));
      const std::size_t b = co_await c->send_file(fd, 1000 + (2u << 20), total);  // past the end
      co_await c->close();
      co_return a + b;
    };
    auto h = eddy::spawn(sender(&p.c, fd, data.size()));
    std::vector<std::byte> got;
    co_await p.s.read_to_end(got);
    const std::size_t sent = co_await h;
    bool ok = sent == data.size() - 1000 && got.size() == sent &&
              checksum(got) == checksum(std::span(data).subspan(1000));
    ok = ok && ::lseek(fd, 0, SEEK_CUR) == static_cast<off_t>(data.size());  // position untouched
    bool threw = false;
    try {
      (void)co_await p.s.send_file(-1, 0, 1);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    co_await p.s.close();
    co_await p.l.close();
    co_return ok && threw;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(bulk_test, gathered_write_all_sends_every_buffer_in_order_few_or_many_large_or_small) {
  auto f = []() -> task<bool> {
    bool ok = true;
    for (std::size_t count : {std::size_t{3}, std::size_t{8}, std::size_t{40}}) {
      pair p = co_await connected();
      std::vector<std::vector<std::byte>> parts;
      for (std::size_t i = 0; i < count; ++i)
        parts.push_back(payload(i % 3 == 0 ? 300'000 : 100 + i, static_cast<std::uint32_t>(i)));
      std::vector<std::byte> all;
      std::vector<std::span<const std::byte>> spans;
      for (auto& part : parts) {
        all.insert(all.end(), part.begin(), part.end());
        spans.emplace_back(part);
      }
      spans.insert(spans.begin() + 1, std::span<const std::byte>{});  // empty ones are skipped
      auto sender = [](eddy::tcp_stream* c, std::span<const std::span<const std::byte>> v) -> task<void> {
        co_await c->write_all(v);
        co_await c->close();
      };
      auto h = eddy::spawn(sender(&p.c, spans));
      std::vector<std::byte> got;
      co_await p.s.read_to_end(got);
      co_await h;
      ok = ok && got.size() == all.size() && checksum(got) == checksum(all);
      co_await p.s.close();
      co_await p.l.close();
    }
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

// A zero-copy write completes only once the kernel has let go of the buffer: the
// sender scribbles over each buffer as soon as its write returns, and the reader
// must still see the original bytes. On loopback the kernel copies a zero-copy
// send's pages when it delivers them, which may be after the send's first
// completion: a write that completed then would let the scribble through.
TEST_P(bulk_test, zero_copy_sends_keep_every_byte_though_the_buffer_is_reused_at_once) {
  loop_->close();
  loop_.reset();
  opts_.send_zerocopy_min = 4096;
  make_loop();
  auto f = []() -> task<bool> {
    pair p = co_await connected();
    constexpr int rounds = 24;
    auto msg = [](int i) { return payload(i % 4 == 3 ? 1000 : 200'000 + 4096 * i, static_cast<std::uint32_t>(i)); };
    std::vector<std::byte> expect;
    for (int i = 0; i < rounds; ++i) {
      const auto m = msg(i);
      expect.insert(expect.end(), m.begin(), m.end());
    }
    auto sender = [](eddy::tcp_stream* c, decltype(msg) make) -> task<void> {
      std::vector<std::byte> a, b;
      for (int i = 0; i < rounds; ++i) {
        std::vector<std::byte> m = make(i);
        if (i % 2 == 0) {
          co_await c->write_all(m);  // one send (SEND_ZC when big enough)
        } else {                     // a gathered write: sendmsg (SENDMSG_ZC)
          const std::size_t half = m.size() / 2;
          a.assign(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(half));
          b.assign(m.begin() + static_cast<std::ptrdiff_t>(half), m.end());
          const std::span<const std::byte> parts[] = {a, b};
          co_await c->write_all(std::span<const std::span<const std::byte>>(parts));
          std::fill(a.begin(), a.end(), std::byte{0xEE});
          std::fill(b.begin(), b.end(), std::byte{0xEE});
        }
        std::fill(m.begin(), m.end(), std::byte{0xEE});
      }
      co_await c->close();
    };
    auto h = eddy::spawn(sender(&p.c, msg));
    std::vector<std::byte> got;
    co_await p.s.read_to_end(got);
    co_await h;
    co_await p.s.close();
    co_await p.l.close();
    co_return got.size() == expect.size() && checksum(got) == checksum(expect);
  };
  EXPECT_TRUE(run(f()));
}

EDDY_BACKEND_TEST_SUITE(bulk_test);
