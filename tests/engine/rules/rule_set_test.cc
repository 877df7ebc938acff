#include "engine/rules/rule_set.h"

#include <map>
#include <set>
#include <string>

#include "engine/errors.h"
#include "gtest/gtest.h"

namespace segd::engine::rules {
namespace {

TEST(Traits, NewestAtWinsPerKey) {
  TraitMap traits;
  EXPECT_TRUE(ApplyTraitChange(traits, "plan", Value(std::string("pro")), 200));
  EXPECT_FALSE(ApplyTraitChange(traits, "plan", Value(std::string("free")), 100));  // older
  ASSERT_NE(FindTrait(traits, "plan"), nullptr);
  EXPECT_EQ(*FindTrait(traits, "plan"), Value(std::string("pro")));
  EXPECT_TRUE(ApplyTraitChange(traits, "plan", std::nullopt, 300));  // removed
  EXPECT_EQ(FindTrait(traits, "plan"), nullptr);
  // An older value arriving late does not bring a removed trait back.
  EXPECT_FALSE(ApplyTraitChange(traits, "plan", Value(1.0), 250));
  EXPECT_EQ(FindTrait(traits, "plan"), nullptr);
  EXPECT_TRUE(ApplyTraitChange(traits, "age", Value(31.0), 1));
  EXPECT_EQ(traits.front().key, "age");  // sorted by key
}

class FakeSegments : public MembershipView {
 public:
  bool Member(SegmentId s, UserId u) const override { return members.count({s, u}) > 0; }
  bool Registered(UserId) const override { return true; }
  std::set<std::pair<SegmentId, UserId>> members;
};

TEST(RuleSet, SharesAggregatesAndRefusesCycles) {
  std::map<std::string, SegmentId> ids = {{"a", 0}, {"b", 1}, {"c", 2}, {"plain", 3}};
  RuleSet set(90LL * 24 * 3600 * 1000, [&](absl::string_view name) -> std::optional<SegmentId> {
    auto it = ids.find(std::string(name));
    if (it == ids.end()) return std::nullopt;
    return it->second;
  });
  auto meta = [](SegmentId id, std::string rule) {
    SegmentMeta m;
    m.id = id;
    m.name = "s" + std::to_string(id);
    m.rule = std::move(rule);
    m.rule_ready = true;
    return m;
  };
  ASSERT_TRUE(set.Sync(meta(0, "count(view, 1h) >= 3 AND in_segment(plain)"), 1).ok());
  ASSERT_TRUE(set.Sync(meta(1, "count(view, 1h) >= 2 OR in_segment(a)"), 1).ok());
  EXPECT_EQ(set.GetStats().aggregates, 1u);  // capacity 4 answers >= 2 too
  ASSERT_TRUE(set.Sync(meta(2, "count(view, 2h) >= 2"), 1).ok());
  EXPECT_EQ(set.GetStats().aggregates, 2u);  // another window

  auto refs = set.References("in_segment(b)");
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(set.WouldCycle(0, *refs));   // a -> b -> a
  EXPECT_FALSE(set.WouldCycle(2, *refs));  // c -> b -> a -> plain
  EXPECT_EQ(ErrorCodeOf(set.References("in_segment(nope)").status()), "segment_not_found");

  // Deleting a rule releases what only it used.
  SegmentMeta gone = meta(2, "");
  ASSERT_TRUE(set.Sync(gone, 1).ok());
  EXPECT_EQ(set.GetStats().aggregates, 1u);

  // Real-time: the third view puts the user in a, which puts it in b through in_segment.
  FakeSegments segs;
  segs.members.insert({3, 7});  // user 7 is in `plain`
  OpBatch batch;
  for (TimeMs at : {1000, 2000, 3000}) {
    Event e;
    e.user = 7;
    e.type = "view";
    e.at = at;
    batch.events.push_back(e);
  }
  set.PlanEffects(batch, 3000, segs);
  ASSERT_EQ(batch.memberships.size(), 2u);
  // a first: b reads a, so it comes after it (b holds at two views already anyway).
  EXPECT_EQ(batch.memberships[0].segment, 0u);
  EXPECT_EQ(batch.memberships[1].segment, 1u);
  for (const OpRecord& r : batch.memberships) {
    EXPECT_EQ(r.op, OpKind::kAdd);
    EXPECT_EQ(r.reason, OpReason::kRule);
    EXPECT_EQ(r.at, 3000);
  }
}

}  // namespace
}  // namespace segd::engine::rules
