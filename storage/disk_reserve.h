#pragma once

// DiskReserve: keeps segd's writes out of the last `min_free_bytes` of the data directory's
// filesystem, so that what must still fit when the disk fills — RocksDB's flushes and
// compactions, a snapshot, a clean shutdown — does fit, and so that RocksDB never sees its
// write-ahead log fail for lack of space (a failed WAL append cannot be undone: see
// docs/operations.md, "When the disk fills").
//
// Admit(bytes, use) says whether `bytes` more may be written for `use`. Free space comes from
// statvfs, read again after every kRefreshBytes admitted and whenever Refresh() is called (the
// housekeeper calls it several times a second, which is how space freed by someone else, or
// taken by someone else, is noticed). Between reads, admitted bytes are subtracted from the
// last figure, so a burst of writes cannot overshoot by more than kRefreshBytes. Bytes that are
// accepted but not yet on disk for good (the memtables a flush will write) count as used.
//
// Thresholds by use: ordinary mutations need min_free_bytes left after them; expiry records
// and snapshots may go down to half of it (expiries are small and keep the contract that
// memberships end on time; a snapshot shortens the next restart and frees the log it covers).
//
// Thread safety: every method may be called from any thread at any time.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace segd::storage {

class DiskReserve {
 public:
  enum class Use { kMutation, kExpiry, kSnapshot };
  static constexpr uint64_t kRefreshBytes = 1u << 20;

  // `path`: a directory on the filesystem to watch. 0 bytes disables the reserve (Admit always
  // succeeds, figures are still kept).
  DiskReserve(std::string path, uint64_t min_free_bytes);
  // Bytes already accepted that will still take disk space (the log's memtables, which a
  // flush writes out): counted as gone, read again at each Refresh. Set once, before use.
  void set_pending_bytes(std::function<uint64_t()> pending) { pending_ = std::move(pending); }
  DiskReserve(const DiskReserve&) = delete;
  DiskReserve& operator=(const DiskReserve&) = delete;

  // OK, or Unavailable with a message naming the free space, the reserve and the flag.
  absl::Status Admit(uint64_t bytes, Use use);
  // Reads the free space (and the pending bytes) now. Returns usable() (the last known figure
  // if statvfs fails).
  uint64_t Refresh();

  // The last figures read (no system call).
  uint64_t free_bytes() const { return free_.load(std::memory_order_relaxed); }
  // Pending bytes as of the last Refresh (see set_pending_bytes).
  uint64_t pending_bytes() const { return pending_bytes_.load(std::memory_order_relaxed); }
  uint64_t total_bytes() const { return total_.load(std::memory_order_relaxed); }
  uint64_t min_free_bytes() const { return min_free_; }
  // Free bytes less pending ones, as of the last Refresh: what Admit weighs.
  uint64_t usable() const;
  // Whether an ordinary mutation of a few bytes would be refused now.
  bool low() const;
  const std::string& path() const { return path_; }

 private:
  uint64_t Threshold(Use use) const;

  const std::string path_;
  const uint64_t min_free_;
  std::function<uint64_t()> pending_;
  std::atomic<uint64_t> free_{0};
  std::atomic<uint64_t> pending_bytes_{0};
  std::atomic<int64_t> last_refresh_ns_{0};  // steady clock
  std::atomic<uint64_t> total_{0};
  // Bytes admitted since the last statvfs.
  std::atomic<uint64_t> admitted_since_refresh_{0};
};

}  // namespace segd::storage
