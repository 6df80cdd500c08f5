// parallel_hasher: hashes files in parallel, written as a user of eddy would
// write it, with nothing but <eddy/eddy.hpp>. The three kinds of concurrency in
// one program: the loop awaits, reading a file is a blocking call (to_thread, the
// blocking pool), hashing it is CPU work (run_cpu, the cpu pool, or with
// --processes a helper process of a process_pool).
//
//   parallel_hasher [--jobs 8] [--processes] FILE...
//
// Prints one line per file, in the order given, as sha256sum does:
// "<16 hex digits>  <path>" (FNV-1a, 64 bits: a checksum, not a cryptographic
// hash). A file that cannot be read gets "parallel_hasher: PATH: why" on stderr and
// the others are still hashed (when_all_settled); the exit status is then 1.
// At most --jobs files (1..1024) are read and hashed at once (a semaphore permit
// each), so memory stays bounded by jobs × the largest file. Exit status 2 for
// bad usage.
#include <eddy/eddy.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace {

std::uint64_t fnv1a(const std::string& data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Runs in a helper process when --processes is given; registered by name.
std::uint64_t fnv1a_remote(std::string data) { return fnv1a(data); }
EDDY_REMOTE(fnv1a_remote);

// A blocking read of a whole file; runs on the blocking pool.
std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::system_error(errno, std::generic_category(), path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    out.append(buf, n);
    if (n < sizeof buf) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw std::system_error(EIO, std::generic_category(), path);
  return out;
}

eddy::task<std::uint64_t> hash_one(std::string path, eddy::semaphore* jobs, eddy::process_pool* pool) {
  auto permit = co_await jobs->scoped_acquire();
  std::string data = co_await eddy::to_thread(read_file, path);
  if (pool != nullptr) co_return co_await pool->call<fnv1a_remote>(std::move(data));
  co_return co_await eddy::run_cpu([&data] { return fnv1a(data); });
}

struct options {
  std::size_t jobs = 8;
  bool processes = false;
  std::vector<std::string> files;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "parallel_hasher: %s\nusage: parallel_hasher [--jobs 1..1024] [--processes] FILE...\n",
               why.c_str());
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--processes") {
      o.processes = true;
    } else if (a == "--jobs") {
      if (i + 1 >= argc) usage_error("missing value after --jobs");
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 1 || v > 1024)
        usage_error(std::string("--jobs must be a number in 1..1024, got '") + argv[i] + "'");
      o.jobs = static_cast<std::size_t>(v);
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("unknown option " + a);
    } else {
      o.files.push_back(a);
    }
  }
  if (o.files.empty()) usage_error("no file given");
  return o;
}

eddy::task<int> async_main(options o) {
  eddy::semaphore jobs(o.jobs);
  std::unique_ptr<eddy::process_pool> pool;
  if (o.processes) pool = std::make_unique<eddy::process_pool>();
  std::vector<eddy::task<std::uint64_t>> work;
  for (const auto& f : o.files) work.push_back(hash_one(f, &jobs, pool.get()));
  // Every file's outcome, failures included: one unreadable file stops nothing.
  auto results = co_await eddy::when_all_settled(std::move(work));
  int status = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      std::printf("%016llx  %s\n", static_cast<unsigned long long>(results[i].value()), o.files[i].c_str());
    } else {
      std::fprintf(stderr, "parallel_hasher: %s\n", results[i].message().c_str());
      status = 1;
    }
  }
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  eddy::process_pool::helper_main_if_requested(argc, argv);  // a helper never returns from here
  return eddy::run(async_main(parse(argc, argv)));
}
