// (detail: used by io/tls and by eddyloop's TLS transport, python/src.)
// Thread safety: a cipher_io and its BIO belong to one stream, used on its loop's
// thread. Cancel safety: n/a (nothing here waits).
// The BIO between OpenSSL and eddy's transport: OpenSSL reads ciphertext from a
// span of bytes eddy received (a recv_buffer lent by the loop, so on io_uring the
// provided-buffer ring the kernel filled) and appends what it writes to a vector
// eddy sends. Nothing in it blocks or makes a system call: when the span is empty
// a read asks OpenSSL to retry (SSL_ERROR_WANT_READ) and the stream awaits more.
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <eddy/io/recv_buffer.hpp>
#include <span>
#include <vector>

namespace eddy::detail {

struct cipher_io {
  recv_buffer in_chunk;              // holds the bytes `in` points into
  std::span<const std::byte> in;     // ciphertext not yet read by OpenSSL
  bool in_eof = false;               // the transport reached end of stream
  std::vector<std::byte> out;        // ciphertext OpenSSL wrote, not yet sent
  std::vector<std::byte> spill;      // unread bytes and a new chunk, when both are held

  // The stream calls OpenSSL again, without receiving, while `in` is not empty
  // (OpenSSL may say WANT_READ after a post-handshake message with bytes still
  // unread); so `in` is normally empty here and the chunk is used in place.
  void feed(recv_buffer b) {
    if (in.empty()) {
      in_chunk = std::move(b);
      in = in_chunk.data();
      return;
    }
    std::vector<std::byte> joined(in.begin(), in.end());
    joined.insert(joined.end(), b.data().begin(), b.data().end());
    spill.swap(joined);
    in_chunk.reset();
    in = spill;
  }
};

// A new BIO over `io` (not owned; it must outlive the BIO).
BIO* make_cipher_bio(cipher_io* io);

}  // namespace eddy::detail
