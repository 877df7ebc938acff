#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "engine/detail/durably.h"
#include "engine/errors.h"
#include "engine/expression.h"
#include "engine/stable_hash.h"

namespace segd::engine {
namespace {

// Latest accepted expiry: 9999-12-31T23:59:59.999Z.
constexpr TimeMs kMaxExpiryMs = 253402300799999;

uint32_t ShardOf(UserId user) { return user >> MembershipShards::kShardBits; }

// round-half-up(n × percent / 100) in integers, with the percent taken to 0.001.
uint64_t PercentOf(uint64_t n, double percent) {
  auto milli = static_cast<uint64_t>(std::llround(percent * 1000));
  return (n * milli + 50000) / 100000;
}

}  // namespace

Engine::Engine(EngineOptions options)
    : options_(options),
      sink_(options.sink ? options.sink : &null_sink_),
      clock_(options.clock ? options.clock : SystemClock::Default()),
      // One second back: memberships already due when the engine is built (replayed after a
      // restart) land in the current second and expire on the first ProcessExpiries().
      expiries_(clock_->NowMs()),
      rng_(options.random_seed ? options.random_seed : std::random_device{}()),
      rules_(options.event_retention_ms,
             [this](absl::string_view name) { return catalog_.Find(name); }) {
  if (sink_->WaitDurableBlocks()) {
    notifier_ =
        std::make_unique<detail::DurabilityNotifier>([this] { return sink_->WaitDurable(); });
  }
}

Engine::~Engine() = default;

absl::Status Engine::ValidateTtl(std::optional<int64_t> ttl) const {
  if (!ttl) return absl::OkStatus();
  if (*ttl < 1) return BadRequest("ttl_seconds must be a whole number >= 1");
  if (*ttl > options_.max_ttl_seconds) {
    return BadRequest(absl::StrCat("ttl_seconds must be at most ", options_.max_ttl_seconds));
  }
  return absl::OkStatus();
}

TimeMs Engine::ExpiryFor(TimeMs now, std::optional<int64_t> ttl, std::optional<TimeMs> expires_at,
                         int64_t default_ttl_seconds) const {
  if (expires_at) return *expires_at;
  if (ttl) return std::min(now + *ttl * 1000, kMaxExpiryMs);
  if (default_ttl_seconds > 0) return std::min(now + default_ttl_seconds * 1000, kMaxExpiryMs);
  return kNoExpiry;
}

SegmentInfo Engine::InfoOf(const SegmentMeta& meta) const {
  SegmentInfo info{meta, catalog_.Count(meta.id)};
  if (meta.computed() && !meta.deleted() && (!meta.rule_ready || !meta.pending_rule.empty())) {
    info.backfilling = true;
    MutexLock lock(&progress_mu_);
    if (auto it = progress_.find(meta.id); it != progress_.end()) {
      info.backfill_done = it->second.first;
      info.backfill_total = it->second.second;
    }
  }
  return info;
}

// ----------------------------------------------------------------------------- commit/apply

absl::Status Engine::Commit(OpBatch& batch, bool plan_rules) {
  if (batch.empty()) return absl::OkStatus();
  if (combining_) {
    // Only single-user mutations are combined; none of them changes segments or identities.
    if (!batch.segments.empty() || !batch.aliases.empty() || !batch.merges.empty()) {
      return absl::InternalError("a combined commit got a segment change");
    }
    if (combined_.empty()) combined_.at = batch.at;
    for (UserEvent& e : batch.users) {
      if (e.kind == UserEvent::Kind::kCreated) ++combined_new_users_;
      combined_.users.push_back(std::move(e));
    }
    combined_.memberships.insert(combined_.memberships.end(), batch.memberships.begin(),
                                 batch.memberships.end());
    ++commits_;
    return absl::OkStatus();
  }
  if (plan_rules) PlanRuleEffects(batch);
  if (absl::Status s = sink_->Write(batch); !s.ok()) return s;
  ++commits_;
  absl::Status applied = ApplyBatch(batch);
  sink_->Applied();
  return applied;
}

bool Engine::BeginCombined() {
  // Rules read across a batch (deadlines are planned for every user at once): while any rule
  // answers, every mutation commits alone.
  if (rules_.any_active()) return false;
  combining_ = true;
  return true;
}

absl::Status Engine::EndCombined() {
  combining_ = false;
  absl::Status status;
  if (!combined_.empty()) {
    status = sink_->Write(combined_);
    if (status.ok()) {
      status = ApplyBatch(combined_);
      sink_->Applied();
    }
  }
  // Keep the vectors' capacity for the next combined commit.
  combined_.users.clear();
  combined_.memberships.clear();
  combined_new_users_ = 0;
  return status;
}

namespace {
// The engine whose RunGathered this thread is in, if any.
thread_local const Engine* gathering_engine = nullptr;
}  // namespace

bool Engine::GatheringHere() const { return gathering_engine == this; }

std::vector<absl::Status> Engine::RunGathered(size_t n, absl::FunctionRef<void(size_t)> run) {
  std::vector<absl::Status> outcomes(n);
  MutexLock lock(&write_mu_);
  Gathering gathering;
  gathering.outcomes = &outcomes;
  gathering_ = &gathering;
  gathering_engine = this;
  for (size_t i = 0; i < n; ++i) {
    gathering.current = i;
    run(i);
  }
  if (gathering.combining) EndGatheredBatch();
  gathering_engine = nullptr;
  gathering_ = nullptr;
  return outcomes;
}

void Engine::WhenDurable(absl::AnyInvocable<void(absl::Status) &&> done) {
  if (notifier_ == nullptr) {
    std::move(done)(absl::OkStatus());
    return;
  }
  notifier_->Add(std::move(done));
}

void Engine::RunGatheredTask(WriteQueue::Task& task) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Gathering& g = *gathering_;
  const bool keyed = !task.combine_key.empty();
  if (g.combining && (!keyed || g.keys.contains(task.combine_key))) EndGatheredBatch();
  if (keyed && !g.combining) g.combining = BeginCombined();
  task.Run();
  if (keyed && g.combining) {
    g.keys.emplace(task.combine_key);
    if (task.committed) g.members.push_back(g.current);
  }
  // Otherwise it committed alone, and its result says how that went (its durability is the
  // caller's to wait for: WhenDurable).
}

