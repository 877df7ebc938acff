#include "base/cpu_budget.h"

#include <sched.h>

#include <thread>

#include "gtest/gtest.h"

namespace segd {
namespace {

TEST(CpuBudget, CgroupV2Quota) {
  EXPECT_EQ(CoresFromCgroupV2("200000 100000\n"), 2u);
  EXPECT_EQ(CoresFromCgroupV2("150000 100000"), 2u);  // 1.5 cores round up
  EXPECT_EQ(CoresFromCgroupV2("50000 100000"), 1u);
  EXPECT_EQ(CoresFromCgroupV2("max 100000\n"), std::nullopt);
  EXPECT_EQ(CoresFromCgroupV2(""), std::nullopt);
  EXPECT_EQ(CoresFromCgroupV2("12 x"), std::nullopt);
  EXPECT_EQ(CoresFromCgroupV2("0 100000"), std::nullopt);
}

TEST(CpuBudget, CgroupV1Quota) {
  EXPECT_EQ(CoresFromCgroupV1("400000\n", "100000\n"), 4u);
  EXPECT_EQ(CoresFromCgroupV1("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(CoresFromCgroupV1("abc", "100000"), std::nullopt);
}

TEST(CpuBudget, IoThreadsLeaveOneCore) {
  EXPECT_EQ(DefaultIoThreads(1), 1u);
  EXPECT_EQ(DefaultIoThreads(2), 1u);
  EXPECT_EQ(DefaultIoThreads(3), 2u);
  EXPECT_EQ(DefaultIoThreads(16), 15u);
}

// The affinity mask bounds the count: pinned to one core, the process has one.
TEST(CpuBudget, AffinityMaskBoundsTheCount) {
  unsigned all = UsableCores();
  EXPECT_GE(all, 1u);
  EXPECT_LE(all, std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &saved)) ++first;
  ASSERT_LT(first, CPU_SETSIZE);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  // The calling thread's mask is the one sched_getaffinity(0) reads.
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  unsigned pinned = UsableCores();
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_EQ(pinned, 1u);
}

}  // namespace
}  // namespace segd
