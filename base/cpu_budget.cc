#include "base/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace segd {
namespace {

std::optional<std::string> ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<unsigned> QuotaCores(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  int64_t cores = (quota + period - 1) / period;
  return static_cast<unsigned>(std::clamp<int64_t>(cores, 1, 1 << 20));
}

}  // namespace

std::optional<unsigned> CoresFromCgroupV2(absl::string_view cpu_max) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(cpu_max), ' ', absl::SkipEmpty());
  if (fields.size() != 2 || fields[0] == "max") return std::nullopt;
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(fields[0], &quota) || !absl::SimpleAtoi(fields[1], &period)) {
    return std::nullopt;
  }
  return QuotaCores(quota, period);
}

std::optional<unsigned> CoresFromCgroupV1(absl::string_view quota_us, absl::string_view period_us) {
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(quota_us), &quota) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(period_us), &period)) {
    return std::nullopt;
  }
  return QuotaCores(quota, period);
}

unsigned UsableCores() {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cores = std::min(cores, static_cast<unsigned>(std::max(1, CPU_COUNT(&set))));
  }
  std::optional<unsigned> quota;
  if (auto v2 = ReadSmallFile("/sys/fs/cgroup/cpu.max")) {
    quota = CoresFromCgroupV2(*v2);
  } else {
    auto q = ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    auto p = ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (q && p) quota = CoresFromCgroupV1(*q, *p);
  }
  if (quota) cores = std::min(cores, *quota);
  return std::max(1u, cores);
}

}  // namespace segd
