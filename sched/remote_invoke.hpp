// Running a registered function by name, and turning its reply back into a value or
// an exception: the two ends every remote transport shares (process_pool's helper
// channel, cluster_pool's Redis streams). The reply body is the transport's payload;
// only its kind travels separately.
//
//   result    the encoded result (empty for void)
//   raised    cereal(type name, message): the function threw
//   rejected  cereal(message): the call never ran (unknown name, signature hash that
//             does not match, undecodable arguments, result larger than allowed)
#pragma once

#include <cstdint>
#include <eddy/sched/remote.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eddy::detail {

enum class remote_reply : std::uint8_t { result = 1, raised = 2, rejected = 3 };

/// Runs the function registered as `name` if its signature hash is `signature_hash`;
/// `out` receives the reply body. Never throws for anything the function or the
/// payload does (std::bad_alloc while encoding an error aside).
remote_reply invoke_registered(std::string_view name, std::uint64_t signature_hash,
                               std::span<const char> args, std::vector<char>& out,
                               std::uint64_t max_result);

/// Throws what a raised or rejected reply says: remote_error, remote_call_error.
[[noreturn]] void throw_remote_reply(remote_reply kind, const std::string& function,
                                     std::span<const char> body);

/// cereal(a) or cereal(a, *b), the bodies of rejected and raised replies.
std::vector<char> encode_strings(const std::string& a, const std::string* b);

}  // namespace eddy::detail