void Engine::EndGatheredBatch() {
  Gathering& g = *gathering_;
  const absl::Status status = EndCombined();
  if (!status.ok()) {
    for (size_t call : g.members) (*g.outcomes)[call] = status;
  }
  g.combining = false;
  g.keys.clear();
  g.members.clear();
}

absl::Status Engine::ApplyRecovered(const OpBatch& batch) {
  MutexLock lock(&write_mu_);
  return ApplyBatch(batch);
}

absl::Status Engine::RecoverUsers(UserId first, absl::Span<const std::string> names) {
  MutexLock lock(&write_mu_);
  std::vector<absl::string_view> views(names.begin(), names.end());
  return CreateUsers(first, views);
}

absl::Status Engine::CreateUsers(UserId first, absl::Span<const absl::string_view> names) {
  if (absl::Status s = users_.InsertConsecutive(first, names); !s.ok()) return s;
  uint64_t added = shards_.RegisterRange(first, names.size());
  registered_count_.fetch_add(added, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status Engine::InstallShard(MembershipShards::ShardState state) {
  MutexLock lock(&write_mu_);
  // Snapshot bytes come from disk: check that they describe a possible state before use.
  uint32_t size = catalog_.size();
  uint64_t first = uint64_t{state.index} << MembershipShards::kShardBits;
  uint64_t last = first + MembershipShards::kShardUsers - 1;
  for (size_t i = 0; i < state.members.size(); ++i) {
    const auto& [segment, bitmap] = state.members[i];
    if (segment >= size || (i > 0 && state.members[i - 1].first >= segment)) {
      return absl::DataLossError("snapshot: segment ids unknown or out of order");
    }
    if (bitmap.isEmpty() || bitmap.minimum() < first || bitmap.maximum() > last ||
        bitmap.maximum() >= users_.size()) {
      return absl::DataLossError("snapshot: users outside their shard or unknown");
    }
  }
  for (size_t i = 0; i < state.expiries.size(); ++i) {
    const auto& [key, expires_at] = state.expiries[i];
    if (i > 0 && state.expiries[i - 1].first >= key) {
      return absl::DataLossError("snapshot: expiries out of order");
    }
    auto segment = static_cast<SegmentId>(key >> 32);
    auto it = std::lower_bound(
        state.members.begin(), state.members.end(), segment,
        [](const std::pair<SegmentId, Roaring>& m, SegmentId s) { return m.first < s; });
    if (it == state.members.end() || it->first != segment ||
        !it->second.contains(static_cast<UserId>(key)) || expires_at == kNoExpiry) {
      return absl::DataLossError("snapshot: an expiry without its membership");
    }
  }
  if (!state.added.empty()) {
    if (state.added.size() != state.members.size()) {
      return absl::DataLossError("snapshot: added-at times for some segments only");
    }
    for (size_t i = 0; i < state.members.size(); ++i) {
      if (state.added[i].size() != state.members[i].second.cardinality()) {
        return absl::DataLossError("snapshot: added-at times not one per member");
      }
    }
  }
  for (const auto& [key, expires_at] : state.expiries) {
    expiries_.Schedule(static_cast<SegmentId>(key >> 32), static_cast<UserId>(key), expires_at);
  }
  std::vector<std::pair<SegmentId, uint64_t>> counts;
  shards_.InstallShard(std::move(state), &counts);
  for (const auto& [segment, n] : counts) catalog_.AddToCount(segment, static_cast<int64_t>(n));
  pending_expiries_.store(expiries_.pending(), std::memory_order_relaxed);
  return absl::OkStatus();
}

const std::vector<SegmentMeta>& Engine::StickySegments() {
  if (!sticky_valid_) {
    sticky_ = catalog_.ActiveSticky();
    sticky_valid_ = true;
  }
  return sticky_;
}

absl::Status Engine::ApplyBatch(const OpBatch& batch) {
  if (!batch.segments.empty()) sticky_valid_ = false;
  // Segments that come into being (new, or restored) before the records that name them;
  // changes of an active segment after its records, so that a reader who sees the change (a
  // rule segment turned "ready", a deletion) also sees its members.
  absl::InlinedVector<const SegmentMeta*, 1> changed_later;
  for (const SegmentMeta& meta : batch.segments) {
    if (meta.id < catalog_.size() && catalog_.IsActive(meta.id)) {
      changed_later.push_back(&meta);
      continue;
    }
    if (absl::Status s = catalog_.Upsert(meta); !s.ok()) return s;
    if (meta.deleted()) expiries_.CancelSegment(meta.id);
  }
  // After every segment of the batch exists: a rule may read a segment created after it
  // (recovery applies every segment in one batch).
  for (const SegmentMeta& meta : batch.segments) {
    if (absl::Status s = rules_.Sync(meta, next_event_seq_); !s.ok()) return s;
  }
  absl::InlinedVector<absl::string_view, 1> created;
  for (size_t i = 0; i < batch.users.size();) {
    const UserEvent& e = batch.users[i];
    if (e.kind == UserEvent::Kind::kCreated) {
      // A batch creates its new users with consecutive ids: each run of them goes into the
      // dictionary and the registry at once.
      created.clear();
      size_t end = i;
      do {
        created.push_back(batch.users[end].external_id);
        ++end;
      } while (end < batch.users.size() && batch.users[end].kind == UserEvent::Kind::kCreated &&
               batch.users[end].user == batch.users[end - 1].user + 1);
      if (absl::Status s = CreateUsers(e.user, created); !s.ok()) return s;
      i = end;
      continue;
    }
    if (e.kind != UserEvent::Kind::kDeleted && shards_.Register(e.user)) {
      registered_count_.fetch_add(1, std::memory_order_relaxed);
    }
    ++i;
  }
  for (const AliasChange& a : batch.aliases) {
    if (a.attach) {
      users_.SetAlias(a.name, a.user);
    } else {
      users_.RemoveAlias(a.name);
    }
  }
  for (const UserMerge& m : batch.merges) {
    merged_into_[m.from] = m.into;
    rules_.ApplyMerge(m.from, m.into);
  }
  if (batch.rules_through != 0) rules_.AdvanceThrough(batch.rules_through);
  if (!rules_.empty()) {
    uint64_t changes = 0;
    for (const OpRecord& r : batch.memberships) changes += r.reason == OpReason::kRule;
    if (changes != 0) rule_changes_.fetch_add(changes, std::memory_order_relaxed);
  }
  for (const Event& event : batch.events) rules_.ApplyEvent(event);
  if (!batch.events.empty()) next_event_seq_ = batch.events.back().seq + 1;
  for (const TraitChange& change : batch.traits) rules_.ApplyTrait(change);
  ApplyMemberships(batch.memberships);
  for (const UserEvent& e : batch.users) {
    if (e.kind == UserEvent::Kind::kDeleted && shards_.Unregister(e.user)) {
      registered_count_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  for (const SegmentMeta* meta : changed_later) {
    if (absl::Status s = catalog_.Upsert(*meta); !s.ok()) return s;
    if (meta->deleted()) expiries_.CancelSegment(meta->id);
  }
  pending_expiries_.store(expiries_.pending(), std::memory_order_relaxed);
  return absl::OkStatus();
}

void Engine::ApplyMemberships(absl::Span<const OpRecord> records) {
  // Per segment: (member count delta, records applied). Records of one segment mostly come in
  // runs, so a run extends the last entry; the entries are merged by segment at the end.
  struct Tally {
    SegmentId segment;
    int64_t delta;
    uint64_t touched;
  };
  absl::InlinedVector<Tally, 4> tallies;
  size_t i = 0;
  while (i < records.size()) {
    // A chunk: consecutive records of one shard, at most kMaxChunk of them.
    size_t end = i + 1;
    uint32_t shard = ShardOf(records[i].user);
    while (end < records.size() && end - i < MembershipShards::kMaxChunk &&
           ShardOf(records[end].user) == shard) {
      ++end;
    }
    auto chunk = records.subspan(i, end - i);
    shards_.Apply(chunk, &applied_scratch_);
    for (size_t k = 0; k < chunk.size(); ++k) {
      const OpRecord& r = chunk[k];
      const MembershipShards::Applied& a = applied_scratch_[k];
      if (a.was_member && a.previous_expiry != kNoExpiry) {
        expiries_.Cancel(r.segment, r.user, a.previous_expiry);
      }
      if (tallies.empty() || tallies.back().segment != r.segment)
        tallies.push_back({r.segment, 0, 0});
      Tally& tally = tallies.back();
      if (r.op == OpKind::kAdd) {
        if (r.expires_at != kNoExpiry) expiries_.Schedule(r.segment, r.user, r.expires_at);
        if (!a.was_member) ++tally.delta;
      } else if (a.was_member) {
        --tally.delta;
      }
      ++tally.touched;
    }
    i = end;
  }
  std::sort(tallies.begin(), tallies.end(),
            [](const Tally& a, const Tally& b) { return a.segment < b.segment; });
  for (size_t k = 0; k < tallies.size();) {
    Tally sum = tallies[k++];
    while (k < tallies.size() && tallies[k].segment == sum.segment) {
      sum.delta += tallies[k].delta;
      sum.touched += tallies[k++].touched;
    }
    if (sum.delta != 0) catalog_.AddToCount(sum.segment, sum.delta);
    // Bulk changes leave bitmaps with spare capacity and runs worth compressing.
    if (sum.touched >= 10000) shards_.Optimize(sum.segment);
  }
}

// ----------------------------------------------------------------------------- users

absl::StatusOr<UserId> Engine::PlanUser(absl::string_view user_id, TimeMs now, OpBatch& batch,
                                        absl::Span<const SegmentId> skip_sticky,
                                        UserId* next_new_id, bool* newly_registered) {
  *newly_registered = false;
  std::optional<UserId> found = users_.Find(user_id);
  UserId id;
  if (!found) {
    if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
    // Ids planned earlier in this batch are not in the dictionary yet: *next_new_id counts them.
    if (*next_new_id > kMaxUserId) return LimitExceeded("the user dictionary is full");
    id = (*next_new_id)++;
    batch.users.push_back({UserEvent::Kind::kCreated, id, std::string(user_id)});
  } else {
    id = *found;
    if (shards_.IsRegistered(id)) return id;
    batch.users.push_back({UserEvent::Kind::kRegistered, id, {}});
  }
  *newly_registered = true;
  for (const SegmentMeta& meta : StickySegments()) {
    if (std::find(skip_sticky.begin(), skip_sticky.end(), meta.id) != skip_sticky.end()) continue;
    if (!StickyPercentDecision(meta.name, user_id, meta.auto_percent)) continue;
    batch.memberships.push_back({now, ExpiryFor(now, std::nullopt, std::nullopt, meta.ttl_seconds),
                                 id, meta.id, OpKind::kAdd, OpReason::kAutoPercent});
  }
  return id;
}

absl::StatusOr<UserId> Engine::PlanUserOnce(
    absl::string_view user_id, TimeMs now, OpBatch& batch, absl::Span<const SegmentId> skip_sticky,
    UserId* next_new_id, absl::flat_hash_map<absl::string_view, UserId>& planned) {
  if (auto it = planned.find(user_id); it != planned.end()) return it->second;
  bool newly_registered;
  auto id = PlanUser(user_id, now, batch, skip_sticky, next_new_id, &newly_registered);
  if (id.ok()) planned.emplace(user_id, *id);
  return id;
}

absl::StatusOr<bool> Engine::RegisterUser(absl::string_view user_id) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  return Durably(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<bool> {
        OpBatch batch;
        batch.at = Now();
        bool newly_registered;
        UserId next_new_id = NextNewUserId();
        auto id = PlanUser(user_id, batch.at, batch, {}, &next_new_id, &newly_registered);
        if (!id.ok()) return id.status();
        if (absl::Status s = Commit(batch); !s.ok()) return s;
        return newly_registered;
      },
      user_id);
}

absl::StatusOr<std::vector<std::string>> Engine::DeleteUser(absl::string_view user_id) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  return Durably(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<std::vector<std::string>> {
        std::optional<UserId> id = users_.Find(user_id);
        if (!id || !shards_.IsRegistered(*id)) return UserNotFound(user_id);
        OpBatch batch;
        batch.at = Now();
        std::vector<std::string> names;
        for (const ListedMembership& m : shards_.SegmentsOf(*id)) {
          batch.memberships.push_back(
              {batch.at, kNoExpiry, *id, m.segment, OpKind::kRemove, OpReason::kUserDeleted});
          names.push_back(catalog_.Name(m.segment));
        }
        batch.users.push_back({UserEvent::Kind::kDeleted, *id, {}});
        if (absl::Status s = Commit(batch); !s.ok()) return s;
        std::sort(names.begin(), names.end());
        return names;
      },
      user_id);
}

absl::StatusOr<UserUpdateResult> Engine::UpdateUserSegments(absl::string_view user_id,
                                                            const UserUpdate& update) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  // Validate everything that does not depend on state before taking the lock. Requests name a
  // few segments: the small vectors here stay off the heap (a request's allocations were a
  // measurable part of a single-membership write).
  absl::InlinedVector<absl::string_view, 4> names;
  names.reserve(update.add.size() + update.remove.size());
  for (const MembershipAdd& add : update.add) {
    if (absl::Status s = SegmentCatalog::ValidateName(add.segment); !s.ok()) return s;
    names.push_back(add.segment);
    if (add.ttl_seconds && add.expires_at) {
      return BadRequest(
          absl::StrCat("segment '", add.segment, "': give ttl_seconds or expires_at, not both"));
    }
    if (absl::Status s = ValidateTtl(add.ttl_seconds); !s.ok()) return s;
    if (add.expires_at && *add.expires_at > kMaxExpiryMs) {
      return BadRequest("expires_at is after the year 9999");
    }
  }
  for (const std::string& name : update.remove) {
    if (absl::Status s = SegmentCatalog::ValidateName(name); !s.ok()) return s;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end()) {
    return ConflictInRequest(absl::StrCat("segment '", *dup, "' is listed twice"));
  }

  return Durably(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<UserUpdateResult> {
        OpBatch batch;
        batch.at = Now();
        for (const MembershipAdd& add : update.add) {
          if (add.expires_at && *add.expires_at <= batch.at) {
            return BadRequest(
                absl::StrCat("segment '", add.segment, "': expires_at is not in the future"));
          }
        }
        std::vector<std::string> unknown;
        absl::InlinedVector<int64_t, 4> add_ttls;
        absl::InlinedVector<SegmentId, 4> add_ids, remove_ids;
        for (const MembershipAdd& add : update.add) {
          if (auto active = catalog_.ResolveActive(add.segment)) {
            add_ttls.push_back(active->ttl_seconds);
            add_ids.push_back(active->id);
          } else {
            unknown.push_back(add.segment);
          }
        }
        for (const std::string& name : update.remove) {
          if (auto id = catalog_.FindActive(name)) {
            remove_ids.push_back(*id);
          } else {
            unknown.push_back(name);
          }
        }
        if (!unknown.empty()) return SegmentNotFound(std::move(unknown));
        if (!rules_.empty()) {
          for (auto ids : {&add_ids, &remove_ids}) {
            for (SegmentId seg : *ids) {
              if (rules_.Active(seg) || rules_.Pending(seg)) {
                return SegmentIsComputed(catalog_.Name(seg));
              }
            }
          }
        }

        UserUpdateResult result;
        bool newly_registered;
        UserId next_new_id = NextNewUserId();
        // What the request says about a segment wins over a sticky decision made on registering.
        absl::InlinedVector<SegmentId, 4> explicit_ids = add_ids;
        explicit_ids.insert(explicit_ids.end(), remove_ids.begin(), remove_ids.end());
        auto id = PlanUser(user_id, batch.at, batch, explicit_ids, &next_new_id, &newly_registered);
        if (!id.ok()) return id.status();
        for (size_t i = 0; i < update.add.size(); ++i) {
          const MembershipAdd& add = update.add[i];
          TimeMs expiry = ExpiryFor(batch.at, add.ttl_seconds, add.expires_at, add_ttls[i]);
          const bool member = shards_.Contains(add_ids[i], *id);
          OpRecord& record = batch.memberships.emplace_back(
              OpRecord{batch.at, expiry, *id, add_ids[i], OpKind::kAdd, OpReason::kApi});
          record.refresh = member;
          (member ? result.updated : result.added).push_back(add.segment);
        }
        for (size_t i = 0; i < update.remove.size(); ++i) {
          if (!shards_.Contains(remove_ids[i], *id)) continue;
          batch.memberships.push_back(
              {batch.at, kNoExpiry, *id, remove_ids[i], OpKind::kRemove, OpReason::kApi});
          result.removed.push_back(update.remove[i]);
        }
        if (absl::Status s = Commit(batch); !s.ok()) return s;
        return result;
      },
      user_id);
}

absl::StatusOr<ImportResult> Engine::Import(absl::string_view segment_name,
                                            absl::Span<const ImportItem> items,
                                            std::optional<int64_t> ttl_seconds, OpReason reason) {
  if (absl::Status s = ValidateTtl(ttl_seconds); !s.ok()) return s;
  if (absl::Status s = SegmentCatalog::ValidateName(segment_name); !s.ok()) return s;
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<ImportResult> {
    auto segment = catalog_.ResolveActive(segment_name);
    if (!segment) return SegmentNotFound({std::string(segment_name)});
    const SegmentId segment_id = segment->id;
    if (rules_.Active(segment_id) || rules_.Pending(segment_id)) {
      return SegmentIsComputed(segment_name);
    }
    OpBatch batch;
    batch.at = Now();
    ImportResult result;
    // Users this import creates or registers again (planned once each), and users it adds,
    // so that a repeated line counts as an update.
    absl::flat_hash_map<absl::string_view, UserId> planned_ids;
    absl::flat_hash_set<UserId> added_here;
    added_here.reserve(items.size());
    batch.memberships.reserve(items.size());
    const SegmentId skip[] = {segment_id};
    UserId next_new_id = NextNewUserId();
    // Dictionary lookups of a large dictionary miss the cache; starting the lookup a few items
    // ahead overlaps those misses.
    constexpr size_t kPrefetchDistance = 8;
    for (size_t i = 0; i < items.size(); ++i) {
      const ImportItem& item = items[i];
      if (i + kPrefetchDistance < items.size()) {
        users_.Prefetch(items[i + kPrefetchDistance].user_id);
      }
      if (absl::Status s = ValidateTtl(item.ttl_seconds); !s.ok()) {
        result.invalid.emplace_back(i, s);
        continue;
      }
      // Most lines name registered users: they need nothing planned, and this thread (the
      // writer) reads the dictionary and shards without their locks. Users this batch
      // creates or registers again go through PlanUserOnce, which plans each once.
      UserId id;
      if (std::optional<UserId> found = users_.FindAsWriter(item.user_id);
          found && shards_.IsRegisteredAsWriter(*found)) {
        id = *found;
      } else {
        auto planned = PlanUserOnce(item.user_id, batch.at, batch, skip, &next_new_id, planned_ids);
        if (!planned.ok()) {
          result.invalid.emplace_back(i, planned.status());
          continue;
        }
        id = *planned;
      }
      std::optional<int64_t> ttl = item.ttl_seconds ? item.ttl_seconds : ttl_seconds;
      OpRecord& record = batch.memberships.emplace_back(
          OpRecord{batch.at, ExpiryFor(batch.at, ttl, std::nullopt, segment->ttl_seconds), id,
                   segment_id, OpKind::kAdd, reason});
      if (!added_here.insert(id).second || shards_.ContainsAsWriter(segment_id, id)) {
        record.refresh = true;
        ++result.updated;
      } else {
        ++result.added;
      }
    }
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return result;
  });
}

