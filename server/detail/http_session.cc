#include "server/detail/http_session.h"

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/log.h"
#include "server/request_framing.h"
#include "simdjson.h"

namespace segd::server::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Answers queued before a batch is written even if more pipelined requests are waiting.
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
constexpr auto kLingerTime = std::chrono::milliseconds(2000);
constexpr size_t kLingerBytes = 4 << 20;

uint64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

// The request's line and headers, as views into `req`.
Request RequestHead(const http::request<RequestBody>& req, absl::string_view client_address) {
  Request request;
  request.client_address = client_address;
  request.method = absl::string_view(req.method_string().data(), req.method_string().size());
  request.target = absl::string_view(req.target().data(), req.target().size());
  auto header = [&req](http::field field) {
    auto it = req.find(field);
    return it == req.end() ? absl::string_view()
                           : absl::string_view(it->value().data(), it->value().size());
  };
  request.content_type = header(http::field::content_type);
  request.origin = header(http::field::origin);
  request.cors_request_headers = header(http::field::access_control_request_headers);
  request.authorization = header(http::field::authorization);
  if (auto it = req.find("Last-Event-ID"); it != req.end()) {
    request.last_event_id = absl::string_view(it->value().data(), it->value().size());
  }
  return request;
}

}  // namespace

HttpSession::HttpSession(SessionHost& host, Socket&& socket)
    : host_(host), api_(host.api), config_(host.config), socket_(std::move(socket)) {
  in_.max_size(config_.max_header + 2 * kReadChunk);
  beast::error_code ec;
  const tcp::endpoint peer = socket_.remote_endpoint(ec);
  if (!ec) client_address_ = peer.address().to_string();
}

HttpSession::~HttpSession() {
  api_.metrics().ConnectionClosed();
  host_.registry.Remove(this);
}

void HttpSession::Run() {
  host_.registry.Add(this);
  if (host_.tls != nullptr) {
    tls_ = std::make_unique<TlsStream>(socket_, *host_.tls);
  }
  WhenReady(
      socket_, tls_.get(), std::chrono::seconds(config_.read_timeout_seconds),
      [self = shared_from_this()] { self->Process(); },
      [self = shared_from_this()] { self->Close(); });
}

void HttpSession::OnDeadline() {
  if (closed_) return;
  // Lingering ends at its own deadline; only --read-timeout counts as a timeout.
  if (!lingering_) api_.metrics().ConnectionTimedOut();
  Close();
}

void HttpSession::OnDrain() {
  draining_ = true;
  if (reading_ && !parser_ && in_.size() == 0) Close();
  // A waiting live answer ends now (its Produce sees `final`).
  if (live_armed_) {
    DisarmLive();
    LiveProduce();
  }
}

// Parses and answers every complete request in in_, then writes or reads. Does nothing while
// a write is in flight (its completion calls Process again): a second write would send the
// same pieces twice.
void HttpSession::Process() {
  while (!closed_ && !waiting_ && !writing_ && in_.size() > 0 &&
         out_.body_bytes() < kMaxBatchBytes && !close_after_write_ && !LinesPaused()) {
    if (!parser_) StartRequest();
    // Beast unfolds obsolete line folding as it parses: look at the raw header first.
    if (!parser_->is_header_done() &&
        HasObsoleteLineFolding(
            absl::string_view(static_cast<const char*>(in_.data().data()), in_.size()))) {
      Reject(400, "bad_request",
             "obsolete line folding (a header line starting with a space or tab) is not "
             "accepted");
      break;
    }
    beast::error_code ec;
    size_t used = parser_->put(in_.data(), ec);
    in_.consume(used);
    if (ec == http::error::need_more) {
      if (lines_) TakeLines();
      if (used == 0) break;
      continue;
    }
    if (ec) {
      ParseError(ec);
      break;
    }
    if (parser_->is_header_done() && !routed_ && !OnHeader()) break;
    if (lines_) {
      TakeLines();
      if (parser_->is_done()) EndLines();
      continue;
    }
    if (parser_->is_done()) OnRequest();
  }
  if (closed_ || waiting_ || writing_) return;
  if (!out_.empty()) {
    Write();
  } else if (close_after_write_) {
    Linger();
  } else if (!reading_ && !LinesPaused()) {
    // (A line step that completes while a read is out calls Process too.)
    Read();
  }
}

