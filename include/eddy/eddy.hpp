// eddy: a C++20 event-loop runtime for Linux. One include for all of it: the
// runtime (tasks, the loop, timers, task groups, sync primitives), io (fds,
// sockets, streams) and sched (thread pools, to_thread/run_cpu, DNS, connecting by
// name, helper processes, subprocesses, signals). process_pool.hpp brings in
// cereal's headers (libcereal-dev), which eddy's pkg-config file and CMake
// config name for consumers.
#pragma once

// Before any standard header: a compiler in C++17 mode then shows this line first,
// not the errors <coroutine> and <concepts> give in that mode.
#if __cplusplus < 202002L
#error "eddy needs C++20 or later: compile with -std=c++20 (or -std=c++23, ...)"
#endif

#include <eddy/io/accepted.hpp>
#include <eddy/io/address.hpp>
#include <eddy/io/fd.hpp>
#include <eddy/io/fs.hpp>
#include <eddy/io/send_file.hpp>
#include <eddy/io/kernel_features.hpp>
#include <eddy/io/recv_buffer.hpp>
#include <eddy/io/relay.hpp>
#include <eddy/io/stream.hpp>
#include <eddy/io/tcp.hpp>
#include <eddy/io/tcp_balancer.hpp>
#include <eddy/io/tls.hpp>
#include <eddy/io/udp.hpp>
#include <eddy/io/unix.hpp>
#include <eddy/runtime/channel.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/group_metrics.hpp>
#include <eddy/runtime/interval.hpp>
#include <eddy/runtime/join_set.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/loop_channel.hpp>
#include <eddy/runtime/loop_group.hpp>
#include <eddy/runtime/metrics.hpp>
#include <eddy/runtime/mutex.hpp>
#include <eddy/runtime/outcome.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/semaphore.hpp>
#include <eddy/runtime/spawn_on.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/runtime/when.hpp>
#include <eddy/sched/dns.hpp>
#include <eddy/sched/fork_join.hpp>
#include <eddy/sched/graceful_shutdown.hpp>
#include <eddy/sched/offload.hpp>
#include <eddy/sched/process_pool.hpp>
#include <eddy/sched/remote.hpp>
#include <eddy/sched/signal_set.hpp>
#include <eddy/sched/subprocess.hpp>
#include <eddy/sched/tcp_connect.hpp>
#include <eddy/sched/thread_pool.hpp>
