#include "storage/report_store.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/csv_report.h"

namespace segd::storage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kIdLength = 32;

bool IsReportId(const std::string& id) {
  if (id.size() != kIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

engine::TimeMs MtimeMs(const fs::path& path, std::error_code& ec) {
  auto t = fs::last_write_time(path, ec);
  auto sys = fs::file_time_type::clock::to_sys(t);
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

void SetMtimeMs(const fs::path& path, engine::TimeMs ms, std::error_code& ec) {
  auto sys = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
  fs::last_write_time(path, fs::file_time_type::clock::from_sys(sys), ec);
}

}  // namespace

ReportStore::ReportStore(std::string dir, engine::TimeMs ttl_ms, engine::Clock* clock)
    : dir_(std::move(dir)), ttl_ms_(ttl_ms), clock_(clock) {}

absl::StatusOr<std::unique_ptr<ReportStore>> ReportStore::Open(const std::string& data_dir,
                                                               engine::TimeMs ttl_ms,
                                                               engine::Clock* clock) {
  std::string dir = (fs::path(data_dir) / "reports").string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create report directory '", dir, "': ", ec.message()));
  }
  std::unique_ptr<ReportStore> store(new ReportStore(dir, ttl_ms, clock));
  engine::TimeMs now = clock->NowMs();
  MutexLock lock(&store->mu_);
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& path = entry.path();
    std::string id = path.stem().string();
    if (path.extension() != ".csv" || !IsReportId(id)) {
      // Leftovers of a crash mid-write, and anything else that is not a report.
      if (path.extension() == ".tmp") fs::remove(path, ec);
      continue;
    }
    std::error_code time_ec;
    engine::TimeMs expires_at = MtimeMs(path, time_ec) + ttl_ms;
    if (time_ec || expires_at <= now) {
      fs::remove(path, ec);
      continue;
    }
    store->reports_[id] = StoredReport{id, path.string(), 0, expires_at};
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot read report directory '", dir, "': ", ec.message()));
  }
  return store;
}

std::string ReportStore::NewId() {
  std::random_device rd;
  uint64_t hi = (uint64_t{rd()} << 32) | rd();
  uint64_t lo = (uint64_t{rd()} << 32) | rd();
  return absl::StrFormat("%016x%016x", hi, lo);
}

absl::StatusOr<StoredReport> ReportStore::Create(const OpLog& log, const engine::Engine& engine,
                                                 const HistoryFilter& filter) {
  StoredReport report;
  report.id = NewId();
  report.path = (fs::path(dir_) / (report.id + ".csv")).string();
  std::string tmp = report.path + ".tmp";
  std::error_code ec;
  auto fail = [&](absl::Status status) {
    fs::remove(tmp, ec);
    return status;
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return fail(absl::UnavailableError(absl::StrCat("cannot create '", tmp, "'")));
    auto rows = WriteCsvReport(log, engine, filter, [&](absl::string_view chunk) {
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      return static_cast<bool>(out);
    });
    if (!rows.ok()) return fail(rows.status());
    out.flush();
    if (!out) return fail(absl::UnavailableError(absl::StrCat("cannot write '", tmp, "'")));
    report.rows = *rows;
  }
  engine::TimeMs now = clock_->NowMs();
  SetMtimeMs(tmp, now, ec);
  fs::rename(tmp, report.path, ec);
  if (ec) {
    return fail(absl::UnavailableError(
        absl::StrCat("cannot store report '", report.path, "': ", ec.message())));
  }
  report.expires_at = now + ttl_ms_;
  MutexLock lock(&mu_);
  reports_[report.id] = report;
  return report;
}

std::optional<StoredReport> ReportStore::Find(const std::string& id) const {
  if (!IsReportId(id)) return std::nullopt;
  MutexLock lock(&mu_);
  auto it = reports_.find(id);
  if (it == reports_.end() || it->second.expires_at <= clock_->NowMs()) return std::nullopt;
  return it->second;
}

size_t ReportStore::Sweep() {
  engine::TimeMs now = clock_->NowMs();
  std::vector<std::string> doomed;
  {
    MutexLock lock(&mu_);
    for (auto it = reports_.begin(); it != reports_.end();) {
      if (it->second.expires_at <= now) {
        doomed.push_back(it->second.path);
        reports_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  std::error_code ec;
  for (const std::string& path : doomed) fs::remove(path, ec);
  return doomed.size();
}

}  // namespace segd::storage
