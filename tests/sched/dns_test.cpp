// eddy::resolve / resolve_blocking: getaddrinfo on the blocking pool. Only names that
// need no network: localhost (from /etc/hosts) and numeric addresses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/dns.hpp>
#include <string>

namespace {

using namespace std::chrono_literals;

TEST(Dns, NumericAddressesResolveWithoutANetwork) {
  auto v4 = eddy::resolve_blocking("127.0.0.1", "8080", {.flags = AI_NUMERICHOST | AI_NUMERICSERV});
  ASSERT_FALSE(v4.empty());
  EXPECT_EQ(v4[0].family, AF_INET);
  EXPECT_EQ(v4[0].port(), 8080);
  EXPECT_EQ(v4[0].to_string(), "127.0.0.1:8080");
  EXPECT_EQ(v4[0].socktype, SOCK_STREAM);

  auto v6 = eddy::resolve_blocking("::1", "443", {.family = AF_INET6, .flags = AI_NUMERICHOST});
  ASSERT_FALSE(v6.empty());
  EXPECT_EQ(v6[0].family, AF_INET6);
  EXPECT_EQ(v6[0].to_string(), "[::1]:443");
}

TEST(Dns, FailuresCarryTheGetaddrinfoCode) {
  try {
    eddy::resolve_blocking("not-a-number", "80", {.flags = AI_NUMERICHOST});
    FAIL() << "expected resolve_error";
  } catch (const eddy::resolve_error& e) {
    EXPECT_EQ(e.code(), EAI_NONAME);
    EXPECT_NE(std::string(e.what()).find("not-a-number"), std::string::npos);
  }
}

TEST(Dns, BadArgumentsAreRejectedWithAClearError) {
  EXPECT_THROW(eddy::check_resolve_arguments("", "", {}), std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments(std::string(1025, 'a'), "80", {}),
               std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments("host", std::string(32, '1'), {}),
               std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments(std::string("a\0b", 3), "80", {}),
               std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments("host", "80", {.family = AF_UNIX}),
               std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments("host", "80", {.socktype = SOCK_RAW}),
               std::invalid_argument);
  EXPECT_THROW(eddy::check_resolve_arguments("host", "80", {.flags = 1 << 20}),
               std::invalid_argument);
  try {
    eddy::check_resolve_arguments("host", std::string(40, '1'), {});
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("service must be at most 31 bytes (got 40)"),
              std::string::npos);
  }
}

eddy::task<std::vector<eddy::resolved_address>> lookup(std::string host, std::string service) {
  co_return co_await eddy::resolve(std::move(host), std::move(service));
}

TEST(Dns, ResolveIsAwaitableFromALoop) {
  eddy::loop l;
  auto addrs = l.run(lookup("localhost", "9000"));
  ASSERT_FALSE(addrs.empty());
  for (const auto& a : addrs) {
    EXPECT_EQ(a.port(), 9000);
    if (a.family == AF_INET) {
      EXPECT_EQ(a.to_string(), "127.0.0.1:9000");
    } else {
      EXPECT_EQ(a.family, AF_INET6);
    }
  }
  l.close();
}

eddy::task<int> failing_lookup() {
  try {
    co_await eddy::resolve("not-a-number", "80", {.flags = AI_NUMERICHOST});
  } catch (const eddy::resolve_error& e) {
    co_return e.code();
  }
  co_return 0;
}

TEST(Dns, ResolveErrorsReachTheCoroutine) {
  eddy::loop l;
  EXPECT_EQ(l.run(failing_lookup()), EAI_NONAME);
  l.close();
}

eddy::task<bool> cancelled_lookup() {
  auto h = eddy::spawn(lookup("localhost", "80"));
  h.cancel();
  try {
    co_await h;
  } catch (const eddy::cancelled_error&) {
    co_return true;
  }
  co_return false;  // it may legitimately finish first; both outcomes leave nothing behind
}

TEST(Dns, ACancelledLookupLeavesNothingBehind) {
  eddy::loop l;
  for (int i = 0; i < 50; ++i) (void)l.run(cancelled_lookup());
  l.close();
  EXPECT_EQ(l.stats().live_tasks, 0u);
}

}  // namespace
