// eddy::fs on every backend: each operation, its errors (missing file, permission
// denied, a directory where a file was expected, a full disk through
// RLIMIT_FSIZE), cancellation mid-read, 1,000 concurrent reads of one file, and a
// count showing that on epoll and libuv (and io_uring with the pool forced) the
// loop thread reads and writes no file bytes itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/loop_fixture.hpp"

using eddy::task;
namespace fs = eddy::fs;

// blocking_pool() lives as long as the process, and it joins a worker that retired
// (idle for 10 s) only when it reuses the worker's slot. Under TSan this suite runs
// long enough for workers to retire, and TSan then reports each retired, unjoined
// thread at exit as a leak. It is not one: the pool's slot still owns the thread.
extern "C" const char* __tsan_default_options() { return "report_thread_leaks=0"; }

namespace {

// A fresh directory under TMPDIR, removed with everything in it at the end.
struct temp_dir {
  std::string path;
  temp_dir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/eddy_fs_XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() { [[maybe_unused]] int r = std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::vector<std::byte> pattern(std::size_t n, unsigned seed = 7) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::byte>(x >> 16);
  }
  return v;
}

void write_plain(const std::string& path, const std::vector<std::byte>& data) {
  std::ofstream o(path, std::ios::binary);
  o.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::vector<std::byte> read_plain(const std::string& path) {
  std::ifstream i(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(i)), std::istreambuf_iterator<char>());
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

int errno_of(const std::system_error& e) { return e.code().value(); }

// Bytes this thread moved through read/write system calls (/proc/thread-self/io).
std::pair<long long, long long> thread_io() {
  std::ifstream f("/proc/thread-self/io");
  std::string k;
  long long v = 0, rchar = 0, wchar = 0;
  while (f >> k >> v) {
    if (k == "rchar:") rchar = v;
    if (k == "wchar:") wchar = v;
  }
  return {rchar, wchar};
}

class fs_test : public eddy_test::loop_test {
 protected:
  void TearDown() override {
    fs::set_io_path(fs::io_path::automatic);
    loop_test::TearDown();
  }
  temp_dir dir_;
};

}  // namespace

TEST_P(fs_test, a_file_is_written_read_back_synced_and_closed) {
  const std::string p = dir_ / "a.bin";
  const auto data = pattern(1024 * 1024 + 17);
  auto f = [](std::string p, std::vector<std::byte> data) -> task<bool> {
    auto file = co_await fs::file::open(
        p, fs::open_flags::read | fs::open_flags::write | fs::open_flags::create, {.mode = 0600});
    EXPECT_EQ(co_await file.write_at(data, 0), data.size());
    co_await file.sync();
    co_await file.datasync();
    EXPECT_EQ(co_await file.size(), data.size());
    std::vector<std::byte> back(data.size() + 100);
    EXPECT_EQ(co_await file.read_at(back, 0), data.size());  // short only at EOF
    back.resize(data.size());
    EXPECT_TRUE(back == data);
    // Positioned read/write advance the file's position.
    std::vector<std::byte> part(1000);
    file.seek(10);
    EXPECT_EQ(co_await file.read(part), 1000u);
    EXPECT_EQ(file.position(), 1010u);
    EXPECT_TRUE(std::equal(part.begin(), part.end(), data.begin() + 10));
    file.seek(data.size());
    EXPECT_EQ(co_await file.write(std::span(data).first(5)), 5u);
    EXPECT_EQ(co_await file.size(), data.size() + 5);
    const fs::file_stat st = co_await file.stat();
    EXPECT_EQ(st.kind, fs::file_kind::regular);
    EXPECT_EQ(st.mode & 0777, 0600u);
    co_await file.close();
    EXPECT_FALSE(file);
    co_return true;
  };
  EXPECT_TRUE(run(f(p, data)));
  auto disk = read_plain(p);
  ASSERT_EQ(disk.size(), data.size() + 5);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), disk.begin()));
}

