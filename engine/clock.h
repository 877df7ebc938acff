#pragma once

// The engine's only source of time. Injectable, so that tests run on fake time.

#include <atomic>

#include "engine/types.h"

namespace segd::engine {

// Thread-safe: NowMs may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual TimeMs NowMs() const = 0;
};

// Wall-clock time.
class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override;
  // A process-wide instance.
  static SystemClock* Default();
};

// A clock that moves only when told. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start) : now_(start) {}
  TimeMs NowMs() const override { return now_.load(std::memory_order_acquire); }
  void Set(TimeMs t) { now_.store(t, std::memory_order_release); }
  void Advance(TimeMs delta) { now_.fetch_add(delta, std::memory_order_acq_rel); }

 private:
  std::atomic<TimeMs> now_;
};

}  // namespace segd::engine
