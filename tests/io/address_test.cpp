// Address parsing and formatting (RELIABILITY row 16: malformed input gives a
// clear error, never a crash). Pure functions: no loop, so plain TEST.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <eddy/io/address.hpp>

using eddy::address_error;
using eddy::socket_address;

TEST(address, ipv4_parses_and_formats_back) {
  auto a = socket_address::parse("192.0.2.1:80");
  EXPECT_TRUE(a.is_ipv4());
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.host(), "192.0.2.1");
  EXPECT_EQ(a.to_string(), "192.0.2.1:80");
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
  EXPECT_EQ(socket_address::parse("0.0.0.0:0").port(), 0);
  EXPECT_EQ(socket_address::parse("255.255.255.255:65535").port(), 65535);
}

TEST(address, ipv6_needs_brackets_and_keeps_its_scope) {
  auto a = socket_address::parse("[2001:db8::1]:443");
  EXPECT_TRUE(a.is_ipv6());
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.to_string(), "[2001:db8::1]:443");
  auto s = socket_address::parse("[fe80::1%7]:1");
  EXPECT_EQ(reinterpret_cast<const sockaddr_in6*>(s.data())->sin6_scope_id, 7u);
  auto lo = socket_address::parse("[fe80::1%lo]:1");
  EXPECT_EQ(lo.to_string(), "[fe80::1%lo]:1");
  EXPECT_EQ(socket_address::parse(lo.to_string()), lo);
  EXPECT_EQ(socket_address::ip("::1", 9).to_string(), "[::1]:9");
  EXPECT_EQ(socket_address::parse("[::ffff:1.2.3.4]:5").host(), "::ffff:1.2.3.4");
}

TEST(address, unix_paths_and_abstract_names) {
  auto p = socket_address::parse("unix:/run/x.sock");
  EXPECT_TRUE(p.is_unix());
  EXPECT_FALSE(p.is_abstract());
  EXPECT_EQ(p.host(), "/run/x.sock");
  EXPECT_EQ(p.to_string(), "unix:/run/x.sock");
  EXPECT_EQ(socket_address::parse("/tmp/a"), socket_address::unix_path("/tmp/a"));
  EXPECT_EQ(socket_address::parse("./rel").host(), "./rel");
  auto a = socket_address::parse("@eddy");
  EXPECT_TRUE(a.is_abstract());
  EXPECT_EQ(a.to_string(), "unix:@eddy");
  EXPECT_EQ(socket_address::parse("unix:@eddy"), a);
  EXPECT_EQ(socket_address::parse(a.to_string()), a);
  EXPECT_EQ(a.port(), 0);
  EXPECT_NO_THROW(socket_address::unix_path(std::string(107, 'p')));
  EXPECT_NO_THROW(socket_address::unix_abstract(std::string(107, 'a')));
}

TEST(address, empty_and_with_port) {
  socket_address e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.to_string(), "");
  EXPECT_EQ(socket_address::loopback(5).with_port(6).to_string(), "127.0.0.1:6");
  EXPECT_EQ(socket_address::any(1, true).to_string(), "[::]:1");
}

TEST(address, malformed_input_gives_a_clear_error) {
  const char* bad[] = {
      "",                          // empty
      "1.2.3.4",                   // no port
      "1.2.3.4:",                  // empty port
      "1.2.3.4:65536",             // port out of range
      "1.2.3.4:-1",                // sign
      "1.2.3.4:+80",               // sign
      "1.2.3.4:8 0",               // space
      "1.2.3.4:123456",            // too many digits
      "1.2.3:80",                  // short IPv4
      "256.1.1.1:80",              // octet out of range
      "1.2.3.4.5:80",              // too many octets
      "::1:80",                    // IPv6 without brackets
      "[::1]",                     // no port
      "[::1]80",                   // no colon
      "[::1:80",                   // no closing bracket
      "[:::1]:80",                 // bad IPv6
      "[fe80::1%]:80",             // empty scope
      "[fe80::1%no-such-if0]:80",  // unknown interface
      "[fe80::1%99999999999]:80",  // scope out of range
      "example.org:80",            // a name, not an address
      ":80",                       // empty host
      "1.2.3.4:80\n",              // control character
      "unix:",                     // empty path
  };
  for (const char* t : bad) {
    try {
      (void)socket_address::parse(t);
      ADD_FAILURE() << "accepted '" << t << "'";
    } catch (const address_error& e) {
      EXPECT_NE(std::string(e.what()).find("eddy: bad"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(socket_address::parse(std::string("unix:/a\0b", 9)), address_error);
  EXPECT_THROW(socket_address::unix_path(std::string(108, 'p')), address_error);
  EXPECT_THROW(socket_address::unix_abstract(std::string(108, 'a')), address_error);
  EXPECT_THROW(socket_address::parse(std::string(5000, '1')), address_error);
  EXPECT_THROW(socket_address::ip("localhost", 80), address_error);
  EXPECT_THROW(socket_address::from_sockaddr(nullptr, 0), address_error);
}

TEST(address, errors_quote_the_input_and_say_why) {
  try {
    (void)socket_address::parse("1.2.3.4:99999");
    FAIL();
  } catch (const address_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("'99999'"), std::string::npos) << w;
    EXPECT_NE(w.find("0..65535"), std::string::npos) << w;
  }
  // Long input is cut in the message, not echoed whole.
  try {
    (void)socket_address::parse(std::string(900, 'x') + ":1");
    FAIL();
  } catch (const address_error& e) {
    EXPECT_LT(std::string(e.what()).size(), 200u);
  }
}

TEST(address, split_host_port_accepts_names_for_command_lines) {
  auto hp = eddy::split_host_port("example.org:8080");
  EXPECT_EQ(hp.host, "example.org");
  EXPECT_EQ(hp.port, 8080);
  hp = eddy::split_host_port("[::1]:7000");
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.port, 7000);
  EXPECT_THROW(eddy::split_host_port("host"), address_error);
  EXPECT_THROW(eddy::split_host_port("host:"), address_error);
  EXPECT_THROW(eddy::split_host_port("a b:1"), address_error);
  EXPECT_THROW(eddy::split_host_port("::1:80"), address_error);
  EXPECT_EQ(eddy::parse_port("0"), 0);
  EXPECT_EQ(eddy::parse_port("65535"), 65535);
  EXPECT_THROW(eddy::parse_port("0x10"), address_error);
  EXPECT_THROW(eddy::parse_port(""), address_error);
}
