#include "engine/rules/rule_set.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "engine/errors.h"

namespace segd::engine::rules {

// ----------------------------------------------------------------------------- traits

const Value* FindTrait(const TraitMap& traits, absl::string_view key) {
  auto it = std::lower_bound(traits.begin(), traits.end(), key,
                             [](const Trait& t, absl::string_view k) { return t.key < k; });
  if (it == traits.end() || it->key != key || !it->value) return nullptr;
  return &*it->value;
}

bool ApplyTraitChange(TraitMap& traits, absl::string_view key, const std::optional<Value>& value,
                      TimeMs at) {
  auto it = std::lower_bound(traits.begin(), traits.end(), key,
                             [](const Trait& t, absl::string_view k) { return t.key < k; });
  if (it == traits.end() || it->key != key) {
    traits.insert(it, Trait{std::string(key), value, at});
    return value.has_value();
  }
  if (it->at > at) return false;  // a newer value stays
  const bool changed = it->value != value;
  it->value = value;
  it->at = at;
  return changed;
}

// ----------------------------------------------------------------------------- overlay

// The state as a batch being planned would leave it: aggregate states and traits copied on
// first change, memberships and registrations planned so far.
class RuleSet::Overlay {
 public:
  Overlay(const RuleSet& set, const MembershipView& view) : set_(set), view_(view) {}

  const AggregateState* Aggregate(AggregateId id, UserId user) const {
    if (auto it = aggregates_.find({id, user}); it != aggregates_.end()) return &it->second;
    const auto& states = set_.aggregates_[id].states;
    auto it = states.find(user);
    return it == states.end() ? nullptr : &it->second;
  }
  AggregateState& MutableAggregate(AggregateId id, UserId user) {
    auto [it, inserted] = aggregates_.try_emplace(std::make_pair(id, user));
    if (inserted) {
      const auto& states = set_.aggregates_[id].states;
      if (auto live = states.find(user); live != states.end()) it->second = live->second;
    }
    return it->second;
  }
  const TraitMap* Traits(UserId user) const {
    if (auto it = traits_.find(user); it != traits_.end()) return &it->second;
    auto it = set_.traits_.find(user);
    return it == set_.traits_.end() ? nullptr : &it->second;
  }
  TraitMap& MutableTraits(UserId user) {
    auto [it, inserted] = traits_.try_emplace(user);
    if (inserted) {
      if (auto live = set_.traits_.find(user); live != set_.traits_.end())
        it->second = live->second;
    }
    return it->second;
  }
  bool Member(SegmentId segment, UserId user) const {
    if (auto it = members_.find({segment, user}); it != members_.end()) return it->second;
    return view_.Member(segment, user);
  }
  void SetMember(SegmentId segment, UserId user, bool member) {
    members_[{segment, user}] = member;
  }
  bool Registered(UserId user) const {
    if (auto it = registered_.find(user); it != registered_.end()) return it->second;
    return view_.Registered(user);
  }
  void SetRegistered(UserId user, bool registered) { registered_[user] = registered; }
  void Seed(const OpBatch& batch) {
    for (const UserEvent& e : batch.users)
      SetRegistered(e.user, e.kind != UserEvent::Kind::kDeleted);
    for (const OpRecord& r : batch.memberships) SetMember(r.segment, r.user, r.op == OpKind::kAdd);
  }

