#include "storage/csv_report.h"

#include "base/time_text.h"

namespace segd::storage {

void AppendCsvField(std::string* out, absl::string_view field) {
  bool quote = !field.empty() && (field.front() == ' ' || field.back() == ' ');
  for (char c : field) {
    if (c == ',' || c == '"' || c == '\r' || c == '\n') {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out->append(field.data(), field.size());
    return;
  }
  out->push_back('"');
  for (char c : field) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

CsvReportWriter::CsvReportWriter(const engine::Engine& engine) : engine_(engine) {
  buffer_.reserve(kFlushBytes + 1024);
}

void CsvReportWriter::Take(std::string* out) {
  out->swap(buffer_);
  buffer_.clear();
}

const std::string& CsvReportWriter::SegmentName(engine::SegmentId id) {
  auto it = segment_names_.find(id);
  if (it == segment_names_.end()) it = segment_names_.emplace(id, engine_.SegmentName(id)).first;
  return it->second;
}

void CsvReportWriter::Header() {
  buffer_.append("user_id,segment,operation,at,reason,expires_at\r\n");
}

void CsvReportWriter::Row(const engine::OpRecord& r) {
  AppendCsvField(&buffer_, engine_.UserName(r.user));
  buffer_.push_back(',');
  AppendCsvField(&buffer_, SegmentName(r.segment));
  buffer_.push_back(',');
  buffer_.append(engine::OpKindName(r.op));
  buffer_.push_back(',');
  at_text_.Append(&buffer_, r.at);
  buffer_.push_back(',');
  buffer_.append(engine::OpReasonName(r.reason));
  buffer_.push_back(',');
  if (r.expires_at != engine::kNoExpiry) expires_text_.Append(&buffer_, r.expires_at);
  buffer_.append("\r\n");
  ++rows_;
}

CsvReportStream::CsvReportStream(const OpLog& log, const engine::Engine& engine,
                                 const HistoryFilter& filter)
    : scan_(log, filter), writer_(engine) {
  writer_.Header();
}

absl::StatusOr<bool> CsvReportStream::Next(std::string* chunk) {
  auto ended = scan_.Next([&](uint64_t, const engine::OpRecord& r) {
    writer_.Row(r);
    return writer_.buffered() < CsvReportWriter::kFlushBytes;
  });
  if (!ended.ok()) return ended.status();
  writer_.Take(chunk);
  return !*ended;
}

absl::StatusOr<uint64_t> WriteCsvReport(const OpLog& log, const engine::Engine& engine,
                                        const HistoryFilter& filter, CsvOut out) {
  CsvReportStream stream(log, engine, filter);
  std::string chunk;
  for (;;) {
    auto more = stream.Next(&chunk);
    if (!more.ok()) return more.status();
    if (!chunk.empty() && !out(chunk)) break;
    if (!*more) break;
  }
  return stream.rows();
}

}  // namespace segd::storage
