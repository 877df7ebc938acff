#include "storage/data_dir.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

TEST(DataDirTest, ASecondLockOnTheSameDirectoryIsRefusedWithThePid) {
  testutil::TempDir dir;
  auto first = DataDir::Lock(dir.Sub("data"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = DataDir::Lock(dir.Sub("data"));
  ASSERT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("in use by another segd"), absl::string_view::npos);
  EXPECT_NE(second.status().message().find("pid"), absl::string_view::npos);
  first->reset();
  EXPECT_TRUE(DataDir::Lock(dir.Sub("data")).ok());
}

TEST(DataDirTest, ARenameKeepsTheLockAndIsNoticed) {
  testutil::TempDir dir;
  auto held = DataDir::Lock(dir.Sub("data"));
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE((*held)->CheckInPlace().ok());
  std::filesystem::rename(dir.Sub("data"), dir.Sub("moved"));
  // The lock goes with the open file: the moved directory is still held.
  EXPECT_FALSE(DataDir::Lock(dir.Sub("moved")).ok());
  absl::Status gone = (*held)->CheckInPlace();
  EXPECT_TRUE(absl::IsFailedPrecondition(gone)) << gone;
  // A new directory at the old path is another directory, and it stays noticed.
  auto other = DataDir::Lock(dir.Sub("data"));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE((*held)->CheckInPlace().ok());
  EXPECT_TRUE((*held)->moved());
  EXPECT_TRUE((*other)->CheckInPlace().ok());
}

TEST(DataDirTest, ALogEndingBeforeTheRecordedPositionIsRefused) {
  testutil::TempDir dir;
  {
    auto held = DataDir::Lock(dir.Sub("data"));
    ASSERT_TRUE(held.ok());
    EXPECT_EQ((*held)->recorded_position(), 0u);
    ASSERT_TRUE((*held)->RecordPosition(101).ok());
  }
  auto held = DataDir::Lock(dir.Sub("data"));
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)->recorded_position(), 101u);
  EXPECT_TRUE((*held)->CheckRecovered(101, /*strict=*/false).ok());
  EXPECT_TRUE((*held)->CheckRecovered(500, /*strict=*/false).ok());
  absl::Status lost = (*held)->CheckRecovered(1, /*strict=*/false);
  EXPECT_TRUE(absl::IsDataLoss(lost)) << lost;
  EXPECT_NE(lost.message().find("segd.state"), absl::string_view::npos);
}

// Through the log: a moved directory fails the log for good, and closing it touches nothing
// in a directory that took its place (there, files named like the log's own stand in for
// another segd's live log; RocksDB would delete obsolete files of those names on close).
TEST(DataDirTest, AMovedLogRefusesWritesAndLeavesTheNewDirectoryAlone) {
  testutil::TempDir dir;
  auto log = OpLog::Open(dir.Sub("data"), {});
  ASSERT_TRUE(log.ok()) << log.status();
  {
    engine::Engine engine(engine::EngineOptions{nullptr, log->get()});
    ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("before", {.add = {{"s"}}}).ok());
    std::filesystem::rename(dir.Sub("data"), dir.Sub("moved"));
    std::filesystem::create_directories(dir.Sub("data/log"));
    std::vector<std::string> planted;
    for (const auto& entry : std::filesystem::directory_iterator(dir.Sub("moved/log"))) {
      const std::string name = entry.path().filename().string();
      std::filesystem::copy_file(entry.path(), dir.Sub("data/log/" + name));
      planted.push_back(name);
    }
    // Background work by path (a flush makes the write-ahead log obsolete, a compaction its
    // input files) is refused before anything is created or deleted at the path.
    EXPECT_FALSE((*log)->TEST_CompactHistory().ok());
    absl::Status moved = (*log)->CheckDirectory();
    EXPECT_TRUE(absl::IsFailedPrecondition(moved)) << moved;
    EXPECT_TRUE(absl::IsUnavailable(engine.UpdateUserSegments("after", {.add = {{"s"}}}).status()));
    EXPECT_FALSE((*log)->TryResume().ok());
    EXPECT_FALSE((*log)->WriteSnapshot(engine).ok());
    log->reset();
    for (const std::string& name : planted) {
      EXPECT_TRUE(std::filesystem::exists(dir.Sub("data/log/" + name))) << name << " deleted";
    }
  }
  // The moved directory itself holds what was acknowledged.
  auto reopened = OpLog::Open(dir.Sub("moved"), {});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  engine::Engine engine(engine::EngineOptions{nullptr, reopened->get()});
  ASSERT_TRUE((*reopened)->Recover(engine).ok());
  EXPECT_TRUE(engine.Check("s", "before")->member);
  EXPECT_FALSE(engine.Check("s", "after")->member);
}

}  // namespace
}  // namespace segd::storage
