#pragma once

// DataDir: segd's hold on its data directory for the whole run.
//
// - Ownership. Lock() takes an exclusive flock on DIR/segd.lock, a file opened once and kept
//   open: a second segd on the same directory is refused at start-up, and renaming the
//   directory does not free the lock (it belongs to the open file, not to the path).
// - Identity. The directory is opened once too; CheckInPlace() compares what is at the path
//   now with what was opened. When the directory has been moved or deleted, the path may hold
//   another segd's live directory: everything that works by path (RocksDB creating, deleting
//   and renaming files) must stop at once. FileSystem() gives RocksDB a file system that asks
//   CheckInPlace() before each of those operations and refuses them once it fails, so a
//   stopped segd never deletes a file of a directory that is not its own.
// - Position. DIR/segd.state records how far the log had got (written about ten times a second
//   while it moves, by RecordPosition) and the boot it was written in. At the next start,
//   CheckRecovered() refuses a log that ends before that position: files of the log were lost
//   (deleted, or replaced by an older copy) and starting would silently drop acknowledged
//   changes. After a reboot a shorter log is expected in process durability (the last moments
//   before a power loss), so there it only warns.
//
// Thread safety: every method may be called from any thread; RecordPosition from one thread
// at a time.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace segd::storage {

class DataDir {
 public:
  // Creates the directory if missing and locks it. Errors: FailedPrecondition if another
  // process holds it (naming its pid when known), PermissionDenied if it cannot be created
  // or opened.
  static absl::StatusOr<std::unique_ptr<DataDir>> Lock(const std::string& path);
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  const std::string& path() const { return path_; }

  // OK while the path still leads to the directory (and lock file) opened at Lock();
  // FailedPrecondition, saying what happened, once it does not. Once failed, it stays failed.
  // Cost: two stat calls.
  absl::Status CheckInPlace();
  // Whether CheckInPlace has failed (no system call).
  bool moved() const { return moved_.load(std::memory_order_acquire); }

  // Records that the log holds every record before `next_seq`. Writes DIR/segd.state when the
  // position changed (a small file, written beside and renamed over). No-op once moved.
  absl::Status RecordPosition(uint64_t next_seq);
  // Checks a recovered log that ends before `next_seq` against the recorded position (see
  // the header comment). `strict`: refuse even after a reboot (fsync durability, whose
  // recorded positions are always synced). DataLoss with what is wrong and how to go on.
  absl::Status CheckRecovered(uint64_t next_seq, bool strict) const;
  // Position recorded by the previous run, 0 if none.
  uint64_t recorded_position() const { return recorded_; }

  // The file system RocksDB should use for this directory (see the header comment).
  std::shared_ptr<rocksdb::FileSystem> FileSystem();

 private:
  DataDir(std::string path, int dir_fd, int lock_fd);
  std::string StatePath() const;

  const std::string path_;
  const int dir_fd_;
  const int lock_fd_;
  dev_t dir_dev_ = 0;
  ino_t dir_ino_ = 0;
  dev_t lock_dev_ = 0;
  ino_t lock_ino_ = 0;
  std::atomic<bool> moved_{false};
  std::string boot_id_;
  // What the previous run recorded.
  uint64_t recorded_ = 0;
  std::string recorded_boot_;
  uint64_t last_written_ = 0;  // touched by RecordPosition only
};

}  // namespace segd::storage
