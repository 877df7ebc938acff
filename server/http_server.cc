#include "server/http_server.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/clock.h"
#include "server/log.h"
#include "server/request_framing.h"
#include "storage/csv_report.h"

namespace segd::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Responses up to this size are copied into the connection's output batch; larger bodies are
// written from their own string (gather write), without a copy.
constexpr size_t kCopyBodyBelow = 16 * 1024;
// Answers queued before a batch is written even if more pipelined requests are waiting.
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
// Chunks of a streamed body buffered between the worker and the connection.
constexpr size_t kStreamQueueChunks = 4;
constexpr unsigned kWorkerThreads = 2;
// Threads that run mutations under --durability fsync. They mostly sleep in a group fsync, and
// every one waiting joins the same sync, so more threads mean larger groups, not more work.
constexpr unsigned kDurableWriteThreads = 32;
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 4 << 20;

uint64_t NanosSince(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

// "Date: Sun, 22 Nov 2026 10:00:00 GMT\r\n", formatted once per second per thread.
absl::string_view DateHeader() {
  thread_local int64_t cached_second = -1;
  thread_local char text[64];
  thread_local size_t length = 0;
  int64_t now = engine::SystemClock::Default()->NowMs() / 1000;
  if (now != cached_second) {
    std::time_t t = static_cast<std::time_t>(now);
    std::tm tm;
    gmtime_r(&t, &tm);
    length = std::strftime(text, sizeof text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    cached_second = now;
  }
  return absl::string_view(text, length);
}

void AppendHead(std::string* out, unsigned status, absl::string_view content_type,
                const std::vector<std::pair<std::string, std::string>>& headers, bool keep_alive) {
  auto beast_reason = http::obsolete_reason(static_cast<http::status>(status));
  absl::string_view reason(beast_reason.data(), beast_reason.size());
  absl::StrAppend(out, "HTTP/1.1 ", status, " ", reason, "\r\nServer: segd\r\n", DateHeader(),
                  "Content-Type: ", content_type, "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(out, name, ": ", value, "\r\n");
  if (!keep_alive) out->append("Connection: close\r\n");
}

// Hands a streamed body from a worker thread to its connection, with a bounded queue.
struct StreamChannel {
  std::mutex mu;
  std::condition_variable space;
  std::deque<std::string> chunks;  // guarded by mu
  bool done = false;               // guarded by mu
  bool cancelled = false;          // guarded by mu
  absl::Status status;             // guarded by mu
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(Api& api, const ServerConfig& config)
      : api_(api),
        config_(config),
        ioc_(static_cast<int>(config.threads)),
        acceptor_(ioc_),
        workers_(kWorkerThreads),
        durable_writers_(kDurableWriteThreads) {}

  absl::Status Start();
  uint16_t port() const { return port_; }
  void Shutdown();

  class Session;

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);

  // Posts `fn(session)` to the strand of every open session.
  template <typename Fn>
  void ForEachSession(Fn fn);

  Api& api_;
  const ServerConfig& config_;
  // Declared before the io_context: sessions still queued in it when it is destroyed
  // unregister themselves here.
  std::mutex sessions_mu_;
  absl::flat_hash_set<Session*> sessions_;  // guarded by sessions_mu_
  std::condition_variable sessions_empty_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::thread_pool workers_;
  asio::thread_pool durable_writers_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  bool shut_down_ = false;
};

// One client connection. All its methods run on its strand.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket&& socket)
      : server_(server), api_(server.api_), config_(server.config_), stream_(std::move(socket)) {
    in_.max_size(config_.max_header + 2 * kReadChunk);
  }

  ~Session() {
    api_.metrics().ConnectionClosed();
    std::lock_guard lock(server_.sessions_mu_);
    server_.sessions_.erase(this);
    if (server_.sessions_.empty()) server_.sessions_empty_.notify_all();
  }

  void Run() {
    {
      std::lock_guard lock(server_.sessions_mu_);
      server_.sessions_.insert(this);
    }
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Process(); });
  }

  auto executor() { return stream_.get_executor(); }

  // Called (through the strand) when the server drains: an idle connection closes now, a busy
  // one after its current answer.
  void OnDrain() {
    draining_ = true;
    if (reading_ && !parser_ && in_.size() == 0) Close();
  }

  // Called (through the strand) when the grace period is over.
  void ForceClose() { Close(); }

 private:
  // Parses and answers every complete request in in_, then writes or reads.
  // Does nothing while a write is in flight (its completion calls Process again): a second
  // write would send the same pieces twice.
  void Process() {
    while (!closed_ && !waiting_ && !writing_ && in_.size() > 0 && out_bytes_ < kMaxBatchBytes &&
           !close_after_write_) {
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
        if (used == 0) break;
        continue;
      }
      if (ec) {
        ParseError(ec);
        break;
      }
      if (parser_->is_header_done() && !routed_ && !OnHeader()) break;
      if (parser_->is_done()) OnRequest();
    }
    if (closed_ || waiting_ || writing_) return;
    if (!out_.empty()) {
      Write();
    } else if (close_after_write_) {
      Linger();
    } else {
      Read();
    }
  }

  void StartRequest() {
    parser_.emplace();
    parser_->header_limit(config_.max_header);
    // The route's limit is applied once the header is known (OnHeader); until then the largest.
    parser_->body_limit(
        std::max({config_.max_body, config_.max_check_body, config_.max_import_body}));
    routed_ = false;
    request_deadline_ = Clock::now() + std::chrono::seconds(config_.read_timeout_seconds);
  }

  // Routes the request and checks its declared size. Returns false if it was answered already.
  bool OnHeader() {
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
    if (auto field = req.find(http::field::content_length);
        field != req.end() &&
        absl::SimpleAtoi(absl::string_view(field->value().data(), field->value().size()),
                         &length) &&
        length > limit) {
      Reject(413, "payload_too_large",
             absl::StrCat("the body is ", length, " bytes; this endpoint takes at most ", limit));
      return false;
    }
    parser_->body_limit(limit);
    if (!parser_->is_done()) {
      auto expect = req.find(http::field::expect);
      if (expect != req.end() &&
          absl::EqualsIgnoreCase(absl::string_view(expect->value().data(), expect->value().size()),
                                 "100-continue")) {
        AppendPiece("HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    return true;
  }

  void ParseError(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      Reject(431, "header_too_large",
             absl::StrCat("the request line and headers exceed ", config_.max_header, " bytes"));
    } else if (ec == http::error::body_limit) {
      Reject(413, "payload_too_large",
             absl::StrCat("the body exceeds this endpoint's limit of ", api_.BodyLimit(match_),
                          " bytes"));
    } else {
      Reject(400, "bad_request", absl::StrCat("malformed HTTP request: ", ec.message()));
    }
  }

  // Answers an error found by the HTTP layer and closes the connection after it.
  void Reject(unsigned status, absl::string_view code, absl::string_view message) {
    Response response;
    ErrorResponse(HttpError(code, message), response);
    response.status = status;
    close_after_write_ = true;
    Queue(response, false);
    api_.metrics().Record(routed_ ? match_.route : -1, status, 0);
    parser_.reset();
  }

  void OnRequest() {
    Clock::time_point start = Clock::now();
    auto& req = parser_->get();
    bool keep_alive = req.keep_alive() && !draining_ && !server_.draining_.load();
    Request request;
    request.method = absl::string_view(req.method_string().data(), req.method_string().size());
    request.target = absl::string_view(req.target().data(), req.target().size());
    if (auto it = req.find(http::field::content_type); it != req.end()) {
      request.content_type = absl::string_view(it->value().data(), it->value().size());
    }
    request.body = std::move(req.body());
    // On the stack: only answers handed to a worker need to outlive this call.
    Response response;
    api_.Handle(request, match_, response);
    int route = match_.route;
    if (LogEnabled(LogLevel::kDebug)) {
      Log(LogLevel::kDebug, "%.*s %.*s -> %u", static_cast<int>(request.method.size()),
          request.method.data(), static_cast<int>(request.target.size()), request.target.data(),
          response.status);
    }
    if (response.blocking) {
      RunBlocking(std::make_unique<Response>(std::move(response)), keep_alive, route, start);
    } else if (response.stream) {
      RunStream(std::make_unique<Response>(std::move(response)), keep_alive, route, start);
    } else {
      Queue(response, keep_alive);
      api_.metrics().Record(route, response.status, NanosSince(start));
    }
    // The request (and the views into it) is done with; the next one starts fresh.
    parser_.reset();
    if (!keep_alive) close_after_write_ = true;
  }

  // Serializes a complete response into the output batch.
  void Queue(Response& response, bool keep_alive) {
    std::string& head = TailPiece();
    AppendHead(&head, response.status, response.content_type, response.headers, keep_alive);
    absl::StrAppend(&head, "Content-Length: ", response.body.size(), "\r\n\r\n");
    out_bytes_ += response.body.size();
    if (response.body.size() < kCopyBodyBelow) {
      head.append(response.body.data(), response.body.size());
    } else {
      out_.push_back(std::move(response.body));
      tail_shared_ = false;
    }
  }

  void RunBlocking(std::unique_ptr<Response> response, bool keep_alive, int route,
                   Clock::time_point start) {
    waiting_ = true;
    asio::thread_pool& pool = response->pool == Response::Pool::kDurableWrites
                                  ? server_.durable_writers_
                                  : server_.workers_;
    asio::post(pool, [self = shared_from_this(), r = std::move(response), keep_alive, route,
                      start]() mutable {
      // Moved out first: the function may reset the response it fills (an error answer does).
      auto fill = std::move(r->blocking);
      r->blocking = nullptr;
      fill(*r);
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r), keep_alive, route, start]() mutable {
                   self->waiting_ = false;
                   self->Queue(*r, keep_alive);
                   self->api_.metrics().Record(route, r->status, NanosSince(start));
                   self->Process();
                 });
    });
  }

  void RunStream(std::unique_ptr<Response> response, bool keep_alive, int route,
                 Clock::time_point start) {
    waiting_ = true;
    stream_keep_alive_ = keep_alive;
    std::string& head = TailPiece();
    AppendHead(&head, response->status, response->content_type, response->headers, keep_alive);
    head.append("Transfer-Encoding: chunked\r\n\r\n");
    api_.metrics().Record(route, response->status, NanosSince(start));
    channel_ = std::make_shared<StreamChannel>();
    auto producer = std::move(response->stream);
    asio::post(server_.workers_,
               [self = shared_from_this(), channel = channel_, producer = std::move(producer)] {
                 auto notify = [&self] {
                   asio::post(self->stream_.get_executor(), [self] { self->PumpStream(); });
                 };
                 absl::Status status = producer([&](absl::string_view chunk) {
                   if (chunk.empty()) return true;
                   std::unique_lock lock(channel->mu);
                   channel->space.wait(lock, [&] {
                     return channel->cancelled || channel->chunks.size() < kStreamQueueChunks;
                   });
                   if (channel->cancelled) return false;
                   channel->chunks.emplace_back(chunk);
                   lock.unlock();
                   notify();
                   return true;
                 });
                 {
                   std::lock_guard lock(channel->mu);
                   channel->done = true;
                   channel->status = status;
                 }
                 notify();
               });
    PumpStream();
  }

  // Moves ready chunks of the streamed body into the output and writes them.
  void PumpStream() {
    if (!channel_ || writing_ || closed_) return;
    bool done;
    absl::Status status;
    {
      std::lock_guard lock(channel_->mu);
      while (!channel_->chunks.empty()) {
        std::string& chunk = channel_->chunks.front();
        absl::StrAppend(&TailPiece(), absl::Hex(chunk.size()), "\r\n");
        out_.push_back(std::move(chunk));
        tail_shared_ = false;
        AppendPiece("\r\n");
        channel_->chunks.pop_front();
      }
      done = channel_->done;
      status = channel_->status;
    }
    channel_->space.notify_all();
    if (done) {
      channel_.reset();
      waiting_ = false;
      if (status.ok()) {
        AppendPiece("0\r\n\r\n");
        if (!stream_keep_alive_) close_after_write_ = true;
      } else {
        // Leave the body unfinished, so that the client sees it was cut short.
        Log(LogLevel::kError, "streamed response cut short: %s",
            std::string(status.message()).c_str());
        close_after_write_ = true;
      }
    }
    if (!out_.empty()) {
      Write();
    } else if (done) {
      Process();
    }
  }

  std::string& TailPiece() {
    if (out_.empty() || !tail_shared_) {
      out_.emplace_back();
      tail_shared_ = true;
    }
    return out_.back();
  }

  void AppendPiece(absl::string_view text) { TailPiece().append(text.data(), text.size()); }

  void Read() {
    reading_ = true;
    if (draining_ && !parser_ && in_.size() == 0) {
      Close();
      return;
    }
    Clock::time_point deadline = Clock::now() + std::chrono::seconds(config_.read_timeout_seconds);
    if (parser_ && !parser_->is_header_done()) deadline = std::min(deadline, request_deadline_);
    stream_.expires_at(deadline);
    size_t room = std::min(kReadChunk, in_.max_size() - in_.size());
    if (room == 0) {  // cannot happen while the parser enforces max_header; never spin on it
      Reject(431, "header_too_large", "the request does not fit the input buffer");
      Process();
      return;
    }
    auto buffer = in_.prepare(room);
    stream_.async_read_some(buffer, [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->reading_ = false;
      if (ec) {
        if (ec == beast::error::timeout) self->api_.metrics().ConnectionTimedOut();
        self->Close();
        return;
      }
      self->in_.commit(n);
      // A new request's clock starts with its first byte.
      if (!self->parser_ && n > 0) self->StartRequest();
      self->Process();
    });
  }

  void Write() {
    writing_ = true;
    buffers_.clear();
    for (const std::string& piece : out_) buffers_.emplace_back(piece.data(), piece.size());
    stream_.expires_after(std::chrono::seconds(config_.read_timeout_seconds));
    asio::async_write(stream_, buffers_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->OnWritten(ec);
    });
  }

  void OnWritten(beast::error_code ec) {
    writing_ = false;
    out_.clear();
    out_bytes_ = 0;
    tail_shared_ = false;
    if (ec) {
      Close();
      return;
    }
    if (channel_) {
      PumpStream();
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
  void Linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_deadline_ = Clock::now() + kLingerTime;
    DiscardInput(0);
  }

  void DiscardInput(size_t discarded) {
    if (closed_) return;
    if (discarded > kLingerBytes || Clock::now() >= linger_deadline_) {
      Close();
      return;
    }
    stream_.expires_at(linger_deadline_);
    in_.clear();
    auto buffer = in_.prepare(kReadChunk);
    stream_.async_read_some(buffer,
                            [self = shared_from_this(), discarded](beast::error_code ec, size_t n) {
                              if (ec) {
                                self->Close();
                                return;
                              }
                              self->DiscardInput(discarded + n);
                            });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (channel_) {
      {
        std::lock_guard lock(channel_->mu);
        channel_->cancelled = true;
      }
      channel_->space.notify_all();
      channel_.reset();
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  Impl& server_;
  Api& api_;
  const ServerConfig& config_;
  beast::tcp_stream stream_;
  beast::flat_buffer in_;
  std::optional<http::request_parser<http::string_body>> parser_;
  RouteMatch match_;
  bool routed_ = false;
  Clock::time_point request_deadline_;
  Clock::time_point linger_deadline_;

  std::vector<std::string> out_;  // pieces of the next write, in order
  bool tail_shared_ = false;      // out_.back() may take more small text
  size_t out_bytes_ = 0;
  std::vector<asio::const_buffer> buffers_;

  bool reading_ = false;
  bool writing_ = false;
  bool waiting_ = false;  // a worker is producing the current answer
  bool close_after_write_ = false;
  bool draining_ = false;
  bool closed_ = false;
  std::shared_ptr<StreamChannel> channel_;
  bool stream_keep_alive_ = true;
};

absl::Status HttpServer::Impl::Start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(config_.bind, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bind '", config_.bind, "' is not an IP address: ", ec.message()));
  }
  tcp::endpoint endpoint(address, config_.port);
  auto fail = [&](absl::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("cannot ", what, " ", config_.bind, ":", config_.port, ": ", ec.message()));
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  port_ = acceptor_.local_endpoint().port();
  Accept();
  threads_.reserve(config_.threads);
  for (unsigned i = 0; i < config_.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  return absl::OkStatus();
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (draining_.load()) return;
  if (!ec) {
    if (api_.metrics().connections_open() >= static_cast<int64_t>(config_.max_connections)) {
      api_.metrics().ConnectionRejected();
      static const std::string kBusy = [] {
        constexpr absl::string_view kBody =
            R"({"error":{"code":"unavailable","message":"too many connections","details":{}}})";
        return absl::StrCat(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; "
            "charset=utf-8\r\nConnection: close\r\nContent-Length: ",
            kBody.size(), "\r\n\r\n", kBody);
      }();
      beast::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(kBusy.data(), kBusy.size()), ignored);
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      api_.metrics().ConnectionOpened();
      std::make_shared<Session>(*this, std::move(socket))->Run();
    }
  } else if (ec == asio::error::operation_aborted) {
    return;
  } else {
    Log(LogLevel::kWarn, "accept failed: %s", ec.message().c_str());
    if (ec == asio::error::no_descriptors)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Accept();
}

template <typename Fn>
void HttpServer::Impl::ForEachSession(Fn fn) {
  // Take references under the lock, post after releasing it: the last reference to a session
  // may be dropped here (its connection closed meanwhile), and ~Session takes sessions_mu_.
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(sessions_mu_);
    live.reserve(sessions_.size());
    for (Session* s : sessions_) {
      // A session whose count already fell to zero is being destroyed; skip it.
      if (auto self = s->weak_from_this().lock()) live.push_back(std::move(self));
    }
  }
  for (std::shared_ptr<Session>& self : live) {
    auto executor = self->executor();
    asio::post(executor, [self = std::move(self), fn] { fn(*self); });
  }
}

void HttpServer::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  draining_.store(true);
  if (threads_.empty()) return;  // never started
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  ForEachSession([](Session& s) { s.OnDrain(); });
  auto all_closed = [this] { return sessions_.empty(); };
  {
    std::unique_lock lock(sessions_mu_);
    sessions_empty_.wait_for(lock, std::chrono::seconds(config_.shutdown_grace_seconds),
                             all_closed);
  }
  // Past the grace period: close what remains (this also stops streamed reports).
  ForEachSession([](Session& s) { s.ForceClose(); });
  {
    std::unique_lock lock(sessions_mu_);
    sessions_empty_.wait_for(lock, std::chrono::seconds(1), all_closed);
  }
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  workers_.join();
  durable_writers_.join();
}

HttpServer::HttpServer(Api& api, const ServerConfig& config)
    : impl_(std::make_unique<Impl>(api, config)) {}

HttpServer::~HttpServer() {
  if (impl_) impl_->Shutdown();
}

absl::Status HttpServer::Start() { return impl_->Start(); }
uint16_t HttpServer::port() const { return impl_->port(); }
void HttpServer::Shutdown() { impl_->Shutdown(); }

}  // namespace segd::server
