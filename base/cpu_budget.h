#pragma once

// How many cores this process may really use, and how many I/O threads to run on them.
//
// std::thread::hardware_concurrency counts the machine's online cores. A container or a
// `taskset` often grants fewer: the scheduler affinity mask limits which cores the process may
// run on, and a cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` over
// `cpu.cfs_period_us`) limits how much of them it may use. UsableCores takes the smallest of
// the three, a quota rounded up to whole cores.
//
// DefaultIoThreads leaves one core for everything that is not an I/O thread: the log's writer
// and RocksDB's background work, the housekeeper, and on small machines the clients
// themselves. Measured on two cores (docs/benchmarks.md, "The I/O thread default"): one I/O
// thread answered 15-60% more than two, on HTTP and RESP, reads and writes.
//
// Thread safety: pure functions; UsableCores reads /proc and /sys on every call.

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace segd {

// The cores this process may use: at least 1.
unsigned UsableCores();

// Parses a cgroup v2 `cpu.max` line ("200000 100000", "max 100000"): the quota in whole cores,
// rounded up, or nullopt when there is no quota or the text is not understood.
std::optional<unsigned> CoresFromCgroupV2(absl::string_view cpu_max);
// The same for cgroup v1's two files (quota -1 means none).
std::optional<unsigned> CoresFromCgroupV1(absl::string_view quota_us, absl::string_view period_us);

// I/O threads for `cores` usable cores: one fewer than the cores, and at least one.
inline unsigned DefaultIoThreads(unsigned cores) { return cores > 1 ? cores - 1 : 1; }

}  // namespace segd
