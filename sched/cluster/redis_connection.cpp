// See redis_connection.hpp for the protocol; this file is the plumbing.
#include "redis_connection.hpp"

#include <sys/socket.h>

#include <cstdlib>
#include <eddy/io/address.hpp>
#include <eddy/io/unix.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <eddy/sched/tcp_connect.hpp>
#include <new>

namespace eddy::detail {

redis_connection::redis_connection(unique_fd fd, std::string server)
    : fd_(std::move(fd)), server_(std::move(server)), last_rx_(std::chrono::steady_clock::now()) {
  parser_ = redisReaderCreate();
  if (parser_ == nullptr) throw std::bad_alloc();
}

redis_connection::~redis_connection() {
  redisReaderFree(parser_);
}

task<std::shared_ptr<redis_connection>> redis_connection::open(redis_endpoint ep,
                                                               std::chrono::milliseconds timeout) {
  const std::string name = ep.name();
  unique_fd fd;
  try {
    if (ep.is_unix) {
      unix_stream s = co_await with_timeout(
          timeout, unix_stream::connect(socket_address::unix_path(ep.path)), "connecting");
      fd = s.release();
    } else {
      tcp_stream s = co_await tcp_connect(ep.host, ep.port, {.timeout = timeout});
      fd = s.release();
    }
  } catch (const cancelled_error&) {
    throw;
  } catch (const std::exception& e) {
    throw broker_error("cannot connect to Redis at " + name + ": " + e.what());
  }
  auto c = std::make_shared<redis_connection>(std::move(fd), name);
  loop& l = loop::current();
  l.spawn(reader(c)).detach();
  l.spawn(writer(c)).detach();

  std::vector<std::vector<std::string>> hello;
  if (ep.has_password) {
    if (ep.user.empty())
      hello.push_back({"AUTH", ep.password});
    else
      hello.push_back({"AUTH", ep.user, ep.password});
  }
  if (ep.db != 0) hello.push_back({"SELECT", std::to_string(ep.db)});
  hello.push_back({"PING"});  // NOAUTH shows here when a password is needed and missing
  std::vector<redis_reply> replies;
  try {
    replies = co_await with_timeout(timeout, c->pipeline(hello), "logging in");
  } catch (const cancelled_error&) {
    c->close("cancelled");
    throw;
  } catch (const broker_error&) {
    c->close("login failed");
    throw;
  } catch (const std::exception& e) {
    c->close("login failed");
    throw broker_error("Redis at " + name + " did not answer the login: " + e.what());
  }
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (std::string_view err = reply_error(replies[i].get()); !err.empty()) {
      c->close("login failed");
      throw broker_error("Redis at " + name + " refused " +
                         (hello[i][0] == "AUTH"     ? std::string("the login")
                          : hello[i][0] == "SELECT" ? "database " + std::to_string(ep.db)
                                                    : std::string("the connection")) +
                         ": " + std::string(err));
    }
  }
  co_return c;
}

void redis_connection::send(std::span<const std::string_view> args, callback cb) {
  if (failed_) {
    cb(nullptr, "Redis at " + server_ + ": the connection is closed");
    return;
  }
  constexpr std::size_t small = 16;
  const char* argv_small[small];
  std::size_t len_small[small];
  std::vector<const char*> argv_big;
  std::vector<std::size_t> len_big;
  const char** argv = argv_small;
  std::size_t* lens = len_small;
  if (args.size() > small) {
    argv_big.resize(args.size());
    len_big.resize(args.size());
    argv = argv_big.data();
    lens = len_big.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv, lens);
  if (n < 0 || cmd == nullptr) throw std::bad_alloc();
  try {
    out_.append(cmd, static_cast<std::size_t>(n));
  } catch (...) {
    redisFreeCommand(cmd);
    throw;
  }
  redisFreeCommand(cmd);
  pending_.push_back(std::move(cb));
  wake_writer_.set();
}

namespace {
struct command_state {
  event done;
  std::vector<redis_reply> replies;
  std::size_t expected = 0;
  std::string why;
};
}  // namespace

