// Remote functions: the registry of functions a process_pool helper can run, and
// the serialization of their arguments and results.
//
// A function is registered by name at static-initialisation time with
// EDDY_REMOTE(fn). Helpers are the same program re-executed, so parent and helper
// hold the same registry; a call names the function and carries a hash of its
// signature, so a mismatch is reported instead of misreading bytes.
//
// Arguments and results go through cereal's binary archive (cereal/types/* for the
// standard types are included below). A trivially copyable type that has no cereal
// serialize() is copied as raw bytes. Pointers are refused at compile time: an
// address means nothing in another process. Bodies are decoded as untrusted: every
// length prefix is checked against the bytes left before anything is allocated
// (detail/bounded_archive.hpp), for every type whose serialize()/load() is a
// template; a load() written for cereal::BinaryInputArchive alone still works,
// without that check.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <eddy/sched/detail/bounded_archive.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <ostream>
#include <span>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace eddy {

/// A remote function threw. Carries the name of the function, the (demangled)
/// dynamic type of the exception thrown in the helper and its `what()`.
///
/// The helper keeps running after a remote exception; only the call fails.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<parse>(text); }
/// catch (const eddy::remote_error& e) {
///   if (e.type_name() == "std::invalid_argument") report(e.message());
/// }
/// ```
class remote_error : public std::runtime_error {
 public:
  remote_error(std::string function, std::string type_name, std::string message)
      : std::runtime_error("eddy: remote call '" + function + "' threw " + type_name + ": " +
                           message),
        function_(std::move(function)),
        type_name_(std::move(type_name)),
        message_(std::move(message)) {}

  /// The registered name of the function that threw.
  const std::string& function() const noexcept { return function_; }
  /// The demangled dynamic type of the exception, e.g. `std::out_of_range`.
  const std::string& type_name() const noexcept { return type_name_; }
  /// The exception's `what()` (or a note when it was not a std::exception).
  const std::string& message() const noexcept { return message_; }

 private:
  std::string function_;
  std::string type_name_;
  std::string message_;
};

/// A call was rejected before it ran: the name is not registered, the argument
/// types do not match the function's, or the payload could not be decoded.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<int>("no_such_fn", 1); }
/// catch (const eddy::remote_call_error& e) { std::cerr << e.what() << '\n'; }
/// ```
class remote_call_error : public std::invalid_argument {
 public:
  explicit remote_call_error(const std::string& what) : std::invalid_argument("eddy: " + what) {}
};

