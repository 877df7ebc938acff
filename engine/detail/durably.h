#pragma once

// The body of Engine::Durably (engine.h), shared by the files that run mutations (engine.cc,
// engine_rules.cc). Include nowhere else.

#include <optional>
#include <utility>

#include "engine/engine.h"

namespace segd::engine {

template <typename Body>
auto Engine::Durably(Body&& body, absl::string_view combine_key) -> decltype(body()) {
  using Result = decltype(body());
  struct BodyTask final : WriteQueue::Task {
    BodyTask(Body& b, Engine& e) : body(b), engine(e) {}
    void Run() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      const uint64_t before = engine.commits_;
      engine.task_now_ = engine.clock_->NowMs();
      if (absl::Status s = engine.CatchUpRules(engine.task_now_); !s.ok()) {
        result.emplace(s);
      } else {
        result.emplace(body());
      }
      committed = engine.commits_ != before;
    }
    void DurabilityFailed(const absl::Status& status) override {
      if (result->ok()) result.emplace(status);
    }
    Body& body;
    Engine& engine;
    std::optional<Result> result;
  };
  BodyTask task(body, *this);
  task.combine_key = combine_key;
  if (GatheringHere()) {
    RunGatheredTask(task);
    return std::move(*task.result);
  }
  if (!sink_->WaitDurableBlocks()) {
    {
      MutexLock lock(&write_mu_);
      task.Run();
    }
    if (task.committed) {
      if (absl::Status s = sink_->WaitDurable(); !s.ok()) task.DurabilityFailed(s);
    }
    return std::move(*task.result);
  }
  write_queue_.Submit(task);
  return std::move(*task.result);
}

}  // namespace segd::engine
