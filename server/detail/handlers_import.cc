// POST /v1/segments/{name}/users:import — one user_id a line (text/plain) or NDJSON objects
// {"user_id":…,"ttl_seconds":…} (application/x-ndjson).
//
// A small body is read whole, a large one as a stream of lines (Api::OpenLines); either way
// lines go to the engine in batches of kBatchLines, each applied and logged as one unit, so
// memory stays proportional to a batch beyond the body itself. A segment deleted while an import
// runs stops it with the batches before applied.

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"

namespace segd::server::detail {
namespace {

constexpr size_t kBatchLines = 65536;
constexpr size_t kMaxListedInvalid = 1000;

enum class ImportFormat { kText, kNdjson };

absl::StatusOr<ImportFormat> FormatOf(absl::string_view content_type) {
  absl::string_view media =
      absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';')));
  const bool known = absl::EqualsIgnoreCase(media, "text/plain") ||
                     absl::EqualsIgnoreCase(media, "application/x-ndjson") ||
                     absl::EqualsIgnoreCase(media, "application/ndjson") ||
                     absl::EqualsIgnoreCase(media, "application/jsonl");
  if (known) {
    if (absl::Status s = RequireUtf8(content_type); !s.ok()) return s;
  }
  if (absl::EqualsIgnoreCase(media, "text/plain")) return ImportFormat::kText;
  if (absl::EqualsIgnoreCase(media, "application/x-ndjson") ||
      absl::EqualsIgnoreCase(media, "application/ndjson") ||
      absl::EqualsIgnoreCase(media, "application/jsonl")) {
    return ImportFormat::kNdjson;
  }
  return HttpError("unsupported_media_type",
                   absl::StrCat("Content-Type '", content_type,
                                "' is not accepted for imports; send text/plain (one user_id a "
                                "line) or application/x-ndjson"));
}

struct InvalidLine {
  uint64_t line;
  std::string error;
};

class ImportRun {
 public:
  ImportRun(engine::Engine& engine, std::string segment, std::optional<int64_t> ttl)
      : engine_(engine), segment_(std::move(segment)), ttl_(ttl) {}

  void Invalid(uint64_t line, absl::string_view error) {
    ++invalid_count_;
    if (invalid_.size() < kMaxListedInvalid) invalid_.push_back({line, std::string(error)});
  }

  absl::Status Add(uint64_t line, std::string user_id, std::optional<int64_t> ttl) {
    items_.push_back({std::move(user_id), ttl});
    lines_.push_back(line);
    if (items_.size() >= kBatchLines) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (items_.empty()) return absl::OkStatus();
    auto result = engine_.Import(segment_, items_, ttl_);
    if (!result.ok()) return result.status();
    added_ += result->added;
    updated_ += result->updated;
    for (const auto& [index, status] : result->invalid) Invalid(lines_[index], status.message());
    items_.clear();
    lines_.clear();
    return absl::OkStatus();
  }

  void Write(Response& response) {
    // Invalid lines were found in two passes (parsing, then the engine): list them in order.
    std::sort(invalid_.begin(), invalid_.end(),
              [](const InvalidLine& a, const InvalidLine& b) { return a.line < b.line; });
    JsonWriter json(&response.body);
    json.BeginObject().Key("added").Uint(added_).Key("updated").Uint(updated_);
    json.Key("invalid_lines").BeginArray();
    for (const InvalidLine& l : invalid_) {
      json.BeginObject().Key("line").Uint(l.line).Key("error").String(l.error).EndObject();
    }
    json.EndArray().Key("invalid_count").Uint(invalid_count_).EndObject();
  }

 private:
  engine::Engine& engine_;
  std::string segment_;
  std::optional<int64_t> ttl_;
  std::vector<engine::ImportItem> items_;
  std::vector<uint64_t> lines_;
  std::vector<InvalidLine> invalid_;
  uint64_t invalid_count_ = 0;
  uint64_t added_ = 0;
  uint64_t updated_ = 0;
};

// Parses one NDJSON line. `capacity` bytes from line.data() are readable.
absl::Status ParseNdjsonLine(absl::string_view line, size_t capacity, std::string* user_id,
                             std::optional<int64_t>* ttl) {
  bool has_user = false;
  std::string numeric;
  absl::Status s = ParseObject(line.data(), line.size(), capacity,
                               [&](std::string_view key, JsonValue& v) -> absl::Status {
                                 if (key == "user_id") {
                                   auto id = ReadUserId(v, &numeric, key);
                                   if (!id.ok()) return id.status();
                                   *user_id = std::string(*id);
                                   has_user = true;
                                 } else if (key == "ttl_seconds") {
                                   if (IsNull(v)) return absl::OkStatus();
                                   auto t = ReadTtl(v);
                                   if (!t.ok()) return t.status();
                                   *ttl = *t;
                                 } else {
                                   return UnknownField(key);
                                 }
                                 return absl::OkStatus();
                               });
  if (!s.ok()) return s;
  if (!has_user) return MissingField("user_id");
  return absl::OkStatus();
}

// Import lines as they arrive.
class ImportLines final : public LineConsumer {
 public:
  ImportLines(engine::Engine& engine, std::string segment, std::optional<int64_t> ttl,
              ImportFormat format)
      : run_(engine, std::move(segment), ttl), format_(format) {}

  absl::Status Consume(BodyPiece& piece) override {
    for (uint64_t line : piece.overlong_lines) run_.Invalid(line, LineTooLong());
    return ForEachLine(
        piece, [this](uint64_t number, absl::string_view line, size_t readable) -> absl::Status {
          if (format_ == ImportFormat::kText)
            return run_.Add(number, std::string(line), std::nullopt);
          std::string user_id;
          std::optional<int64_t> line_ttl;
          absl::Status parsed = ParseNdjsonLine(line, readable, &user_id, &line_ttl);
          if (!parsed.ok()) {
            run_.Invalid(number, parsed.message());
            return absl::OkStatus();
          }
          return run_.Add(number, std::move(user_id), line_ttl);
        });
  }

  absl::Status Finish(Response& response) override {
    if (absl::Status s = run_.Flush(); !s.ok()) return s;
    run_.Write(response);
    return absl::OkStatus();
  }

 private:
  ImportRun run_;
  ImportFormat format_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LineConsumer>> OpenImportLines(const HandlerContext& ctx,
                                                              Call& call) {
  auto format = FormatOf(call.request.content_type);
  if (!format.ok()) return format.status();
  std::optional<int64_t> ttl;
  if (auto text = call.query.Get("ttl_seconds")) {
    int64_t n;
    if (text->empty() || (*text)[0] == '+' || !absl::SimpleAtoi(*text, &n) || n < 1) {
      return engine::BadRequest("query parameter 'ttl_seconds' must be a whole number >= 1");
    }
    ttl = n;
  }
  // Resolve the segment before reading lines: an unknown segment is 404 with nothing applied.
  if (auto count = ctx.engine.Count(call.params[0]); !count.ok()) return count.status();
  return std::make_unique<ImportLines>(ctx.engine, call.params[0], ttl, *format);
}

absl::Status ImportMembers(const HandlerContext& ctx, Call& call) {
  auto lines = OpenImportLines(ctx, call);
  if (!lines.ok()) return lines.status();
  BodyPiece piece{std::move(call.request.body), 1, {}};
  if (absl::Status s = (*lines)->Consume(piece); !s.ok()) return s;
  return (*lines)->Finish(call.response);
}

}  // namespace segd::server::detail
