// The fixture every loop-level test uses (STYLE.md, Tests; RELIABILITY.md,
// Harness habits): parameterized over the available backends (EDDY_BACKEND narrows
// it to one), and after each test the loop is closed with nothing left alive and
// the process holds the same fds as before.
#pragma once

#include <dirent.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>

namespace eddy_test {

// Every backend available here; EDDY_BACKEND=<name> narrows it to that one.
inline std::vector<eddy::backend_kind> backends() {
  eddy::backend_kind only = eddy::backend_kind::automatic;
  if (const char* env = std::getenv("EDDY_BACKEND"); env != nullptr && *env != '\0')
    only = eddy::parse_backend(env).value_or(eddy::backend_kind::automatic);
  std::vector<eddy::backend_kind> all;
  for (eddy::backend_kind k : eddy::available_backends())
    if (only == eddy::backend_kind::automatic || only == k) all.push_back(k);
  return all;
}

inline std::string backend_param_name(const ::testing::TestParamInfo<eddy::backend_kind>& info) {
  return std::string(eddy::backend_name(info.param));
}

inline int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n - 1;  // the DIR's own fd
}

class loop_test : public ::testing::TestWithParam<eddy::backend_kind> {
 protected:
  void SetUp() override {
    fds_before_ = count_fds();
    opts_.backend = GetParam();
    make_loop();
  }
  void make_loop() { loop_ = std::make_unique<eddy::loop>(opts_); }
  void TearDown() override {
    if (loop_) {
      loop_->close();
      const eddy::loop_stats s = loop_->stats();
      EXPECT_EQ(s.live_tasks, 0u) << "tasks left alive after close";
      EXPECT_EQ(s.leaked_io, 0u) << "I/O operations left in flight after close";
      EXPECT_EQ(s.armed_timers, 0u) << "timers left armed after close";
      loop_.reset();
    }
    EXPECT_EQ(count_fds(), fds_before_) << "fd leak";
  }
  template <class T>
  T run(eddy::task<T> t) {
    return loop_->run(std::move(t));
  }
  eddy::loop& lp() { return *loop_; }

  eddy::loop_options opts_;
  std::unique_ptr<eddy::loop> loop_;
  int fds_before_ = 0;
};

}  // namespace eddy_test

#define EDDY_BACKEND_TEST_SUITE(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(backends, suite, ::testing::ValuesIn(eddy_test::backends()), \
                           eddy_test::backend_param_name)