absl::StatusOr<std::vector<absl::StatusOr<bool>>> Engine::AddEach(
    absl::Span<const std::pair<absl::string_view, absl::string_view>> pairs) {
  using Outcomes = std::vector<absl::StatusOr<bool>>;
  Outcomes outcomes(pairs.size(), false);
  for (size_t i = 0; i < pairs.size(); ++i) {
    absl::Status s = SegmentCatalog::ValidateName(pairs[i].first);
    if (s.ok()) s = UserDictionary::Validate(pairs[i].second);
    if (!s.ok()) outcomes[i] = s;
  }
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<Outcomes> {
    OpBatch batch;
    batch.at = Now();
    // A pipeline names few segments: resolve each once.
    absl::flat_hash_map<absl::string_view, absl::StatusOr<SegmentCatalog::Active>> segments;
    absl::flat_hash_map<absl::string_view, UserId> planned_ids;
    absl::flat_hash_set<std::pair<SegmentId, UserId>> added_here;
    UserId next_new_id = NextNewUserId();
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (!outcomes[i].ok()) continue;
      const auto [segment_name, user_id] = pairs[i];
      auto [it, inserted] =
          segments.try_emplace(segment_name, absl::StatusOr<SegmentCatalog::Active>());
      if (inserted) {
        auto active = catalog_.ResolveActive(segment_name);
        if (!active) {
          it->second = SegmentNotFound({std::string(segment_name)});
        } else if (rules_.Active(active->id) || rules_.Pending(active->id)) {
          it->second = SegmentIsComputed(segment_name);
        } else {
          it->second = *active;
        }
      }
      if (!it->second.ok()) {
        outcomes[i] = it->second.status();
        continue;
      }
      const SegmentCatalog::Active segment = *it->second;
      const SegmentId skip[] = {segment.id};
      auto id = PlanUserOnce(user_id, batch.at, batch, skip, &next_new_id, planned_ids);
      if (!id.ok()) {
        outcomes[i] = id.status();
        continue;
      }
      OpRecord& record = batch.memberships.emplace_back(
          OpRecord{batch.at, ExpiryFor(batch.at, std::nullopt, std::nullopt, segment.ttl_seconds),
                   *id, segment.id, OpKind::kAdd, OpReason::kApi});
      const bool fresh = added_here.insert({segment.id, *id}).second;
      record.refresh = !fresh || shards_.Contains(segment.id, *id);
      outcomes[i] = !record.refresh;
    }
    if (!batch.memberships.empty() || !batch.users.empty()) {
      if (absl::Status s = Commit(batch); !s.ok()) return s;
    }
    return std::move(outcomes);
  });
}

