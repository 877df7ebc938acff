// History retention: records older than the retention leave reports at once and the disk at
// compaction, while recovery still rebuilds exactly the same state.

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "tests/testutil/engine_state.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using testutil::TempDir;

constexpr engine::TimeMs kStart = 1'800'000'000'000;
constexpr engine::TimeMs kDay = 24 * 3600 * 1000;

std::vector<engine::OpRecord> AllRecords(const OpLog& log) {
  std::vector<engine::OpRecord> out;
  EXPECT_TRUE(log.ForEachRecord(1,
                                [&](uint64_t, const engine::OpRecord& r) {
                                  out.push_back(r);
                                  return true;
                                })
                  .ok());
  return out;
}

std::vector<engine::OpRecord> History(const OpLog& log, HistoryFilter filter = {}) {
  std::vector<engine::OpRecord> out;
  EXPECT_TRUE(log.ScanHistory(filter,
                              [&](uint64_t, const engine::OpRecord& r) {
                                out.push_back(r);
                                return true;
                              })
                  .ok());
  return out;
}

// Ten days of changes, one day apart: users u0..u9 join segment "s" on day i, and every
// other one leaves it on day i as well.
void TenDays(Engine& engine, ManualClock& clock) {
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  for (int day = 0; day < 10; ++day) {
    std::string user = "u" + std::to_string(day);
    ASSERT_TRUE(engine.UpdateUserSegments(user, {.add = {{"s"}}}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("keep", {.add = {{"s"}}}).ok());
    if (day % 2 == 1) {
      ASSERT_TRUE(engine.UpdateUserSegments(user, {.remove = {"s"}}).ok());
    }
    // 20 new users: one user_runs entry a day.
    std::vector<engine::ImportItem> items;
    for (int i = 0; i < 20; ++i)
      items.push_back({"d" + std::to_string(day) + "-" + std::to_string(i)});
    ASSERT_TRUE(engine.Import("s", items, std::nullopt).ok());
    // Yesterday's 20 again (known users, one set of users): one user_sets entry a day.
    if (day > 0) {
      items.clear();
      for (int i = 0; i < 20; ++i)
        items.push_back({"d" + std::to_string(day - 1) + "-" + std::to_string(i)});
      ASSERT_TRUE(engine.Import("s", items, std::nullopt).ok());
    }
    clock.Advance(kDay);
  }
}

TEST(RetentionTest, OldRecordsLeaveReportsAndDiskButRecoveryIsUnchanged) {
  TempDir dir;
  ManualClock clock(kStart);
  std::vector<std::string> users = {"keep"};
  for (int i = 0; i < 10; ++i) {
    users.push_back("u" + std::to_string(i));
    users.push_back("d" + std::to_string(i) + "-7");
  }
  {
    auto log = OpLog::Open(dir.path(), {.retention_ms = 3 * kDay + 1, .clock = &clock});
    ASSERT_TRUE(log.ok());
    Engine engine(EngineOptions{&clock, log->get(), 1});
    TenDays(engine, clock);
    EXPECT_EQ((*log)->TEST_UserIndexEntries().second, 10u);
    EXPECT_EQ((*log)->TEST_UserSetEntries(), 9u);
    const size_t total = AllRecords(**log).size();
    // Now is day 10: records of days 7, 8, 9 are within three days; older ones are out of
    // reports at once, before any compaction.
    std::vector<engine::OpRecord> recent = History(**log);
    ASSERT_FALSE(recent.empty());
    for (const auto& r : recent) EXPECT_GE(r.at, clock.NowMs() - 3 * kDay - 1);
    EXPECT_LT(recent.size(), total);
    // Without a snapshot nothing may leave `ops`: recovery would need it.
    ASSERT_TRUE((*log)->TEST_CompactHistory().ok());
    EXPECT_EQ(AllRecords(**log).size(), total);
    // After a snapshot, compaction drops the old records.
    ASSERT_TRUE((*log)->WriteSnapshot(engine).ok());
    ASSERT_TRUE((*log)->TEST_CompactHistory().ok());
    std::vector<engine::OpRecord> kept = AllRecords(**log);
    EXPECT_LT(kept.size(), total);
    for (const auto& r : kept) EXPECT_GE(r.at, clock.NowMs() - 3 * kDay - 1);
    EXPECT_EQ(History(**log).size(), recent.size());        // the index entries went too
    EXPECT_EQ((*log)->TEST_UserIndexEntries().second, 3u);  // the runs of days 7, 8 and 9
    EXPECT_EQ((*log)->TEST_UserSetEntries(), 3u);           // the sets of days 7, 8 and 9
    HistoryFilter old_run_user, recent_run_user;
    old_run_user.users = {*engine.FindUser("d1-7")};
    recent_run_user.users = {*engine.FindUser("d8-7")};
    EXPECT_TRUE(History(**log, old_run_user).empty());
    EXPECT_EQ(History(**log, recent_run_user).size(), 2u);  // its run (day 8), its set (day 9)
    // A per-user report sees only the user's recent rows.
    HistoryFilter only_old_user;
    only_old_user.users = {*engine.FindUser("u1")};
    EXPECT_TRUE(History(**log, only_old_user).empty());
    HistoryFilter keep_user;
    keep_user.users = {*engine.FindUser("keep")};
    EXPECT_EQ(History(**log, keep_user).size(), 3u);

    // Recovery from the snapshot and the kept tail gives the same state.
    log->reset();
    auto reopened = OpLog::Open(dir.path(), {.retention_ms = 3 * kDay + 1, .clock = &clock});
    ASSERT_TRUE(reopened.ok());
    Engine recovered(EngineOptions{&clock, reopened->get(), 2});
    ASSERT_TRUE((*reopened)->Recover(recovered).ok());
    testutil::ExpectSameState(engine, recovered, users);
  }
}

TEST(RetentionTest, WithoutRetentionCompactionKeepsEverything) {
  TempDir dir;
  ManualClock clock(kStart);
  auto log = OpLog::Open(dir.path(), {.clock = &clock});
  ASSERT_TRUE(log.ok());
  Engine engine(EngineOptions{&clock, log->get(), 1});
  TenDays(engine, clock);
  size_t total = AllRecords(**log).size();
  ASSERT_TRUE((*log)->WriteSnapshot(engine).ok());
  ASSERT_TRUE((*log)->TEST_CompactHistory().ok());
  EXPECT_EQ(AllRecords(**log).size(), total);
  EXPECT_EQ(History(**log).size(), total);
}

}  // namespace
}  // namespace segd::storage
