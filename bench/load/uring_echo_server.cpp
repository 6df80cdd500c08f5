// uring_echo_server: the hand-written io_uring echo loop, the "no runtime" limit on
// io_uring next to epoll_echo_server's on epoll (bench/compare). liburing, no eddy.
//
//   uring_echo_server [--port PORT] [--threads N]
//
// It listens on 127.0.0.1 (PORT 0: the kernel picks; the line "listening on
// 127.0.0.1 PORT" says which) until SIGINT or SIGTERM ends it. --threads N (1..64,
// default 1) runs N copies of the loop below, each on its own thread with its own
// ring, buffers and SO_REUSEPORT listener, sharing nothing: the "no runtime"
// reference for echo_server --threads N in bench/net/scaling.py.
//
// Protocol per connection:
//  1. one multishot accept on the listener; every accepted socket gets one multishot
//     recv that picks its buffers from a provided-buffer ring (group 0), so an idle
//     connection holds no buffer;
//  2. each received chunk is queued on its connection in arrival order; at most one
//     send per connection is in flight (two sends on one socket could complete out of
//     order); it is one sendmsg of up to kIov queued chunks, and what a short send
//     leaves goes out in the next;
//  3. a buffer goes back to the ring when its send completes;
//  4. when the ring runs dry the kernel ends the multishot recv with -ENOBUFS; the
//     connection re-arms after its queued sends have returned buffers;
//  5. recv returning 0 or an error ends the connection: it is closed once no send is
//     in flight, so no completion can arrive for a reused descriptor.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "buf_ring.hpp"

namespace {

constexpr unsigned kBuffers = 1024;  // a power of two, as the ring requires
constexpr unsigned kBufSize = 4096;  // 4 MiB in all, as eddy's io_uring backend
constexpr int kGroup = 0;
constexpr std::size_t kIov = 16;

enum op : std::uint64_t { op_accept = 1, op_recv = 2, op_send = 3 };

std::uint64_t pack(op o, int fd) { return (std::uint64_t{o} << 32) | static_cast<std::uint32_t>(fd); }

struct chunk {
  std::uint16_t bid;
  std::uint32_t off;
  std::uint32_t len;
};

// The message of the send in flight: the kernel reads it until the completion, so it
// lives apart from `conns`, which may grow (and move) meanwhile.
struct send_state {
  msghdr msg{};
  iovec iov[kIov];
};

struct conn {
  bool open = false;
  bool recv_armed = false;
  bool sending = false;
  bool eof = false;
  std::vector<chunk> queue;  // front at head; a deque would allocate per idle connection
  std::size_t head = 0;
  std::unique_ptr<send_state> tx;  // made at the first send
  bool empty() const { return head == queue.size(); }
  chunk& front() { return queue[head]; }
  void pop_front() {
    if (++head == queue.size()) {
      queue.clear();
      head = 0;
    }
  }
};

// One set per thread (--threads): nothing below is shared between loops.
thread_local io_uring ring;
thread_local io_uring_buf_ring* br = nullptr;
thread_local char* buffers = nullptr;
thread_local std::vector<conn> conns;

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void give_back(std::uint16_t bid) {
  io_uring_buf_ring_add(br, buffers + std::size_t{bid} * kBufSize, kBufSize, bid,
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(br, 1);
}

void arm_recv(int fd) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kGroup;
  io_uring_sqe_set_data64(s, pack(op_recv, fd));
  conns[fd].recv_armed = true;
}

void send_front(int fd) {
  conn& c = conns[fd];
  if (!c.tx) c.tx = std::make_unique<send_state>();
  std::size_t n = 0;
  for (std::size_t i = c.head; i < c.queue.size() && n < kIov; ++i, ++n) {
    const chunk& k = c.queue[i];
    c.tx->iov[n] = {buffers + std::size_t{k.bid} * kBufSize + k.off, k.len};
  }
  c.tx->msg.msg_iov = c.tx->iov;
  c.tx->msg.msg_iovlen = n;
  io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, fd, &c.tx->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, pack(op_send, fd));
  c.sending = true;
}

void finish(int fd) {
  conn& c = conns[fd];
  for (std::size_t i = c.head; i < c.queue.size(); ++i) give_back(c.queue[i].bid);
  c.queue.clear();
  c.head = 0;
  c.open = c.recv_armed = c.sending = c.eof = false;  // tx is kept for the next owner of fd
  close(fd);
}

