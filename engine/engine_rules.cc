// Engine: events, traits and rule segments (docs/rules.md). The rest of the engine is in
// engine.cc; this file holds what rules add to it.

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/detail/durably.h"
#include "engine/engine.h"
#include "engine/errors.h"

namespace segd::engine {
namespace {

// Events may be sent this far ahead of the server's clock.
constexpr TimeMs kMaxFutureMs = 5 * 60 * 1000;
constexpr size_t kMaxKeys = 64;
constexpr size_t kMaxStringBytes = 1024;
// Events inserted per writer-lock hold by a backfill.
constexpr size_t kBackfillChunk = 16384;

absl::Status ValidateFlatObject(absl::string_view what, absl::Span<const EventProperty> fields) {
  if (fields.size() > kMaxKeys) {
    return BadRequest(absl::StrCat(what, " has more than ", kMaxKeys, " keys"));
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    const EventProperty& f = fields[i];
    if (f.key.empty() || f.key.size() > rules::kMaxKeyBytes) {
      return BadRequest(absl::StrCat(what, ": a key must be 1 to ", rules::kMaxKeyBytes, " bytes"));
    }
    if (const std::string* str = std::get_if<std::string>(&f.value);
        str != nullptr && str->size() > kMaxStringBytes) {
      return BadRequest(
          absl::StrCat(what, ".", f.key, ": a string is at most ", kMaxStringBytes, " bytes"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (fields[j].key == f.key) {
        return BadRequest(absl::StrCat(what, ".", f.key, " is given twice"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Memberships and registrations as the engine holds them, for rule evaluation.
class Engine::RuleView final : public rules::MembershipView {
 public:
  explicit RuleView(const Engine& engine) : engine_(engine) {}
  bool Member(SegmentId segment, UserId user) const override {
    return engine_.shards_.Contains(segment, user);
  }
  bool Registered(UserId user) const override { return engine_.shards_.IsRegistered(user); }

 private:
  const Engine& engine_;
};

void Engine::AddTraitChange(OpBatch& batch, TraitChange change, TraitIndex& index) const {
  if (const rules::TraitMap* traits = rules_.Traits(change.user)) {
    auto it =
        std::lower_bound(traits->begin(), traits->end(), change.key,
                         [](const rules::Trait& t, const std::string& k) { return t.key < k; });
    if (it != traits->end() && it->key == change.key && it->at > change.at) return;  // older
  }
  auto [it, inserted] =
      index.try_emplace(std::make_pair(change.user, change.key), batch.traits.size());
  if (!inserted) {
    TraitChange& earlier = batch.traits[it->second];
    if (earlier.at <= change.at) earlier = std::move(change);
    return;
  }
  batch.traits.push_back(std::move(change));
}

absl::Status Engine::ValidateEventShape(const EventInput& event) {
  if (absl::Status s = UserDictionary::Validate(event.user_id); !s.ok()) return s;
  if (absl::Status s = SegmentCatalog::ValidateName(event.type); !s.ok()) {
    return BadRequest(
        absl::StrCat("type: ", absl::StrReplaceAll(s.message(), {{"segment name", "event type"}})));
  }
  if (absl::Status s = ValidateFlatObject("properties", event.properties); !s.ok()) return s;
  return ValidateFlatObject("traits", event.traits);
}

absl::Status Engine::ValidateRule(absl::string_view rule, std::optional<SegmentId> self) const {
  absl::StatusOr<std::vector<SegmentId>> refs = rules_.References(rule);
  if (!refs.ok()) return refs.status();
  if (self && rules_.WouldCycle(*self, *refs)) {
    return RuleCycle(absl::StrCat("the rule reads segment ", Quote(catalog_.Name(*self)),
                                  " through in_segment: rules may not form a cycle"));
  }
  return absl::OkStatus();
}

void Engine::PlanRuleEffects(OpBatch& batch) {
  if (rules_.empty()) return;
  RuleView view(*this);
  rules_.PlanEffects(batch, batch.at, view);
  batch.rules_through = std::max(batch.rules_through, batch.at);
}

absl::Status Engine::CatchUpRules(TimeMs now) {
  if (!rules_.any_active()) return absl::OkStatus();
  RuleView view(*this);
  while (rules_.NextDeadline() != 0 && rules_.NextDeadline() <= now) {
    OpBatch batch;
    batch.at = now;
    const TimeMs through = rules_.PlanDeadlines(now, kMaxExpiryBatch, batch, view);
    // Nothing changes: the deadlines are acted on by the next batch, which carries `through`.
    if (batch.memberships.empty()) return absl::OkStatus();
    batch.rules_through = through;
    if (absl::Status s = Commit(batch, /*plan_rules=*/false); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Engine::ProcessRuleDeadlines() {
  const uint64_t before = rule_changes_.load(std::memory_order_relaxed);
  absl::StatusOr<bool> done = Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<bool> {
    // The catch-up ran before this body. What is left due changes no membership: record that
    // it was acted on, so that the wheel moves on.
    const TimeMs next = rules_.NextDeadline();
    if (rules_.empty() || next == 0 || next > Now()) return true;
    OpBatch batch;
    batch.at = Now();
    batch.rules_through = Now();
    if (absl::Status s = Commit(batch, /*plan_rules=*/false); !s.ok()) return s;
    return true;
  });
  if (!done.ok()) return done.status();
  return rule_changes_.load(std::memory_order_relaxed) - before;
}

absl::StatusOr<IngestResult> Engine::Ingest(absl::Span<const EventInput> events) {
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<IngestResult> {
    OpBatch batch;
    batch.at = Now();
    IngestResult result;
    const TimeMs oldest = batch.at - options_.event_retention_ms;
    const TimeMs newest = batch.at + kMaxFutureMs;
    absl::flat_hash_map<absl::string_view, UserId> planned_ids;
    TraitIndex trait_index;
    UserId next_new_id = NextNewUserId();
    batch.events.reserve(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      const EventInput& in = events[i];
      if (absl::Status s = ValidateEventShape(in); !s.ok()) {
        result.invalid.emplace_back(i, s);
        continue;
      }
      const TimeMs at = in.at.value_or(batch.at);
      if (at <= oldest || at > newest) {
        result.invalid.emplace_back(
            i, BadRequest(at <= oldest
                              ? "at_out_of_range: `at` is older than the event retention"
                              : "at_out_of_range: `at` is more than 5 minutes in the future"));
        continue;
      }
      auto planned = PlanUserOnce(in.user_id, batch.at, batch, {}, &next_new_id, planned_ids);
      if (!planned.ok()) {
        result.invalid.emplace_back(i, planned.status());
        continue;
      }
      const UserId id = *planned;
      Event& ev = batch.events.emplace_back();
      ev.seq = next_event_seq_ + batch.events.size() - 1;
      ev.user = id;
      ev.at = at;
      ev.type = in.type;
      ev.properties = in.properties;
      for (const EventProperty& t : in.traits) {
        AddTraitChange(batch, {id, t.key, t.value, at}, trait_index);
      }
    }
    result.accepted = batch.events.size();
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    events_accepted_.fetch_add(result.accepted, std::memory_order_relaxed);
    return result;
  });
}

absl::StatusOr<UserProfile> Engine::PatchTraits(absl::string_view user_id,
                                                const TraitPatch& patch) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  std::vector<EventProperty> shape;
  for (const auto& [key, value] : patch) shape.push_back({key, value.value_or(rules::Value(0.0))});
  if (absl::Status s = ValidateFlatObject("traits", shape); !s.ok()) return s;
  absl::Status committed = Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
    OpBatch batch;
    batch.at = Now();
    bool newly_registered;
    UserId next_new_id = NextNewUserId();
    auto id = PlanUser(user_id, batch.at, batch, {}, &next_new_id, &newly_registered);
    if (!id.ok()) return id.status();
    TraitIndex trait_index;
    for (const auto& [key, value] : patch) {
      AddTraitChange(batch, {*id, key, value, batch.at}, trait_index);
    }
    return Commit(batch);
  });
  if (!committed.ok()) return committed;
  return Profile(user_id);
}

absl::StatusOr<UserProfile> Engine::Profile(absl::string_view user_id) const {
  std::optional<UserId> id = users_.Find(user_id);
  if (!id || !shards_.IsRegistered(*id)) return UserNotFound(user_id);
  UserProfile profile;
  profile.user_id = std::string(users_.Name(*id));  // its own id, also when asked by alias
  profile.aliases = users_.AliasesOf(*id);
  {
    MutexLock lock(&write_mu_);
    if (const rules::TraitMap* traits = rules_.Traits(*id)) {
      for (const rules::Trait& t : *traits) {
        if (t.value) profile.traits.emplace_back(t.key, *t.value);
      }
    }
  }
  profile.segments = UserSegments(profile.user_id);
  return profile;
}

void Engine::SetProgress(SegmentId segment, uint64_t done, uint64_t total) {
  MutexLock lock(&progress_mu_);
  progress_[segment] = {done, total};
}

absl::Status Engine::SwapInRule(SegmentId segment) {
  const rules::CompiledRule* pending = rules_.Pending(segment);
  if (pending == nullptr || !catalog_.IsActive(segment)) return absl::OkStatus();
  const std::vector<SegmentId> ready = rules_.ReadyToSwap();
  if (!std::binary_search(ready.begin(), ready.end(), segment)) return absl::OkStatus();
  OpBatch batch;
  batch.at = Now();
  std::vector<UserId> population;
  population.reserve(registered_count_.load(std::memory_order_relaxed));
  Roaring current;
  shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
    for (UserId user : view.Registered()) population.push_back(user);
    if (const Roaring* members = view.Members(segment)) current |= *members;
  });
  RuleView view(*this);
  const std::vector<UserId> members = rules_.EvaluatePending(segment, batch.at, population, view);
  Roaring wanted(members.size(), members.data());
  for (UserId user : wanted - current) {
    batch.memberships.push_back(
        {batch.at, kNoExpiry, user, segment, OpKind::kAdd, OpReason::kRule});
  }
  for (UserId user : current - wanted) {
    batch.memberships.push_back(
        {batch.at, kNoExpiry, user, segment, OpKind::kRemove, OpReason::kRule});
  }
  SegmentMeta meta = catalog_.Get(segment);
  meta.rule = pending->text;
  meta.pending_rule.clear();
  meta.rule_ready = true;
  batch.segments.push_back(std::move(meta));
  if (absl::Status s = Commit(batch); !s.ok()) return s;
  MutexLock lock(&progress_mu_);
  progress_.erase(segment);
  return absl::OkStatus();
}

absl::StatusOr<bool> Engine::RunBackfills(const std::atomic<bool>* stop) {
  auto stopping = [stop] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  bool did = false;
  for (;;) {
    std::optional<rules::BackfillJob> job;
    std::vector<SegmentId> waiting;  // segments whose pending rule waits for this job
    {
      MutexLock lock(&write_mu_);
      job = rules_.NextBackfill();
      if (job) {
        for (const SegmentMeta& meta : catalog_.All()) {
          if (rules_.PendingUses(meta.id, *job)) waiting.push_back(meta.id);
        }
      }
    }
    if (!job) break;
    did = true;
    backfills_running_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t total = job->cut > 0 ? job->cut - 1 : 0;
    uint64_t done = 0;
    for (SegmentId s : waiting) SetProgress(s, 0, total);
    bool valid = true;
    std::vector<Event> chunk;
    auto flush = [&] {
      {
        MutexLock lock(&write_mu_);
        valid = rules_.JobValid(*job);
        // A merged user's events count as its survivor's.
        if (!merged_into_.empty()) {
          for (Event& e : chunk) e.user = Survivor(e.user);
        }
        if (valid) rules_.InsertBackfill(*job, chunk);
      }
      done += chunk.size();
      chunk.clear();
      for (SegmentId s : waiting) SetProgress(s, std::min(done, total), total);
    };
    absl::Status scanned;
    if (options_.events != nullptr && job->cut > 1) {
      scanned = options_.events->ScanEvents(1, job->cut, [&](const Event& e) {
        chunk.push_back(e);
        if (chunk.size() >= kBackfillChunk) flush();
        return valid && !stopping();
      });
    }
    if (stopping()) {
      backfills_running_.fetch_sub(1, std::memory_order_relaxed);
      return did;
    }
    if (valid && !chunk.empty()) flush();
    backfills_running_.fetch_sub(1, std::memory_order_relaxed);
    if (!scanned.ok()) return scanned;
    for (SegmentId s : waiting) SetProgress(s, total, total);
    MutexLock lock(&write_mu_);
    rules_.CompleteBackfill(*job);
  }
  std::vector<SegmentId> ready;
  {
    MutexLock lock(&write_mu_);
    ready = rules_.ReadyToSwap();
  }
  for (SegmentId segment : ready) {
    absl::Status s = Durably(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status { return SwapInRule(segment); });
    if (!s.ok()) return s;
    did = true;
  }
  return did;
}

void Engine::BeginRuleRecovery(TimeMs rules_through) {
  MutexLock lock(&write_mu_);
  rules_.SetThrough(rules_through);
  rules_.BeginBulk();
}

void Engine::RecoverEvent(const Event& event) {
  MutexLock lock(&write_mu_);
  if (!merged_into_.empty() && merged_into_.contains(event.user)) {
    // A merged user's events count as its survivor's.
    Event moved = event;
    moved.user = Survivor(event.user);
    rules_.ApplyEvent(moved);
  } else {
    rules_.ApplyEvent(event);
  }
  next_event_seq_ = std::max(next_event_seq_, event.seq + 1);
}

void Engine::RecoverTrait(const TraitChange& change) {
  MutexLock lock(&write_mu_);
  rules_.ApplyTrait(change);
}

void Engine::FinishRuleRecovery(uint64_t next_event_seq) {
  MutexLock lock(&write_mu_);
  next_event_seq_ = std::max(next_event_seq_, next_event_seq);
  rules_.EndBulk();
  rules_.MarkAllComplete();
}

RuleStats Engine::GetRuleStats(bool walk) const {
  RuleStats stats;
  {
    MutexLock lock(&write_mu_);
    stats.rules = rules_.GetStats(walk);
  }
  stats.events_accepted = events_accepted_.load(std::memory_order_relaxed);
  stats.rule_changes = rule_changes_.load(std::memory_order_relaxed);
  stats.backfills_running = backfills_running_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace segd::engine
