// See remote_invoke.hpp.
#include "remote_invoke.hpp"

#include <cxxabi.h>

#include <exception>
#include <typeinfo>

namespace eddy::detail {
namespace {

std::string current_exception_type() {
  std::type_info* t = abi::__cxa_current_exception_type();
  return t ? demangle(t->name()) : std::string("unknown exception");
}

// An exception message travels whole up to this size, so a huge what() cannot make
// the reply exceed what the caller accepts.
constexpr std::size_t max_what = 64 * 1024;

std::string clip(std::string s) {
  if (s.size() > max_what) {
    s.resize(max_what);
    s += "... (truncated)";
  }
  return s;
}

}  // namespace

std::vector<char> encode_strings(const std::string& a, const std::string* b) {
  std::vector<char> out;
  vector_outbuf buf(out);
  std::ostream os(&buf);
  cereal::BinaryOutputArchive ar(os);
  ar(a);
  if (b) ar(*b);
  return out;
}

remote_reply invoke_registered(std::string_view name, std::uint64_t signature_hash,
                               std::span<const char> args, std::vector<char>& out,
                               std::uint64_t max_result) {
  out.clear();
  const remote_entry* e = find_remote(name);
  if (!e) {
    out = encode_strings("no remote function named '" + std::string(name) + "'", nullptr);
    return remote_reply::rejected;
  }
  if (e->signature_hash != signature_hash) {
    out = encode_strings("'" + e->name + "' has signature " + describe_signature(*e->signature) +
                             ", called with different types",
                         nullptr);
    return remote_reply::rejected;
  }
  try {
    e->invoke(args, out);
  } catch (const remote_call_error& err) {
    out = encode_strings(clip(err.what()), nullptr);
    return remote_reply::rejected;
  } catch (const std::exception& err) {
    std::string type = demangle(typeid(err).name());
    std::string what = clip(err.what());
    out = encode_strings(type, &what);
    return remote_reply::raised;
  } catch (...) {
    std::string type = current_exception_type();
    std::string what = "(not derived from std::exception)";
    out = encode_strings(type, &what);
    return remote_reply::raised;
  }
  if (out.size() > max_result) {
    std::string what = "result of " + std::to_string(out.size()) +
                       " bytes exceeds the pool's max_message_size";
    out = encode_strings(what, nullptr);
    return remote_reply::rejected;
  }
  return remote_reply::result;
}

void throw_remote_reply(remote_reply kind, const std::string& function,
                        std::span<const char> body) {
  std::string type, message;
  if (kind == remote_reply::raised) {
    try {
      load_all(body, type, message);
    } catch (const cereal::Exception&) {
      type = "unknown exception";
    }
    throw remote_error(function, type, message);
  }
  try {
    load_all(body, message);
  } catch (const cereal::Exception&) {
    message = "the worker rejected the call";
  }
  throw remote_call_error("remote call '" + function + "': " + message);
}

}  // namespace eddy::detail
