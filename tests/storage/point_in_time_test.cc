// Point-in-time answers (storage/point_in_time.h) against the engine's own state over time:
// after every step of a random workload the test keeps each membership with its expiry, which
// tells membership at any instant until the next step. Retention drops the early history, so
// answers also come from the first record after an instant and from the current state.

#include "storage/point_in_time.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using testutil::TempDir;

constexpr engine::TimeMs kStart = 1'800'000'000'000;

// Memberships after a step: (user, segment) -> expires_at.
using State = std::map<std::pair<std::string, std::string>, engine::TimeMs>;

struct Moment {
  engine::TimeMs at;  // the step's time; the state holds until the next step's
  State state;
};

bool MemberIn(const State& state, const std::string& user, const std::string& segment,
              engine::TimeMs t) {
  auto it = state.find({user, segment});
  return it != state.end() && (it->second == engine::kNoExpiry || it->second > t);
}

// counts_flush_ms: how often the per-minute counts are stored (0: every batch); reopen: the
// log is closed and opened again before the questions, so that the counts held in memory are
// recounted from the log.
void AnswersMatchTheStateAtEveryInstant(int64_t counts_flush_ms, bool reopen) {
  TempDir dir;
  ManualClock clock(kStart);
  const int64_t retention = 300'000;  // five minutes of a workload of about fifteen
  const OpLogOptions options{
      .retention_ms = retention, .clock = &clock, .counts_flush_ms = counts_flush_ms};
  auto log = OpLog::Open(dir.path(), options);
  ASSERT_TRUE(log.ok());
  auto engine_ptr = std::make_unique<Engine>(EngineOptions{&clock, log->get(), 1});
  Engine* e = engine_ptr.get();
  const std::vector<std::string> segs = {"s0", "s1", "s2"};
  std::vector<std::string> users;
  for (int i = 0; i < 20; ++i) users.push_back("u" + std::to_string(i));
  for (const auto& s : segs) ASSERT_TRUE(e->CreateSegment({.name = s}).ok());
  std::mt19937 rng(7);
  std::vector<Moment> moments;
  auto snapshot = [&] {
    Moment m{clock.NowMs(), {}};
    for (const auto& u : users) {
      for (const engine::UserSegment& us : e->UserSegments(u)) {
        m.state[{u, std::string(us.segment)}] = us.expires_at;
      }
    }
    moments.push_back(std::move(m));
  };
  snapshot();
  for (int step = 0; step < 600; ++step) {
    clock.Advance(1 + rng() % 3000);
    const std::string& user = users[rng() % users.size()];
    const std::string& seg = segs[rng() % segs.size()];
    const int op = rng() % 6;
    if (op < 3) {
      std::optional<int64_t> ttl;
      if (rng() % 2) ttl = 1 + rng() % 10;
      ASSERT_TRUE(e->UpdateUserSegments(user, {.add = {{seg, ttl}}}).ok());
    } else if (op < 5) {
      ASSERT_TRUE(e->UpdateUserSegments(user, {.remove = {seg}}).ok());
    } else {
      std::vector<engine::ImportItem> items;
      for (int k = 0; k < 5; ++k) items.push_back({users[rng() % users.size()]});
      ASSERT_TRUE(e->Import(seg, items, std::nullopt).ok());
    }
    ASSERT_TRUE(e->ProcessExpiries().ok());
    snapshot();
  }
  if (reopen) {
    engine_ptr.reset();
    log->reset();
    log = OpLog::Open(dir.path(), options);
    ASSERT_TRUE(log.ok()) << log.status();
    engine_ptr = std::make_unique<Engine>(EngineOptions{&clock, log->get(), 1});
    ASSERT_TRUE((*log)->Recover(*engine_ptr).ok());
    e = engine_ptr.get();
  }
  Engine& engine = *e;
  const engine::TimeMs now = clock.NowMs();
  const engine::TimeMs cutoff = (*log)->RetentionCutoff();
  ASSERT_GT(cutoff, kStart);

  auto current = [&](const std::string& user, const std::string& seg) {
    CurrentMembership c;
    auto check = engine.Check(seg, user);
    if (check.ok() && check->member) {
      c.member = true;
      c.expires_at = check->expires_at;
    }
    return c;
  };
  int asked = 0;
  for (size_t i = 0; i + 1 < moments.size(); ++i) {
    if (moments[i + 1].at <= cutoff) continue;
    for (int q = 0; q < 10; ++q) {
      const engine::TimeMs t = std::max(
          cutoff,
          moments[i].at + static_cast<engine::TimeMs>(rng() % (moments[i + 1].at - moments[i].at)));
      const std::string& user = users[rng() % users.size()];
      const std::string& seg = segs[rng() % segs.size()];
      auto got =
          MemberAt(**log, *engine.FindUser(user), *engine.FindSegment(seg), t, current(user, seg));
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(*got, MemberIn(moments[i].state, user, seg, t))
          << user << " in " << seg << " at +" << (t - kStart) << " ms";
      ++asked;
    }
  }
  EXPECT_GT(asked, 1000);
  auto before = MemberAt(**log, 0, 0, cutoff - 1, {});
  EXPECT_EQ(engine::ErrorCodeOf(before.status()), "before_retention");

  // Size series: counts at each step's end, and entries minus exits within each step.
  auto state_at = [&](engine::TimeMs t) -> const State& {
    size_t i = 0;
    while (i + 1 < moments.size() && moments[i + 1].at <= t) ++i;
    return moments[i].state;
  };
  auto size_at = [&](const std::string& seg, engine::TimeMs t) {
    uint64_t n = 0;
    for (const auto& u : users) n += MemberIn(state_at(t), u, seg, t);
    return n;
  };
  for (int q = 0; q < 30; ++q) {
    const std::string& seg = segs[rng() % segs.size()];
    const engine::TimeMs step = 1000 * (1 + rng() % 60);
    const engine::TimeMs from = cutoff + static_cast<engine::TimeMs>(rng() % (now - cutoff) / 2);
    const size_t points = static_cast<size_t>((now - from) / step);
    auto info = engine.GetSegment(seg);
    ASSERT_TRUE(info.ok());
    auto sizes =
        SizesOf(**log, *engine.FindSegment(seg), from, step, points, now, info->user_count);
    ASSERT_TRUE(sizes.ok()) << sizes.status();
    ASSERT_EQ(sizes->size(), points);
    uint64_t previous = size_at(seg, from - 1);
    for (size_t k = 0; k < points; ++k) {
      const SizePoint& p = (*sizes)[k];
      // The size "at" the step's end counts what happened before it: the state one ms earlier.
      EXPECT_EQ(p.user_count, size_at(seg, p.at - 1)) << seg << " point " << k;
      EXPECT_EQ(static_cast<int64_t>(p.entered) - static_cast<int64_t>(p.exited),
                static_cast<int64_t>(p.user_count) - static_cast<int64_t>(previous))
          << seg << " point " << k;
      previous = p.user_count;
    }
  }
}

TEST(PointInTimeTest, AnswersMatchTheStateAtEveryInstant) {
  AnswersMatchTheStateAtEveryInstant(/*counts_flush_ms=*/1000, /*reopen=*/false);
}

TEST(PointInTimeTest, StoredCountsAnswerTheSame) {
  AnswersMatchTheStateAtEveryInstant(/*counts_flush_ms=*/0, /*reopen=*/false);
}

TEST(PointInTimeTest, CountsHeldInMemoryAreRecountedAfterARestart) {
  AnswersMatchTheStateAtEveryInstant(/*counts_flush_ms=*/1000, /*reopen=*/true);
}

}  // namespace
}  // namespace segd::storage
