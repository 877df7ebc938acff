// DurabilityNotifier: every request is answered once, after a wait that began after it was
// added; requests pending together share one wait; the wait's error reaches them; the
// destructor answers what is still pending.

#include "engine/detail/durability_notifier.h"

#include <atomic>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "gtest/gtest.h"

namespace segd::engine::detail {
namespace {

// A sink's durability wait: slow, and it makes durable everything "written" before it began.
struct FakeSync {
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> durable{0};
  std::atomic<uint64_t> waits{0};
  std::atomic<bool> fail{false};
  absl::Status Wait() {
    const uint64_t covered = written.load();
    waits.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (fail.load()) return absl::DataLossError("the disk said no");
    uint64_t d = durable.load();
    while (d < covered && !durable.compare_exchange_weak(d, covered)) {
    }
    return absl::OkStatus();
  }
};

TEST(DurabilityNotifierTest, AnswersEachRequestAfterItsWritesAreDurable) {
  FakeSync sync;
  std::atomic<int> answered{0}, early{0}, failed{0};
  constexpr int kThreads = 4, kEach = 200;
  {
    DurabilityNotifier notifier([&] { return sync.Wait(); });
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          const uint64_t mine = sync.written.fetch_add(1) + 1;  // "write", then ask
          notifier.Add([&, mine](absl::Status s) {
            if (!s.ok()) failed.fetch_add(1);
            if (sync.durable.load() < mine) early.fetch_add(1);
            answered.fetch_add(1);
          });
          if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
      });
    }
    for (std::thread& w : writers) w.join();
    // Requests still pending are answered by the destructor, after one more wait.
  }
  EXPECT_EQ(answered.load(), kThreads * kEach);
  EXPECT_EQ(early.load(), 0) << "answered before its write was durable";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(sync.waits.load(), uint64_t{kThreads * kEach} / 4) << "requests did not share waits";
}

TEST(DurabilityNotifierTest, AFailedWaitReachesEveryRequestOfItsRound) {
  FakeSync sync;
  sync.fail = true;
  Mutex mu;
  std::vector<absl::Status> got;
  {
    DurabilityNotifier notifier([&] { return sync.Wait(); });
    for (int i = 0; i < 5; ++i) {
      notifier.Add([&](absl::Status s) {
        MutexLock lock(&mu);
        got.push_back(std::move(s));
      });
    }
  }
  ASSERT_EQ(got.size(), 5u);
  for (const absl::Status& s : got) EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

}  // namespace
}  // namespace segd::engine::detail