void HttpSession::StartRequest() {
  parser_.emplace();
  parser_->header_limit(config_.max_header);
  // The route's limit is applied once the header is known (OnHeader; the parser stops after
  // the header). Until then none: the parser would otherwise refuse a declared length before
  // the route is known, with the wrong limit in the answer.
  parser_->body_limit(std::numeric_limits<uint64_t>::max());
  routed_ = false;
  request_deadline_ = DeadlineNow() + int64_t{config_.read_timeout_seconds} * 1000;
}

// Routes the request and checks its declared size. Returns false if it was answered already.
bool HttpSession::OnHeader() {
  routed_ = true;
  const auto& req = parser_->get();
  if (auto rejected = CheckRequestFraming(req.base())) {
    match_ = {};
    Reject(rejected->status, rejected->code, rejected->message);
    return false;
  }
  absl::string_view target(req.target().data(), req.target().size());
  absl::string_view path = target.substr(0, target.find('?'));
  absl::string_view method(req.method_string().data(), req.method_string().size());
  match_ = api_.Route(method, path);
  uint64_t limit = api_.BodyLimit(match_);
  // The parser has validated Content-Length already. (Read from the field: GCC 12 warns
  // falsely about boost::optional inside parser::content_length at -O2 with sanitizers.)
  uint64_t length = 0;
  bool length_known = false;
  if (auto field = req.find(http::field::content_length); field != req.end()) {
    length_known =
        absl::SimpleAtoi(absl::string_view(field->value().data(), field->value().size()), &length);
  }
  if (length_known && length > limit) {
    Reject(413, "payload_too_large", api_.BodyTooLarge(match_, length));
    return false;
  }
  parser_->body_limit(limit);
  if (api_.auth_enabled() && !parser_->is_done() && (!length_known || length > kInlineLinesBytes)) {
    // Refused before a large body is read: an unauthenticated upload costs its header only.
    // (A small body is read and the refusal answered as usual, keeping the connection.)
    Request request = RequestHead(req, client_address_);
    Response refused;
    std::shared_ptr<const access::Principal> caller;
    if (!api_.Admit(request, match_, &caller, refused)) {
      RejectWith(refused);
      return false;
    }
  }
  if (!MaybeOpenLines(length, length_known)) return false;
  if (!parser_->is_done()) {
    auto expect = req.find(http::field::expect);
    if (expect != req.end() &&
        absl::EqualsIgnoreCase(absl::string_view(expect->value().data(), expect->value().size()),
                               "100-continue")) {
      out_.AddText("HTTP/1.1 100 Continue\r\n\r\n");
    }
  }
  return true;
}

void HttpSession::ParseError(beast::error_code ec) {
  if (ec == http::error::header_limit) {
    Reject(431, "header_too_large",
           absl::StrCat("the request line and headers exceed ", config_.max_header, " bytes"));
  } else if (ec == http::error::body_limit) {
    Reject(413, "payload_too_large", api_.BodyTooLarge(match_, std::nullopt));
  } else {
    Reject(400, "bad_request", absl::StrCat("malformed HTTP request: ", ec.message()));
  }
}

// Answers an error found by the HTTP layer and closes the connection after it.
void HttpSession::Reject(unsigned status, absl::string_view code, absl::string_view message) {
  Response response;
  ErrorResponse(HttpError(code, message), response);
  response.status = status;
  RejectWith(response);
}

void HttpSession::RejectWith(Response& response) {
  close_after_write_ = true;
  out_.AddResponse(response, false);
  api_.metrics().Record(routed_ ? match_.route : -1, response.status, 0);
  parser_.reset();
  // A line step still running finds the session no longer reading lines and ends quietly.
  lines_.reset();
}

bool HttpSession::MaybeOpenLines(uint64_t declared_length, bool length_known) {
  if (!api_.TakesLines(match_) || parser_->is_done()) return true;
  if (length_known && declared_length <= kInlineLinesBytes) return true;
  const auto& req = parser_->get();
  Request request = RequestHead(req, client_address_);
  Response response;
  std::unique_ptr<LineConsumer> consumer = api_.OpenLines(request, match_, response);
  if (!consumer) {
    if (response.status == 200) return true;  // this one is read whole
    RejectWith(response);
    return false;
  }
  lines_.emplace();
  lines_->ready.text.reserve(kLinesStepBytes + 2 * kReadChunk + simdjson::SIMDJSON_PADDING);
  lines_->consumer = std::move(consumer);
  lines_->route = api_.MetricRoute(match_.route, request.content_type);
  lines_->keep_alive = req.keep_alive();
  lines_->origin = std::string(request.origin);
  lines_->start = Clock::now();
  return true;
}

