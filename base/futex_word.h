#pragma once

// FutexWord: a 32-bit atomic that threads can sleep on until it changes, through Linux's futex
// directly.
//
// std::atomic<T>::wait would do, but libstdc++ spins and calls sched_yield before it sleeps;
// with dozens of waiters on two cores that yielding cost more than the waits themselves (a
// group-commit benchmark spent 15% of its time in sched_yield). Wait here goes straight to
// the kernel, which rechecks the value under its own lock, so a wake between the caller's load
// and the sleep is never lost. A wake may land after the word's owner has moved on (a waiter
// that saw the new value returns at once); a wake of a stale address is harmless, and every
// waiter rechecks its condition.
//
// Thread safety: every member may be called from any thread at any time.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace segd {

class FutexWord {
 public:
  explicit FutexWord(uint32_t value = 0) : value_(value) {}
  FutexWord(const FutexWord&) = delete;
  FutexWord& operator=(const FutexWord&) = delete;

  uint32_t Load() const { return value_.load(std::memory_order_acquire); }

  // Adds one and wakes every thread sleeping in Wait.
  void AdvanceAndWakeAll() {
    value_.fetch_add(1, std::memory_order_acq_rel);
    WakeAllAt(Address());
  }

  // Stores `value` and wakes every thread sleeping in Wait. The caller must not rely on the
  // word existing after the store: a waiter may return and destroy it before the wake.
  void StoreAndWakeAll(uint32_t value) {
    uint32_t* address = Address();
    value_.store(value, std::memory_order_release);
    WakeAllAt(address);
  }

  // Sleeps while the value is `seen`; returns at once if it already differs. May return
  // spuriously: callers recheck their condition.
  void Wait(uint32_t seen) const {
    if (Load() != seen) return;
    syscall(SYS_futex, Address(), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }

 private:
  static void WakeAllAt(uint32_t* address) {
    syscall(SYS_futex, address, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }

  uint32_t* Address() const {
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
    return reinterpret_cast<uint32_t*>(const_cast<std::atomic<uint32_t>*>(&value_));
  }

  std::atomic<uint32_t> value_{0};
};

}  // namespace segd
