// The wire protocol between a process_pool and its helpers.
//
// Transport: one AF_UNIX SOCK_STREAM socketpair per helper, the helper's end at fd 3.
// Chosen by measurement on a 2-core VM (see process_pool.cpp): the cost of a round
// trip is the cross-core wakeup (~25 µs each way when the peer core is idle), not
// the copy, so a shared-memory ring would buy little; a stream also carries
// messages of any size and works with the loop's ordinary fd read/write on every
// backend. Latency is won instead by the helper spinning briefly for the next
// request before it blocks (helper_main.cpp).
//
// Framing: every message is a 24-byte header followed by `length` bytes.
//   helper -> parent  hello     [u32 version][u64 registry fingerprint][i32 pid]
//   parent -> helper  call      [u32 name length][name][u64 signature hash][args]
//   helper -> parent  result    [encoded result; empty for void]
//   helper -> parent  raised    cereal(type name, message)   (the function threw)
//   helper -> parent  rejected  cereal(message)              (never ran: bad call)
// The id of a reply is the id of its call. A helper serves calls one at a time, in
// the order they arrive: so of the calls in flight on one helper, only the oldest
// can have started; the parent relies on this to retry the others elsewhere when a
// helper dies.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eddy::detail::helper_protocol {

inline constexpr std::uint32_t magic = 0x79646465;  // "eddy" little-endian
inline constexpr std::uint32_t version = 1;

enum class kind : std::uint32_t { hello = 1, call = 2, result = 3, raised = 4, rejected = 5 };

struct header {
  std::uint32_t magic_ = magic;
  std::uint32_t kind_ = 0;
  std::uint64_t id = 0;
  std::uint64_t length = 0;
};
static_assert(sizeof(header) == 24);

/// argv[1] of a helper; what helper_main_if_requested looks for.
inline constexpr const char* helper_flag = "--eddy-process-helper";
/// Set in a helper's environment: lets a program that forgot to route helper mode
/// fail loudly (process_pool's constructor checks it) instead of spawning helpers
/// recursively.
inline constexpr const char* helper_env = "EDDY_PROCESS_HELPER";
/// The helper's end of the channel.
inline constexpr int helper_fd = 3;

/// Builds a call message (header + body) into out.
inline void append_call(std::vector<char>& out, std::uint64_t id, std::string_view name,
                        std::uint64_t signature_hash, std::span<const char> args) {
  header h;
  h.kind_ = static_cast<std::uint32_t>(kind::call);
  h.id = id;
  h.length = 4 + name.size() + 8 + args.size();
  const auto name_len = static_cast<std::uint32_t>(name.size());
  const std::size_t at = out.size();
  out.resize(at + sizeof h + 4 + name.size() + 8);
  char* p = out.data() + at;
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  std::memcpy(p, &name_len, 4);
  p += 4;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  std::memcpy(p, &signature_hash, 8);
  out.insert(out.end(), args.begin(), args.end());
}

}  // namespace eddy::detail::helper_protocol
