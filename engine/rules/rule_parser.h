#pragma once

// The rule language of rule segments (docs/rules.md): parsing and type checking into a tree.
//
//   rule    := term ("OR" term)*        term := factor ("AND" factor)*
//   factor  := "NOT" factor | "(" rule ")" | leaf
//   leaf    := count "(" events ["," window] ")" cmp NUMBER
//            | sum "(" events "," properties.KEY ["," window] ")" cmp NUMBER
//            | did "(" events ["," window] ")"                    (count(…) >= 1)
//            | trait.KEY cmp literal | trait.KEY "IN" "(" literal ("," literal)* ")"
//            | has_trait "(" KEY ")" | in_segment "(" NAME ")"
//   events  := TYPE ["WHERE" properties.KEY cmp literal ("AND" properties.KEY cmp literal)*]
//   window  := INTEGER ("s" | "m" | "h" | "d"), from 1s to the event retention
//   cmp     := "=" | "!=" | "<" | "<=" | ">" | ">="
//   literal := '"' string '"' | NUMBER | "true" | "false"
// Keywords are upper case, function names lower case, as written above. Every error is
// bad_request with the 0-based byte offset of the fault (errors.h: PositionOf).
//
// Thread safety: ParsedRule is a plain value; ParseRule is reentrant.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/rules/value.h"
#include "engine/types.h"

namespace segd::engine::rules {

inline constexpr size_t kMaxRuleBytes = 16 * 1024;
inline constexpr int kMaxRuleDepth = 64;
inline constexpr size_t kMaxRuleLeaves = 256;
inline constexpr size_t kMaxWherePredicates = 16;
inline constexpr size_t kMaxInList = 256;
inline constexpr size_t kMaxKeyBytes = 128;
// count(…) compares with numbers up to this; a larger threshold would need that many event
// times per user, which is refused rather than kept approximately.
inline constexpr double kMaxCountThreshold = 10000;

// properties.KEY cmp literal.
struct Predicate {
  std::string key;
  Cmp cmp = Cmp::kEq;
  Value literal;
  friend bool operator==(const Predicate&, const Predicate&) = default;
};

// TYPE [WHERE …]: which events a count or sum reads.
struct EventFilter {
  std::string type;
  std::vector<Predicate> where;
  friend bool operator==(const EventFilter&, const EventFilter&) = default;
};

struct Leaf {
  enum class Kind : uint8_t { kCount, kSum, kTraitCmp, kTraitIn, kHasTrait, kInSegment };
  Kind kind = Kind::kCount;
  size_t position = 0;  // byte offset of the leaf in the source

  // kCount, kSum: the aggregate and how its value is compared.
  EventFilter events;
  std::string property;  // kSum: the property summed
  TimeMs window_ms = 0;  // 0: every retained event
  Cmp cmp = Cmp::kGe;    // also kTraitCmp
  double number = 0;     // kCount, kSum

  // kTraitCmp, kTraitIn, kHasTrait.
  std::string key;
  Value literal;          // kTraitCmp
  std::vector<Value> in;  // kTraitIn

  // kInSegment.
  std::string segment;
};

struct RuleNode {
  enum class Kind : uint8_t { kOr, kAnd, kNot, kLeaf };
  Kind kind = Kind::kLeaf;
  size_t position = 0;
  int leaf = -1;  // kLeaf: index into ParsedRule::leaves
  std::vector<RuleNode> children;
};

struct ParsedRule {
  RuleNode root;
  std::vector<Leaf> leaves;  // in source order
};

struct RuleLimits {
  // The longest window allowed: the event retention.
  TimeMs max_window_ms = TimeMs{90} * 24 * 3600 * 1000;
};

absl::StatusOr<ParsedRule> ParseRule(absl::string_view source, const RuleLimits& limits);

}  // namespace segd::engine::rules
