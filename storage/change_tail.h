#pragma once

// ChangeTail: the membership records of the latest write batches, kept in memory, and the
// readers waiting for more of them. The change feed (change_feed.h) reads recent records here
// instead of from RocksDB, and long polls and live subscribers wait here without a thread.
//
// Positions are the log's sequence numbers. Records are appended as the log writes them but
// become readable only once published: applied to the engine (so that their users have
// names) and, under --durability fsync, synced. `published()` is the first seq not readable.
//
// A wait names a position and, optionally, segments. It ends (its wake function is called
// once) as soon as a record at or after the position is published that touches one of the
// segments (any record, with none named). Waits are indexed by segment, so a publish wakes
// only the waits it concerns: an idle subscriber of a quiet segment costs nothing per write.
// A wait that is cancelled before it fired proves that nothing it waited for was published
// meanwhile, which lets a filtered reader skip ahead without reading (Cancel).
//
// Thread safety: Append and Reset from the log's writer (one thread at a time); Publish from
// the writer or the sync leader; everything else from any thread. Wake functions run on the
// publishing thread (or the waiting one, if the wait is over at once) with no lock held; they
// must be quick (post to an executor).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/op_record.h"

namespace segd::storage {

struct TailRecord {
  engine::OpRecord record;
  bool block_start = false;  // the first record of an ops block (a change never spans two)
};

class ChangeTail {
 public:
  static constexpr size_t kDefaultCapacity = size_t{1} << 18;  // records, about 10 MiB

  // `capacity` is rounded up to a power of two.
  explicit ChangeTail(size_t capacity = kDefaultCapacity);
  ChangeTail(const ChangeTail&) = delete;
  ChangeTail& operator=(const ChangeTail&) = delete;

  // Empties the ring and sets both the next seq appended and published() to `next_seq` (the
  // log's, after recovery).
  void Reset(uint64_t next_seq);
  // The records of one ops block, whose first record has seq `first_seq`, which must be the
  // seq after the last appended. A block larger than the ring keeps its last records only.
  void Append(uint64_t first_seq, absl::Span<const engine::OpRecord> block);
  // Records before `end_seq` become readable (a smaller value than before is ignored), and the
  // waits they end are woken.
  void Publish(uint64_t end_seq);
  uint64_t published() const { return published_.load(std::memory_order_acquire); }
  // The first seq the ring holds (records before it are read from the log).
  uint64_t first_held() const;

  // Appends records [from, to) to *out and returns true, if the ring holds them all; false
  // (and nothing appended) otherwise. REQUIRES: to <= published().
  bool Read(uint64_t from, uint64_t to, std::vector<TailRecord>* out) const;

  using WakeFn = absl::AnyInvocable<void() &&>;
  // Waits for a published record at or after `from` touching one of `segments` (sorted; empty:
  // any). If there is one already, calls `wake` now. Returns a ticket for Cancel.
  uint64_t Wait(uint64_t from, std::vector<engine::SegmentId> segments, WakeFn wake);
  struct Cancelled {
    bool fired = false;  // wake was called or is being called
    // When not fired: no record in [from, quiet_until) touches the wait's segments.
    uint64_t quiet_until = 0;
  };
  Cancelled Cancel(uint64_t ticket);

  // Waits not yet fired or cancelled (metrics).
  size_t waiting() const;

 private:
  struct Waiter {
    std::vector<engine::SegmentId> segments;
    WakeFn wake;
  };
  // Whether a record in [from, to) touches `segments` (or the ring no longer holds them all).
  bool Touches(uint64_t from, uint64_t to, absl::Span<const engine::SegmentId> segments) const
      ABSL_SHARED_LOCKS_REQUIRED(ring_mu_);
  void Unindex(uint64_t ticket, const Waiter& waiter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(wait_mu_);

  const size_t mask_;
  mutable SharedMutex ring_mu_;  // after wait_mu_ when both are held
  std::vector<TailRecord> ring_ ABSL_GUARDED_BY(ring_mu_);
  uint64_t begin_ ABSL_GUARDED_BY(ring_mu_) = 1;  // first seq held
  uint64_t end_ ABSL_GUARDED_BY(ring_mu_) = 1;    // seq after the last appended

  mutable Mutex wait_mu_;
  // Written under wait_mu_, so that a cancelled wait knows what was published while it waited.
  std::atomic<uint64_t> published_{1};
  uint64_t next_ticket_ ABSL_GUARDED_BY(wait_mu_) = 1;
  absl::flat_hash_map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(wait_mu_);
  absl::flat_hash_set<uint64_t> any_segment_ ABSL_GUARDED_BY(wait_mu_);
  absl::flat_hash_map<engine::SegmentId, absl::flat_hash_set<uint64_t>> by_segment_
      ABSL_GUARDED_BY(wait_mu_);
};

}  // namespace segd::storage
