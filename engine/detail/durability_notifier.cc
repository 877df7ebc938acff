#include "engine/detail/durability_notifier.h"

#include <utility>

namespace segd::engine::detail {

DurabilityNotifier::DurabilityNotifier(absl::AnyInvocable<absl::Status()> wait_durable)
    : wait_durable_(std::move(wait_durable)), thread_([this] { Loop(); }) {}

DurabilityNotifier::~DurabilityNotifier() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  thread_.join();
}

void DurabilityNotifier::Add(Done done) {
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      pending_.push_back(std::move(done));
      wake_.SignalAll();
      return;
    }
  }
  std::move(done)(absl::UnavailableError("segd is shutting down"));
}

uint64_t DurabilityNotifier::rounds() const {
  MutexLock lock(&mu_);
  return rounds_;
}

void DurabilityNotifier::Loop() {
  std::vector<Done> round;
  for (;;) {
    {
      MutexLock lock(&mu_);
      wake_.Wait(
          &mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !pending_.empty() || stopping_; });
      // Stops only once nothing is pending: what was added before the destructor is answered.
      if (pending_.empty()) return;
      round.swap(pending_);
      ++rounds_;
    }
    // Every batch behind these requests was accepted before its Add, so before this sync.
    const absl::Status status = wait_durable_();
    for (Done& done : round) std::move(done)(status);
    round.clear();
  }
}

}  // namespace segd::engine::detail
