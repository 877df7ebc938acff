#pragma once

// Api: segd's HTTP API v1 (docs/api.md) as a function from a parsed request to a response,
// independent of sockets. HttpServer feeds it requests; the fuzz target and tests call it
// directly.
//
// Handlers are thin: they parse and validate the request (JSON through simdjson's on-demand
// API), call the engine or storage, and write JSON with JsonWriter. Every engine or storage
// error becomes one HTTP status and error code through ErrorResponse. A request that fails
// changes nothing (the engine is all-or-nothing; imports apply their valid lines).
//
// Slow work does not run in Handle: the response then carries a `blocking` function for a
// worker thread, or a `stream` producer whose chunks the connection writes as a chunked body.
// Slow work is history reports, and, with --durability fsync, every mutation (it waits for a
// group fsync, which must not hold an HTTP thread that other connections share).
//
// Thread safety: Handle may be called from any number of threads at once. The engine, log,
// report store and metrics must outlive the Api.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/engine.h"
#include "server/access/authenticator.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/webhooks.h"
#include "storage/oplog.h"
#include "storage/report_store.h"

namespace segd::server {

namespace detail {
class WriteGatherer;
}  // namespace detail

inline constexpr absl::string_view kJsonType = "application/json; charset=utf-8";

// Where a route's body is read, which decides its size limit.
enum class BodyKind { kNone, kJson, kCheck, kImport };

struct Request {
  absl::string_view method;                // upper case, as sent
  absl::string_view target;                // path and query, as sent
  absl::string_view content_type;          // empty when absent
  std::string body;                        // handlers may modify it (JSON parsing pads it in place)
  absl::string_view origin;                // the Origin header (browsers), empty when absent
  absl::string_view cors_request_headers;  // Access-Control-Request-Headers (preflights)
  absl::string_view last_event_id;         // Last-Event-ID (event stream resumes)
  absl::string_view authorization;         // the Authorization header, empty when absent
  absl::string_view client_address;        // the peer's IP address, for failure limits
};

// A streamed body, produced a piece at a time on a worker thread: each call replaces *chunk
// with the next piece and returns whether more follows; an error cuts the body short (the
// client sees it unfinished). The server asks for the next pieces only once the client has
// taken what came before, and holds no thread in between: a slow reader costs a few pieces
// of memory, never a worker. Called from one thread at a time; destroyed on any.
using BodySource = absl::AnyInvocable<absl::StatusOr<bool>(std::string* chunk)>;

struct Response;

// Whole lines of a request body read as a stream (Api::OpenLines).
struct BodyPiece {
  // Whole lines, each ending in '\n' except perhaps the body's last. A line longer than
  // kMaxBodyLine was dropped by the connection and stands here as an empty line.
  std::string text;
  uint64_t first_line = 1;               // the number of text's first line (from 1)
  std::vector<uint64_t> overlong_lines;  // the lines dropped for their length, in order
};

// A line of a streamed body may be at most this long; a longer one is an invalid line.
inline constexpr size_t kMaxBodyLine = 1 << 20;

// Takes a streamed body's lines as they arrive: Consume once per piece, in body order, then
// Finish. Calls come from worker threads, one at a time, and may block (they write the log).
class LineConsumer {
 public:
  virtual ~LineConsumer() = default;
  // Errors end the request with that answer (what earlier pieces did stays done).
  virtual absl::Status Consume(BodyPiece& piece) = 0;
  // The body ended: apply what is left and write the answer into `response`.
  virtual absl::Status Finish(Response& response) = 0;
};

// An answer that waits for the change feed without holding a thread: a long poll, or an event
// stream that never ends by itself. The connection calls Produce on a worker; when it has
// nothing yet, the connection Arms it and sleeps until the wake or the deadline, then Disarms
// it and calls Produce again.
//
// Thread safety: calls come one at a time (the connection hands the answer between its strand
// and a worker); only the wake function runs elsewhere, on whatever thread fires it.
class LiveAnswer {
 public:
  enum class Step {
    kMore,  // streamed: a piece is ready; call again once it is written
    kWait,  // nothing (more) yet: Arm, then call again
    kDone,  // the answer is complete
  };
  virtual ~LiveAnswer() = default;
  // On a worker. A streamed answer (Response::live_streamed) replaces response.body with its
  // next piece of body; a whole one fills `response` (status, body) when it returns kDone.
  // `final` (the server is shutting down): return kDone now, ending the stream or answering
  // with what there is.
  virtual Step Produce(Response& response, bool final) = 0;
  // On the connection's strand: asks for `wake` to be called once, from any thread, when
  // Produce may have more. Returns the time by which Produce must run anyway (a deadline or a
  // keep-alive).
  virtual std::chrono::steady_clock::time_point Arm(absl::AnyInvocable<void() &&> wake) = 0;
  // On the strand, after the wake or the deadline, or when the connection closes: withdraws
  // the wake of the last Arm (which may still arrive; the connection ignores it then).
  virtual void Disarm() = 0;
};

struct Response {
  unsigned status = 200;
  absl::string_view content_type = kJsonType;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Allow, …)
  // If set, the body comes from it, sent chunked.
  BodySource stream;
  // If set, the answer comes from it (see LiveAnswer): a chunked body when live_streamed,
  // otherwise a whole response once it is done.
  std::unique_ptr<LiveAnswer> live;
  bool live_streamed = false;
  // If set, a worker thread moves it out of the response and calls it to fill in the response
  // before it is sent.
  std::function<void(Response&)> blocking;
  // Which workers run `blocking`: the report workers, the durable-write workers (many
  // threads that mostly sleep in a group fsync), or the write gatherer (single-user writes
  // under process durability, run together once per pass of the event loop:
  // detail/write_gatherer.h).
  enum class Pool { kReports, kDurableWrites, kGathered };
  Pool pool = Pool::kReports;
  // With access control on and --log-level debug: the id of the key that made the request
  // ("jwt" for tokens), for the request log line. Never a secret.
  std::string caller;
};