void HttpSession::TakeLines() {
  LinesInput& l = *lines_;
  std::string& body = parser_->get().body();
  size_t from = 0;
  if (l.skipping) {
    const size_t newline = body.find('\n');
    if (newline == std::string::npos) {
      body.clear();
      return;
    }
    l.skipping = false;
    from = newline + 1;
  }
  const size_t last = body.rfind('\n');
  if (last != std::string::npos && last >= from) {
    l.lines +=
        static_cast<uint64_t>(std::count(body.begin() + static_cast<ptrdiff_t>(from),
                                         body.begin() + static_cast<ptrdiff_t>(last + 1), '\n'));
    l.ready.text.append(body, from, last + 1 - from);
    from = last + 1;
  }
  if (body.size() - from > kMaxBodyLine) {
    // The line in progress is too long to hold: an empty line stands in for it.
    ++l.lines;
    l.ready.overlong_lines.push_back(l.lines);
    l.ready.text.push_back('\n');
    l.skipping = true;
    body.clear();
  } else {
    body.erase(0, from);
  }
  PumpLines();
}

void HttpSession::EndLines() {
  LinesInput& l = *lines_;
  std::string& body = parser_->get().body();
  if (!l.skipping) l.ready.text.append(body);
  body.clear();
  l.body_done = true;
  waiting_ = true;  // no further request is parsed before this one's answer
  PumpLines();
}

bool HttpSession::LinesPaused() const {
  return lines_ && !lines_->body_done && lines_->stepping &&
         lines_->ready.text.size() >= kLinesStepBytes;
}

void HttpSession::PumpLines() {
  if (!lines_ || closed_ || lines_->stepping) return;
  LinesInput& l = *lines_;
  if (!l.status.ok() || l.body_done) {
    // The last step: what is left, then the answer (or the error that stopped the body).
    l.stepping = true;
    if (!l.status.ok()) {
      close_after_write_ = true;  // the rest of the body is not read
      waiting_ = true;
    }
    asio::post(host_.durable_writers, [self = shared_from_this(), consumer = std::move(l.consumer),
                                       piece = std::move(l.ready), status = l.status,
                                       origin = l.origin]() mutable {
      if (status.ok() && (!piece.text.empty() || !piece.overlong_lines.empty())) {
        status = consumer->Consume(piece);
      }
      auto response = std::make_unique<Response>();
      self->api_.FinishLines(*consumer, std::move(status), origin, *response);
      asio::post(self->socket_.get_executor(), [self, response = std::move(response)]() mutable {
        self->OnLinesAnswer(std::move(response));
      });
    });
    return;
  }
  if (l.ready.text.size() < kLinesStepBytes) return;
  l.stepping = true;
  BodyPiece piece = std::move(l.ready);
  l.ready = BodyPiece();
  l.ready.first_line = l.lines + 1;
  // Room for a step and the read that completes it, padded: no reallocation on the way.
  l.ready.text.reserve(kLinesStepBytes + 2 * kReadChunk + simdjson::SIMDJSON_PADDING);
  asio::post(host_.durable_writers, [self = shared_from_this(), consumer = std::move(l.consumer),
                                     piece = std::move(piece)]() mutable {
    absl::Status status = consumer->Consume(piece);
    asio::post(self->socket_.get_executor(),
               [self, consumer = std::move(consumer), status = std::move(status)]() mutable {
                 self->OnLinesStep(std::move(consumer), std::move(status));
               });
  });
}

void HttpSession::OnLinesStep(std::unique_ptr<LineConsumer> consumer, absl::Status status) {
  if (!lines_ || closed_) return;  // refused or closed meanwhile; the consumer goes here
  lines_->consumer = std::move(consumer);
  lines_->stepping = false;
  if (!status.ok()) lines_->status = std::move(status);
  PumpLines();
  Process();
}

void HttpSession::OnLinesAnswer(std::unique_ptr<Response> response) {
  if (!lines_ || closed_) return;
  const bool keep_alive =
      lines_->keep_alive && !close_after_write_ && !draining_ && !host_.draining.load();
  out_.AddResponse(*response, keep_alive);
  api_.metrics().Record(lines_->route, response->status, NanosSince(lines_->start));
  lines_.reset();
  parser_.reset();
  if (!keep_alive) close_after_write_ = true;
  waiting_ = false;
  Process();
}

