// Events, traits and rule segments in the durable log: the byte format, recovery of rule state
// and pending deadlines across a restart, and backfills read from the log.

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/errors.h"
#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "storage/oplog_format.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::EventInput;
using engine::ManualClock;
using engine::TimeMs;
using engine::rules::Value;

constexpr TimeMs kStart = 1'800'000'000'000;

TEST(OpLogFormat, EventsTraitsAndRuleSegmentsRoundTrip) {
  engine::Event e;
  e.seq = 42;
  e.user = 7;
  e.at = kStart + 123;
  e.type = "purchase";
  e.properties = {{"total", Value(12.5)}, {"count", Value(3.0)},
                  {"neg", Value(-7.0)},   {"big", Value(1e300)},
                  {"zero", Value(-0.0)},  {"ok", Value(true)},
                  {"no", Value(false)},   {"s", Value(std::string("caf\xc3\xa9"))}};
  const std::string bytes = EncodeEvent(e);
  auto back = DecodeEvent(42, bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, e);
  EXPECT_TRUE(std::signbit(std::get<double>(back->properties[4].value)));  // -0 stays -0
  int64_t at = 0;
  ASSERT_TRUE(EventTime(bytes, &at));
  EXPECT_EQ(at, e.at);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(DecodeEvent(42, bytes.substr(0, cut)).ok()) << cut;
  }
  EXPECT_FALSE(DecodeEvent(42, bytes + "x").ok());

  // A small event stays small: a page view with a URL is key + about 30 bytes.
  engine::Event view{1, 123456, kStart, "page_viewed", {{"url", Value(std::string("/a/b"))}}};
  EXPECT_LE(EncodeEvent(view).size(), 32u);

  engine::TraitChange t{9, "plan", Value(std::string("pro")), kStart};
  auto tb = DecodeTrait(TraitKey(9, "plan"), EncodeTrait(t));
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(*tb, t);
  engine::TraitChange removed{9, "plan", std::nullopt, kStart + 1};
  tb = DecodeTrait(TraitKey(9, "plan"), EncodeTrait(removed));
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(*tb, removed);
  EXPECT_FALSE(DecodeTrait("abc", EncodeTrait(t)).ok());

  engine::SegmentMeta plain{3, "plain", "d", kStart, 0, -1, false, 0};
  engine::SegmentMeta ruled = plain;
  ruled.rule = "did(purchase, 30d)";
  ruled.pending_rule = "did(purchase, 7d)";
  ruled.rule_ready = true;
  for (const auto& m : {plain, ruled}) {
    auto mb = DecodeSegment(3, EncodeSegment(m));
    ASSERT_TRUE(mb.ok());
    EXPECT_EQ(*mb, m);
  }
  RulesMeta rm{77, kStart};
  auto rmb = DecodeRulesMeta(EncodeRulesMeta(rm));
  ASSERT_TRUE(rmb.ok());
  EXPECT_EQ(rmb->next_event_seq, 77u);
  EXPECT_EQ(rmb->rules_through, kStart);
}

// An engine over a log in `dir`, recovered from it.
struct Node {
  Node(const std::string& dir, ManualClock* clock, TimeMs retention = 3600 * 1000,
       const engine::EventSource* events = nullptr) {
    OpLogOptions options;
    options.clock = clock;
    options.event_retention_ms = retention;
    auto opened = OpLog::Open(dir, options);
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      std::abort();
    }
    log = *std::move(opened);
    EngineOptions e;
    e.clock = clock;
    e.sink = log.get();
    e.events = events ? events : log.get();
    e.event_retention_ms = retention;
    engine = std::make_unique<Engine>(e);
    auto stats = log->Recover(*engine);
    if (!stats.ok()) {
      ADD_FAILURE() << stats.status();
      std::abort();
    }
    recovered = *stats;
  }
  bool Member(const std::string& segment, const std::string& user) {
    auto m = engine->Check(segment, user);
    return m.ok() && m->member;
  }
  std::unique_ptr<OpLog> log;
  std::unique_ptr<Engine> engine;
  RecoveryStats recovered;
};

EventInput Ev(std::string user, std::string type, std::optional<TimeMs> at = std::nullopt) {
  EventInput e;
  e.user_id = std::move(user);
  e.type = std::move(type);
  e.at = at;
  return e;
}

