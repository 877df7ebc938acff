#include "server/housekeeper.h"

#include <chrono>
#include <string>

#include "server/log.h"

namespace segd::server {

using std::chrono::steady_clock;

Housekeeper::Housekeeper(engine::Engine& engine, storage::OpLog& log,
                         storage::ReportStore& reports, const ServerConfig& config,
                         ServiceFigures& figures)
    : engine_(engine), log_(log), reports_(reports), config_(config), figures_(figures) {}

Housekeeper::~Housekeeper() { Stop(); }

void Housekeeper::Start() { thread_ = std::thread([this] { Run(); }); }

void Housekeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status Housekeeper::Snapshot() {
  auto stats = log_.WriteSnapshot(engine_);
  if (!stats.ok()) {
    figures_.snapshot_failures.fetch_add(1);
    return stats.status();
  }
  figures_.snapshots.fetch_add(1);
  figures_.last_snapshot_seq.store(stats->seq);
  figures_.last_snapshot_bytes.store(stats->bytes);
  figures_.last_snapshot_seconds.store(stats->seconds);
  Log(LogLevel::kInfo, "snapshot at log position %llu: %llu bytes in %.3f s",
      static_cast<unsigned long long>(stats->seq), static_cast<unsigned long long>(stats->bytes),
      stats->seconds);
  return absl::OkStatus();
}

void Housekeeper::Run() {
  constexpr auto kExpiryPeriod = std::chrono::milliseconds(200);
  constexpr auto kSweepPeriod = std::chrono::seconds(60);
  const auto snapshot_period = std::chrono::seconds(config_.snapshot_interval_seconds);
  auto next_sweep = steady_clock::now() + kSweepPeriod;
  auto next_snapshot = steady_clock::now() + snapshot_period;
  // After a failed snapshot, the count alone does not retry sooner than this.
  constexpr auto kSnapshotRetry = std::chrono::seconds(10);
  auto retry_after = steady_clock::now();
  // Counted from the snapshot recovery started from: a long tail replayed at start-up is
  // snapshotted soon, not only after as many new changes.
  uint64_t snapshot_seq = log_.replay_start();
  bool expiry_failing = false;
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, kExpiryPeriod, [this] { return stop_; })) {
    lock.unlock();
    auto expired = engine_.ProcessExpiries();
    if (!expired.ok()) {
      figures_.expiry_failures.fetch_add(1);
      if (!expiry_failing) {
        Log(LogLevel::kError, "expiring memberships failed (will retry): %s",
            std::string(expired.status().message()).c_str());
      }
    }
    expiry_failing = !expired.ok();
    auto now = steady_clock::now();
    if (now >= next_sweep) {
      size_t swept = reports_.Sweep();
      if (swept > 0) Log(LogLevel::kInfo, "deleted %zu expired reports", swept);
      next_sweep = now + kSweepPeriod;
    }
    // By time while changes arrive, and by count so that the tail a restart replays stays
    // bounded under a heavy write load.
    const bool due_by_count = config_.snapshot_every_records > 0 &&
                              log_.next_seq() - snapshot_seq >= config_.snapshot_every_records;
    if (now >= next_snapshot || (due_by_count && now >= retry_after)) {
      if (log_.next_seq() != snapshot_seq) {
        uint64_t seq = log_.next_seq();
        if (absl::Status s = Snapshot(); s.ok()) {
          snapshot_seq = seq;
        } else {
          Log(LogLevel::kError, "periodic snapshot failed: %s", std::string(s.message()).c_str());
          retry_after = steady_clock::now() + kSnapshotRetry;
        }
      }
      next_snapshot = steady_clock::now() + snapshot_period;
    }
    lock.lock();
  }
}

}  // namespace segd::server
