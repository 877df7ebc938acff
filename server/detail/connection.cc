#include "server/detail/connection.h"

#include <time.h>

namespace segd::server::detail {

int64_t DeadlineNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

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

std::vector<std::shared_ptr<Connection>> SessionRegistry::PastDeadline(int64_t now) {
  // As in Live, the references are dropped by the caller, after the lock.
  std::vector<std::shared_ptr<Connection>> past;
  MutexLock lock(&mu_);
  for (Connection* c : connections_) {
    if (c->deadline() > now) continue;
    if (auto self = c->Lock()) past.push_back(std::move(self));
  }
  return past;
}

bool SessionRegistry::WaitEmpty(std::chrono::nanoseconds timeout) {
  MutexLock lock(&mu_);
  return empty_.WaitFor(
      &mu_, timeout, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return connections_.empty(); });
}

}  // namespace segd::server::detail