TEST(OpLogRules, DeadlinesThatFellDueWhileDownAreLoggedAtTheirMoment) {
  testutil::TempDir dir;
  ManualClock clock(kStart);
  {
    Node node(dir.path(), &clock);
    ASSERT_TRUE(node.engine->CreateSegment({.name = "recent", .rule = "did(purchase, 10s)"}).ok());
    ASSERT_TRUE(
        node.engine->CreateSegment({.name = "lapsed", .rule = "NOT did(purchase, 10s)"}).ok());
    ASSERT_TRUE(node.engine->RunBackfills().ok());
    ASSERT_TRUE(node.engine->Ingest({Ev("u1", "purchase", kStart - 2000)}).ok());
    ASSERT_TRUE(node.engine->RegisterUser("u2").ok());
    EXPECT_TRUE(node.Member("recent", "u1"));
    EXPECT_FALSE(node.Member("lapsed", "u1"));
    EXPECT_TRUE(node.Member("lapsed", "u2"));
  }
  clock.Advance(60'000);  // down for a minute: u1's purchase left the window at kStart + 8s
  Node node(dir.path(), &clock);
  EXPECT_EQ(node.recovered.events, 1u);
  EXPECT_TRUE(node.Member("recent", "u1"));  // as logged, until the deadline is acted on
  auto changed = node.engine->ProcessRuleDeadlines();
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(*changed, 2u);
  EXPECT_FALSE(node.Member("recent", "u1"));
  EXPECT_TRUE(node.Member("lapsed", "u1"));
  std::vector<engine::OpRecord> rule_records;
  ASSERT_TRUE(node.log
                  ->ForEachRecord(1,
                                  [&](uint64_t, const engine::OpRecord& r) {
                                    if (r.reason == engine::OpReason::kRule && r.user == 0) {
                                      rule_records.push_back(r);
                                    }
                                    return true;
                                  })
                  .ok());
  ASSERT_EQ(rule_records.size(), 3u);  // entered recent; left recent and entered lapsed
  EXPECT_EQ(rule_records[1].at, kStart + 8000);
  EXPECT_EQ(rule_records[2].at, kStart + 8000);
  // And once more: nothing is logged twice after another restart.
  const uint64_t next = node.log->next_seq();
  node.log.reset();
  node.engine.reset();
  Node again(dir.path(), &clock);
  ASSERT_TRUE(again.engine->ProcessRuleDeadlines().ok());
  EXPECT_EQ(again.log->next_seq(), next);
  EXPECT_TRUE(again.Member("lapsed", "u1"));
}

TEST(OpLogRules, TraitsAndRulesSurviveARestartWithTheNewestValue) {
  testutil::TempDir dir;
  ManualClock clock(kStart);
  {
    Node node(dir.path(), &clock);
    ASSERT_TRUE(node.engine->CreateSegment({.name = "gold", .rule = "trait.tier = \"gold\""}).ok());
    ASSERT_TRUE(node.engine->RunBackfills().ok());
    ASSERT_TRUE(node.engine->PatchTraits("u1", {{"tier", Value(std::string("gold"))}}).ok());
    // An event carrying an older value does not overwrite the newer one, in memory or on disk.
    EventInput e = Ev("u1", "x", kStart - 5000);
    e.traits.push_back({"tier", Value(std::string("silver"))});
    e.traits.push_back({"age", Value(30.0)});
    ASSERT_TRUE(node.engine->Ingest({e}).ok());
    EXPECT_TRUE(node.Member("gold", "u1"));
    ASSERT_TRUE(node.engine->PatchTraits("u2", {{"tier", Value(std::string("gold"))}}).ok());
    ASSERT_TRUE(node.engine->PatchTraits("u2", {{"tier", std::nullopt}}).ok());
    EXPECT_FALSE(node.Member("gold", "u2"));
  }
  Node node(dir.path(), &clock);
  EXPECT_TRUE(node.Member("gold", "u1"));
  auto profile = node.engine->Profile("u1");
  ASSERT_TRUE(profile.ok());
  ASSERT_EQ(profile->traits.size(), 2u);
  EXPECT_EQ(profile->traits[0].first, "age");
  EXPECT_EQ(profile->traits[1].second, Value(std::string("gold")));
  auto u2 = node.engine->Profile("u2");
  ASSERT_TRUE(u2.ok());
  EXPECT_TRUE(u2->traits.empty());
  auto info = node.engine->GetSegment("gold");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->meta.rule, "trait.tier = \"gold\"");
  EXPECT_FALSE(info->backfilling);
}

