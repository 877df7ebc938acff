#pragma once

// OpLog: segd's durable operation log on RocksDB, and the sink the engine writes to.
//
// Every batch the engine commits becomes one RocksDB WriteBatch: the membership records under
// consecutive sequence numbers, their (user, seq) and (segment, seq) index entries, and the
// dictionary entries (user names, segment metadata, deleted users). The log is both the history
// behind reports and the source of recovery: Recover() rebuilds an engine from it.
//
// Durability (OpLogOptions::durability):
//   kProcess  each batch is in RocksDB's write-ahead log (written to the OS) before the engine
//             applies it and the request is acknowledged. Survives a crash or kill -9 of the
//             process; a power loss may lose the last moments.
//   kFsync    as kProcess, and WaitDurable() — which the engine calls after releasing its
//             writer lock, before acknowledging — returns only once the WAL is fsynced. One
//             fsync covers every batch written before it started (group commit): concurrent
//             requests share it. The engine's write queue runs concurrent mutations as groups
//             and calls WaitDurable once per group (engine/write_queue.h), and the engine's
//             durability thread calls it once per round for the writes the server gathers
//             (Engine::WhenDurable), so the waiters here are a few threads, not every request.
// Disk space: writes are refused (Unavailable, the server's 503) while the filesystem has less
// than OpLogOptions::min_free_disk_bytes free (disk_reserve.h), and accepted again as soon as
// it has more: RocksDB itself never runs out of space for the write-ahead log.
// After a RocksDB write or sync error the log refuses further writes; reads of memory state
// are unaffected and memory never holds what the log does not. An error in RocksDB's
// background work (a flush or compaction that ran out of space) is cleared by TryResume once
// space is back; an error writing or syncing the write-ahead log is not (its last record may
// be torn), and writes stay refused until a restart. If the disk is so full at start-up that
// RocksDB cannot open the log for writing, Open opens it read-only: recovery and reads work,
// writes are refused until a restart.
//
// The data directory is held for the log's life (data_dir.h): another process is refused, and
// once the directory is moved the log fails for good and RocksDB touches no file by path.
//
// Thread safety: Write is called by the engine's single writer (under its lock); WaitDurable,
// durability_counters, ScanHistory, ForEachRecord, WriteState, CheckDirectory and the
// accessors from any thread at any time; WriteSnapshot from one thread at a time, concurrently
// with everything else; TryResume and RecordPosition from one thread at a time (the
// housekeeper's ticker); Recover once, before the engine is used.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/futex_word.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "storage/change_tail.h"
#include "storage/data_dir.h"
#include "storage/detail/families.h"
#include "storage/disk_reserve.h"
#include "storage/durability.h"
#include "storage/oplog_format.h"
#include "storage/segment_counts.h"

namespace rocksdb {
class Cache;
class DB;
class Env;
class ColumnFamilyHandle;
class Snapshot;
class WriteBatch;
}  // namespace rocksdb

