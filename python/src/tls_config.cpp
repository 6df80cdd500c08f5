// The user's ssl.SSLContext as eddyloop's C TLS uses it, the exceptions asyncio's
// SSLObject would raise, and what get_extra_info and ssl_object read of a session.
//
// Taking the SSL_CTX: CPython's PySSLContext (Modules/_ssl.c, 3.11) starts with
// PyObject_HEAD then `SSL_CTX *ctx`; a Python subclass adds its fields after the
// C ones, so the offset holds for subclasses too. It is only read when (a) the
// object is an instance of _ssl._SSLContext, (b) the OpenSSL the ssl module was
// built against (ssl.OPENSSL_VERSION_NUMBER) is the one loaded at run time here
// (OpenSSL_version_num(): one libssl.so.3 in the process, shared by _ssl and
// eddy), and (c) the context installs no callback that expects a PySSLSocket as
// the SSL's app data (sni_callback, keylog_filename, _msg_callback), which
// eddyloop/loop.py checks before calling tls_config(). The SSL_CTX is
// up-referenced for as long as a TLSConfig holds it.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cctype>
#include <cstring>
#include <string>

#include <eddy/io/detail/openssl_errors.hpp>
#include "tls_layer.hpp"

namespace eddypy::stream {
namespace {

PyObject* g_sslcontext_type = nullptr;  // _ssl._SSLContext
PyObject* g_ssl_error = nullptr;        // ssl.SSLError
PyObject* g_cert_error = nullptr;       // ssl.SSLCertVerificationError
PyObject* g_tls_module = nullptr;       // eddyloop.tls, imported on first use
bool g_same_openssl = false;

struct PySSLContext_head {
  PyObject_HEAD
  SSL_CTX* ctx;
};

void config_dealloc(PyObject* self) {
  auto* c = reinterpret_cast<tls_config_object*>(self);
  if (c->ctx != nullptr) SSL_CTX_free(c->ctx);
  Py_XDECREF(c->context);
  Py_XDECREF(c->handshake_timeout_obj);
  Py_TYPE(self)->tp_free(self);
}

PyObject* config_repr(PyObject* self) {
  auto* c = reinterpret_cast<tls_config_object*>(self);
  return PyUnicode_FromFormat("<eddyloop TLSConfig %s context=%R>", c->server_side ? "server" : "client", c->context);
}

// CPython's names for the libraries in its "[LIB: REASON]" messages.
std::string library_name(unsigned long code) {
  switch (ERR_GET_LIB(code)) {
    case ERR_LIB_SSL: return "SSL";
    case ERR_LIB_X509: return "X509";
    case ERR_LIB_X509V3: return "X509V3";
    case ERR_LIB_PEM: return "PEM";
    case ERR_LIB_EVP: return "EVP";
    case ERR_LIB_ASN1: return "ASN1";
    case ERR_LIB_SYS: return "SYS";
    default: {
      const char* l = ERR_lib_error_string(code);
      return l != nullptr ? l : "";
    }
  }
}

// OpenSSL 3 has no call for a reason's mnemonic (CPython keeps a table); its
// text in capitals with underscores is the mnemonic for the reasons TLS meets
// ("certificate verify failed" -> CERTIFICATE_VERIFY_FAILED).
std::string mnemonic(const std::string& text) {
  std::string m;
  for (const char ch : text) m += ch == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return m;
}

int set_str_attr(PyObject* o, const char* name, const std::string& v) {
  PyObject* s = PyUnicode_DecodeUTF8(v.data(), static_cast<Py_ssize_t>(v.size()), "replace");
  const int r = s != nullptr ? PyObject_SetAttrString(o, name, s) : -1;
  Py_XDECREF(s);
  return r;
}

bool import_tls_module() {
  if (g_tls_module == nullptr) g_tls_module = PyImport_ImportModule("eddyloop.tls");
  return g_tls_module != nullptr;
}

}  // namespace

PyTypeObject tls_config_type = [] {
  PyTypeObject t = new_type("eddyloop._core.TLSConfig", sizeof(tls_config_object),
                            Py_TPFLAGS_DEFAULT, config_dealloc);
  t.tp_repr = config_repr;
  t.tp_doc = "An ssl.SSLContext's SSL_CTX with asyncio's TLS options, for eddyloop's C TLS.";
  return t;
}();

PyObject* ssl_error_from_queue(SSL* ssl, int ssl_error) {
  unsigned long first = 0;
  const std::string all = eddy::detail::drain_openssl_errors(&first);
  std::string lib = first != 0 ? library_name(first) : "";
  const char* rs = first != 0 ? ERR_reason_error_string(first) : nullptr;
  std::string reason_text = rs != nullptr ? rs : (all.empty() ? "unknown error" : all);
  const std::string reason = mnemonic(reason_text);
  const bool verify = first != 0 && ERR_GET_LIB(first) == ERR_LIB_SSL &&
                      ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED;
  std::string message = "[" + lib + ": " + reason + "] " + reason_text;
  long code = 0;
  std::string verify_message;
  if (verify) {
    code = SSL_get_verify_result(ssl);
    verify_message = X509_verify_cert_error_string(code);
    // CPython's wording for the name checks it asks OpenSSL to make.
    const X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const char* host = X509_VERIFY_PARAM_get0_host(const_cast<X509_VERIFY_PARAM*>(param), 0);
    if (code == X509_V_ERR_HOSTNAME_MISMATCH && host != nullptr)
      verify_message = std::string("Hostname mismatch, certificate is not valid for '") + host + "'.";
    else if (code == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      char* ip = X509_VERIFY_PARAM_get1_ip_asc(const_cast<X509_VERIFY_PARAM*>(param));
      verify_message = ip != nullptr
                           ? std::string("IP address mismatch, certificate is not valid for '") + ip + "'."
                           : std::string("IP address mismatch, certificate is not valid for the address asked for.");
      OPENSSL_free(ip);
    }
    message += ": " + verify_message;
  }
  message += " (eddyloop)";
  PyObject* exc = PyObject_CallFunction(verify ? g_cert_error : g_ssl_error, "is", ssl_error, message.c_str());
  if (exc == nullptr) return nullptr;
  if (set_str_attr(exc, "reason", reason) < 0 || set_str_attr(exc, "library", lib) < 0) {
    Py_DECREF(exc);
    return nullptr;
  }
  if (verify) {
    PyObject* c = PyLong_FromLong(code);
    const int r = c != nullptr ? PyObject_SetAttrString(exc, "verify_code", c) : -1;
    Py_XDECREF(c);
    if (r < 0 || set_str_attr(exc, "verify_message", verify_message) < 0) {
      Py_DECREF(exc);
      return nullptr;
    }
  }
  return exc;
}

// _core.tls_config(sslcontext, server_side, handshake_timeout, shutdown_timeout,
// handshake_timeout_as_given) -> TLSConfig, or None when this context cannot be
// used from C safely (the caller falls back to asyncio.sslproto).
PyObject* tls_config(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError,
                    "tls_config(sslcontext, server_side, handshake_timeout, shutdown_timeout, handshake_timeout_obj)");
    return nullptr;
  }
  const int is_ctx = PyObject_IsInstance(args[0], g_sslcontext_type);
  if (is_ctx < 0) return nullptr;
  if (is_ctx == 0 || !g_same_openssl) Py_RETURN_NONE;
  const int server_side = PyObject_IsTrue(args[1]);
  const double hs = PyFloat_AsDouble(args[2]);
  const double sd = PyFloat_AsDouble(args[3]);
  if (server_side < 0 || PyErr_Occurred()) return nullptr;
  if (!(hs > 0) || !(sd > 0) || hs > 1e9 || sd > 1e9) {
    PyErr_SetString(PyExc_ValueError, "ssl handshake and shutdown timeouts must be positive and finite");
    return nullptr;
  }
  PyObject* pha = PyObject_GetAttrString(args[0], "post_handshake_auth");
  const int post_handshake_auth = pha != nullptr ? PyObject_IsTrue(pha) : -1;
  Py_XDECREF(pha);
  if (post_handshake_auth < 0) return nullptr;
  SSL_CTX* ctx = reinterpret_cast<PySSLContext_head*>(args[0])->ctx;
  if (ctx == nullptr || SSL_CTX_up_ref(ctx) != 1) Py_RETURN_NONE;
  auto* c = PyObject_New(tls_config_object, &tls_config_type);
  if (c == nullptr) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  c->ctx = ctx;
  c->context = Py_NewRef(args[0]);
  c->handshake_timeout_obj = Py_NewRef(args[4]);
  c->handshake_timeout = hs;
  c->shutdown_timeout = sd;
  c->server_side = server_side == 1;
  c->post_handshake_auth = post_handshake_auth == 1;
  return reinterpret_cast<PyObject*>(c);
}