void HttpSession::OnRequest() {
  Clock::time_point start = Clock::now();
  auto& req = parser_->get();
  bool keep_alive = req.keep_alive() && !draining_ && !host_.draining.load();
  Request request = RequestHead(req, client_address_);
  request.body = std::move(req.body());
  // On the stack: only answers handed to a worker need to outlive this call.
  Response response;
  const int route = api_.MetricRoute(match_.route, request.content_type);
  api_.Handle(request, match_, response);
  const bool head_only = match_.head;
  if (LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "%.*s %.*s -> %u%s%s", static_cast<int>(request.method.size()),
        request.method.data(), static_cast<int>(request.target.size()), request.target.data(),
        response.status, response.caller.empty() ? "" : " key ", response.caller.c_str());
  }
  if (response.live) {
    RunLive(std::make_unique<Response>(std::move(response)), keep_alive, head_only, route, start);
  } else if (response.blocking) {
    RunBlocking(std::make_unique<Response>(std::move(response)), keep_alive, head_only, route,
                start);
  } else if (response.stream && head_only) {
    api_.metrics().Record(route, response.status, NanosSince(start));
    out_.AddChunkedHead(response, keep_alive);  // the body is never produced
  } else if (response.stream) {
    api_.metrics().Record(route, response.status, NanosSince(start));
    RunStream(response, keep_alive);
  } else {
    out_.AddResponse(response, keep_alive, head_only);
    api_.metrics().Record(route, response.status, NanosSince(start));
  }
  // The request (and the views into it) is done with; the next one starts fresh.
  parser_.reset();
  if (!keep_alive) close_after_write_ = true;
}

void HttpSession::RunBlocking(std::unique_ptr<Response> response, bool keep_alive, bool head_only,
                              int route, Clock::time_point start) {
  waiting_ = true;
  if (response->pool == Response::Pool::kGathered) {
    host_.gatherer->Submit(std::move(response), [self = shared_from_this(), keep_alive, head_only,
                                                 route, start](std::unique_ptr<Response> r) {
      auto answer = [self, r = std::move(r), keep_alive, head_only, route, start]() mutable {
        self->waiting_ = false;
        self->out_.AddResponse(*r, keep_alive, head_only);
        self->api_.metrics().Record(route, r->status, NanosSince(start));
        self->Process();
      };
      // The flush runs on an I/O thread. With one I/O thread nothing else can be running this
      // session, so it answers at once: posting it back would cost the connection another
      // pass of the event loop (adds measured 1.53x of ungathered with the post, 1.65x
      // without).
      if (self->host_.config.threads == 1) {
        answer();
      } else {
        asio::post(self->socket_.get_executor(), std::move(answer));
      }
    });
    return;
  }
  asio::thread_pool& pool =
      response->pool == Response::Pool::kDurableWrites ? host_.durable_writers : host_.workers;
  asio::post(pool, [self = shared_from_this(), r = std::move(response), keep_alive, head_only,
                    route, start]() mutable {
    // Moved out first: the function may reset the response it fills (an error answer does).
    auto fill = std::move(r->blocking);
    r->blocking = nullptr;
    fill(*r);
    asio::post(self->socket_.get_executor(),
               [self, r = std::move(r), keep_alive, head_only, route, start]() mutable {
                 self->waiting_ = false;
                 self->out_.AddResponse(*r, keep_alive, head_only);
                 self->api_.metrics().Record(route, r->status, NanosSince(start));
                 self->Process();
               });
  });
}

void HttpSession::RunLive(std::unique_ptr<Response> response, bool keep_alive, bool head_only,
                          int route, Clock::time_point start) {
  waiting_ = true;
  live_active_ = true;
  live_head_sent_ = false;
  live_keep_alive_ = keep_alive;
  live_head_only_ = head_only;
  live_route_ = route;
  live_start_ = start;
  live_more_ = false;
  live_ = std::move(response);
  LiveProduce();
}

void HttpSession::LiveProduce() {
  if (closed_ || !live_) return;
  const bool final = draining_ || host_.draining.load();
  asio::post(host_.workers, [self = shared_from_this(), r = std::move(live_), final]() mutable {
    if (r->live_streamed) r->body.clear();
    LiveAnswer::Step step = r->live->Produce(*r, final);
    asio::post(self->socket_.get_executor(),
               [self, r = std::move(r), step]() mutable { self->OnLiveStep(std::move(r), step); });
  });
}

