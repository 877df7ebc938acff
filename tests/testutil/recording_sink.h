#pragma once

// A sink for tests: keeps every batch it accepts, and can be told to fail.

#include <vector>

#include "absl/status/status.h"
#include "engine/mutex.h"
#include "engine/op_record.h"

namespace segd::testutil {

class RecordingSink final : public engine::OpSink {
 public:
  absl::Status Write(const engine::OpBatch& batch) override {
    segd::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("sink told to fail");
    batches_.push_back(batch);
    return absl::OkStatus();
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
    for (const auto& b : batches_) out.insert(out.end(), b.memberships.begin(), b.memberships.end());
    return out;
  }
  void clear() {
    segd::MutexLock lock(&mu_);
    batches_.clear();
  }

 private:
  mutable segd::Mutex mu_;
  bool fail_ = false;
  std::vector<engine::OpBatch> batches_;
};

}  // namespace segd::testutil
