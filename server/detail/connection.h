#pragma once

// Connection: what the server needs of a client connection of either protocol (HttpSession,
// RespSession) to shut down gracefully; and SessionRegistry, the list of open ones.
//
// Thread safety: a connection's OnDrain and ForceClose run on its executor (post them there);
// Lock may be called from any thread. SessionRegistry is safe from any thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "base/mutex.h"

namespace segd::server::detail {

class Connection {
 public:
  virtual ~Connection() = default;
  // A reference that keeps the connection alive, or null if it is being destroyed.
  virtual std::shared_ptr<Connection> Lock() = 0;
  virtual boost::asio::any_io_executor executor() = 0;
  // The server drains: an idle connection closes now, a busy one after its current answer.
  virtual void OnDrain() = 0;
  // The grace period is over: close now.
  virtual void ForceClose() = 0;
};

// Runs `next` on the connection's executor (its strand, or with one I/O thread the io_context
// itself) once the connection is ready: at once on plain TCP;
// with TLS (`tls` set), after the server side of the handshake, which must complete within
// `timeout`. A failed handshake calls `failed(timed_out)` instead. `next` and `failed` keep
// the connection alive (they hold its shared_ptr), and with it `stream` and `tls`.
template <typename Next, typename Failed>
void WhenReady(boost::beast::tcp_stream& stream,
               boost::beast::ssl_stream<boost::beast::tcp_stream&>* tls,
               std::chrono::seconds timeout, Next next, Failed failed) {
  if (tls == nullptr) {
    boost::asio::dispatch(stream.get_executor(), std::move(next));
    return;
  }
  boost::asio::dispatch(stream.get_executor(), [&stream, tls, timeout, next = std::move(next),
                                                failed = std::move(failed)]() mutable {
    stream.expires_after(timeout);
    tls->async_handshake(
        boost::asio::ssl::stream_base::server,
        [next = std::move(next), failed = std::move(failed)](boost::beast::error_code ec) mutable {
          if (ec) {
            failed(ec == boost::beast::error::timeout);
            return;
          }
          next();
        });
  });
}

class SessionRegistry {
 public:
  void Add(Connection* connection);
  void Remove(Connection* connection);
  // References to every connection not already being destroyed.
  std::vector<std::shared_ptr<Connection>> Live();
  // Waits until no connection is left or `timeout` passes; returns whether none is left.
  bool WaitEmpty(std::chrono::nanoseconds timeout);

 private:
  Mutex mu_;
  absl::flat_hash_set<Connection*> connections_ ABSL_GUARDED_BY(mu_);
  CondVar empty_;
};

}  // namespace segd::server::detail
