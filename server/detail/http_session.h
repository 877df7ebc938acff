#pragma once

// HttpSession: one client connection of HttpServer, and SessionRegistry, the server's list of
// them. http_server.h states the contract (parsing, pipelining, limits, timeouts, workers).
//
// A session reads whatever bytes are available, answers every complete request in them, and
// writes all the answers in one gather write (OutputBatch). An answer a worker produces
// (Response::blocking) pauses the session until it is ready. A streamed answer
// (Response::stream) is produced a step at a time on a worker (about kStreamStepBytes); the
// next step starts only when the session is not blocked on a write, so a client that stops
// reading holds at most two steps of memory and no thread.
//
// A request whose route takes lines (Api::TakesLines) and whose body is chunked or larger than
// kInlineLinesBytes is read as a stream: whole lines go to the route's LineConsumer in steps of
// about kLinesStepBytes on a durable-write worker while the next ones are read; reading pauses
// while a step's worth waits for a busy consumer, so such a body costs two steps of memory
// however large it is. A line longer than kMaxBodyLine is dropped as it arrives (the consumer
// reports it invalid). The answer comes once the consumer has finished.
//
// With TLS (SessionHost::tls), Run first completes the handshake (within read_timeout), then
// the session reads and writes through Beast's ssl_stream, which coalesces a batch's pieces
// into few TLS records; everything else is the same. A closing connection does not wait for
// the peer's close_notify (HTTP framing already tells a complete answer from a cut one).
//
// Thread safety: a session's methods run on its strand, except Run (the accepting thread,
// once). SessionRegistry is safe from any thread.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/api.h"
#include "server/config.h"
#include "server/detail/connection.h"
#include "server/detail/output_batch.h"
#include "server/detail/request_body.h"
#include "server/detail/write_gatherer.h"

namespace segd::server::detail {

// What the server shares with its sessions. Outlives every session.
struct SessionHost {
  Api& api;
  const ServerConfig& config;
  boost::asio::thread_pool& workers;          // blocking answers and streamed steps
  boost::asio::thread_pool& durable_writers;  // mutations under --durability fsync
  WriteGatherer* gatherer;                    // single-user writes under process durability
  const std::atomic<bool>& draining;          // the server is shutting down
  SessionRegistry& registry;
  boost::asio::ssl::context* tls = nullptr;  // set: every connection speaks TLS (--tls-cert)
};

// A request body being read as lines (HttpSession; outside it so that optional<> may hold it).
struct LinesInput {
  std::unique_ptr<LineConsumer> consumer;  // null while a step has it
  bool stepping = false;                   // a step runs on a worker
  bool body_done = false;                  // the parser has read the whole body
  bool skipping = false;                   // dropping an overlong line up to its end
  BodyPiece ready;                         // whole lines not yet handed over
  uint64_t lines = 0;                      // lines moved into pieces so far
  absl::Status status;                     // the first error of a step
  int route = -1;
  bool keep_alive = true;
  std::string origin;
  std::chrono::steady_clock::time_point start;
};

class HttpSession : public Connection, public std::enable_shared_from_this<HttpSession> {
 public:
  // Bytes a streamed answer produces per worker step.
  static constexpr size_t kStreamStepBytes = 128 * 1024;

  // Bodies of line routes up to this size are read whole and answered inline.
  static constexpr uint64_t kInlineLinesBytes = 256 * 1024;
  static constexpr size_t kLinesStepBytes = 1 << 20;

  HttpSession(SessionHost& host, Socket&& socket);
  ~HttpSession();

  // Registers the session and starts reading.
  void Run();
  std::shared_ptr<Connection> Lock() override { return weak_from_this().lock(); }
  boost::asio::any_io_executor executor() override { return socket_.get_executor(); }
  void OnDrain() override;
  void ForceClose() override { Close(); }
  void OnDeadline() override;

 private:
  using Clock = std::chrono::steady_clock;

