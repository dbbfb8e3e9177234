// What a chaos run is told: bench_chaos's flags and their defaults.
#pragma once

#include <cstdint>

#include "bench/chaos/chaos_cluster.hpp"

namespace aegaeon::bench::chaos {

struct Options {
  ClusterOptions cluster{AEGAEON_BINARY, AEGAEON_BENCH_DATA_DIR, "chaos-run"};
  int clients = 32;
  double minutes = 30;           // the fault phase
  double baseline_seconds = 60;  // the no-fault phase
  double fault_gap_min_s = 2;    // between two faults
  double fault_gap_max_s = 6;
  double controller_restart_gap_s = 120;  // at least this long between controller restarts
  double sample_seconds = 5;
  double read_timeout_s = 60;  // a stream silent this long is hung
  int max_attempts = 30;       // per request, before the client gives up
  int open_files_slack = 8;    // open files after the run may exceed those before by this much
  double max_rss_growth_mib_per_h = 64;  // judged only on a fault phase of 20 minutes or more
  uint64_t seed = 0;                     // 0: from the clock (printed, so a run can be repeated)
};

}  // namespace aegaeon::bench::chaos