void HttpSession::OnLiveStep(std::unique_ptr<Response> response, LiveAnswer::Step step) {
  if (closed_) return;
  // The first step decides the head: a stream's (the answer may still turn into a whole
  // one, an error found before anything was sent).
  const bool streamed = response->live_streamed;
  if (streamed && !live_head_sent_) {
    live_head_sent_ = true;
    api_.metrics().Record(live_route_, response->status, NanosSince(live_start_));
    out_.AddChunkedHead(*response, live_keep_alive_);
    if (live_head_only_) step = LiveAnswer::Step::kDone;  // the body is never produced
  }
  if (streamed && !live_head_only_ && !response->body.empty()) {
    out_.AddChunk(std::move(response->body));
  }
  if (step == LiveAnswer::Step::kDone) {
    live_active_ = false;
    waiting_ = false;
    if (streamed) {
      if (!live_head_only_) out_.AddLastChunk();
    } else {
      response->live.reset();
      out_.AddResponse(*response, live_keep_alive_, live_head_only_);
      api_.metrics().Record(live_route_, response->status, NanosSince(live_start_));
    }
    if (!live_keep_alive_) close_after_write_ = true;
    if (!out_.empty()) {
      Write();
    } else {
      Process();
    }
    return;
  }
  live_ = std::move(response);
  live_more_ = step == LiveAnswer::Step::kMore;
  if (!out_.empty()) {
    Write();  // OnWritten goes on: produces again, or arms
    return;
  }
  if (live_more_) {
    live_more_ = false;
    LiveProduce();
  } else {
    ArmLive();
  }
}

void HttpSession::ArmLive() {
  if (closed_ || !live_) return;
  const uint64_t generation = ++live_generation_;
  live_armed_ = true;
  auto wake = [self = shared_from_this(), generation]() {
    asio::post(self->socket_.get_executor(), [self, generation] { self->OnLiveWake(generation); });
  };
  const Clock::time_point deadline = live_->live->Arm(std::move(wake));
  if (!live_timer_) live_timer_.emplace(socket_.get_executor());
  live_timer_->expires_at(deadline);
  live_timer_->async_wait([self = shared_from_this(), generation](beast::error_code ec) {
    if (!ec) self->OnLiveWake(generation);
  });
}

void HttpSession::OnLiveWake(uint64_t generation) {
  if (closed_ || !live_armed_ || generation != live_generation_) return;
  DisarmLive();
  LiveProduce();
}

void HttpSession::DisarmLive() {
  if (!live_armed_) return;
  live_armed_ = false;
  ++live_generation_;
  if (live_timer_) live_timer_->cancel();
  if (live_) live_->live->Disarm();
}

void HttpSession::RunStream(Response& response, bool keep_alive) {
  waiting_ = true;
  streaming_ = true;
  stream_keep_alive_ = keep_alive;
  source_ = std::move(response.stream);
  producing_ = false;
  source_ended_ = false;
  source_status_ = absl::OkStatus();
  ready_.clear();
  out_.AddChunkedHead(response, keep_alive);
  // Starts the first step and writes the head, with any answers queued before it.
  PumpStream();
}

void HttpSession::Produce() {
  if (producing_ || source_ended_ || closed_) return;
  producing_ = true;
  asio::post(host_.workers, [self = shared_from_this(), source = std::move(source_)]() mutable {
    std::vector<std::string> chunks;
    size_t bytes = 0;
    absl::StatusOr<bool> more = true;
    while (bytes < kStreamStepBytes) {
      std::string chunk;
      more = source(&chunk);
      if (!more.ok()) break;
      bytes += chunk.size();
      if (!chunk.empty()) chunks.push_back(std::move(chunk));
      if (!*more) break;
    }
    asio::post(self->socket_.get_executor(),
               [self, source = std::move(source), chunks = std::move(chunks),
                more = std::move(more)]() mutable {
                 self->OnProduced(std::move(source), std::move(chunks), std::move(more));
               });
  });
}

void HttpSession::OnProduced(BodySource source, std::vector<std::string> chunks,
                             absl::StatusOr<bool> more) {
  producing_ = false;
  if (closed_) return;  // the source goes with this call
  if (!more.ok()) {
    source_ended_ = true;
    source_status_ = more.status();
  } else if (!*more) {
    source_ended_ = true;
  } else {
    source_ = std::move(source);
  }
  for (std::string& chunk : chunks) ready_.push_back(std::move(chunk));
  PumpStream();
}

