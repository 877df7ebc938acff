// Handlers of /v1/reports…: history as CSV, streamed or stored for later download.

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/time_text.h"
#include "storage/csv_report.h"

namespace segd::server::detail {
namespace {

constexpr absl::string_view kCsvType = "text/csv; charset=utf-8";
constexpr size_t kFileChunk = 64 * 1024;

// The filters of a report as the client wrote them.
struct ReportRequest {
  std::optional<std::string> from, to, period;
  std::vector<std::string> user_ids;
  std::vector<std::string> segments;
};

absl::StatusOr<engine::TimeMs> ParseBound(absl::string_view name, absl::string_view text) {
  auto t = ParseRfc3339(text);
  if (!t.ok()) return engine::BadRequest(absl::StrCat("'", name, "': ", t.status().message()));
  return *t;
}

// Resolves names to ids. Unknown users match nothing; unknown segments are segment_not_found
// (deleted segments are reportable). A filter that can match nothing gets an empty time range.
absl::StatusOr<storage::HistoryFilter> BuildFilter(const HandlerContext& ctx,
                                                   const ReportRequest& req) {
  storage::HistoryFilter filter;
  if (req.period && (req.from || req.to)) {
    return engine::BadRequest("give either 'period' or 'from'/'to', not both");
  }
  if (req.period) {
    auto month = ParseMonth(*req.period);
    if (!month.ok()) return engine::BadRequest(month.status().message());
    filter.from = month->first;
    filter.to = month->second;
  }
  if (req.from) {
    auto t = ParseBound("from", *req.from);
    if (!t.ok()) return t.status();
    filter.from = *t;
  }
  if (req.to) {
    auto t = ParseBound("to", *req.to);
    if (!t.ok()) return t.status();
    filter.to = *t;
  }
  if (filter.from > filter.to) return engine::BadRequest("'from' is after 'to'");
  std::vector<std::string> unknown;
  for (const std::string& name : req.segments) {
    if (auto id = ctx.engine.FindSegmentEvenDeleted(name)) {
      filter.segments.push_back(*id);
    } else {
      unknown.push_back(name);
    }
  }
  if (!unknown.empty()) return engine::SegmentNotFound(std::move(unknown));
  for (const std::string& name : req.segments) {
    if (absl::Status s = ctx.RequireSegment(name); !s.ok()) return s;
  }
  if (req.segments.empty() && ctx.caller != nullptr && !ctx.caller->Unscoped()) {
    // A key limited to some segments reports on those alone.
    filter.segments = VisibleSegments(ctx);
    if (filter.segments.empty()) filter.to = filter.from;  // matches nothing
  }
  for (const std::string& id : req.user_ids) {
    if (absl::Status s = engine::UserDictionary::Validate(id); !s.ok()) return s;
    if (auto user = ctx.engine.FindUser(id)) filter.users.push_back(*user);
  }
  if (!req.user_ids.empty() && filter.users.empty()) filter.to = filter.from;  // matches nothing
  return filter;
}

}  // namespace

absl::Status HistoryReport(const HandlerContext& ctx, Call& call) {
  const QueryParams& q = call.query;
  ReportRequest req;
  if (auto v = q.Get("from")) req.from = std::string(*v);
  if (auto v = q.Get("to")) req.to = std::string(*v);
  if (auto v = q.Get("period")) req.period = std::string(*v);
  for (absl::string_view v : q.All("user_id")) req.user_ids.emplace_back(v);
  for (absl::string_view v : q.All("segment")) req.segments.emplace_back(v);
  auto filter = BuildFilter(ctx, req);
  if (!filter.ok()) return filter.status();
  call.response.content_type = kCsvType;
  const storage::OpLog& log = ctx.log;
  const engine::Engine& engine = ctx.engine;
  // Opened on the first call, on a worker: opening reads (a listed user's runs).
  call.response.stream = [&log, &engine, f = *std::move(filter),
                          csv = std::unique_ptr<storage::CsvReportStream>()](
                             std::string* chunk) mutable -> absl::StatusOr<bool> {
    if (!csv) csv = std::make_unique<storage::CsvReportStream>(log, engine, f);
    return csv->Next(chunk);
  };
  return absl::OkStatus();
}

absl::Status CreateReport(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  ReportRequest req;
  auto read_text = [](JsonValue& v, std::string_view key,
                      std::optional<std::string>* out) -> absl::Status {
    auto s = ReadString(v, key);
    if (!s.ok()) return s.status();
    *out = std::string(*s);
    return absl::OkStatus();
  };
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "from") return read_text(v, key, &req.from);
        if (key == "to") return read_text(v, key, &req.to);
        if (key == "period") return read_text(v, key, &req.period);
        if (key == "user_ids") {
          return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
            std::string numeric;
            auto id = ReadUserId(e, &numeric, "user_ids[]");
            if (!id.ok()) return id.status();
            req.user_ids.emplace_back(*id);
            return absl::OkStatus();
          });
        }
        if (key == "segments") {
          return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
            auto name = ReadString(e, "segments[]");
            if (!name.ok()) return name.status();
            req.segments.emplace_back(*name);
            return absl::OkStatus();
          });
        }
        return UnknownField(key);
      });
  if (!parsed.ok()) return parsed;
  auto filter = BuildFilter(ctx, req);
  if (!filter.ok()) return filter.status();
  storage::ReportStore& reports = ctx.reports;
  const storage::OpLog& log = ctx.log;
  const engine::Engine& engine = ctx.engine;
  call.response.blocking = [&reports, &log, &engine, f = *std::move(filter)](Response& r) {
    auto stored = reports.Create(log, engine, f);
    if (!stored.ok()) {
      ErrorResponse(stored.status(), r);
      return;
    }
    r.status = 201;
    JsonWriter json(&r.body);
    json.BeginObject().Key("id").String(stored->id);
    json.Key("url").String(absl::StrCat("/v1/reports/", stored->id, ".csv"));
    json.Key("rows").Uint(stored->rows);
    json.Key("expires_at").Time(stored->expires_at, -1).EndObject();
  };
  return absl::OkStatus();
}

absl::Status GetReport(const HandlerContext& ctx, Call& call) {
  std::optional<storage::StoredReport> report = ctx.reports.Find(call.params[0]);
  auto not_found = [&] {
    return HttpError("report_not_found", absl::StrCat("report ", engine::Quote(call.params[0]),
                                                      " does not exist or has expired"));
  };
  if (!report) return not_found();
  // Open now, so that a report swept a moment later is still served whole.
  std::shared_ptr<std::FILE> file(std::fopen(report->path.c_str(), "rb"), [](std::FILE* f) {
    if (f) std::fclose(f);
  });
  if (!file) return not_found();
  call.response.content_type = kCsvType;
  call.response.headers.emplace_back(
      "Content-Disposition",
      absl::StrCat("attachment; filename=\"segd-report-", report->id, ".csv\""));
  call.response.stream = [file](std::string* chunk) -> absl::StatusOr<bool> {
    chunk->resize(kFileChunk);
    const size_t n = std::fread(chunk->data(), 1, chunk->size(), file.get());
    chunk->resize(n);
    if (std::ferror(file.get())) return absl::DataLossError("reading the report file failed");
    return n == kFileChunk;
  };
  return absl::OkStatus();
}

}  // namespace segd::server::detail
