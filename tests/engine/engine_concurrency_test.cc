// Readers and writers at once. Meant to be run under ThreadSanitizer (-DSEGD_SANITIZE=thread)
// as well as normally: the assertions check what readers may see, TSan checks the rest.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "gtest/gtest.h"
#include "tests/testutil/recording_sink.h"

namespace segd::engine {
namespace {

TEST(EngineConcurrencyTest, OneUsersUpdateIsSeenWhole) {
  Engine engine;
  ASSERT_TRUE(engine.CreateSegment({.name = "x"}).ok());
  ASSERT_TRUE(engine.CreateSegment({.name = "y"}).ok());
  ASSERT_TRUE(engine.UpdateUserSegments("u", {.add = {{"x"}}}).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto segs = engine.UserSegments("u");
        if (segs.size() != 1) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 5000; ++i) {
    UserUpdate u = (i % 2) ? UserUpdate{.add = {{"x"}}, .remove = {"y"}}
                           : UserUpdate{.add = {{"y"}}, .remove = {"x"}};
    ASSERT_TRUE(engine.UpdateUserSegments("u", u).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

// With a sink whose durability wait blocks, mutations go through the write queue: each answers
// only after a wait that covered its batch, waits are shared, and the state is the same as if
// the mutations had run one by one.
TEST(EngineConcurrencyTest, QueuedMutationsAnswerOnlyOnceDurable) {
  testutil::RecordingSink sink(/*blocking_durability=*/true);
  Engine engine(EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  ASSERT_TRUE(engine.CreateSegment({.name = "b"}).ok());
  const int kThreads = 8, kEach = 60;
  std::atomic<int> early{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
        const size_t before = sink.accepted();
        if (!engine.UpdateUserSegments(user, {.add = {{"a"}, {"b"}}}).ok()) failures++;
        if (sink.durable() < before + 1) early++;
        if (i % 3 == 0) {
          const size_t before_remove = sink.accepted();
          if (!engine.UpdateUserSegments(user, {.remove = {"b"}}).ok()) failures++;
          if (sink.durable() < before_remove + 1) early++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(early.load(), 0);
  const uint64_t users = uint64_t{kThreads} * kEach;
  EXPECT_EQ(*engine.Count("a"), users);
  EXPECT_EQ(*engine.Count("b"), users - uint64_t{kThreads} * ((kEach + 2) / 3));
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(engine.UserSegments("t" + std::to_string(t) + "-0").size(), 1u);
    EXPECT_EQ(engine.UserSegments("t" + std::to_string(t) + "-1").size(), 2u);
  }
  // Mutations that committed: 2 segment creations, every add, every third remove. They share
  // waits, and (combined) batches.
  const uint64_t mutations = 2 + users + uint64_t{kThreads} * ((kEach + 2) / 3);
  EXPECT_LE(sink.accepted(), mutations);
  EXPECT_LE(sink.durability_waits(), sink.accepted());
  EXPECT_LT(sink.durability_waits(), mutations);
}

// A sink like an fsync-mode log (its durability wait blocks, so every mutation goes through
// the write queue) whose Write can be held, to line mutations up behind the one writing.
class HeldSink final : public OpSink {
 public:
  absl::Status Write(const OpBatch& batch) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++writes_started_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !held_; });
    if (fail_) return absl::UnavailableError("sink told to fail");
    batches_.push_back(batch);
    return absl::OkStatus();
  }
  bool WaitDurableBlocks() const override { return true; }

  void set_held(bool held) {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = held;
    changed_.notify_all();
  }
  void set_fail(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = fail;
  }
  void AwaitWritesStarted(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return writes_started_ >= n; });
  }
  std::vector<OpBatch> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool held_ = false;
  bool fail_ = false;
  int writes_started_ = 0;
  std::vector<OpBatch> batches_;
};

// Runs `first` on a thread whose sink write is held, lines up one thread per entry of
// `behind` in the write queue behind it, then lets the writes go. Returns each entry's result.
std::vector<absl::Status> LineUpBehind(Engine& engine, HeldSink& sink, int writes_before,
                                       const std::function<void()>& first,
                                       const std::vector<std::function<absl::Status()>>& behind) {
  sink.set_held(true);
  std::thread leader(first);
  sink.AwaitWritesStarted(writes_before + 1);
  std::vector<absl::Status> results(behind.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < behind.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = behind[i](); });
  }
  while (engine.TEST_QueuedMutations() < 1 + behind.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  sink.set_held(false);
  for (auto& t : threads) t.join();
  leader.join();
  return results;
}

// Single-user mutations of distinct users queued together share one sink batch, and when that
// batch is refused none of them changes memory, and no user id is used up.
TEST(EngineConcurrencyTest, QueuedSingleUserMutationsShareOneBatchAllOrNothing) {
  HeldSink sink;
  Engine engine(EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  const int kUsers = 10;
  std::vector<std::function<absl::Status()>> adds;
  for (int i = 0; i < kUsers; ++i) {
    adds.push_back([&engine, i] {
      return engine.UpdateUserSegments("u" + std::to_string(i), {.add = {{"s"}}}).status();
    });
  }
  auto first = [&] { EXPECT_TRUE(engine.UpdateUserSegments("first", {.add = {{"s"}}}).ok()); };
  for (const absl::Status& s : LineUpBehind(engine, sink, 1, first, adds)) EXPECT_TRUE(s.ok()) << s;
  // Batches: the segment, "first", and one for all ten.
  std::vector<OpBatch> batches = sink.batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].users.size(), size_t{kUsers});
  EXPECT_EQ(batches[2].memberships.size(), size_t{kUsers});
  for (size_t k = 0; k < batches[2].users.size(); ++k) {
    EXPECT_EQ(batches[2].users[k].kind, UserEvent::Kind::kCreated);
    EXPECT_EQ(batches[2].users[k].user, UserId(1 + k));
    EXPECT_EQ(engine.FindUser(batches[2].users[k].external_id), UserId(1 + k));
  }
  EXPECT_EQ(*engine.Count("s"), uint64_t{kUsers} + 1);

