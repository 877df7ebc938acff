#include "engine/rules/aggregate.h"

#include <algorithm>
#include <random>
#include <vector>

#include "engine/op_record.h"
#include "gtest/gtest.h"

namespace segd::engine::rules {
namespace {

struct Brute {
  std::vector<AggregateEntry> events;
  double Value(const AggregateSpec& spec, TimeMs t) const {
    double v = 0;
    for (const AggregateEntry& e : events) {
      if (e.at <= t && e.at > t - spec.window_ms) v += e.amount;
    }
    if (spec.kind == AggregateSpec::Kind::kCount) v = std::min<double>(v, spec.capacity);
    return v;
  }
};

double Capped(const AggregateSpec& spec, double v) {
  return spec.kind == AggregateSpec::Kind::kCount ? std::min<double>(v, spec.capacity) : v;
}

// Random inserts (late, current, future) and advances of `through`, in random order; after
// each step the state answers like the full list of events at every moment that matters, and
// NextChange names a moment no later than the first change.
void RunModel(AggregateSpec spec, uint64_t seed) {
  std::mt19937_64 rng(seed);
  AggregateState state;
  Brute brute;
  TimeMs through = 1'000'000;
  const TimeMs w = spec.window_ms;
  for (int step = 0; step < 400; ++step) {
    if (rng() % 3 == 0) {
      through += static_cast<TimeMs>(rng() % (w / 2 + 1));
      Prune(spec, state, through);
    } else {
      const TimeMs at = through - 2 * w + static_cast<TimeMs>(rng() % (2 * w + 3000));
      const double amount = spec.kind == AggregateSpec::Kind::kCount
                                ? 1.0
                                : static_cast<double>(static_cast<int>(rng() % 21) - 5);
      InsertEvent(spec, state, at, amount, through);
      brute.events.push_back({at, amount});
    }
    ASSERT_TRUE(std::is_sorted(state.entries.begin(), state.entries.end(),
                               [](auto& a, auto& b) { return a.at < b.at; }));
    // Every moment at which the true value can change, after `through`.
    std::vector<TimeMs> moments = {through};
    for (const AggregateEntry& e : brute.events) {
      for (TimeMs m : {e.at, e.at + w}) {
        if (m > through) moments.push_back(m);
        if (m - 1 > through) moments.push_back(m - 1);
      }
    }
    std::sort(moments.begin(), moments.end());
    for (TimeMs m : moments) {
      ASSERT_EQ(Capped(spec, ValueAt(spec, state, m)), brute.Value(spec, m))
          << "step " << step << " t=" << m << " through=" << through;
    }
    const double start = brute.Value(spec, through);
    TimeMs first_change = 0;
    for (TimeMs m : moments) {
      if (m > through && brute.Value(spec, m) != start) {
        first_change = m;
        break;
      }
    }
    const TimeMs next = NextChange(spec, state, through);
    if (first_change != 0) {
      ASSERT_NE(next, 0) << "step " << step;
      ASSERT_LE(next, first_change) << "step " << step;
    }
    if (next != 0) {
      ASSERT_GT(next, through);
    }
  }
}

TEST(Aggregate, CountMatchesAllEventsWithSmallCapacity) {
  AggregateSpec spec;
  spec.kind = AggregateSpec::Kind::kCount;
  spec.window_ms = 10'000;
  for (uint32_t capacity : {1u, 3u, 10u}) {
    spec.capacity = capacity;
    for (uint64_t seed = 1; seed <= 5; ++seed) RunModel(spec, seed * 31 + capacity);
  }
}

TEST(Aggregate, SumMatchesAllEvents) {
  AggregateSpec spec;
  spec.kind = AggregateSpec::Kind::kSum;
  spec.window_ms = 7'000;
  for (uint64_t seed = 1; seed <= 5; ++seed) RunModel(spec, seed);
}

TEST(Aggregate, CountKeepsOnlyWhatCanMatter) {
  AggregateSpec spec;
  spec.kind = AggregateSpec::Kind::kCount;
  spec.window_ms = 1000;
  spec.capacity = 2;
  AggregateState state;
  for (TimeMs at = 100; at <= 500; at += 100) InsertEvent(spec, state, at, 1, 600);
  EXPECT_EQ(state.entries.size(), 2u);    // the newest two
  InsertEvent(spec, state, 900, 1, 600);  // in the future: kept besides
  EXPECT_EQ(state.entries.size(), 3u);
  InsertEvent(spec, state, 50, 1, 2000);          // out of every window from 2000 on
  EXPECT_EQ(NextChange(spec, state, 600), 900);   // the future event enters
  EXPECT_EQ(NextChange(spec, state, 900), 1400);  // the event at 400 leaves
}

TEST(Aggregate, MatchesTypeWhereAndSummedProperty) {
  AggregateSpec spec;
  spec.kind = AggregateSpec::Kind::kSum;
  spec.events.type = "purchase";
  spec.events.where.push_back({"country", Cmp::kEq, Value(std::string("US"))});
  spec.property = "total";
  Event e;
  e.type = "purchase";
  e.properties = {{"country", Value(std::string("US"))}, {"total", Value(12.5)}};
  double amount = 0;
  EXPECT_TRUE(spec.Matches(e, &amount));
  EXPECT_EQ(amount, 12.5);
  e.properties[1].value = Value(std::string("12.5"));  // a string is not summed
  EXPECT_FALSE(spec.Matches(e, &amount));
  e.properties = {{"total", Value(1.0)}};  // the WHERE property is missing
  EXPECT_FALSE(spec.Matches(e, &amount));
  e.type = "view";
  EXPECT_FALSE(spec.Matches(e, &amount));
}

// A merge (MergeEntries) leaves the state that inserting the merged user's entries one by one
// would: the same entries, the same values at every instant.
TEST(Aggregate, MergingStatesEqualsInsertingOneByOne) {
  std::mt19937_64 rng(5);
  for (auto kind : {AggregateSpec::Kind::kCount, AggregateSpec::Kind::kSum}) {
    for (int round = 0; round < 50; ++round) {
      AggregateSpec spec;
      spec.kind = kind;
      spec.window_ms = 1000 + static_cast<TimeMs>(rng() % 5000);
      spec.capacity = kind == AggregateSpec::Kind::kCount ? 1 + rng() % 20 : 0;
      const TimeMs through = 10'000;
      AggregateState a, b;
      for (int i = 0, n = static_cast<int>(rng() % 40); i < n; ++i) {
        InsertEvent(spec, a, static_cast<TimeMs>(rng() % 12'000), 1 + rng() % 5, through);
      }
      for (int i = 0, n = static_cast<int>(rng() % 40); i < n; ++i) {
        InsertEvent(spec, b, static_cast<TimeMs>(rng() % 12'000), 1 + rng() % 5, through);
      }
      AggregateState one_by_one = a;
      for (const AggregateEntry& e : b.entries) {
        InsertEvent(spec, one_by_one, e.at, e.amount, through);
      }
      AggregateState merged = a;
      MergeEntries(spec, merged, b, through);
      ASSERT_EQ(merged.entries.size(), one_by_one.entries.size()) << round;
      for (TimeMs t = through; t < 20'000; t += 250) {
        ASSERT_EQ(ValueAt(spec, merged, t), ValueAt(spec, one_by_one, t)) << round << " t " << t;
      }
    }
  }
}

}  // namespace
}  // namespace segd::engine::rules
