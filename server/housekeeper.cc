#include "server/housekeeper.h"

#include <string>

#include "engine/engine.h"
#include "server/log.h"

namespace segd::server {

using std::chrono::steady_clock;

Housekeeper::Housekeeper(engine::Engine& engine, storage::OpLog& log, storage::ReportStore& reports,
                         const ServerConfig& config, ServiceFigures& figures)
    : engine_(engine),
      log_(log),
      reports_(reports),
      config_(config),
      figures_(figures),
      started_(steady_clock::now()),
      log_bytes_at_start_(log.ApproximateBytes()) {}

Housekeeper::~Housekeeper() { Stop(); }

void Housekeeper::Start() {
  ticker_ = std::thread([this] { RunTicker(); });
  maintainer_ = std::thread([this] { RunMaintainer(); });
  backfiller_ = std::thread([this] { RunBackfiller(); });
}

void Housekeeper::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  stopping_.store(true);
  wake_.SignalAll();
  if (ticker_.joinable()) ticker_.join();
  if (maintainer_.joinable()) maintainer_.join();
  if (backfiller_.joinable()) backfiller_.join();
}

bool Housekeeper::Sleep(steady_clock::duration d) {
  MutexLock lock(&mu_);
  return !wake_.WaitFor(&mu_, d, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
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

bool Housekeeper::WarnIfDiskShort(bool at_start) {
  const uint64_t bytes = log_.ApproximateBytes();
  double seconds = 0;
  double grown = 0;
  if (at_start) {
    auto first = log_.FirstRecordAt();
    if (!first) return false;
    seconds = static_cast<double>(engine::SystemClock::Default()->NowMs() - *first) / 1000;
    grown = static_cast<double>(bytes);
  } else {
    seconds = std::chrono::duration<double>(steady_clock::now() - started_).count();
    grown = static_cast<double>(bytes) - static_cast<double>(log_bytes_at_start_);
  }
  // Too short a life says nothing about the rate.
  if (seconds < 600 || grown <= 0) return false;
  const double per_day = grown / seconds * 86400;
  const uint64_t free_bytes = log_.disk().Refresh();
  const uint64_t reserve = log_.disk().min_free_bytes();
  const double usable = free_bytes > reserve ? static_cast<double>(free_bytes - reserve) : 0;
  if (usable >= per_day) return false;
  Log(LogLevel::kWarn,
      "the disk will not last a day: the log grows about %.1f MiB a day and %.1f MiB are "
      "left above the reserve (--min-free-disk); writes will be refused in about %.1f hours. "
      "Free space, or set --history-retention",
      per_day / (1 << 20), usable / (1 << 20), usable / per_day * 24);
  return true;
}

void Housekeeper::RunTicker() {
  constexpr int64_t kTickMs = 100;
  bool expiry_failing = false;
  bool rules_failing = false;
  bool moved = false;
  bool position_failing = false;
  absl::Status write_state = log_.WriteState();
  for (;;) {
    // Wake at the next multiple of the tick in wall-clock time: memberships expire within a
    // tick of their expires_at.
    const int64_t now_ms = engine::SystemClock::Default()->NowMs();
    const int64_t wait_ms = kTickMs - now_ms % kTickMs;
    if (!Sleep(std::chrono::milliseconds(wait_ms))) return;
    // The directory first: nothing may be written once it has moved.
    if (!moved) {
      if (absl::Status s = log_.CheckDirectory(); !s.ok()) {
        moved = true;
        Log(LogLevel::kError, "%s", std::string(s.message()).c_str());
      }
    }
    // Then space: an expiry pass may need the room that was just freed.
    log_.TryResume().IgnoreError();
    auto expired = engine_.ProcessExpiries();
    if (!expired.ok()) {
      figures_.expiry_failures.fetch_add(1);
      if (!expiry_failing) {
        Log(LogLevel::kError, "expiring memberships failed (will retry): %s",
            std::string(expired.status().message()).c_str());
      }
    }
    expiry_failing = !expired.ok();
    auto rule_changes = engine_.ProcessRuleDeadlines();
    if (!rule_changes.ok()) {
      figures_.expiry_failures.fetch_add(1);
      if (!rules_failing) {
        Log(LogLevel::kError, "acting on rule deadlines failed (will retry): %s",
            std::string(rule_changes.status().message()).c_str());
      }
    }
    rules_failing = !rule_changes.ok();
    if (absl::Status s = log_.RecordPosition(); !s.ok() && !position_failing) {
      Log(LogLevel::kWarn, "recording the log position failed (will retry): %s",
          std::string(s.message()).c_str());
      position_failing = true;
    } else if (s.ok()) {
      position_failing = false;
    }
    absl::Status now_state = log_.WriteState();
    if (now_state.ok() != write_state.ok()) {
      if (now_state.ok()) {
        Log(LogLevel::kInfo, "writes are accepted again");
      } else {
        Log(LogLevel::kError, "writes are refused: %s", std::string(now_state.message()).c_str());
      }
    }
    write_state = now_state;
  }
}

void Housekeeper::RunBackfiller() {
  bool failing = false;
  do {
    auto did = engine_.RunBackfills(&stopping_);
    if (!did.ok() && !failing) {
      Log(LogLevel::kError, "backfilling rule segments failed (will retry): %s",
          std::string(did.status().message()).c_str());
    }
    failing = !did.ok();
  } while (Sleep(std::chrono::milliseconds(100)));
}

void Housekeeper::RunMaintainer() {
  constexpr auto kPeriod = std::chrono::milliseconds(200);
  constexpr auto kSweepPeriod = std::chrono::seconds(60);
  constexpr auto kDiskWarningPeriod = std::chrono::hours(1);
  const auto snapshot_period = std::chrono::seconds(config_.snapshot_interval_seconds);
  auto next_sweep = steady_clock::now() + kSweepPeriod;
  auto next_disk_check = steady_clock::now() + kSweepPeriod;
  auto next_snapshot = steady_clock::now() + snapshot_period;
  // After a failed snapshot, the count alone does not retry sooner than this.
  constexpr auto kSnapshotRetry = std::chrono::seconds(10);
  auto retry_after = steady_clock::now();
  // Counted from the snapshot recovery started from: a long tail replayed at start-up is
  // snapshotted soon, not only after as many new changes.
  uint64_t snapshot_seq = log_.replay_start();
  while (Sleep(kPeriod)) {
    auto now = steady_clock::now();
    if (now >= next_sweep) {
      size_t swept = reports_.Sweep();
      if (swept > 0) Log(LogLevel::kInfo, "deleted %zu expired reports", swept);
      if (keys_ != nullptr) {
        if (absl::Status s = keys_->FlushUsage(); !s.ok()) {
          Log(LogLevel::kWarn, "recording when keys were last used failed: %s",
              std::string(s.message()).c_str());
        }
      }
      next_sweep = now + kSweepPeriod;
    }
    if (now >= next_disk_check) {
      next_disk_check =
          now + (WarnIfDiskShort(/*at_start=*/false) ? kDiskWarningPeriod : kSweepPeriod);
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
  }
}

}  // namespace segd::server
