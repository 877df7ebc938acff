#pragma once

// The operation records that every engine mutation yields, and the sink they are handed to.
//
// A mutation is planned into an OpBatch, the batch is handed to the OpSink, and only when the
// sink accepts it is the batch applied to memory. Applying a batch depends on nothing but the
// batch, so a log of batches replayed through Engine::ApplyRecovered rebuilds the same state.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "engine/rules/value.h"
#include "engine/types.h"

namespace segd::engine {

enum class OpKind : uint8_t { kAdd = 0, kRemove = 1 };

// Why a membership changed. The numeric values are part of the on-disk format: never reorder.
enum class OpReason : uint8_t {
  kApi = 0,
  kImport = 1,
  kAutoPercent = 2,
  kTtlExpired = 3,
  kSegmentDeleted = 4,
  kUserDeleted = 5,
  kRule = 6,   // a rule segment's rule became true or false for the user
  kMerge = 7,  // identities merged (POST /v1/users/{id}/aliases with "merge":true)
};

const char* OpKindName(OpKind kind);
const char* OpReasonName(OpReason reason);

// One change of one membership.
struct OpRecord {
  TimeMs at = 0;                  // when it happened; for kTtlExpired, when it was due
  TimeMs expires_at = kNoExpiry;  // for kAdd: the new expiry, kNoExpiry for none
  UserId user = 0;
  SegmentId segment = 0;
  OpKind op = OpKind::kAdd;
  OpReason reason = OpReason::kApi;
  // For kAdd: the user was a member already, so the add only moved the expiry. Not an entry:
  // the change feed and size series skip it. Logs before format version 6 never set it.
  bool refresh = false;

  friend bool operator==(const OpRecord&, const OpRecord&) = default;
};

// A change to the user dictionary or registry.
struct UserEvent {
  enum class Kind : uint8_t {
    kCreated = 0,     // a new external id got `user`; the user is registered
    kRegistered = 1,  // a known user that was deleted is registered again
    kDeleted = 2,     // the user left the registry (its memberships are removed separately)
  };
  Kind kind = Kind::kCreated;
  UserId user = 0;
  std::string external_id;  // set for kCreated only
};

// An alias attached to a user (`user` is then who `name` resolves to), or detached from it.
// A user merged into another keeps its id for history, and its own name becomes an alias of
// the user it was merged into.
struct AliasChange {
  std::string name;
  UserId user = 0;
  bool attach = true;
  friend bool operator==(const AliasChange&, const AliasChange&) = default;
};

// User `from` was merged into user `into`: from then on `from`'s retained events count as
// `into`'s (recovery and backfills read them so), and its rule state joins `into`'s.
struct UserMerge {
  UserId from = 0;
  UserId into = 0;
  friend bool operator==(const UserMerge&, const UserMerge&) = default;
};

// The full metadata of a segment after a change (create, restore, patch or delete).
struct SegmentMeta {
  SegmentId id = 0;
  std::string name;
  std::string description;
  TimeMs created_at = 0;
  TimeMs deleted_at = 0;     // 0 while active
  double auto_percent = -1;  // < 0 when not set
  bool sticky = false;
  int64_t ttl_seconds = 0;  // default TTL of new memberships; 0 when not set
  // Rule segments (docs/rules.md). `rule` is the rule answering once `rule_ready`; until then
  // (a new rule segment) it is being backfilled and the segment has no members.
  // `pending_rule` is an edit being backfilled while `rule` keeps answering.
  std::string rule;
  std::string pending_rule;
  bool rule_ready = false;

