// Identities: aliases of a user and merges of two users (engine.h, AddAliases).

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/detail/durably.h"
#include "engine/engine.h"

namespace segd::engine {

UserId Engine::Survivor(UserId user) const {
  // Chains are short (a survivor merged again later); bounded all the same.
  for (int hops = 0; hops < 64; ++hops) {
    auto it = merged_into_.find(user);
    if (it == merged_into_.end()) return user;
    user = it->second;
  }
  return user;
}

void Engine::PlanMerge(UserId from, UserId into, OpBatch& batch) {
  const TimeMs now = batch.at;
  // Memberships: `into` takes each of `from`'s hand-made ones (the later expiry winning, none
  // beating any); rule segments are left to the rules, evaluated again for `into`.
  absl::flat_hash_map<SegmentId, TimeMs> mine;
  if (into < users_.size()) {  // (not a user this batch creates)
    for (const ListedMembership& m : shards_.SegmentsOf(into)) mine[m.segment] = m.expires_at;
  }
  for (const ListedMembership& m : shards_.SegmentsOf(from)) {
    batch.memberships.push_back(
        {now, kNoExpiry, from, m.segment, OpKind::kRemove, OpReason::kMerge});
    if (catalog_.Get(m.segment).computed()) continue;
    auto it = mine.find(m.segment);
    if (it == mine.end()) {
      batch.memberships.push_back(
          {now, m.expires_at, into, m.segment, OpKind::kAdd, OpReason::kMerge});
      mine[m.segment] = m.expires_at;
      continue;
    }
    const TimeMs later = (it->second == kNoExpiry || m.expires_at == kNoExpiry)
                             ? kNoExpiry
                             : std::max(it->second, m.expires_at);
    if (later != it->second) {
      OpRecord& r = batch.memberships.emplace_back(
          OpRecord{now, later, into, m.segment, OpKind::kAdd, OpReason::kMerge});
      r.refresh = true;
      it->second = later;
    }
  }
  // Traits: `into` keeps its own values; it takes `from`'s others. `from` keeps none.
  TraitIndex index;
  if (const rules::TraitMap* theirs = rules_.Traits(from)) {
    const rules::TraitMap* ours = rules_.Traits(into);
    auto has = [&](const std::string& key) {
      for (const TraitChange& t : batch.traits) {
        if (t.user == into && t.key == key) return t.value.has_value();
      }
      if (ours == nullptr) return false;
      for (const rules::Trait& t : *ours) {
        if (t.key == key) return t.value.has_value();
      }
      return false;
    };
    for (const rules::Trait& t : *theirs) {
      if (!t.value) continue;
      if (!has(t.key)) AddTraitChange(batch, {into, t.key, t.value, now}, index);
      AddTraitChange(batch, {from, t.key, std::nullopt, now}, index);
    }
  }
  // Names: `from`'s aliases and its own id now name `into`.
  for (const std::string& alias : users_.AliasesOf(from)) {
    batch.aliases.push_back({alias, into, true});
  }
  batch.aliases.push_back({std::string(users_.Name(from)), into, true});
  if (shards_.IsRegistered(from)) batch.users.push_back({UserEvent::Kind::kDeleted, from, {}});
  batch.merges.push_back({from, into});
}

absl::StatusOr<AliasResult> Engine::AddAliases(absl::string_view user_id,
                                               absl::Span<const std::string> aliases, bool merge) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  for (const std::string& alias : aliases) {
    if (absl::Status s = UserDictionary::Validate(alias); !s.ok()) {
      return BadRequest(absl::StrCat("alias ", Quote(alias), ": ", s.message()));
    }
    for (const std::string& refused : options_.refused_aliases) {
      if (absl::EqualsIgnoreCase(alias, refused)) {
        return BadRequest(absl::StrCat(
            "alias ", Quote(alias),
            " is refused: clients send it when they have no id, and it would join unrelated "
            "users"));
      }
    }
  }
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<AliasResult> {
    OpBatch batch;
    batch.at = Now();
    UserId next_new_id = NextNewUserId();
    bool newly_registered = false;
    auto planned = PlanUser(user_id, batch.at, batch, {}, &next_new_id, &newly_registered);
    if (!planned.ok()) return planned.status();
    const UserId me = *planned;
    const bool existing = me < users_.size();
    const std::string own = existing ? std::string(users_.Name(me)) : std::string(user_id);
    AliasResult result;
    result.user_id = own;
    size_t count = existing ? users_.AliasesOf(me).size() : 0;
    absl::flat_hash_set<std::string> attached;
    absl::flat_hash_set<UserId> merged;
    for (const std::string& alias : aliases) {
      if (alias == own || attached.contains(alias)) continue;
      std::optional<UserId> owner = users_.Find(alias);
      if (owner && *owner == me) continue;
      if (!owner) {
        batch.aliases.push_back({alias, me, true});
        attached.insert(alias);
        ++count;
        continue;
      }
      const UserId other = *owner;
      if (!merge) return AliasTaken(alias, users_.Name(other));
      if (!merged.insert(other).second) continue;
      // Its id and aliases become ours, and the alias named with them.
      count += users_.AliasesOf(other).size() + 1;
      for (const std::string& a : users_.AliasesOf(other)) attached.insert(a);
      attached.insert(std::string(users_.Name(other)));
      PlanMerge(other, me, batch);
      result.merged.emplace_back(users_.Name(other));
    }
    if (count > options_.max_aliases) {
      return Conflict(absl::StrCat("user ", Quote(own), " would have ", count, " aliases; at most ",
                                   options_.max_aliases, " are allowed"));
    }
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    std::sort(result.merged.begin(), result.merged.end());
    result.aliases = users_.AliasesOf(me);
    return result;
  });
}