namespace segd::storage {

namespace detail {
struct RetentionState;
class ErrorListener;
}  // namespace detail
class HistoryScan;

struct OpLogOptions {
  // When a mutation counts as durable; see the header comment. Default: kProcess.
  Durability durability = Durability::kProcess;
  // History retention: membership records older than this (by their `at`) leave reports at
  // once and are deleted from disk as RocksDB compacts (files are recompacted at least daily).
  // Records the newest snapshot needs for recovery are kept whatever their age, so retention
  // never changes the state recovered. 0 keeps everything. Default: 0.
  int64_t retention_ms = 0;
  // RocksDB's memory, one budget: an LRU cache of this capacity, shared by every column family,
  // holds the log's hot blocks for history reads (GET /v1/users/{id}/segments, reports), and
  // the memtables are charged to it (a WriteBufferManager), flushed once they hold half of it.
  // So memtables and cached blocks together stay near this size, and blocks give way to
  // memtables under writes. Default: 256 MiB.
  size_t memory_bytes = 256u << 20;
  // Write-ahead log bound: past it, RocksDB flushes the memtables that pin the oldest WAL
  // files. This bounds what a restart after a crash replays. Default: 256 MiB.
  uint64_t max_wal_bytes = 256u << 20;
  // Source of "now" for retention. Not owned. Default: the system clock.
  engine::Clock* clock = nullptr;
  // Free space kept on the log's filesystem: mutations are refused below it, expiry records
  // and snapshots below half of it (disk_reserve.h). 0 disables the check. Default: 0.
  uint64_t min_free_disk_bytes = 0;
  // Event retention: events older than this (by their `at`) are deleted from disk as RocksDB
  // compacts, and skipped by recovery and backfills at once. 0 keeps every event.
  // Default: 90 days.
  int64_t event_retention_ms = int64_t{90} * 24 * 3600 * 1000;
  // by_user's memtable: segd's per-user lists (detail/prefix_list_memtable.h), or RocksDB's
  // skiplist (slower for writes of existing users, but nothing of segd's own). The choice
  // leaves no trace on disk; either reads a log written with the other. Default: true (lists).
  bool user_index_lists = true;
  // Records the change tail keeps in memory (change_tail.h); older ones are read from disk.
  // Default: ChangeTail::kDefaultCapacity (262,144, about 10 MiB).
  size_t change_tail_records = ChangeTail::kDefaultCapacity;
  // How often the writer stores the per-minute segment counts it has counted
  // (segment_counts.h); a crash recounts the records since. 0: with every batch. Default: 1 s.
  int64_t counts_flush_ms = 1000;
};

// Which records a history scan returns.
struct HistoryFilter {
  engine::TimeMs from = std::numeric_limits<engine::TimeMs>::min();  // inclusive
  engine::TimeMs to = std::numeric_limits<engine::TimeMs>::max();    // exclusive
  std::vector<engine::UserId> users;                                 // empty: every user
  std::vector<engine::SegmentId> segments;                           // empty: every segment
};

struct RecoveryStats {
  uint64_t segments = 0;
  uint64_t users = 0;
  uint64_t events = 0;  // retained events replayed into rule state
  uint64_t traits = 0;
  double rules_seconds = 0;
  uint64_t snapshot_seq = 0;  // the snapshot loaded (its log position), 0 if none
  uint64_t records = 0;       // membership records replayed after it
  double seconds = 0;         // in all; then by phase:
  double dictionary_seconds = 0;
  double snapshot_seconds = 0;
  double replay_seconds = 0;
};

struct SnapshotStats {
  uint64_t seq = 0;  // log position the snapshot starts replay from
  uint64_t shards = 0;
  uint64_t bytes = 0;  // encoded size before RocksDB's compression
  double seconds = 0;
};

// How far writes and syncs have got; see OpLog::durability_counters().
struct DurabilityCounters {
  uint64_t written_batches = 0;  // batches handed to RocksDB
  uint64_t durable_batches = 0;  // of those, the first this many are as durable as promised
  uint64_t wal_syncs = 0;        // WAL syncs run for them (kFsync)
};

class OpLog final : public engine::OpSink, public engine::EventSource {
 public:
  // Opens (creating if missing) the log in DATA_DIR/log, holding DATA_DIR for as long as the
  // log is open (data_dir.h). Errors, each with a message that names the directory:
  // FailedPrecondition if another process holds it, PermissionDenied/Internal if it cannot be
  // created or written, DataLoss if it is corrupt, of an unknown format, or ends before the
  // position the previous run recorded (DataDir::CheckRecovered).
  static absl::StatusOr<std::unique_ptr<OpLog>> Open(const std::string& data_dir,
                                                     OpLogOptions options);
  ~OpLog() override;
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  // engine::OpSink. Write appends `batch` (see the header comment); Unavailable after a failure.
  absl::Status Write(const engine::OpBatch& batch) override;
  absl::Status WaitDurable() override;
  bool WaitDurableBlocks() const override { return options_.durability == Durability::kFsync; }
  // Publishes the batches written so far to the change tail (under --durability fsync, once
  // they are synced too).
  void Applied() override;
  // A consistent-enough view for tests and metrics: each counter is read once, without a lock.
  DurabilityCounters durability_counters() const;

