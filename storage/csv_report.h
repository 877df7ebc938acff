#pragma once

// History reports as CSV: the header `user_id,segment,operation,at,reason,expires_at`, one row
// per operation, RFC 4180 quoting, times in RFC 3339 UTC to the millisecond
// (2026-11-22T10:00:00.123Z), an empty expires_at when there is none.
//
// Thread safety: CsvReportWriter is confined to one thread; the free functions are reentrant.

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/engine.h"
#include "storage/oplog.h"

namespace segd::storage {

// Appends `ms` (milliseconds since the epoch) as 2026-11-22T10:00:00.123Z.
void AppendRfc3339Millis(std::string* out, engine::TimeMs ms);
// Appends `field`, quoted (with quotes doubled) when it holds a comma, quote, CR or LF, or
// starts or ends with a space.
void AppendCsvField(std::string* out, absl::string_view field);

// Receives the report in chunks; returns false to stop (the client went away).
using CsvOut = absl::FunctionRef<bool(absl::string_view chunk)>;

class CsvReportWriter {
 public:
  static constexpr size_t kFlushBytes = 64 * 1024;

  // Names come from `engine`, which must hold every id the rows name (it does when it was
  // recovered from the same log).
  CsvReportWriter(const engine::Engine& engine, CsvOut out);
  CsvReportWriter(const CsvReportWriter&) = delete;
  CsvReportWriter& operator=(const CsvReportWriter&) = delete;

  // Each returns false once `out` has asked to stop.
  bool Header();
  bool Row(const engine::OpRecord& record);
  bool Finish();
  uint64_t rows() const { return rows_; }

 private:
  bool Flush();
  const std::string& SegmentName(engine::SegmentId id);

  const engine::Engine& engine_;
  CsvOut out_;
  std::string buffer_;
  uint64_t rows_ = 0;
  bool stopped_ = false;
  absl::flat_hash_map<engine::SegmentId, std::string> segment_names_;
  // The formatted text of the last whole second seen, to skip gmtime for the next row.
  int64_t cached_second_ = INT64_MIN;
  std::string cached_prefix_;
};

// Streams the rows of `filter` from `log` through a CsvReportWriter. Returns the row count.
absl::StatusOr<uint64_t> WriteCsvReport(const OpLog& log, const engine::Engine& engine,
                                        const HistoryFilter& filter, CsvOut out);

}  // namespace segd::storage
