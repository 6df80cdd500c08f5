// The references for eddy's file reads, with no eddy in them: libuv's uv_fs_read
// (its thread pool, UV_THREADPOOL_SIZE threads, 4 by default) and plain pread
// from N threads (the no-runtime limit). See fs_read_common.hpp for the options.
//   --engine libuv|pread
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <thread>
#include <vector>

#include "fs_read_common.hpp"

namespace {

using clk = std::chrono::steady_clock;

struct uv_reader {
  uv_fs_t req;
  uv_buf_t buf;
  fsbench::offsets* off;
  std::vector<char> mem;
};

struct uv_state {
  uv_file fd;
  clk::time_point end;
  std::uint64_t reads = 0;
  bool stop = false;
};

uv_state* g_uv = nullptr;

void on_read(uv_fs_t* req);

void issue(uv_reader* r) {
  uv_fs_read(uv_default_loop(), &r->req, g_uv->fd, &r->buf, 1,
             static_cast<int64_t>(r->off->next()), on_read);
}

void on_read(uv_fs_t* req) {
  auto* r = static_cast<uv_reader*>(req->data);
  if (req->result < 0) {
    std::fprintf(stderr, "uv_fs_read: %s\n", uv_strerror(static_cast<int>(req->result)));
    std::exit(1);
  }
  uv_fs_req_cleanup(req);
  ++g_uv->reads;
  if ((g_uv->reads & 63) == 0 && clk::now() >= g_uv->end) g_uv->stop = true;
  if (g_uv->stop) return;
  req->data = r;
  issue(r);
}

void run_libuv(const fsbench::args& a) {
  const std::uint64_t size = fsbench::file_size(a.file);
  uv_fs_t open_req;
  const int fd = uv_fs_open(uv_default_loop(), &open_req, a.file.c_str(), O_RDONLY, 0, nullptr);
  uv_fs_req_cleanup(&open_req);
  if (fd < 0) throw std::runtime_error("uv_fs_open failed");
  uv_state st{fd, clk::now() + std::chrono::duration_cast<clk::duration>(
                                   std::chrono::duration<double>(a.seconds))};
  g_uv = &st;
  std::vector<fsbench::offsets> offs;
  for (unsigned i = 0; i < a.inflight; ++i)
    offs.emplace_back(size, a.block(), a.pattern == "seq", i, a.inflight);
  std::vector<uv_reader> rs(a.inflight);
  const double cpu0 = fsbench::cpu_seconds();
  const auto t0 = clk::now();
  for (unsigned i = 0; i < a.inflight; ++i) {
    rs[i].mem.resize(a.block());
    rs[i].buf = uv_buf_init(rs[i].mem.data(), static_cast<unsigned>(a.block()));
    rs[i].off = &offs[i];
    rs[i].req.data = &rs[i];
    issue(&rs[i]);
    rs[i].req.data = &rs[i];
  }
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  fsbench::report(a, st.reads, secs, fsbench::cpu_seconds() - cpu0);
  ::close(fd);
}

void run_pread(const fsbench::args& a) {
  const std::uint64_t size = fsbench::file_size(a.file);
  const int fd = ::open(a.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open failed");
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> total{0};
  const double cpu0 = fsbench::cpu_seconds();
  const auto t0 = clk::now();
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < a.inflight; ++i) {
    ts.emplace_back([&, i] {
      fsbench::offsets off(size, a.block(), a.pattern == "seq", i, a.inflight);
      std::vector<char> buf(a.block());
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off.next())) < 0) std::abort();
        ++n;
      }
      total += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  stop = true;
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  fsbench::report(a, total.load(), secs, fsbench::cpu_seconds() - cpu0);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const fsbench::args a = fsbench::parse(argc, argv);
    if (a.engine == "libuv") run_libuv(a);
    else if (a.engine == "pread") run_pread(a);
    else throw std::invalid_argument("--engine libuv|pread");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fs_read_ref: %s\n", e.what());
    return 2;
  }
}
