#pragma once

// ReportStore: CSV report files kept in the data directory for a while (the API's link mode:
// POST /v1/reports, then GET /v1/reports/{id}.csv until it expires).
//
// Files live in DIR/reports/ as `<id>.csv`, written under a temporary name and renamed when
// complete, so a reader never sees half a report and a crash leaves only `.tmp` files (removed
// at start). A report expires at its file's modification time (set to its creation time by the
// store's clock) plus the TTL, so expiry survives restarts without other metadata. Ids are 128
// random bits in hex.
//
// Thread safety: every method is thread-safe; Create writes the file without holding the lock.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "storage/oplog.h"

namespace segd::storage {

struct StoredReport {
  std::string id;
  std::string path;
  uint64_t rows = 0;  // known for reports created by this process; 0 after a restart
  engine::TimeMs expires_at = 0;
};

class ReportStore {
 public:
  // Opens DIR/reports (creating it), removes leftover temporary files and files already
  // expired, and indexes the rest. `ttl_ms` is how long a report is kept. `clock` is not owned.
  static absl::StatusOr<std::unique_ptr<ReportStore>> Open(const std::string& data_dir,
                                                           engine::TimeMs ttl_ms,
                                                           engine::Clock* clock);
  ReportStore(const ReportStore&) = delete;
  ReportStore& operator=(const ReportStore&) = delete;

  // Writes the report of `filter` to a new file. Errors: Unavailable if the file cannot be
  // written (nothing is left behind), or the log's read error.
  absl::StatusOr<StoredReport> Create(const OpLog& log, const engine::Engine& engine,
                                      const HistoryFilter& filter);
  // The report `id` if it exists and has not expired; nullopt otherwise (also for ids that are
  // not of our form, so a path can never escape the directory).
  std::optional<StoredReport> Find(const std::string& id) const;
  // Deletes expired reports; returns how many. Call periodically.
  size_t Sweep();

 private:
  ReportStore(std::string dir, engine::TimeMs ttl_ms, engine::Clock* clock);
  std::string NewId();

  const std::string dir_;
  const engine::TimeMs ttl_ms_;
  engine::Clock* const clock_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, StoredReport> reports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segd::storage
