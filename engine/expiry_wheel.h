#pragma once

// ExpiryWheel: a hierarchical timing wheel at one-second resolution whose slots hold, for each
// segment, a Roaring bitmap of the users due in that slot.
//
// Five levels of 256 slots; level L spans 2^(8L) seconds per slot, so the wheel covers every
// absolute second below 2^40. An entry due at second d sits at the level of the highest byte
// in which d differs from the wheel's current second, in the slot given by that byte of d.
// That placement is a pure function of (d, now), so Cancel needs only the due time: O(1)
// schedule and cancel, no per-entry node. When the current second crosses a multiple of
// 2^(8L), the slot of level L that has come into range is cascaded into lower levels. A slot
// that comes due at level 0 is handed out whole, one bitmap per segment, so a burst of a
// million expiries in one segment and second is one bitmap, removed with one pass.
//
// Memory: what the slot bitmaps take, typically 2 bytes per pending entry or less for dense
// bursts. The exact due second of an entry is not stored here: cascading asks the caller for
// it (the engine keeps it in its reverse index).
//
// Thread safety: none; confined to the engine's writer.

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "engine/types.h"
#include "roaring/roaring.hh"

namespace segd::engine {

class ExpiryWheel {
 public:
  static constexpr int kLevels = 5;
  static constexpr int kSlotBits = 8;
  static constexpr int kSlots = 1 << kSlotBits;
  static constexpr int64_t kMaxSecond = (int64_t{1} << (kLevels * kSlotBits)) - 1;

  // `now_sec`: the current second; everything due at or before it counts as already handled.
  explicit ExpiryWheel(int64_t now_sec);
  ExpiryWheel(const ExpiryWheel&) = delete;
  ExpiryWheel& operator=(const ExpiryWheel&) = delete;

  // The last second processed by AdvanceTo (or given to the constructor).
  int64_t now() const { return now_; }
  // Entries waiting.
  uint64_t pending() const;

  // Schedules (segment, user) at `due_sec`. A due time at or before now() is scheduled for the
  // next second. REQUIRES: no entry for (segment, user) is pending; due_sec <= kMaxSecond.
  void Schedule(SegmentId segment, UserId user, int64_t due_sec);
  // Cancels the entry scheduled with `due_sec`. A no-op if it has already fired.
  void Cancel(SegmentId segment, UserId user, int64_t due_sec);
  // Cancels every entry of `segment`. Cost: one hash lookup per slot (1,280).
  void CancelSegment(SegmentId segment);

  // Called for each (segment, users) that comes due, with the slot's second.
  using FireFn = absl::FunctionRef<void(int64_t due_sec, SegmentId segment, Roaring users)>;
  // Returns the exact due second of a pending entry (for cascading).
  using DueFn = absl::FunctionRef<int64_t(SegmentId segment, UserId user)>;

  // Advances now() to `to_sec`, second by second (skipping stretches in which nothing can
  // happen), cascading and firing slots in time order. A no-op when to_sec <= now().
  void AdvanceTo(int64_t to_sec, DueFn due_of, FireFn fire);

  size_t MemoryUsage() const;

 private:
  using Slot = absl::flat_hash_map<SegmentId, Roaring>;
  // The level and slot where an entry due at `due` (> now_) belongs.
  void Place(int64_t due, int* level, int* slot) const;
  void Cascade(int level, DueFn due_of);

  int64_t now_;
  std::vector<Slot> slots_;  // kLevels * kSlots, level-major
  uint64_t counts_[kLevels] = {};
};

}  // namespace segd::engine