TEST_P(fs_test, path_operations_stat_rename_remove_and_make_directories) {
  auto f = [](std::string d) -> task<bool> {
    EXPECT_TRUE(co_await fs::create_directory(d + "/sub"));
    EXPECT_FALSE(co_await fs::create_directory(d + "/sub"));  // already a directory
    co_await fs::write_file(d + "/sub/x.txt", std::string_view("hello"));
    EXPECT_TRUE(co_await fs::exists(d + "/sub/x.txt"));
    const fs::file_stat st = co_await fs::stat(d + "/sub/x.txt");
    EXPECT_EQ(st.size, 5u);
    EXPECT_EQ(st.kind, fs::file_kind::regular);
    EXPECT_GT(st.mtime_ns, 0);
    EXPECT_EQ((co_await fs::stat(d + "/sub")).kind, fs::file_kind::directory);
    co_await fs::rename(d + "/sub/x.txt", d + "/sub/y.txt");
    EXPECT_FALSE(co_await fs::exists(d + "/sub/x.txt"));
    EXPECT_EQ(co_await fs::read_file(d + "/sub/y.txt"), "hello");
    EXPECT_EQ(co_await fs::copy(d + "/sub/y.txt", d + "/z.txt"), 5u);
    EXPECT_EQ(co_await fs::read_file(d + "/z.txt"), "hello");
    ::symlink("z.txt", (d + "/link").c_str());
    EXPECT_EQ((co_await fs::stat(d + "/link", false)).kind, fs::file_kind::symlink);
    EXPECT_EQ((co_await fs::stat(d + "/link")).kind, fs::file_kind::regular);
    auto entries = co_await fs::read_directory(d);
    std::vector<std::string> names;
    for (auto& e : entries) names.push_back(e.name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"link", "sub", "z.txt"}));
    co_await fs::remove(d + "/sub/y.txt");
    co_await fs::remove(d + "/sub");  // an empty directory
    co_await fs::remove(d + "/link");
    EXPECT_FALSE(co_await fs::exists(d + "/sub"));
    EXPECT_TRUE(co_await fs::exists(d + "/z.txt"));  // the link went, not its target
    co_return true;
  };
  EXPECT_TRUE(run(f(dir_.path)));
}

TEST_P(fs_test, copy_moves_large_files_byte_exact) {
  const auto data = pattern(2 * 1024 * 1024 + 3, 3);
  write_plain(dir_ / "big", data);
  auto f = [](std::string d) -> task<std::uint64_t> {
    co_return co_await fs::copy(d + "/big", d + "/big2");
  };
  EXPECT_EQ(run(f(dir_.path)), data.size());
  EXPECT_TRUE(read_plain(dir_ / "big2") == data);
}

TEST_P(fs_test, errors_name_the_operation_and_the_path) {
  auto f = [](std::string d) -> task<bool> {
    try {
      (void)co_await fs::file::open(d + "/missing");
      ADD_FAILURE() << "opened a missing file";
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), ENOENT);
      EXPECT_NE(std::string(e.what()).find("eddy::fs::open " + d + "/missing"), std::string::npos)
          << e.what();
    }
    // A directory where a file was expected.
    try {
      (void)co_await fs::file::open(d, fs::open_flags::write);
      ADD_FAILURE() << "opened a directory for writing";
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), EISDIR);
    }
    auto dirf = co_await fs::file::open(d);  // reading a directory's fd: EISDIR
    std::byte b[16];
    try {
      (void)co_await dirf.read_at(b, 0);
      ADD_FAILURE() << "read a directory";
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), EISDIR);
      EXPECT_NE(std::string(e.what()).find("eddy::fs::read"), std::string::npos);
    }
    co_await dirf.close();
    try {
      (void)co_await fs::read_file(d + "/nope/x");
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), ENOENT);
    }
    try {
      co_await fs::rename(d + "/a", d + "/b");
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), ENOENT);
      EXPECT_NE(std::string(e.what()).find(d + "/a -> " + d + "/b"), std::string::npos);
    }
    try {
      co_await fs::remove(d + "/gone");
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), ENOENT);
    }
    co_await fs::write_file(d + "/f", std::string_view("x"));
    try {
      (void)co_await fs::create_directory(d + "/f");  // a file is there
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), EEXIST);
    }
    try {
      (void)co_await fs::read_file(d + "/f", 0);
      ADD_FAILURE() << "read past max_size";
    } catch (const std::length_error&) {
    }
    try {
      (void)co_await fs::read_directory(d + "/f");
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(errno_of(e), ENOTDIR);
    }
    co_return true;
  };
  EXPECT_TRUE(run(f(dir_.path)));
}