// Forwards to the log, and ingests one more event the first time the scan is under way, as a
// request would while a backfill runs.
class IngestingSource final : public engine::EventSource {
 public:
  absl::Status ScanEvents(uint64_t from, uint64_t to,
                          absl::FunctionRef<bool(const engine::Event&)> fn) const override {
    return log->ScanEvents(from, to, [&](const engine::Event& e) {
      if (!injected && engine != nullptr) {
        injected = true;
        auto r = engine->Ingest({Ev("late", "view")});
        if (!r.ok() || r->accepted != 1) std::abort();
      }
      return fn(e);
    });
  }
  OpLog* log = nullptr;
  Engine* engine = nullptr;
  mutable bool injected = false;
};

TEST(OpLogRules, ABackfillReadsTheLogAndLosesNothingThatArrivesMeanwhile) {
  testutil::TempDir dir;
  ManualClock clock(kStart);
  IngestingSource source;
  Node node(dir.path(), &clock, 3600 * 1000, &source);
  source.log = node.log.get();
  std::vector<EventInput> before;
  for (int i = 0; i < 50; ++i) before.push_back(Ev("u" + std::to_string(i % 10), "view"));
  before.push_back(Ev("old", "view", kStart - 3600 * 1000 + 1));  // still retained
  ASSERT_TRUE(node.engine->Ingest(before).ok());
  ASSERT_TRUE(node.engine->CreateSegment({.name = "viewers", .rule = "count(view) >= 5"}).ok());
  auto info = node.engine->GetSegment("viewers");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->backfilling);
  EXPECT_EQ(node.engine->Count("viewers").value(), 0u);
  source.engine = node.engine.get();
  auto did = node.engine->RunBackfills();
  ASSERT_TRUE(did.ok()) << did.status();
  EXPECT_TRUE(*did);
  EXPECT_TRUE(source.injected);
  EXPECT_EQ(node.engine->Count("viewers").value(), 10u);  // u0 … u9, five views each
  info = node.engine->GetSegment("viewers");
  EXPECT_FALSE(info->backfilling);
  // The event that arrived mid-backfill counts: four more make "late" a member.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(node.engine->Ingest({Ev("late", "view")}).ok());
  EXPECT_TRUE(node.Member("viewers", "late"));
  // An edit keeps the old rule answering until its backfill is done, then logs differences.
  engine::SegmentPatch patch;
  patch.rule = "count(view) >= 6";
  ASSERT_TRUE(node.engine->UpdateSegment("viewers", patch).ok());
  info = node.engine->GetSegment("viewers");
  EXPECT_TRUE(info->backfilling);
  EXPECT_EQ(info->meta.pending_rule, "count(view) >= 6");
  EXPECT_EQ(node.engine->Count("viewers").value(), 11u);
  source.engine = nullptr;
  ASSERT_TRUE(node.engine->RunBackfills().ok());
  EXPECT_EQ(node.engine->Count("viewers").value(), 0u);
  ASSERT_TRUE(node.engine->Ingest({Ev("u1", "view")}).ok());
  EXPECT_TRUE(node.Member("viewers", "u1"));
  EXPECT_EQ(node.engine->GetSegment("viewers")->meta.rule, "count(view) >= 6");
}

TEST(OpLogRules, EventsPastTheRetentionAreNotReplayed) {
  testutil::TempDir dir;
  ManualClock clock(kStart);
  {
    Node node(dir.path(), &clock, 10'000);
    ASSERT_TRUE(node.engine->Ingest({Ev("u1", "view", kStart - 5000), Ev("u1", "view")}).ok());
    auto r = node.engine->Ingest({Ev("u1", "view", kStart - 10'000)});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->accepted, 0u);
    ASSERT_EQ(r->invalid.size(), 1u);
    EXPECT_NE(r->invalid[0].second.message().find("at_out_of_range"), std::string::npos);
  }
  clock.Advance(7000);  // the first event is now past the retention
  Node node(dir.path(), &clock, 10'000);
  EXPECT_EQ(node.recovered.events, 1u);
  ASSERT_TRUE(node.engine->CreateSegment({.name = "two", .rule = "count(view) >= 2"}).ok());
  ASSERT_TRUE(node.engine->CreateSegment({.name = "one", .rule = "count(view) >= 1"}).ok());
  ASSERT_TRUE(node.engine->RunBackfills().ok());
  EXPECT_FALSE(node.Member("two", "u1"));
  EXPECT_TRUE(node.Member("one", "u1"));
}

}  // namespace
}  // namespace segd::storage
