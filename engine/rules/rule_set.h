#pragma once

// RuleSet: the compiled rules of rule segments, the aggregates they read with each user's
// state, users' traits, and the wheel of deadlines at which an aggregate's value changes with
// no new event. The engine owns one; docs/rules.md describes the design.
//
// Rules and aggregates. Each rule segment has an answering rule (`active`, absent while a new
// rule segment is backfilled) and possibly a `pending` one being backfilled (an edit). A
// rule's count and sum leaves become aggregates shared by every rule with the same spec (a
// count shares one with a larger capacity). An aggregate created for a pending rule starts
// incomplete: it receives every event accepted from then on, and a backfill inserts the older
// events (InsertBackfill) until it is marked complete.
//
// Time. `through` is the time up to which every deadline has been acted on. Planning reads the
// state and appends records to a batch (PlanEffects, PlanDeadlines); applying changes it
// (ApplyEvent, ApplyTrait, AdvanceThrough), and does exactly what planning assumed.
//
// Thread safety: not thread-safe. The engine calls everything with its writer lock held, and
// reads the few counters it publishes (backfill progress) through atomics of its own.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/op_record.h"
#include "engine/rules/aggregate.h"
#include "engine/rules/rule_parser.h"
#include "engine/types.h"

namespace segd::engine::rules {

using AggregateId = uint32_t;
inline constexpr AggregateId kNoAggregate = ~AggregateId{0};

struct Trait {
  std::string key;
  std::optional<Value> value;  // nullopt: removed at `at`
  TimeMs at = 0;
};
using TraitMap = std::vector<Trait>;  // sorted by key

// Applies one change to a user's traits; the newest `at` wins per key (a tie goes to the
// change applied last). Returns whether the visible value changed.
bool ApplyTraitChange(TraitMap& traits, absl::string_view key, const std::optional<Value>& value,
                      TimeMs at);
const Value* FindTrait(const TraitMap& traits, absl::string_view key);

// What the engine answers for rule evaluation: memberships and registration, as planned so far.
class MembershipView {
 public:
  virtual ~MembershipView() = default;
  virtual bool Member(SegmentId segment, UserId user) const = 0;
  virtual bool Registered(UserId user) const = 0;
};

struct CompiledRule {
  std::string text;
  ParsedRule parsed;
  std::vector<AggregateId> leaf_aggregate;  // per leaf; kNoAggregate if not count or sum
  std::vector<SegmentId> leaf_segment;      // per leaf; for in_segment
  std::vector<SegmentId> references;        // distinct in_segment segments
  std::vector<AggregateId> aggregates;      // distinct
  bool reads_traits = false;
};

// Incomplete aggregates created at the same moment, to be filled with the events numbered
// below `cut` (those accepted before they existed).
struct BackfillJob {
  uint64_t cut = 0;
  std::vector<AggregateId> aggregates;
  std::vector<uint64_t> generations;  // per aggregate: a freed and reused id is skipped
};

class RuleSet {
 public:
  // `retention_ms`: the event retention, which is also the window of a count or sum that
  // leaves it out. `resolve`: the id of a segment name (active or deleted), for in_segment.
  RuleSet(TimeMs retention_ms, std::function<std::optional<SegmentId>(absl::string_view)> resolve);
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  TimeMs retention_ms() const { return retention_ms_; }
  RuleLimits limits() const { return RuleLimits{retention_ms_}; }

  // ----- Rules -----

  // Makes the rules of segment `meta.id` what `meta` says (no rule, a rule being backfilled,
  // a ready rule, plus an edit being backfilled). `next_event_seq` is where a new pending
  // rule's backfill is cut. Called for every segment metadata a batch applies.
  absl::Status Sync(const SegmentMeta& meta, uint64_t next_event_seq);
  // Whether any segment has an answering rule (planning work is needed for every mutation).
  bool any_active() const { return active_count_ > 0; }
  bool empty() const { return slots_.empty(); }
  const CompiledRule* Active(SegmentId segment) const;
  const CompiledRule* Pending(SegmentId segment) const;
  // Whether a rule with `references` for `segment` would close a cycle of in_segment through
  // the rules (answering and pending) of other segments.
  bool WouldCycle(SegmentId segment, absl::Span<const SegmentId> references) const;
  // The in_segment segments of `text` (compiled against the current segments). Errors as
  // ParseRule, and segment_not_found for an unknown segment.
  absl::StatusOr<std::vector<SegmentId>> References(absl::string_view text) const;

  // ----- Planning (reads only) -----

  // Appends the rule membership changes that `batch` (planned so far at `now`) causes: for the
  // users whose events, traits, memberships of segments rules read, or registration it
  // changes. Records are at `now` with reason rule.
  void PlanEffects(OpBatch& batch, TimeMs now, const MembershipView& view) const;
  // Appends the changes due at deadlines after `through` and at or before `upto`, each at its
  // moment, stopping after the moment at which the batch reaches `max_records`. Returns the
  // time through which deadlines are planned (for batch.rules_through).
  TimeMs PlanDeadlines(TimeMs upto, size_t max_records, OpBatch& batch,
                       const MembershipView& view) const;
  // The members a segment's pending rule (or not-yet-ready rule) has at `now`, evaluated over
  // `population` (the registered users).
  std::vector<UserId> EvaluatePending(SegmentId segment, TimeMs now,
                                      absl::Span<const UserId> population,
                                      const MembershipView& view) const;
  // Whether `rule` holds for `user` at `t` on the current state.
  bool Evaluate(const CompiledRule& rule, UserId user, TimeMs t, const MembershipView& view) const;

