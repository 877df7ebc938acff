#include "engine/stable_hash.h"

#include <string>

#include "gtest/gtest.h"

namespace segd::engine {
namespace {

TEST(StableHashTest, ValuesAreFrozen) {
  // Sticky rollouts depend on these exact values: a change here moves users between buckets.
  // The expected values come from an independent implementation of FNV-1a + SplitMix64.
  EXPECT_EQ(StableHash64(""), 0xc3817c016ba4ff30ULL);
  EXPECT_EQ(StableHash64("u104010"), 0x2cbc8df7fba8f776ULL);
  EXPECT_EQ(StableHash64("u104010", StableHash64("AVITO_VOICE_MESSAGES")), 0x0435be5245b8acecULL);
  EXPECT_EQ(StableHash64("u104010"), StableHash64("u104010"));
  EXPECT_NE(StableHash64("u104010"), StableHash64("u104011"));
  EXPECT_NE(StableHash64("ab", 0), StableHash64("ab", 1));
}

TEST(StableHashTest, StickyDecisionSplitsUniformly) {
  int in = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    if (StickyPercentDecision("rollout", "user-" + std::to_string(i), 30)) ++in;
  }
  EXPECT_NEAR(in, n * 0.30, n * 0.01);
}

TEST(StableHashTest, StickyDecisionIsMonotonicInPercent) {
  for (int i = 0; i < 1000; ++i) {
    std::string user = "u" + std::to_string(i);
    if (StickyPercentDecision("seg", user, 10)) {
      EXPECT_TRUE(StickyPercentDecision("seg", user, 50)) << user;
    }
  }
  EXPECT_FALSE(StickyPercentDecision("seg", "u1", 0));
  EXPECT_TRUE(StickyPercentDecision("seg", "u1", 100));
}

TEST(StableHashTest, DecisionDependsOnSegment) {
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string user = "u" + std::to_string(i);
    if (StickyPercentDecision("a", user, 50) != StickyPercentDecision("b", user, 50)) ++differ;
  }
  EXPECT_GT(differ, 350);
}

}  // namespace
}  // namespace segd::engine
