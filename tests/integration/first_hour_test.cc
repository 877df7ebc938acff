// What a new user meets in the first hour, against the real server: the same answer for the
// same mistake on every route, unknown query parameters refused, a deleted segment explained,
// HEAD, OPTIONS and CORS.

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/api.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

// A route's pattern with its captures filled in: {name} → s, {user_id} → u, {id} → r1.
std::string Fill(std::string pattern, const std::string& name = "s",
                 const std::string& user = "u") {
  for (auto [capture, value] : std::vector<std::pair<std::string, std::string>>{
           {"{name}", name}, {"{user_id}", user}, {"{id}", "r1"}}) {
    if (size_t at = pattern.find(capture); at != std::string::npos) {
      pattern.replace(at, capture.size(), value);
    }
  }
  return pattern;
}

class FirstHourTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        dir_.path(), std::vector<std::string>{"--cors-origin", "https://app.example"});
    ASSERT_TRUE(server_->started()) << server_->start_line();
    client_ = std::make_unique<HttpClient>(server_->port());
    ASSERT_EQ(client_->Post("/v1/segments", R"({"name":"s"})").status, 201u);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
};

// Every route in the table, with a parameter it does not take: 400 naming it, and nothing done.
TEST_F(FirstHourTest, EveryRouteRefusesQueryParametersItDoesNotTake) {
  for (const auto& [method, pattern] : server::Api::Routes()) {
    HttpResult r = client_->Request(method, Fill(pattern) + "?bogus=1", "{}");
    EXPECT_EQ(r.status, 400u) << method << " " << pattern << ": " << r.body;
    EXPECT_NE(r.body.find("unknown query parameter 'bogus'"), std::string::npos)
        << method << " " << pattern << ": " << r.body;
  }
  // The two that used to be silently dropped.
  HttpResult ttl = client_->Post("/v1/users/u/segments?ttl_seconds=5", R"({"add":[{"name":"s"}]})");
  EXPECT_EQ(ttl.status, 400u);
  EXPECT_EQ(client_->Get("/v1/segments/s/users/u").body.find("\"member\":true"), std::string::npos)
      << "refused, so not applied";
  EXPECT_EQ(client_->Post("/v1/reports?period=2020-01", "{}").status, 400u);
}

// A malformed segment name or user id in any path: the same 400 on every route that takes it.
TEST_F(FirstHourTest, AMalformedNameOrIdGetsTheSameAnswerOnEveryRoute) {
  const std::string long_id(257, 'x');
  int name_routes = 0, user_routes = 0;
  for (const auto& [method, pattern] : server::Api::Routes()) {
    if (pattern.find("{name}") != std::string::npos) {
      ++name_routes;
      HttpResult r = client_->Request(method, Fill(pattern, "bad%20name"), "{}");
      EXPECT_EQ(r.status, 400u) << method << " " << pattern << ": " << r.body;
      EXPECT_NE(r.body.find("path name 'bad name': segment name may hold only"), std::string::npos)
          << method << " " << pattern << ": " << r.body;
    }
    if (pattern.find("{user_id}") != std::string::npos) {
      ++user_routes;
      HttpResult r = client_->Request(method, Fill(pattern, "s", long_id), "{}");
      EXPECT_EQ(r.status, 400u) << method << " " << pattern << ": " << r.body;
      EXPECT_NE(r.body.find("path user_id"), std::string::npos) << r.body;
    }
  }
  EXPECT_GE(name_routes, 6);
  EXPECT_GE(user_routes, 5);
  HttpResult batch =
      client_->Post("/v1/check", R"({"checks":[{"segment":"s","user_id":")" + long_id + "\"}]}");
  EXPECT_EQ(batch.status, 400u) << batch.body;
}