void on_recv(int fd, int res, unsigned flags) {
  conn& c = conns[fd];
  if (!(flags & IORING_CQE_F_MORE)) c.recv_armed = false;
  if (res > 0) {
    const auto bid = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    c.queue.push_back({bid, 0, static_cast<std::uint32_t>(res)});
    if (!c.sending) send_front(fd);
    if (!c.recv_armed && !c.eof) arm_recv(fd);  // the kernel ended it; keep receiving
    return;
  }
  if (res == -ENOBUFS) {
    // Re-armed when a send of ours returns buffers (step 4); with nothing queued here,
    // other connections hold them, so try again at once.
    if (c.empty()) arm_recv(fd);
    return;
  }
  c.eof = true;  // 0: the peer closed; < 0: an error
  if (!c.sending) finish(fd);
}

void on_send(int fd, int res) {
  conn& c = conns[fd];
  c.sending = false;
  if (res < 0) {
    c.eof = true;
  } else {
    auto left = static_cast<std::uint32_t>(res);
    while (left > 0) {
      chunk& k = c.front();
      const std::uint32_t n = left < k.len ? left : k.len;
      k.off += n;
      k.len -= n;
      left -= n;
      if (k.len == 0) {
        give_back(k.bid);
        c.pop_front();
      }
    }
  }
  if (c.eof) {
    if (!c.recv_armed) finish(fd);
    return;
  }
  if (!c.empty()) send_front(fd);
  if (!c.recv_armed) arm_recv(fd);
}

int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4096) != 0) {
    std::perror("uring_echo_server: bind/listen");
    std::exit(1);
  }
  return fd;
}

// One loop: its own ring, buffers and connections, on the listener `lfd`.
void serve(int lfd) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(4096, &ring, &p) != 0) {
    p.flags = 0;  // kernels before 6.1 lack DEFER_TASKRUN
    if (int e = io_uring_queue_init_params(4096, &ring, &p); e != 0) {
      std::fprintf(stderr, "uring_echo_server: io_uring: %s\n", std::strerror(-e));
      std::exit(1);
    }
  }
  int err = 0;
  br = load::map_buf_ring(&ring, kBuffers, kGroup, err);
  if (br == nullptr) {
    std::fprintf(stderr, "uring_echo_server: provided buffers: %s\n", std::strerror(err));
    std::exit(1);
  }
  buffers = static_cast<char*>(std::aligned_alloc(4096, std::size_t{kBuffers} * kBufSize));
  for (unsigned b = 0; b < kBuffers; ++b) give_back(static_cast<std::uint16_t>(b));

  conns.resize(65536);
  io_uring_sqe* accept = sqe();
  io_uring_prep_multishot_accept(accept, lfd, nullptr, nullptr, 0);
  io_uring_sqe_set_data64(accept, pack(op_accept, lfd));
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::uint64_t ud = io_uring_cqe_get_data64(cqe);
      const int fd = static_cast<int>(ud & 0xffffffffu);
      switch (static_cast<op>(ud >> 32)) {
        case op_accept:
          if (cqe->res >= 0) {
            if (static_cast<std::size_t>(cqe->res) >= conns.size()) conns.resize(2 * cqe->res);
            int one = 1;
            setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            conns[cqe->res].open = true;
            arm_recv(cqe->res);
          }
          if (!(cqe->flags & IORING_CQE_F_MORE)) {
            io_uring_sqe* s = sqe();
            io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, 0);
            io_uring_sqe_set_data64(s, pack(op_accept, lfd));
          }
          break;
        case op_recv: on_recv(fd, cqe->res, cqe->flags); break;
        case op_send: on_send(fd, cqe->res); break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 7000;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    char* end = nullptr;
    if (a == "--port" && i + 1 < argc) {
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) {
        std::fprintf(stderr, "uring_echo_server: --port must be 0..65535, got '%s'\n", argv[i]);
        return 2;
      }
      port = static_cast<int>(v);
    } else if (a == "--threads" && i + 1 < argc) {
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 1 || v > 64) {
        std::fprintf(stderr, "uring_echo_server: --threads must be 1..64, got '%s'\n", argv[i]);
        return 2;
      }
      threads = static_cast<int>(v);
    } else {
      std::fprintf(stderr, "usage: uring_echo_server [--port PORT] [--threads N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  // Every listener before any loop starts: the kernel spreads connections only over
  // the sockets bound so far, and the port is known once the first is bound.
  std::vector<int> listeners{listen_on(port)};
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  getsockname(listeners[0], reinterpret_cast<sockaddr*>(&bound), &len);
  port = ntohs(bound.sin_port);
  while (static_cast<int>(listeners.size()) < threads) listeners.push_back(listen_on(port));
  std::vector<std::thread> loops;
  for (int i = 1; i < threads; ++i) loops.emplace_back(serve, listeners[i]);
  std::printf("listening on 127.0.0.1 %d\n", port);
  std::fflush(stdout);
  serve(listeners[0]);
}
