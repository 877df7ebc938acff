// Walks the whole route table with access control on: no credential, each role, and a key
// limited to some segments, and checks 401 / 403 / allowed for every route. A route added
// without thought for its role shows up here (and a row without a role does not compile).

#include <memory>
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "server/access/authenticator.h"
#include "server/api.h"
#include "storage/oplog.h"
#include "storage/report_store.h"
#include "tests/testutil/temp_dir.h"

namespace segd::server {
namespace {

using access::Role;

class RouteAccessTest : public ::testing::Test {
 protected:
  RouteAccessTest() {
    log_ = std::move(storage::OpLog::Open(dir_.Sub("data"), {}).value());
    engine::EngineOptions options;
    options.sink = log_.get();
    options.events = log_.get();
    engine_ = std::make_unique<engine::Engine>(options);
    reports_ = std::move(
        storage::ReportStore::Open(dir_.Sub("data"), 3600 * 1000, engine::SystemClock::Default())
            .value());
    keys_ = std::move(access::KeyStore::Open(dir_.Sub("data")).value());
    auth_ = std::make_unique<access::Authenticator>(*keys_, nullptr);
    api_ = std::make_unique<Api>(*engine_, *log_, *reports_, config_, figures_);
    api_->set_access(auth_.get(), /*enforce=*/true);
    for (const char* name : {"ads_1", "other_1"}) {
      EXPECT_TRUE(engine_->CreateSegment({.name = name}).ok());
    }
    EXPECT_TRUE(engine_->UpdateUserSegments("u1", {.add = {{"ads_1"}, {"other_1"}}}).ok());
  }

  std::string Key(Role role, std::vector<std::string> scope = {}) {
    auto created = auth_->CreateKey({role, std::move(scope), ""}, "test");
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->key : "";
  }

  // A concrete path for a pattern: {name} is `segment`.
  static std::string PathOf(const std::string& pattern, const std::string& segment) {
    return absl::StrReplaceAll(pattern, {{"{name}", segment},
                                         {"{user_id}", "u1"},
                                         {"{id}", "000000000000"},
                                         {"{file}", "index.html"}});
  }

  Response Call(const std::string& method, const std::string& path, const std::string& key,
                const std::string& client = "127.0.0.1") {
    std::string authorization = key.empty() ? "" : "Bearer " + key;
    Request request{method, path, "application/json", "{}"};
    request.authorization = authorization;
    request.client_address = client;
    RouteMatch match = api_->Route(method, path);
    EXPECT_EQ(match.kind, RouteMatch::Kind::kFound) << method << " " << path;
    Response response;
    api_->Handle(request, match, response);
    if (response.blocking) {
      auto fill = std::move(response.blocking);
      fill(response);
    }
    return response;
  }

