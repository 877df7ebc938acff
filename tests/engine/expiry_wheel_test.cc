#include "engine/expiry_wheel.h"

#include <map>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace segd::engine {
namespace {

// Drives a wheel against a model of (segment, user) -> due second, checking that every entry
// fires exactly at its due second (or at the first second processed after it, when scheduled in
// the past) and that cancelled ones never fire.
class WheelHarness {
 public:
  explicit WheelHarness(int64_t start) : wheel_(start) {}

  void Schedule(SegmentId s, UserId u, int64_t due) {
    ASSERT_FALSE(due_.count({s, u}));
    // Due at or before now: fires at the next second, by contract.
    due_[{s, u}] = std::max(due, wheel_.now() + 1);
    wheel_.Schedule(s, u, due);
  }
  void Cancel(SegmentId s, UserId u) {
    auto it = due_.find({s, u});
    ASSERT_NE(it, due_.end());
    wheel_.Cancel(s, u, it->second);
    due_.erase(it);
  }
  void AdvanceTo(int64_t to) {
    int64_t before = wheel_.now();
    wheel_.AdvanceTo(
        to,
        [&](SegmentId s, UserId u) {
          return due_.at({s, u});
        },
        [&](int64_t when, SegmentId s, Roaring users) {
          for (UserId u : users) {
            auto it = due_.find({s, u});
            ASSERT_NE(it, due_.end()) << "fired an entry that is not pending";
            EXPECT_EQ(when, it->second);
            EXPECT_GT(when, before);
            EXPECT_LE(when, to);
            due_.erase(it);
          }
        });
    for (const auto& [key, due] : due_) ASSERT_GT(due, to) << "entry left behind";
    ASSERT_EQ(wheel_.pending(), due_.size());
  }
  const std::map<std::pair<SegmentId, UserId>, int64_t>& due() const { return due_; }
  ExpiryWheel& wheel() { return wheel_; }

 private:
  ExpiryWheel wheel_;
  std::map<std::pair<SegmentId, UserId>, int64_t> due_;
};

TEST(ExpiryWheelTest, FiresAtTheDueSecond) {
  WheelHarness h(1000);
  h.Schedule(1, 7, 1001);
  h.Schedule(1, 8, 1300);          // level 1
  h.Schedule(2, 7, 1000 + 70000);  // level 2
  h.AdvanceTo(1000);
  EXPECT_EQ(h.due().size(), 3u);
  h.AdvanceTo(1001);
  EXPECT_EQ(h.due().size(), 2u);
  h.AdvanceTo(1299);
  h.AdvanceTo(1300);
  EXPECT_EQ(h.due().size(), 1u);
  h.AdvanceTo(2000000);
  EXPECT_TRUE(h.due().empty());
}

TEST(ExpiryWheelTest, PastDueFiresNextSecond) {
  WheelHarness h(5000);
  h.Schedule(3, 1, 10);
  h.AdvanceTo(5001);
  EXPECT_TRUE(h.due().empty());
}

TEST(ExpiryWheelTest, CancelAndCancelSegment) {
  WheelHarness h(0);
  h.Schedule(1, 1, 100);
  h.Schedule(1, 2, 100000);
  h.Schedule(2, 1, 100);
  h.Cancel(1, 1);
  h.AdvanceTo(50);
  h.Cancel(1, 2);
  h.AdvanceTo(200000);
  EXPECT_TRUE(h.due().empty());
  ExpiryWheel w(0);
  for (UserId u = 0; u < 1000; ++u) w.Schedule(9, u, 1 + u * 977);
  w.Schedule(8, 1, 5);
  w.CancelSegment(9);
  EXPECT_EQ(w.pending(), 1u);
}

TEST(ExpiryWheelTest, RandomScheduleCancelAdvance) {
  std::mt19937_64 rng(42);
  int64_t start = 1'700'000'000;
  WheelHarness h(start);
  UserId next_user = 0;
  for (int round = 0; round < 400; ++round) {
    int adds = rng() % 200;
    for (int i = 0; i < adds; ++i) {
      // Mostly near, sometimes far (all levels), sometimes in the past.
      int64_t horizon = int64_t{1} << (rng() % 34);
      int64_t due =
          h.wheel().now() + static_cast<int64_t>(rng() % horizon) - (rng() % 10 == 0 ? 5 : 0);
      h.Schedule(rng() % 4, next_user++, std::max<int64_t>(due, 1));
    }
    int cancels = rng() % 30;
    for (int i = 0; i < cancels && !h.due().empty(); ++i) {
      auto it = h.due().begin();
      std::advance(it, rng() % h.due().size());
      auto key = it->first;
      h.Cancel(key.first, key.second);
    }
    int64_t step = (rng() % 4 == 0) ? static_cast<int64_t>(rng() % 5'000'000) : rng() % 300;
    h.AdvanceTo(h.wheel().now() + step);
  }
  h.AdvanceTo(ExpiryWheel::kMaxSecond);
  EXPECT_TRUE(h.due().empty());
}

}  // namespace
}  // namespace segd::engine
