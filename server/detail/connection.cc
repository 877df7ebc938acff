#include "server/detail/connection.h"

namespace segd::server::detail {

void SessionRegistry::Add(Connection* connection) {
  MutexLock lock(&mu_);
  connections_.insert(connection);
}

void SessionRegistry::Remove(Connection* connection) {
  MutexLock lock(&mu_);
  connections_.erase(connection);
  if (connections_.empty()) empty_.SignalAll();
}

std::vector<std::shared_ptr<Connection>> SessionRegistry::Live() {
  // References are taken under the lock and dropped by the caller after it: the last one may
  // destroy its connection, whose destructor takes the lock.
  std::vector<std::shared_ptr<Connection>> live;
  MutexLock lock(&mu_);
  live.reserve(connections_.size());
  for (Connection* c : connections_) {
    // A connection whose count already fell to zero is being destroyed; skip it.
    if (auto self = c->Lock()) live.push_back(std::move(self));
  }
  return live;
}

bool SessionRegistry::WaitEmpty(std::chrono::nanoseconds timeout) {
  MutexLock lock(&mu_);
  return empty_.WaitFor(
      &mu_, timeout, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return connections_.empty(); });
}

}  // namespace segd::server::detail