void HttpSession::PumpStream() {
  if (!streaming_ || writing_ || closed_) return;
  for (std::string& chunk : ready_) out_.AddChunk(std::move(chunk));
  ready_.clear();
  const bool finished = source_ended_ && !producing_;
  if (finished) {
    streaming_ = false;
    waiting_ = false;
    if (source_status_.ok()) {
      out_.AddLastChunk();
      if (!stream_keep_alive_) close_after_write_ = true;
    } else {
      // Leave the body unfinished, so that the client sees it was cut short.
      Log(LogLevel::kError, "streamed response cut short: %s",
          std::string(source_status_.message()).c_str());
      close_after_write_ = true;
    }
  } else {
    // The next step runs while this one is written; no further one until that write is done.
    Produce();
  }
  if (!out_.empty()) {
    Write();
  } else if (finished) {
    Process();
  }
}

void HttpSession::Read() {
  reading_ = true;
  if (draining_ && !parser_ && in_.size() == 0) {
    Close();
    return;
  }
  int64_t deadline = DeadlineNow() + int64_t{config_.read_timeout_seconds} * 1000;
  if (parser_ && !parser_->is_header_done()) deadline = std::min(deadline, request_deadline_);
  ExpireReadAt(deadline);
  size_t room = std::min(kReadChunk, in_.max_size() - in_.size());
  if (room == 0) {  // cannot happen while the parser enforces max_header; never spin on it
    Reject(431, "header_too_large", "the request does not fit the input buffer");
    Process();
    return;
  }
  auto buffer = in_.prepare(room);
  auto on_read = [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->reading_ = false;
    self->ReadDone();
    if (ec) {
      self->Close();
      return;
    }
    self->in_.commit(n);
    // A new request's clock starts with its first byte.
    if (!self->parser_ && n > 0) self->StartRequest();
    self->Process();
  };
  if (tls_) {
    tls_->async_read_some(buffer, std::move(on_read));
  } else {
    socket_.async_read_some(buffer, std::move(on_read));
  }
}

void HttpSession::Write() {
  writing_ = true;
  buffers_.clear();
  for (const std::string& piece : out_.pieces()) buffers_.emplace_back(piece.data(), piece.size());
  ExpireWriteAfter(std::chrono::seconds(config_.read_timeout_seconds));
  auto on_written = [self = shared_from_this()](beast::error_code ec, size_t) {
    self->WriteDone();
    self->OnWritten(ec);
  };
  if (tls_) {
    asio::async_write(*tls_, buffers_, std::move(on_written));
  } else {
    asio::async_write(socket_, buffers_, std::move(on_written));
  }
}

void HttpSession::OnWritten(beast::error_code ec) {
  writing_ = false;
  out_.Clear();
  if (ec) {
    Close();
    return;
  }
  if (streaming_) {
    PumpStream();
    return;
  }
  if (live_active_) {
    if (live_more_) {
      live_more_ = false;
      LiveProduce();
    } else if (live_ && !live_armed_) {
      ArmLive();
    }
    return;
  }
  if (close_after_write_) {
    Linger();
    return;
  }
  Process();
}

// After the last answer: stop sending, then read and discard what the client still sends
// (say, a body we refused with 413) until it closes, for at most kLingerTime or kLingerBytes.
// Closing with unread bytes would make the kernel send a reset, which can destroy the answer
// before the client reads it.
void HttpSession::Linger() {
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  lingering_ = true;
  linger_deadline_ = DeadlineNow() + kLingerTime.count();
  DiscardInput(0);
}

void HttpSession::DiscardInput(size_t discarded) {
  if (closed_) return;
  if (discarded > kLingerBytes || DeadlineNow() >= linger_deadline_) {
    Close();
    return;
  }
  ExpireReadAt(linger_deadline_);
  in_.clear();
  auto buffer = in_.prepare(kReadChunk);
  socket_.async_read_some(buffer,
                          [self = shared_from_this(), discarded](beast::error_code ec, size_t n) {
                            self->ReadDone();
                            if (ec) {
                              self->Close();
                              return;
                            }
                            self->DiscardInput(discarded + n);
                          });
}

void HttpSession::Close() {
  if (closed_) return;
  closed_ = true;
  DisarmLive();
  live_.reset();
  // A step in flight keeps the source until it returns here, and drops it then.
  source_ = nullptr;
  ready_.clear();
  ReadDone();
  WriteDone();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
}

}  // namespace segd::server::detail
