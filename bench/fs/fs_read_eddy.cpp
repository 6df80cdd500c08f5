// eddy's file reads, for bench/fs/compare_fs.py: N coroutines on one loop, each
// reading with eddy::fs::file::read_at in a loop, and a 1 ms timer whose lateness
// shows whether the loop stays responsive meanwhile. See fs_read_common.hpp.
//   [--op read|open|stat|fstat|mkdir] --engine io_uring|epoll|libuv|io_uring-pool
#include <eddy/eddy.hpp>

#include <algorithm>
#include <vector>

#include "fs_read_common.hpp"

namespace {

using clk = std::chrono::steady_clock;
std::string g_op = "read";

eddy::task<void> reader(const eddy::fs::file* f, fsbench::offsets off, std::size_t block,
                        const bool* stop, std::uint64_t* reads) {
  std::vector<std::byte> buf(block);
  while (!*stop) {
    (void)co_await f->read_at(buf, off.next());
    ++*reads;
  }
}

// --op other than read: one metadata operation per iteration, to choose each
// operation's route (docs/fs.md): open (open + close), stat (statx by path),
// fstat (statx of an open file), mkdir (create_directory + remove).
eddy::task<void> meta(std::string op, std::string path, unsigned id, const eddy::fs::file* f,
                      const bool* stop, std::uint64_t* ops) {
  const std::string dir = path + ".d" + std::to_string(id);
  while (!*stop) {
    if (op == "open") {
      auto g = co_await eddy::fs::file::open(path);
      co_await g.close();
    } else if (op == "stat") {
      (void)co_await eddy::fs::stat(path);
    } else if (op == "fstat") {
      (void)co_await f->stat();
    } else if (op == "mkdir") {
      (void)co_await eddy::fs::create_directory(dir);
      co_await eddy::fs::remove(dir);
    } else {
      throw std::invalid_argument("--op read|open|stat|fstat|mkdir");
    }
    ++*ops;
  }
}

eddy::task<void> ticker(const bool* stop, std::vector<double>* late) {
  while (!*stop) {
    const auto t = clk::now();
    co_await eddy::sleep_for(std::chrono::milliseconds(1));
    late->push_back(std::chrono::duration<double, std::micro>(clk::now() - t).count() - 1000.0);
  }
}

eddy::task<void> bench(fsbench::args a) {
  const std::uint64_t size = fsbench::file_size(a.file);
  auto f = co_await eddy::fs::file::open(a.file);
  bool stop = false;
  std::uint64_t reads = 0;
  std::vector<double> late;
  const double cpu0 = fsbench::cpu_seconds();
  const auto t0 = clk::now();
  std::vector<eddy::join_handle<void>> hs;
  for (unsigned i = 0; i < a.inflight; ++i)
    if (g_op != "read") hs.push_back(eddy::spawn(meta(g_op, a.file, i, &f, &stop, &reads)));
    else hs.push_back(eddy::spawn(reader(&f, fsbench::offsets(size, a.block(), a.pattern == "seq", i, a.inflight),
                                    a.block(), &stop, &reads)));
  auto tick = eddy::spawn(ticker(&stop, &late));
  co_await eddy::sleep_for(std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(a.seconds)));
  stop = true;
  for (auto& h : hs) co_await h;
  co_await tick;
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  const double cpu = fsbench::cpu_seconds() - cpu0;
  std::sort(late.begin(), late.end());
  fsbench::report(a, reads, secs, cpu, late.empty() ? -1 : late.back(),
                  late.empty() ? -1 : late[late.size() / 2]);
  co_await f.close();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    // --op OP (first, before the common options): see meta().
    if (argc >= 3 && std::string(argv[1]) == "--op") {
      g_op = argv[2];
      argv[2] = argv[0];
      argv += 2;
      argc -= 2;
    }
    fsbench::args a = fsbench::parse(argc, argv);
    if (g_op != "read") a.pattern = "random";
    eddy::loop_options o;
    std::string be = a.engine;
    if (be == "io_uring-pool") {
      be = "io_uring";
      eddy::fs::set_io_path(eddy::fs::io_path::pool);
    }
    o.backend = eddy::parse_backend(be).value();
    eddy::loop l(o);
    l.run(bench(a));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fs_read_eddy: %s\n", e.what());
    return 2;
  }
}