absl::StatusOr<uint64_t> Engine::RemoveMembers(absl::string_view segment_name,
                                               absl::Span<const absl::string_view> user_ids) {
  if (absl::Status s = SegmentCatalog::ValidateName(segment_name); !s.ok()) return s;
  for (absl::string_view user_id : user_ids) {
    if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  }
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<uint64_t> {
    auto segment = catalog_.FindActive(segment_name);
    if (!segment) return SegmentNotFound({std::string(segment_name)});
    if (rules_.Active(*segment) || rules_.Pending(*segment)) {
      return SegmentIsComputed(segment_name);
    }
    OpBatch batch;
    batch.at = Now();
    absl::flat_hash_set<UserId> removed;
    for (absl::string_view user_id : user_ids) {
      std::optional<UserId> id = users_.Find(user_id);
      if (!id || !shards_.Contains(*segment, *id) || !removed.insert(*id).second) continue;
      batch.memberships.push_back(
          {batch.at, kNoExpiry, *id, *segment, OpKind::kRemove, OpReason::kApi});
    }
    if (batch.memberships.empty()) return uint64_t{0};
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return uint64_t{removed.size()};
  });
}

// ----------------------------------------------------------------------------- segments

void Engine::PlanAutoPercent(const SegmentMeta& meta, TimeMs now, OpBatch& batch) {
  TimeMs expiry = ExpiryFor(now, std::nullopt, std::nullopt, meta.ttl_seconds);
  auto add = [&](UserId user) {
    batch.memberships.push_back({now, expiry, user, meta.id, OpKind::kAdd, OpReason::kAutoPercent});
  };
  if (meta.sticky) {
    shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
      for (UserId user : view.Registered()) {
        if (StickyPercentDecision(meta.name, users_.Name(user), meta.auto_percent)) add(user);
      }
    });
    return;
  }
  // Selection sampling (Knuth's Algorithm S): one pass in id order, each user taken with
  // probability (still needed) / (still to see); exactly `want` users, uniformly.
  uint64_t population = registered_count_.load(std::memory_order_relaxed);
  uint64_t want = PercentOf(population, meta.auto_percent);
  if (want == 0) return;
  batch.memberships.reserve(want);
  uint64_t seen = 0;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
    for (UserId user : view.Registered()) {
      if (want == 0) return;
      uint64_t left = population - seen++;
      // This runs under write_mu_ (the function's REQUIRES), which a lambda's analysis misses.
      if (static_cast<double>(left) * unit(ABSL_TS_UNCHECKED_READ(rng_)) <
          static_cast<double>(want)) {
        add(user);
        --want;
      }
    }
  });
}

