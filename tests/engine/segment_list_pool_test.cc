#include "engine/detail/segment_list_pool.h"

#include <map>
#include <random>

#include "gtest/gtest.h"
#include "roaring/roaring.hh"

namespace segd::engine::detail {
namespace {

TEST(SegmentListPoolTest, UpsertFindRemove) {
  SegmentListPool pool;
  TimeMs prev = -1;
  EXPECT_FALSE(pool.Upsert(3, 10, kNoExpiry, 1'700'000'000'250, &prev));
  EXPECT_FALSE(pool.Upsert(3, 5, 1234567890123, 1'700'000'001'999, &prev));
  TimeMs exp = -1;
  uint32_t added = 0;
  ASSERT_TRUE(pool.Find(3, 5, &exp, &added));
  EXPECT_EQ(exp, 1234567890123);
  EXPECT_EQ(AddedAtFromWord(added), 1'700'000'001'000);
  ASSERT_TRUE(pool.Find(3, 10, &exp, &added));
  EXPECT_EQ(exp, kNoExpiry);
  EXPECT_EQ(AddedAtFromWord(added), 1'700'000'000'000);
  EXPECT_FALSE(pool.Find(3, 7, nullptr));
  EXPECT_FALSE(pool.Find(4, 5, nullptr));
  // A refresh moves the expiry and the added-at time.
  EXPECT_TRUE(pool.Upsert(3, 10, 42, 1'700'000'100'000, &prev));
  EXPECT_EQ(prev, kNoExpiry);
  EXPECT_TRUE(pool.Remove(3, 5, &prev));
  EXPECT_EQ(prev, 1234567890123);
  std::vector<ListedMembership> list;
  pool.List(3, &list);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].segment, 10u);
  EXPECT_EQ(list[0].expires_at, 42);
  EXPECT_EQ(list[0].added_at, 1'700'000'100'000);
}

TEST(SegmentListPoolTest, AddedAtWordsKeepSecondsAndReserveZeroForUnknown) {
  EXPECT_EQ(AddedAtFromWord(0), kUnknownTime);
  EXPECT_EQ(AddedAtWord(0), 1u);
  EXPECT_EQ(AddedAtFromWord(AddedAtWord(0)), 0);
  EXPECT_EQ(AddedAtFromWord(AddedAtWord(999)), 0);
  EXPECT_EQ(AddedAtFromWord(AddedAtWord(-5000)), 0);  // before the epoch: the epoch
  EXPECT_EQ(AddedAtFromWord(AddedAtWord(1'764'720'000'123)), 1'764'720'000'000);
  // The last second a word holds, and anything later clamps to it (never wraps to 0).
  const TimeMs last = (TimeMs{0xFFFFFFFFu} - 1) * 1000;
  EXPECT_EQ(AddedAtFromWord(AddedAtWord(last + 999)), last);
  EXPECT_EQ(AddedAtWord(TimeMs{1} << 50), 0xFFFFFFFFu);
}

struct ModelEntry {
  TimeMs expires_at;
  TimeMs added_at;  // to the second
};

void ExpectMatchesModel(const SegmentListPool& pool,
                        const std::map<std::pair<uint32_t, SegmentId>, ModelEntry>& model,
                        uint32_t users) {
  for (uint32_t user = 0; user < users; ++user) {
    std::vector<ListedMembership> list;
    pool.List(user, &list);
    auto it = model.lower_bound({user, 0});
    for (const ListedMembership& m : list) {
      ASSERT_NE(it, model.end());
      ASSERT_EQ(it->first, std::make_pair(user, m.segment));
      ASSERT_EQ(it->second.expires_at, m.expires_at);
      ASSERT_EQ(it->second.added_at, m.added_at);
      ++it;
    }
    ASSERT_TRUE(it == model.end() || it->first.first != user);
    EXPECT_EQ(pool.CountOf(user), list.size());
  }
}

// Random operations against a std::map model, across many users so blocks move and are reused;
// then a packed copy and a pool built from the shard's bitmaps must hold the same.
TEST(SegmentListPoolTest, MatchesModelUnderRandomOperations) {
  constexpr uint32_t kUsers = 200;
  SegmentListPool pool;
  std::map<std::pair<uint32_t, SegmentId>, ModelEntry> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 200000; ++step) {
    uint32_t user = rng() % kUsers;
    SegmentId seg = rng() % 60;
    TimeMs exp = (rng() % 3 == 0) ? kNoExpiry : TimeMs(rng()) * 1000 + 1;
    TimeMs at = 1'600'000'000'000 + TimeMs(rng() % 1'000'000'000);
    auto key = std::make_pair(user, seg);
    TimeMs prev = -1;
    if (rng() % 3 != 0) {
      bool existed = pool.Upsert(user, seg, exp, at, &prev);
      auto it = model.find(key);
      ASSERT_EQ(existed, it != model.end());
      if (existed) {
        ASSERT_EQ(prev, it->second.expires_at);
      }
      model[key] = {exp, at / 1000 * 1000};
    } else {
      bool existed = pool.Remove(user, seg, &prev);
      auto it = model.find(key);
      ASSERT_EQ(existed, it != model.end());
      if (existed) {
        ASSERT_EQ(prev, it->second.expires_at);
        model.erase(it);
      }
    }
  }
  ExpectMatchesModel(pool, model, kUsers);
  ExpectMatchesModel(pool.Rebuilt(100), model, kUsers);

  // The same state as a snapshot holds it: bitmaps per segment, sorted expiries, and the
  // added-at words of each segment's members in user order.
  std::map<SegmentId, Roaring> bitmaps;
  std::vector<std::pair<uint64_t, TimeMs>> expiries;
  for (const auto& [key, entry] : model) bitmaps[key.second].add(key.first);
  std::vector<std::pair<SegmentId, Roaring>> members(bitmaps.begin(), bitmaps.end());
  std::vector<std::vector<uint32_t>> added;
  for (const auto& [segment, bitmap] : members) {
    added.emplace_back();
    for (uint32_t user : bitmap) {
      const ModelEntry& entry = model.at({user, segment});
      added.back().push_back(AddedAtWord(entry.added_at));
      if (entry.expires_at != kNoExpiry) {
        expiries.emplace_back((uint64_t{segment} << 32) | user, entry.expires_at);
      }
    }
  }
  std::sort(expiries.begin(), expiries.end());
  auto identity = [](uint32_t user) { return user; };
  ExpectMatchesModel(SegmentListPool::BuildFrom(members, expiries, added, kUsers, identity), model,
                     kUsers);
  // Without added-at words (a snapshot that did not keep them), every added_at is unknown.
  for (auto& [key, entry] : model) entry.added_at = kUnknownTime;
  ExpectMatchesModel(SegmentListPool::BuildFrom(
                         members, expiries, std::vector<std::vector<uint32_t>>{}, kUsers, identity),
                     model, kUsers);
}

}  // namespace
}  // namespace segd::engine::detail
