// Naming the calling thread and reading its CPU time: how the runtime tells its own cost
// (actors, HTTP) apart from the engine's compute when a benchmark or an operator looks at a
// running process (`top -H`, /proc/PID/task/*/comm and schedstat).
#pragma once

#include <string_view>

namespace aegaeon::core {

/// Thread names the runtime gives its threads; everything else (CAF scheduler workers, the main
/// thread) is runtime work. Linux keeps at most 15 characters.
namespace thread_names {
inline constexpr std::string_view kCompute = "aeg-compute";  ///< CPU backend pool workers
inline constexpr std::string_view kCopy = "aeg-copy";        ///< CPU backend copy queue
inline constexpr std::string_view kDevice = "aeg-device";    ///< a gpu_worker (engine calls + bookkeeping)
inline constexpr std::string_view kKj = "aeg-kj";            ///< the kj event loop (HTTP, RPC)
}  // namespace thread_names

/// Names the calling thread (truncated to 15 characters); best effort, never fails.
void set_current_thread_name(std::string_view name);

/// CPU time the calling thread has consumed, in seconds (CLOCK_THREAD_CPUTIME_ID).
double current_thread_cpu_seconds();

}  // namespace aegaeon::core
