// The HTTP API end to end: the real segd binary, spoken to over HTTP. Each endpoint's success
// path and the contract's errors.

#include <string>

#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

// Parses a response body; the element stays valid until the next Json call on this thread.
simdjson::dom::element Json(const std::string& body) {
  thread_local simdjson::dom::parser parser;
  thread_local std::string copy;
  copy = body;
  simdjson::dom::element element;
  if (auto error = parser.parse(copy).get(element)) {
    ADD_FAILURE() << "not JSON (" << simdjson::error_message(error) << "): " << body;
    return parser.parse(std::string("{}")).value();
  }
  return element;
}

std::string ErrorCode(const HttpResult& r) {
  return std::string(Json(r.body)["error"]["code"].get_string().value());
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path());
    ASSERT_TRUE(server_->started()) << server_->start_line();
    client_ = std::make_unique<HttpClient>(server_->port());
  }

  HttpResult CreateSegment(const std::string& json) { return client_->Post("/v1/segments", json); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ApiTest, SegmentLifecycle) {
  HttpResult created =
      CreateSegment(R"({"name":"sport","description":"likes sport","ttl_seconds":3600})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto seg = Json(created.body);
  EXPECT_EQ(std::string(seg["name"].get_string().value()), "sport");
  EXPECT_EQ(std::string(seg["description"].get_string().value()), "likes sport");
  EXPECT_EQ(seg["ttl_seconds"].get_int64().value(), 3600);
  EXPECT_TRUE(seg["deleted_at"].is_null());
  EXPECT_TRUE(seg["auto_percent"].is_null());
  std::string created_at(seg["created_at"].get_string().value());
  EXPECT_EQ(created_at.size(), 24u) << created_at;  // 2026-11-22T10:00:00.123Z
  EXPECT_EQ(created_at.back(), 'Z');

  EXPECT_EQ(ErrorCode(CreateSegment(R"({"name":"sport"})")), "segment_exists");
  EXPECT_EQ(CreateSegment(R"({"name":"sport"})").status, 409u);

  HttpResult patched = client_->Request("PATCH", "/v1/segments/sport",
                                        R"({"description":"new","ttl_seconds":null})");
  ASSERT_EQ(patched.status, 200u) << patched.body;
  EXPECT_EQ(std::string(Json(patched.body)["description"].get_string().value()), "new");
  EXPECT_TRUE(Json(patched.body)["ttl_seconds"].is_null());

  ASSERT_EQ(CreateSegment(R"({"name":"music"})").status, 201u);
  HttpResult list = client_->Get("/v1/segments");
  ASSERT_EQ(list.status, 200u);
  auto segments = Json(list.body)["segments"].get_array().value();
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(std::string(segments.at(0)["name"].get_string().value()), "music");  // by name

  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"add":["sport","music"]})").status, 200u);
  HttpResult deleted = client_->Request("DELETE", "/v1/segments/sport");
  ASSERT_EQ(deleted.status, 200u) << deleted.body;
  EXPECT_EQ(Json(deleted.body)["removed_users"].get_uint64().value(), 1u);
  EXPECT_EQ(client_->Request("DELETE", "/v1/segments/sport").status, 404u);
  EXPECT_EQ(ErrorCode(client_->Get("/v1/segments/sport/count")), "segment_not_found");
  EXPECT_EQ(Json(client_->Get("/v1/segments").body)["segments"].get_array().value().size(), 1u);
  auto with_deleted = Json(client_->Get("/v1/segments?include_deleted=true").body);
  ASSERT_EQ(with_deleted["segments"].get_array().value().size(), 2u);
  EXPECT_FALSE(with_deleted["segments"].at(1)["deleted_at"].is_null());

  // Re-creating a deleted name restores it, empty.
  HttpResult restored = CreateSegment(R"({"name":"sport"})");
  ASSERT_EQ(restored.status, 201u) << restored.body;
  EXPECT_EQ(Json(restored.body)["user_count"].get_uint64().value(), 0u);
  EXPECT_TRUE(Json(restored.body)["deleted_at"].is_null());
}

