// tls_category() and the OpenSSL error queue helpers.
#include <openssl/err.h>

#include <eddy/io/tls_error.hpp>

#include <eddy/io/detail/openssl_errors.hpp>

namespace eddy {
namespace {

class tls_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "eddy.tls"; }
  std::string message(int v) const override {
    switch (static_cast<tls_errc>(v)) {
      case tls_errc::handshake_failed: return "TLS handshake failed";
      case tls_errc::certificate_verify_failed: return "certificate verify failed";
      case tls_errc::handshake_timeout: return "TLS handshake timed out";
      case tls_errc::truncated: return "TLS stream truncated (no close_notify)";
      case tls_errc::protocol_error: return "TLS protocol error";
      case tls_errc::shutdown_timeout: return "TLS shutdown timed out";
      case tls_errc::closed: return "TLS stream closed";
      case tls_errc::configuration: return "TLS configuration error";
    }
    return "unknown TLS error";
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const tls_category_impl c;
  return c;
}

namespace detail {

std::string drain_openssl_errors(unsigned long* first) {
  std::string out;
  if (first != nullptr) *first = 0;
  const char* data = nullptr;
  int flags = 0;
  while (const unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (first != nullptr && *first == 0) *first = e;
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(e);
    out += reason != nullptr ? reason : ("error " + std::to_string(ERR_GET_REASON(e)));
    // Extra data (a file name for a failed load) says which input was wrong.
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ')';
    }
  }
  return out;
}

void throw_configuration(const std::string& what) {
  unsigned long first = 0;
  std::string reasons = drain_openssl_errors(&first);
  throw tls_error(tls_errc::configuration,
                  "eddy: " + what + (reasons.empty() ? "" : ": " + reasons), first);
}

}  // namespace detail
}  // namespace eddy