void Engine::PlanRamp(const SegmentMeta& meta, double old_percent, TimeMs now, OpBatch& batch) {
  const TimeMs expiry = ExpiryFor(now, std::nullopt, std::nullopt, meta.ttl_seconds);
  const bool up = meta.auto_percent > old_percent;
  shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
    const Roaring* members = view.Members(meta.id);
    for (UserId user : view.Registered()) {
      const absl::string_view external = users_.Name(user);
      // The decision is a threshold on the user's hash: the cuts differ only between them.
      const bool in_old = StickyPercentDecision(meta.name, external, old_percent);
      const bool in_new = StickyPercentDecision(meta.name, external, meta.auto_percent);
      const bool member = members != nullptr && members->contains(user);
      if (up && in_new && !in_old && !member) {
        batch.memberships.push_back(
            {now, expiry, user, meta.id, OpKind::kAdd, OpReason::kAutoPercent});
      } else if (!up && in_old && !in_new && member) {
        batch.memberships.push_back(
            {now, kNoExpiry, user, meta.id, OpKind::kRemove, OpReason::kAutoPercent});
      }
    }
  });
}

absl::StatusOr<SegmentInfo> Engine::CreateSegment(const SegmentSpec& spec) {
  if (absl::Status s = SegmentCatalog::ValidateName(spec.name); !s.ok()) return s;
  if (spec.description.size() > SegmentCatalog::kMaxDescriptionBytes) {
    return BadRequest("description is longer than 4096 bytes");
  }
  if (spec.auto_percent && !(*spec.auto_percent >= 0 && *spec.auto_percent <= 100)) {
    return BadRequest("auto_percent must be between 0 and 100");
  }
  if (spec.auto_percent_sticky && !spec.auto_percent) {
    return BadRequest("auto_percent_sticky needs auto_percent");
  }
  if (absl::Status s = ValidateTtl(spec.ttl_seconds); !s.ok()) return s;
  if (spec.rule && (spec.auto_percent || spec.ttl_seconds)) {
    return BadRequest("a rule segment takes neither auto_percent nor ttl_seconds");
  }

  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<SegmentInfo> {
    std::optional<SegmentId> existing = catalog_.Find(spec.name);
    if (existing && catalog_.IsActive(*existing)) return SegmentExists(spec.name);
    if (spec.rule) {
      if (absl::Status s = ValidateRule(*spec.rule, existing); !s.ok()) return s;
    }
    OpBatch batch;
    batch.at = Now();
    SegmentMeta meta;
    meta.id = existing ? *existing : catalog_.size();
    if (meta.id > kMaxSegmentId) return LimitExceeded("too many segments");
    meta.name = spec.name;
    meta.description = spec.description;
    meta.created_at = batch.at;
    meta.auto_percent = spec.auto_percent ? *spec.auto_percent : -1;
    meta.sticky = spec.auto_percent_sticky;
    meta.ttl_seconds = spec.ttl_seconds.value_or(0);
    if (spec.rule) meta.rule = *spec.rule;
    batch.segments.push_back(meta);
    if (meta.has_auto_percent()) PlanAutoPercent(meta, batch.at, batch);
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return InfoOf(meta);
  });
}