namespace detail {

// ---- byte streams over a vector / a span, for cereal's stream-based archives ----

// Appends to a vector<char>; avoids ostringstream's copy at the end.
class vector_outbuf final : public std::streambuf {
 public:
  explicit vector_outbuf(std::vector<char>& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.insert(out_.end(), s, s + n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::vector<char>& out_;
};

// Reads from a span without copying it.
class span_inbuf final : public std::streambuf {
 public:
  explicit span_inbuf(std::span<const char> in) {
    char* p = const_cast<char*>(in.data());  // get area is read-only in practice
    setg(p, p, p + in.size());
  }
  std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
};

template <class T>
inline constexpr bool cereal_serializable_v =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

template <class T>
inline constexpr bool memcpy_serializable_v =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
    !cereal_serializable_v<T>;

template <class T>
inline constexpr bool remote_value_v = !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
                                       (cereal_serializable_v<T> || memcpy_serializable_v<T>);

template <class T>
void put_value(cereal::BinaryOutputArchive& ar, const T& v) {
  static_assert(!std::is_pointer_v<T>, "eddy: pointers cannot be sent to another process");
  static_assert(remote_value_v<T>,
                "eddy: this type cannot be sent to a helper: give it a cereal serialize() "
                "(or save/load) function, include the cereal/types header for it, or make "
                "it trivially copyable");
  if constexpr (memcpy_serializable_v<T>)
    ar(cereal::binary_data(static_cast<const void*>(&v), sizeof(T)));
  else
    ar(v);
}

template <class Archive, class T>
void get_value(Archive& ar, T& v) {
  if constexpr (memcpy_serializable_v<T>)
    ar(cereal::binary_data(static_cast<void*>(&v), sizeof(T)));
  else
    ar(v);
}

// Every type here loads through the bounded archive (bounded_archive.hpp): true
// for the standard types and for serialize()/load() functions written as templates.
template <class... T>
inline constexpr bool bounded_loadable_v =
    ((memcpy_serializable_v<T> ||
      cereal::traits::is_input_serializable<T, bounded_input_archive>::value) &&
     ...);

// Loads `values` in order from `in` and insists every byte was used (a
// cereal::Exception otherwise). Lengths in the body are checked against the bytes
// left before anything is allocated, except for types whose load functions only
// take cereal::BinaryInputArchive, which fall back to it.
template <class... T>
void load_all(std::span<const char> in, T&... values) {
  std::size_t left = 0;
  if constexpr (bounded_loadable_v<T...>) {
    bounded_input_archive ar(in);
    (get_value(ar, values), ...);
    left = ar.remaining();
  } else {
    span_inbuf buf(in);
    std::istream is(&buf);
    {
      cereal::BinaryInputArchive ar(is);
      (get_value(ar, values), ...);
    }
    left = buf.remaining();
  }
  if (left != 0) throw cereal::Exception(std::to_string(left) + " trailing bytes");
}

// The type a parameter is held in while it travels: by value, and views become
// owning strings (the bytes must live in the helper's frame, not the caller's).
template <class P>
struct stored {
  using type = std::remove_cvref_t<P>;
};
template <>
struct stored<std::string_view> {
  using type = std::string;
};
template <>
struct stored<const char*> {
  using type = std::string;
};
template <>
struct stored<char*> {
  using type = std::string;
};
template <std::size_t N>
struct stored<const char (&)[N]> {
  using type = std::string;
};
template <std::size_t N>
struct stored<char (&)[N]> {
  using type = std::string;
};
template <class P>
using stored_t = typename stored<std::conditional_t<std::is_array_v<std::remove_reference_t<P>>, P,
                                                    std::remove_cvref_t<P>>>::type;

// The argument as it travels: itself when it already is the stored type (no copy of
// a large vector), else converted (a string literal becomes a std::string).
template <class A>
decltype(auto) as_stored(A&& a) {
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, stored_t<A>>)
    return static_cast<const std::remove_cvref_t<A>&>(a);
  else
    return stored_t<A>(std::forward<A>(a));
}

template <class... A>
void encode_args(std::vector<char>& out, A&&... args) {
  vector_outbuf buf(out);
  std::ostream os(&buf);
  cereal::BinaryOutputArchive ar(os);
  (put_value(ar, as_stored(std::forward<A>(args))), ...);
}

template <class T>
void encode_value(std::vector<char>& out, const T& v) {
  vector_outbuf buf(out);
  std::ostream os(&buf);
  cereal::BinaryOutputArchive ar(os);
  put_value(ar, v);
}

// Decodes one value and insists the payload was consumed exactly.
template <class T>
T decode_value(std::span<const char> in) {
  T v{};
  load_all(in, v);
  return v;
}

// 64-bit FNV-1a: stable across processes of one binary (std::hash is not promised
// to be, and the value travels between processes).
constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

/// Registry record of one remote function.
struct remote_entry {
  std::string name;
  const std::type_info* signature = nullptr;  // typeid(R(stored args...))
  std::uint64_t signature_hash = 0;
  // Decodes args, runs the function, encodes the result into out. User exceptions
  // propagate; decoding failures throw remote_call_error.
  void (*invoke)(std::span<const char> args, std::vector<char>& out) = nullptr;
  void (*address)() = nullptr;  // the function itself, for call<fn>
};

using fn_address = void (*)();

/// Registers an entry; returns true. Conflicting names are remembered and reported
/// by registry_check() (throwing during static initialisation would abort).
bool register_entry(remote_entry entry);
/// nullptr when not registered.
const remote_entry* find_remote(std::string_view name) noexcept;
const remote_entry* find_remote(fn_address address) noexcept;
/// Throws std::logic_error when two functions were registered under one name.
void registry_check();
/// Hash over every registered name and signature: parent and helper compare it.
std::uint64_t registry_fingerprint();

std::string demangle(const char* mangled);
/// "int(std::string, double)" for a function type's typeid.
std::string describe_signature(const std::type_info& t);

template <class F>
struct fn_traits;
template <class R, class... A>
struct fn_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<stored_t<A>...>;
  using signature = std::remove_cvref_t<R>(stored_t<A>...);
  static constexpr bool has_mutable_ref =
      ((std::is_lvalue_reference_v<A> && !std::is_const_v<std::remove_reference_t<A>>) || ...);
};
template <class R, class... A>
struct fn_traits<R (*)(A...) noexcept> : fn_traits<R (*)(A...)> {};

template <auto Fn>
void invoke_remote(std::span<const char> in, std::vector<char>& out) {
  using traits = fn_traits<decltype(Fn)>;
  typename traits::args args{};
  try {
    std::apply([in](auto&... a) { load_all(in, a...); }, args);
  } catch (const cereal::Exception& e) {
    throw remote_call_error(std::string("cannot decode the arguments: ") + e.what());
  }
  using R = std::remove_cvref_t<typename traits::result>;
  if constexpr (std::is_void_v<R>) {
    std::apply([](auto&... a) { Fn(a...); }, args);
  } else {
    R r = std::apply([](auto&... a) -> R { return Fn(a...); }, args);
    encode_value(out, r);
  }
}

// Encodes args as the function's own parameter types, converting where needed.
template <class Params, std::size_t... I, class... A>
void encode_as(std::vector<char>& out, std::index_sequence<I...>, A&&... args) {
  vector_outbuf buf(out);
  std::ostream os(&buf);
  cereal::BinaryOutputArchive ar(os);
  [[maybe_unused]] auto one = [&ar]<class P, class X>(std::type_identity<P>, X&& x) {
    if constexpr (std::is_same_v<std::remove_cvref_t<X>, P>)
      put_value(ar, static_cast<const P&>(x));
    else
      put_value(ar, P(std::forward<X>(x)));
  };
  (one(std::type_identity<std::tuple_element_t<I, Params>>{}, std::forward<A>(args)), ...);
}

// The registry entry of Fn; remote_call_error when it was not registered.
template <auto Fn>
const remote_entry* entry_of(const char* who) {
  const remote_entry* e = find_remote(reinterpret_cast<fn_address>(Fn));
  if (e == nullptr)
    throw remote_call_error(std::string(who) +
                            ": the function is not registered; add EDDY_REMOTE(fn)");
  return e;
}

// The entry registered as `name`, which must have exactly the signature
// R(stored_t<A>...); remote_call_error names both signatures otherwise.
template <class R, class... A>
const remote_entry* entry_named(std::string_view name) {
  const remote_entry* e = find_remote(name);
  if (e == nullptr)
    throw remote_call_error("no remote function named '" + std::string(name) +
                            "' (register it with EDDY_REMOTE)");
  using signature = std::remove_cvref_t<R>(stored_t<A>...);
  if (*e->signature != typeid(signature))
    throw remote_call_error("'" + e->name + "' has signature " +
                            describe_signature(*e->signature) + ", called as " +
                            describe_signature(typeid(signature)));
  return e;
}

// Decodes a result body; remote_call_error when it does not decode as R.
template <class R>
R decode_result(const remote_entry& e, std::span<const char> body) {
  if constexpr (std::is_void_v<R>) {
    return;
  } else {
    try {
      return decode_value<R>(body);
    } catch (const cereal::Exception& x) {
      throw remote_call_error("cannot decode the result of '" + e.name + "': " + x.what());
    }
  }
}

template <auto Fn>
bool register_remote(const char* name) {
  using F = decltype(Fn);
  static_assert(std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>,
                "EDDY_REMOTE takes a function (not a lambda or member function)");
  using traits = fn_traits<F>;
  static_assert(!traits::has_mutable_ref,
                "eddy: a remote function cannot take non-const references; return results");
  using R = std::remove_cvref_t<typename traits::result>;
  static_assert(std::is_void_v<R> || remote_value_v<R>,
                "eddy: the result type of a remote function must be serializable");
  static_assert(!std::is_pointer_v<R>, "eddy: a remote function cannot return a pointer");
  remote_entry e;
  e.name = name;
  e.signature = &typeid(typename traits::signature);
  e.signature_hash = fnv1a(e.signature->name());
  e.invoke = &invoke_remote<Fn>;
  e.address = reinterpret_cast<fn_address>(Fn);
  return register_entry(std::move(e));
}

}  // namespace detail
}  // namespace eddy