  testutil::TempDir dir_;
  ServerConfig config_;
  ServiceFigures figures_;
  std::unique_ptr<storage::OpLog> log_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<storage::ReportStore> reports_;
  std::unique_ptr<access::KeyStore> keys_;
  std::unique_ptr<access::Authenticator> auth_;
  std::unique_ptr<Api> api_;
};

// The contract's rule (docs/security.md), written apart from the table: public documentation
// and health; admin for segments' definitions, webhooks and keys; reader for every other GET
// and for the read-only POSTs; writer for everything else.
Role ContractRole(const std::string& method, const std::string& pattern) {
  if (pattern == "/health" || pattern == "/openapi.yaml" || pattern.rfind("/docs", 0) == 0) {
    return Role::kPublic;
  }
  if (pattern.rfind("/v1/keys", 0) == 0 || pattern.rfind("/v1/webhooks", 0) == 0) {
    return Role::kAdmin;
  }
  if ((method == "POST" && pattern == "/v1/segments") ||
      ((method == "PATCH" || method == "DELETE") && pattern == "/v1/segments/{name}")) {
    return Role::kAdmin;
  }
  if (method == "GET" || pattern == "/v1/check" || pattern == "/v1/query" ||
      pattern.rfind("/v1/reports", 0) == 0) {
    return Role::kReader;
  }
  return Role::kWriter;
}

TEST_F(RouteAccessTest, EveryRouteAnswersEachRoleAsTheContractSays) {
  const auto routes = Api::Routes();
  const auto roles = Api::RouteRoles();
  ASSERT_EQ(routes.size(), roles.size());
  const std::string reader = Key(Role::kReader);
  const std::string writer = Key(Role::kWriter);
  const std::string admin = Key(Role::kAdmin);
  int checked = 0;
  for (size_t i = 0; i < routes.size(); ++i) {
    const auto& [method, pattern] = routes[i];
    const Role required = roles[i];
    const std::string path = PathOf(pattern, "ads_1");
    SCOPED_TRACE(method + " " + pattern + " needs " + std::string(access::RoleName(required)));
    EXPECT_EQ(access::RoleName(required), access::RoleName(ContractRole(method, pattern)))
        << "the route table and the contract disagree";

    Response anonymous = Call(method, path, "");
    if (required == Role::kPublic) {
      EXPECT_NE(anonymous.status, 401u) << anonymous.body;
    } else {
      EXPECT_EQ(anonymous.status, 401u) << anonymous.body;
      bool challenged = false;
      for (const auto& [name, value] : anonymous.headers) {
        challenged = challenged || (name == "WWW-Authenticate" && value.rfind("Bearer", 0) == 0);
      }
      EXPECT_TRUE(challenged) << "a 401 without WWW-Authenticate: Bearer";
      // (From an address of its own: the failures of one address are limited.)
      const std::string wrong = "segd_000000000000_" + std::string(64, '0');
      EXPECT_EQ(Call(method, path, wrong, "10.1.0." + std::to_string(i)).status, 401u);
    }
    for (const auto& [role, key] :
         {std::pair{Role::kReader, reader}, std::pair{Role::kWriter, writer},
          std::pair{Role::kAdmin, admin}}) {
      Response r = Call(method, path, key);
      SCOPED_TRACE(std::string("as ") + std::string(access::RoleName(role)));
      if (role >= required) {
        EXPECT_NE(r.status, 401u) << r.body;
        EXPECT_NE(r.status, 403u) << r.body;
      } else {
        EXPECT_EQ(r.status, 403u) << r.body;
        EXPECT_NE(r.body.find("\"required\":\"" + std::string(access::RoleName(required))),
                  std::string::npos)
            << r.body;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(routes.size()));
}

TEST_F(RouteAccessTest, AKeyLimitedToSomeSegmentsIsRefusedEveryOtherSegmentInAnyPath) {
  const auto routes = Api::Routes();
  const auto roles = Api::RouteRoles();
  const std::string limited = Key(Role::kAdmin, {"ads_*"});
  int with_segment = 0;
  for (size_t i = 0; i < routes.size(); ++i) {
    const auto& [method, pattern] = routes[i];
    if (pattern.find("{name}") == std::string::npos) continue;
    SCOPED_TRACE(method + " " + pattern);
    Response outside = Call(method, PathOf(pattern, "other_1"), limited);
    EXPECT_EQ(outside.status, 403u) << outside.body;
    EXPECT_NE(outside.body.find(R"("required":"other_1")"), std::string::npos) << outside.body;
    Response inside = Call(method, PathOf(pattern, "ads_1"), limited);
    EXPECT_NE(inside.status, 403u) << inside.body;
    ++with_segment;
  }
  EXPECT_GE(with_segment, 8);
}

TEST_F(RouteAccessTest, LimitedKeysSeeOnlyTheirSegmentsInListsAndBodies) {
  const std::string limited = Key(Role::kWriter, {"ads_*"});
  Response list = Call("GET", "/v1/segments", limited);
  EXPECT_NE(list.body.find("\"ads_1\""), std::string::npos) << list.body;
  EXPECT_EQ(list.body.find("\"other_1\""), std::string::npos) << list.body;

  Response mine = Call("GET", "/v1/users/u1/segments", limited);
  EXPECT_NE(mine.body.find("\"ads_1\""), std::string::npos) << mine.body;
  EXPECT_EQ(mine.body.find("\"other_1\""), std::string::npos) << mine.body;

  auto post = [&](const std::string& path, const std::string& body) {
    Request request{"POST", path, "application/json", body};
    std::string authorization = "Bearer " + limited;
    request.authorization = authorization;
    request.client_address = "127.0.0.1";
    RouteMatch match = api_->Route("POST", path);
    Response response;
    api_->Handle(request, match, response);
    return response;
  };
  EXPECT_EQ(post("/v1/users/u2/segments", R"({"add":["other_1"]})").status, 403u);
  EXPECT_EQ(post("/v1/users/u2/segments", R"({"add":["ads_1"]})").status, 200u);
  EXPECT_EQ(post("/v1/check", R"({"checks":[{"user_id":"u1","segment":"other_1"}]})").status, 403u);
  EXPECT_EQ(post("/v1/check", R"({"checks":[{"user_id":"u1","segment":"ads_1"}]})").status, 200u);
  EXPECT_EQ(post("/v1/query", R"({"expr":"ads_1 AND NOT other_1"})").status, 403u);
  EXPECT_EQ(post("/v1/query", R"({"expr":"ads_1"})").status, 200u);
  EXPECT_EQ(post("/v1/users/u1/aliases", R"({"aliases":["c1"],"merge":true})").status, 403u);
  EXPECT_EQ(post("/v1/users/u1/aliases", R"({"aliases":["c1"]})").status, 200u);
  EXPECT_EQ(Call("DELETE", "/v1/users/u1", limited).status, 403u);
  EXPECT_FALSE(engine_->UserSegments("u1").empty()) << "a refused delete changed state";
}

}  // namespace
}  // namespace segd::server
