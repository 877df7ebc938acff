#pragma once

// Housekeeper: the server's background work, on two threads so that neither waits for the
// other.
//   The ticker, every 100 ms (at wall-clock multiples of 100 ms): checks that the data
//   directory is still where it was opened (OpLog::CheckDirectory: once moved, the log stops
//   for good), re-reads the free disk space and lets the log resume writes once space is back
//   (OpLog::TryResume), expires the memberships that are due (Engine::ProcessExpiries, to the
//   millisecond), records the log's position in DATA_DIR/segd.state (OpLog::RecordPosition),
//   and logs every change of the write state (refused and why, accepted again).
//   The maintainer: deletes stored reports past their TTL and records when API keys were last
//   used (every minute); writes a snapshot
//   every snapshot interval when the log has grown since the last one, or sooner once
//   --snapshot-every records have been logged since the last (checked every 200 ms), so that
//   the log a restart replays stays bounded; and warns when, at the rate the log grows, the
//   disk will not last a day (checked every minute, said at most once an hour).
//   The ticker also acts on rule deadlines (Engine::ProcessRuleDeadlines) right after expiries.
//   The backfiller computes new and edited rule segments over the retained events
//   (Engine::RunBackfills), checking for work every 100 ms; Stop interrupts a long backfill
//   (recovery finishes it at the next start).
// A snapshot can take seconds on a large dataset; expiries go on meanwhile.
//
// Thread safety: Start and Stop from the controlling thread; Snapshot and WarnIfDiskShort from
// any thread.

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "server/access/key_store.h"
#include "server/api.h"
#include "server/config.h"
#include "storage/oplog.h"
#include "storage/report_store.h"

namespace segd::server {

class Housekeeper {
 public:
  Housekeeper(engine::Engine& engine, storage::OpLog& log, storage::ReportStore& reports,
              const ServerConfig& config, ServiceFigures& figures);
  ~Housekeeper();
  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;

  // The keys whose last use is recorded every minute. Set before Start.
  void set_keys(access::KeyStore* keys) { keys_ = keys; }

  void Start();
  // Stops and joins both threads (an expiry pass or snapshot in progress finishes first).
  void Stop();

  // Writes a snapshot now and records its figures. Any thread, one call at a time (the log
  // serialises snapshots).
  absl::Status Snapshot();

  // Logs a warning if the free disk space will not last a day at the rate the log grows: at
  // start-up, the rate over the log's whole life; later, over the time since start-up.
  // Returns whether it warned.
  bool WarnIfDiskShort(bool at_start);

 private:
  void RunTicker();
  void RunMaintainer();
  void RunBackfiller();
  // Waits up to `d`; false once Stop was called.
  bool Sleep(std::chrono::steady_clock::duration d);

  engine::Engine& engine_;
  storage::OpLog& log_;
  storage::ReportStore& reports_;
  const ServerConfig& config_;
  ServiceFigures& figures_;
  access::KeyStore* keys_ = nullptr;
  Mutex mu_;
  CondVar wake_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
  std::thread maintainer_;
  std::thread backfiller_;
  std::atomic<bool> stopping_{false};  // set by Stop, read by a running backfill
  // Where the log's size was measured at start-up, for the growth rate.
  const std::chrono::steady_clock::time_point started_;
  const uint64_t log_bytes_at_start_;
};

}  // namespace segd::server
