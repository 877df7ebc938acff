#pragma once

// The operation log's RocksDB column families, by index and name (docs/oplog_format.md).
//
// Thread safety: constants.

#include <array>
#include <cstddef>

#include "absl/strings/string_view.h"

namespace segd::storage::detail {

// The log's column families (docs/oplog_format.md), in the order they are opened.
enum class Family : size_t {
  kDefault,        // the format version
  kOps,            // membership records in blocks, by sequence number
  kByTime,         // runs of records with one time
  kByUser,         // a user's records
  kBySegment,      // runs of records with one time and segment
  kUsers,          // external ids of created users, in runs
  kUnregistered,   // deleted users
  kSegments,       // segment metadata
  kSnapshots,      // snapshots of membership state
  kUserRuns,       // runs of records for users a batch created
  kEvents,         // events, by event number
  kTraits,         // users' traits
  kSegmentCounts,  // entries and exits per segment and minute
  kUserSets,       // records of one block for users of one set (instead of by_user entries)
  kCount,
};
inline constexpr size_t kFamilyCount = static_cast<size_t>(Family::kCount);

// The names on disk, by Family.
inline constexpr std::array<absl::string_view, kFamilyCount> kFamilyNames = {
    "default",  "ops",       "by_time",   "by_user", "by_segment", "users",          "unregistered",
    "segments", "snapshots", "user_runs", "events",  "traits",     "segment_counts", "user_sets"};

}  // namespace segd::storage::detail