TEST_F(ApiTest, BadSegmentRequestsAreRejectedWithoutEffect) {
  struct Case {
    const char* body;
    const char* why;
  };
  const Case cases[] = {
      {R"({"name":"bad name"})", "space in name"},
      {R"({"name":""})", "empty name"},
      {R"({"name":"-x"})", "name starting with '-'"},
      {R"({"name":123})", "name of the wrong type"},
      {R"({"description":"x"})", "missing name"},
      {R"({"name":"a","ttl_seconds":0})", "TTL below 1"},
      {R"({"name":"a","ttl_seconds":1.5})", "fractional TTL"},
      {R"({"name":"a","auto_percent":101})", "percent over 100"},
      {R"({"name":"a","colour":"red"})", "unknown field"},
      {R"({"name":"a")", "truncated"},
      {R"({"name":"a"} x)", "trailing bytes"},
      {R"(["name"])", "not an object"},
      {"", "empty body"},
      {"\x7b\x22name\x22:\x22\xff\x22}", "invalid UTF-8"},
  };
  for (const Case& c : cases) {
    HttpResult r = CreateSegment(c.body);
    EXPECT_EQ(r.status, 400u) << c.why << ": " << r.body;
    EXPECT_EQ(ErrorCode(r), "bad_request") << c.why;
  }
  EXPECT_EQ(Json(client_->Get("/v1/segments").body)["segments"].get_array().value().size(), 0u);
  HttpResult wrong_type = client_->Request("POST", "/v1/segments", R"({"name":"a"})", "text/plain");
  EXPECT_EQ(wrong_type.status, 415u);
  EXPECT_EQ(ErrorCode(wrong_type), "unsupported_media_type");
}

TEST_F(ApiTest, MembershipsThroughTheUserEndpoint) {
  ASSERT_EQ(CreateSegment(R"({"name":"A"})").status, 201u);
  ASSERT_EQ(CreateSegment(R"({"name":"B"})").status, 201u);
  ASSERT_EQ(CreateSegment(R"({"name":"C"})").status, 201u);
  HttpResult first = client_->Post(
      "/v1/users/u%40x.com/segments",
      R"({"add":["A",{"name":"B","ttl_seconds":300},{"name":"C","expires_at":"2099-12-01T00:00:00Z"}]})");
  ASSERT_EQ(first.status, 200u) << first.body;
  auto j = Json(first.body);
  EXPECT_EQ(std::string(j["user_id"].get_string().value()), "u@x.com");
  EXPECT_EQ(j["added"].get_array().value().size(), 3u);

  HttpResult check = client_->Get("/v1/segments/C/users/u%40x.com");
  ASSERT_EQ(check.status, 200u);
  EXPECT_TRUE(Json(check.body)["member"].get_bool().value());
  EXPECT_EQ(std::string(Json(check.body)["expires_at"].get_string().value()),
            "2099-12-01T00:00:00.000Z");
  EXPECT_EQ(client_->Get("/v1/segments/A/users/nobody").body, R"({"member":false})");
  EXPECT_EQ(ErrorCode(client_->Get("/v1/segments/nope/users/u1")), "segment_not_found");

  HttpResult again =
      client_->Post("/v1/users/u%40x.com/segments", R"({"add":["A"],"remove":["B","C"]})");
  ASSERT_EQ(again.status, 200u) << again.body;
  j = Json(again.body);
  EXPECT_EQ(j["added"].get_array().value().size(), 0u);
  EXPECT_EQ(std::string(j["updated"].at(0).get_string().value()), "A");
  EXPECT_EQ(j["removed"].get_array().value().size(), 2u);

  HttpResult mine = client_->Get("/v1/users/u%40x.com/segments");
  ASSERT_EQ(mine.status, 200u);
  auto segs = Json(mine.body)["segments"].get_array().value();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(std::string(segs.at(0)["name"].get_string().value()), "A");
  EXPECT_TRUE(segs.at(0)["added_at"].is_string());
  EXPECT_TRUE(segs.at(0)["expires_at"].is_null());
  EXPECT_EQ(
      Json(client_->Get("/v1/users/stranger/segments").body)["segments"].get_array().value().size(),
      0u);

  // Unknown segments: 404 listing them, nothing applied.
  HttpResult unknown = client_->Post("/v1/users/u2/segments", R"({"add":["A","X","Y"]})");
  EXPECT_EQ(unknown.status, 404u);
  auto details = Json(unknown.body)["error"]["details"]["segments"].get_array().value();
  EXPECT_EQ(details.size(), 2u);
  EXPECT_EQ(client_->Get("/v1/segments/A/users/u2").body, R"({"member":false})");
  EXPECT_EQ(Json(client_->Get("/v1/segments/A/count").body)["user_count"].get_uint64().value(), 1u);

  // The contract's other errors.
  EXPECT_EQ(client_->Post("/v1/users/u2/segments", R"({"add":["A"],"remove":["A"]})").status, 422u);
  EXPECT_EQ(client_->Post("/v1/users/u2/segments", R"({"add":["A","A"]})").status, 422u);
  EXPECT_EQ(
      client_
          ->Post("/v1/users/u2/segments",
                 R"({"add":[{"name":"A","ttl_seconds":5,"expires_at":"2099-01-01T00:00:00Z"}]})")
          .status,
      400u);
  EXPECT_EQ(client_
                ->Post("/v1/users/u2/segments",
                       R"({"add":[{"name":"A","expires_at":"2001-01-01T00:00:00Z"}]})")
                .status,
            400u);
  EXPECT_EQ(client_->Post("/v1/users/u2/segments", R"({"add":"A"})").status, 400u);
  EXPECT_EQ(Json(client_->Get("/v1/segments/A/count").body)["user_count"].get_uint64().value(), 1u);
}

