// What callers and workers put in Redis (docs/cluster_pool.md tells the story).
//
//   <ns>:jobs          stream, one entry per job:
//                        c  the caller's result stream key
//                        j  the caller's job number (decimal; unique per caller)
//                        f  function name      s  signature hash (decimal)
//                        a  encoded arguments
//   <ns>:workers       the consumer group on <ns>:jobs (created at 0 by either side)
//   <ns>:res:<caller>  stream, one entry per answer:
//                        j  job number   k  kind   b  body
//                      kind: r result, x raised, n rejected (remote_invoke.hpp bodies),
//                            d dead-lettered (body: the message)
//   <ns>:dead          stream of dead letters: the job's fields plus
//                        id (its jobs-stream id) and deliveries
//
// Life of a job: XADD by the caller -> XREADGROUP by one worker (pending, owned) ->
// heartbeats (XCLAIM JUSTID by the owner reset its idle time) -> the worker XADDs the
// answer to c, then XACK + XDEL the job (the answer first: a job that is gone from
// the stream always has its answer written). A job idle past claim_after is taken
// by XAUTOCLAIM (delivery count + 1); one claimed past max_deliveries is
// dead-lettered instead of run. A cancelled call XDELs its job: XREADGROUP never
// returns a deleted entry and XAUTOCLAIM drops deleted pending ones.
#pragma once

#include <string>
#include <string_view>

namespace eddy::detail::cluster_protocol {

inline std::string jobs_key(std::string_view ns) { return std::string(ns) + ":jobs"; }
inline std::string group_name(std::string_view ns) { return std::string(ns) + ":workers"; }
inline std::string dead_key(std::string_view ns) { return std::string(ns) + ":dead"; }
inline std::string results_key(std::string_view ns, std::string_view caller) {
  return std::string(ns) + ":res:" + std::string(caller);
}

inline constexpr char kind_result = 'r';
inline constexpr char kind_raised = 'x';
inline constexpr char kind_rejected = 'n';
inline constexpr char kind_dead = 'd';

// The consumer that owns jobs a stopping worker handed back (cluster_worker.cpp,
// hand_back): no worker reads as it (the default worker name, host:pid, has no
// '#'), so they wait only for the next XAUTOCLAIM.
inline constexpr const char* handed_back_consumer = "#handed-back";

/// Checks a key prefix (std::invalid_argument).
void check_namespace(std::string_view ns);

}  // namespace eddy::detail::cluster_protocol