TEST_P(fs_test, bad_arguments_are_refused_before_any_system_call) {
  auto f = [](std::string d) -> task<int> {
    int refused = 0;
    auto expect_invalid = [&](auto t) -> task<void> {
      try {
        co_await std::move(t);
      } catch (const std::invalid_argument&) {
        ++refused;
      }
    };
    co_await expect_invalid(fs::file::open(""));
    co_await expect_invalid(fs::file::open(std::string("a\0b", 3)));
    co_await expect_invalid(fs::file::open(std::string(5000, 'a')));
    co_await expect_invalid(fs::file::open(d + "/x", fs::open_flags::create));  // no read/write
    co_await expect_invalid(
        fs::file::open(d + "/x", fs::open_flags::write | fs::open_flags::create, {.mode = 010000}));
    co_await expect_invalid(fs::create_directory(d + "/y", 077777));
    co_await expect_invalid(fs::stat(""));
    co_return refused;
  };
  EXPECT_EQ(run(f(dir_.path)), 7);
}

TEST_P(fs_test, a_root_keeps_dot_dot_absolute_paths_and_symlinks_inside) {
  ASSERT_EQ(::mkdir((dir_ / "root").c_str(), 0755), 0);
  write_plain(dir_ / "secret", pattern(10));
  write_plain(dir_ / "root/ok", pattern(10));
  ASSERT_EQ(::symlink("../secret", (dir_ / "root/out").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "secret").c_str(), (dir_ / "root/abs").c_str()), 0);
  const int root = ::open((dir_ / "root").c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  auto f = [](int root) -> task<int> {
    auto ok = co_await fs::file::open("ok", fs::open_flags::read, {.root_fd = root});
    co_await ok.close();
    int refused = 0;
    for (const char* p : {"../secret", "out", "abs", "/etc/passwd", "./../root/../secret"}) {
      try {
        auto f = co_await fs::file::open(p, fs::open_flags::read, {.root_fd = root});
        ADD_FAILURE() << "opened " << p << " outside the root";
        co_await f.close();
      } catch (const std::system_error& e) {
        EXPECT_EQ(errno_of(e), EXDEV) << p;
        ++refused;
      }
    }
    co_return refused;
  };
  EXPECT_EQ(run(f(root)), 5);
  ::close(root);
}

// RLIMIT_FSIZE makes writes past the limit fail with EFBIG (SIGXFSZ ignored): a
// full disk as far as the writer can tell. The error must surface; a write must
// never come back short without one.
TEST_P(fs_test, a_full_disk_fails_the_write_instead_of_shortening_it) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct sigaction ign {}, prev {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGXFSZ, &ign, &prev);
  rlimit small = old;
  small.rlim_cur = 1024 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto f = [](std::string p) -> task<int> {
    auto file = co_await fs::file::open(p, fs::open_flags::write | fs::open_flags::create);
    const auto data = pattern(3 * 1024 * 1024);
    int err = 0;
    try {
      (void)co_await file.write_at(data, 0);
    } catch (const std::system_error& e) {
      err = errno_of(e);
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    }
    co_await file.close();
    co_return err;
  };
  const int err = run(f(dir_ / "full"));
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::sigaction(SIGXFSZ, &prev, nullptr);
  EXPECT_EQ(err, EFBIG);
}

TEST_P(fs_test, permission_denied_is_reported) {
  if (::geteuid() == 0) {
    // Root passes permission checks: run this test again as nobody.
    if (std::getenv("EDDY_FS_TEST_CHILD") != nullptr) GTEST_SKIP() << "setpriv did not drop root";
    if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "root, and no setpriv to drop it";
    const std::string file = dir_ / "private";
    write_plain(file, pattern(10));
    ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
    ASSERT_EQ(::chmod(dir_.path.c_str(), 0755), 0);
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = '\0';
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string filter = std::string(info->test_suite_name()) + "." + info->name();
    const std::string log = dir_ / "child.log";
    const std::string cmd = "EDDY_FS_TEST_CHILD='" + file +
                            "' /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups '" +
                            exe + "' --gtest_filter='" + filter + "' > '" + log + "' 2>&1";
    const int st = std::system(cmd.c_str());
    std::ifstream in(log);
    const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd << "\n" << out;
    EXPECT_NE(out.find("[  PASSED  ] 1 test."), std::string::npos) << out;
    return;
  }
  const char* file = std::getenv("EDDY_FS_TEST_CHILD");
  if (file == nullptr) {
    write_plain(dir_ / "private", pattern(10));
    ASSERT_EQ(::chmod((dir_ / "private").c_str(), 0), 0);
  }
  const std::string p = file != nullptr ? file : dir_ / "private";
  auto f = [](std::string p) -> task<int> {
    try {
      (void)co_await fs::read_file(p);
    } catch (const std::system_error& e) {
      co_return errno_of(e);
    }
    co_return 0;
  };
  EXPECT_EQ(run(f(p)), EACCES);
}