 private:
  const RuleSet& set_;
  const MembershipView& view_;
  absl::flat_hash_map<std::pair<AggregateId, UserId>, AggregateState> aggregates_;
  absl::flat_hash_map<UserId, TraitMap> traits_;
  absl::flat_hash_map<std::pair<SegmentId, UserId>, bool> members_;
  absl::flat_hash_map<UserId, bool> registered_;
};

namespace {

// A MembershipView over an overlay-free state, for Evaluate.
bool EvalNode(const RuleNode& node, const absl::FunctionRef<bool(int)>& leaf) {
  switch (node.kind) {
    case RuleNode::Kind::kOr:
      for (const RuleNode& c : node.children) {
        if (EvalNode(c, leaf)) return true;
      }
      return false;
    case RuleNode::Kind::kAnd:
      for (const RuleNode& c : node.children) {
        if (!EvalNode(c, leaf)) return false;
      }
      return true;
    case RuleNode::Kind::kNot:
      return !EvalNode(node.children[0], leaf);
    case RuleNode::Kind::kLeaf:
      return leaf(node.leaf);
  }
  return false;
}

}  // namespace

// ----------------------------------------------------------------------------- rules

RuleSet::RuleSet(TimeMs retention_ms,
                 std::function<std::optional<SegmentId>(absl::string_view)> resolve)
    : retention_ms_(retention_ms), resolve_(std::move(resolve)) {}

RuleSet::~RuleSet() = default;

const CompiledRule* RuleSet::Active(SegmentId segment) const {
  auto it = slots_.find(segment);
  return it == slots_.end() ? nullptr : it->second.active.get();
}

const CompiledRule* RuleSet::Pending(SegmentId segment) const {
  auto it = slots_.find(segment);
  return it == slots_.end() ? nullptr : it->second.pending.get();
}

AggregateId RuleSet::Acquire(const AggregateSpec& spec) {
  for (AggregateId id = 0; id < aggregates_.size(); ++id) {
    Aggregate& a = aggregates_[id];
    if (a.refs > 0 && a.spec.SameValues(spec) && a.spec.capacity >= spec.capacity) {
      ++a.refs;
      return id;
    }
  }
  AggregateId id = 0;
  while (id < aggregates_.size() && aggregates_[id].refs > 0) ++id;
  if (id == aggregates_.size()) aggregates_.emplace_back();
  Aggregate& a = aggregates_[id];
  a.spec = spec;
  a.refs = 1;
  a.complete = false;
  a.states.clear();
  a.generation = ++generations_;
  a.cut = next_event_seq_;
  return id;
}

absl::StatusOr<std::unique_ptr<CompiledRule>> RuleSet::Compile(absl::string_view text) {
  // Limits were checked when the rule was accepted; a rule read back from the log compiles
  // even if the retention has shrunk since (its windows are then cut to the retention).
  RuleLimits lenient;
  lenient.max_window_ms = std::numeric_limits<TimeMs>::max() / 4;
  absl::StatusOr<ParsedRule> parsed = ParseRule(text, lenient);
  if (!parsed.ok()) return parsed.status();
  auto rule = std::make_unique<CompiledRule>();
  rule->text = std::string(text);
  rule->parsed = *std::move(parsed);
  for (const Leaf& leaf : rule->parsed.leaves) {
    AggregateId agg = kNoAggregate;
    SegmentId seg = 0;
    switch (leaf.kind) {
      case Leaf::Kind::kCount:
      case Leaf::Kind::kSum: {
        AggregateSpec spec;
        spec.kind = leaf.kind == Leaf::Kind::kCount ? AggregateSpec::Kind::kCount
                                                    : AggregateSpec::Kind::kSum;
        spec.events = leaf.events;
        spec.property = leaf.property;
        spec.window_ms =
            leaf.window_ms == 0 ? retention_ms_ : std::min(leaf.window_ms, retention_ms_);
        if (spec.kind == AggregateSpec::Kind::kCount) {
          // count cmp n is decided by min(count, floor(n) + 1).
          const double need = std::floor(std::max(leaf.number, 0.0)) + 1;
          spec.capacity = static_cast<uint32_t>(std::min(need, kMaxCountThreshold + 1));
        }
        agg = Acquire(spec);
        if (std::find(rule->aggregates.begin(), rule->aggregates.end(), agg) ==
            rule->aggregates.end()) {
          rule->aggregates.push_back(agg);
        }
        break;
      }
      case Leaf::Kind::kTraitCmp:
      case Leaf::Kind::kTraitIn:
      case Leaf::Kind::kHasTrait:
        rule->reads_traits = true;
        break;
      case Leaf::Kind::kInSegment: {
        std::optional<SegmentId> id = resolve_(leaf.segment);
        if (!id) {
          Release(rule);
          return SegmentNotFound({leaf.segment});
        }
        seg = *id;
        if (std::find(rule->references.begin(), rule->references.end(), seg) ==
            rule->references.end()) {
          rule->references.push_back(seg);
        }
        break;
      }
    }
    rule->leaf_aggregate.push_back(agg);
    rule->leaf_segment.push_back(seg);
  }
  return rule;
}

void RuleSet::Release(std::unique_ptr<CompiledRule>& rule) {
  if (rule == nullptr) return;
  for (AggregateId id : rule->leaf_aggregate) {
    if (id == kNoAggregate) continue;
    Aggregate& a = aggregates_[id];
    if (--a.refs > 0) continue;
    for (auto& [user, state] : a.states) {
      if (state.deadline != 0) deadlines_.erase({state.deadline, user, id});
    }
    a.states.clear();
    a.states.rehash(0);
  }
  rule.reset();
}

absl::Status RuleSet::Sync(const SegmentMeta& meta, uint64_t next_event_seq) {
  next_event_seq_ = next_event_seq;
  auto found = slots_.find(meta.id);
  if (meta.deleted() || meta.rule.empty()) {
    if (found == slots_.end()) return absl::OkStatus();
    Release(found->second.active);
    Release(found->second.pending);
    slots_.erase(found);
    RebuildIndexes();
    return absl::OkStatus();
  }
  const std::string& want_active = meta.rule_ready ? meta.rule : std::string();
  const std::string& want_pending = meta.rule_ready ? meta.pending_rule : meta.rule;
  Slot& slot = slots_[meta.id];
  const std::string have_active = slot.active ? slot.active->text : std::string();
  const std::string have_pending = slot.pending ? slot.pending->text : std::string();
  if (have_active != want_active) {
    Release(slot.active);
    if (!want_active.empty()) {
      if (slot.pending && slot.pending->text == want_active) {
        slot.active = std::move(slot.pending);
      } else {
        absl::StatusOr<std::unique_ptr<CompiledRule>> rule = Compile(want_active);
        if (!rule.ok()) return rule.status();
        slot.active = *std::move(rule);
      }
    }
  }
  const std::string now_pending = slot.pending ? slot.pending->text : std::string();
  if (now_pending != want_pending ||
      (have_pending != want_pending && slot.pending == nullptr && !want_pending.empty())) {
    Release(slot.pending);
    if (!want_pending.empty()) {
      absl::StatusOr<std::unique_ptr<CompiledRule>> rule = Compile(want_pending);
      if (!rule.ok()) return rule.status();
      slot.pending = *std::move(rule);
      slot.generation = ++generations_;
    }
  }
  RebuildIndexes();
  return absl::OkStatus();
}

void RuleSet::RebuildIndexes() {
  active_count_ = 0;
  aggregates_by_type_.clear();
  rules_by_aggregate_.clear();
  dependents_.clear();
  level_.clear();
  trait_rules_.clear();
  all_rules_.clear();
  for (AggregateId id = 0; id < aggregates_.size(); ++id) {
    if (aggregates_[id].refs > 0)
      aggregates_by_type_[aggregates_[id].spec.events.type].push_back(id);
  }
  for (const auto& [segment, slot] : slots_) {
    if (slot.active == nullptr) continue;
    ++active_count_;
    all_rules_.push_back(segment);
    if (slot.active->reads_traits) trait_rules_.push_back(segment);
    for (AggregateId id : slot.active->aggregates) rules_by_aggregate_[id].push_back(segment);
    for (SegmentId ref : slot.active->references) dependents_[ref].push_back(segment);
  }
  // Levels: a rule comes after every rule segment it reads (rules form no cycle).
  std::function<int(SegmentId, int)> level = [&](SegmentId s, int depth) -> int {
    if (auto it = level_.find(s); it != level_.end()) return it->second;
    const CompiledRule* rule = Active(s);
    int l = 0;
    if (rule != nullptr && depth < 1000) {
      for (SegmentId ref : rule->references) l = std::max(l, level(ref, depth + 1) + 1);
    }
    level_[s] = l;
    return l;
  };
  for (SegmentId s : all_rules_) level(s, 0);
  auto by_level = [&](SegmentId a, SegmentId b) {
    return std::make_pair(level_[a], a) < std::make_pair(level_[b], b);
  };
  std::sort(all_rules_.begin(), all_rules_.end(), by_level);
  std::sort(trait_rules_.begin(), trait_rules_.end(), by_level);
}

bool RuleSet::WouldCycle(SegmentId segment, absl::Span<const SegmentId> references) const {
  std::vector<SegmentId> stack(references.begin(), references.end());
  absl::flat_hash_set<SegmentId> seen;
  while (!stack.empty()) {
    SegmentId s = stack.back();
    stack.pop_back();
    if (s == segment) return true;
    if (!seen.insert(s).second) continue;
    auto it = slots_.find(s);
    if (it == slots_.end()) continue;
    for (const auto* rule : {it->second.active.get(), it->second.pending.get()}) {
      if (rule != nullptr)
        stack.insert(stack.end(), rule->references.begin(), rule->references.end());
    }
  }
  return false;
}

absl::StatusOr<std::vector<SegmentId>> RuleSet::References(absl::string_view text) const {
  absl::StatusOr<ParsedRule> parsed = ParseRule(text, limits());
  if (!parsed.ok()) return parsed.status();
  std::vector<SegmentId> out;
  std::vector<std::string> unknown;
  for (const Leaf& leaf : parsed->leaves) {
    if (leaf.kind != Leaf::Kind::kInSegment) continue;
    std::optional<SegmentId> id = resolve_(leaf.segment);
    if (!id) {
      if (std::find(unknown.begin(), unknown.end(), leaf.segment) == unknown.end()) {
        unknown.push_back(leaf.segment);
      }
      continue;
    }
    if (std::find(out.begin(), out.end(), *id) == out.end()) out.push_back(*id);
  }
  if (!unknown.empty()) return SegmentNotFound(std::move(unknown));
  return out;
}

// ----------------------------------------------------------------------------- evaluation

bool RuleSet::Eval(const CompiledRule& rule, UserId user, TimeMs t, const Overlay& ov) const {
  return EvalNode(rule.parsed.root, [&](int index) {
    const Leaf& leaf = rule.parsed.leaves[static_cast<size_t>(index)];
    switch (leaf.kind) {
      case Leaf::Kind::kCount:
      case Leaf::Kind::kSum: {
        const AggregateId id = rule.leaf_aggregate[static_cast<size_t>(index)];
        const AggregateState* state = ov.Aggregate(id, user);
        const double v = state == nullptr ? 0 : ValueAt(aggregates_[id].spec, *state, t);
        return CompareNumbers(v, leaf.cmp, leaf.number);
      }
      case Leaf::Kind::kTraitCmp:
      case Leaf::Kind::kTraitIn:
      case Leaf::Kind::kHasTrait: {
        const TraitMap* traits = ov.Traits(user);
        const Value* v = traits == nullptr ? nullptr : FindTrait(*traits, leaf.key);
        if (v == nullptr) return false;
        if (leaf.kind == Leaf::Kind::kHasTrait) return true;
        if (leaf.kind == Leaf::Kind::kTraitCmp) return CompareValues(*v, leaf.cmp, leaf.literal);
        for (const Value& x : leaf.in) {
          if (CompareValues(*v, Cmp::kEq, x)) return true;
        }
        return false;
      }
      case Leaf::Kind::kInSegment:
        return ov.Member(rule.leaf_segment[static_cast<size_t>(index)], user);
    }
    return false;
  });
}

bool RuleSet::Evaluate(const CompiledRule& rule, UserId user, TimeMs t,
                       const MembershipView& view) const {
  Overlay ov(*this, view);
  return Eval(rule, user, t, ov);
}

void RuleSet::PlanUser(UserId user, std::vector<SegmentId> work, TimeMs t, OpBatch& batch,
                       Overlay& ov) const {
  auto level_of = [&](SegmentId s) {
    auto it = level_.find(s);
    return it == level_.end() ? 0 : it->second;
  };
  // A user with many events in one batch touches the same rules many times.
  std::sort(work.begin(), work.end());
  work.erase(std::unique(work.begin(), work.end()), work.end());
  absl::flat_hash_set<SegmentId> done;
  while (!work.empty()) {
    auto best = std::min_element(work.begin(), work.end(), [&](SegmentId a, SegmentId b) {
      return std::make_pair(level_of(a), a) < std::make_pair(level_of(b), b);
    });
    const SegmentId s = *best;
    work.erase(best);
    if (!done.insert(s).second) continue;
    const CompiledRule* rule = Active(s);
    if (rule == nullptr) continue;
    const bool want = Eval(*rule, user, t, ov);
    if (want == ov.Member(s, user)) continue;
    batch.memberships.push_back(
        {t, kNoExpiry, user, s, want ? OpKind::kAdd : OpKind::kRemove, OpReason::kRule});
    ov.SetMember(s, user, want);
    if (auto it = dependents_.find(s); it != dependents_.end()) {
      for (SegmentId d : it->second) {
        done.erase(d);  // re-evaluate even if done: it reads what just changed
        work.push_back(d);
      }
    }
  }
}

void RuleSet::PlanEffects(OpBatch& batch, TimeMs now, const MembershipView& view) const {
  if (active_count_ == 0 && aggregates_by_type_.empty()) return;
  Overlay ov(*this, view);
  ov.Seed(batch);
  absl::flat_hash_map<UserId, std::vector<SegmentId>> work;
  std::vector<UserId> order;
  auto touch = [&](UserId user, absl::Span<const SegmentId> rules) {
    if (rules.empty()) return;
    auto [it, inserted] = work.try_emplace(user);
    if (inserted) order.push_back(user);
    it->second.insert(it->second.end(), rules.begin(), rules.end());
  };
  const size_t planned = batch.memberships.size();
  for (size_t i = 0; i < planned; ++i) {
    const OpRecord& r = batch.memberships[i];
    if (auto it = dependents_.find(r.segment); it != dependents_.end()) touch(r.user, it->second);
  }
  for (const UserEvent& e : batch.users) {
    if (e.kind != UserEvent::Kind::kDeleted) touch(e.user, all_rules_);
  }
  for (const Event& ev : batch.events) {
    auto it = aggregates_by_type_.find(ev.type);
    if (it == aggregates_by_type_.end()) continue;
    for (AggregateId id : it->second) {
      double amount;
      if (!aggregates_[id].spec.Matches(ev, &amount)) continue;
      InsertEvent(aggregates_[id].spec, ov.MutableAggregate(id, ev.user), ev.at, amount, through_);
      if (auto r = rules_by_aggregate_.find(id); r != rules_by_aggregate_.end()) {
        touch(ev.user, r->second);
      }
    }
  }
  for (const TraitChange& tc : batch.traits) {
    if (ApplyTraitChange(ov.MutableTraits(tc.user), tc.key, tc.value, tc.at)) {
      touch(tc.user, trait_rules_);
    }
  }
  // A merge joins the merged user's aggregate states into the survivor's, whose every rule is
  // then evaluated again.
  for (const UserMerge& m : batch.merges) {
    for (AggregateId id = 0; id < aggregates_.size(); ++id) {
      const auto& states = aggregates_[id].states;
      auto from = states.find(m.from);
      if (from == states.end()) continue;
      MergeEntries(aggregates_[id].spec, ov.MutableAggregate(id, m.into), from->second, through_);
    }
    touch(m.into, all_rules_);
  }
  for (UserId user : order) {
    if (!ov.Registered(user)) continue;
    PlanUser(user, std::move(work[user]), now, batch, ov);
  }
}

TimeMs RuleSet::PlanDeadlines(TimeMs upto, size_t max_records, OpBatch& batch,
                              const MembershipView& view) const {
  Overlay ov(*this, view);
  ov.Seed(batch);
  // The wheel's entries in order, merged with the next deadlines of entries acted on here
  // (which applying will schedule, and which may fall due before `upto` too).
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> later;
  auto it = deadlines_.begin();
  auto next_time = [&]() -> std::optional<TimeMs> {
    std::optional<TimeMs> t;
    if (it != deadlines_.end()) t = std::get<0>(*it);
    if (!later.empty() && (!t || std::get<0>(later.top()) < *t)) t = std::get<0>(later.top());
    return t;
  };
  absl::flat_hash_map<UserId, std::vector<SegmentId>> work;
  std::vector<UserId> order;
  while (true) {
    std::optional<TimeMs> t = next_time();
    if (!t || *t > upto) return upto;
    work.clear();
    order.clear();
    auto act = [&](const Deadline& d) {
      const auto [at, user, id] = d;
      const Aggregate& a = aggregates_[id];
      auto s = a.states.find(user);
      if (s == a.states.end()) return;
      if (TimeMs n = NextChange(a.spec, s->second, at); n != 0 && n <= upto) {
        later.push({n, user, id});
      }
      auto r = rules_by_aggregate_.find(id);
      if (r == rules_by_aggregate_.end()) return;
      auto [w, inserted] = work.try_emplace(user);
      if (inserted) order.push_back(user);
      w->second.insert(w->second.end(), r->second.begin(), r->second.end());
    };
    while (it != deadlines_.end() && std::get<0>(*it) == *t) act(*it++);
    while (!later.empty() && std::get<0>(later.top()) == *t) {
      Deadline d = later.top();
      later.pop();
      act(d);
    }
    for (UserId user : order) {
      if (ov.Registered(user)) PlanUser(user, std::move(work[user]), *t, batch, ov);
    }
    if (batch.memberships.size() >= max_records && *t < upto) return *t;
  }
}

std::vector<UserId> RuleSet::EvaluatePending(SegmentId segment, TimeMs now,
                                             absl::Span<const UserId> population,
                                             const MembershipView& view) const {
  std::vector<UserId> out;
  auto it = slots_.find(segment);
  if (it == slots_.end() || it->second.pending == nullptr) return out;
  Overlay ov(*this, view);
  for (UserId user : population) {
    if (Eval(*it->second.pending, user, now, ov)) out.push_back(user);
  }
  return out;
}

// ----------------------------------------------------------------------------- applying

void RuleSet::Reschedule(AggregateId id, UserId user, AggregateState& state) {
  const TimeMs next = NextChange(aggregates_[id].spec, state, through_);
  if (next == state.deadline) return;
  if (state.deadline != 0) deadlines_.erase({state.deadline, user, id});
  state.deadline = next;
  if (next != 0) deadlines_.insert({next, user, id});
}

void RuleSet::ApplyEvent(const Event& ev) {
  auto it = aggregates_by_type_.find(ev.type);
  if (it == aggregates_by_type_.end()) return;
  for (AggregateId id : it->second) {
    Aggregate& a = aggregates_[id];
    double amount;
    if (!a.spec.Matches(ev, &amount)) continue;
    InsertIntoState(id, ev.user, ev.at, amount);
  }
}

void RuleSet::ApplyMerge(UserId from, UserId into) {
  for (AggregateId id = 0; id < aggregates_.size(); ++id) {
    Aggregate& a = aggregates_[id];
    auto it = a.states.find(from);
    if (it == a.states.end()) continue;
    AggregateState moved = std::move(it->second);
    if (moved.deadline != 0) deadlines_.erase({moved.deadline, from, id});
    a.states.erase(it);
    AggregateState& state = a.states[into];
    MergeEntries(a.spec, state, moved, through_);
    if (state.entries.empty()) {
      if (state.deadline != 0) deadlines_.erase({state.deadline, into, id});
      a.states.erase(into);
    } else {
      Reschedule(id, into, state);
    }
  }
  traits_.erase(from);
}

void RuleSet::InsertIntoState(AggregateId id, UserId user, TimeMs at, double amount) {
  Aggregate& a = aggregates_[id];
  if (at <= through_ - a.spec.window_ms) return;
  AggregateState& state = a.states[user];
  if (bulk_) {
    // Appended unsorted; EndBulk sorts each state once. A count is tidied whenever it holds
    // far more than its capacity, so that memory stays bounded during a long replay.
    state.entries.push_back({at, amount});
    if (a.spec.kind == AggregateSpec::Kind::kSum) state.total += amount;
    if (a.spec.kind == AggregateSpec::Kind::kCount &&
        state.entries.size() > 2 * size_t{a.spec.capacity} + 64) {
      Tidy(a.spec, state);
    }
    return;
  }
  InsertEvent(a.spec, state, at, amount, through_);
  if (state.entries.empty()) {
    if (state.deadline != 0) deadlines_.erase({state.deadline, user, id});
    a.states.erase(user);
    return;
  }
  if (!bulk_) Reschedule(id, user, state);
}

void RuleSet::BeginBulk() { bulk_ = true; }

void RuleSet::Tidy(const AggregateSpec& spec, AggregateState& state) const {
  std::stable_sort(state.entries.begin(), state.entries.end(),
                   [](const AggregateEntry& x, const AggregateEntry& y) { return x.at < y.at; });
  Prune(spec, state, through_);
}

void RuleSet::EndBulk() {
  bulk_ = false;
  for (AggregateId id = 0; id < aggregates_.size(); ++id) {
    for (auto& [user, state] : aggregates_[id].states) {
      Tidy(aggregates_[id].spec, state);
      state.entries.shrink_to_fit();  // appending left up to half of it spare
      Reschedule(id, user, state);
    }
  }
}

void RuleSet::ApplyTrait(const TraitChange& change) {
  ApplyTraitChange(traits_[change.user], change.key, change.value, change.at);
}

void RuleSet::AdvanceThrough(TimeMs t) {
  while (!deadlines_.empty() && std::get<0>(*deadlines_.begin()) <= t) {
    const auto [at, user, id] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    Aggregate& a = aggregates_[id];
    auto s = a.states.find(user);
    if (s == a.states.end()) continue;
    AggregateState& state = s->second;
    state.deadline = 0;
    Prune(a.spec, state, at);
    if (state.entries.empty()) {
      a.states.erase(s);
      continue;
    }
    const TimeMs next = NextChange(a.spec, state, at);
    if (next != 0) {
      state.deadline = next;
      deadlines_.insert({next, user, id});
    }
  }
  through_ = std::max(through_, t);
}

// ----------------------------------------------------------------------------- backfill

std::optional<BackfillJob> RuleSet::NextBackfill() const {
  for (AggregateId id = 0; id < aggregates_.size(); ++id) {
    const Aggregate& a = aggregates_[id];
    if (a.refs == 0 || a.complete) continue;
    BackfillJob job;
    job.cut = a.cut;
    for (AggregateId other = id; other < aggregates_.size(); ++other) {
      const Aggregate& b = aggregates_[other];
      if (b.refs > 0 && !b.complete && b.cut == a.cut) {
        job.aggregates.push_back(other);
        job.generations.push_back(b.generation);
      }
    }
    return job;
  }
  return std::nullopt;
}

bool RuleSet::JobValid(const BackfillJob& job) const {
  for (size_t i = 0; i < job.aggregates.size(); ++i) {
    const Aggregate& a = aggregates_[job.aggregates[i]];
    if (a.refs > 0 && a.generation == job.generations[i]) return true;
  }
  return false;
}

void RuleSet::InsertBackfill(const BackfillJob& job, absl::Span<const Event> events) {
  for (size_t i = 0; i < job.aggregates.size(); ++i) {
    const AggregateId id = job.aggregates[i];
    Aggregate& a = aggregates_[id];
    if (a.refs == 0 || a.generation != job.generations[i]) continue;
    for (const Event& ev : events) {
      double amount;
      if (ev.seq < job.cut && a.spec.Matches(ev, &amount))
        InsertIntoState(id, ev.user, ev.at, amount);
    }
  }
}

void RuleSet::CompleteBackfill(const BackfillJob& job) {
  for (size_t i = 0; i < job.aggregates.size(); ++i) {
    Aggregate& a = aggregates_[job.aggregates[i]];
    if (a.refs > 0 && a.generation == job.generations[i]) a.complete = true;
  }
}

void RuleSet::MarkAllComplete() {
  for (Aggregate& a : aggregates_) a.complete = true;
}

std::vector<SegmentId> RuleSet::ReadyToSwap() const {
  std::vector<SegmentId> out;
  for (const auto& [segment, slot] : slots_) {
    if (slot.pending == nullptr) continue;
    bool complete = true;
    for (AggregateId id : slot.pending->aggregates) complete &= aggregates_[id].complete;
    if (complete) out.push_back(segment);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool RuleSet::PendingUses(SegmentId segment, const BackfillJob& job) const {
  const CompiledRule* rule = Pending(segment);
  if (rule == nullptr) return false;
  for (AggregateId id : rule->aggregates) {
    if (std::find(job.aggregates.begin(), job.aggregates.end(), id) != job.aggregates.end()) {
      return true;
    }
  }
  return false;
}

// ----------------------------------------------------------------------------- reads

const TraitMap* RuleSet::Traits(UserId user) const {
  auto it = traits_.find(user);
  return it == traits_.end() ? nullptr : &it->second;
}

RuleSet::Stats RuleSet::GetStats(bool walk) const {
  Stats s;
  s.rules = slots_.size();
  for (const Aggregate& a : aggregates_) {
    if (a.refs == 0) continue;
    ++s.aggregates;
    s.states += a.states.size();
    if (!walk) continue;
    s.bytes += a.states.capacity() * (sizeof(UserId) + sizeof(AggregateState) + 1);
    const AggregateId id = static_cast<AggregateId>(&a - aggregates_.data());
    for (const auto& [user, state] : a.states) {
      s.entries += state.entries.size();
      if (state.deadline != 0 && deadlines_.contains({state.deadline, user, id})) {
        ++s.scheduled_states;
      }
      // (An entry held inline is in sizeof(AggregateState) already.)
      if (state.entries.capacity() > 1) {
        s.bytes += state.entries.capacity() * sizeof(AggregateEntry);
      }
    }
  }
  s.deadlines = deadlines_.size();
  s.users_with_traits = traits_.size();
  if (!walk) return s;
  // A B-tree node holds its entries with little overhead; count 1.25x.
  s.bytes += deadlines_.size() * sizeof(Deadline) * 5 / 4;
  for (const auto& [user, traits] : traits_) {
    s.bytes += sizeof(UserId) + sizeof(TraitMap) + traits.capacity() * sizeof(Trait);
    for (const Trait& t : traits) s.bytes += t.key.capacity() > 15 ? t.key.capacity() : 0;
  }
  return s;
}

}  // namespace segd::engine::rules
