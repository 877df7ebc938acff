#include "engine/expiry_schedule.h"

#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace segd::engine {
namespace {

// Drives a schedule against a model (segment, user) -> expires_at: every Collect must hand out
// exactly the model's entries at or before now, in order of expiry, and nothing else.
class ScheduleHarness {
 public:
  explicit ScheduleHarness(TimeMs start) : schedule_(start) {}

  void Schedule(SegmentId s, UserId u, TimeMs at) {
    ASSERT_FALSE(model_.count({s, u}));
    model_[{s, u}] = at;
    schedule_.Schedule(s, u, at);
  }
  void Cancel(SegmentId s, UserId u) {
    auto it = model_.find({s, u});
    ASSERT_NE(it, model_.end());
    schedule_.Cancel(s, u, it->second);
    model_.erase(it);
  }
  // Drops a whole segment as the engine does: its memberships go, then CancelSegment.
  void DropSegment(SegmentId s) {
    std::erase_if(model_, [&](const auto& e) { return e.first.first == s; });
    schedule_.CancelSegment(s);
  }
  std::vector<std::pair<SegmentId, UserId>> Collect(TimeMs now, uint64_t limit = UINT64_MAX) {
    std::vector<std::pair<SegmentId, UserId>> got;
    TimeMs last = 0;
    const uint64_t handed = schedule_.Collect(
        now, limit,
        [&](SegmentId s, UserId u) {
          auto it = model_.find({s, u});
          return it == model_.end() ? kNoExpiry : it->second;
        },
        [&](TimeMs at, SegmentId s, const Roaring& users) {
          EXPECT_LE(at, now);
          EXPECT_GE(at, last) << "handed out out of order";
          last = at;
          for (UserId u : users) {
            auto it = model_.find({s, u});
            EXPECT_NE(it, model_.end()) << "handed out an entry that is not pending";
            if (it == model_.end()) continue;
            EXPECT_EQ(it->second, at);
            got.emplace_back(s, u);
          }
        });
    for (const auto& key : got) model_.erase(key);
    EXPECT_LE(got.size(), handed);  // stale entries count as handed out, and are dropped
    EXPECT_LE(handed, limit);
    if (handed < limit) {
      for (const auto& [key, at] : model_) {
        EXPECT_GT(at, now) << "entry " << key.first << "/" << key.second << " left behind";
      }
    }
    return got;
  }
  bool Has(SegmentId s, UserId u) const { return model_.count({s, u}) > 0; }
  ExpirySchedule& schedule() { return schedule_; }

 private:
  ExpirySchedule schedule_;
  std::map<std::pair<SegmentId, UserId>, TimeMs> model_;
};

TEST(ExpiryScheduleTest, HandsOutAnEntryAtItsMillisecondNotAtTheEndOfItsSecond) {
  ScheduleHarness h(1'000'000);
  h.Schedule(1, 7, 1'002'001);
  EXPECT_TRUE(h.Collect(1'002'000).empty());
  // Due 1 ms later, though the wheel's second for it (1003) has not passed.
  EXPECT_EQ(h.Collect(1'002'001).size(), 1u);
  EXPECT_EQ(h.schedule().pending(), 0u);
}

TEST(ExpiryScheduleTest, PastEntriesComeOutOnTheFirstCollect) {
  ScheduleHarness h(5'000'500);
  h.Schedule(1, 1, 4'000'000);  // long overdue, as after a restart
  h.Schedule(1, 2, 5'000'400);  // overdue within the current second
  h.Schedule(1, 3, 5'000'600);
  EXPECT_EQ(h.Collect(5'000'500).size(), 2u);
  EXPECT_EQ(h.Collect(5'000'600).size(), 1u);
}

TEST(ExpiryScheduleTest, CancelledNearEntriesNeverComeOut) {
  ScheduleHarness h(10'000);
  h.Schedule(2, 9, 11'500);
  EXPECT_TRUE(h.Collect(11'100).empty());  // now near: its second has been reached
  h.Cancel(2, 9);
  h.Schedule(2, 9, 11'900);  // re-added with another expiry in the same second
  EXPECT_TRUE(h.Collect(11'600).empty());
  EXPECT_EQ(h.Collect(11'900).size(), 1u);
  EXPECT_EQ(h.schedule().pending(), 0u);
}

TEST(ExpiryScheduleTest, ADroppedSegmentsNearEntriesAreSkipped) {
  ScheduleHarness h(10'000);
  h.Schedule(3, 1, 10'700);
  h.Schedule(4, 1, 10'700);
  EXPECT_TRUE(h.Collect(10'100).empty());
  h.DropSegment(3);
  auto got = h.Collect(10'800);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 4u);
}

TEST(ExpiryScheduleTest, RandomOperationsMatchTheModel) {
  std::mt19937_64 rng(7);
  const TimeMs start = 1'700'000'000'000;
  ScheduleHarness h(start);
  TimeMs now = start;
  size_t handed_out = 0;
  for (int step = 0; step < 50000; ++step) {
    const auto s = static_cast<SegmentId>(rng() % 5);
    const auto u = static_cast<UserId>(rng() % 300);
    const uint64_t op = rng() % 100;
    if (op < 45) {
      // Add or re-add (the engine cancels the old expiry first). Mostly a few seconds ahead,
      // sometimes days ahead, sometimes already past (recovery after downtime).
      TimeMs delta = static_cast<TimeMs>(rng() % 5000);
      if (rng() % 10 == 0) delta = static_cast<TimeMs>(rng() % 400'000'000);
      if (rng() % 20 == 0) delta = -static_cast<TimeMs>(rng() % 3000);
      if (h.Has(s, u)) h.Cancel(s, u);
      h.Schedule(s, u, now + delta);
    } else if (op < 60) {
      if (h.Has(s, u)) h.Cancel(s, u);
    } else if (op < 61) {
      h.DropSegment(s);
    } else {
      now += static_cast<TimeMs>(rng() % 400);
      if (rng() % 500 == 0) now += static_cast<TimeMs>(rng() % 100'000'000);  // a long pause
      // Sometimes in small chunks, as ProcessExpiries does with large ones.
      handed_out += h.Collect(now, rng() % 3 == 0 ? 1 + rng() % 50 : UINT64_MAX).size();
    }
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(handed_out, 1000u);
}

}  // namespace
}  // namespace segd::engine