TEST_P(fs_test, a_thousand_concurrent_reads_of_one_file_each_get_their_bytes) {
  const auto data = pattern(1000 * 4096, 11);
  write_plain(dir_ / "shared", data);
  auto one = [](const fs::file* f, std::size_t i, const std::vector<std::byte>* data) -> task<bool> {
    std::vector<std::byte> buf(4096);
    const std::size_t n = co_await f->read_at(buf, i * 4096);
    co_return n == 4096 && std::equal(buf.begin(), buf.end(), data->begin() + i * 4096);
  };
  auto f = [](std::string p, const std::vector<std::byte>* data, decltype(one) one) -> task<int> {
    auto file = co_await fs::file::open(p);
    std::vector<eddy::join_handle<bool>> hs;
    for (std::size_t i = 0; i < 1000; ++i) hs.push_back(eddy::spawn(one(&file, i, data)));
    int good = 0;
    for (auto& h : hs) good += co_await h ? 1 : 0;
    co_await file.close();
    co_return good;
  };
  EXPECT_EQ(run(f(dir_ / "shared", &data, one)), 1000);
}

// Reads cancelled at random points: each either delivers its bytes, whole, or
// ends with cancelled_error; no buffer is written after its read ended (ASan sees
// the buffers freed right after), and the loop closes with nothing in flight.
TEST_P(fs_test, reads_cancelled_mid_flight_end_once_with_data_or_cancelled) {
  const auto data = pattern(256 * 1024, 5);
  write_plain(dir_ / "c", data);
  auto reader = [](const fs::file* f, const std::vector<std::byte>* data, int* outcome) -> task<void> {
    auto buf = std::make_unique<std::vector<std::byte>>(data->size());
    try {
      const std::size_t n = co_await f->read_at(*buf, 0);
      *outcome = n == data->size() && *buf == *data ? 1 : 3;
    } catch (const eddy::cancelled_error&) {
      *outcome = 2;
      throw;
    }
  };
  auto f = [](std::string p, const std::vector<std::byte>* data, decltype(reader) reader)
      -> task<std::vector<int>> {
    auto file = co_await fs::file::open(p);
    std::vector<int> outcome(60, 0);
    std::mt19937 rng(42);
    for (std::size_t i = 0; i < outcome.size(); ++i) {
      auto h = eddy::spawn(reader(&file, data, &outcome[i]));
      const int yields = static_cast<int>(rng() % 4);
      for (int y = 0; y < yields; ++y) co_await eddy::yield_now();
      h.cancel();
      try {
        co_await h;
      } catch (const eddy::cancelled_error&) {
      }
    }
    co_await file.close();
    co_return outcome;
  };
  const std::vector<int> out = run(f(dir_ / "c", &data, reader));
  for (int o : out) EXPECT_TRUE(o == 1 || o == 2 || o == 0) << o;  // 0: cancelled before it ran
}

// The loop thread must not move file bytes itself where the backend has no file
// ops (epoll, libuv): /proc/thread-self/io counts what this thread read and wrote.
// On io_uring the pool is forced, so the same count checks the pool route there.
TEST_P(fs_test, the_loop_thread_does_no_file_io_on_the_pool_route) {
  if (GetParam() == eddy::backend_kind::io_uring) fs::set_io_path(fs::io_path::pool);
  const std::size_t size = 4 * 1024 * 1024;
  write_plain(dir_ / "big", pattern(size, 9));
  auto f = [](std::string d, std::size_t size) -> task<std::pair<long long, long long>> {
    const auto before = thread_io();
    std::string s = co_await fs::read_file(d + "/big");
    co_await fs::write_file(d + "/big2", s);
    auto file = co_await fs::file::open(d + "/big");
    std::vector<std::byte> buf(size);
    (void)co_await file.read_at(buf, 0);
    co_await file.close();
    const auto after = thread_io();
    EXPECT_EQ(s.size(), size);
    co_return std::pair{after.first - before.first, after.second - before.second};
  };
  const auto [r, w] = run(f(dir_.path, size));
  // The loop's own eventfd and /proc reads move a few KiB; the files moved 12 MiB.
  EXPECT_LT(r, 256 * 1024) << "the loop thread read file bytes";
  EXPECT_LT(w, 256 * 1024) << "the loop thread wrote file bytes";
}

EDDY_BACKEND_TEST_SUITE(fs_test);
