// WriteQueue: order, mutual exclusion with the writer lock, the hand-off of the lead before the
// durability wait, combined commits, and who sees a durability or commit failure. Run under
// ThreadSanitizer too: the tasks' shared state is deliberately unsynchronised except by the queue
// and the writer lock.

#include "engine/write_queue.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace segd::engine {
namespace {

// A sink whose WaitDurable blocks until the test opens a gate, and returns a set status.
class GateSink final : public OpSink {
 public:
  absl::Status Write(const OpBatch&) override { return absl::OkStatus(); }
  absl::Status WaitDurable() override {
    std::unique_lock<std::mutex> lock(mu_);
    ++waits_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
    return status_;
  }
  bool WaitDurableBlocks() const override { return true; }

  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void set_status(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(status);
  }
  int waits() {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_;
  }
  // Whether n waits began within 30 s.
  bool AwaitWaits(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] { return waits_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool open_ = false;
  int waits_ = 0;
  absl::Status status_;
};

// A task that runs `fn` and records what happened to it.
template <typename Fn>
class FnTask final : public WriteQueue::Task {
 public:
  FnTask(Fn fn, bool commits) : fn_(std::move(fn)), commits_(commits) {}
  void Run() override {
    fn_();
    committed = commits_;
  }
  void DurabilityFailed(const absl::Status& status) override { result = status; }
  absl::Status result;

 private:
  Fn fn_;
  bool commits_;
};

// Records which keyed tasks ran inside each combined commit. Touched only under the writer
// lock (TSan checks that the queue holds it).
class RecordingCombiner final : public WriteQueue::Combiner {
 public:
  bool BeginCombined() override {
    EXPECT_FALSE(open);
    if (refuse) return false;
    open = true;
    commits.emplace_back();
    return true;
  }
  bool refuse = false;
  absl::Status EndCombined() override {
    EXPECT_TRUE(open);
    open = false;
    return end_status;
  }
  // Called from a task's Run.
  void Ran(const std::string& key) {
    if (open) {
      commits.back().push_back(key);
    } else {
      outside.push_back(key);
    }
  }

  bool open = false;
  std::vector<std::vector<std::string>> commits;
  std::vector<std::string> outside;  // tasks run outside any combined commit
  absl::Status end_status;
};

// A task whose Run records its key with the combiner and in `order`.
class KeyedTask final : public WriteQueue::Task {
 public:
  KeyedTask(std::string key, bool commits, RecordingCombiner* combiner,
            std::vector<std::string>* order)
      : key_(std::move(key)), commits_(commits), combiner_(combiner), order_(order) {
    combine_key = key_;
  }
  void Run() override {
    combiner_->Ran(key_);
    order_->push_back(key_);
    committed = commits_;
  }
  void DurabilityFailed(const absl::Status& status) override { result = status; }
  absl::Status result;

