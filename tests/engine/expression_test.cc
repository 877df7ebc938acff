#include "engine/expression.h"

#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/errors.h"
#include "gtest/gtest.h"

namespace segd::engine {
namespace {

// Prints a tree fully parenthesised, to check structure and precedence.
std::string Show(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kSegment:
      return e.name;
    case Expr::Kind::kNot:
      return "(NOT " + Show(*e.left) + ")";
    case Expr::Kind::kAnd:
      return "(" + Show(*e.left) + " AND " + Show(*e.right) + ")";
    case Expr::Kind::kOr:
      return "(" + Show(*e.left) + " OR " + Show(*e.right) + ")";
    case Expr::Kind::kXor:
      return "(" + Show(*e.left) + " XOR " + Show(*e.right) + ")";
  }
  return "?";
}

std::string ParseShow(const std::string& src) {
  auto e = ParseExpression(src);
  EXPECT_TRUE(e.ok()) << src << ": " << e.status();
  return e.ok() ? Show(**e) : "";
}

TEST(ExpressionTest, Precedence) {
  EXPECT_EQ(ParseShow("a OR b AND c"), "(a OR (b AND c))");
  EXPECT_EQ(ParseShow("a XOR b OR c"), "((a XOR b) OR c)");
  EXPECT_EQ(ParseShow("a OR b XOR c"), "(a OR (b XOR c))");
  EXPECT_EQ(ParseShow("a AND b XOR c"), "((a AND b) XOR c)");
  EXPECT_EQ(ParseShow("NOT a AND b"), "((NOT a) AND b)");
  EXPECT_EQ(ParseShow("a AND NOT NOT b"), "(a AND (NOT (NOT b)))");
  EXPECT_EQ(ParseShow("(sport OR music) AND NOT churned"), "((sport OR music) AND (NOT churned))");
  EXPECT_EQ(ParseShow("a AND b AND c"), "((a AND b) AND c)");
}

TEST(ExpressionTest, NamesAndQuoting) {
  EXPECT_EQ(ParseShow("\"AND\" OR and"), "(AND OR and)");
  EXPECT_EQ(ParseShow("  x.y:z-1_2  "), "x.y:z-1_2");
  auto e = ParseExpression("a OR b AND a");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(SegmentNamesOf(**e), (std::vector<std::string>{"a", "b"}));
}

TEST(ExpressionTest, SyntaxErrorsCarryPosition) {
  struct Case {
    std::string src;
    size_t position;
  } cases[] = {
      {"", 0},      {"a AND", 5}, {"(a OR b", 7}, {"a b", 2},       {"a AND )", 6}, {"a $ b", 2},
      {"\"AND", 0}, {"\"\"", 0},  {"NOT", 3},     {"a OR OR b", 5}, {"(", 1},       {"\"a b\"", 2},
  };
  for (const Case& c : cases) {
    auto e = ParseExpression(c.src);
    ASSERT_FALSE(e.ok()) << c.src;
    EXPECT_EQ(ErrorCodeOf(e.status()), "bad_request");
    EXPECT_EQ(PositionOf(e.status()), c.position) << c.src << ": " << e.status();
  }
}

// Lower-case operators are segment names (a segment may be called "and"), so "a and b" fails;
// the error then says how to write it.
TEST(ExpressionTest, LowerCaseOperatorsGetAHint) {
  for (const auto& [src, word] :
       std::vector<std::pair<std::string, std::string>>{{"a and b", "AND"},
                                                        {"a or b", "OR"},
                                                        {"not a", "NOT"},
                                                        {"a Xor b", "XOR"},
                                                        {"a AND not b", "NOT"}}) {
    auto e = ParseExpression(src);
    ASSERT_FALSE(e.ok()) << src;
    EXPECT_NE(e.status().message().find("operators are upper case: write " + word),
              absl::string_view::npos)
        << src << ": " << e.status();
  }
  auto plain = ParseExpression("a b");
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().message().find("upper case"), absl::string_view::npos);
}

TEST(ExpressionTest, DepthAndSizeLimits) {
  std::string deep(kMaxExpressionDepth + 10, '(');
  deep += "a";
  deep += std::string(kMaxExpressionDepth + 10, ')');
  EXPECT_FALSE(ParseExpression(deep).ok());
  std::string nots;
  for (int i = 0; i < 100000; ++i) nots += "NOT ";
  EXPECT_FALSE(ParseExpression(nots + "a").ok());
}

// Random expressions evaluated with Roaring against std::set arithmetic.
TEST(ExpressionTest, EvaluateMatchesSetModel) {
  std::mt19937 rng(3);
  const int kLeaves = 4;
  const uint32_t kUniverse = 300;
  std::vector<std::set<uint32_t>> model(kLeaves);
  std::vector<Roaring> bitmaps(kLeaves);
  Roaring universe;
  for (uint32_t u = 0; u < kUniverse; ++u) universe.add(u);
  for (int i = 0; i < kLeaves; ++i) {
    for (uint32_t u = 0; u < kUniverse; ++u) {
      if (rng() % 3 == 0) {
        model[i].insert(u);
        bitmaps[i].add(u);
      }
    }
  }
  const char* names[] = {"a", "b", "c", "d"};
  std::function<std::string(int, std::set<uint32_t>*)> gen = [&](int depth,
                                                                 std::set<uint32_t>* out) {
    int pick = depth > 3 ? 0 : rng() % 5;
    if (pick == 0) {
      int i = rng() % kLeaves;
      *out = model[i];
      return std::string(names[i]);
    }
    std::set<uint32_t> l, r;
    std::string ls = gen(depth + 1, &l);
    if (pick == 1) {
      out->clear();
      for (uint32_t u = 0; u < kUniverse; ++u) {
        if (!l.count(u)) out->insert(u);
      }
      return "NOT (" + ls + ")";
    }
    std::string rs = gen(depth + 1, &r);
    out->clear();
    for (uint32_t u = 0; u < kUniverse; ++u) {
      bool a = l.count(u), b = r.count(u);
      bool in = pick == 2 ? (a && b) : pick == 3 ? (a || b) : (a != b);
      if (in) out->insert(u);
    }
    const char* op = pick == 2 ? " AND " : pick == 3 ? " OR " : " XOR ";
    return "(" + ls + ")" + op + "(" + rs + ")";
  };
  for (int trial = 0; trial < 500; ++trial) {
    std::set<uint32_t> want;
    std::string src = gen(0, &want);
    auto parsed = ParseExpression(src);
    ASSERT_TRUE(parsed.ok()) << src;
    std::vector<std::string> leaf_names = SegmentNamesOf(**parsed);
    CompiledExpr compiled(**parsed);
    auto leaf = [&](size_t i) -> const Roaring* { return &bitmaps[leaf_names[i][0] - 'a']; };
    Roaring got = compiled.Evaluate(leaf, universe);
    ASSERT_EQ(got.cardinality(), want.size()) << src;
    for (uint32_t u : want) ASSERT_TRUE(got.contains(u)) << src;
    ASSERT_EQ(compiled.Count(leaf, universe), want.size()) << src;
  }
}

TEST(ExpressionTest, MissingLeafIsEmpty) {
  auto parsed = ParseExpression("a OR NOT b");
  ASSERT_TRUE(parsed.ok());
  CompiledExpr compiled(**parsed);
  Roaring universe;
  universe.addRange(0, 10);
  auto leaf = [](size_t) -> const Roaring* { return nullptr; };
  EXPECT_EQ(compiled.Count(leaf, universe), 10u);
}

}  // namespace
}  // namespace segd::engine
