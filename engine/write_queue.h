#pragma once

// WriteQueue: the engine's mutations, run one group at a time by whichever waiting thread
// leads, with one durability wait per group.
//
// A mutation is a Task. Submit appends it to a queue. The thread whose task is at the front
// leads: it takes every task queued at that moment (at most kMaxGroup), runs them one after
// another, each under the engine's writer lock, hands the lead to the next task in the queue,
// and then waits once for the sink's durability (OpSink::WaitDurable) on behalf of the whole
// group before it wakes each task's thread. So
//   - each waiting thread sleeps once and is woken once, instead of queueing on the writer
//     lock and again on the sync (on two cores, context switches were most of the cost of a
//     small fsync-mode mutation);
//   - the next group runs while this group's sync is in progress (the sink's group commit
//     then covers the next group with one sync);
//   - tasks run in the order they were submitted, exactly as if each had taken the lock.
// A task that committed nothing still waits for its group's durability: what it read may have
// come from a batch of the same group.
//
// Thread safety: Submit may be called from any thread at any time, except from inside a Task's
// Run (it would wait for itself).

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "engine/futex_word.h"
#include "engine/mutex.h"
#include "engine/op_record.h"

namespace segd::engine {

class WriteQueue {
 public:
  // Largest number of tasks one leader runs before handing over.
  static constexpr size_t kMaxGroup = 128;

  class Task {
   public:
    virtual ~Task() = default;
    // Runs the mutation, on the leading thread, with the writer lock held. Sets `committed`
    // if it handed a batch to the sink.
    virtual void Run() = 0;
    // Replaces the result of a task that committed when the durability wait failed.
    virtual void DurabilityFailed(const absl::Status& status) = 0;

    bool committed = false;

   private:
    friend class WriteQueue;
    enum State : uint32_t { kQueued = 0, kLead = 1, kDone = 2 };
    FutexWord state_{kQueued};
    Task* next_ = nullptr;  // guarded by WriteQueue::mu_ while queued
  };

  // Not owned; both must outlive the queue.
  WriteQueue(Mutex* writer_mu, OpSink* sink) : writer_mu_(writer_mu), sink_(sink) {}
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Runs `task` (on this thread or a leading one) and returns once it ran and, if its group
  // committed anything, once the sink reported that group durable.
  void Submit(Task& task);

 private:
  // Runs the group headed by `self`, hands the lead on, waits for durability, wakes the group.
  void Lead(Task& self);

  Mutex* const writer_mu_;
  OpSink* const sink_;
  std::mutex mu_;
  Task* head_ = nullptr;  // guarded by mu_
  Task* tail_ = nullptr;  // guarded by mu_
};

}  // namespace segd::engine
