// libFuzzer target for the rule language: any bytes are parsed as a rule. A parse either fails
// with a bad_request whose position lies within the input, or yields a tree whose leaves all
// exist; a rule that parses also compiles and evaluates (with every segment name known).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/errors.h"
#include "engine/rules/rule_parser.h"
#include "engine/rules/rule_set.h"

namespace {

using segd::engine::SegmentId;
using segd::engine::UserId;
namespace rules = segd::engine::rules;

void CheckTree(const rules::RuleNode& node, const rules::ParsedRule& rule) {
  if (node.kind == rules::RuleNode::Kind::kLeaf) {
    if (node.leaf < 0 || static_cast<size_t>(node.leaf) >= rule.leaves.size()) std::abort();
    return;
  }
  if (node.children.empty()) std::abort();
  if (node.kind == rules::RuleNode::Kind::kNot && node.children.size() != 1) std::abort();
  for (const rules::RuleNode& child : node.children) CheckTree(child, rule);
}

class NoMembers final : public rules::MembershipView {
 public:
  bool Member(SegmentId, UserId) const override { return false; }
  bool Registered(UserId) const override { return true; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<rules::ParsedRule> parsed = rules::ParseRule(source, rules::RuleLimits{});
  if (!parsed.ok()) {
    if (segd::engine::ErrorCodeOf(parsed.status()) != "bad_request") std::abort();
    auto position = segd::engine::PositionOf(parsed.status());
    if (!position || *position > size) std::abort();
    return 0;
  }
  CheckTree(parsed->root, *parsed);
  rules::RuleSet set(rules::RuleLimits{}.max_window_ms,
                     [](absl::string_view) { return std::optional<SegmentId>(0); });
  segd::engine::SegmentMeta meta;
  meta.id = 1;
  meta.name = "fuzzed";
  meta.rule = std::string(source);
  meta.rule_ready = true;
  if (!set.Sync(meta, 1).ok()) std::abort();
  const rules::CompiledRule* rule = set.Active(1);
  if (rule == nullptr) std::abort();
  NoMembers view;
  (void)set.Evaluate(*rule, 0, 1'800'000'000'000, view);
  return 0;
}
