#include "engine/write_queue.h"

namespace segd::engine {

void WriteQueue::Submit(Task& task) {
  bool leading;
  {
    std::lock_guard<std::mutex> lock(mu_);
    task.next_ = nullptr;
    if (tail_ == nullptr) {
      head_ = &task;
    } else {
      tail_->next_ = &task;
    }
    tail_ = &task;
    leading = head_ == &task;
  }
  if (!leading) {
    uint32_t state;
    while ((state = task.state_.Load()) == Task::kQueued) task.state_.Wait(Task::kQueued);
    if (state == Task::kDone) return;
  }
  Lead(task);
}

void WriteQueue::Lead(Task& self) {
  // The group: every task queued now, up to kMaxGroup. Their next_ links are stable from here
  // on: only the queue's tail gains a successor, and `last` is not read past.
  Task* last = &self;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t n = 1; n < kMaxGroup && last->next_ != nullptr; ++n) last = last->next_;
  }
  // The writer lock is taken per task, not per group: whoever else needs it (a snapshot's
  // quiescent point, recovery) waits for one mutation, not for a group of large imports.
  bool any_committed = false;
  for (Task* t = &self;; t = t->next_) {
    {
      MutexLock writer(writer_mu_);
      t->Run();
    }
    any_committed |= t->committed;
    if (t == last) break;
  }
  // Hand the lead to the next task, so the next group runs during this group's sync.
  {
    std::lock_guard<std::mutex> lock(mu_);
    head_ = last->next_;
    if (head_ == nullptr) {
      tail_ = nullptr;
    } else {
      head_->state_.StoreAndWakeAll(Task::kLead);
    }
  }
  const absl::Status durable = any_committed ? sink_->WaitDurable() : absl::OkStatus();
  // Wake the others; each may return (and destroy its task) as soon as it sees kDone, so read
  // the link first.
  for (Task* t = &self; t != nullptr;) {
    Task* next = t == last ? nullptr : t->next_;
    if (!durable.ok() && t->committed) t->DurabilityFailed(durable);
    if (t != &self) t->state_.StoreAndWakeAll(Task::kDone);
    t = next;
  }
}

}  // namespace segd::engine