PyObject* tls_extra(transport_object* t, PyObject* name) {
  const char* n = PyUnicode_AsUTF8(name);
  if (n == nullptr) return nullptr;
  if (std::strcmp(n, "peercert") != 0 && std::strcmp(n, "cipher") != 0 && std::strcmp(n, "compression") != 0 &&
      std::strcmp(n, "ssl_object") != 0)
    return nullptr;
  // Built in Python (eddyloop/tls.py) on first use and kept, as asyncio keeps them.
  if (!import_tls_module()) return nullptr;
  PyObject* v = PyObject_CallMethod(g_tls_module, "extra_info", "OO", as_obj(t), name);
  if (v == nullptr || v == Py_None) return v;  // None: not known yet (before the handshake)
  if (PyDict_SetItem(t->extra, name, v) < 0) {
    Py_DECREF(v);
    return nullptr;
  }
  return v;
}

PyObject* tr_tls_query(PyObject* self, PyObject* what) {
  transport_object* t = as_tr(self);
  const char* w = PyUnicode_Check(what) ? PyUnicode_AsUTF8(what) : nullptr;
  if (w == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_tls_query(str)");
    return nullptr;
  }
  tls_layer* s = t->tls;
  if (s == nullptr) Py_RETURN_NONE;
  auto* cfg = reinterpret_cast<tls_config_object*>(s->config);
  SSL* ssl = s->ssl;
  const std::string q = w;
  if (q == "context") return Py_NewRef(cfg->context);
  if (q == "server_side") return PyBool_FromLong(cfg->server_side);
  if (q == "server_hostname") return Py_NewRef(s->hostname != nullptr ? s->hostname : Py_None);
  if (q == "pending") return PyLong_FromSize_t(s->plain.size() - s->plain_pos);
  if (!s->handshake_done) Py_RETURN_NONE;
  if (q == "verify_peer") return PyBool_FromLong((SSL_CTX_get_verify_mode(cfg->ctx) & SSL_VERIFY_PEER) != 0);
  if (q == "peer_der") {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) Py_RETURN_NONE;
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert, &der);
    X509_free(cert);
    if (len < 0) Py_RETURN_NONE;
    PyObject* b = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(der), len);
    OPENSSL_free(der);
    return b;
  }
  if (q == "cipher") {
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
    if (c == nullptr) Py_RETURN_NONE;
    return Py_BuildValue("(ssi)", SSL_CIPHER_get_name(c), SSL_CIPHER_get_version(c), SSL_CIPHER_get_bits(c, nullptr));
  }
  if (q == "version") return PyUnicode_FromString(SSL_get_version(ssl));
  if (q == "alpn") {
    const unsigned char* p = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &p, &len);
    if (p == nullptr || len == 0) Py_RETURN_NONE;
    return PyUnicode_DecodeASCII(reinterpret_cast<const char*>(p), len, "replace");
  }
  if (q == "shared_ciphers") {
    STACK_OF(SSL_CIPHER)* server = SSL_get_ciphers(ssl);
    STACK_OF(SSL_CIPHER)* client = SSL_get_client_ciphers(ssl);
    if (server == nullptr || client == nullptr) Py_RETURN_NONE;
    PyObject* list = PyList_New(0);
    for (int i = 0; list != nullptr && i < sk_SSL_CIPHER_num(server); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(server, i);
      if (sk_SSL_CIPHER_find(client, c) < 0) continue;
      PyObject* tup =
          Py_BuildValue("(ssi)", SSL_CIPHER_get_name(c), SSL_CIPHER_get_version(c), SSL_CIPHER_get_bits(c, nullptr));
      if (tup == nullptr || PyList_Append(list, tup) < 0) Py_CLEAR(list);
      Py_XDECREF(tup);
    }
    return list;
  }
  PyErr_Format(PyExc_ValueError, "_tls_query: unknown %R", what);
  return nullptr;
}