  // Now a refused batch: new users, and a remove for a known one.
  std::vector<std::function<absl::Status()>> mixed;
  for (int i = 0; i < kUsers - 1; ++i) {
    mixed.push_back([&engine, i] {
      return engine.UpdateUserSegments("v" + std::to_string(i), {.add = {{"s"}}}).status();
    });
  }
  mixed.push_back(
      [&engine] { return engine.UpdateUserSegments("u0", {.remove = {"s"}}).status(); });
  auto second = [&] {
    EXPECT_EQ(engine.UpdateUserSegments("second", {.add = {{"s"}}}).status().code(),
              absl::StatusCode::kUnavailable);
  };
  sink.set_fail(true);
  for (const absl::Status& s : LineUpBehind(engine, sink, 3, second, mixed)) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  EXPECT_EQ(*engine.Count("s"), uint64_t{kUsers} + 1);
  EXPECT_TRUE(engine.Check("s", "u0")->member);
  EXPECT_FALSE(engine.FindUser("v0").has_value());
  EXPECT_FALSE(engine.FindUser("second").has_value());
  EXPECT_EQ(engine.Stats().known_users, uint64_t{kUsers} + 1);
  sink.set_fail(false);
  ASSERT_TRUE(engine.UpdateUserSegments("after", {.add = {{"s"}}}).ok());
  EXPECT_EQ(engine.FindUser("after"), UserId(kUsers + 1));
}

