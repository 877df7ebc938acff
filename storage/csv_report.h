#pragma once

// History reports as CSV: the header `user_id,segment,operation,at,reason,expires_at`, one row
// per operation, RFC 4180 quoting, times in RFC 3339 UTC to the millisecond
// (2026-11-22T10:00:00.123Z), an empty expires_at when there is none.
//
// Thread safety: CsvReportWriter and CsvReportStream are used by one thread at a time (a
// stream may move between threads between calls); the free functions are reentrant.

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/time_text.h"
#include "engine/engine.h"
#include "storage/history_scan.h"
#include "storage/oplog.h"

namespace segd::storage {

// Appends `field`, quoted (with quotes doubled) when it holds a comma, quote, CR or LF, or
// starts or ends with a space.
void AppendCsvField(std::string* out, absl::string_view field);

// Formats report rows into a buffer that the caller takes from as it fills.
class CsvReportWriter {
 public:
  // The size a caller lets the buffer reach before taking it.
  static constexpr size_t kFlushBytes = 64 * 1024;

  // Names come from `engine`, which must hold every id the rows name (it does when it was
  // recovered from the same log).
  explicit CsvReportWriter(const engine::Engine& engine);
  CsvReportWriter(const CsvReportWriter&) = delete;
  CsvReportWriter& operator=(const CsvReportWriter&) = delete;

  void Header();
  void Row(const engine::OpRecord& record);
  size_t buffered() const { return buffer_.size(); }
  // Moves what is buffered to *out (replacing its contents).
  void Take(std::string* out);
  uint64_t rows() const { return rows_; }

 private:
  const std::string& SegmentName(engine::SegmentId id);

  const engine::Engine& engine_;
  std::string buffer_;
  uint64_t rows_ = 0;
  absl::flat_hash_map<engine::SegmentId, std::string> segment_names_;
  // Times of neighbouring rows mostly share their second: its text is kept per column.
  Rfc3339Writer at_text_;
  Rfc3339Writer expires_text_;
};

// A history report as CSV, produced a chunk at a time: a HistoryScan paused whenever about
// CsvReportWriter::kFlushBytes of text are ready. Holds no thread between calls, so a report
// can wait for a slow reader without holding one either.
class CsvReportStream {
 public:
  // `log` and `engine` must outlive the stream.
  CsvReportStream(const OpLog& log, const engine::Engine& engine, const HistoryFilter& filter);

  // Replaces *chunk with the next piece of the report (the header comes with the first) and
  // returns whether more follows. The last piece may be empty. Errors are the scan's.
  absl::StatusOr<bool> Next(std::string* chunk);
  uint64_t rows() const { return writer_.rows(); }

 private:
  HistoryScan scan_;
  CsvReportWriter writer_;
};

// Receives the report in chunks; returns false to stop (the client went away).
using CsvOut = absl::FunctionRef<bool(absl::string_view chunk)>;

// The whole report of `filter` through `out`, a chunk at a time. Returns the row count.
absl::StatusOr<uint64_t> WriteCsvReport(const OpLog& log, const engine::Engine& engine,
                                        const HistoryFilter& filter, CsvOut out);

}  // namespace segd::storage