PyObject* tr_start_tls(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "_start_tls(protocol, config, server_hostname, waiter)");
    return nullptr;
  }
  transport_object* t = as_tr(self);
  if (t->tls != nullptr || t->closing || t->fd < 0) {
    PyErr_SetString(PyExc_RuntimeError, "eddyloop: this transport cannot start TLS (closing, or TLS already)");
    return nullptr;
  }
  if (!set_protocol_refs(t, args[0])) return nullptr;
  if (!tls_attach(t, args[1], args[2], args[3], false)) return nullptr;
  t->reading_paused = false;  // asyncio's start_tls hands over an unpaused SSL transport
  // A reader parked by pause_reading() (asyncio's start_tls pauses first) runs
  // the handshake now: TLS reads regardless of the protocol's pause until then.
  t->resume->set();
  Py_RETURN_NONE;
}

bool init_tls(PyObject* module) {
  if (PyType_Ready(&tls_config_type) < 0) return false;
  PyObject* ssl = PyImport_ImportModule("ssl");
  PyObject* _ssl = PyImport_ImportModule("_ssl");
  if (ssl == nullptr || _ssl == nullptr) {
    // No ssl module: asyncio has no TLS either; eddyloop's C TLS stays off.
    Py_XDECREF(ssl);
    Py_XDECREF(_ssl);
    PyErr_Clear();
    return true;
  }
  g_sslcontext_type = PyObject_GetAttrString(_ssl, "_SSLContext");
  g_ssl_error = PyObject_GetAttrString(ssl, "SSLError");
  g_cert_error = PyObject_GetAttrString(ssl, "SSLCertVerificationError");
  PyObject* version = PyObject_GetAttrString(ssl, "OPENSSL_VERSION_NUMBER");
  Py_DECREF(ssl);
  Py_DECREF(_ssl);
  if (g_sslcontext_type == nullptr || g_ssl_error == nullptr || g_cert_error == nullptr || version == nullptr) {
    Py_XDECREF(version);
    return false;
  }
  const unsigned long v = PyLong_AsUnsignedLong(version);
  Py_DECREF(version);
  if (PyErr_Occurred()) return false;
  g_same_openssl = v == OpenSSL_version_num();
  static PyMethodDef config_def = {
      "tls_config", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tls_config)), METH_FASTCALL,
      "tls_config(sslcontext, server_side, handshake_timeout, shutdown_timeout, handshake_timeout_obj) -> "
      "TLSConfig, or None where the context must stay with asyncio.sslproto"};
  PyObject* f = PyCFunction_New(&config_def, nullptr);
  if (f == nullptr || PyModule_AddObject(module, "tls_config", f) < 0) {
    Py_XDECREF(f);
    return false;
  }
  PyObject* same = PyBool_FromLong(g_same_openssl);
  return PyModule_AddObject(module, "TLS_SAME_OPENSSL", same) == 0;
}

}  // namespace eddypy::stream
