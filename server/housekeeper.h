#pragma once

// Housekeeper: the server's background thread. It expires memberships as they fall due
// (every 200 ms, so a membership ends within a second of its expiry), deletes stored reports
// past their TTL (every minute), and writes a snapshot every snapshot interval when the log
// has grown since the last one, or sooner once --snapshot-every records have been logged since
// the last (checked every 200 ms), so that the log a restart replays stays bounded.
//
// Thread safety: Start and Stop from the controlling thread; the work runs on its own thread.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/engine.h"
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

  void Start();
  // Stops and joins the thread (an expiry pass or snapshot in progress finishes first).
  void Stop();

  // Writes a snapshot now and records its figures. Any thread, one call at a time (the log
  // serialises snapshots).
  absl::Status Snapshot();

 private:
  void Run();

  engine::Engine& engine_;
  storage::OpLog& log_;
  storage::ReportStore& reports_;
  const ServerConfig& config_;
  ServiceFigures& figures_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace segd::server
