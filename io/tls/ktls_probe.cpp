// probe_ktls(): whether this kernel takes the TLS record layer (kTLS). A loopback
// TCP connection is made (blocking, a few system calls), the "tls" upper-layer
// protocol is attached to the client end, and TLS_TX / TLS_RX are set with a zero
// AES-GCM-128 key: what OpenSSL's socket BIO would do after a handshake. Kernels
// built without CONFIG_TLS (or without the tls module) answer ENOENT to TCP_ULP.
#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/opensslconf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <eddy/io/fd.hpp>
#include <eddy/io/tls_stream.hpp>
#include <string>
#include <system_error>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace eddy {
namespace {

std::string errno_text(int e) {
  const char* name = strerrorname_np(e);
  return std::string(name != nullptr ? name : "errno " + std::to_string(e)) + " (" + std::strerror(e) + ")";
}

[[noreturn]] void resource_error(int e, const char* what) {
  // Resource errors are reported, never turned into "not supported" (DESIGN.md §4).
  throw std::system_error(e, std::generic_category(), std::string("eddy::probe_ktls: ") + what);
}

bool is_resource_error(int e) { return e == ENOMEM || e == EMFILE || e == ENFILE || e == ENOBUFS; }

// A connected loopback pair: {client, accepted}. Empty fds and `why` set on failure.
std::pair<unique_fd, unique_fd> loopback_pair(std::string& why) {
  unique_fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l) {
    if (is_resource_error(errno)) resource_error(errno, "socket");
    why = "socket(AF_INET): " + errno_text(errno);
    return {};
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l.get(), 1) != 0 ||
      ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    why = "a loopback listener: " + errno_text(errno);
    return {};
  }
  unique_fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c) resource_error(errno, "socket");
  if (::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    why = "connecting on loopback: " + errno_text(errno);
    return {};
  }
  unique_fd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!s) {
    if (is_resource_error(errno)) resource_error(errno, "accept4");
    why = "accepting on loopback: " + errno_text(errno);
    return {};
  }
  return {std::move(c), std::move(s)};
}

bool set_key(int fd, int direction, std::string& why) {
  tls12_crypto_info_aes_gcm_128 info{};
  info.info.version = TLS_1_2_VERSION;
  info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  if (::setsockopt(fd, SOL_TLS, direction, &info, sizeof info) == 0) return true;
  why += std::string(why.empty() ? "" : "; ") + (direction == TLS_TX ? "TLS_TX" : "TLS_RX") +
         " with AES-GCM-128: " + errno_text(errno);
  return false;
}

}  // namespace

ktls_support probe_ktls() {
  ktls_support k;
#if defined(OPENSSL_NO_KTLS)
  k.openssl = false;
  k.why = "OpenSSL was built without kTLS (OPENSSL_NO_KTLS)";
#else
  k.openssl = true;
#endif
  std::string why;
  auto [client, server] = loopback_pair(why);
  if (!client) {
    k.why += (k.why.empty() ? "" : "; ") + why;
    return k;
  }
  if (::setsockopt(client.get(), IPPROTO_TCP, TCP_ULP, "tls", 3) != 0) {
    const int e = errno;
    if (is_resource_error(e)) resource_error(e, "setsockopt(TCP_ULP)");
    std::string w = "setsockopt(TCP_ULP, \"tls\") failed with " + errno_text(e);
    if (e == ENOENT) w += ": the kernel has no TLS ULP (built without CONFIG_TLS, or the tls module is not loaded)";
    k.why += (k.why.empty() ? "" : "; ") + w;
    return k;
  }
  k.ulp = true;
  k.send = set_key(client.get(), TLS_TX, why);
  k.receive = set_key(client.get(), TLS_RX, why);
  if (!why.empty()) k.why += (k.why.empty() ? "" : "; ") + why;
  return k;
}

}  // namespace eddy
