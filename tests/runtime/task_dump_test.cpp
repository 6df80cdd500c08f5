// Task dumps (loop::tasks, loop::dump_tasks): where each task was spawned, its
// state and what it awaits.
#include <array>
#include <string>

#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;

class task_dump : public eddy_test::loop_test {};

eddy::task<std::size_t> read_one(eddy::unix_stream* s) {
  std::array<std::byte, 8> buf{};
  co_return co_await s->read_some(buf);
}

eddy::task<void> sleep_long() { co_await eddy::sleep_for(10s); }

const eddy::task_info* find_at(const std::vector<eddy::task_info>& ts, unsigned line) {
  for (const auto& t : ts)
    if (t.spawned_at.line() == line) return &t;
  return nullptr;
}

TEST_P(task_dump, lists_a_socket_read_with_its_fd_and_a_timer_with_its_deadline) {
  run([]() -> eddy::task<void> {
    auto [a, b] = eddy::unix_stream::pair();
    const unsigned read_line = __LINE__ + 1;
    auto reader = eddy::spawn(read_one(&a));
    const unsigned sleep_line = __LINE__ + 1;
    auto sleeper = eddy::spawn(sleep_long());
    for (int i = 0; i < 3; ++i) co_await eddy::yield_now();

    const std::vector<eddy::task_info> ts = eddy::loop::current().tasks();
    EXPECT_EQ(ts.size(), 3u);
    const eddy::task_info* r = find_at(ts, read_line);
    const eddy::task_info* s = find_at(ts, sleep_line);
    EXPECT_TRUE(r != nullptr && s != nullptr);
    if (r != nullptr && s != nullptr) {
      EXPECT_STREQ(r->state, "waiting");
      EXPECT_EQ(r->fd, a.fd());
      EXPECT_NE(r->awaiting.find("on fd " + std::to_string(a.fd())), std::string::npos) << r->awaiting;
      EXPECT_NE(std::string(r->spawned_at.file_name()).find("task_dump_test.cpp"), std::string::npos);
      EXPECT_STREQ(s->state, "waiting");
      EXPECT_NE(s->awaiting.find("timer, due in "), std::string::npos) << s->awaiting;
      EXPECT_EQ(s->fd, -1);
      EXPECT_GE(s->polls, 1u);
    }
    const std::string text = eddy::loop::current().dump_tasks();
    EXPECT_NE(text.find("task_dump_test.cpp:" + std::to_string(read_line)), std::string::npos) << text;
    EXPECT_NE(text.find("timer, due in"), std::string::npos) << text;
    EXPECT_NE(text.find("running"), std::string::npos) << text;  // this task

    sleeper.cancel();
    try {
      co_await sleeper;
    } catch (const eddy::cancelled_error&) {
    }
    co_await b.write_all(std::as_bytes(std::span("x", 1)));
    EXPECT_EQ(co_await reader, 1u);
    co_await a.close();
    co_await b.close();
  }());
}

TEST_P(task_dump, a_scheduled_task_and_a_join_are_told_apart) {
  run([]() -> eddy::task<void> {
    auto child = eddy::spawn(sleep_long());
    auto joiner = eddy::spawn([](eddy::join_handle<void> h) -> eddy::task<void> {
      try {
        co_await h;
      } catch (const eddy::cancelled_error&) {
      }
    }(std::move(child)));
    // Not started yet: both children are queued.
    std::vector<eddy::task_info> ts = eddy::loop::current().tasks();
    int scheduled = 0;
    for (const auto& t : ts) scheduled += t.state == std::string_view("scheduled");
    EXPECT_EQ(scheduled, 2);
    co_await eddy::yield_now();
    co_await eddy::yield_now();
    ts = eddy::loop::current().tasks();
    bool join_seen = false;
    for (const auto& t : ts) join_seen |= t.awaiting.find("join") != std::string::npos;
    EXPECT_TRUE(join_seen);
    joiner.cancel();
    co_await joiner;
  }());
}

EDDY_BACKEND_TEST_SUITE(task_dump);

}  // namespace
