#include "engine/engine.h"

#include <random>
#include <set>
#include <string>

#include "engine/errors.h"
#include "engine/stable_hash.h"
#include "gtest/gtest.h"
#include "tests/testutil/recording_sink.h"

namespace segd::engine {
namespace {

using testutil::RecordingSink;

constexpr TimeMs kStart = 1'790'000'000'123;  // 2026-09-21T…, with a millisecond part

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : clock_(kStart), engine_(EngineOptions{&clock_, &sink_, 99}) {}

  void MustCreate(const std::string& name, std::optional<int64_t> ttl = std::nullopt) {
    SegmentSpec spec{.name = name, .ttl_seconds = ttl};
    ASSERT_TRUE(engine_.CreateSegment(spec).ok());
  }
  UserUpdateResult MustUpdate(const std::string& user, UserUpdate update) {
    auto r = engine_.UpdateUserSegments(user, update);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : UserUpdateResult{};
  }
  bool Member(const std::string& seg, const std::string& user) {
    auto m = engine_.Check(seg, user);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() && m->member;
  }

  ManualClock clock_;
  RecordingSink sink_;
  Engine engine_;
};

TEST_F(EngineTest, AddCheckRemove) {
  MustCreate("sport");
  MustCreate("music");
  auto r = MustUpdate("u1", {.add = {{"sport"}, {"music"}}});
  EXPECT_EQ(r.added, (std::vector<std::string>{"sport", "music"}));
  EXPECT_TRUE(Member("sport", "u1"));
  EXPECT_FALSE(Member("sport", "u2"));
  EXPECT_EQ(*engine_.Count("sport"), 1u);
  r = MustUpdate("u1", {.add = {{"sport"}}, .remove = {"music"}});
  EXPECT_EQ(r.updated, (std::vector<std::string>{"sport"}));
  EXPECT_EQ(r.removed, (std::vector<std::string>{"music"}));
  EXPECT_FALSE(Member("music", "u1"));
  // Removing a non-member is not an error and not listed.
  r = MustUpdate("u1", {.remove = {"music"}});
  EXPECT_TRUE(r.removed.empty());
  auto segs = engine_.UserSegments("u1");
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].segment, "sport");
  EXPECT_TRUE(engine_.UserSegments("nobody").empty());
  EXPECT_EQ(engine_.Stats().registered_users, 1u);
}

