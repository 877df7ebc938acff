#include "engine/rules/rule_parser.h"

#include <string>

#include "engine/errors.h"
#include "gtest/gtest.h"

namespace segd::engine::rules {
namespace {

constexpr TimeMs kDay = 24 * 3600 * 1000;

ParsedRule MustParse(const std::string& text) {
  absl::StatusOr<ParsedRule> r = ParseRule(text, RuleLimits{});
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  return r.ok() ? *std::move(r) : ParsedRule{};
}

// The error's position, or npos when the rule parsed.
size_t ErrorAt(const std::string& text, std::string* message = nullptr) {
  absl::StatusOr<ParsedRule> r = ParseRule(text, RuleLimits{});
  if (r.ok()) return std::string::npos;
  EXPECT_EQ(ErrorCodeOf(r.status()), "bad_request");
  if (message) *message = std::string(r.status().message());
  return PositionOf(r.status()).value_or(std::string::npos - 1);
}

TEST(RuleParser, UsersExamples) {
  ParsedRule a = MustParse(R"(trait.region = "California" AND NOT did(purchase, 30d))");
  ASSERT_EQ(a.leaves.size(), 2u);
  EXPECT_EQ(a.root.kind, RuleNode::Kind::kAnd);
  EXPECT_EQ(a.leaves[0].kind, Leaf::Kind::kTraitCmp);
  EXPECT_EQ(a.leaves[0].key, "region");
  EXPECT_EQ(a.leaves[0].literal, Value(std::string("California")));
  EXPECT_EQ(a.leaves[1].kind, Leaf::Kind::kCount);
  EXPECT_EQ(a.leaves[1].events.type, "purchase");
  EXPECT_EQ(a.leaves[1].window_ms, 30 * kDay);
  EXPECT_EQ(a.leaves[1].cmp, Cmp::kGe);
  EXPECT_EQ(a.leaves[1].number, 1);
  EXPECT_EQ(a.root.children[1].kind, RuleNode::Kind::kNot);

  ParsedRule b = MustParse(
      R"(trait.device_type = "mobile" AND count(page_viewed) >= 10 AND NOT did(page_viewed, 7d))");
  ASSERT_EQ(b.leaves.size(), 3u);
  EXPECT_EQ(b.root.children.size(), 3u);  // one AND node with three operands
  EXPECT_EQ(b.leaves[1].window_ms, 0);    // every retained event
  EXPECT_EQ(b.leaves[1].number, 10);

  ParsedRule c = MustParse("sum(purchase, properties.order_total, 30d) >= 100 OR in_segment(VIP)");
  EXPECT_EQ(c.root.kind, RuleNode::Kind::kOr);
  EXPECT_EQ(c.leaves[0].kind, Leaf::Kind::kSum);
  EXPECT_EQ(c.leaves[0].property, "order_total");
  EXPECT_EQ(c.leaves[1].kind, Leaf::Kind::kInSegment);
  EXPECT_EQ(c.leaves[1].segment, "VIP");
}

TEST(RuleParser, WhereInHasTraitAndLiterals) {
  ParsedRule r = MustParse(
      R"(count(page_viewed WHERE properties.url = "/a \"b\"" AND properties.ms < -1.5e3, 90s) != 2)"
      R"( AND trait.tier IN ("gold", 3, true) AND has_trait(email) AND trait.vip = false)");
  ASSERT_EQ(r.leaves.size(), 4u);
  const Leaf& count = r.leaves[0];
  ASSERT_EQ(count.events.where.size(), 2u);
  EXPECT_EQ(count.events.where[0].literal, Value(std::string("/a \"b\"")));
  EXPECT_EQ(count.events.where[1].cmp, Cmp::kLt);
  EXPECT_EQ(count.events.where[1].literal, Value(-1500.0));
  EXPECT_EQ(count.window_ms, 90000);
  EXPECT_EQ(count.cmp, Cmp::kNe);
  EXPECT_EQ(r.leaves[1].in.size(), 3u);
  EXPECT_EQ(r.leaves[1].in[2], Value(true));
  EXPECT_EQ(r.leaves[2].kind, Leaf::Kind::kHasTrait);
  EXPECT_EQ(r.leaves[3].literal, Value(false));
}