  void Process();
  void StartRequest();
  bool OnHeader();
  void ParseError(boost::beast::error_code ec);
  void Reject(unsigned status, absl::string_view code, absl::string_view message);
  // Answers `response` (an error found before the body was read) and closes after it.
  void RejectWith(Response& response);
  // Starts reading the body as lines if the route takes them. Returns false if the request
  // was answered already (refused).
  bool MaybeOpenLines(uint64_t declared_length, bool length_known);
  // Moves whole lines out of the parsed body into the next piece.
  void TakeLines();
  // The body has ended: the rest is the last line.
  void EndLines();
  // Hands the next piece to the consumer, or finishes, when the consumer is free.
  void PumpLines();
  void OnLinesStep(std::unique_ptr<LineConsumer> consumer, absl::Status status);
  void OnLinesAnswer(std::unique_ptr<Response> response);
  // Reading waits for the consumer.
  bool LinesPaused() const;
  void OnRequest();
  void RunBlocking(std::unique_ptr<Response> response, bool keep_alive, bool head_only, int route,
                   Clock::time_point start);
  void RunStream(Response& response, bool keep_alive);
  // A LiveAnswer (Response::live): produced on a worker, armed on the strand while it waits.
  void RunLive(std::unique_ptr<Response> response, bool keep_alive, bool head_only, int route,
               Clock::time_point start);
  void LiveProduce();
  void OnLiveStep(std::unique_ptr<Response> response, LiveAnswer::Step step);
  void ArmLive();
  void OnLiveWake(uint64_t generation);
  // Ends the live answer's wait early (the server drains or the connection closes).
  void DisarmLive();
  // Starts the next step of the streamed answer on a worker, unless one runs or it ended.
  void Produce();
  void OnProduced(BodySource source, std::vector<std::string> chunks, absl::StatusOr<bool> more);
  // Moves produced chunks into the output, ends the body once the source has, and writes.
  void PumpStream();
  void Read();
  void Write();
  void OnWritten(boost::beast::error_code ec);
  void Linger();
  void DiscardInput(size_t discarded);
  void Close();

  SessionHost& host_;
  Api& api_;
  const ServerConfig& config_;
  Socket socket_;
  // With TLS, the encrypted stream over socket_. Reads and writes go through it; lingering and
  // closing use socket_ directly.
  std::unique_ptr<TlsStream> tls_;
  std::string client_address_;  // the peer's IP address, empty if unknown
  boost::beast::flat_buffer in_;
  std::optional<boost::beast::http::request_parser<RequestBody>> parser_;
  RouteMatch match_;
  bool routed_ = false;
  int64_t request_deadline_ = 0;  // the header must be complete by then (DeadlineNow)
  int64_t linger_deadline_ = 0;
  bool lingering_ = false;

  OutputBatch out_;  // the next write
  std::vector<boost::asio::const_buffer> buffers_;

  bool reading_ = false;
  bool writing_ = false;
  bool waiting_ = false;  // a worker is producing the current answer
  bool close_after_write_ = false;
  bool draining_ = false;
  bool closed_ = false;

  // The streamed answer in progress.
  bool streaming_ = false;
  bool stream_keep_alive_ = true;
  BodySource source_;       // empty while a step has it, or once it ended
  bool producing_ = false;  // a step runs on a worker
  bool source_ended_ = false;
  absl::Status source_status_;
  std::vector<std::string> ready_;  // produced, not yet in out_

  // The live answer in progress: live_ is null while a worker has it.
  bool live_active_ = false;
  bool live_head_sent_ = false;  // a stream's head is out
  std::unique_ptr<Response> live_;
  bool live_armed_ = false;
  bool live_more_ = false;  // Produce has more once the write is done
  bool live_keep_alive_ = true;
  bool live_head_only_ = false;
  int live_route_ = -1;
  Clock::time_point live_start_;
  uint64_t live_generation_ = 0;  // wakes of older arms are ignored
  std::optional<boost::asio::steady_timer> live_timer_;

  // The request body being read as lines.
  std::optional<LinesInput> lines_;
};

}  // namespace segd::server::detail
