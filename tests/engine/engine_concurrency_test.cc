// Readers and writers at once. Meant to be run under ThreadSanitizer (-DSEGD_SANITIZE=thread)
// as well as normally: the assertions check what readers may see, TSan checks the rest.

#include <atomic>
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
  // Mutations that committed: 2 segment creations, every add, every third remove.
  EXPECT_LT(sink.durability_waits(), sink.accepted());
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
      ASSERT_TRUE(
          engine.UpdateUserSegments("w" + std::to_string(i), {.add = {{"big", 1}}}).ok());
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
