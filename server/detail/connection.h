#pragma once

// Connection: what the server needs of a client connection of either protocol (HttpSession,
// RespSession) to time it out and to shut down gracefully; and SessionRegistry, the list of
// open ones.
//
// Time limits. A connection's reads and writes are not each given a timer: the connection
// keeps a deadline for its read and one for its write (ExpireReadAfter and friends, relaxed
// atomic stores), and the server's DeadlineSweep (deadline_sweep.h) looks over every
// connection ten times a second and calls OnDeadline, on the connection's executor, for those
// past theirs. Arming and cancelling a timer per operation (Beast's tcp_stream) cost about
// 2 µs of CPU per small request; a store costs nothing. The price is precision: a limit fires
// up to DeadlineSweep::kPeriod late.
//
// Thread safety: a connection's OnDrain, ForceClose, OnDeadline and the deadline setters run
// on its executor (post them there; WhenReady is called once, from Run, before anything runs
// there); Lock and deadline may be called from any thread.
// SessionRegistry is safe from any thread.

#include <algorithm>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "base/mutex.h"

namespace segd::server::detail {

// Milliseconds of a coarse monotonic clock (CLOCK_MONOTONIC_COARSE: read without a system
// call, a few milliseconds fine): the unit of connection deadlines.
int64_t DeadlineNow();

// A client connection's socket. With TLS, Beast's ssl_stream runs over it (TlsStream).
using Socket = boost::asio::ip::tcp::socket;
using TlsStream = boost::beast::ssl_stream<Socket&>;

class Connection {
 public:
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

  virtual ~Connection() = default;
  // A reference that keeps the connection alive, or null if it is being destroyed.
  virtual std::shared_ptr<Connection> Lock() = 0;
  virtual boost::asio::any_io_executor executor() = 0;
  // The server drains: an idle connection closes now, a busy one after its current answer.
  virtual void OnDrain() = 0;
  // The grace period is over: close now.
  virtual void ForceClose() = 0;
  // The deadline passed (DeadlineSweep checked it again on the executor): close, which ends
  // the read, write or handshake in flight with an error.
  virtual void OnDeadline() = 0;

  // The earlier of the deadlines of the read and the write in flight (DeadlineNow values), or
  // kNoDeadline.
  int64_t deadline() const {
    return std::min(read_deadline_.load(std::memory_order_relaxed),
                    write_deadline_.load(std::memory_order_relaxed));
  }

 protected:
  // A read (or the TLS handshake) must complete by `deadline`; ReadDone when it completed,
  // so that time the server spends on the request never counts against the client.
  void ExpireReadAt(int64_t deadline) { read_deadline_.store(deadline, std::memory_order_relaxed); }
  void ExpireReadAfter(std::chrono::milliseconds limit) {
    ExpireReadAt(DeadlineNow() + limit.count());
  }
  void ReadDone() { ExpireReadAt(kNoDeadline); }
  // The same for a write.
  void ExpireWriteAfter(std::chrono::milliseconds limit) {
    write_deadline_.store(DeadlineNow() + limit.count(), std::memory_order_relaxed);
  }
  void WriteDone() { write_deadline_.store(kNoDeadline, std::memory_order_relaxed); }

  // Runs `next` on the connection's executor (its strand, or with one I/O thread the
  // io_context itself) once the connection is ready: at once on plain TCP; with TLS (`tls`
  // set), after the server side of the handshake, which has `timeout` as its read deadline. A
  // failed or timed-out handshake calls `failed()` instead. `next` and `failed` keep the
  // connection alive (they hold its shared_ptr), and with it `socket`, `tls` and this.
  template <typename Next, typename Failed>
  void WhenReady(Socket& socket, TlsStream* tls, std::chrono::milliseconds timeout, Next next,
                 Failed failed) {
    if (tls == nullptr) {
      boost::asio::dispatch(socket.get_executor(), std::move(next));
      return;
    }
    ExpireReadAfter(timeout);
    boost::asio::dispatch(socket.get_executor(), [this, tls, next = std::move(next),
                                                  failed = std::move(failed)]() mutable {
      tls->async_handshake(boost::asio::ssl::stream_base::server,
                           [this, next = std::move(next),
                            failed = std::move(failed)](boost::system::error_code ec) mutable {
                             ReadDone();
                             if (ec) {
                               failed();
                               return;
                             }
                             next();
                           });
    });
  }

 private:
  std::atomic<int64_t> read_deadline_{kNoDeadline};
  std::atomic<int64_t> write_deadline_{kNoDeadline};
};

class SessionRegistry {
 public:
  void Add(Connection* connection);
  void Remove(Connection* connection);
  // References to every connection not already being destroyed.
  std::vector<std::shared_ptr<Connection>> Live();
  // References to those whose deadline is at or before `now`.
  std::vector<std::shared_ptr<Connection>> PastDeadline(int64_t now);
  // Waits until no connection is left or `timeout` passes; returns whether none is left.
  bool WaitEmpty(std::chrono::nanoseconds timeout);

 private:
  Mutex mu_;
  absl::flat_hash_set<Connection*> connections_ ABSL_GUARDED_BY(mu_);
  CondVar empty_;
};

}  // namespace segd::server::detail