#define EDDY_DETAIL_CONCAT2(a, b) a##b
#define EDDY_DETAIL_CONCAT(a, b) EDDY_DETAIL_CONCAT2(a, b)

/// Registers `fn` under the name `name` (a string literal) so process_pool helpers
/// can run it. Use at namespace scope in a .cpp file that is linked into the program.
///
/// **Thread safety:** runs during static initialisation. **Cancel safety:** n/a.
///
/// ```cpp
/// static int square(int x) { return x * x; }
/// EDDY_REMOTE_NAMED(square, "math.square");
/// ```
#define EDDY_REMOTE_NAMED(fn, name)                                                             \
  [[maybe_unused]] static const bool EDDY_DETAIL_CONCAT(eddy_remote_registered_, __COUNTER__) = \
      ::eddy::detail::register_remote<&fn>(name)

/// Registers the function `fn` under its own spelling (`EDDY_REMOTE(ns::f)` is
/// named "ns::f"). Arguments and result must be serializable (see remote.hpp);
/// non-const reference parameters and pointers are rejected at compile time.
///
/// **Thread safety:** runs during static initialisation. **Cancel safety:** n/a.
///
/// ```cpp
/// static std::string shout(std::string s) { for (auto& c : s) c = toupper(c); return s; }
/// EDDY_REMOTE(shout);
/// // later: std::string r = co_await pool.call<shout>("hi");
/// ```
#define EDDY_REMOTE(fn) EDDY_REMOTE_NAMED(fn, #fn)
