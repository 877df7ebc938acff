#include "server/api.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/time_text.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/detail/write_gatherer.h"
#include "server/json_writer.h"
#include "server/log.h"

namespace segd::server {

using access::Role;
using detail::Call;
using detail::HandlerContext;

struct Api::RouteDef {
  const char* method;
  const char* pattern;
  const char* name;  // label in metrics
  BodyKind body;
  detail::Handler handler;
  // Who may call it (docs/security.md). Every row states it; a row without one fails to
  // compile (the static_assert below the table).
  access::Role role;
  bool mutates = false;    // writes to the log, so waits for durability
  const char* query = "";  // the query parameters it takes, space-separated
  // Set for routes whose body may be read as lines while it arrives (Api::OpenLines).
  detail::LinesOpener lines = nullptr;
  // Set when its NDJSON requests count apart in metrics, under this label (Api::MetricRoute).
  const char* ndjson_label = nullptr;
};

// The route table. No two patterns can match the same path, so order does not matter.
constexpr Api::RouteDef kRoutes[] = {
    {"POST", "/v1/segments", "create_segment", BodyKind::kJson, detail::CreateSegment, Role::kAdmin,
     true},
    {"GET", "/v1/segments", "list_segments", BodyKind::kNone, detail::ListSegments, Role::kReader,
     false, "include_deleted"},
    {"GET", "/v1/segments/{name}", "get_segment", BodyKind::kNone, detail::GetSegment,
     Role::kReader},
    {"PATCH", "/v1/segments/{name}", "patch_segment", BodyKind::kJson, detail::PatchSegment,
     Role::kAdmin, true},
    {"DELETE", "/v1/segments/{name}", "delete_segment", BodyKind::kNone, detail::DeleteSegment,
     Role::kAdmin, true},
    {"GET", "/v1/segments/{name}/count", "count", BodyKind::kNone, detail::CountSegment,
     Role::kReader},
    {"GET", "/v1/segments/{name}/users", "list_members", BodyKind::kNone, detail::ListMembers,
     Role::kReader, false, "limit after"},
    {"GET", "/v1/segments/{name}/users/{user_id}", "check_member", BodyKind::kNone,
     detail::CheckMember, Role::kReader, false, "at"},
    {"GET", "/v1/segments/{name}/sizes", "segment_sizes", BodyKind::kNone, detail::SegmentSizes,
     Role::kReader, false, "from to step"},
    {"POST", "/v1/segments/{name}/users:import", "import", BodyKind::kImport, detail::ImportMembers,
     Role::kWriter, true, "ttl_seconds", detail::OpenImportLines},
    {"PUT", "/v1/users/{user_id}", "put_user", BodyKind::kNone, detail::PutUser, Role::kWriter,
     true},
    {"DELETE", "/v1/users/{user_id}", "delete_user", BodyKind::kNone, detail::DeleteUser,
     Role::kWriter, true},
    {"GET", "/v1/users/{user_id}/segments", "user_segments", BodyKind::kNone,
     detail::GetUserSegments, Role::kReader},
    {"POST", "/v1/users/{user_id}/segments", "update_user_segments", BodyKind::kJson,
     detail::UpdateUserSegments, Role::kWriter, true},
    {"GET", "/v1/users/{user_id}", "get_user", BodyKind::kNone, detail::GetUser, Role::kReader},
    {"POST", "/v1/users/{user_id}/aliases", "add_aliases", BodyKind::kJson, detail::AddAliases,
     Role::kWriter, true},
    {"DELETE", "/v1/users/{user_id}/aliases/{alias}", "remove_alias", BodyKind::kNone,
     detail::RemoveAlias, Role::kWriter, true},
    {"PATCH", "/v1/users/{user_id}/traits", "patch_traits", BodyKind::kJson, detail::PatchTraits,
     Role::kWriter, true},
    {"POST", "/v1/events", "events", BodyKind::kImport, detail::PostEvents, Role::kWriter, true, "",
     detail::OpenEventLines, "events_ndjson"},
    {"POST", "/v1/check", "check_many", BodyKind::kCheck, detail::CheckMany, Role::kReader},
    {"POST", "/v1/query", "query", BodyKind::kJson, detail::Query, Role::kReader},
    {"GET", "/v1/reports/history", "history_report", BodyKind::kNone, detail::HistoryReport,
     Role::kReader, false, "from to period user_id segment"},
    {"POST", "/v1/reports", "create_report", BodyKind::kJson, detail::CreateReport, Role::kReader},
    {"GET", "/v1/reports/{id}.csv", "get_report", BodyKind::kNone, detail::GetReport,
     Role::kReader},
    {"POST", "/v1/webhooks", "create_webhook", BodyKind::kJson, detail::CreateWebhook,
     Role::kAdmin},
    {"GET", "/v1/webhooks", "list_webhooks", BodyKind::kNone, detail::ListWebhooks, Role::kAdmin},
    {"GET", "/v1/webhooks/{id}", "get_webhook", BodyKind::kNone, detail::GetWebhook, Role::kAdmin},
    {"DELETE", "/v1/webhooks/{id}", "delete_webhook", BodyKind::kNone, detail::DeleteWebhook,
     Role::kAdmin},
    {"GET", "/v1/changes", "changes", BodyKind::kNone, detail::GetChanges, Role::kReader, false,
     "after segment limit wait"},
    {"GET", "/v1/changes/stream", "changes_stream", BodyKind::kNone, detail::StreamChanges,
     Role::kReader, false, "after segment"},
    {"POST", "/v1/keys", "create_key", BodyKind::kJson, detail::CreateKey, Role::kAdmin},
    {"GET", "/v1/keys", "list_keys", BodyKind::kNone, detail::ListKeys, Role::kAdmin},
    {"DELETE", "/v1/keys/{id}", "delete_key", BodyKind::kNone, detail::DeleteKey, Role::kAdmin},
    {"GET", "/health", "health", BodyKind::kNone, detail::Health, Role::kPublic},
    {"GET", "/metrics", "metrics", BodyKind::kNone, detail::MetricsText, Role::kReader},
    {"GET", "/openapi.yaml", "openapi", BodyKind::kNone, detail::OpenApi, Role::kPublic},
    {"GET", "/docs", "docs", BodyKind::kNone, detail::ApiDocs, Role::kPublic},
    {"GET", "/docs/{file}", "docs_file", BodyKind::kNone, detail::ApiDocsAsset, Role::kPublic},
};
constexpr int kRouteCount = sizeof(kRoutes) / sizeof(kRoutes[0]);

constexpr bool EveryRouteHasARole() {
  for (const Api::RouteDef& r : kRoutes) {
    if (r.role != Role::kPublic && r.role != Role::kReader && r.role != Role::kWriter &&
        r.role != Role::kAdmin) {
      return false;
    }
  }
  return true;
}
static_assert(EveryRouteHasARole(), "every row of the route table declares the role it needs");

namespace {

constexpr absl::string_view kRequiredPayload = "segd/required";

// Metric labels: every route's, then the NDJSON labels (in route order).
std::vector<std::string> RouteNames() {
  std::vector<std::string> names;
  for (const Api::RouteDef& r : kRoutes) names.emplace_back(r.name);
  for (const Api::RouteDef& r : kRoutes) {
    if (r.ndjson_label != nullptr) names.emplace_back(r.ndjson_label);
  }
  return names;
}

// The metric id of each route's NDJSON label, -1 for none.
const std::vector<int>& NdjsonMetricIds() {
  static const auto* kIds = [] {
    auto* ids = new std::vector<int>;
    int next = kRouteCount;
    for (const Api::RouteDef& r : kRoutes) ids->push_back(r.ndjson_label ? next++ : -1);
    return ids;
  }();
  return *kIds;
}

}  // namespace

Api::Api(engine::Engine& engine, storage::OpLog& log, storage::ReportStore& reports,
         const ServerConfig& config, ServiceFigures& figures)
    : engine_(engine),
      log_(log),
      reports_(reports),
      config_(config),
      figures_(figures),
      metrics_(RouteNames()) {
  for (int i = 0; i < kRouteCount; ++i) router_.Add(kRoutes[i].method, kRoutes[i].pattern, i);
}

std::vector<std::pair<std::string, std::string>> Api::Routes() {
  std::vector<std::pair<std::string, std::string>> routes;
  for (const RouteDef& r : kRoutes) routes.emplace_back(r.method, r.pattern);
  return routes;
}

std::vector<access::Role> Api::RouteRoles() {
  std::vector<access::Role> roles;
  for (const RouteDef& r : kRoutes) roles.push_back(r.role);
  return roles;
}

const std::string& Api::RouteName(int route) const {
  static const std::string kUnmatched = "unmatched";
  static const std::vector<std::string> kNames = RouteNames();
  return route >= 0 && route < static_cast<int>(kNames.size()) ? kNames[route] : kUnmatched;
}

int Api::MetricRoute(int route, absl::string_view content_type) const {
  if (route < 0 || route >= kRouteCount || NdjsonMetricIds()[route] < 0) return route;
  const std::string media = absl::AsciiStrToLower(content_type.substr(0, content_type.find(';')));
  const bool ndjson = absl::StrContains(media, "ndjson") || absl::StrContains(media, "jsonl");
  return ndjson ? NdjsonMetricIds()[route] : route;
}

RouteMatch Api::Route(absl::string_view method, absl::string_view path) const {
  const bool head = method == "HEAD";
  RouteMatch match = router_.Match(head ? "GET" : method, path);
  match.head = head;
  if (match.kind == RouteMatch::Kind::kWrongMethod) {
    std::vector<absl::string_view> allow = absl::StrSplit(match.allow, ", ");
    if (std::find(allow.begin(), allow.end(), "GET") != allow.end()) allow.push_back("HEAD");
    allow.push_back("OPTIONS");
    match.allow = absl::StrJoin(allow, ", ");
  }
  return match;
}

uint64_t Api::BodyLimit(const RouteMatch& match) const {
  if (match.kind != RouteMatch::Kind::kFound) return config_.max_body;
  switch (kRoutes[match.route].body) {
    case BodyKind::kCheck:
      return config_.max_check_body;
    case BodyKind::kImport:
      return config_.max_import_body;
    case BodyKind::kNone:
    case BodyKind::kJson:
      return config_.max_body;
  }
  return config_.max_body;
}

std::string Api::BodyTooLarge(const RouteMatch& match, std::optional<uint64_t> length) const {
  absl::string_view what = "this endpoint's limit";
  absl::string_view flag = "--max-body";
  if (match.kind == RouteMatch::Kind::kFound) {
    switch (kRoutes[match.route].body) {
      case BodyKind::kCheck:
        what = "the limit for batch checks";
        flag = "--max-check-body";
        break;
      case BodyKind::kImport:
        what = "the limit for imports";
        flag = "--max-import-body";
        break;
      case BodyKind::kNone:
      case BodyKind::kJson:
        what = "the limit for JSON bodies";
        break;
    }
  }
  const uint64_t limit = BodyLimit(match);
  if (length) {
    return absl::StrCat("the body is ", *length, " bytes; ", what, " is ", limit, " bytes (", flag,
                        ")");
  }
  return absl::StrCat("the body exceeds ", what, " of ", limit, " bytes (", flag, ")");
}

void Api::Handle(Request& request, RouteMatch& match, Response& response) {
  absl::string_view path = request.target;
  absl::string_view query;
  if (size_t q = path.find('?'); q != absl::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  switch (match.kind) {
    case RouteMatch::Kind::kNoPath:
      ErrorResponse(HttpError("not_found", absl::StrCat("no such path: ", path)), response);
      AddCorsHeaders(request.origin, response);
      return;
    case RouteMatch::Kind::kWrongMethod:
      if (request.method == "OPTIONS") {
        Options(request, match, response);
        return;
      }
      ErrorResponse(
          HttpError("method_not_allowed", absl::StrCat(request.method, " is not allowed on ", path,
                                                       "; allowed: ", match.allow)),
          response);
      response.headers.emplace_back("Allow", match.allow);
      AddCorsHeaders(request.origin, response);
      return;
    case RouteMatch::Kind::kFound:
      break;
  }
  if (!match.error.ok()) {
    ErrorResponse(engine::BadRequest(match.error.message()), response);
    AddCorsHeaders(request.origin, response);
    return;
  }
  std::shared_ptr<const access::Principal> caller;
  if (!Admit(request, match, &caller, response)) return;
  const bool log_caller = caller != nullptr && LogEnabled(LogLevel::kDebug);
  const RouteDef& def = kRoutes[match.route];
  // Single-user writes (keyed by their user in the engine: Engine::RunGathered).
  const bool gathered = gatherer_ != nullptr &&
                        (def.handler == detail::UpdateUserSegments ||
                         def.handler == detail::PutUser || def.handler == detail::DeleteUser) &&
                        gatherer_->Admit();
  if ((def.mutates && config_.durability == storage::Durability::kFsync) || gathered) {
    // Runs later on a durable-write worker or in the write gatherer's flush: the request's
    // views point into the connection's parser, so everything the handler reads is copied or
    // moved into the closure.
    struct Deferred {
      std::string method, target, content_type, body, query, origin;
      std::vector<std::string> params;
    };
    auto d = std::make_shared<Deferred>();
    d->method = std::string(request.method);
    d->target = std::string(request.target);
    d->content_type = std::string(request.content_type);
    d->body = std::move(request.body);
    d->query = std::string(query);
    d->origin = std::string(request.origin);
    d->params = std::move(match.params);
    int route = match.route;
    response.pool = gathered ? Response::Pool::kGathered : Response::Pool::kDurableWrites;
    response.blocking = [this, d, route, caller](Response& r) {
      Request deferred{d->method, d->target, d->content_type, std::move(d->body), d->origin, ""};
      Dispatch(route, deferred, d->params, d->query, caller.get(), r);
      AddCorsHeaders(d->origin, r);
    };
    if (log_caller) response.caller = caller->id;
    return;
  }
  Dispatch(match.route, request, match.params, query, caller.get(), response);
  if (log_caller) response.caller = caller->id;
  if (response.blocking && !config_.cors_origins.empty() && !request.origin.empty()) {
    // Filled later (and an error answer starts afresh): the headers go on after.
    response.blocking = [this, fill = std::move(response.blocking),
                         origin = std::string(request.origin)](Response& r) {
      fill(r);
      AddCorsHeaders(origin, r);
    };
  } else {
    AddCorsHeaders(request.origin, response);
  }
}

void Api::AddCorsHeaders(absl::string_view origin, Response& response) const {
  if (config_.cors_origins.empty() || origin.empty()) return;
  const auto& allowed = config_.cors_origins;
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) {
    response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  } else if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) {
    response.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
    response.headers.emplace_back("Vary", "Origin");
  } else {
    return;
  }
  response.headers.emplace_back("Access-Control-Expose-Headers", "Content-Disposition, Allow");
}