TEST_F(FirstHourTest, ADeletedSegmentSaysWhenAndHowToRestoreIt) {
  ASSERT_EQ(client_->Request("DELETE", "/v1/segments/s").status, 200u);
  for (const char* target : {"/v1/segments/s/count", "/v1/segments/s/users"}) {
    HttpResult r = client_->Get(target);
    EXPECT_EQ(r.status, 404u);
    EXPECT_NE(r.body.find("\"code\":\"segment_not_found\""), std::string::npos);
    EXPECT_NE(r.body.find("segment 's' was deleted at 20"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("create it again to restore it"), std::string::npos) << r.body;
  }
  HttpResult unknown = client_->Get("/v1/segments/never/count");
  EXPECT_NE(unknown.body.find("segment 'never' does not exist"), std::string::npos);
  EXPECT_EQ(client_->Post("/v1/segments", R"({"name":"s"})").status, 201u);
  EXPECT_EQ(client_->Get("/v1/segments/s/count").status, 200u);
}

TEST_F(FirstHourTest, HeadAnswersTheHeadOfGet) {
  HttpResult get = client_->Get("/v1/segments");
  HttpResult head = client_->Request("HEAD", "/v1/segments");
  EXPECT_EQ(head.status, 200u);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.header("content-length"), std::to_string(get.body.size()));
  // A streamed report: the head, no body; the connection goes on.
  HttpResult report = client_->Request("HEAD", "/v1/reports/history");
  EXPECT_EQ(report.status, 200u);
  EXPECT_EQ(report.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(client_->Get("/health").status, 200u);
  // HEAD is offered where GET is.
  HttpResult wrong = client_->Request("PUT", "/v1/segments");
  EXPECT_EQ(wrong.status, 405u);
  EXPECT_EQ(wrong.header("allow"), "POST, GET, HEAD, OPTIONS");
}

TEST_F(FirstHourTest, OptionsAndCorsFollowTheAllowedOrigins) {
  HttpResult preflight = client_->Request(
      "OPTIONS", "/v1/users/u/segments", "", "",
      {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(preflight.status, 204u);
  EXPECT_EQ(preflight.header("allow"), "GET, POST, HEAD, OPTIONS");
  EXPECT_EQ(preflight.header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(preflight.header("access-control-allow-methods"), "GET, POST, HEAD, OPTIONS");
  EXPECT_EQ(preflight.header("access-control-allow-headers"), "Content-Type");

  HttpResult allowed =
      client_->Request("GET", "/v1/segments/s/count", "", "", {{"Origin", "https://app.example"}});
  EXPECT_EQ(allowed.header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(allowed.header("vary"), "Origin");
  HttpResult error = client_->Request("GET", "/v1/segments/nope/count", "", "",
                                      {{"Origin", "https://app.example"}});
  EXPECT_EQ(error.status, 404u);
  EXPECT_EQ(error.header("access-control-allow-origin"), "https://app.example");
  HttpResult other =
      client_->Request("GET", "/v1/segments/s/count", "", "", {{"Origin", "https://evil.example"}});
  EXPECT_EQ(other.status, 200u);
  EXPECT_EQ(other.header("access-control-allow-origin"), "");
  EXPECT_EQ(client_->Request("OPTIONS", "/v1/nowhere").status, 404u);
}

TEST_F(FirstHourTest, RampingARolloutOverHttpIsLoggedAsAutoPercent) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(client_->Request("PUT", "/v1/users/r" + std::to_string(i)).status, 201u);
  }
  ASSERT_EQ(
      client_
          ->Post("/v1/segments", R"({"name":"roll","auto_percent":10,"auto_percent_sticky":true})")
          .status,
      201u);
  HttpResult ramp = client_->Request("PATCH", "/v1/segments/roll", R"({"auto_percent":100})");
  ASSERT_EQ(ramp.status, 200u) << ramp.body;
  EXPECT_NE(ramp.body.find("\"user_count\":200"), std::string::npos) << ramp.body;
  HttpResult csv = client_->Get("/v1/reports/history?segment=roll");
  EXPECT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 201) << "header + 200 adds";
  EXPECT_EQ(csv.body.find(",api,"), std::string::npos) << "every add is auto_percent";
  HttpResult fraction = client_->Request("PATCH", "/v1/segments/roll", R"({"auto_percent":2.5})");
  EXPECT_EQ(fraction.status, 400u);
  HttpResult plain = client_->Request("PATCH", "/v1/segments/s", R"({"auto_percent":50})");
  EXPECT_EQ(plain.status, 400u);
  EXPECT_NE(plain.body.find("sticky"), std::string::npos) << plain.body;
}

TEST(FirstHour, WithoutCorsOriginNoCorsHeaders) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  HttpResult r = client.Request("GET", "/health", "", "", {{"Origin", "https://app.example"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
  HttpResult options = client.Request("OPTIONS", "/health");
  EXPECT_EQ(options.status, 204u);
  EXPECT_EQ(options.header("allow"), "GET, HEAD, OPTIONS");
}

}  // namespace
}  // namespace segd
