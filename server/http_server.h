#pragma once

// HttpServer: HTTP/1.1 on Boost.Beast in front of an Api, and with --resp-port the Redis
// protocol in front of RespCommands (server/resp/resp_session.h), on the same threads.
//
// Each connection runs on its own strand of one io_context served by `threads` threads. A
// connection reads whatever bytes are available, parses every complete request in them with
// Beast's parser, answers each through the Api, and writes all the answers in one gather write:
// pipelined requests cost one read and one write per batch, not per request. Keep-alive is the
// default (HTTP/1.1); responses keep request order.
//
// Limits, each answered without disturbing other connections:
//   - request line plus headers over max_header: 431, then close;
//   - a body over its route's limit (Api::BodyLimit): 413 decided from Content-Length before the
//     body is read (or when a chunked body passes the limit), then close;
//   - idle longer than read_timeout, or a request's headers not complete within read_timeout
//     of its first byte (slowloris): the connection is closed;
//   - a response not written within read_timeout: closed;
//   - more than max_connections open (HTTP and RESP together): the new one gets 503 (RESP:
//     "-ERR max number of clients reached") and is closed.
// Event and import bodies over 256 KiB or chunked are read as a stream of lines, handed to the
// route's consumer a step at a time (http_session.h), so their size costs no memory.
// Responses with Response::blocking or Response::stream are produced on a small worker pool, so
// a long report never holds an HTTP thread; a streamed body is sent chunked, with back-pressure
// from the client.
//
// Thread safety: Start, then Shutdown, from one controlling thread. Everything else runs on the
// server's own threads.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/api.h"
#include "server/config.h"

namespace segd::server {

namespace resp {
class RespCommands;
}

class HttpServer {
 public:
  // `resp` answers the RESP port (config.resp_port); it must outlive the server. Null: no RESP.
  HttpServer(Api& api, const ServerConfig& config, resp::RespCommands* resp = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds config.bind:config.port (and config.resp_port), listens and starts the threads.
  // Errors: Unavailable with the system's reason (address in use, bad address, permission).
  absl::Status Start();
  // The ports bound (useful with port 0); resp_port is 0 without RESP. REQUIRES: Start
  // succeeded.
  uint16_t port() const;
  uint16_t resp_port() const;
  // Stops accepting; idle connections are closed, those with a request in flight finish it
  // (their answer says Connection: close). Waits up to config.shutdown_grace_seconds for every
  // connection to end, then closes what remains and joins the threads.
  void Shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace segd::server
