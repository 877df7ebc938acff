#include "storage/disk_reserve.h"

#include <sys/statvfs.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segd::storage {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Mebibytes(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

DiskReserve::DiskReserve(std::string path, uint64_t min_free_bytes)
    : path_(std::move(path)), min_free_(min_free_bytes) {
  Refresh();
}

uint64_t DiskReserve::Refresh() {
  struct statvfs st;
  // Reset first: bytes admitted while statvfs runs are counted against the new figure, at
  // worst twice, never not at all.
  admitted_since_refresh_.store(0, std::memory_order_relaxed);
  if (statvfs(path_.c_str(), &st) != 0) return usable();
  last_refresh_ns_.store(NowNanos(), std::memory_order_relaxed);
  pending_bytes_.store(pending_ ? pending_() : 0, std::memory_order_relaxed);
  free_.store(uint64_t{st.f_bavail} * st.f_frsize, std::memory_order_relaxed);
  total_.store(uint64_t{st.f_blocks} * st.f_frsize, std::memory_order_relaxed);
  return usable();
}

uint64_t DiskReserve::Threshold(Use use) const {
  return use == Use::kMutation ? min_free_ : min_free_ / 2;
}

uint64_t DiskReserve::usable() const {
  const uint64_t free_bytes = free_.load(std::memory_order_relaxed);
  const uint64_t pending = pending_bytes_.load(std::memory_order_relaxed);
  return free_bytes > pending ? free_bytes - pending : 0;
}

bool DiskReserve::low() const { return min_free_ > 0 && usable() < min_free_; }

absl::Status DiskReserve::Admit(uint64_t bytes, Use use) {
  if (min_free_ == 0) return absl::OkStatus();
  uint64_t since = admitted_since_refresh_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  uint64_t free_bytes = usable();
  if (since >= kRefreshBytes) {
    free_bytes = Refresh();
    since = admitted_since_refresh_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  }
  const uint64_t left = free_bytes > since ? free_bytes - since : 0;
  const uint64_t threshold = Threshold(use);
  if (left >= threshold) return absl::OkStatus();
  // Refused: read again before answering, space may have been freed since; at most every
  // 10 ms, so that a storm of refused writes does not become a storm of statvfs calls.
  const int64_t now = NowNanos();
  if (now - last_refresh_ns_.load(std::memory_order_relaxed) >= 10'000'000) {
    free_bytes = Refresh();
  } else {
    free_bytes = usable();
  }
  if (free_bytes >= threshold + bytes) {
    admitted_since_refresh_.fetch_add(bytes, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(
      "disk almost full: ", Mebibytes(free_.load(std::memory_order_relaxed)),
      " free on the filesystem of '", path_, "' (", Mebibytes(pending_bytes()),
      " of it promised to memtables not yet flushed), and segd keeps ", Mebibytes(threshold),
      " free (--min-free-disk) for flushes, compactions and snapshots; writes are refused "
      "until space is freed, then resume by themselves"));
}

}  // namespace segd::storage