absl::StatusOr<AliasResult> Engine::RemoveAlias(absl::string_view user_id,
                                                absl::string_view alias) {
  if (absl::Status s = UserDictionary::Validate(user_id); !s.ok()) return s;
  if (absl::Status s = UserDictionary::Validate(alias); !s.ok()) return s;
  return Durably([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<AliasResult> {
    std::optional<UserId> me = users_.Find(user_id);
    if (!me) return UserNotFound(user_id);
    std::optional<UserId> owner = users_.FindAlias(alias);
    if (!owner || *owner != *me) {
      absl::Status missing = absl::NotFoundError(absl::StrCat(
          "alias ", Quote(alias), " is not an alias of user ", Quote(users_.Name(*me))));
      return missing;
    }
    OpBatch batch;
    batch.at = Now();
    batch.aliases.push_back({std::string(alias), *me, false});
    if (absl::Status s = Commit(batch); !s.ok()) return s;
    return AliasResult{std::string(users_.Name(*me)), users_.AliasesOf(*me), {}};
  });
}

std::vector<std::string> Engine::AliasesOf(absl::string_view user_id) const {
  std::optional<UserId> id = users_.Find(user_id);
  if (!id) return {};
  return users_.AliasesOf(*id);
}

std::optional<std::string> Engine::OwnName(absl::string_view user_id) const {
  std::optional<UserId> id = users_.Find(user_id);
  if (!id) return std::nullopt;
  return std::string(users_.Name(*id));
}

void Engine::RecoverMerges(absl::Span<const UserMerge> merges) {
  MutexLock lock(&write_mu_);
  for (const UserMerge& m : merges) {
    merged_into_[m.from] = m.into;
    users_.MarkRetired(m.from);
  }
}

absl::Status Engine::RecoverAliases(absl::Span<const AliasChange> aliases) {
  MutexLock lock(&write_mu_);
  for (const AliasChange& a : aliases) {
    if (a.user >= users_.size()) {
      return absl::DataLossError(absl::StrCat("alias of unknown user ", a.user));
    }
    users_.SetAlias(a.name, a.user);
  }
  return absl::OkStatus();
}

}  // namespace segd::engine
