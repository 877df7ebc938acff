#pragma once

// A sink for tests: keeps every batch it accepts, and can be told to fail. Built with
// blocking_durability, it also acts like an fsync-mode log: WaitDurable takes a while, counts
// as durable every batch accepted before it started, and can be told to fail.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "engine/op_record.h"

namespace segd::testutil {

class RecordingSink final : public engine::OpSink, public engine::EventSource {
 public:
  explicit RecordingSink(bool blocking_durability = false)
      : blocking_durability_(blocking_durability) {}

  absl::Status Write(const engine::OpBatch& batch) override {
    segd::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("sink told to fail");
    batches_.push_back(batch);
    return absl::OkStatus();
  }
  absl::Status WaitDurable() override {
    if (!blocking_durability_) return absl::OkStatus();
    size_t covered;
    {
      segd::MutexLock lock(&mu_);
      ++durability_waits_;
      covered = batches_.size();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    segd::MutexLock lock(&mu_);
    if (!durability_status_.ok()) return durability_status_;
    durable_ = std::max(durable_, covered);
    return absl::OkStatus();
  }
  bool WaitDurableBlocks() const override { return blocking_durability_; }

  void set_durability_status(absl::Status status) {
    segd::MutexLock lock(&mu_);
    durability_status_ = std::move(status);
  }
  // Batches accepted so far, and how many of the first of them a WaitDurable has covered.
  size_t accepted() const {
    segd::MutexLock lock(&mu_);
    return batches_.size();
  }
  size_t durable() const {
    segd::MutexLock lock(&mu_);
    return durable_;
  }
  uint64_t durability_waits() const {
    segd::MutexLock lock(&mu_);
    return durability_waits_;
  }
  void set_fail(bool fail) {
    segd::MutexLock lock(&mu_);
    fail_ = fail;
  }
  std::vector<engine::OpBatch> batches() const {
    segd::MutexLock lock(&mu_);
    return batches_;
  }
  // Every membership record, in log order.
  std::vector<engine::OpRecord> records() const {
    segd::MutexLock lock(&mu_);
    std::vector<engine::OpRecord> out;
    for (const auto& b : batches_)
      out.insert(out.end(), b.memberships.begin(), b.memberships.end());
    return out;
  }
  // engine::EventSource: the events of the batches accepted so far.
  absl::Status ScanEvents(uint64_t from_seq, uint64_t to_seq,
                          absl::FunctionRef<bool(const engine::Event&)> fn) const override {
    std::vector<engine::Event> events;
    {
      segd::MutexLock lock(&mu_);
      for (const auto& b : batches_) {
        for (const engine::Event& e : b.events) {
          if (e.seq >= from_seq && e.seq < to_seq) events.push_back(e);
        }
      }
    }
    for (const engine::Event& e : events) {
      if (!fn(e)) break;
    }
    return absl::OkStatus();
  }
  // Rebuilds `engine` (new and empty) from the batches accepted so far, the way the durable log
  // recovers: dictionaries and memberships batch by batch, then the rule state.
  void Recover(engine::Engine& engine) const {
    std::vector<engine::OpBatch> all = batches();
    engine::TimeMs through = 0;
    uint64_t next_event_seq = 1;
    for (engine::OpBatch b : all) {
      through = std::max(through, b.rules_through);
      if (!b.events.empty()) next_event_seq = b.events.back().seq + 1;
      b.events.clear();
      b.traits.clear();
      b.rules_through = 0;
      if (!b.empty()) {
        absl::Status s = engine.ApplyRecovered(b);
        if (!s.ok()) std::abort();
      }
    }
    engine.BeginRuleRecovery(through);
    for (const auto& b : all) {
      for (const engine::Event& e : b.events) engine.RecoverEvent(e);
      for (const engine::TraitChange& t : b.traits) engine.RecoverTrait(t);
    }
    engine.FinishRuleRecovery(next_event_seq);
  }
  void clear() {
    segd::MutexLock lock(&mu_);
    batches_.clear();
  }

 private:
  const bool blocking_durability_;
  mutable segd::Mutex mu_;
  bool fail_ = false;
  std::vector<engine::OpBatch> batches_;
  absl::Status durability_status_;
  size_t durable_ = 0;
  uint64_t durability_waits_ = 0;
};

}  // namespace segd::testutil