task<redis_reply> redis_connection::command(std::vector<std::string> args) {
  auto st = std::make_shared<command_state>();
  std::vector<std::string_view> v(args.begin(), args.end());
  send(v, [st](redis_reply r, const std::string& why) {
    st->replies.push_back(std::move(r));
    st->why = why;
    st->done.set();
  });
  co_await st->done.wait();
  if (!st->replies[0]) throw broker_error(st->why);
  co_return std::move(st->replies[0]);
}

task<std::vector<redis_reply>> redis_connection::pipeline(
    std::vector<std::vector<std::string>> cmds) {
  auto st = std::make_shared<command_state>();
  st->expected = cmds.size();
  for (const auto& c : cmds) {
    std::vector<std::string_view> v(c.begin(), c.end());
    send(v, [st](redis_reply r, const std::string& why) {
      if (!r && st->why.empty()) st->why = why;
      st->replies.push_back(std::move(r));
      if (st->replies.size() == st->expected) st->done.set();
    });
  }
  if (cmds.empty()) co_return std::vector<redis_reply>{};
  co_await st->done.wait();
  if (!st->why.empty()) throw broker_error(st->why);
  co_return std::move(st->replies);
}

void redis_connection::close(const std::string& why) noexcept {
  fail(why);
}

void redis_connection::fail(const std::string& why) noexcept {
  if (failed_) return;
  failed_ = true;
  // Wakes the reader (EOF) on every backend; the fd itself closes with the object.
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
  std::deque<callback> p = std::move(pending_);
  pending_.clear();
  for (callback& cb : p) {
    try {
      cb(nullptr, why);
    } catch (...) {
    }
  }
  wake_writer_.set();
  if (on_fail) {
    auto f = std::move(on_fail);
    on_fail = nullptr;
    try {
      f(why);
    } catch (...) {
    }
  }
}

task<void> redis_connection::reader(std::shared_ptr<redis_connection> self) {
  std::vector<char> buf(64 * 1024);
  std::string why;
  try {
    while (why.empty() && !self->failed_) {
      const std::size_t n = co_await eddy::read(
          self->fd_.get(), std::as_writable_bytes(std::span(buf.data(), buf.size())));
      if (n == 0) {
        why = "closed the connection";
        break;
      }
      self->last_rx_ = std::chrono::steady_clock::now();
      if (redisReaderFeed(self->parser_, buf.data(), n) != REDIS_OK) {
        why = "sent bad protocol";
        break;
      }
      while (!self->failed_) {
        void* r = nullptr;
        if (redisReaderGetReply(self->parser_, &r) != REDIS_OK) {
          why = std::string("sent bad protocol: ") + self->parser_->errstr;
          break;
        }
        if (r == nullptr) break;
        redis_reply rep(static_cast<redisReply*>(r));
        if (self->pending_.empty()) {
          why = "sent a reply to no command";
          break;
        }
        callback cb = std::move(self->pending_.front());
        self->pending_.pop_front();
        try {
          cb(std::move(rep), {});
        } catch (...) {
        }
      }
    }
  } catch (const cancelled_error&) {
    why = "the loop is closing";
  } catch (const std::exception& e) {
    why = std::string("failed: ") + e.what();
  }
  self->fail("Redis at " + self->server_ + " " + why);
}

task<void> redis_connection::writer(std::shared_ptr<redis_connection> self) {
  std::string buf;
  while (!self->failed_) {
    if (self->out_.empty()) {
      self->wake_writer_.clear();
      try {
        co_await self->wake_writer_.wait();
      } catch (...) {
        self->fail("Redis at " + self->server_ + ": the loop is closing");
        break;
      }
      continue;
    }
    buf.clear();
    buf.swap(self->out_);
    try {
      // send(MSG_NOSIGNAL) rather than write(): a closed peer is EPIPE, not SIGPIPE.
      std::size_t at = 0;
      while (at < buf.size()) {
        at += co_await size_awaiter(loop::current(), "eddy: send", op_code::send, self->fd_.get(),
                                    buf.data() + at, clamp_len(buf.size() - at));
      }
    } catch (const cancelled_error&) {
      self->fail("Redis at " + self->server_ + ": the loop is closing");
      break;
    } catch (const std::exception& e) {
      self->fail("Redis at " + self->server_ + ": write failed: " + e.what());
      break;
    }
  }
}

}  // namespace eddy::detail