TEST_F(EngineTest, RejectsBadUpdatesWithoutApplyingAnything) {
  MustCreate("a");
  sink_.clear();
  auto r = engine_.UpdateUserSegments("u1", {.add = {{"a"}, {"nope"}}, .remove = {"gone"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ErrorCodeOf(r.status()), "segment_not_found");
  EXPECT_EQ(SegmentsOf(r.status()), (std::vector<std::string>{"nope", "gone"}));
  EXPECT_FALSE(Member("a", "u1"));
  EXPECT_FALSE(engine_.FindUser("u1").has_value());

  r = engine_.UpdateUserSegments("u1", {.add = {{"a"}}, .remove = {"a"}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "conflict_in_request");
  r = engine_.UpdateUserSegments("u1", {.add = {{"a"}, {"a"}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "conflict_in_request");
  r = engine_.UpdateUserSegments("u1", {.add = {{"a", 10, kStart + 99999}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  r = engine_.UpdateUserSegments("u1", {.add = {{"a", 0}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  r = engine_.UpdateUserSegments("u1", {.add = {{"a", std::nullopt, kStart}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  r = engine_.UpdateUserSegments("", {.add = {{"a"}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  r = engine_.UpdateUserSegments("u1", {.add = {{"bad name"}}});
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  EXPECT_TRUE(sink_.batches().empty());
  EXPECT_EQ(*engine_.Count("a"), 0u);
}

TEST_F(EngineTest, SinkFailureLeavesStateUnchanged) {
  MustCreate("a");
  MustUpdate("u1", {.add = {{"a"}}});
  sink_.set_fail(true);
  EXPECT_FALSE(engine_.UpdateUserSegments("u2", {.add = {{"a"}}}).ok());
  EXPECT_FALSE(engine_.UpdateUserSegments("u1", {.remove = {"a"}}).ok());
  EXPECT_FALSE(engine_.DeleteSegment("a").ok());
  EXPECT_FALSE(engine_.CreateSegment({.name = "b"}).ok());
  EXPECT_FALSE(engine_.DeleteUser("u1").ok());
  EXPECT_TRUE(Member("a", "u1"));
  EXPECT_FALSE(engine_.FindUser("u2").has_value());
  EXPECT_FALSE(engine_.GetSegment("b").ok());
  EXPECT_EQ(*engine_.Count("a"), 1u);
  sink_.set_fail(false);
  EXPECT_TRUE(engine_.UpdateUserSegments("u2", {.add = {{"a"}}}).ok());
  EXPECT_EQ(*engine_.Count("a"), 2u);
  EXPECT_EQ(engine_.FindUser("u2"), 1u);
}

TEST_F(EngineTest, TtlExpiryIsLoggedAtItsDueTime) {
  MustCreate("a");
  MustCreate("b", 60);  // default TTL
  MustUpdate("u1", {.add = {{"a", 10}, {"b"}}});
  auto m = engine_.Check("a", "u1");
  EXPECT_EQ(m->expires_at, kStart + 10000);
  EXPECT_EQ(engine_.Check("b", "u1")->expires_at, kStart + 60000);
  sink_.clear();
  clock_.Advance(9000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 0u);
  EXPECT_TRUE(Member("a", "u1"));
  clock_.Advance(2000);  // past kStart + 10 s, within one second
  EXPECT_EQ(*engine_.ProcessExpiries(), 1u);
  EXPECT_FALSE(Member("a", "u1"));
  auto records = sink_.records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].op, OpKind::kRemove);
  EXPECT_EQ(records[0].reason, OpReason::kTtlExpired);
  EXPECT_EQ(records[0].at, kStart + 10000);
  // Re-adding supersedes the old expiry; no TTL and a segment default → the default.
  MustUpdate("u1", {.add = {{"b", 3600}}});
  clock_.Advance(100'000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 0u);
  EXPECT_TRUE(Member("b", "u1"));
  MustUpdate("u1", {.add = {{"a"}}});  // no expiry at all
  clock_.Advance(10LL * 86400 * 1000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 1u);
  EXPECT_TRUE(Member("a", "u1"));
  EXPECT_FALSE(Member("b", "u1"));
  EXPECT_EQ(engine_.Stats().pending_expiries, 0u);
}

// After a long downtime everything due is expired in chunks: one sink batch (and one writer
// lock hold) per kMaxExpiryBatch records, in order of expiry, until nothing is due.
TEST_F(EngineTest, ExpiriesAreWrittenInChunks) {
  MustCreate("a", 60);
  const uint64_t n = 3 * Engine::kMaxExpiryBatch + 1000;
  std::vector<ImportItem> items(n);
  for (uint64_t i = 0; i < n; ++i) items[i].user_id = "user-" + std::to_string(i);
  ASSERT_TRUE(engine_.Import("a", items, std::nullopt).ok());
  clock_.Advance(1000);
  ASSERT_TRUE(engine_.Import("a", {{"late"}}, std::nullopt).ok());  // due a second later
  sink_.clear();
  clock_.Advance(3600 * 1000);
  EXPECT_EQ(*engine_.ProcessExpiries(), n + 1);
  std::vector<OpBatch> batches = sink_.batches();
  ASSERT_EQ(batches.size(), 4u);
  TimeMs last = 0;
  for (const OpBatch& b : batches) {
    EXPECT_LE(b.memberships.size(), Engine::kMaxExpiryBatch);
    for (const OpRecord& r : b.memberships) {
      EXPECT_GE(r.at, last);
      last = r.at;
    }
  }
  EXPECT_EQ(*engine_.Count("a"), 0u);
  EXPECT_EQ(engine_.Stats().pending_expiries, 0u);
}

TEST_F(EngineTest, ExpiryRetriedWhenSinkFails) {
  MustCreate("a");
  MustUpdate("u1", {.add = {{"a", 5}}});
  clock_.Advance(6000);
  sink_.set_fail(true);
  EXPECT_FALSE(engine_.ProcessExpiries().ok());
  EXPECT_TRUE(Member("a", "u1"));
  sink_.set_fail(false);
  clock_.Advance(1000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 1u);
  EXPECT_FALSE(Member("a", "u1"));
}

TEST_F(EngineTest, DeleteAndRestoreSegment) {
  MustCreate("a", 100);
  SegmentId id = engine_.GetSegment("a")->meta.id;
  for (int i = 0; i < 5; ++i) MustUpdate("u" + std::to_string(i), {.add = {{"a"}}});
  sink_.clear();
  clock_.Advance(1000);
  EXPECT_EQ(*engine_.DeleteSegment("a"), 5u);
  auto records = sink_.records();
  ASSERT_EQ(records.size(), 5u);
  for (const auto& r : records) EXPECT_EQ(r.reason, OpReason::kSegmentDeleted);
  EXPECT_EQ(ErrorCodeOf(engine_.Count("a").status()), "segment_not_found");
  EXPECT_EQ(ErrorCodeOf(engine_.DeleteSegment("a").status()), "segment_not_found");
  EXPECT_TRUE(engine_.GetSegment("a")->meta.deleted());
  EXPECT_TRUE(engine_.ListSegments(false).empty());
  EXPECT_EQ(engine_.ListSegments(true).size(), 1u);
  EXPECT_EQ(engine_.Stats().pending_expiries, 0u);
  // Restoring: same id, empty, new fields.
  auto restored = engine_.CreateSegment({.name = "a", .description = "again"});
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->meta.id, id);
  EXPECT_EQ(restored->user_count, 0u);
  EXPECT_FALSE(restored->meta.deleted());
  EXPECT_EQ(restored->meta.ttl_seconds, 0);
  EXPECT_EQ(restored->meta.created_at, kStart + 1000);
  EXPECT_EQ(ErrorCodeOf(engine_.CreateSegment({.name = "a"}).status()), "segment_exists");
  // Old expiries were cancelled: nothing fires later.
  clock_.Advance(200'000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 0u);
}

TEST_F(EngineTest, DeleteAndReRegisterUser) {
  MustCreate("a");
  MustCreate("b");
  MustUpdate("u1", {.add = {{"b", 30}, {"a"}}});
  auto left = engine_.DeleteUser("u1");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(Member("a", "u1"));
  EXPECT_EQ(ErrorCodeOf(engine_.DeleteUser("u1").status()), "user_not_found");
  EXPECT_EQ(ErrorCodeOf(engine_.DeleteUser("never").status()), "user_not_found");
  EXPECT_EQ(engine_.Stats().registered_users, 0u);
  EXPECT_EQ(engine_.Stats().pending_expiries, 0u);
  EXPECT_EQ(*engine_.RegisterUser("u1"), true);
  EXPECT_EQ(*engine_.RegisterUser("u1"), false);
  EXPECT_EQ(engine_.FindUser("u1"), 0u);  // the same internal id comes back
}

TEST_F(EngineTest, AutoPercentPicksExactCount) {
  for (int i = 0; i < 1001; ++i) ASSERT_TRUE(engine_.RegisterUser("u" + std::to_string(i)).ok());
  auto info = engine_.CreateSegment({.name = "p", .auto_percent = 30, .ttl_seconds = 50});
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->user_count, 300u);  // round-half-up(1001 * 0.3 = 300.3)
  info = engine_.CreateSegment({.name = "half", .auto_percent = 50});
  EXPECT_EQ(info->user_count, 501u);  // 500.5 rounds up
  EXPECT_EQ(engine_.CreateSegment({.name = "all", .auto_percent = 100})->user_count, 1001u);
  EXPECT_EQ(engine_.CreateSegment({.name = "none", .auto_percent = 0})->user_count, 0u);
  EXPECT_EQ(ErrorCodeOf(engine_.CreateSegment({.name = "x", .auto_percent = 101}).status()),
            "bad_request");
  // The default TTL applies to auto-percent members.
  clock_.Advance(51'000);
  EXPECT_EQ(*engine_.ProcessExpiries(), 300u);
  // Later users are not added to a non-sticky segment.
  ASSERT_TRUE(engine_.RegisterUser("late").ok());
  EXPECT_FALSE(Member("half", "late"));
}

TEST_F(EngineTest, AutoPercentIsUniform) {
  // Each user's chance to be picked is k/N: over many segments, counts per user concentrate.
  const int kUsers = 50;
  for (int i = 0; i < kUsers; ++i) ASSERT_TRUE(engine_.RegisterUser("u" + std::to_string(i)).ok());
  std::vector<int> picked(kUsers);
  const int kSegments = 400;
  for (int s = 0; s < kSegments; ++s) {
    std::string name = "s" + std::to_string(s);
    ASSERT_EQ(engine_.CreateSegment({.name = name, .auto_percent = 20})->user_count, 10u);
    for (int i = 0; i < kUsers; ++i) picked[i] += Member(name, "u" + std::to_string(i));
  }
  for (int i = 0; i < kUsers; ++i) {
    // Expected 80, sd ~8: 5 sd either way.
    EXPECT_GT(picked[i], 40) << i;
    EXPECT_LT(picked[i], 120) << i;
  }
}

TEST_F(EngineTest, StickyPercentFollowsTheHashForLaterUsers) {
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(engine_.RegisterUser("u" + std::to_string(i)).ok());
  ASSERT_TRUE(
      engine_.CreateSegment({.name = "roll", .auto_percent = 25, .auto_percent_sticky = true})
          .ok());
  for (int i = 0; i < 1000; ++i) {
    std::string user = "u" + std::to_string(i);
    if (i >= 500) {
      if (i % 3 == 0) {
        ASSERT_TRUE(engine_.RegisterUser(user).ok());
      } else if (i % 3 == 1) {
        MustCreate("other" + std::to_string(i));
        MustUpdate(user, {.add = {{"other" + std::to_string(i)}}});
      } else {
        ASSERT_TRUE(engine_.Import("roll", {ImportItem{user}}, std::nullopt).ok());
        continue;  // an explicit import adds it regardless of the hash
      }
    }
    EXPECT_EQ(Member("roll", user), StickyPercentDecision("roll", user, 25)) << user;
  }
}

// Ramping a sticky rollout against a model: up keeps everyone in and adds the users the new
// cut takes in (except those removed by hand, whom the old cut held too); down removes only
// the members the old cut took in; hand-added members stay throughout. Each ramp is one
// batch of auto_percent records.
TEST_F(EngineTest, RampingAStickyRolloutMovesOnlyTheUsersBetweenTheCuts) {
  constexpr int kUsers = 2000;
  auto name = [](int i) { return "u" + std::to_string(i); };
  for (int i = 0; i < kUsers; ++i) ASSERT_TRUE(engine_.RegisterUser(name(i)).ok());
  ASSERT_TRUE(
      engine_.CreateSegment({.name = "roll", .auto_percent = 10, .auto_percent_sticky = true})
          .ok());
  std::set<int> model;
  for (int i = 0; i < kUsers; ++i) {
    if (StickyPercentDecision("roll", name(i), 10)) model.insert(i);
  }
  // By hand: two users above a 60% cut added, two inside the first cut removed.
  std::vector<int> outside, inside;
  for (int i = 0; i < kUsers && outside.size() < 2; ++i) {
    if (!StickyPercentDecision("roll", name(i), 60)) outside.push_back(i);
  }
  for (int i : model) {
    if (inside.size() < 2) inside.push_back(i);
  }
  for (int i : outside) {
    MustUpdate(name(i), {.add = {{"roll"}}});
    model.insert(i);
  }
  for (int i : inside) {
    MustUpdate(name(i), {.remove = {"roll"}});
    model.erase(i);
  }
  double percent = 10;
  for (double next : {30.0, 40.0, 5.0, 60.0, 100.0, 20.0}) {
    if (next == 100) {
      // No cut up to here held them, so no ramp down removed them.
      for (int i : outside) EXPECT_TRUE(Member("roll", name(i))) << "added by hand, kept";
    }
    const size_t batches_before = sink_.batches().size();
    const double before = percent;
    auto info = engine_.UpdateSegment("roll", {.auto_percent = next});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->meta.auto_percent, next);
    size_t changed = 0;
    for (int i = 0; i < kUsers; ++i) {
      const bool in_old = StickyPercentDecision("roll", name(i), percent);
      const bool in_new = StickyPercentDecision("roll", name(i), next);
      if (next > percent && in_new && !in_old && !model.count(i)) {
        model.insert(i);
        ++changed;
      } else if (next < percent && in_old && !in_new && model.count(i)) {
        model.erase(i);
        ++changed;
      }
    }
    percent = next;
    for (int i = 0; i < kUsers; ++i) {
      ASSERT_EQ(Member("roll", name(i)), model.count(i) == 1) << name(i) << " at " << next;
    }
    EXPECT_EQ(engine_.Count("roll").value(), model.size());
    auto batches = sink_.batches();
    ASSERT_EQ(batches.size(), batches_before + 1) << "one batch per ramp";
    EXPECT_EQ(batches.back().memberships.size(), changed);
    const bool up = next > before;
    for (const OpRecord& r : batches.back().memberships) {
      EXPECT_EQ(r.reason, OpReason::kAutoPercent);
      EXPECT_EQ(r.op, up ? OpKind::kAdd : OpKind::kRemove) << "a ramp only adds or only removes";
    }
    EXPECT_GT(changed, 0u) << "a ramp to " << next << " should move someone";
  }
  // Users registering later follow the current percentage.
  for (int i = kUsers; i < kUsers + 300; ++i) {
    ASSERT_TRUE(engine_.RegisterUser(name(i)).ok());
    EXPECT_EQ(Member("roll", name(i)), StickyPercentDecision("roll", name(i), 20)) << name(i);
  }
  // A one-off sample, or a segment without a rollout, cannot be ramped.
  ASSERT_TRUE(engine_.CreateSegment({.name = "sample", .auto_percent = 10}).ok());
  MustCreate("plain");
  for (const char* segment : {"sample", "plain"}) {
    auto refused = engine_.UpdateSegment(segment, {.auto_percent = 50});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(ErrorCodeOf(refused.status()), "bad_request");
    EXPECT_NE(refused.status().message().find("sticky"), absl::string_view::npos);
  }
  EXPECT_EQ(ErrorCodeOf(engine_.UpdateSegment("roll", {.auto_percent = 101}).status()),
            "bad_request");
}

TEST_F(EngineTest, ImportCountsAddsUpdatesAndInvalidItems) {
  MustCreate("a");
  MustUpdate("old", {.add = {{"a"}}});
  std::vector<ImportItem> items = {{"n1"}, {"old"}, {""}, {"n1", 5}, {"n2", 0}, {"n3"}};
  auto r = engine_.Import("a", items, 100);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->added, 2u);    // n1, n3
  EXPECT_EQ(r->updated, 2u);  // old, n1 again
  ASSERT_EQ(r->invalid.size(), 2u);
  EXPECT_EQ(r->invalid[0].first, 2u);
  EXPECT_EQ(r->invalid[1].first, 4u);
  EXPECT_EQ(*engine_.Count("a"), 3u);
  EXPECT_EQ(engine_.Check("a", "n1")->expires_at, kStart + 5000);
  EXPECT_EQ(engine_.Check("a", "n3")->expires_at, kStart + 100000);
  EXPECT_EQ(ErrorCodeOf(engine_.Import("zz", items, std::nullopt).status()), "segment_not_found");
}

TEST_F(EngineTest, ListMembersPagesInFirstSeenOrder) {
  MustCreate("a");
  MustCreate("b");
  std::vector<std::string> want;
  for (int i = 0; i < 2500; ++i) {
    std::string user = "user" + std::to_string(i);
    if (i % 2) {
      MustUpdate(user, {.add = {{"a"}}});
      want.push_back(user);
    } else {
      MustUpdate(user, {.add = {{"b"}}});
    }
  }
  std::vector<std::string> got;
  std::optional<std::string> after;
  for (int page = 0; page < 10; ++page) {
    auto p = engine_.ListMembers("a", 300, after);
    ASSERT_TRUE(p.ok()) << p.status();
    got.insert(got.end(), p->users.begin(), p->users.end());
    if (!p->next) break;
    after = *p->next;
  }
  EXPECT_EQ(got, want);
  // `after` may be a user that is not a member.
  auto p = engine_.ListMembers("a", 2, "user0");
  EXPECT_EQ(p->users, (std::vector<std::string>{"user1", "user3"}));
  EXPECT_EQ(ErrorCodeOf(engine_.ListMembers("a", 2, "ghost").status()), "bad_request");
  EXPECT_EQ(ErrorCodeOf(engine_.ListMembers("a", 0, std::nullopt).status()), "bad_request");
  EXPECT_EQ(ErrorCodeOf(engine_.ListMembers("a", 100001, std::nullopt).status()), "bad_request");
}

TEST_F(EngineTest, QueryCountsAndLists) {
  MustCreate("sport");
  MustCreate("music");
  MustCreate("churned");
  for (int i = 0; i < 100; ++i) {
    UserUpdate u;
    if (i % 2 == 0) u.add.push_back({"sport"});
    if (i % 3 == 0) u.add.push_back({"music"});
    if (i % 5 == 0) u.add.push_back({"churned"});
    if (u.add.empty()) {
      ASSERT_TRUE(engine_.RegisterUser("u" + std::to_string(i)).ok());
    } else {
      MustUpdate("u" + std::to_string(i), u);
    }
  }
  auto count = [&](int pred(int)) {
    uint64_t n = 0;
    for (int i = 0; i < 100; ++i) n += pred(i);
    return n;
  };
  auto r = engine_.Query("(sport OR music) AND NOT churned", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->user_count, count([](int i) { return int((i % 2 == 0 || i % 3 == 0) && i % 5); }));
  EXPECT_EQ(r->users, (std::vector<std::string>{"u2", "u3", "u4", "u6", "u8"}));
  EXPECT_EQ(engine_.Query("NOT sport", 0)->user_count, 50u);
  EXPECT_EQ(engine_.Query("sport XOR music", 0)->user_count,
            count([](int i) { return int((i % 2 == 0) != (i % 3 == 0)); }));
  auto bad = engine_.Query("sport AND", 0);
  EXPECT_EQ(PositionOf(bad.status()), 9u);
  auto missing = engine_.Query("sport OR nope", 0);
  EXPECT_EQ(ErrorCodeOf(missing.status()), "segment_not_found");
  EXPECT_EQ(SegmentsOf(missing.status()), (std::vector<std::string>{"nope"}));
}

// CheckMany batches its lookups by dictionary shard and by membership shard: over users that
// span several membership shards, it must answer exactly as one Check per pair.
TEST_F(EngineTest, CheckManyMatchesSingleChecksAcrossShards) {
  const int kUsers = 150000;  // three membership shards of 65,536 users
  std::vector<std::string> segments = {"a", "b", "c", "gone"};
  std::mt19937_64 rng(17);
  for (const std::string& name : segments) {
    MustCreate(name);
    std::vector<ImportItem> items;
    for (int u = 0; u < kUsers; ++u) {
      if (rng() % 3 == 0) items.push_back({"user-" + std::to_string(u)});
    }
    ASSERT_TRUE(engine_.Import(name, items, std::nullopt).ok());
  }
  ASSERT_TRUE(engine_.DeleteSegment("gone").ok());
  std::vector<std::string> segment_names = {"a", "b", "c", "gone", "never"};
  std::vector<std::string> user_names;
  for (int i = 0; i < 5000; ++i) {
    user_names.push_back(i % 10 == 0 ? "stranger-" + std::to_string(i)
                                     : "user-" + std::to_string(rng() % kUsers));
  }
  std::vector<std::pair<absl::string_view, absl::string_view>> checks;
  for (int i = 0; i < 5000; ++i) {
    checks.emplace_back(segment_names[rng() % segment_names.size()], user_names[i]);
  }
  std::vector<bool> batched = engine_.CheckMany(checks);
  ASSERT_EQ(batched.size(), checks.size());
  int members = 0;
  for (size_t i = 0; i < checks.size(); ++i) {
    auto single = engine_.Check(checks[i].first, checks[i].second);
    bool expected = single.ok() && single->member;
    ASSERT_EQ(batched[i], expected) << checks[i].first << " " << checks[i].second;
    members += expected;
  }
  EXPECT_GT(members, 500);  // the test does exercise hits
  EXPECT_TRUE(engine_.CheckMany({}).empty());
}

TEST_F(EngineTest, CheckManyAndUnknowns) {
  MustCreate("a");
  MustUpdate("u1", {.add = {{"a"}}});
  std::vector<std::pair<absl::string_view, absl::string_view>> checks = {
      {"a", "u1"}, {"a", "u2"}, {"nope", "u1"}, {"a", "u1"}};
  EXPECT_EQ(engine_.CheckMany(checks), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(ErrorCodeOf(engine_.Check("nope", "u1").status()), "segment_not_found");
  EXPECT_FALSE(engine_.Check("a", "stranger")->member);
}

TEST_F(EngineTest, UpdateSegmentPatchesFields) {
  MustCreate("a", 10);
  auto r =
      engine_.UpdateSegment("a", {.description = "d", .ttl_seconds = std::optional<int64_t>()});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->meta.description, "d");
  EXPECT_EQ(r->meta.ttl_seconds, 0);
  EXPECT_EQ(
      engine_.UpdateSegment("a", {.ttl_seconds = std::optional<int64_t>(7)})->meta.ttl_seconds, 7);
  EXPECT_EQ(ErrorCodeOf(engine_.UpdateSegment("zz", {}).status()), "segment_not_found");
}

}  // namespace
}  // namespace segd::engine

namespace segd::engine {
namespace {

// RecoverUsers is ApplyRecovered of kCreated events, batched: the same names, ids and
// registry, also across a membership-shard boundary.
TEST(EngineRecoveryTest, RecoverUsersEqualsReplayingTheirCreation) {
  constexpr uint32_t kUsers = MembershipShards::kShardUsers + 1000;
  std::vector<std::string> names;
  OpBatch events;
  for (uint32_t u = 0; u < kUsers; ++u) {
    names.push_back("r" + std::to_string(u));
    events.users.push_back({UserEvent::Kind::kCreated, u, names.back()});
  }
  Engine batched(EngineOptions{nullptr, nullptr, 1});
  Engine replayed(EngineOptions{nullptr, nullptr, 1});
  ASSERT_TRUE(batched.RecoverUsers(0, absl::MakeConstSpan(names).subspan(0, 10)).ok());
  ASSERT_TRUE(batched.RecoverUsers(10, absl::MakeConstSpan(names).subspan(10)).ok());
  ASSERT_TRUE(replayed.ApplyRecovered(events).ok());
  EXPECT_EQ(batched.Stats().registered_users, kUsers);
  EXPECT_EQ(batched.Stats().registered_users, replayed.Stats().registered_users);
  for (uint32_t u : {0u, 9u, 10u, MembershipShards::kShardUsers - 1, MembershipShards::kShardUsers,
                     kUsers - 1}) {
    EXPECT_EQ(batched.FindUser(names[u]), u);
    EXPECT_EQ(batched.UserName(u), names[u]);
    EXPECT_FALSE(*batched.RegisterUser(names[u]));  // already registered
  }
  EXPECT_EQ(batched.RecoverUsers(5, {"late"}).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace segd::engine
