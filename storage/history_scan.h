#pragma once

// HistoryScan: the records a HistoryFilter selects, in (at, seq) order, handed out a piece at
// a time. A scan reads one consistent view of the log (a RocksDB snapshot taken when it
// opens; later writes are not seen) and keeps its place between calls, so that a caller can
// stop after any record and go on later, on another thread: a report streamed to a slow
// client holds the scan's memory (a few blocks) and no thread while the client reads.
//
// Cost: a range scan per listed user (whose index entries hold the records: nothing else is
// read), one seek in user_runs and a range scan of the user's set in user_sets (each entry
// decoded: about the imports of 256 users); else a range scan per listed segment, else one
// over the period; segment and period entries are runs of records, each read from its ops
// block (one block read serves every run inside it).
// Records past the log's retention are never returned.
//
// Thread safety: one thread at a time; it may move between threads between calls. The OpLog
// it came from must outlive it.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "storage/detail/block_reader.h"
#include "storage/oplog.h"

namespace rocksdb {
class Iterator;
class ManagedSnapshot;
}  // namespace rocksdb

namespace segd::storage {

class HistoryScan {
 public:
  // Receives one record; returns false to pause the scan after it.
  using RecordFn = absl::FunctionRef<bool(uint64_t seq, const engine::OpRecord& record)>;

  // Opens a scan of `filter` on `log`'s current state.
  HistoryScan(const OpLog& log, const HistoryFilter& filter);
  ~HistoryScan();
  HistoryScan(const HistoryScan&) = delete;
  HistoryScan& operator=(const HistoryScan&) = delete;

  // Hands records to `fn` in order until `fn` returns false (it has taken that record; the
  // next call goes on after it) or none is left. Returns true once the scan has ended, false
  // when `fn` paused it. An error ends the scan: later calls return it again. Errors: DataLoss
  // for a damaged log, Unavailable for a read that failed.
  absl::StatusOr<bool> Next(RecordFn fn);

 private:
  // One index range being merged: keys `prefix` + (at, seq) for at in [from, to).
  struct Cursor {
    std::unique_ptr<rocksdb::Iterator> it;
    std::string prefix;
    std::string end;  // the first key past the range
    int64_t at = 0;
    uint64_t seq = 0;
    bool loaded = false;   // whether it is at an entry in range (the last Load's answer)
    bool corrupt = false;  // Load met a key of the wrong length inside the range

    // Moves to the next entry and loads it.
    void Advance();
    bool Load();
  };
  enum class Index { kByTime, kByUser, kBySegment };
  // The records of the index entry being handed out: its own run [next, own_end), then those
  // that later batches continued it with, up to next_entry ("Continued runs" in
  // docs/oplog_format.md).
  struct Run {
    bool active = false;
    uint64_t next = 0;
    uint64_t own_end = 0;
    uint64_t next_entry = 0;
    engine::TimeMs at = 0;
    engine::SegmentId segment = 0;
  };

  absl::Status Open(const HistoryFilter& filter);
  // Takes the next entry of the cursor at live_[best] into run_ (or *record for by_user).
  // Returns whether *record holds a record to hand out now.
  absl::StatusOr<bool> TakeEntry(size_t best, uint64_t* seq, engine::OpRecord* record);
  // The next record of run_ into *record; false (and run_ inactive) when the run is over.
  absl::StatusOr<bool> NextOfRun(uint64_t* seq, const engine::OpRecord** record);
  // The records of users in user_runs (users a batch created) that the filter selects, at
  // most one per user, into run_records_ (Open sorts it by (at, seq)).
  absl::Status FindUserRunRecords(absl::Span<const uint32_t> users);
  // The records of the listed users in user_sets that the filter selects, in [from_, to_),
  // into run_records_. REQUIRES: `users` sorted.
  absl::Status FindUserSetRecords(absl::Span<const uint32_t> users);
  absl::Status Fail(absl::Status status);

  const OpLog& log_;
  std::unique_ptr<rocksdb::ManagedSnapshot> snapshot_;
  Index index_ = Index::kByTime;
  engine::TimeMs from_ = 0;
  engine::TimeMs to_ = 0;
  bool filter_segments_ = false;  // by_user entries must also pass wanted_segments_
  std::vector<engine::SegmentId> wanted_segments_;  // sorted
  std::vector<Cursor> cursors_;
  std::vector<size_t> live_;  // cursors still at an entry in range
  std::unique_ptr<rocksdb::Iterator> ops_it_;
  std::unique_ptr<detail::BlockReader> blocks_;
  Run run_;
  std::vector<std::pair<uint64_t, engine::OpRecord>> run_records_;
  size_t next_run_record_ = 0;
  bool ended_ = false;
  absl::Status status_;
};

}  // namespace segd::storage
