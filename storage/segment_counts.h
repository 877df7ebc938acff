#pragma once

// SegmentCounts: the entries and exits of each segment per minute that the log's writer has
// counted but not yet stored (the `segment_counts` family, oplog_format.h). Size series read
// minutes instead of scanning every change (point_in_time.h).
//
// The writer counts every record of every batch here (refreshes count nothing), holding each
// touched minute's full value: the stored value (read once, when the minute is first touched
// since the last flush) plus what came since. About once a second it writes the changed
// minutes into a batch with the position they are good through (`counts_through`), and, once
// that batch is in the log, forgets them. After a crash, recovery counts the records from that
// position again. A reader takes the minutes held here first and the stored ones for the
// rest: a minute held here is never older than its stored value, and one dropped from here
// has been stored, so nothing is counted twice or lost.
//
// Thread safety: Count, TakeDirty and Forget from the log's writer (one thread at a time);
// Held from any thread. A mutex guards the map.

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/op_record.h"
#include "storage/oplog_format.h"

namespace segd::storage {

class SegmentCounts {
 public:
  using Key = std::pair<engine::SegmentId, int64_t>;  // segment, minute

  using StoredFn = absl::FunctionRef<absl::StatusOr<SegmentCount>(const Key&)>;
  // Counts `records` in order. `stored` reads a minute's stored value (NotFound: none yet).
  absl::Status Count(absl::Span<const engine::OpRecord> records, StoredFn stored);
  // Adds `delta` to the minute `key`.
  absl::Status Add(const Key& key, const SegmentCount& delta, StoredFn stored);
  // Minutes changed since the last TakeDirty, with their values.
  size_t dirty() const;
  std::vector<std::pair<Key, SegmentCount>> TakeDirty();
  // The minutes of a TakeDirty are stored: drop those not changed since.
  void Forget(const std::vector<std::pair<Key, SegmentCount>>& stored);
  // The minutes of `segment` in [from, to) held here, into *out (replacing what is there).
  void Held(engine::SegmentId segment, int64_t from, int64_t to,
            std::map<int64_t, SegmentCount>* out) const;

 private:
  struct Entry {
    SegmentCount count;
    bool dirty = false;
  };
  mutable Mutex mu_;
  absl::flat_hash_map<Key, Entry> held_ ABSL_GUARDED_BY(mu_);
  size_t dirty_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segd::storage
