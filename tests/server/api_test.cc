// The Api without sockets: which answers run on an HTTP thread and which go to a worker; and
// added_at, from memory and from the history.

#include "server/api.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/clock.h"
#include "gtest/gtest.h"
#include "server/detail/handlers.h"
#include "server/json_writer.h"
#include "storage/oplog.h"
#include "storage/report_store.h"
#include "tests/testutil/temp_dir.h"

namespace segd::server {
namespace {

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() {
    log_ = std::move(storage::OpLog::Open(dir_.path(), {}).value());
    engine_ = std::make_unique<engine::Engine>(engine::EngineOptions{nullptr, log_.get()});
    reports_ = std::move(
        storage::ReportStore::Open(dir_.path(), 3600 * 1000, engine::SystemClock::Default())
            .value());
    api_ = std::make_unique<Api>(*engine_, *log_, *reports_, config_, figures_);
  }

  Response Handle(const std::string& method, const std::string& target) {
    Request request{method, target, "", ""};
    RouteMatch match = api_->Route(method, target.substr(0, target.find('?')));
    Response response;
    api_->Handle(request, match, response);
    return response;
  }

  testutil::TempDir dir_;
  ServerConfig config_;
  ServiceFigures figures_;
  std::unique_ptr<storage::OpLog> log_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<storage::ReportStore> reports_;
  std::unique_ptr<Api> api_;
};

// A user's segments come from the reverse index, added_at included: answered on the HTTP
// thread, with no read of the log.
TEST_F(ApiTest, AUsersSegmentsAreAnsweredFromMemory) {
  ASSERT_TRUE(engine_->CreateSegment({.name = "s"}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("u", {.add = {{"s"}}}).ok());
  const std::vector<engine::UserSegment> listed = engine_->UserSegments("u");
  ASSERT_EQ(listed.size(), 1u);
  ASSERT_NE(listed[0].added_at, engine::kUnknownTime);
  Response response = Handle("GET", "/v1/users/u/segments");
  EXPECT_FALSE(response.blocking) << "answered on a worker";
  EXPECT_EQ(response.status, 200u);
  std::string body;
  JsonWriter(&body).Time(listed[0].added_at, -1);
  EXPECT_NE(response.body.find(absl::StrCat(R"("name":"s","added_at":)", body)), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find(".000Z"), std::string::npos) << "added_at is to the second";

  Response empty = Handle("GET", "/v1/users/nobody/segments");
  EXPECT_FALSE(empty.blocking);
  EXPECT_EQ(empty.body, R"({"user_id":"nobody","segments":[]})");
}

// Where added_at is unknown (memberships recovered from a format 6 snapshot), it is read from
// the history, the last add of each segment: the same answers the reverse index gives. Checked
// over random adds, refreshes, removals, imports, expiries and deletions, at times spread over
// seconds and milliseconds.
TEST(AddedAtTest, TheHistoryGivesWhatTheReverseIndexHolds) {
  testutil::TempDir dir;
  auto log = std::move(storage::OpLog::Open(dir.path(), {}).value());
  engine::ManualClock clock(1'800'000'000'123);
  engine::Engine engine(engine::EngineOptions{&clock, log.get(), 5});
  const std::vector<std::string> segments = {"a", "b", "c"};
  for (const std::string& name : segments) ASSERT_TRUE(engine.CreateSegment({.name = name}).ok());
  std::vector<std::string> users;
  for (int i = 0; i < 30; ++i) users.push_back("user-" + std::to_string(i));
  std::mt19937_64 rng(9);
  for (int step = 0; step < 3000; ++step) {
    const std::string& user = users[rng() % users.size()];
    const std::string& segment = segments[rng() % segments.size()];
    clock.Advance(static_cast<engine::TimeMs>(rng() % 1500));
    switch (rng() % 6) {
      case 0:
      case 1: {
        engine::MembershipAdd add{segment};
        if (rng() % 2) add.ttl_seconds = 1 + rng() % 30;
        (void)engine.UpdateUserSegments(user, {.add = {add}});
        break;
      }
      case 2:
        (void)engine.UpdateUserSegments(user, {.remove = {segment}});
        break;
      case 3: {
        std::vector<engine::ImportItem> items;
        for (int i = 0; i < 4; ++i) items.push_back({users[rng() % users.size()]});
        (void)engine.Import(segment, items, std::nullopt);
        break;
      }
      case 4:
        ASSERT_TRUE(engine.ProcessExpiries().ok());
        break;
      default:
        if (rng() % 5 == 0) (void)engine.DeleteUser(user);
    }
  }
  size_t compared = 0;
  for (const std::string& user : users) {
    std::vector<engine::UserSegment> held = engine.UserSegments(user);
    if (held.empty()) continue;
    std::vector<engine::UserSegment> read = held;
    for (engine::UserSegment& m : read) m.added_at = engine::kUnknownTime;
    ASSERT_TRUE(detail::FillAddedAtFromHistory(*log, engine, *engine.FindUser(user), &read).ok());
    for (size_t i = 0; i < held.size(); ++i) {
      EXPECT_NE(held[i].added_at, engine::kUnknownTime);
      EXPECT_EQ(read[i].added_at, held[i].added_at) << user << " in " << held[i].segment;
      ++compared;
    }
  }
  EXPECT_GT(compared, 20u);
}

}  // namespace
}  // namespace segd::server
