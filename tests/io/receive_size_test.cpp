// Receives sized by the traffic (loop_options::recv_limit), on every backend and
// on io_uring's older whole-buffer ring too (uring_incremental = false, the path
// kernels before 6.12 take): a stream gets large receives up to the limit, small
// messages stay small, every byte arrives, and the sizes are checked.
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

struct shape {
  bool incremental;  // io_uring: IOU_PBUF_RING_INC where the kernel has it
};

class receive_size_test : public eddy_test::loop_test {
 protected:
  void remake(bool incremental, std::size_t limit = 256 * 1024, unsigned buffers = 0) {
    loop_->close();
    loop_.reset();
    opts_.uring_incremental = incremental;
    opts_.recv_limit = limit;
    opts_.uring_buffers = buffers;
    make_loop();
  }
};

struct sizes_seen {
  std::size_t total = 0;
  std::size_t largest = 0;
  std::size_t count = 0;
  std::uint64_t sum = checksum({});
};

// One client streams `data` to one server connection that receives and keeps
// the sizes it got.
task<sizes_seen> stream_once(std::vector<std::byte> data) {
  auto l = eddy_test::loopback_listener();
  auto c = co_await eddy::tcp_stream::connect(l.local_address());
  auto s = co_await l.accept();
  auto writer = [](eddy::tcp_stream* c, std::span<const std::byte> d) -> task<void> {
    co_await c->write_all(d);
    c->shutdown_write();
  };
  auto w = eddy::spawn(writer(&c, data));
  sizes_seen seen;
  for (;;) {
    eddy::recv_buffer b = co_await s.receive();
    if (b.empty()) break;
    seen.total += b.size();
    seen.largest = std::max(seen.largest, b.size());
    ++seen.count;
    seen.sum = checksum(b.data(), seen.sum);
  }
  co_await w;
  co_await c.close();
  co_await s.close();
  co_await l.close();
  co_return seen;
}

}  // namespace

TEST_P(receive_size_test, a_stream_is_received_in_chunks_larger_than_16_KiB_up_to_the_limit) {
  const auto data = payload(8u << 20, 7);
  const sizes_seen seen = run(stream_once(data));
  EXPECT_EQ(seen.total, data.size());
  EXPECT_EQ(seen.sum, checksum(data));
  EXPECT_LE(seen.largest, 256u * 1024);
  EXPECT_GT(seen.largest, 16u * 1024) << "receive() never handed over more than one 16 KiB block";
}

TEST_P(receive_size_test, a_smaller_limit_caps_every_receive) {
  remake(true, 32 * 1024);
  const auto data = payload(4u << 20, 8);
  const sizes_seen seen = run(stream_once(data));
  EXPECT_EQ(seen.total, data.size());
  EXPECT_EQ(seen.sum, checksum(data));
  EXPECT_LE(seen.largest, 32u * 1024);
}

TEST_P(receive_size_test, the_older_whole_buffer_ring_keeps_every_byte_even_when_it_runs_dry) {
  // 4 whole buffers: the ring runs dry at once, so the -ENOBUFS fallback runs.
  remake(false, 256 * 1024, 4);
  const auto data = payload(4u << 20, 9);
  const sizes_seen seen = run(stream_once(data));
  EXPECT_EQ(seen.total, data.size());
  EXPECT_EQ(seen.sum, checksum(data));
}

TEST_P(receive_size_test, an_incremental_ring_of_few_buffers_keeps_every_byte_when_pieces_are_held) {
  // 2 buffers of 64 KiB: many connections hold pieces of the same buffers, and a
  // buffer goes back only when every piece has.
  remake(true, 64 * 1024, 2);
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    std::vector<eddy::tcp_stream> clients, servers;
    for (int i = 0; i < 20; ++i) {
      clients.push_back(co_await eddy::tcp_stream::connect(l.local_address()));
      servers.push_back(co_await l.accept());
    }
    bool ok = true;
    for (int round = 0; round < 20; ++round) {
      std::vector<eddy::recv_buffer> held;
      for (std::size_t i = 0; i < clients.size(); ++i) {
        const auto msg = payload(3000 + 7 * i, static_cast<std::uint32_t>(round * 100 + i));
        co_await clients[i].write_all(msg);
        std::size_t got = 0;
        std::uint64_t h = checksum({});
        while (got < msg.size()) {
          eddy::recv_buffer b = co_await servers[i].receive();
          if (b.empty()) break;
          got += b.size();
          h = checksum(b.data(), h);
          held.push_back(std::move(b));
        }
        ok = ok && got == msg.size() && h == checksum(msg);
      }
    }
    for (auto& c : clients) co_await c.close();
    for (auto& s : servers) co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(receive_size_test, small_messages_are_handed_over_as_they_come) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    bool ok = true;
    for (int i = 0; i < 50; ++i) {
      const auto msg = payload(100, static_cast<std::uint32_t>(i));
      co_await c.write_all(msg);
      eddy::recv_buffer b = co_await s.receive();
      ok = ok && b.size() == 100 && checksum(b.data()) == checksum(msg);
    }
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

namespace {

// Linux 6.12 or later: io_uring's ring can be consumed incrementally.
bool kernel_has_incremental_rings() {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 12);
}

}  // namespace

// Ten messages that arrive one by one while the reader is busy elsewhere: on
// io_uring's incremental ring they sit side by side in one buffer and the next
// receive() hands them over as one chunk (one wake-up, one send in an echo), not
// one per arrival. Every backend delivers every byte in order.
TEST_P(receive_size_test, messages_that_arrived_while_nobody_read_come_as_one_chunk) {
  const bool merged = GetParam() == eddy::backend_kind::io_uring && kernel_has_incremental_rings() &&
                      lp().io_caps().receive_read_ahead;
  auto f = [merged]() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    std::vector<std::byte> sent = payload(100, 99);
    co_await c.write_all(sent);
    eddy::recv_buffer first = co_await s.receive();  // arms the read-ahead
    bool ok = first.size() == 100;
    for (int i = 0; i < 10; ++i) {
      const auto msg = payload(100, static_cast<std::uint32_t>(i));
      co_await c.write_all(msg);
      sent.insert(sent.end(), msg.begin(), msg.end());
      co_await eddy::sleep_for(std::chrono::milliseconds(2));  // the loop waits: one arrival each
    }
    std::vector<std::byte> got(first.data().begin(), first.data().end());
    eddy::recv_buffer next = co_await s.receive();
    const std::size_t together = next.size();
    got.insert(got.end(), next.data().begin(), next.data().end());
    c.shutdown_write();
    for (;;) {
      eddy::recv_buffer b = co_await s.receive();
      if (b.empty()) break;
      got.insert(got.end(), b.data().begin(), b.data().end());
    }
    ok = ok && got == sent && (merged ? together == 1000 : together >= 100);
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST(receive_size_options, limits_outside_their_range_are_refused_with_the_field_named) {
  eddy::loop_options o;
  o.recv_limit = 1000;
  try {
    eddy::loop l(o);
    ADD_FAILURE() << "recv_limit 1000 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("recv_limit"), std::string::npos);
  }
  o = {};
  o.send_zerocopy_min = 100;  // 0, or 4096..1 GiB
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
  o = {};
  o.uring_buffers = 3;
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
  o = {};
  o.uring_buffer_size = 5000;
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
  o = {};
  o.uring_buffers = 32768;
  o.uring_buffer_size = 1u << 20;  // 32 GiB of ring
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
}

EDDY_BACKEND_TEST_SUITE(receive_size_test);