absl::StatusOr<SegmentInfo> Engine::UpdateSegment(absl::string_view name,
                                                  const SegmentPatch& patch) {
  if (absl::Status s = SegmentCatalog::ValidateName(name); !s.ok()) return s;
  if (patch.description && patch.description->size() > SegmentCatalog::kMaxDescriptionBytes) {
    return BadRequest("description is longer than 4096 bytes");
  }
  if (patch.ttl_seconds) {
    if (absl::Status s = ValidateTtl(*patch.ttl_seconds); !s.ok()) return s;
  }
  if (patch.auto_percent && !(*patch.auto_percent >= 0 && *patch.auto_percent <= 100)) {
    return BadRequest("auto_percent must be between 0 and 100");
  }
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<SegmentInfo> {
    auto id = catalog_.FindActive(name);
    if (!id) return SegmentNotFound({std::string(name)});
    SegmentMeta meta = catalog_.Get(*id);
    if (meta.computed() && (patch.auto_percent || (patch.ttl_seconds && *patch.ttl_seconds))) {
      return BadRequest(absl::StrCat("segment ", Quote(name),
                                     " is a rule segment: it takes neither auto_percent nor "
                                     "ttl_seconds"));
    }
    if (patch.rule && !meta.computed()) {
      return BadRequest(
          absl::StrCat("segment ", Quote(name), " is not a rule segment: create one with a rule"));
    }
    if (patch.rule) {
      if (absl::Status s = ValidateRule(*patch.rule, *id); !s.ok()) return s;
      if (!meta.rule_ready) {
        meta.rule = *patch.rule;  // the first backfill starts over with the new rule
      } else {
        meta.pending_rule = *patch.rule == meta.rule ? std::string() : *patch.rule;
      }
    }
    if (patch.auto_percent && !meta.sticky) {
      return BadRequest(absl::StrCat(
          "auto_percent can be changed only on a sticky rollout (created with "
          "auto_percent_sticky); segment ",
          Quote(name), " ", meta.has_auto_percent() ? "was a one-off sample" : "has no rollout"));
    }
    const double old_percent = meta.auto_percent;
    if (patch.description) meta.description = *patch.description;
    if (patch.ttl_seconds) meta.ttl_seconds = patch.ttl_seconds->value_or(0);
    if (patch.auto_percent) meta.auto_percent = *patch.auto_percent;
    OpBatch batch;
    batch.at = Now();
    batch.segments.push_back(meta);
    if (patch.auto_percent && *patch.auto_percent != old_percent) {
      PlanRamp(meta, old_percent, batch.at, batch);
    }
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return InfoOf(meta);
  });
}

