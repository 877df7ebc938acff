#pragma once

// Connection: what the server needs of a client connection of either protocol (HttpSession,
// RespSession) to shut down gracefully; and SessionRegistry, the list of open ones.
//
// Thread safety: a connection's OnDrain and ForceClose run on its executor (post them there);
// Lock may be called from any thread. SessionRegistry is safe from any thread.

#include <boost/asio/any_io_executor.hpp>
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
