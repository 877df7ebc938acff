// The Api without sockets: which answers run on an HTTP thread and which go to a worker.

#include "server/api.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
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

// A user's segments need its history (added_at), a read of the log that may go to disk: the
// answer is produced on a worker, never on the HTTP thread that parsed the request.
TEST_F(ApiTest, AUsersSegmentsAreReadFromTheLogOnAWorker) {
  ASSERT_TRUE(engine_->CreateSegment({.name = "s"}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("u", {.add = {{"s"}}}).ok());
  Response response = Handle("GET", "/v1/users/u/segments");
  ASSERT_TRUE(response.blocking) << "the history scan ran on the HTTP thread";
  EXPECT_EQ(response.pool, Response::Pool::kReports);
  EXPECT_TRUE(response.body.empty());
  auto fill = std::move(response.blocking);
  fill(response);
  EXPECT_EQ(response.status, 200u);
  EXPECT_NE(response.body.find(R"("name":"s","added_at":"20)"), std::string::npos) << response.body;

  // A user in no segment needs no history: answered at once.
  Response empty = Handle("GET", "/v1/users/nobody/segments");
  EXPECT_FALSE(empty.blocking);
  EXPECT_EQ(empty.body, R"({"user_id":"nobody","segments":[]})");
}

}  // namespace
}  // namespace segd::server