void Api::Options(const Request& request, const RouteMatch& match, Response& response) const {
  response.status = 204;
  response.body.clear();
  response.headers.emplace_back("Allow", match.allow);
  AddCorsHeaders(request.origin, response);
  const bool allowed =
      std::any_of(response.headers.begin(), response.headers.end(),
                  [](const auto& h) { return h.first == "Access-Control-Allow-Origin"; });
  if (!allowed) return;
  response.headers.emplace_back("Access-Control-Allow-Methods", match.allow);
  // The headers a browser asks to send: Content-Type (JSON bodies) and whatever it names.
  response.headers.emplace_back("Access-Control-Allow-Headers",
                                request.cors_request_headers.empty()
                                    ? std::string("Content-Type")
                                    : std::string(request.cors_request_headers));
  response.headers.emplace_back("Access-Control-Max-Age", "600");
}

namespace {

// The names of a pattern's captures, in order: "/v1/segments/{name}/users/{user_id}" gives
// {"name", "user_id"}.
std::vector<std::string> CaptureNames(absl::string_view pattern) {
  std::vector<std::string> names;
  for (size_t open = pattern.find('{'); open != absl::string_view::npos;
       open = pattern.find('{', open + 1)) {
    const size_t close = pattern.find('}', open);
    names.emplace_back(pattern.substr(open + 1, close - open - 1));
  }
  return names;
}

// Every route's capture names, by route id.
const std::vector<std::vector<std::string>>& RouteCaptures() {
  static const auto* kCaptures = [] {
    auto* captures = new std::vector<std::vector<std::string>>;
    for (const Api::RouteDef& r : kRoutes) captures->push_back(CaptureNames(r.pattern));
    return captures;
  }();
  return *kCaptures;
}

// The same rule for a segment name or user id in every path: what the engine would refuse in
// a body is refused here, before any lookup (a malformed name is never "not found").
absl::Status ValidateCaptures(int route, const std::vector<std::string>& params) {
  const std::vector<std::string>& names = RouteCaptures()[route];
  for (size_t i = 0; i < names.size() && i < params.size(); ++i) {
    absl::Status s;
    if (names[i] == "name") s = engine::Engine::ValidateSegmentName(params[i]);
    if (names[i] == "user_id" || names[i] == "alias") {
      s = engine::Engine::ValidateUserId(params[i]);
    }
    if (!s.ok()) {
      return engine::BadRequest(
          absl::StrCat("path ", names[i], " ", engine::Quote(params[i]), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

// Query parameters the route does not take are an error, not silently ignored (a TTL sent as
// ?ttl_seconds= to a route that reads it from the body would otherwise be lost).
absl::Status CheckQueryNames(const Api::RouteDef& route, const detail::QueryParams& query) {
  const std::vector<absl::string_view> known = absl::StrSplit(route.query, ' ', absl::SkipEmpty());
  for (absl::string_view name : query.Names()) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string takes = known.empty() ? std::string("no query parameters")
                                      : absl::StrCat("only ", absl::StrJoin(known, ", "));
    return engine::BadRequest(absl::StrCat("unknown query parameter ", engine::Quote(name), "; ",
                                           route.method, " ", route.pattern, " takes ", takes));
  }
  return absl::OkStatus();
}

}  // namespace

void Api::Dispatch(int route, Request& request, std::vector<std::string>& params,
                   absl::string_view query, const access::Principal* caller, Response& response) {
  detail::QueryParams query_params;
  absl::Status status = query_params.Parse(query);
  if (status.ok()) status = CheckQueryNames(kRoutes[route], query_params);
  if (status.ok()) status = ValidateCaptures(route, params);
  if (status.ok()) {
    HandlerContext context{engine_,  log_,      reports_, config_, figures_,
                           metrics_, webhooks_, auth_,    caller};
    Call call{request, params, query_params, response};
    status = kRoutes[route].handler(context, call);
  }
  if (!status.ok()) {
    response = Response();
    ErrorResponse(ExplainDeleted(std::move(status)), response);
  }
}

absl::Status Api::Check(int route, const Request& request, const std::vector<std::string>& params,
                        std::shared_ptr<const access::Principal>* caller) const {
  const RouteDef& r = kRoutes[route];
  if (!enforce_ || r.role == Role::kPublic) return absl::OkStatus();
  auto principal = auth_->Authenticate(request.authorization, request.client_address);
  if (!principal.ok()) return principal.status();
  const access::Principal& p = **principal;
  if (!p.Allows(r.role)) {
    return Forbidden(
        absl::StrCat(r.method, " ", r.pattern, " needs the role ", access::RoleName(r.role),
                     "; this key has the role ", access::RoleName(p.role)),
        access::RoleName(r.role));
  }
  if (!p.Unscoped()) {
    const std::vector<std::string>& names = RouteCaptures()[route];
    for (size_t i = 0; i < names.size() && i < params.size(); ++i) {
      if (names[i] == "name" && !p.CanSee(params[i])) {
        return Forbidden(absl::StrCat("segment ", engine::Quote(params[i]),
                                      " is outside the segments this key may use"),
                         params[i]);
      }
    }
  }
  *caller = *std::move(principal);
  return absl::OkStatus();
}

bool Api::Admit(const Request& request, const RouteMatch& match,
                std::shared_ptr<const access::Principal>* caller, Response& response) const {
  if (!enforce_ || match.kind != RouteMatch::Kind::kFound) return true;
  absl::Status status = Check(match.route, request, match.params, caller);
  if (status.ok()) return true;
  response = Response();
  ErrorResponse(status, response);
  if (response.status == 401) {
    response.headers.emplace_back("WWW-Authenticate", request.authorization.empty()
                                                          ? "Bearer realm=\"segd\""
                                                          : "Bearer realm=\"segd\", "
                                                            "error=\"invalid_token\"");
  } else if (response.status == 429) {
    response.headers.emplace_back("Retry-After", "1");
  }
  AddCorsHeaders(request.origin, response);
  return false;
}

bool Api::TakesLines(const RouteMatch& match) const {
  return match.kind == RouteMatch::Kind::kFound && kRoutes[match.route].lines != nullptr;
}

std::unique_ptr<LineConsumer> Api::OpenLines(Request& request, RouteMatch& match,
                                             Response& response) {
  absl::string_view query = request.target;
  query = query.find('?') == absl::string_view::npos ? absl::string_view()
                                                     : query.substr(query.find('?') + 1);
  detail::QueryParams query_params;
  const int route = match.route;
  absl::Status status =
      match.error.ok() ? absl::OkStatus() : engine::BadRequest(match.error.message());
  if (status.ok()) status = query_params.Parse(query);
  if (status.ok()) status = CheckQueryNames(kRoutes[route], query_params);
  if (status.ok()) status = ValidateCaptures(route, match.params);
  std::shared_ptr<const access::Principal> caller;
  if (status.ok() && !Admit(request, match, &caller, response)) return nullptr;
  std::unique_ptr<LineConsumer> consumer;
  if (status.ok()) {
    HandlerContext context{engine_,  log_,      reports_, config_,     figures_,
                           metrics_, webhooks_, auth_,    caller.get()};
    Call call{request, match.params, query_params, response};
    auto opened = kRoutes[route].lines(context, call);
    if (opened.ok()) {
      consumer = *std::move(opened);
    } else {
      status = opened.status();
    }
  }
  if (!status.ok()) {
    response = Response();
    ErrorResponse(ExplainDeleted(std::move(status)), response);
    AddCorsHeaders(request.origin, response);
  }
  return consumer;
}

void Api::FinishLines(LineConsumer& consumer, absl::Status status, absl::string_view origin,
                      Response& response) {
  if (status.ok()) status = consumer.Finish(response);
  if (!status.ok()) {
    response = Response();
    ErrorResponse(ExplainDeleted(std::move(status)), response);
  }
  AddCorsHeaders(origin, response);
}

absl::Status Api::ExplainDeleted(absl::Status status) const {
  if (engine::ErrorCodeOf(status) != "segment_not_found") return status;
  const std::vector<std::string> names = engine::SegmentsOf(status);
  if (names.size() != 1) return status;
  auto info = engine_.GetSegment(names[0]);
  if (!info.ok() || !info->meta.deleted()) return status;
  absl::Status explained = engine::SegmentNotFound({names[0]});
  std::string when;
  AppendRfc3339Millis(&when, info->meta.deleted_at);
  absl::Status out(explained.code(),
                   absl::StrCat("segment ", engine::Quote(names[0]), " was deleted at ", when,
                                "; create it again to restore it"));
  explained.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

absl::Status Forbidden(absl::string_view message, absl::string_view required) {
  absl::Status status = HttpError("forbidden", message);
  status.SetPayload(kRequiredPayload, absl::Cord(required));
  return status;
}

absl::Status HttpError(absl::string_view code, absl::string_view message) {
  absl::Status status(absl::StatusCode::kUnknown, message);
  status.SetPayload(engine::kErrorCodePayload, absl::Cord(code));
  return status;
}

unsigned HttpStatusOf(absl::string_view code) {
  static const std::pair<absl::string_view, unsigned> kStatuses[] = {
      {"bad_request", 400},         {"rule_cycle", 400},          {"before_retention", 400},
      {"unauthorized", 401},        {"forbidden", 403},           {"not_found", 404},
      {"segment_not_found", 404},   {"user_not_found", 404},      {"report_not_found", 404},
      {"method_not_allowed", 405},  {"request_timeout", 408},     {"segment_exists", 409},
      {"segment_is_computed", 409}, {"alias_taken", 409},         {"conflict", 409},
      {"cursor_expired", 410},      {"payload_too_large", 413},   {"unsupported_media_type", 415},
      {"expectation_failed", 417},  {"conflict_in_request", 422}, {"too_many_requests", 429},
      {"header_too_large", 431},    {"unavailable", 503},
  };
  for (const auto& [name, status] : kStatuses) {
    if (name == code) return status;
  }
  return 500;
}

void ErrorResponse(const absl::Status& status, Response& response) {
  std::string code = engine::ErrorCodeOf(status);
  unsigned http_status = HttpStatusOf(code);
  if (http_status == 500) code = "internal";
  response.status = http_status;
  response.content_type = kJsonType;
  response.stream = nullptr;
  response.blocking = nullptr;
  response.body.clear();
  JsonWriter json(&response.body);
  json.BeginObject().Key("error").BeginObject();
  json.Key("code").String(code);
  json.Key("message").String(status.message());
  json.Key("details").BeginObject();
  if (std::vector<std::string> segments = engine::SegmentsOf(status); !segments.empty()) {
    json.Key("segments").BeginArray();
    for (const std::string& s : segments) json.String(s);
    json.EndArray();
  }
  if (auto position = engine::PositionOf(status)) json.Key("position").Uint(*position);
  if (auto owner = engine::UserIdOf(status)) json.Key("user_id").String(*owner);
  if (auto required = status.GetPayload(kRequiredPayload)) {
    json.Key("required").String(std::string(*required));
  }
  json.EndObject().EndObject().EndObject();
}

namespace detail {

absl::Status HandlerContext::RequireSegment(absl::string_view name) const {
  if (CanSee(name)) return absl::OkStatus();
  return Forbidden(
      absl::StrCat("segment ", engine::Quote(name), " is outside the segments this key may use"),
      name);
}

std::string OwnName(const HandlerContext& ctx, absl::string_view user_id) {
  // No lookup on the write path's answers while no alias exists.
  if (!ctx.engine.HasAliases()) return std::string(user_id);
  std::optional<std::string> own = ctx.engine.OwnName(user_id);
  return own ? *std::move(own) : std::string(user_id);
}

std::vector<engine::SegmentId> VisibleSegments(const HandlerContext& ctx) {
  std::vector<engine::SegmentId> ids;
  for (const engine::SegmentInfo& info : ctx.engine.ListSegments(/*include_deleted=*/true)) {
    if (ctx.CanSee(info.meta.name)) ids.push_back(info.meta.id);
  }
  return ids;
}

absl::Status HandlerContext::RequireUnscoped(absl::string_view what) const {
  if (caller == nullptr || caller->Unscoped()) return absl::OkStatus();
  return Forbidden(absl::StrCat(what, " acts on every segment; this key is limited to some"),
                   "every segment");
}

absl::Status QueryParams::Parse(absl::string_view query) {
  params_.clear();
  if (query.empty()) return absl::OkStatus();
  for (absl::string_view pair : absl::StrSplit(query, '&')) {
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    absl::string_view name = pair.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : pair.substr(eq + 1);
    std::string decoded_name, decoded_value;
    absl::Status s = PercentDecode(name, true, &decoded_name);
    if (s.ok()) s = PercentDecode(value, true, &decoded_value);
    if (!s.ok()) return engine::BadRequest(absl::StrCat("query string: ", s.message()));
    params_.emplace_back(std::move(decoded_name), std::move(decoded_value));
  }
  return absl::OkStatus();
}

std::optional<absl::string_view> QueryParams::Get(absl::string_view name) const {
  std::optional<absl::string_view> found;
  for (const auto& [n, v] : params_) {
    if (n == name) found = v;
  }
  return found;
}

std::vector<absl::string_view> QueryParams::All(absl::string_view name) const {
  std::vector<absl::string_view> out;
  for (const auto& [n, v] : params_) {
    if (n == name) out.push_back(v);
  }
  return out;
}

std::vector<absl::string_view> QueryParams::Names() const {
  std::vector<absl::string_view> names;
  for (const auto& [n, v] : params_) names.push_back(n);
  return names;
}

absl::Status RequireUtf8(absl::string_view content_type) {
  absl::string_view params = content_type;
  for (size_t semi = params.find(';'); semi != absl::string_view::npos; semi = params.find(';')) {
    params.remove_prefix(semi + 1);
    absl::string_view param = absl::StripAsciiWhitespace(params.substr(0, params.find(';')));
    const size_t eq = param.find('=');
    if (eq == absl::string_view::npos) continue;
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(param.substr(0, eq)), "charset")) {
      continue;
    }
    absl::string_view charset = absl::StripAsciiWhitespace(param.substr(eq + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    if (!absl::EqualsIgnoreCase(charset, "utf-8") && !absl::EqualsIgnoreCase(charset, "utf8")) {
      return HttpError("unsupported_media_type",
                       absl::StrCat("charset '", charset, "' is not accepted; segd reads UTF-8"));
    }
  }
  return absl::OkStatus();
}

std::string LineTooLong() {
  return absl::StrCat("the line is longer than ", kMaxBodyLine, " bytes");
}

absl::Status RequireJson(const Request& request) {
  absl::string_view type = request.content_type;
  if (type.empty()) {
    if (request.body.empty()) return absl::OkStatus();
    return HttpError("unsupported_media_type",
                     "a JSON body needs the header Content-Type: application/json");
  }
  absl::string_view media = absl::StripAsciiWhitespace(type.substr(0, type.find(';')));
  if (absl::EqualsIgnoreCase(media, "application/json")) return RequireUtf8(type);
  return HttpError(
      "unsupported_media_type",
      absl::StrCat("Content-Type '", type, "' is not accepted; send application/json"));
}

void WriteSegment(JsonWriter& json, const engine::SegmentInfo& info) {
  const engine::SegmentMeta& m = info.meta;
  json.BeginObject();
  json.Key("name").String(m.name);
  json.Key("description").String(m.description);
  json.Key("created_at").Time(m.created_at, -1);
  json.Key("deleted_at").Time(m.deleted_at, 0);
  json.Key("auto_percent");
  if (m.has_auto_percent()) {
    json.Double(m.auto_percent);
  } else {
    json.Null();
  }
  json.Key("auto_percent_sticky").Bool(m.sticky);
  json.Key("ttl_seconds");
  if (m.ttl_seconds > 0) {
    json.Int(m.ttl_seconds);
  } else {
    json.Null();
  }
  json.Key("user_count").Uint(info.user_count);
  json.Key("rule");
  if (m.computed()) {
    json.String(m.rule);
  } else {
    json.Null();
  }
  json.Key("pending_rule");
  if (!m.pending_rule.empty()) {
    json.String(m.pending_rule);
  } else {
    json.Null();
  }
  json.Key("state").String(info.backfilling ? "backfilling" : "ready");
  if (info.backfilling) {
    json.Key("backfill").BeginObject();
    json.Key("events_done").Uint(info.backfill_done);
    json.Key("events_total").Uint(info.backfill_total);
    json.EndObject();
  }
  json.EndObject();
}

absl::StatusOr<int64_t> ReadTtl(JsonValue& value) {
  auto ttl = ReadInt(value, "ttl_seconds");
  if (!ttl.ok()) return engine::BadRequest("'ttl_seconds' must be a whole number of seconds >= 1");
  if (*ttl < 1) return engine::BadRequest("'ttl_seconds' must be >= 1");
  return *ttl;
}

}  // namespace detail
}  // namespace segd::server
