// What the file-read benchmarks share (fs_read_eddy, fs_read_ref): the command
// line, the offsets, and the one-line JSON result bench/fs/compare_fs.py reads.
//
//   --file F --inflight N --seconds S --pattern random|seq
//   random: 4 KiB reads at random 4 KiB-aligned offsets (page cache);
//   seq:    256 KiB reads front to back, wrapping around.
#pragma once

#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

namespace fsbench {

struct args {
  std::string file;
  std::string engine;
  std::string pattern = "random";
  unsigned inflight = 16;
  double seconds = 2.0;
  std::size_t block() const { return pattern == "seq" ? 256 * 1024 : 4096; }
};

inline args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--file") a.file = v;
    else if (k == "--engine") a.engine = v;
    else if (k == "--pattern") a.pattern = v;
    else if (k == "--inflight") a.inflight = static_cast<unsigned>(std::stoul(v));
    else if (k == "--seconds") a.seconds = std::stod(v);
    else throw std::invalid_argument("unknown option " + k);
  }
  if (a.file.empty()) throw std::invalid_argument("--file is required");
  if (a.inflight < 1 || a.inflight > 4096) throw std::invalid_argument("--inflight 1..4096");
  if (a.pattern != "random" && a.pattern != "seq") throw std::invalid_argument("--pattern random|seq");
  return a;
}

inline std::uint64_t file_size(const std::string& f) {
  struct stat st {};
  if (::stat(f.c_str(), &st) != 0) throw std::runtime_error("stat " + f);
  return static_cast<std::uint64_t>(st.st_size);
}

// Offsets for one reader: random blocks, or a sequential walk that starts at the
// reader's own slice so N readers cover the file together.
struct offsets {
  std::uint64_t blocks;
  std::size_t block;
  bool seq;
  std::uint64_t next_block;
  std::mt19937_64 rng;
  offsets(std::uint64_t size, std::size_t blk, bool sequential, unsigned id, unsigned n)
      : blocks(size / blk), block(blk), seq(sequential), next_block(blocks * id / n), rng(id * 7919 + 1) {}
  std::uint64_t next() {
    if (!seq) return (rng() % blocks) * block;
    const std::uint64_t b = next_block;
    next_block = (next_block + 1) % blocks;
    return b * block;
  }
};

inline double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

inline void report(const args& a, std::uint64_t reads, double secs, double cpu,
                   double timer_late_max_us = -1, double timer_late_p50_us = -1) {
  const double rps = static_cast<double>(reads) / secs;
  std::printf(
      "{\"engine\":\"%s\",\"pattern\":\"%s\",\"inflight\":%u,\"reads_per_s\":%.0f,"
      "\"mib_per_s\":%.1f,\"cpu_us_per_read\":%.3f,\"timer_late_p50_us\":%.0f,"
      "\"timer_late_max_us\":%.0f}\n",
      a.engine.c_str(), a.pattern.c_str(), a.inflight, rps,
      rps * static_cast<double>(a.block()) / (1024.0 * 1024.0),
      reads ? cpu * 1e6 / static_cast<double>(reads) : 0.0, timer_late_p50_us, timer_late_max_us);
}

}  // namespace fsbench
