#include "storage/csv_report.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;

std::string Csv(absl::string_view field) {
  std::string out;
  AppendCsvField(&out, field);
  return out;
}

TEST(CsvReportTest, FieldsAreQuotedWhenNeeded) {
  EXPECT_EQ(Csv("u104010"), "u104010");
  EXPECT_EQ(Csv("a@b.c/d"), "a@b.c/d");
  EXPECT_EQ(Csv("last, first"), "\"last, first\"");
  EXPECT_EQ(Csv("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(Csv(" padded"), "\" padded\"");
  EXPECT_EQ(Csv("in side"), "in side");
  EXPECT_EQ(Csv("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9");
}

class HistoryTest : public ::testing::Test {
 protected:
  static constexpr engine::TimeMs kT0 = 1790000000123;  // 2026-09-21T14:13:20.123Z

  HistoryTest() : clock_(kT0) {
    log_ = *OpLog::Open(dir_.path(), {});
    engine_ = std::make_unique<Engine>(EngineOptions{&clock_, log_.get(), 1});
  }

  std::vector<std::string> Report(const HistoryFilter& filter) {
    std::string csv;
    auto rows = WriteCsvReport(*log_, *engine_, filter, [&](absl::string_view chunk) {
      csv.append(chunk.data(), chunk.size());
      return true;
    });
    EXPECT_TRUE(rows.ok()) << rows.status();
    std::vector<std::string> lines = absl::StrSplit(csv, "\r\n");
    EXPECT_EQ(lines.back(), "");
    lines.pop_back();
    EXPECT_EQ(lines.front(), "user_id,segment,operation,at,reason,expires_at");
    lines.erase(lines.begin());
    if (rows.ok()) {
      EXPECT_EQ(*rows, lines.size());
    }
    return lines;
  }

  testutil::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<OpLog> log_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(HistoryTest, RowsAreOrderedByTimeThenLogOrder) {
  ASSERT_TRUE(engine_->CreateSegment({.name = "sport"}).ok());
  ASSERT_TRUE(engine_->CreateSegment({.name = "music"}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("alice", {.add = {{"sport", 2}}}).ok());  // due T0+2s
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->UpdateUserSegments("last, \"first\"", {.add = {{"music"}, {"sport"}}}).ok());
  clock_.Advance(9000);  // the expiry is processed late, but logged at its due time
  ASSERT_TRUE(engine_->UpdateUserSegments("bob", {.add = {{"music"}}}).ok());
  ASSERT_TRUE(engine_->ProcessExpiries().ok());
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->DeleteSegment("music").ok());

  std::vector<std::string> want = {
      "alice,sport,add,2026-09-21T14:13:20.123Z,api,2026-09-21T14:13:22.123Z",
      "\"last, \"\"first\"\"\",music,add,2026-09-21T14:13:21.123Z,api,",
      "\"last, \"\"first\"\"\",sport,add,2026-09-21T14:13:21.123Z,api,",
      "alice,sport,remove,2026-09-21T14:13:22.123Z,ttl_expired,",
      "bob,music,add,2026-09-21T14:13:30.123Z,api,",
      "\"last, \"\"first\"\"\",music,remove,2026-09-21T14:13:31.123Z,segment_deleted,",
      "bob,music,remove,2026-09-21T14:13:31.123Z,segment_deleted,",
  };
  EXPECT_EQ(Report({}), want);

  // A period: [from, to).
  HistoryFilter period{.from = kT0 + 1000, .to = kT0 + 10000};
  EXPECT_EQ(Report(period), std::vector<std::string>(want.begin() + 1, want.begin() + 4));

  // By user, by several users (merged in time order), by segment (deleted ones too), both.
  HistoryFilter by_user{.users = {*engine_->FindUser("alice")}};
  EXPECT_EQ(Report(by_user), (std::vector<std::string>{want[0], want[3]}));
  HistoryFilter two_users{
      .users = {*engine_->FindUser("bob"), *engine_->FindUser("alice"), *engine_->FindUser("bob")}};
  EXPECT_EQ(Report(two_users), (std::vector<std::string>{want[0], want[3], want[4], want[6]}));
  engine::SegmentId music = *engine_->FindSegmentEvenDeleted("music");
  HistoryFilter by_segment{.segments = {music}};
  EXPECT_EQ(Report(by_segment), (std::vector<std::string>{want[1], want[4], want[5], want[6]}));
  HistoryFilter both{.users = {*engine_->FindUser("bob")}, .segments = {music}};
  EXPECT_EQ(Report(both), (std::vector<std::string>{want[4], want[6]}));
  HistoryFilter empty{.from = kT0, .to = kT0};
  EXPECT_TRUE(Report(empty).empty());
}

TEST_F(HistoryTest, StopsWhenTheReaderGoesAway) {
  ASSERT_TRUE(engine_->CreateSegment({.name = "a"}).ok());
  std::vector<engine::ImportItem> items;
  for (int i = 0; i < 20000; ++i) items.push_back({"user-" + std::to_string(i)});
  ASSERT_TRUE(engine_->Import("a", items, std::nullopt).ok());
  int chunks = 0;
  auto rows = WriteCsvReport(*log_, *engine_, {}, [&](absl::string_view chunk) {
    EXPECT_LE(chunk.size(), CsvReportWriter::kFlushBytes + 1024);
    return ++chunks < 2;
  });
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(chunks, 2);
  EXPECT_LT(*rows, 20000u);
}

}  // namespace
}  // namespace segd::storage
