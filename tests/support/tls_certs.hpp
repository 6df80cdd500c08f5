// Test certificates, made when a test needs them with the `openssl` command into a
// fresh temporary directory (removed again at exit): nothing secret is committed.
// EC P-256 keys, since they are made in milliseconds.
//
//   ca            the test CA, "CN=eddy test CA"
//   server        signed by ca: CN=localhost, SAN DNS:localhost, IP:127.0.0.1
//   other         signed by ca: CN=other.example, SAN DNS:other.example
//   expired       as server, but its validity ended a day ago
//   self_signed   CN=localhost, signed by itself (no CA trusts it)
//   client        signed by ca: CN=eddy test client (for mutual TLS)
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace eddy_test {

struct cert_pair {
  std::string cert;
  std::string key;
};

class tls_certs {
 public:
  static const tls_certs& get() {
    static const tls_certs certs;
    return certs;
  }

  std::string dir;
  std::string ca;
  std::string ca_key;
  cert_pair server, other, expired, self_signed, client;

  ~tls_certs() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

 private:
  tls_certs() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "eddy-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    ca = dir + "/ca.pem";
    ca_key = dir + "/ca.key";
    run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "3", "-subj", "/CN=eddy test CA"});
    server = signed_cert("server", "localhost", "DNS:localhost,IP:127.0.0.1", "3");
    other = signed_cert("other", "other.example", "DNS:other.example", "3");
    expired = signed_cert("expired", "localhost", "DNS:localhost,IP:127.0.0.1", "-1");
    client = signed_cert("client", "eddy test client", "DNS:client.example", "3");
    self_signed = {dir + "/self.pem", dir + "/self.key"};
    run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", self_signed.key, "-out", self_signed.cert, "-days", "3", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
  }

  cert_pair signed_cert(const std::string& name, const std::string& cn, const std::string& san,
                        const std::string& days) {
    cert_pair p{dir + "/" + name + ".pem", dir + "/" + name + ".key"};
    const std::string csr = dir + "/" + name + ".csr";
    const std::string ext = dir + "/" + name + ".ext";
    std::ofstream(ext) << "subjectAltName=" << san << "\n";
    run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         p.key, "-out", csr, "-subj", "/CN=" + cn});
    run({"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", p.cert,
         "-days", days, "-extfile", ext});
    return p;
  }

  static void run(const std::vector<std::string>& args) {
    std::vector<char*> argv{const_cast<char*>("openssl")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, "openssl", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot run openssl (Debian: apt-get install openssl)");
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      throw std::runtime_error("openssl " + args[0] + " failed making test certificates");
  }
};

}  // namespace eddy_test