  // ----- Applying -----

  void ApplyEvent(const Event& event);
  // User `from` was merged into `into`: its aggregate states join `into`'s (its events now
  // count as `into`'s) and its traits are dropped (the merge's batch carries the ones that
  // move).
  void ApplyMerge(UserId from, UserId into);
  void ApplyTrait(const TraitChange& change);
  // Acts on every deadline at or before t (drops what no longer matters, schedules the next).
  void AdvanceThrough(TimeMs t);
  TimeMs through() const { return through_; }
  // The earliest deadline in the wheel, 0 if none.
  TimeMs NextDeadline() const { return deadlines_.empty() ? 0 : std::get<0>(*deadlines_.begin()); }
  // Recovery: sets `through` before any event is inserted.
  void SetThrough(TimeMs t) { through_ = t; }
  // Recovery: between the two, inserted events schedule no deadline; EndBulk schedules every
  // state's once (a recovery inserts many events per state).
  void BeginBulk();
  void EndBulk();

  // ----- Backfill -----

  // A pending rule whose aggregates need the events before its cut, if any.
  std::optional<BackfillJob> NextBackfill() const;
  bool JobValid(const BackfillJob& job) const;
  // Inserts backfilled events (numbered below job.cut) into the job's aggregates.
  void InsertBackfill(const BackfillJob& job, absl::Span<const Event> events);
  void CompleteBackfill(const BackfillJob& job);
  // Recovery: every aggregate got every retained event; none needs a backfill.
  void MarkAllComplete();
  // Segments whose pending rule has complete aggregates: ready to answer.
  std::vector<SegmentId> ReadyToSwap() const;
  // Whether the pending rule of `segment` waits for `job`.
  bool PendingUses(SegmentId segment, const BackfillJob& job) const;

  // ----- Reads -----

  const TraitMap* Traits(UserId user) const;
  struct Stats {
    uint64_t rules = 0;
    uint64_t aggregates = 0;
    uint64_t states = 0;   // (user, aggregate) pairs with state
    uint64_t entries = 0;  // events held in them (walk only)
    uint64_t deadlines = 0;
    // Walk only: states whose deadline is in the wheel. Equal to `deadlines` when the wheel
    // holds exactly one entry per scheduled state (an invariant tests check).
    uint64_t scheduled_states = 0;
    uint64_t users_with_traits = 0;
    size_t bytes = 0;  // estimate (walk only)
  };
  // Counts from the containers' sizes; with `walk`, also entries and bytes, which visits every
  // state (diagnostics, not /metrics).
  Stats GetStats(bool walk = false) const;

 private:
  struct Aggregate {
    AggregateSpec spec;
    uint32_t refs = 0;
    bool complete = true;
    uint64_t generation = 0;
    uint64_t cut = 0;  // the first event it received live
    absl::flat_hash_map<UserId, AggregateState> states;
  };
  struct Slot {
    std::unique_ptr<CompiledRule> active;
    std::unique_ptr<CompiledRule> pending;
    uint64_t generation = 0;
    uint64_t cut = 0;
  };
  using Deadline = std::tuple<TimeMs, UserId, AggregateId>;

  absl::StatusOr<std::unique_ptr<CompiledRule>> Compile(absl::string_view text);
  void Release(std::unique_ptr<CompiledRule>& rule);
  AggregateId Acquire(const AggregateSpec& spec);
  void Reschedule(AggregateId id, UserId user, AggregateState& state);
  void InsertIntoState(AggregateId id, UserId user, TimeMs at, double amount);
  // Sorts a state appended to in bulk and drops what cannot matter after `through_`.
  void Tidy(const AggregateSpec& spec, AggregateState& state) const;
  void RebuildIndexes();
  // Evaluates with an overlay; see rule_set.cc.
  class Overlay;
  bool Eval(const CompiledRule& rule, UserId user, TimeMs t, const Overlay& overlay) const;
  void PlanUser(UserId user, std::vector<SegmentId> work, TimeMs t, OpBatch& batch,
                Overlay& overlay) const;

  const TimeMs retention_ms_;
  std::function<std::optional<SegmentId>(absl::string_view)> resolve_;
  absl::flat_hash_map<SegmentId, Slot> slots_;
  std::vector<Aggregate> aggregates_;  // by id; refs == 0 marks a free one
  TimeMs through_ = 0;
  absl::btree_set<Deadline> deadlines_;
  absl::flat_hash_map<UserId, TraitMap> traits_;
  uint64_t active_count_ = 0;
  uint64_t generations_ = 0;
  uint64_t next_event_seq_ = 1;  // as of the last Sync: new aggregates are cut here
  bool bulk_ = false;
  // Derived from the answering rules by RebuildIndexes.
  absl::flat_hash_map<std::string, std::vector<AggregateId>> aggregates_by_type_;
  absl::flat_hash_map<AggregateId, std::vector<SegmentId>> rules_by_aggregate_;
  absl::flat_hash_map<SegmentId, std::vector<SegmentId>> dependents_;
  absl::flat_hash_map<SegmentId, int> level_;
  std::vector<SegmentId> trait_rules_;
  std::vector<SegmentId> all_rules_;  // answering rules, by level
};

}  // namespace segd::engine::rules
