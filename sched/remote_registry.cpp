// The registry of remote functions (EDDY_REMOTE).
//
// Invariants:
// - Entries are added only during static initialisation (one thread), and read
//   afterwards from any thread without locking: the registry is immutable once
//   main() runs. The vector lives in a function-local static so registrations from
//   any translation unit find it constructed (no static-init order problem).
// - A name registered twice with two different functions is a program error; it is
//   recorded and reported by registry_check(), which process_pool's constructor
//   and the helper's start-up both call.
#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <eddy/sched/remote.hpp>
#include <memory>
#include <string>
#include <vector>

namespace eddy::detail {
namespace {

struct registry {
  std::vector<remote_entry> entries;
  std::string conflicts;
};

registry& the_registry() {
  // Never destroyed: helpers and late static destructors may still look up names.
  static registry* r = new registry;
  return *r;
}

}  // namespace

bool register_entry(remote_entry entry) {
  registry& r = the_registry();
  for (const remote_entry& e : r.entries) {
    if (e.name != entry.name) continue;
    // The same inline function registered from several translation units.
    if (e.address == entry.address) return true;
    r.conflicts += "'" + entry.name + "' is registered twice with different functions; ";
    return true;
  }
  r.entries.push_back(std::move(entry));
  return true;
}

const remote_entry* find_remote(std::string_view name) noexcept {
  for (const remote_entry& e : the_registry().entries)
    if (e.name == name) return &e;
  return nullptr;
}

const remote_entry* find_remote(fn_address address) noexcept {
  for (const remote_entry& e : the_registry().entries)
    if (e.address == address) return &e;
  return nullptr;
}

void registry_check() {
  const registry& r = the_registry();
  if (!r.conflicts.empty()) throw std::logic_error("eddy: EDDY_REMOTE: " + r.conflicts);
}

std::uint64_t registry_fingerprint() {
  std::vector<std::string> keys;
  for (const remote_entry& e : the_registry().entries)
    keys.push_back(e.name + '\0' + e.signature->name());
  std::sort(keys.begin(), keys.end());  // registration order may differ by link order
  std::string all;
  for (const std::string& k : keys) all += k + '\n';
  return fnv1a(all);
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                           std::free);
  std::string s = (status == 0 && p) ? std::string(p.get()) : std::string(mangled);
  // Readable names for the most common types.
  const std::string long_string =
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
  for (std::size_t at; (at = s.find(long_string)) != std::string::npos;)
    s.replace(at, long_string.size(), "std::string");
  return s;
}

std::string describe_signature(const std::type_info& t) {
  return demangle(t.name());
}

}  // namespace eddy::detail
