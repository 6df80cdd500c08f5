// The loop's side of metrics, stall detection and task dumps (runtime/
// loop_metrics.cpp, stall_detector.cpp, task_dump.cpp): what loop.cpp calls.
#pragma once

#include <memory>

#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

/// The next loop id (0, 1, 2, ... in creation order). Thread-safe.
unsigned next_loop_id() noexcept;
/// The calling thread's kernel tid.
int current_tid() noexcept;
/// Arms the stall detector for `l` when `o.stall_threshold` (or EDDY_STALL_MS)
/// asks for it; nullptr when off. Throws std::invalid_argument for a threshold out
/// of range.
std::shared_ptr<stall_entry> stall_arm(loop& l, const loop_options& o);
/// Stalls reported for the loop of `e` (0 for nullptr).
std::uint64_t stall_count(const stall_entry* e) noexcept;

}  // namespace eddy::detail
