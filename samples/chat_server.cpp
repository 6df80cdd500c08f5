// chat_server: a line-based chat room over TCP, written as a user of eddy would
// write it, with nothing but <eddy/eddy.hpp>.
//
//   chat_server [--host 127.0.0.1] [--port 7000] [--max-line 1024]
//
// Prints "listening on HOST PORT" once it accepts (port 0: the kernel picks).
// Every client is greeted with "welcome HOST:PORT" (its own address, from
// accept_with_peer), and every line a client sends goes to every other client as
// "HOST:PORT: line". A line longer than --max-line bytes, or a client too slow to
// take what the room says (1 MiB waiting), ends that client alone: clients run in
// an eddy::join_set, so one client's failure is logged and touches nobody else.
// SIGINT (Ctrl-C) or SIGTERM stops it: the listener closes, every client gets
// "server shutting down", and it exits 0. Exit status 1 if it cannot listen, 2 for
// bad usage.
#include <eddy/eddy.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <string>

namespace {

struct options {
  std::string host = "127.0.0.1";
  long port = 7000;
  long max_line = 1024;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "chat_server: %s\nusage: chat_server [--host ADDR] [--port 0..65535] [--max-line 16..65536]\n",
               why.c_str());
  std::exit(2);
}

long number(const char* text, const char* name, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
    usage_error(std::string(name) + " must be a number in " + std::to_string(lo) + ".." + std::to_string(hi) +
                ", got '" + text + "'");
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help") usage_error("a line-based chat room");
    if (i + 1 >= argc) usage_error("missing value after " + a);
    const char* v = argv[++i];
    if (a == "--host") o.host = v;
    else if (a == "--port") o.port = number(v, "--port", 0, 65535);
    else if (a == "--max-line") o.max_line = number(v, "--max-line", 16, 65536);
    else usage_error("unknown option " + a);
  }
  return o;
}

// One connected client. Lives in the room's list from greeting to goodbye.
struct client {
  eddy::stream io;
  std::string name;
};

struct room {
  std::list<client*> members;

  // Queues `line` for every member but `from`. stream::write only buffers (a
  // background writer sends); past max_write_buffer it throws, and that member,
  // too slow to keep up, is dropped (its reader task then ends on its own).
  void say(const client* from, const std::string& line) {
    for (client* c : members) {
      if (c == from) continue;
      try {
        c->io.write(line);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: dropping %s: %s\n", c->name.c_str(), e.what());
        c->io.abort();
      }
    }
  }
};

// A client's whole life. Parameters by value (STYLE: a coroutine keeps what it uses).
eddy::task<void> serve(eddy::tcp_stream sock, eddy::socket_address peer, room* r, std::size_t max_line) {
  client me{eddy::stream(std::move(sock), {.max_write_buffer = 1 << 20}), peer.to_string()};
  r->members.push_back(&me);
  struct leave {
    room* r;
    client* me;
    ~leave() { r->members.remove(me); }
  } guard{r, &me};
  me.io.write("welcome " + me.name + "\n");
  r->say(&me, me.name + " joined\n");
  bool stopping = false;
  try {
    for (;;) {
      std::string line = co_await me.io.read_line(max_line);  // throws past the limit
      if (line.empty()) break;                                // the client hung up
      if (line.back() != '\n') line += '\n';                  // last line without one
      r->say(&me, me.name + ": " + line);
      co_await me.io.drain();  // our own echo path never grows without bound
    }
  } catch (const eddy::cancelled_error&) {
    stopping = true;  // (no co_await inside a catch block: handled below)
  }
  if (stopping) {
    // The server is stopping (join_set::shutdown): say goodbye, but give a client
    // that does not read at most a second to take it.
    try {
      me.io.write("server shutting down\n");
      co_await eddy::with_timeout(std::chrono::seconds(1), me.io.close(), "goodbye to " + me.name);
    } catch (const std::exception&) {
      me.io.abort();
    }
    throw eddy::cancelled_error{};
  }
  r->say(&me, me.name + " left\n");
  co_await me.io.close();
}

eddy::task<void> accept_loop(eddy::tcp_listener* l, room* r, eddy::join_set<>* clients, std::size_t max_line) {
  for (;;) {
    auto [sock, peer] = co_await l->accept_with_peer();
    clients->spawn(serve(std::move(sock), peer, r, max_line));
  }
}

eddy::task<int> async_main(options o) {
  eddy::tcp_listener listener;
  try {
    listener = eddy::tcp_listener::bind(eddy::socket_address::ip(o.host, static_cast<std::uint16_t>(o.port)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    co_return 1;
  }
  const auto at = listener.local_address();
  std::printf("listening on %s %u\n", at.host().c_str(), static_cast<unsigned>(at.port()));
  std::fflush(stdout);

  room r;
  // One client's failure (a reset, an over-long line) is logged here and ends
  // that client only.
  eddy::join_set<> clients([](eddy::outcome<void> o) {
    if (o.failed()) std::fprintf(stderr, "chat_server: a client ended with: %s\n", o.message().c_str());
  });
  eddy::signal_set stop{SIGINT, SIGTERM};
  // Whichever ends first: a stop signal, or the accept loop failing.
  int status = 0;
  try {
    (void)co_await eddy::when_any(stop.wait(), accept_loop(&listener, &r, &clients,
                                                           static_cast<std::size_t>(o.max_line)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: accepting failed: %s\n", e.what());
    status = 1;
  }
  co_await listener.close();
  co_await clients.shutdown();  // every client says goodbye and closes
  std::printf("stopped\n");
  co_return status;
}

}  // namespace

int main(int argc, char** argv) { return eddy::run(async_main(parse(argc, argv))); }