  // Rebuilds `engine`, which must be new and empty: dictionaries first, then the newest
  // snapshot if there is one, then the membership records after it in log order, then rule
  // state: every retained event and every user's traits (docs/rules.md, "Recovery"). Does not
  // expire anything: call engine.ProcessExpiries() and engine.ProcessRuleDeadlines()
  // afterwards to act on (and log) what fell due while down.
  absl::StatusOr<RecoveryStats> Recover(engine::Engine& engine);

  // Writes a snapshot of `engine` (the engine this log is the sink of) and prunes older ones.
  // Fuzzy and non-blocking: the log position is read while no mutation is in flight, then each
  // shard is copied under its own reader lock while mutations continue; recovery replays the
  // log from that position, and since every record fully determines its (user, segment) pair,
  // replaying records the copy already reflects is harmless. The snapshot counts only once its
  // meta key is written (synced); a crash midway leaves the previous one in force.
  // Call from any one thread at a time, concurrently with mutations.
  absl::StatusOr<SnapshotStats> WriteSnapshot(engine::Engine& engine);

  // engine::EventSource: events numbered in [from_seq, to_seq) within the event retention, in
  // order, read through a RocksDB snapshot. Any thread.
  absl::Status ScanEvents(uint64_t from_seq, uint64_t to_seq,
                          absl::FunctionRef<bool(const engine::Event&)> fn) const override;