TEST_F(ApiTest, UsersRegisterAndDelete) {
  ASSERT_EQ(CreateSegment(R"({"name":"A"})").status, 201u);
  EXPECT_EQ(client_->Request("PUT", "/v1/users/a%20b%2Fc").status, 201u);
  EXPECT_EQ(client_->Request("PUT", "/v1/users/a%20b%2Fc").status, 200u);
  ASSERT_EQ(client_->Post("/v1/users/a%20b%2Fc/segments", R"({"add":["A"]})").status, 200u);
  HttpResult deleted = client_->Request("DELETE", "/v1/users/a%20b%2Fc");
  ASSERT_EQ(deleted.status, 200u) << deleted.body;
  EXPECT_EQ(std::string(Json(deleted.body)["user_id"].get_string().value()), "a b/c");
  EXPECT_EQ(std::string(Json(deleted.body)["removed_from"].at(0).get_string().value()), "A");
  EXPECT_EQ(ErrorCode(client_->Request("DELETE", "/v1/users/a%20b%2Fc")), "user_not_found");
  EXPECT_EQ(client_->Request("PUT", "/v1/users/%ZZ").status, 400u);
  EXPECT_EQ(client_->Request("PUT", "/v1/users/" + std::string(257, 'x')).status, 400u);
}

TEST_F(ApiTest, CheckManyAndQuery) {
  ASSERT_EQ(CreateSegment(R"({"name":"sport"})").status, 201u);
  ASSERT_EQ(CreateSegment(R"({"name":"music"})").status, 201u);
  ASSERT_EQ(CreateSegment(R"({"name":"AND"})").status, 201u);  // a slug, quoted in expressions
  for (int i = 0; i < 10; ++i) {
    std::string add = i % 2 == 0 ? R"({"add":["sport","music"]})" : R"({"add":["sport"]})";
    ASSERT_EQ(client_->Post("/v1/users/" + std::to_string(i) + "/segments", add).status, 200u);
  }
  HttpResult checks = client_->Post(
      "/v1/check",
      R"({"checks":[{"user_id":"1","segment":"music"},{"user_id":2,"segment":"music"},{"user_id":"2","segment":"gone"}]})");
  ASSERT_EQ(checks.status, 200u) << checks.body;
  EXPECT_EQ(checks.body, R"({"results":[false,true,false]})");
  std::string many = R"({"checks":[)";
  for (int i = 0; i <= 10000; ++i)
    many += std::string(i ? "," : "") + R"({"user_id":"1","segment":"sport"})";
  many += "]}";
  EXPECT_EQ(client_->Post("/v1/check", many).status, 400u);

  HttpResult q = client_->Post("/v1/query", R"({"expr":"sport AND NOT music","limit":2})");
  ASSERT_EQ(q.status, 200u) << q.body;
  EXPECT_EQ(Json(q.body)["user_count"].get_uint64().value(), 5u);
  auto users = Json(q.body)["users"].get_array().value();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(std::string(users.at(0).get_string().value()), "1");  // first-seen order
  HttpResult syntax = client_->Post("/v1/query", R"({"expr":"sport AND (music"})");
  EXPECT_EQ(syntax.status, 400u);
  EXPECT_EQ(Json(syntax.body)["error"]["details"]["position"].get_uint64().value(), 16u);
  HttpResult quoted = client_->Post("/v1/query", R"({"expr":"sport AND NOT \"AND\""})");
  ASSERT_EQ(quoted.status, 200u) << quoted.body;
  EXPECT_EQ(Json(quoted.body)["user_count"].get_uint64().value(), 10u);
  EXPECT_EQ(ErrorCode(client_->Post("/v1/query", R"({"expr":"sport OR nope"})")),
            "segment_not_found");
  EXPECT_EQ(client_->Post("/v1/query", R"({"expr":"sport","limit":100001})").status, 400u);
}

