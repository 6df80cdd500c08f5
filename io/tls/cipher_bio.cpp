// A BIO_METHOD over cipher_io (see <eddy/io/detail/tls_cipher_bio.hpp>). One method object for the
// process, made on first use (BIO_meth_new is not free and the method is immutable).
#include <eddy/io/detail/tls_cipher_bio.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace eddy::detail {
namespace {

cipher_io* io_of(BIO* b) { return static_cast<cipher_io*>(BIO_get_data(b)); }

int bio_read(BIO* b, char* buf, int len) {
  cipher_io* io = io_of(b);
  BIO_clear_retry_flags(b);
  if (io->in.empty()) {
    if (io->in_eof) return 0;  // no retry flag: OpenSSL sees the end of the transport
    BIO_set_retry_read(b);
    return -1;
  }
  const std::size_t n = std::min(io->in.size(), static_cast<std::size_t>(len));
  std::memcpy(buf, io->in.data(), n);
  io->in = io->in.subspan(n);
  // Give a drained ring slot back at once: the ring is shared by the whole loop.
  if (io->in.empty()) io->in_chunk.reset();
  return static_cast<int>(n);
}

int bio_write(BIO* b, const char* buf, int len) {
  BIO_clear_retry_flags(b);
  const auto* p = reinterpret_cast<const std::byte*>(buf);
  io_of(b)->out.insert(io_of(b)->out.end(), p, p + len);
  return len;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  cipher_io* io = io_of(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the stream sends `out` after every OpenSSL call that can write
    case BIO_CTRL_PENDING:
      return static_cast<long>(io->in.size());
    case BIO_CTRL_WPENDING:
      return static_cast<long>(io->out.size());
    case BIO_CTRL_EOF:
      return io->in_eof && io->in.empty() ? 1 : 0;
    default:
      // Everything else, the kTLS controls included (BIO_CTRL_GET_KTLS_SEND and
      // friends): not supported, so OpenSSL keeps the record layer in user space.
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* make_method() {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "eddy cipher_io");
  if (m == nullptr || BIO_meth_set_read(m, bio_read) != 1 ||
      BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
      BIO_meth_set_create(m, bio_create) != 1)
    throw std::bad_alloc();
  return m;
}

}  // namespace

BIO* make_cipher_bio(cipher_io* io) {
  static BIO_METHOD* const method = make_method();  // never freed: lives as long as libssl
  BIO* b = BIO_new(method);
  if (b == nullptr) throw std::bad_alloc();
  BIO_set_data(b, io);
  return b;
}

}  // namespace eddy::detail
