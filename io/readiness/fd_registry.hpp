// Which readiness engine watches each fd number, process-wide (docs/fd_ownership.md).
//
// A watch lives in the engine of the loop where an op on the fd first waited, but
// the fd may be closed anywhere: on another loop (a stream returned from spawn_on),
// on a pool thread, or after its loop closed. The registry lets that close find the
// engine that holds the watch and hand the close to it, so the watch always ends
// (EPOLL_CTL_DEL, uv_close) before the number is released, on the thread that owns
// the watch. Until the owning loop has closed it, the number stays taken, so it
// cannot be reused under a live watch.
//
// Protocol:
//  - claim/release run on the owning engine's thread when it starts or ends a
//    watch (an atomic store and a compare-exchange: no lock on the hot path).
//  - hand_off (any thread) and retire (the engine's teardown) take one global
//    mutex, so an engine is never handed a close after it has retired.
#pragma once

#include <mutex>

namespace eddy::detail {

class readiness_engine;

/// fd is now watched by `e` (the engine's thread).
void registry_claim(int fd, readiness_engine* e) noexcept;
/// `e` no longer watches fd (the engine's thread); no effect if another owns it.
void registry_release(int fd, readiness_engine* e) noexcept;
/// The engine that watches fd now, or nullptr. Exact only on that engine's thread.
readiness_engine* registry_owner(int fd) noexcept;
/// True if `e` owns fd's entry, or fd is not tracked (past the table, or its
/// chunk could not be made): then the engine's own state is all there is.
bool registry_owned_by(int fd, const readiness_engine* e) noexcept;
/// If an engine other than `self` (nullptr: none) watches fd, queues the close of
/// fd on that engine and wakes its loop; returns true. Otherwise false: the caller
/// closes fd itself. Any thread.
bool registry_hand_off(int fd, readiness_engine* self) noexcept;
/// Held by hand_off and by an engine that retires (clears its entries): after
/// the retiring engine releases it, no close is handed to that engine.
std::mutex& registry_lock() noexcept;

}  // namespace eddy::detail
