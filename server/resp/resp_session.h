#pragma once

// RespSession: one client connection speaking the Redis protocol (docs/resp.md), served by
// HttpServer's threads beside the HTTP connections.
//
// A session reads whatever bytes are available, answers every complete command in them in
// order, and writes all the replies in one write: a pipeline of N commands costs one read and
// one write, not N of each. Replies past kMaxPendingOutput are written before more commands
// run, so a client that pipelines without reading holds a bounded amount of memory.
//
// Single-member SADDs (the common write) are gathered, under --durability process, with those
// of the other connections that arrived in the same pass of the event loop, and applied as one
// log write (resp_add_gatherer.h); the session waits for their replies before it runs the
// commands after them. Writes under --durability fsync wait for a disk sync; such a command, and
// every complete command after it in the same read, run on a durable-write worker (never on an I/O
// thread), and the session reads nothing more until they are answered. Otherwise commands run on
// the session's strand.
//
// Limits, as over HTTP: a command larger than --max-import-body or an argument over 1 MiB is
// a protocol error (an error reply, then close); before AUTH, with access control on, a
// command may have at most 10 arguments of 16 KiB (what Redis allows an unauthenticated
// client). A command begun must arrive whole within --read-timeout, replies must be taken
// within it, and an idle connection closes after --resp-idle-timeout (never by default).
// Past --max-connections (HTTP and RESP together), a new connection gets
// "-ERR max number of clients reached" and is closed. With TLS (--tls-cert), RESP speaks TLS
// too.
//
// Thread safety: a session's methods run on its strand, except Run (the accepting thread,
// once) and the durable-write steps (a worker, while the strand waits for them).

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/detail/connection.h"
#include "server/metrics.h"
#include "server/resp/resp_add_gatherer.h"
#include "server/resp/resp_commands.h"
#include "server/resp/resp_parser.h"

namespace segd::server::resp {

// What the server shares with its RESP sessions. Outlives every session.
struct RespHost {
  RespCommands& commands;
  Metrics& metrics;
  const ServerConfig& config;
  boost::asio::thread_pool& durable_writers;  // mutations under --durability fsync
  const std::atomic<bool>& draining;
  detail::SessionRegistry& registry;
  AddGatherer& adds;  // single-member SADDs under --durability process
  boost::asio::ssl::context* tls = nullptr;
};

class RespSession : public detail::Connection, public std::enable_shared_from_this<RespSession> {
 public:
  // Replies buffered past this are written before more commands run.
  static constexpr size_t kMaxPendingOutput = 1 << 20;

  RespSession(RespHost& host, detail::Socket&& socket);
  ~RespSession() override;

  // Registers the session and starts reading.
  void Run();
  std::shared_ptr<Connection> Lock() override { return weak_from_this().lock(); }
  boost::asio::any_io_executor executor() override { return socket_.get_executor(); }
  void OnDrain() override;
  void ForceClose() override { Close(); }
  void OnDeadline() override;

 private:
  using Clock = std::chrono::steady_clock;

  // Answers the complete commands in the input, then writes or reads.
  void Process();
  // Runs commands (owned copies) on a durable-write worker, then resumes on the strand.
  void RunDurable(std::vector<std::vector<std::string>> commands);
  // Hands single-member SADDs to the gatherer, then resumes on the strand with their replies.
  void RunGathered(AddGatherer::Adds adds);
  void Read();
  void Write();
  void Close();
  // The parser's limits for the client's state (tight before AUTH).
  void UpdateLimits();

  RespHost& host_;
  RespCommands& commands_;
  const ServerConfig& config_;
  detail::Socket socket_;
  std::unique_ptr<detail::TlsStream> tls_;
  RespClient client_;
  RespParser parser_;
  bool tight_limits_ = false;
  boost::beast::flat_buffer in_;
  std::vector<absl::string_view> args_;
  std::string out_;      // replies not yet written
  std::string writing_;  // replies being written
  bool reading_ = false;
  bool write_in_flight_ = false;
  bool waiting_ = false;  // commands run on a durable-write worker or in the gatherer
  bool close_after_write_ = false;
  bool draining_ = false;
  bool closed_ = false;
  // When the command begun in the input must be complete (--read-timeout).
  int64_t command_deadline_ = 0;  // a DeadlineNow value
  bool command_started_ = false;
};

}  // namespace segd::server::resp
