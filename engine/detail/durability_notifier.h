#pragma once

// DurabilityNotifier: tells callers, from one thread of its own, when what they wrote is
// durable, so that they need not sleep in a sync themselves.
//
// Add(done) asks for done(status) once every batch the sink accepted before the call is as
// durable as the sink promises. The notifier's thread takes every request pending at once,
// calls the sink's WaitDurable (one sync, shared with any other waiter of the sink), and then
// calls each `done` with its result, in the order they were added. Requests that arrive while
// a sync runs wait for the next one, which covers them all: one sync per round, however many
// requests. `done` runs on the notifier's thread and should only hand the result on (post it
// to an event loop): the next round waits for it.
//
// Thread safety: Add from any thread, concurrently. The destructor completes every pending
// request (after one last sync) before it returns; Add after destruction began answers at once
// with Unavailable.

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "base/mutex.h"

namespace segd::engine::detail {

class DurabilityNotifier {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  // `wait_durable` blocks until everything written so far is durable (OpSink::WaitDurable).
  explicit DurabilityNotifier(absl::AnyInvocable<absl::Status()> wait_durable);
  ~DurabilityNotifier();
  DurabilityNotifier(const DurabilityNotifier&) = delete;
  DurabilityNotifier& operator=(const DurabilityNotifier&) = delete;

  void Add(Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Syncs waited for so far (each covered one round of requests).
  uint64_t rounds() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::AnyInvocable<absl::Status()> wait_durable_;  // called on thread_ only
  mutable Mutex mu_;
  CondVar wake_;
  std::vector<Done> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace segd::engine::detail
