#include "engine/write_queue.h"

namespace segd::engine {

void WriteQueue::Submit(Task& task) {
  bool leading;
  {
    MutexLock lock(&mu_);
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

void WriteQueue::Lead(Task& self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // The group: every task queued now, up to kMaxGroup. Their next_ links are stable from here
  // on: only the queue's tail gains a successor, and `last` is not read past.
  Task* last = &self;
  {
    MutexLock lock(&mu_);
    for (size_t n = 1; n < kMaxGroup && last->next_ != nullptr; ++n) last = last->next_;
  }
  bool any_committed = false;
  Task* combined_first = nullptr;  // first task of the open combined commit, if any
  Task* previous = nullptr;
  for (Task* t = &self;; t = t->next_) {
    const bool combinable = !t->combine_key.empty();
    if (combined_first != nullptr && (!combinable || combined_keys_.contains(t->combine_key))) {
      EndCombined(combined_first, previous);
      combined_first = nullptr;
    }
    bool ran = false;
    if (combinable && combined_first == nullptr) {
      writer_mu_->Lock();
      if (combiner_->BeginCombined()) {
        combined_first = t;
      } else {
        t->Run();
        writer_mu_->Unlock();
        ran = true;
      }
    }
    if (ran) {
      // Ran alone above.
    } else if (combinable) {
      combined_keys_.insert(t->combine_key);
      t->Run();
    } else {
      MutexLock writer(writer_mu_);
      t->Run();
    }
    any_committed |= t->committed;
    if (t == last) break;
    previous = t;
  }
  if (combined_first != nullptr) EndCombined(combined_first, last);
  // Hand the lead to the next task, so the next group runs during this group's sync.
  {
    MutexLock lock(&mu_);
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

size_t WriteQueue::TEST_Queued() {
  MutexLock lock(&mu_);
  size_t n = 0;
  for (Task* t = head_; t != nullptr; t = t->next_) ++n;
  return n;
}

void WriteQueue::EndCombined(Task* first, Task* last) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const absl::Status status = combiner_->EndCombined();
  writer_mu_->Unlock();
  combined_keys_.clear();
  if (status.ok()) return;
  for (Task* t = first;; t = t->next_) {
    if (t->committed) t->DurabilityFailed(status);
    if (t == last) break;
  }
}

}  // namespace segd::engine