  bool deleted() const { return deleted_at != 0; }
  bool computed() const { return !rule.empty(); }
  bool has_auto_percent() const { return auto_percent >= 0; }
  friend bool operator==(const SegmentMeta&, const SegmentMeta&) = default;
};

// One property of an event, or one trait value.
struct EventProperty {
  std::string key;
  rules::Value value;
  friend bool operator==(const EventProperty&, const EventProperty&) = default;
};

// Something a user did (POST /v1/events). Events are numbered by the engine in the order it
// accepts them (`seq`, from 1); that order is the cut a backfill starts from.
struct Event {
  uint64_t seq = 0;
  UserId user = 0;
  TimeMs at = 0;  // when it happened (may be up to the retention in the past)
  std::string type;
  std::vector<EventProperty> properties;
  friend bool operator==(const Event&, const Event&) = default;
};

// A trait set (value) or removed (nullopt) at `at`. Per key, the newest `at` wins.
struct TraitChange {
  UserId user = 0;
  std::string key;
  std::optional<rules::Value> value;
  TimeMs at = 0;
  friend bool operator==(const TraitChange&, const TraitChange&) = default;
};

// Everything one mutation changes. Applied in this order: segment metadata, user events of
// kind kCreated/kRegistered, aliases, merges, rule deadlines up to rules_through, events,
// traits, memberships (in vector order), user events of kind kDeleted.
struct OpBatch {
  TimeMs at = 0;
  std::vector<SegmentMeta> segments;
  // Most batches are one request for one user: their events and records stay inline.
  absl::InlinedVector<UserEvent, 1> users;
  absl::InlinedVector<OpRecord, 2> memberships;
  // Events accepted (numbered consecutively) and trait changes; a trait change is here only if
  // it wins over the user's current value of that key (newest `at`), at most one per key.
  std::vector<Event> events;
  std::vector<TraitChange> traits;
  std::vector<AliasChange> aliases;
  std::vector<UserMerge> merges;
  // When set (> 0): every rule deadline at or before it has been acted on, its membership
  // changes are in this batch or earlier ones (docs/rules.md, "Deadlines").
  TimeMs rules_through = 0;

  bool empty() const {
    return segments.empty() && users.empty() && memberships.empty() && events.empty() &&
           traits.empty() && aliases.empty() && merges.empty() && rules_through == 0;
  }
};

// Receives every batch before it is applied.
//
// Thread safety: the engine calls Write from one thread at a time (it holds its writer lock), in
// the order the batches are applied; WaitDurable from any thread, without the lock. Neither may
// call back into the engine.
class OpSink {
 public:
  virtual ~OpSink() = default;
  // Records `batch` (durably enough to survive a crash of the process, for a durable sink). On
  // error the engine leaves its state unchanged and returns the error to the caller.
  virtual absl::Status Write(const OpBatch& batch) = 0;
  // Called after a successful Write, once the writer lock is released and before the mutation
  // returns: blocks until every batch written so far is as durable as the sink promises (for
  // example fsynced). Lets concurrent mutations share one sync. Default: nothing to wait for.
  virtual absl::Status WaitDurable() { return absl::OkStatus(); }
  // Whether WaitDurable blocks (for example on an fsync). The engine then runs concurrent
  // mutations as groups that share one wait (write_queue.h); otherwise each mutation takes the
  // writer lock itself, which costs fewer context switches when nothing blocks. Must not
  // change over the sink's life. Default: false.
  virtual bool WaitDurableBlocks() const { return false; }
  // Called after a batch Write accepted has been applied to memory, under the writer lock:
  // readers of the sink may now name its users. Default: nothing.
  virtual void Applied() {}
};

// Where a backfill reads the events accepted earlier: the durable log (storage/oplog.h).
//
// Thread safety: ScanEvents is called from the engine's backfill thread, without the engine's
// lock, concurrently with OpSink::Write.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Calls fn for each retained event numbered in [from_seq, to_seq), in order, until fn returns
  // false.
  virtual absl::Status ScanEvents(uint64_t from_seq, uint64_t to_seq,
                                  absl::FunctionRef<bool(const Event&)> fn) const = 0;
};

// A sink that accepts everything and keeps nothing.
class NullSink final : public OpSink {
 public:
  absl::Status Write(const OpBatch&) override { return absl::OkStatus(); }
};

}  // namespace segd::engine