// Figures the Api reports at /health and /metrics beyond its own.
struct ServiceFigures {
  std::atomic<uint64_t> snapshots{0};
  std::atomic<uint64_t> last_snapshot_seq{0};
  std::atomic<uint64_t> last_snapshot_bytes{0};
  std::atomic<double> last_snapshot_seconds{0};
  std::atomic<uint64_t> snapshot_failures{0};
  std::atomic<uint64_t> expiry_failures{0};
  std::atomic<double> recovery_seconds{0};
  std::atomic<bool> shutting_down{false};
};

class Api {
 public:
  Api(engine::Engine& engine, storage::OpLog& log, storage::ReportStore& reports,
      const ServerConfig& config, ServiceFigures& figures);
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // The route of (method, path), for the connection to pick a body limit before reading it.
  // HEAD routes as GET (match.head is set; the connection sends the head alone); a path's
  // allowed methods include HEAD with GET, and OPTIONS.
  RouteMatch Route(absl::string_view method, absl::string_view path) const;
  // The body limit of a match (unmatched paths get the JSON limit).
  uint64_t BodyLimit(const RouteMatch& match) const;
  // The 413 message for a body over BodyLimit: its size when known, the limit, and the flag
  // that sets it.
  std::string BodyTooLarge(const RouteMatch& match, std::optional<uint64_t> length) const;

  // Whether `match` is a route whose body may be read as lines (events, imports).
  bool TakesLines(const RouteMatch& match) const;
  // Called once the header of a TakesLines request is read, before its body: a consumer for
  // its lines; or null with `response` empty when this request's body is read whole (a single
  // JSON event), then Handle as usual; or null with the error answer in `response`.
  std::unique_ptr<LineConsumer> OpenLines(Request& request, RouteMatch& match, Response& response);
  // The answer of a streamed body: Finish's, or the error `status` of the consumer or of the
  // connection (an error already found is passed as it is and the consumer is not asked).
  void FinishLines(LineConsumer& consumer, absl::Status status, absl::string_view origin,
                   Response& response);

