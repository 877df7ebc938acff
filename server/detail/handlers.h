#pragma once

// The API's handlers, one function per route, grouped by resource in handlers_*.cc. Api
// (server/api.h) owns the route table and calls them; nothing else does.
//
// A handler fills `call.response` and returns OK, or returns the error to answer with (the
// response is then ignored). Handlers run on HTTP threads: anything slow goes into
// Response::blocking or Response::stream.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/engine.h"
#include "server/api.h"
#include "server/config.h"
#include "server/detail/json_input.h"
#include "server/json_writer.h"
#include "server/webhooks.h"
#include "storage/oplog.h"
#include "storage/report_store.h"

namespace segd::server::detail {

struct HandlerContext {
  engine::Engine& engine;
  storage::OpLog& log;
  storage::ReportStore& reports;
  const ServerConfig& config;
  ServiceFigures& figures;
  const Metrics& metrics;
  Webhooks* webhooks;               // null when the server runs without them (unit tests)
  access::Authenticator* auth;      // null with access control off
  const access::Principal* caller;  // null with access control off and on public routes

  // Whether the caller may see segment `name` (always, without access control or scope).
  bool CanSee(absl::string_view name) const { return caller == nullptr || caller->CanSee(name); }
  // 403 unless the caller may use segment `name`.
  absl::Status RequireSegment(absl::string_view name) const;
  // 403 for a caller limited to some segments: `what` acts on every segment.
  absl::Status RequireUnscoped(absl::string_view what) const;
  // How the caller is named in the audit log: its key id, "jwt", or "anonymous" (auth off).
  std::string CallerName() const { return caller ? caller->id : std::string("anonymous"); }
};

// A decoded query string.
class QueryParams {
 public:
  // Errors: bad_request for bad percent-encoding.
  absl::Status Parse(absl::string_view query);
  // The last value of `name`, if given.
  std::optional<absl::string_view> Get(absl::string_view name) const;
  std::vector<absl::string_view> All(absl::string_view name) const;
  // Every name given, in order (repeats included).
  std::vector<absl::string_view> Names() const;

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

struct Call {
  Request& request;
  std::vector<std::string>& params;  // path captures, decoded
  const QueryParams& query;
  Response& response;
};

using Handler = absl::Status (*)(const HandlerContext&, Call&);
// Opens a route's body as lines (Api::OpenLines) from the request's header: a consumer, null
// when this request's body is to be read whole, or the error to answer with.
using LinesOpener = absl::StatusOr<std::unique_ptr<LineConsumer>> (*)(const HandlerContext&, Call&);

// Segments (handlers_segments.cc).
absl::Status CreateSegment(const HandlerContext&, Call&);
absl::Status ListSegments(const HandlerContext&, Call&);
absl::Status GetSegment(const HandlerContext&, Call&);
absl::Status PatchSegment(const HandlerContext&, Call&);
absl::Status DeleteSegment(const HandlerContext&, Call&);
absl::Status CountSegment(const HandlerContext&, Call&);
absl::Status ListMembers(const HandlerContext&, Call&);
absl::Status CheckMember(const HandlerContext&, Call&);
absl::Status ImportMembers(const HandlerContext&, Call&);
absl::StatusOr<std::unique_ptr<LineConsumer>> OpenImportLines(const HandlerContext&, Call&);
absl::Status Query(const HandlerContext&, Call&);

// Users (handlers_users.cc).
absl::Status PutUser(const HandlerContext&, Call&);
absl::Status DeleteUser(const HandlerContext&, Call&);
absl::Status GetUserSegments(const HandlerContext&, Call&);
absl::Status UpdateUserSegments(const HandlerContext&, Call&);
absl::Status CheckMany(const HandlerContext&, Call&);

// Identities (handlers_aliases.cc).
absl::Status AddAliases(const HandlerContext&, Call&);
absl::Status RemoveAlias(const HandlerContext&, Call&);
// The user's own id for `user_id` (an alias names another), or user_id itself if unknown.
std::string OwnName(const HandlerContext& ctx, absl::string_view user_id);

// Events and traits (handlers_events.cc).
absl::Status PostEvents(const HandlerContext&, Call&);
absl::StatusOr<std::unique_ptr<LineConsumer>> OpenEventLines(const HandlerContext&, Call&);
absl::Status GetUser(const HandlerContext&, Call&);
absl::Status PatchTraits(const HandlerContext&, Call&);

// Reports (handlers_reports.cc).
absl::Status HistoryReport(const HandlerContext&, Call&);
absl::Status CreateReport(const HandlerContext&, Call&);
absl::Status GetReport(const HandlerContext&, Call&);

// Point in time (handlers_point_in_time.cc).
absl::Status CheckMemberAt(const HandlerContext&, Call&);
absl::Status SegmentSizes(const HandlerContext&, Call&);

// Webhooks (handlers_webhooks.cc).
absl::Status CreateWebhook(const HandlerContext&, Call&);
absl::Status ListWebhooks(const HandlerContext&, Call&);
absl::Status GetWebhook(const HandlerContext&, Call&);
absl::Status DeleteWebhook(const HandlerContext&, Call&);

// API keys (handlers_keys.cc).
absl::Status CreateKey(const HandlerContext&, Call&);
absl::Status ListKeys(const HandlerContext&, Call&);
absl::Status DeleteKey(const HandlerContext&, Call&);

// The change feed (handlers_changes.cc).
absl::Status GetChanges(const HandlerContext&, Call&);
absl::Status StreamChanges(const HandlerContext&, Call&);

// Service (handlers_service.cc).
absl::Status Health(const HandlerContext&, Call&);
absl::Status MetricsText(const HandlerContext&, Call&);
absl::Status OpenApi(const HandlerContext&, Call&);
absl::Status ApiDocs(const HandlerContext&, Call&);
absl::Status ApiDocsAsset(const HandlerContext&, Call&);

// Shared helpers.
// Errors: unsupported_media_type unless the request is JSON in UTF-8 (no Content-Type only
// with an empty body).
absl::Status RequireJson(const Request& request);
// 415 unless `content_type` names no charset or UTF-8.
absl::Status RequireUtf8(absl::string_view content_type);
// The error of a line longer than kMaxBodyLine.
std::string LineTooLong();
// Calls fn(number, line, readable) for each non-empty line of `piece` in order, without its
// "\n" or "\r\n"; `readable` bytes from line.data() may be read (the text is padded for
// simdjson first). Stops at fn's first error and returns it.
template <typename Fn>
absl::Status ForEachLine(BodyPiece& piece, Fn&& fn) {
  std::string& text = piece.text;
  text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  uint64_t number = piece.first_line;
  for (size_t pos = 0; pos < text.size(); ++number) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const size_t start = pos;
    size_t len = end - pos;
    pos = end + 1;
    if (len > 0 && text[start + len - 1] == '\r') --len;
    if (len == 0) continue;
    absl::Status s =
        fn(number, absl::string_view(text.data() + start, len), text.capacity() - start);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}
// The ids of every segment (deleted ones too) the caller may see.
std::vector<engine::SegmentId> VisibleSegments(const HandlerContext& ctx);
// Writes the segment object.
void WriteSegment(JsonWriter& json, const engine::SegmentInfo& info);
// The segments of a user, as GET /v1/users/{id}/segments lists them ("segments": [...]).
void WriteSegmentList(JsonWriter& json, const std::vector<engine::UserSegment>& segments);
// Whether some membership's added_at is unknown (recovered from a format-6 snapshot).
bool AddedAtUnknown(const std::vector<engine::UserSegment>& segments);
// Fills each unknown added_at from the user's history (its last add, to the second); those
// older than the history kept stay unknown. Reads the log: call on a worker.
absl::Status FillAddedAtFromHistory(const storage::OpLog& log, const engine::Engine& engine,
                                    engine::UserId user,
                                    std::vector<engine::UserSegment>* segments);
// Reads a "ttl_seconds" value: a whole number of seconds >= 1.
absl::StatusOr<int64_t> ReadTtl(JsonValue& value);

}  // namespace segd::server::detail
