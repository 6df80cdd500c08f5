"""What a TLS transport of eddyloop's C TLS layer shows of its session.

asyncio's SSL transports answer get_extra_info('ssl_object') with an
ssl.SSLObject; CPython makes those only around its own SSL objects, so a
transport whose TLS runs in C (python/src/tls_transport.cpp) answers with a
TLSObject instead: the read-only part of SSLObject's interface, read from the
same OpenSSL session (docs/python.md, "TLS")."""

import os
import ssl

__all__ = ["TLSObject"]


class TLSObject:
    """The session of one eddyloop TLS transport, as ssl.SSLObject shows it:
    getpeercert, cipher, shared_ciphers, version, selected_alpn_protocol,
    compression, pending, and the context, server_side and server_hostname
    attributes. read/write/do_handshake/unwrap are not offered: the transport
    owns the session."""

    __slots__ = ("_transport",)

    def __init__(self, transport):
        self._transport = transport

    def _query(self, what):
        return self._transport._tls_query(what)

    @property
    def context(self):
        return self._query("context")

    @property
    def server_side(self):
        return self._query("server_side")

    @property
    def server_hostname(self):
        return self._query("server_hostname")

    def _done(self):
        if self._query("version") is None:
            raise ValueError("handshake not done yet")

    def getpeercert(self, binary_form=False):
        """The peer's certificate: DER bytes with binary_form, else the dict
        ssl.SSLObject.getpeercert gives ({} when the certificate was not
        verified, None when the peer sent none)."""
        self._done()
        der = self._query("peer_der")
        if der is None or binary_form:
            return der
        if not self._query("verify_peer"):
            return {}
        return _decode_certificate(der)

    def cipher(self):
        return self._query("cipher")

    def shared_ciphers(self):
        return self._query("shared_ciphers")

    def version(self):
        return self._query("version")

    def selected_alpn_protocol(self):
        return self._query("alpn")

    def selected_npn_protocol(self):
        return None  # NPN is gone from OpenSSL 3's TLS (and deprecated in ssl)

    def compression(self):
        return None  # OpenSSL 3 is built without TLS compression

    def pending(self):
        return self._query("pending") or 0

    def __repr__(self):
        return f"<eddyloop.tls.TLSObject {self.version()} on {self._transport!r}>"


def _decode_certificate(der):
    # The ssl module decodes certificates into its dict form only from a file
    # (its test helper); an in-memory file keeps that off the disk.
    fd = os.memfd_create("eddyloop-peercert", os.MFD_CLOEXEC)
    try:
        os.write(fd, ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
        return ssl._ssl._test_decode_cert(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def extra_info(transport, name):
    """get_extra_info() for 'ssl_object', 'peercert', 'cipher', 'compression'."""
    obj = TLSObject(transport)
    if name == "ssl_object":
        return obj
    if obj.version() is None:  # before the handshake: nothing yet
        return None
    if name == "peercert":
        return obj.getpeercert()
    if name == "cipher":
        return obj.cipher()
    return obj.compression()
