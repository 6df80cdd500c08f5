// Heartbeats for the job a concurrency-1 cluster worker runs on its loop thread.
//
// Why: with one slot, handing each job to a pool thread and back puts two thread
// wake-ups (a futex wake, then an eventfd or ring wake of the loop) on every call's
// critical path, for nothing the loop could do meanwhile: no slot is free, so it
// reads no job. Running the function on the loop thread removes them, but a long
// job then stops the loop's ticker, and with it the heartbeats that keep another
// worker from claiming the job after claim_after. This thread keeps them going: its
// own loop and its own Redis connection, asleep on a timer, and while a job runs it
// sends `XCLAIM <jobs> <group> <consumer> 0 <id> JUSTID` every `every` (resets the
// entry's idle time without counting a delivery, like the ticker).
//
// A worker stopped as a whole (SIGSTOP, a debugger) stops this thread too, so a
// hung worker still loses its job after claim_after; a function that loops forever
// keeps it (as with the thread pool, where the ticker heartbeats it just the same).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "redis_endpoint.hpp"

namespace eddy::detail {

class inline_heartbeat {
 public:
  /// Starts the thread. Signals should be blocked already (it inherits the mask).
  inline_heartbeat(redis_endpoint ep, std::string jobs, std::string group, std::string consumer,
                   std::chrono::milliseconds every);
  /// Stops the thread (within one timer tick at most: it is woken) and joins it.
  ~inline_heartbeat();
  inline_heartbeat(const inline_heartbeat&) = delete;
  inline_heartbeat& operator=(const inline_heartbeat&) = delete;

  /// The job with stream id `id` runs now; heartbeat it until end(). Any thread.
  void begin(const std::string& id);
  void end();

  struct state;

 private:
  std::shared_ptr<state> st_;
  std::thread thread_;
};

}  // namespace eddy::detail
