#pragma once

// History retention as a RocksDB compaction filter: when RocksDB compacts the operation log's
// record and index column families, entries of membership records older than the retention
// are dropped. Records the newest snapshot still needs for recovery (sequence number at or
// after its position) are always kept, so retention never changes what recovery rebuilds.
//
// What each column family's entries carry: `ops` keys are sequence numbers and values are
// blocks of records (a block is dropped when its newest record is past the retention);
// `by_time` keys start with the time; `by_user` and `by_segment` keys are a 4-byte id followed
// by the time; `user_runs` values hold the time (in the run's record). `events` values start
// with the event's time, and go after the event retention (not the history retention).
// `segment_counts` keys are a 4-byte segment and a minute's start: a minute goes once all of
// it is past the retention.
// Other column families get no filter.
//
// Thread safety: RocksDB calls the factory and filters from its compaction threads; the
// retention and the protected position are atomics the OpLog may change at any time.

#include <atomic>
#include <cstdint>
#include <memory>

#include "engine/engine.h"
#include "rocksdb/compaction_filter.h"

namespace segd::storage::detail {

// Shared between the OpLog and its filters.
struct RetentionState {
  std::atomic<int64_t> retention_ms{0};        // 0: keep everything
  std::atomic<uint64_t> protected_seq{0};      // ops at or after this seq are kept; 0: all kept
  std::atomic<int64_t> event_retention_ms{0};  // events; 0: keep every event
  engine::Clock* clock = nullptr;
};

enum class RetainedFamily { kOps, kByTime, kById, kUserRuns, kEvents, kCounts };

class RetentionFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  RetentionFilterFactory(std::shared_ptr<RetentionState> state, RetainedFamily family)
      : state_(std::move(state)), family_(family) {}

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  const char* Name() const override { return "segd.RetentionFilterFactory"; }

 private:
  std::shared_ptr<RetentionState> state_;
  RetainedFamily family_;
};

}  // namespace segd::storage::detail
