#pragma once

// Point-in-time answers from the retained history: was a user in a segment at an instant, and
// how large was a segment at the end of each step of a period, with its entries and exits.
//
// Membership at T is the state the last record of the pair at or before T left (an add whose
// expiry is after T, or not). With no retained record at or before T, the first record after T
// tells the state before it (an entry: out; an exit or a refresh: in), and with no retained
// record at all, the pair has not changed since before T: its current state, with its expiry.
// The state "at T" includes every change at T's millisecond.
//
// Sizes are counted backwards from the segment's size now: the size at the end of a step is the
// current size minus the entries and plus the exits after it. Entries and exits come from the
// per-minute segment counts (segment_counts.h) for whole minutes, and from the segment's index
// for the part of a minute before a step's end that is not on a minute.
//
// What it costs: a membership question reads one user's history (a prefix scan and one seek).
// A size series reads one stored entry per minute in which the segment changed, from `from` to
// now, plus a short scan per step end off the minute; the counts cost the writer one hash-map
// update per record and a few puts a second.
//
// Thread safety: any thread, concurrently with writes (each call reads one RocksDB snapshot).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/op_record.h"
#include "storage/oplog.h"

namespace segd::storage {

// The pair's state now, for when no retained record touches it.
struct CurrentMembership {
  bool member = false;
  engine::TimeMs expires_at = engine::kNoExpiry;
};

// Errors: before_retention if `at` is older than the retained history; the log's read errors.
absl::StatusOr<bool> MemberAt(const OpLog& log, engine::UserId user, engine::SegmentId segment,
                              engine::TimeMs at, CurrentMembership now);

struct SizePoint {
  engine::TimeMs at = 0;  // the step's end (exclusive)
  uint64_t user_count = 0;
  uint64_t entered = 0;
  uint64_t exited = 0;
};

// `points` steps of `step` ms from `from`: step k covers [from + k·step, from + (k+1)·step).
// `count_now` is the segment's size at `now`. REQUIRES: from + points·step <= now + 1.
// Errors: before_retention if `from` is older than the retained history.
absl::StatusOr<std::vector<SizePoint>> SizesOf(const OpLog& log, engine::SegmentId segment,
                                               engine::TimeMs from, engine::TimeMs step,
                                               size_t points, engine::TimeMs now,
                                               uint64_t count_now);

}  // namespace segd::storage
