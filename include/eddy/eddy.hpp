// eddy: a C++20 event-loop runtime for Linux. One include for all of it.
#pragma once

#include <eddy/io/address.hpp>
#include <eddy/io/fd.hpp>
#include <eddy/io/recv_buffer.hpp>
#include <eddy/io/stream.hpp>
#include <eddy/io/tcp.hpp>
#include <eddy/io/tcp_balancer.hpp>
#include <eddy/io/udp.hpp>
#include <eddy/io/unix.hpp>
#include <eddy/runtime/channel.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/loop_channel.hpp>
#include <eddy/runtime/loop_group.hpp>
#include <eddy/runtime/mutex.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/semaphore.hpp>
#include <eddy/runtime/spawn_on.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/runtime/when.hpp>
