#include "engine/detail/segment_list_pool.h"

#include <map>
#include <random>

#include "gtest/gtest.h"

namespace segd::engine::detail {
namespace {

TEST(SegmentListPoolTest, UpsertFindRemove) {
  SegmentListPool pool;
  TimeMs prev = -1;
  EXPECT_FALSE(pool.Upsert(3, 10, kNoExpiry, &prev));
  EXPECT_FALSE(pool.Upsert(3, 5, 1234567890123, &prev));
  TimeMs exp = -1;
  ASSERT_TRUE(pool.Find(3, 5, &exp));
  EXPECT_EQ(exp, 1234567890123);
  ASSERT_TRUE(pool.Find(3, 10, &exp));
  EXPECT_EQ(exp, kNoExpiry);
  EXPECT_FALSE(pool.Find(3, 7, nullptr));
  EXPECT_FALSE(pool.Find(4, 5, nullptr));
  EXPECT_TRUE(pool.Upsert(3, 10, 42, &prev));
  EXPECT_EQ(prev, kNoExpiry);
  EXPECT_TRUE(pool.Remove(3, 5, &prev));
  EXPECT_EQ(prev, 1234567890123);
  std::vector<ListedMembership> list;
  pool.List(3, &list);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].segment, 10u);
  EXPECT_EQ(list[0].expires_at, 42);
}

// Random operations against a std::map model, across many users so blocks move and are reused.
TEST(SegmentListPoolTest, MatchesModelUnderRandomOperations) {
  SegmentListPool pool;
  std::map<std::pair<uint32_t, SegmentId>, TimeMs> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 200000; ++step) {
    uint32_t user = rng() % 200;
    SegmentId seg = rng() % 60;
    TimeMs exp = (rng() % 3 == 0) ? kNoExpiry : TimeMs(rng()) * 1000 + 1;
    auto key = std::make_pair(user, seg);
    TimeMs prev = -1;
    if (rng() % 3 != 0) {
      bool existed = pool.Upsert(user, seg, exp, &prev);
      auto it = model.find(key);
      ASSERT_EQ(existed, it != model.end());
      if (existed) {
        ASSERT_EQ(prev, it->second);
      }
      model[key] = exp;
    } else {
      bool existed = pool.Remove(user, seg, &prev);
      auto it = model.find(key);
      ASSERT_EQ(existed, it != model.end());
      if (existed) {
        ASSERT_EQ(prev, it->second);
        model.erase(it);
      }
    }
  }
  for (uint32_t user = 0; user < 200; ++user) {
    std::vector<ListedMembership> list;
    pool.List(user, &list);
    auto it = model.lower_bound({user, 0});
    for (const ListedMembership& m : list) {
      ASSERT_NE(it, model.end());
      ASSERT_EQ(it->first, std::make_pair(user, m.segment));
      ASSERT_EQ(it->second, m.expires_at);
      ++it;
    }
    ASSERT_TRUE(it == model.end() || it->first.first != user);
    EXPECT_EQ(pool.CountOf(user), list.size());
  }
}

}  // namespace
}  // namespace segd::engine::detail
