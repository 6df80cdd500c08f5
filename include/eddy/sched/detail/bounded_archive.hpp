// A cereal input archive for bodies that come from another process or machine:
// the bytes of cereal's binary format, read from a span, with every length prefix
// checked against the bytes that are left before anything is allocated for it.
//
// cereal's own BinaryInputArchive reads a container's length and resizes the
// container to it before it reads the elements, so a corrupt or lying body that
// claims a string of 8 GiB gets 8 GiB zero-filled before the short read is seen.
// Every element a length counts takes at least one byte of the body (the one
// exception, a container of empty classes, is refused here: its length is still
// checked against the bytes left), so a length larger than the bytes left cannot
// be honest and is refused at once with a cereal::Exception that says so.
//
// The format is cereal's binary one, unchanged: what a BinaryOutputArchive wrote
// reads back the same. Types whose load functions are written for
// cereal::BinaryInputArchive alone (not templates) do not load from this archive;
// remote.hpp falls back to the plain archive for them.
//
// **Thread safety:** one archive per decode, on one thread. **Cancel safety:** n/a.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

namespace eddy::detail {

class bounded_input_archive
    : public cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit bounded_input_archive(std::span<const char> in)
      : cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>(this),
        at_(in.data()),
        end_(in.data() + in.size()) {}

  void loadBinary(void* const data, std::size_t size) {
    if (size > remaining())
      throw cereal::Exception("Failed to read " + std::to_string(size) + " bytes: " +
                              std::to_string(remaining()) + " left in the body");
    if (size != 0) std::memcpy(data, at_, size);
    at_ += size;
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - at_); }

 private:
  const char* at_;
  const char* end_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                                                                     T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(bounded_input_archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

// The length of what follows: no more elements than bytes left.
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(bounded_input_archive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (static_cast<std::size_t>(t.size) > ar.remaining())
    throw cereal::Exception("a length of " + std::to_string(static_cast<std::size_t>(t.size)) +
                            " where " + std::to_string(ar.remaining()) +
                            " bytes are left in the body");
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace eddy::detail

CEREAL_REGISTER_ARCHIVE(eddy::detail::bounded_input_archive)
// What CEREAL_SETUP_ARCHIVE_TRAITS does, one way only: BinaryOutputArchive's
// input counterpart stays cereal's own archive.
namespace cereal::traits::detail {
template <>
struct get_output_from_input<eddy::detail::bounded_input_archive> {
  using type = cereal::BinaryOutputArchive;
};
}  // namespace cereal::traits::detail
