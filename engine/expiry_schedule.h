#pragma once

// ExpirySchedule: when each pending membership expires, to the millisecond.
//
// The timing wheel (expiry_wheel.h) works in whole seconds: an entry due at second s holds
// every expiry in ((s-1)·1000, s·1000] ms. Firing a second only once it has fully passed would
// end a membership up to a second after its expires_at, plus the time until the next pass.
// This class runs the wheel one second ahead instead: Collect(now_ms) advances the wheel to the
// second that holds now_ms, moves what comes out into a small map ordered by exact expiry time
// (the "near" entries, at most about a second's worth), and hands out those whose expiry is at
// or before now_ms. Called every 100 ms, a membership then ends within about 100 ms after its
// expires_at.
//
// Entries are keyed by (segment, user) and their exact expiry, which the caller always knows
// (it keeps it beside the membership); Cancel must be given the expiry the entry was scheduled
// with. A near entry whose segment was cancelled whole is checked against the caller when it
// comes due, and dropped unless its membership still has that expiry.
//
// Thread safety: none; confined to the engine's writer.

#include <cstdint>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "engine/expiry_wheel.h"
#include "engine/types.h"
#include "roaring/roaring.hh"

namespace segd::engine {

class ExpirySchedule {
 public:
  // Everything scheduled at or before `now_ms` is handed out by the first Collect.
  explicit ExpirySchedule(TimeMs now_ms);
  ExpirySchedule(const ExpirySchedule&) = delete;
  ExpirySchedule& operator=(const ExpirySchedule&) = delete;

  // REQUIRES: no entry is pending for (segment, user); expires_at != kNoExpiry.
  void Schedule(SegmentId segment, UserId user, TimeMs expires_at);
  // Cancels the entry scheduled with `expires_at`; a no-op if there is none.
  void Cancel(SegmentId segment, UserId user, TimeMs expires_at);
  // Cancels every entry of `segment` (near ones lazily, see the header comment).
  void CancelSegment(SegmentId segment);

  // The exact expiry the caller keeps for (segment, user), or kNoExpiry if none.
  using ExpiresAtFn = absl::FunctionRef<TimeMs(SegmentId segment, UserId user)>;
  // Called with the entries that come due, in order of expiry, one call per (expiry, segment).
  // They are no longer scheduled afterwards.
  using DueFn = absl::FunctionRef<void(TimeMs expires_at, SegmentId segment, const Roaring& users)>;
  // Hands out the entries whose expiry is at or before `now_ms`, earliest first, at most
  // `limit` of them (the rest stay, for the next call). Returns how many it handed out. Cost:
  // the wheel's advance and one expires_of call per entry that leaves the wheel (and one per
  // entry handed out of a segment cancelled whole).
  uint64_t Collect(TimeMs now_ms, uint64_t limit, ExpiresAtFn expires_of, DueFn due);

  // Entries waiting (near ones cancelled lazily may still count until they come due).
  uint64_t pending() const { return wheel_.pending() + near_count_; }
  size_t MemoryUsage() const;

 private:
  // The wheel's second for an expiry: the first whole second at or after it.
  static int64_t SecondOf(TimeMs expires_at) { return (expires_at + 999) / 1000; }
  void AddNear(TimeMs expires_at, SegmentId segment, UserId user);

  ExpiryWheel wheel_;
  // Entries whose second the wheel has reached, by exact expiry then segment.
  std::map<TimeMs, absl::flat_hash_map<SegmentId, Roaring>> near_;
  uint64_t near_count_ = 0;
  // Segments cancelled whole while near_ held entries: only their near entries can be stale,
  // so only theirs are checked against the caller when they come due. Cleared when near_
  // empties.
  absl::flat_hash_set<SegmentId> stale_segments_;
};

}  // namespace segd::engine