absl::StatusOr<uint64_t> Engine::DeleteSegment(absl::string_view name) {
  if (absl::Status s = SegmentCatalog::ValidateName(name); !s.ok()) return s;
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<uint64_t> {
    auto id = catalog_.FindActive(name);
    if (!id) return SegmentNotFound({std::string(name)});
    OpBatch batch;
    batch.at = Now();
    SegmentMeta meta = catalog_.Get(*id);
    meta.deleted_at = batch.at;
    batch.segments.push_back(meta);
    batch.memberships.reserve(catalog_.Count(*id));
    shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
      const Roaring* members = view.Members(*id);
      if (members == nullptr) return;
      for (UserId user : *members) {
        batch.memberships.push_back(
            {batch.at, kNoExpiry, user, *id, OpKind::kRemove, OpReason::kSegmentDeleted});
      }
    });
    uint64_t removed = batch.memberships.size();
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return removed;
  });
}

absl::StatusOr<SegmentInfo> Engine::GetSegment(absl::string_view name) const {
  auto id = catalog_.Find(name);
  if (!id) return SegmentNotFound({std::string(name)});
  return InfoOf(catalog_.Get(*id));
}

std::vector<SegmentInfo> Engine::ListSegments(bool include_deleted) const {
  std::vector<SegmentInfo> out;
  for (const SegmentMeta& meta : catalog_.All()) {
    if (meta.deleted() && !include_deleted) continue;
    out.push_back(InfoOf(meta));
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) { return a.meta.name < b.meta.name; });
  return out;
}

absl::StatusOr<uint64_t> Engine::Count(absl::string_view name) const {
  auto id = catalog_.FindActive(name);
  if (!id) return SegmentNotFound({std::string(name)});
  return catalog_.Count(*id);
}

// ----------------------------------------------------------------------------- reads

absl::StatusOr<Membership> Engine::Check(absl::string_view segment,
                                         absl::string_view user_id) const {
  auto segment_id = catalog_.FindActive(segment);
  if (!segment_id) return SegmentNotFound({std::string(segment)});
  Membership m;
  if (auto user = users_.Find(user_id))
    m.member = shards_.Lookup(*segment_id, *user, &m.expires_at);
  return m;
}

std::vector<bool> Engine::CheckMany(
    absl::Span<const std::pair<absl::string_view, absl::string_view>> checks) const {
  const size_t n = checks.size();
  std::vector<bool> out(n, false);
  // Requests usually repeat a few segments: resolve each name once.
  absl::flat_hash_map<absl::string_view, std::optional<SegmentId>> resolved;
  std::vector<absl::string_view> names(n);
  for (size_t i = 0; i < n; ++i) names[i] = checks[i].second;
  // Users in one pass over the dictionary, one lock per index shard touched.
  std::vector<std::optional<UserId>> users(n);
  users_.FindMany(names, absl::MakeSpan(users));
  // Then the memberships sorted by user: one lock per membership shard, and neighbouring
  // users share containers.
  std::vector<std::pair<uint64_t, SegmentId>> order;  // (user << 32 | index, segment)
  order.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!users[i]) continue;
    auto it = resolved.find(checks[i].first);
    if (it == resolved.end()) {
      it = resolved.emplace(checks[i].first, catalog_.FindActive(checks[i].first)).first;
    }
    if (!it->second) continue;
    order.emplace_back((uint64_t{*users[i]} << 32) | i, *it->second);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::pair<SegmentId, UserId>> queries;
  queries.reserve(order.size());
  for (const auto& [key, segment] : order) {
    queries.emplace_back(segment, static_cast<UserId>(key >> 32));
  }
  std::unique_ptr<bool[]> found(new bool[queries.size()]);
  shards_.ContainsMany(queries, absl::MakeSpan(found.get(), queries.size()));
  for (size_t k = 0; k < order.size(); ++k) out[order[k].first & 0xffffffffu] = found[k];
  return out;
}

std::vector<UserSegment> Engine::UserSegments(absl::string_view user_id) const {
  std::vector<UserSegment> out;
  auto user = users_.Find(user_id);
  if (!user) return out;
  std::vector<ListedMembership> listed = shards_.SegmentsOf(*user);
  std::vector<SegmentId> ids;
  ids.reserve(listed.size());
  for (const ListedMembership& m : listed) ids.push_back(m.segment);
  std::vector<absl::string_view> names;
  names.reserve(listed.size());
  catalog_.NamesOf(ids, &names);
  out.reserve(listed.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    out.push_back({names[i], listed[i].expires_at, listed[i].added_at});
  }
  std::sort(out.begin(), out.end(),
            [](const UserSegment& a, const UserSegment& b) { return a.segment < b.segment; });
  return out;
}

absl::StatusOr<MemberPage> Engine::ListMembers(absl::string_view segment, uint32_t limit,
                                               std::optional<absl::string_view> after) const {
  if (limit < 1 || limit > kMaxPageLimit) {
    return BadRequest(absl::StrCat("limit must be between 1 and ", kMaxPageLimit));
  }
  if (!catalog_.FindActive(segment)) return SegmentNotFound({std::string(segment)});
  uint64_t start = 0;
  if (after) {
    auto after_id = users_.Find(*after);
    if (!after_id) return BadRequest(absl::StrCat("after: unknown user '", *after, "'"));
    start = uint64_t{*after_id} + 1;
  }
  auto scan = ScanMembers(segment, start, limit);
  if (!scan.ok()) return scan.status();
  MemberPage page;
  page.users = std::move(scan->users);
  if (scan->next != 0) page.next = page.users.back();
  return page;
}

