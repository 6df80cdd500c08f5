// TLS for eddy's streams (OpenSSL 3): contexts, streams, errors, the kTLS probe.
// Available when eddy was built with TLS (-Dtls=enabled, or auto with libssl-dev);
// link with OpenSSL's libssl and libcrypto (pkg-config: eddy lists openssl).
// Thread and cancel safety are documented on each entity in the three headers
// below (in short: a context may be shared by every thread; a stream belongs to
// its loop's thread; reads are cancel-safe, a write cancelled mid-record breaks
// the stream).
#pragma once

#include <eddy/io/tls_context.hpp>
#include <eddy/io/tls_error.hpp>
#include <eddy/io/tls_stream.hpp>