  // Calls fn(seq, record) for each record with seq >= from_seq, in order, until fn returns
  // false.
  absl::Status ForEachRecord(uint64_t from_seq,
                             absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const;

  // Calls fn(first_seq, records) for each ops block from the one holding `from_seq` (or the
  // first after it) on, in order, until fn returns false. Any thread.
  absl::Status ForEachBlock(
      uint64_t from_seq,
      absl::FunctionRef<bool(uint64_t, absl::Span<const engine::OpRecord>)> fn) const;

  // The recent records and the readers waiting for more (change_tail.h). Any thread.
  ChangeTail& changes() { return tail_; }
  const ChangeTail& changes() const { return tail_; }

  // Calls fn(minute, count) in minute order for each minute in [from_minute, to_minute) in
  // which `segment` had entries or exits (oplog_format.h, SegmentCount). Any thread.
  absl::Status ForEachSegmentCount(engine::SegmentId segment, int64_t from_minute,
                                   int64_t to_minute,
                                   absl::FunctionRef<void(int64_t, const SegmentCount&)> fn) const;

  // The first time history shows: now - retention, or the minimum without retention.
  engine::TimeMs RetentionCutoff() const;

  // Calls fn(seq, record) for each record matching `filter`, ordered by (at, seq), until fn
  // returns false: a HistoryScan (history_scan.h) read to its end in one go. Memory use is
  // bounded whatever the number of rows.
  absl::Status ScanHistory(const HistoryFilter& filter,
                           absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const;

  // Webhooks (WebhookRecord in oplog_format.h): written to the write-ahead log (a crash of
  // segd keeps them; a power loss may lose the last cursor moves, which then deliver again).
  // Any thread.
  absl::Status PutWebhook(const WebhookRecord& hook);
  absl::Status DeleteWebhook(absl::string_view id);
  absl::StatusOr<std::vector<WebhookRecord>> LoadWebhooks() const;

  // Test hook: compacts every column family retention applies to, now.
  absl::Status TEST_CompactHistory();
  // Test hook: called by WriteSnapshot between writing its meta key and syncing it.
  void TEST_SetBeforeSnapshotSync(std::function<void()> fn) {
    TEST_before_snapshot_sync_ = std::move(fn);
  }
  // Test hook: deletes every snapshot, so that recovery replays the whole log.
  absl::Status TEST_DropSnapshots();

  // The sequence number the next record will get (records start at 1).
  uint64_t next_seq() const { return next_seq_.load(std::memory_order_acquire); }
  // Where recovery would start replaying now: the newest snapshot's log position (after
  // Recover or WriteSnapshot), or 1 if there is none. next_seq() - replay_start() records would
  // be replayed. Any thread.
  uint64_t replay_start() const;
  // Bytes the log holds: SST files plus memtables, over every column family. Cheap (RocksDB
  // properties); any thread.
  uint64_t ApproximateBytes() const;
  // RocksDB's memory against its budget (OpLogOptions::memory_bytes). The cache's usage
  // includes the memtables charged to it. Cheap; any thread.
  struct MemoryUsage {
    uint64_t budget = 0;
    uint64_t memtables = 0;
    uint64_t cache = 0;  // cached blocks plus the memtables' charge
  };
  MemoryUsage memory_usage() const;
  // The RocksDB directory (DATA_DIR/log).
  const std::string& dir() const { return dir_; }

  // Checks that DATA_DIR is still where it was opened; once it is not, the log fails for good
  // (writes are refused, RocksDB touches no file by path) and this returns why. Any thread;
  // the server's housekeeper calls it every 100 ms.
  absl::Status CheckDirectory();
  // Records in DATA_DIR/segd.state how far the log is durable (DataDir::RecordPosition). One
  // thread at a time.
  absl::Status RecordPosition();

  // The time of the oldest record still in the log, if there is one. Any thread.
  std::optional<engine::TimeMs> FirstRecordAt() const;

  // Free space on the log's filesystem and the reserve kept there. Any thread.
  DiskReserve& disk() { return *disk_; }
  const DiskReserve& disk() const { return *disk_; }
  // Why writes are refused now, or OK: the disk reserve, a failure, a read-only open. Cheap
  // (no system call); any thread.
  absl::Status WriteState() const;
  // Clears a failure that space coming back can cure (a background flush or compaction that
  // ran out of space), if the disk now has room above the reserve. OK if writes are accepted
  // afterwards; otherwise why not. While the disk is below the reserve for what memtables
  // hold, also starts a flush (at most once a second). One thread at a time; the server's
  // housekeeper calls it every 100 ms.
  absl::Status TryResume();
  // Whether Open fell back to a read-only log because the disk was full.
  bool read_only() const { return read_only_; }

  // Tests: how many by_user and user_runs entries the log holds.
  std::pair<uint64_t, uint64_t> TEST_UserIndexEntries() const;
  // Tests: how many user_sets entries the log holds.
  uint64_t TEST_UserSetEntries() const;
  // Tests: how many by_time and by_segment entries the log holds.
  std::pair<uint64_t, uint64_t> TEST_RunIndexEntries() const;

 private:
  friend class HistoryScan;  // reads db_ and the families through its own snapshot

  OpLog(std::string dir, OpLogOptions options);
  // Marks the log failed with `status` (kept for WriteState) and returns the Unavailable error
  // the write answers. `no_space`: the cause is a full disk (a flush or compaction ran out of
  // space), which the message says as a refusal for the disk does.
  absl::Status Fail(absl::Status status, bool no_space = false);
  uint64_t TEST_CountEntries(rocksdb::ColumnFamilyHandle* cf) const;
  // The user index entries of one block: user_runs entries for runs of records for users this
  // batch created (`created_ranges`, [first, end)); user_sets entries for at least
  // kMinUserSet other records of one set of users and one `at`; by_user entries for the rest.
  // Runs start at or after *users_in_runs_end, which each run advances, so a batch's runs
  // share no user.
  void PutUserIndex(rocksdb::WriteBatch& wb, absl::Span<const engine::OpRecord> block,
                    uint64_t first_seq,
                    absl::Span<const std::pair<engine::UserId, uint64_t>> created_ranges,
                    uint64_t* users_in_runs_end);
  const std::string dir_;
  const OpLogOptions options_;
  // Declared before db_, so destroyed after it: RocksDB uses the file system to its end.
  std::unique_ptr<DataDir> data_dir_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  // The block cache the memtables are charged to (memory_usage).
  std::shared_ptr<rocksdb::Cache> cache_;
  // Handles of the column families, by detail::Family (detail/families.h).
  std::array<rocksdb::ColumnFamilyHandle*, detail::kFamilyCount> families_{};
  rocksdb::ColumnFamilyHandle* cf(detail::Family family) const {
    return families_[static_cast<size_t>(family)];
  }
  Mutex snapshot_mu_;  // one snapshot at a time
  // Every write to RocksDB holds this, so the engine's batches and a snapshot's puts are never
  // merged into one RocksDB write group. An engine write then waits at most for one shard's
  // put (about a millisecond), and ThreadSanitizer can see the hand-off: RocksDB's own
  // synchronisation of write groups is invisible to it (Debian's librocksdb is not
  // instrumented).
  Mutex rocks_write_mu_;

  std::shared_ptr<detail::RetentionState> retention_;
  ChangeTail tail_;  // after options_, which sizes it
  SegmentCounts counts_;
  // When Write last stored segment counts. Touched only by Write (one thread at a time).
  std::chrono::steady_clock::time_point last_counts_flush_;
  absl::StatusOr<SegmentCount> StoredSegmentCount(const SegmentCounts::Key& key) const;
  // Puts `dirty` and the position they count through into `wb`.
  void PutSegmentCounts(rocksdb::WriteBatch& wb,
                        const std::vector<std::pair<SegmentCounts::Key, SegmentCount>>& dirty,
                        uint64_t through);
  // Open: counts the records after the stored counts' position (all of a log from before
  // them) and stores the result.
  absl::Status CatchUpSegmentCounts();
  // Every record before it is applied to the engine (Applied).
  std::atomic<uint64_t> applied_seq_{1};

  std::atomic<uint64_t> next_seq_{1};
  std::function<void()> TEST_before_snapshot_sync_;
  std::unique_ptr<DiskReserve> disk_;
  // Told by RocksDB of background errors; says whether the write-ahead log failed.
  std::shared_ptr<detail::ErrorListener> errors_;
  bool read_only_ = false;  // set by Open only
  // When TryResume last flushed because memtables held the disk below the reserve. Touched by
  // TryResume only, which the housekeeper's ticker calls from one thread.
  std::chrono::steady_clock::time_point last_low_disk_flush_;
  std::atomic<bool> failed_{false};
  mutable Mutex failure_mu_;
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);  // why failed_ is set
  // The run of records the last Write ended with, which the next batch's first records may
  // continue without new by_time and by_segment entries (docs/oplog_format.md, "Continued
  // runs"). Reset by every Open, so the first batch after it starts new entries. Touched only
  // by Write, which the engine calls from one thread at a time.
  struct LastRun {
    uint64_t end_seq = 0;  // the seq after the run; 0: no run to continue
    engine::TimeMs at = 0;
    engine::SegmentId segment = 0;
  };
  LastRun last_run_;
  // Where rule state stands (oplog_format.h): loaded by Open, advanced by Write (one thread at
  // a time), read by Recover.
  RulesMeta rules_meta_;
  std::atomic<uint64_t> written_batches_{0};  // batches handed to RocksDB

  // Group sync (kFsync): one waiter at a time leads a sync (sync_leader_) covering every batch
  // written before it started; the others sleep on sync_rounds_, which each finished sync
  // advances, then either find their batch covered or lead the next one.
  std::atomic<uint64_t> synced_batches_{0};  // written only by the leader
  std::atomic<uint64_t> synced_seq_{0};      // every record before it is synced (kFsync)
  std::atomic<uint64_t> wal_syncs_{0};
  std::atomic<bool> sync_leader_{false};
  FutexWord sync_rounds_;
  std::atomic<bool> sync_failed_{false};
  Mutex sync_error_mu_;
  absl::Status sync_error_ ABSL_GUARDED_BY(sync_error_mu_);  // set once, with sync_failed_
  absl::Status SyncError();
};

}  // namespace segd::storage