TEST_F(ApiTest, ImportTextAndNdjson) {
  ASSERT_EQ(CreateSegment(R"({"name":"imp"})").status, 201u);
  HttpResult text =
      client_->Request("POST", "/v1/segments/imp/users:import",
                       "a\r\nb\n\n c \n" + std::string(300, 'x') + "\nd", "text/plain");
  ASSERT_EQ(text.status, 200u) << text.body;
  auto j = Json(text.body);
  EXPECT_EQ(j["added"].get_uint64().value(), 4u);  // a, b, " c ", d
  EXPECT_EQ(j["invalid_count"].get_uint64().value(), 1u);
  EXPECT_EQ(j["invalid_lines"].at(0)["line"].get_uint64().value(), 5u);
  EXPECT_EQ(client_->Get("/v1/segments/imp/users/%20c%20").body.find("true") != std::string::npos,
            true);

  HttpResult nd = client_->Request(
      "POST", "/v1/segments/imp/users:import?ttl_seconds=600",
      "{\"user_id\":\"a\"}\n{\"user_id\":42,\"ttl_seconds\":60}\n{\"user\":1}\n{bad\n",
      "application/x-ndjson");
  ASSERT_EQ(nd.status, 200u) << nd.body;
  j = Json(nd.body);
  EXPECT_EQ(j["added"].get_uint64().value(), 1u);
  EXPECT_EQ(j["updated"].get_uint64().value(), 1u);
  EXPECT_EQ(j["invalid_count"].get_uint64().value(), 2u);
  EXPECT_EQ(j["invalid_lines"].at(1)["line"].get_uint64().value(), 4u);
  EXPECT_NE(client_->Get("/v1/segments/imp/users/42").body.find("expires_at\":\""),
            std::string::npos);

  EXPECT_EQ(client_->Request("POST", "/v1/segments/imp/users:import", "a", "text/csv").status,
            415u);
  EXPECT_EQ(client_->Request("POST", "/v1/segments/none/users:import", "a", "text/plain").status,
            404u);

  HttpResult page = client_->Get("/v1/segments/imp/users?limit=3");
  ASSERT_EQ(page.status, 200u);
  auto p = Json(page.body);
  EXPECT_EQ(p["users"].get_array().value().size(), 3u);
  std::string next(p["next"].get_string().value());
  EXPECT_EQ(next, " c ");
  next = "%20c%20";
  HttpResult rest = client_->Get("/v1/segments/imp/users?limit=100&after=" + next);
  EXPECT_EQ(Json(rest.body)["users"].get_array().value().size(), 2u);
  EXPECT_TRUE(Json(rest.body)["next"].is_null());
  EXPECT_EQ(client_->Get("/v1/segments/imp/users?limit=100001").status, 400u);
  EXPECT_EQ(client_->Get("/v1/segments/imp/users?after=unknown").status, 400u);
  EXPECT_EQ(client_->Get("/v1/segments/imp/users?limt=5").status, 400u);
}

