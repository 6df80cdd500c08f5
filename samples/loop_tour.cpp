// loop_tour: the loop at work, printed as it happens. Tasks that sleep and join,
// a call_later that is cancelled before it fires, a timeout, a producer and a
// consumer on a channel, another thread posting into the loop, and a pipe read.
//
//   build/samples/loop_tour [--backend auto|io_uring|epoll|libuv]
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <eddy/eddy.hpp>

using namespace std::chrono_literals;

namespace {

const auto t0 = eddy::clock::now();

void say(const char* what) {
  const auto ms = std::chrono::duration<double, std::milli>(eddy::clock::now() - t0).count();
  std::printf("[%8.3f ms] %s\n", ms, what);
}

eddy::task<int> worker(int id, std::chrono::milliseconds d) {
  co_await eddy::sleep_for(d);
  say(("worker " + std::to_string(id) + " woke after " + std::to_string(d.count()) + " ms").c_str());
  co_return id * 10;
}

eddy::task<void> producer(eddy::channel<int>* ch) {
  for (int i = 1; i <= 5; ++i) {
    co_await ch->send(i);
    co_await eddy::sleep_for(2ms);
  }
  ch->close();
}

eddy::task<int> consumer(eddy::channel<int>* ch) {
  int sum = 0;
  while (auto v = co_await ch->recv()) sum += *v;
  co_return sum;
}

eddy::task<int> tour() {
  eddy::loop& l = eddy::loop::current();
  std::printf("eddy loop on the %.*s backend (%s)\n", static_cast<int>(l.backend_name().size()),
              l.backend_name().data(), l.backend_reason().c_str());

  // 1. Three tasks run concurrently; joining them takes as long as the slowest.
  auto a = eddy::spawn(worker(1, 30ms));
  auto b = eddy::spawn(worker(2, 10ms));
  auto c = eddy::spawn(worker(3, 20ms));
  const int sum = co_await a + co_await b + co_await c;
  say(("joined three workers, results sum to " + std::to_string(sum)).c_str());

  // 2. A callback armed for later, and one cancelled before it could run.
  auto fired = l.call_later(5ms, [] { say("call_later(5 ms) fired"); });
  auto never = l.call_later(8ms, [] { say("this must not print"); });
  never.cancel();
  co_await eddy::sleep_for(10ms);

  // 3. A timeout: the slow operation is cancelled and awaited.
  try {
    (void)co_await eddy::with_timeout(5ms, worker(4, 1000ms));
  } catch (const eddy::timeout_error&) {
    say("with_timeout(5 ms) cancelled a 1 s operation");
  }

  // 4. Producer and consumer on a bounded channel, in a task group.
  eddy::channel<int> ch(2);
  const int total = co_await eddy::with_task_group([&ch](eddy::task_group& g) -> eddy::task<int> {
    g.spawn(producer(&ch)).detach();
    co_return co_await consumer(&ch);
  });
  say(("channel carried 1..5, consumer summed " + std::to_string(total)).c_str());

  // 5. Another thread posts into the sleeping loop.
  eddy::event posted;
  std::thread other([h = l.handle(), &posted] {
    std::this_thread::sleep_for(5ms);
    (void)h.call_soon_threadsafe([&posted] {
      say("callback posted from another thread ran on the loop");
      posted.set();
    });
  });
  co_await posted.wait();
  other.join();

  // 6. A pipe: write, then read it back asynchronously.
  auto [r, w] = eddy::make_pipe();
  const char msg[] = "hello through a pipe";
  co_await eddy::write_all(w.get(), std::as_bytes(std::span(msg, sizeof msg - 1)));
  std::array<std::byte, 64> buf;
  const std::size_t n = co_await eddy::read(r.get(), buf);
  say(("read back \"" + std::string(reinterpret_cast<const char*>(buf.data()), n) + "\"").c_str());

  const eddy::loop_stats s = l.stats();
  std::printf("loop turned %llu times; %llu cross-thread wakeups\n",
              static_cast<unsigned long long>(s.iterations), static_cast<unsigned long long>(s.wakeups));
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  eddy::loop_options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const char* v = argv[++i];
      const auto k = eddy::parse_backend(v);
      if (!k || *k == eddy::backend_kind::from_env) {
        std::fprintf(stderr, "loop_tour: --backend must be one of %s, got '%s'\n",
                     eddy::backend_names().c_str(), v);
        return 2;
      }
      o.backend = *k;
    } else {
      std::fprintf(stderr, "usage: loop_tour [--backend NAME]  (NAME: %s)\n",
                   eddy::backend_names().c_str());
      return 2;
    }
  }
  try {
    return eddy::run(tour(), o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loop_tour: %s\n", e.what());
    return 1;
  }
}
