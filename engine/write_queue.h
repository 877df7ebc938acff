#pragma once

// WriteQueue: the engine's mutations, run one group at a time by whichever waiting thread
// leads, with one durability wait per group and, where tasks allow it, one commit for many.
//
// A mutation is a Task. Submit appends it to a queue. The thread whose task is at the front
// leads: it takes every task queued at that moment (at most kMaxGroup), runs them one after
// another under the engine's writer lock, hands the lead to the next task in the queue, and
// then waits once for the sink's durability (OpSink::WaitDurable) on behalf of the whole group
// before it wakes each task's thread. So
//   - each waiting thread sleeps once and is woken once, instead of queueing on the writer
//     lock and again on the sync (on two cores, context switches were most of the cost of a
//     small fsync-mode mutation);
//   - the next group runs while this group's sync is in progress (the sink's group commit
//     then covers the next group with one sync);
//   - tasks run in the order they were submitted, exactly as if each had taken the lock.
// A task that committed nothing still waits for its group's durability: what it read may have
// come from a batch of the same group.
//
// Combined commits. A task with a non-empty combine_key (a single-user mutation, keyed by the
// user) may share one commit with the adjacent combinable tasks of its group: the leader calls
// Combiner::BeginCombined, runs them back to back under one hold of the writer lock (their
// commits only collect batches), and Combiner::EndCombined writes everything they collected as
// one sink batch and applies it. A run of combined tasks ends before a task without a key,
// before a task whose key is already in it, and at the end of the group, so no task is
// planned against a change that is collected but not yet applied: tasks of distinct keys must
// not read what the others change (engine.h keys them by user for exactly this). If the
// combined commit fails, every task of it that committed gets that error (DurabilityFailed),
// and memory holds none of it. The writer lock is otherwise taken per task, so a snapshot's
// quiescent point waits for one import or one combined commit, never a whole group.
//
// Thread safety: Submit may be called from any thread at any time, except from inside a Task's
// Run (it would wait for itself).

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/futex_word.h"
#include "base/mutex.h"
#include "engine/op_record.h"

namespace segd::engine {

class WriteQueue {
 public:
  // Largest number of tasks one leader runs before handing over.
  static constexpr size_t kMaxGroup = 128;

  // Commits the batches of several tasks as one. Both are called by the leader with the
  // writer lock held.
  class Combiner {
   public:
    virtual ~Combiner() = default;
    // From now until EndCombined, a task's commit collects its batch instead of writing it.
    // Returns false to refuse: the task then runs alone (the engine refuses while rule
    // segments answer, since a rule's deadlines are planned for every user at once).
    virtual bool BeginCombined() = 0;
    // Writes what was collected as one batch and applies it. On error none of it is applied.
    virtual absl::Status EndCombined() = 0;
  };

  class Task {
   public:
    virtual ~Task() = default;
    // Runs the mutation, on the leading thread, with the writer lock held. Sets `committed`
    // if it handed a batch to the sink.
    virtual void Run() = 0;
    // Replaces the result of a task that committed when the durability wait failed.
    virtual void DurabilityFailed(const absl::Status& status) = 0;

    bool committed = false;
    // Non-empty: the task may share a commit with adjacent tasks of other keys (see above).
    absl::string_view combine_key;

   private:
    friend class WriteQueue;
    enum State : uint32_t { kQueued = 0, kLead = 1, kDone = 2 };
    FutexWord state_{kQueued};
    Task* next_ = nullptr;  // guarded by WriteQueue::mu_ while queued
  };

  // Not owned; all must outlive the queue.
  WriteQueue(Mutex* writer_mu, OpSink* sink, Combiner* combiner)
      : writer_mu_(writer_mu), sink_(sink), combiner_(combiner) {}
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Runs `task` (on this thread or a leading one) and returns once it ran and, if its group
  // committed anything, once the sink reported that group durable.
  void Submit(Task& task);

  // Tasks queued and not yet taken by a leader's group, plus the running groups' (tests).
  size_t TEST_Queued();

 private:
  // Runs the group headed by `self`, hands the lead on, waits for durability, wakes the group.
  void Lead(Task& self);
  // Ends the combined commit of the tasks first … last (inclusive) and releases the writer
  // lock that BeginCombined was called under.
  void EndCombined(Task* first, Task* last);

  Mutex* const writer_mu_;
  OpSink* const sink_;
  Combiner* const combiner_;
  // Keys of the open combined commit. Used only by the leader, while it runs its group (the
  // next leader starts after the hand-over, which follows the runs).
  absl::flat_hash_set<absl::string_view> combined_keys_;
  Mutex mu_;
  Task* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  Task* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace segd::engine