TEST(RuleParser, PrecedenceAndParentheses) {
  // AND binds tighter than OR; NOT tighter than AND.
  ParsedRule r = MustParse("has_trait(a) OR NOT has_trait(b) AND (has_trait(c) OR has_trait(d))");
  ASSERT_EQ(r.root.kind, RuleNode::Kind::kOr);
  ASSERT_EQ(r.root.children.size(), 2u);
  const RuleNode& right = r.root.children[1];
  ASSERT_EQ(right.kind, RuleNode::Kind::kAnd);
  EXPECT_EQ(right.children[0].kind, RuleNode::Kind::kNot);
  EXPECT_EQ(right.children[1].kind, RuleNode::Kind::kOr);
}

TEST(RuleParser, ErrorsCarryTheirBytePosition) {
  std::string m;
  EXPECT_EQ(ErrorAt("", &m), 0u);
  EXPECT_EQ(ErrorAt("did(purchase, 30d) and has_trait(x)", &m), 19u);
  EXPECT_NE(m.find("write AND"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt("count(purchase) >= \"ten\"", &m), 19u);
  EXPECT_NE(m.find("compare it with a number"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt("did(purchase, 30x)"), 14u);
  EXPECT_EQ(ErrorAt("did(purchase, 0s)"), 14u);
  EXPECT_EQ(ErrorAt("did(purchase, 91d)", &m), 14u);  // past the retention
  EXPECT_NE(m.find("retention"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt("did(purchase"), 12u);
  EXPECT_EQ(ErrorAt("(has_trait(a)"), 13u);
  EXPECT_EQ(ErrorAt("trait.vip < true"), 12u);
  EXPECT_EQ(ErrorAt("trait. = 1"), 6u);
  EXPECT_EQ(ErrorAt("trait.x = "), 10u);
  EXPECT_EQ(ErrorAt("trait.x = \"open"), 10u);
  EXPECT_EQ(ErrorAt("in_segment(-bad)"), 11u);
  EXPECT_EQ(ErrorAt("sum(purchase, 30d) > 1", &m), 14u);
  EXPECT_NE(m.find("properties.KEY"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt("properties.x = 1", &m), 0u);
  EXPECT_NE(m.find("inside count()"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt("count(purchase) >= 20000"), 19u);
  EXPECT_EQ(ErrorAt("trait.x = inf"), 10u);
  EXPECT_EQ(ErrorAt("has_trait(a) has_trait(b)"), 13u);
  EXPECT_EQ(ErrorAt("trait.x ! 1"), 8u);
  EXPECT_EQ(ErrorAt("count(pv WHERE properties.a = 1 OR properties.b = 2) > 1"), 32u);
}

TEST(RuleParser, LimitsAreEnforced) {
  std::string deep;
  for (int i = 0; i < kMaxRuleDepth + 5; ++i) deep += "NOT ";
  deep += "has_trait(a)";
  EXPECT_NE(ErrorAt(deep), std::string::npos);
  std::string many = "has_trait(a)";
  for (size_t i = 0; i < kMaxRuleLeaves; ++i) many += " OR has_trait(a)";
  std::string m;
  EXPECT_NE(ErrorAt(many, &m), std::string::npos);
  EXPECT_NE(m.find("at most"), std::string::npos) << m;
  EXPECT_EQ(ErrorAt(std::string(kMaxRuleBytes + 1, ' ')), kMaxRuleBytes);
}

TEST(RuleParser, WindowIsBoundedByTheRetentionGiven) {
  RuleLimits one_hour{3600 * 1000};
  EXPECT_TRUE(ParseRule("did(a, 60m)", one_hour).ok());
  EXPECT_FALSE(ParseRule("did(a, 61m)", one_hour).ok());
}

}  // namespace
}  // namespace segd::engine::rules