  // Answers `request`. `match` is Route(request.method, path of request.target); its params
  // are moved out.
  void Handle(Request& request, RouteMatch& match, Response& response);

  // Every route as (method, pattern), in table order; for checks that the docs match.
  static std::vector<std::pair<std::string, std::string>> Routes();
  // The role each route requires, in the same order.
  static std::vector<access::Role> RouteRoles();

  Metrics& metrics() { return metrics_; }
  engine::Engine& engine() { return engine_; }
  // The webhooks the /v1/webhooks routes manage; without them those routes answer 503. Set
  // before the first request.
  void set_webhooks(Webhooks* webhooks) { webhooks_ = webhooks; }
  // The keys the /v1/keys routes manage (without them those routes answer 503), and whether
  // access control is on (--auth keys): every route but the public ones then needs a key or
  // token with its role (docs/security.md). Set before the first request.
  void set_access(access::Authenticator* auth, bool enforce) {
    auth_ = auth;
    enforce_ = auth != nullptr && enforce;
  }
  bool auth_enabled() const { return enforce_; }
  // With a gatherer, single-user writes it admits are answered as Pool::kGathered (the
  // connection then hands them to it). None by default; the server sets one. Set before the
  // first request.
  void set_write_gatherer(detail::WriteGatherer* gatherer) { gatherer_ = gatherer; }
  // With access control on, whether `request` to `match` may proceed: OK with *caller set
  // (null for public routes and with access control off), or the 401/403/429 answer in
  // `response`. The connection calls it once a request's header is read when the body is
  // still to come, so that a refused upload is not read.
  bool Admit(const Request& request, const RouteMatch& match,
             std::shared_ptr<const access::Principal>* caller, Response& response) const;
  // The label of a route id in metrics and logs (ids past the routes are MetricRoute's).
  const std::string& RouteName(int route) const;
  // The metrics id of a request to `route`: the route's, except that NDJSON events count
  // apart (`events_ndjson`) from single events (`events`), whose time has a target of its own.
  int MetricRoute(int route, absl::string_view content_type) const;

  // One row of the route table (api.cc).
  struct RouteDef;

 private:
  void Dispatch(int route, Request& request, std::vector<std::string>& params,
                absl::string_view query, const access::Principal* caller, Response& response);
  // The access decision for a route and its path captures.
  absl::Status Check(int route, const Request& request, const std::vector<std::string>& params,
                     std::shared_ptr<const access::Principal>* caller) const;
  // With --cors-origin, the CORS headers for a request from `origin` (none if it is not
  // allowed).
  void AddCorsHeaders(absl::string_view origin, Response& response) const;
  // OPTIONS on a known path: 204 with Allow, and with --cors-origin a preflight's answer.
  void Options(const Request& request, const RouteMatch& match, Response& response) const;
  // segment_not_found for a single deleted segment says when it was deleted and how to bring
  // it back; every other status is returned as it is.
  absl::Status ExplainDeleted(absl::Status status) const;

  detail::WriteGatherer* gatherer_ = nullptr;
  engine::Engine& engine_;
  storage::OpLog& log_;
  storage::ReportStore& reports_;
  const ServerConfig& config_;
  ServiceFigures& figures_;
  Router router_;
  Metrics metrics_;
  Webhooks* webhooks_ = nullptr;
  access::Authenticator* auth_ = nullptr;
  bool enforce_ = false;
};

// Fills `response` with the error answer for `status` (its HTTP status, error code, message
// and details).
void ErrorResponse(const absl::Status& status, Response& response);
// The HTTP status of an API error code ("segment_not_found" → 404).
unsigned HttpStatusOf(absl::string_view error_code);
// An error with an explicit API code, for the errors the HTTP layer finds itself
// (method_not_allowed, payload_too_large, …).
absl::Status HttpError(absl::string_view code, absl::string_view message);
// 403 forbidden, with what was missing (a role, or a segment outside the caller's scope) as
// details.required.
absl::Status Forbidden(absl::string_view message, absl::string_view required);

}  // namespace segd::server