 private:
  std::string key_;
  bool commits_;
  RecordingCombiner* combiner_;
  std::vector<std::string>* order_;
};

// Submits a keyless task that holds the lead until `keys.size()` more tasks are queued behind
// it, one per thread, so that they all run as the next part of its group. Returns the tasks'
// results by key and fills `order` with the order they ran in.
std::vector<absl::Status> RunBehindOneTask(WriteQueue& queue, RecordingCombiner& combiner,
                                           const std::vector<std::pair<std::string, bool>>& keys,
                                           std::vector<std::string>* order) {
  FnTask first(
      [&] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (queue.TEST_Queued() < 1 + keys.size() &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      },
      /*commits=*/true);
  std::thread leader([&] { queue.Submit(first); });
  while (queue.TEST_Queued() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<absl::Status> results(keys.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < keys.size(); ++i) {
    threads.emplace_back([&, i] {
      KeyedTask task(keys[i].first, keys[i].second, &combiner, order);
      queue.Submit(task);
      results[i] = task.result;
    });
  }
  for (auto& t : threads) t.join();
  leader.join();
  return results;
}

TEST(WriteQueueTest, CombinesAdjacentKeyedTasksUntilAKeyRepeatsOrAKeylessTaskRuns) {
  Mutex writer_mu;
  NullSink sink;
  RecordingCombiner combiner;
  WriteQueue queue(&writer_mu, &sink, &combiner);
  const std::vector<std::pair<std::string, bool>> keys = {{"a", true}, {"b", true}, {"c", true},
                                                          {"a", true}, {"d", true}, {"", true},
                                                          {"e", true}, {"b", true}, {"f", false}};
  std::vector<std::string> order;
  for (const absl::Status& s : RunBehindOneTask(queue, combiner, keys, &order)) {
    EXPECT_TRUE(s.ok()) << s;
  }
  ASSERT_EQ(order.size(), keys.size());
  // What the rule gives for the order they ran in: a commit ends before a keyless task and
  // before a key it already has.
  std::vector<std::vector<std::string>> expected;
  bool open = false;
  for (const std::string& key : order) {
    if (key.empty()) {
      open = false;
      continue;
    }
    if (!open || std::count(expected.back().begin(), expected.back().end(), key) > 0) {
      expected.emplace_back();
      open = true;
    }
    expected.back().push_back(key);
  }
  EXPECT_EQ(combiner.commits, expected);
  EXPECT_EQ(combiner.outside, std::vector<std::string>{""});
  // Eight keyed tasks, six keys: at least one commit served more than one of them.
  EXPECT_LT(combiner.commits.size(), 8u);
}

TEST(WriteQueueTest, ARefusingCombinerRunsEveryKeyedTaskAlone) {
  Mutex writer_mu;
  NullSink sink;
  RecordingCombiner combiner;
  combiner.refuse = true;
  WriteQueue queue(&writer_mu, &sink, &combiner);
  const std::vector<std::pair<std::string, bool>> keys = {{"a", true}, {"b", true}, {"c", true}};
  std::vector<std::string> order;
  for (const absl::Status& s : RunBehindOneTask(queue, combiner, keys, &order)) {
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_TRUE(combiner.commits.empty());
  std::vector<std::string> alone = combiner.outside;
  std::sort(alone.begin(), alone.end());
  EXPECT_EQ(alone, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(WriteQueueTest, AFailedCombinedCommitFailsOnlyItsTasksThatCommitted) {
  Mutex writer_mu;
  NullSink sink;
  RecordingCombiner combiner;
  combiner.end_status = absl::UnavailableError("write failed");
  WriteQueue queue(&writer_mu, &sink, &combiner);
  const std::vector<std::pair<std::string, bool>> keys = {
      {"a", true}, {"b", false}, {"", true}, {"c", true}, {"a", true}};
  std::vector<std::string> order;
  const std::vector<absl::Status> results = RunBehindOneTask(queue, combiner, keys, &order);
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool combined_and_committed = !keys[i].first.empty() && keys[i].second;
    EXPECT_EQ(results[i].code(),
              combined_and_committed ? absl::StatusCode::kUnavailable : absl::StatusCode::kOk)
        << "task " << i << " (key '" << keys[i].first << "')";
  }
}

TEST(WriteQueueTest, RunsEveryTaskOnceInSubmissionOrderHoldingTheWriterLock) {
  Mutex writer_mu;
  NullSink sink;
  RecordingCombiner combiner;
  WriteQueue queue(&writer_mu, &sink, &combiner);
  // Written by tasks without a lock of their own: only the writer lock serialises them, which
  // the checker thread below also takes. TSan reports any access the lock does not order.
  std::vector<std::pair<int, int>> ran;
  std::atomic<bool> stop{false};
  size_t largest_seen = 0;
  std::thread checker([&] {
    while (!stop.load()) {
      MutexLock lock(&writer_mu);
      largest_seen = std::max(largest_seen, ran.size());
    }
  });
  const int kThreads = 6, kEach = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        FnTask task([&, t, i] { ran.emplace_back(t, i); }, /*commits=*/i % 2 == 0);
        queue.Submit(task);
        EXPECT_TRUE(task.result.ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  checker.join();
  ASSERT_EQ(ran.size(), size_t{kThreads * kEach});
  EXPECT_LE(largest_seen, ran.size());
  // Each thread's tasks ran once each, in the order it submitted them.
  std::vector<int> next(kThreads, 0);
  for (const auto& [t, i] : ran) {
    ASSERT_EQ(i, next[t]) << "thread " << t;
    ++next[t];
  }
}

TEST(WriteQueueTest, TheNextGroupRunsWhileOneWaitsForDurability) {
  Mutex writer_mu;
  GateSink sink;
  RecordingCombiner combiner;
  WriteQueue queue(&writer_mu, &sink, &combiner);
  std::atomic<int> ran{0}, returned{0};
  auto submit = [&] {
    FnTask task([&] { ran.fetch_add(1); }, /*commits=*/true);
    queue.Submit(task);
    EXPECT_TRUE(task.result.ok());
    returned.fetch_add(1);
  };
  std::vector<std::thread> threads;
  threads.emplace_back(submit);
  // The first group is waiting for durability, with the gate shut.
  const bool first_waits = sink.AwaitWaits(1);
  EXPECT_TRUE(first_waits);
  const int kMore = 5;
  for (int i = 0; i < kMore; ++i) threads.emplace_back(submit);
  // Every later task runs although the first group's wait has not ended.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ran.load() < 1 + kMore && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ran.load(), 1 + kMore);
  EXPECT_EQ(returned.load(), 0);
  sink.Open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(returned.load(), 1 + kMore);
  EXPECT_GE(sink.waits(), 2);
  EXPECT_LE(sink.waits(), 1 + kMore);
}

TEST(WriteQueueTest, ADurabilityFailureReachesOnlyTasksThatCommitted) {
  Mutex writer_mu;
  GateSink sink;
  sink.Open();
  sink.set_status(absl::UnavailableError("sync failed"));
  RecordingCombiner combiner;
  WriteQueue queue(&writer_mu, &sink, &combiner);
  FnTask committing([] {}, /*commits=*/true);
  queue.Submit(committing);
  EXPECT_EQ(committing.result.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(sink.waits(), 1);
  // A group that committed nothing does not wait, and so cannot fail.
  FnTask reading([] {}, /*commits=*/false);
  queue.Submit(reading);
  EXPECT_TRUE(reading.result.ok());
  EXPECT_EQ(sink.waits(), 1);
}

}  // namespace
}  // namespace segd::engine