// Threads that update the same users at once: whatever the queue combines, the state is what
// each thread's own order gives, and replaying the sink's batches gives the same state.
TEST(EngineConcurrencyTest, CombinedCommitsOfSharedUsersMatchTheirReplay) {
  testutil::RecordingSink sink(/*blocking_durability=*/true);
  Engine engine(EngineOptions{nullptr, &sink, 1});
  const int kThreads = 6, kUsers = 40, kPasses = 4;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(engine.CreateSegment({.name = "t" + std::to_string(t)}).ok());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string segment = "t" + std::to_string(t);
      for (int pass = 0; pass < kPasses; ++pass) {
        for (int u = 0; u < kUsers; ++u) {
          const std::string user = "u" + std::to_string(u);
          absl::Status s;
          if (pass % 2 == 0) {
            s = engine.UpdateUserSegments(user, {.add = {{segment, 3600}}}).status();
          } else if (u % 3 == 0) {
            s = engine.UpdateUserSegments(user, {.remove = {segment}}).status();
          } else {
            s = engine.RegisterUser(user).status();
          }
          if (!s.ok()) failures++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t kept = kUsers - (kUsers + 2) / 3;  // users whose number is not a multiple of 3
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(*engine.Count("t" + std::to_string(t)), kept);
  EXPECT_EQ(engine.Stats().known_users, uint64_t{kUsers});

  Engine replayed(EngineOptions{nullptr, nullptr, 1});
  for (const OpBatch& batch : sink.batches()) ASSERT_TRUE(replayed.ApplyRecovered(batch).ok());
  EXPECT_EQ(replayed.Stats().known_users, uint64_t{kUsers});
  EXPECT_EQ(replayed.Stats().memberships, engine.Stats().memberships);
  for (int u = 0; u < kUsers; ++u) {
    const std::string user = "u" + std::to_string(u);
    ASSERT_EQ(replayed.FindUser(user), engine.FindUser(user)) << user;
    const auto live = engine.UserSegments(user);
    const auto again = replayed.UserSegments(user);
    ASSERT_EQ(live.size(), u % 3 == 0 ? 0u : size_t{kThreads}) << user;
    ASSERT_EQ(again.size(), live.size()) << user;
    for (size_t k = 0; k < live.size(); ++k) {
      EXPECT_EQ(again[k].segment, live[k].segment);
      EXPECT_EQ(again[k].expires_at, live[k].expires_at);
    }
  }
}

TEST(EngineConcurrencyTest, ReadersDuringBulkWritesAndExpiry) {
  ManualClock clock(1'800'000'000'000);
  Engine engine(EngineOptions{&clock, nullptr, 5});
  const int kUsers = 150000;  // three shards
  std::vector<ImportItem> items;
  for (int i = 0; i < kUsers; ++i) items.push_back({"u" + std::to_string(i)});
  ASSERT_TRUE(engine.CreateSegment({.name = "base"}).ok());
  ASSERT_TRUE(engine.Import("base", items, std::nullopt).ok());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {  // point reads
    uint64_t i = 0;
    while (!stop.load()) {
      std::string u = "u" + std::to_string(i++ % kUsers);
      auto m = engine.Check("base", u);
      if (!m.ok() || !m->member) bad.fetch_add(1);
      engine.UserSegments(u);
      auto c = engine.Count("big");
      if (c.ok() && *c > uint64_t(kUsers) + 600) bad.fetch_add(1);  // plus the w users
    }
  });
  threads.emplace_back([&] {  // long reads
    while (!stop.load()) {
      auto q = engine.Query("base AND NOT big", 10);
      if (q.ok() && q->user_count > uint64_t(kUsers)) bad.fetch_add(1);
      auto page = engine.ListMembers("base", 1000, "u5000");
      if (!page.ok() || page->users.size() != 1000) bad.fetch_add(1);
      engine.Stats();
    }
  });
  threads.emplace_back([&] {  // the clock and expiries
    for (int i = 0; i < 30 && !stop.load(); ++i) {
      clock.Advance(1000);
      if (!engine.ProcessExpiries().ok()) bad.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(engine.CreateSegment({.name = "big", .auto_percent = 40, .ttl_seconds = 2}).ok());
    ASSERT_TRUE(engine.Import("big", items, 1).ok());
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(engine.UpdateUserSegments("w" + std::to_string(i), {.add = {{"big", 1}}}).ok());
    }
    ASSERT_TRUE(engine.DeleteSegment("big").ok());
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(*engine.Count("base"), uint64_t(kUsers));
}

}  // namespace
}  // namespace segd::engine
