#pragma once

// The operation records that every engine mutation yields, and the sink they are handed to.
//
// A mutation is planned into an OpBatch, the batch is handed to the OpSink, and only when the
// sink accepts it is the batch applied to memory. Applying a batch depends on nothing but the
// batch, so a log of batches replayed through Engine::ApplyRecovered rebuilds the same state.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
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

  bool deleted() const { return deleted_at != 0; }
  bool has_auto_percent() const { return auto_percent >= 0; }
  friend bool operator==(const SegmentMeta&, const SegmentMeta&) = default;
};

// Everything one mutation changes. Applied in this order: segment metadata, user events of
// kind kCreated/kRegistered, memberships (in vector order), user events of kind kDeleted.
struct OpBatch {
  TimeMs at = 0;
  std::vector<SegmentMeta> segments;
  // Most batches are one request for one user: their events and records stay inline.
  absl::InlinedVector<UserEvent, 1> users;
  absl::InlinedVector<OpRecord, 2> memberships;

  bool empty() const { return segments.empty() && users.empty() && memberships.empty(); }
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
};

// A sink that accepts everything and keeps nothing.
class NullSink final : public OpSink {
 public:
  absl::Status Write(const OpBatch&) override { return absl::OkStatus(); }
};

}  // namespace segd::engine
