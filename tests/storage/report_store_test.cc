#include "storage/report_store.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

namespace fs = std::filesystem;
using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;

constexpr engine::TimeMs kHour = 3'600'000;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ReportStoreTest : public ::testing::Test {
 protected:
  ReportStoreTest() : clock_(1'790'000'000'000) {
    log_ = *OpLog::Open(dir_.path(), {});
    engine_ = std::make_unique<Engine>(EngineOptions{&clock_, log_.get(), 1});
    EXPECT_TRUE(engine_->CreateSegment({.name = "a"}).ok());
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(engine_->UpdateUserSegments("u" + std::to_string(i), {.add = {{"a"}}}).ok());
    }
  }

  testutil::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<OpLog> log_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ReportStoreTest, CreateFindExpireSweep) {
  auto store = ReportStore::Open(dir_.path(), 4 * kHour, &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto report = (*store)->Create(*log_, *engine_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->rows, 3u);
  EXPECT_EQ(report->expires_at, clock_.NowMs() + 4 * kHour);
  EXPECT_EQ(report->id.size(), 32u);
  std::string csv = ReadFile(report->path);
  EXPECT_EQ(csv.rfind("user_id,segment,operation,at,reason,expires_at\r\n", 0), 0u);
  EXPECT_NE(csv.find("u2,a,add,"), std::string::npos);

  auto other = (*store)->Create(*log_, *engine_, {.users = {*engine_->FindUser("u1")}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->rows, 1u);
  EXPECT_NE(other->id, report->id);

  EXPECT_TRUE((*store)->Find(report->id).has_value());
  EXPECT_FALSE((*store)->Find("../../etc/passwd").has_value());
  EXPECT_FALSE((*store)->Find(std::string(32, '0')).has_value());

  clock_.Advance(4 * kHour);
  EXPECT_FALSE((*store)->Find(report->id).has_value());  // expired, even before a sweep
  EXPECT_TRUE(fs::exists(report->path));
  EXPECT_EQ((*store)->Sweep(), 2u);
  EXPECT_FALSE(fs::exists(report->path));
}

TEST_F(ReportStoreTest, RestartKeepsLiveReportsAndCleansTheRest) {
  std::string live_id, old_id;
  {
    auto store = *ReportStore::Open(dir_.path(), 4 * kHour, &clock_);
    old_id = store->Create(*log_, *engine_, {})->id;
    clock_.Advance(3 * kHour);
    live_id = store->Create(*log_, *engine_, {})->id;
  }
  std::string reports = dir_.Sub("reports");
  std::ofstream(reports + "/" + std::string(32, 'a') + ".csv.tmp") << "half a report";
  clock_.Advance(2 * kHour);  // the first report is now 5 h old, the second 2 h
  auto store = *ReportStore::Open(dir_.path(), 4 * kHour, &clock_);
  EXPECT_TRUE(store->Find(live_id).has_value());
  EXPECT_FALSE(store->Find(old_id).has_value());
  EXPECT_FALSE(fs::exists(reports + "/" + old_id + ".csv"));
  EXPECT_FALSE(fs::exists(reports + "/" + std::string(32, 'a') + ".csv.tmp"));
  EXPECT_EQ(store->Find(live_id)->expires_at, clock_.NowMs() + 2 * kHour);
}

}  // namespace
}  // namespace segd::storage
