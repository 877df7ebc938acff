#pragma once

// ErrorListener: RocksDB tells it of every background error; it remembers whether one of them
// was a failed write to the write-ahead log, and keeps RocksDB from recovering on its own.
//
// Why: after a failed WAL append RocksDB's own recovery writes the failed write's buffered
// bytes to the WAL again, so a write segd answered as failed could reappear after a restart;
// and the WAL writer that saw the error must never be written again (Debian's librocksdb keeps
// its assertions on, and one of them aborts). segd therefore turns RocksDB's automatic
// recovery off and resumes itself (OpLog::TryResume), only from errors that did not touch the
// WAL: a flush or compaction that ran out of space.
//
// Thread safety: RocksDB calls it from its own threads; the accessors are atomic reads.

#include <atomic>

#include "rocksdb/listener.h"

namespace segd::storage::detail {

class ErrorListener final : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* /*bg_error*/) override {
    if (reason == rocksdb::BackgroundErrorReason::kWriteCallback ||
        reason == rocksdb::BackgroundErrorReason::kMemTable) {
      wal_failed_.store(true, std::memory_order_release);
    }
    errors_.fetch_add(1, std::memory_order_acq_rel);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status /*bg_error*/,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }

  // Whether a write to the write-ahead log (or the memtable after it) has failed.
  bool wal_failed() const { return wal_failed_.load(std::memory_order_acquire); }
  // Background errors reported so far.
  uint64_t errors() const { return errors_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> wal_failed_{false};
  std::atomic<uint64_t> errors_{0};
};

}  // namespace segd::storage::detail