absl::StatusOr<MemberScan> Engine::ScanMembers(absl::string_view segment, uint64_t start,
                                               uint32_t limit) const {
  if (limit < 1 || limit > kMaxPageLimit) {
    return BadRequest(absl::StrCat("limit must be between 1 and ", kMaxPageLimit));
  }
  auto segment_id = catalog_.FindActive(segment);
  if (!segment_id) return SegmentNotFound({std::string(segment)});
  MemberScan page;
  std::vector<UserId> ids;
  bool more = false;
  UserId next = 0;
  shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
    if (more) return;
    uint64_t shard_end = (uint64_t{view.index()} + 1) << MembershipShards::kShardBits;
    if (shard_end <= start) return;
    const Roaring* members = view.Members(*segment_id);
    if (members == nullptr) return;
    auto it = members->begin();
    it.equalorlarger(static_cast<uint32_t>(std::min<uint64_t>(start, UINT32_MAX)));
    for (; it != members->end(); ++it) {
      if (ids.size() == limit) {
        more = true;
        next = *it;
        return;
      }
      ids.push_back(*it);
    }
  });
  page.users.reserve(ids.size());
  for (UserId id : ids) page.users.emplace_back(users_.Name(id));
  if (more) page.next = next;
  return page;
}

absl::StatusOr<QueryResult> Engine::Query(absl::string_view expr, uint32_t limit) const {
  if (limit > kMaxQueryLimit) {
    return BadRequest(absl::StrCat("limit must be at most ", kMaxQueryLimit));
  }
  auto parsed = ParseExpression(expr);
  if (!parsed.ok()) return parsed.status();
  std::vector<std::string> names = SegmentNamesOf(**parsed);
  std::vector<SegmentId> ids;
  std::vector<std::string> unknown;
  for (const std::string& name : names) {
    if (auto id = catalog_.FindActive(name)) {
      ids.push_back(*id);
    } else {
      unknown.push_back(name);
    }
  }
  if (!unknown.empty()) return SegmentNotFound(std::move(unknown));
  CompiledExpr compiled(**parsed);
  QueryResult result;
  std::vector<UserId> users;
  shards_.ForEachShard([&](const MembershipShards::ShardView& view) {
    auto leaf = [&](size_t i) { return view.Members(ids[i]); };
    if (users.size() >= limit) {
      result.user_count += compiled.Count(leaf, view.Registered());
      return;
    }
    Roaring set = compiled.Evaluate(leaf, view.Registered());
    result.user_count += set.cardinality();
    for (UserId user : set) {
      if (users.size() >= limit) break;
      users.push_back(user);
    }
  });
  for (UserId id : users) result.users.emplace_back(users_.Name(id));
  return result;
}

// ----------------------------------------------------------------------------- time

absl::StatusOr<uint64_t> Engine::ProcessExpiries() {
  // One write (and writer-lock hold) per chunk: after a long downtime millions may be due,
  // and readers' and writers' waits stay those of one chunk.
  uint64_t expired = 0;
  for (;;) {
    bool more = false;
    auto chunk = ProcessExpiryChunk(&more);
    if (!chunk.ok()) return chunk.status();
    expired += *chunk;
    if (!more) return expired;
  }
}

absl::StatusOr<uint64_t> Engine::ProcessExpiryChunk(bool* more) {
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<uint64_t> {
    const TimeMs now = Now();
    auto expires_of = [&](SegmentId segment, UserId user) -> TimeMs {
      TimeMs expires_at = kNoExpiry;
      if (!shards_.Lookup(segment, user, &expires_at)) return kNoExpiry;
      return expires_at;
    };
    OpBatch batch;
    batch.at = now;
    // In order of expiry, each logged at its own expires_at.
    const uint64_t handed =
        expiries_.Collect(now, kMaxExpiryBatch, expires_of,
                          [&](TimeMs expires_at, SegmentId segment, const Roaring& users) {
                            for (UserId user : users) {
                              batch.memberships.push_back({expires_at, kNoExpiry, user, segment,
                                                           OpKind::kRemove, OpReason::kTtlExpired});
                            }
                          });
    *more = handed == kMaxExpiryBatch;
    if (batch.memberships.empty()) return 0;
    if (absl::Status s = Commit(batch); !s.ok()) {
      // Nothing was removed: put the entries back so that the next call retries them.
      for (const OpRecord& r : batch.memberships) expiries_.Schedule(r.segment, r.user, r.at);
      pending_expiries_.store(expiries_.pending(), std::memory_order_relaxed);
      *more = false;
      return s;
    }
    pending_expiries_.store(expiries_.pending(), std::memory_order_relaxed);
    expired_total_.fetch_add(batch.memberships.size(), std::memory_order_relaxed);
    return batch.memberships.size();
  });
}

// ----------------------------------------------------------------------------- stats

EngineStats Engine::Stats() const {
  EngineStats stats;
  for (const SegmentMeta& meta : catalog_.All()) {
    if (meta.deleted()) continue;
    ++stats.active_segments;
    stats.memberships += catalog_.Count(meta.id);
  }
  stats.registered_users = registered_count_.load(std::memory_order_relaxed);
  stats.known_users = users_.size();
  stats.pending_expiries = pending_expiries_.load(std::memory_order_relaxed);
  stats.expired_total = expired_total_.load(std::memory_order_relaxed);
  return stats;
}

EngineMemory Engine::Memory() const {
  EngineMemory m;
  m.dictionary = users_.MemoryUsage();
  m.memberships = shards_.MemoryUsage();
  m.bitmaps = shards_.BitmapBytes();
  MutexLock lock(&write_mu_);
  m.expiry_wheel = expiries_.MemoryUsage();
  return m;
}

}  // namespace segd::engine