TEST_F(ApiTest, HistoryReports) {
  ASSERT_EQ(CreateSegment(R"({"name":"r"})").status, 201u);
  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"add":["r"]})").status, 200u);
  ASSERT_EQ(client_->Post("/v1/users/u%2C2/segments", R"({"add":["r"]})").status, 200u);
  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"remove":["r"]})").status, 200u);

  HttpResult all = client_->Get("/v1/reports/history");
  ASSERT_EQ(all.status, 200u);
  EXPECT_EQ(all.header("transfer-encoding"), "chunked");
  EXPECT_EQ(all.header("content-type").rfind("text/csv", 0), 0u);
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < all.body.size();) {
    size_t end = all.body.find("\r\n", pos);
    lines.push_back(all.body.substr(pos, end - pos));
    pos = end + 2;
  }
  ASSERT_EQ(lines.size(), 4u) << all.body;
  EXPECT_EQ(lines[0], "user_id,segment,operation,at,reason,expires_at");
  EXPECT_EQ(lines[1].substr(0, 9), "u1,r,add,");
  EXPECT_EQ(lines[2].substr(0, 12), "\"u,2\",r,add,");
  EXPECT_NE(lines[2].find(",api,"), std::string::npos);
  EXPECT_EQ(lines[3].substr(0, 14), "u1,r,remove,20");

  HttpResult one = client_->Get("/v1/reports/history?user_id=u1&segment=r");
  EXPECT_EQ(std::count(one.body.begin(), one.body.end(), '\n'), 3);
  HttpResult stranger = client_->Get("/v1/reports/history?user_id=stranger");
  EXPECT_EQ(std::count(stranger.body.begin(), stranger.body.end(), '\n'), 1);
  HttpResult old = client_->Get("/v1/reports/history?period=2001-01");
  EXPECT_EQ(old.status, 200u);
  EXPECT_EQ(std::count(old.body.begin(), old.body.end(), '\n'), 1);
  EXPECT_EQ(client_->Get("/v1/reports/history?from=yesterday").status, 400u);
  EXPECT_EQ(client_->Get("/v1/reports/history?period=2023-13").status, 400u);
  EXPECT_EQ(client_->Get("/v1/reports/history?period=2023-09&from=2023-09-01T00:00:00Z").status,
            400u);
  EXPECT_EQ(ErrorCode(client_->Get("/v1/reports/history?segment=nope")), "segment_not_found");

  HttpResult stored = client_->Post("/v1/reports", R"({"segments":["r"],"user_ids":["u1"]})");
  ASSERT_EQ(stored.status, 201u) << stored.body;
  auto j = Json(stored.body);
  EXPECT_EQ(j["rows"].get_uint64().value(), 2u);
  std::string url(j["url"].get_string().value());
  HttpResult file = client_->Get(url);
  ASSERT_EQ(file.status, 200u);
  EXPECT_EQ(file.body, one.body);
  EXPECT_NE(file.header("content-disposition").find("attachment"), std::string::npos);
  EXPECT_EQ(ErrorCode(client_->Get("/v1/reports/0123456789abcdef0123456789abcdef.csv")),
            "report_not_found");
  EXPECT_EQ(ErrorCode(client_->Get("/v1/reports/..%2F..%2Fetc.csv")), "report_not_found");
  EXPECT_EQ(client_->Post("/v1/reports", R"({"period":"2023-09","from":"x"})").status, 400u);
}

TEST_F(ApiTest, ServiceEndpointsAndUnknownPaths) {
  HttpResult health = client_->Get("/health");
  ASSERT_EQ(health.status, 200u);
  EXPECT_EQ(std::string(Json(health.body)["status"].get_string().value()), "ok");
  client_->Get("/v1/segments/x/users/y");
  HttpResult metrics = client_->Get("/metrics");
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("segd_http_requests_total{route=\"check_member\",status=\"404\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("segd_memberships 0"), std::string::npos);
  HttpResult openapi = client_->Get("/openapi.yaml");
  ASSERT_EQ(openapi.status, 200u);
  EXPECT_EQ(openapi.body.rfind("openapi: 3", 0), 0u);
  EXPECT_EQ(ErrorCode(client_->Get("/v2/anything")), "not_found");
  HttpResult wrong = client_->Request("PUT", "/v1/segments/x/count");
  EXPECT_EQ(wrong.status, 405u);
  EXPECT_EQ(wrong.header("allow"), "GET, HEAD, OPTIONS");
}

}  // namespace
}  // namespace segd
