// Strict framing and input rules of the real server (server/request_framing.h and the
// handlers): requests that two parsers could read differently are refused and their
// connection closed, and the same invalid input gets the same answer everywhere.

#include <string>

#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

class HttpStrictness : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.started());
    HttpClient client(server_.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"s"})").status, 201u);
  }

  // Sends `raw` on a new connection; returns the first answer and whether the server then
  // closed the connection (answering nothing more).
  std::pair<HttpResult, bool> SendRaw(const std::string& raw) {
    HttpClient client(server_.port());
    client.SendRaw(raw);
    HttpResult first = client.ReadResponse();
    return {first, client.ServerClosed()};
  }

  // The status of the answer to `raw` on a new connection.
  unsigned Status(const std::string& raw) {
    HttpClient client(server_.port());
    client.SendRaw(raw);
    return client.ReadResponse().status;
  }

  uint64_t Count() {
    HttpClient client(server_.port());
    HttpResult r = client.Get("/v1/segments/s/count");
    return std::stoull(r.body.substr(r.body.rfind(':') + 1));
  }

  TempDir dir_;
  ServerProcess server_{dir_.path()};
};

TEST_F(HttpStrictness, TransferEncodingWithContentLengthIsRefusedAndNothingIsSmuggled) {
  const std::string body = R"({"add":["s"]})";
  // Framed by Content-Length, the bytes after the body would run as a second request.
  auto [answer, closed] = SendRaw(
      "POST /v1/users/a/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: xchunked\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body +
      "POST /v1/users/smuggled/segments HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(answer.status, 400u) << answer.body;
  EXPECT_TRUE(closed);
  EXPECT_EQ(Count(), 0u);

  // chunked together with Content-Length: refused as well.
  auto [both, both_closed] = SendRaw(
      "POST /v1/users/b/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nd\r\n" +
      body + "\r\n0\r\n\r\n");
  EXPECT_EQ(both.status, 400u);
  EXPECT_TRUE(both_closed);
  // A coding segd does not decode.
  auto [gzip, gzip_closed] = SendRaw(
      "POST /v1/users/c/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(gzip.status, 400u);
  EXPECT_TRUE(gzip_closed);
  EXPECT_EQ(Count(), 0u);
}

TEST_F(HttpStrictness, HostIsRequiredOnceInHttp11) {
  EXPECT_EQ(Status("GET /health HTTP/1.1\r\n\r\n"), 400u);
  EXPECT_EQ(Status("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400u);
  EXPECT_EQ(Status("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"), 200u);
  // HTTP/1.0 has no Host requirement.
  EXPECT_EQ(Status("GET /health HTTP/1.0\r\n\r\n"), 200u);
}

TEST_F(HttpStrictness, ObsoleteLineFoldingIsRefused) {
  auto [answer, closed] = SendRaw("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n");
  EXPECT_EQ(answer.status, 400u);
  EXPECT_NE(answer.body.find("folding"), std::string::npos) << answer.body;
  EXPECT_TRUE(closed);
  EXPECT_EQ(Status("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a b\r\n\r\n"), 200u);
}

TEST_F(HttpStrictness, UnknownExpectationsAre417) {
  HttpClient client(server_.port());
  HttpResult r = client.Request("POST", "/v1/users/u/segments", R"({"add":["s"]})",
                                "application/json", {{"Expect", "something-else"}});
  EXPECT_EQ(r.status, 417u);
  EXPECT_NE(r.body.find("expectation_failed"), std::string::npos) << r.body;
  EXPECT_EQ(Count(), 0u);
}

TEST_F(HttpStrictness, ContentTypeMustBeJsonInUtf8) {
  HttpClient client(server_.port());
  const std::string add = R"({"add":["s"]})";
  EXPECT_EQ(client.Request("POST", "/v1/users/u/segments", add, "application/json; charset=latin1")
                .status,
            415u);
  EXPECT_EQ(
      client.Request("POST", "/v1/users/u/segments", add, "application/json; charset=\"UTF-8\"")
          .status,
      200u);
  // A JSON body without a Content-Type.
  HttpClient raw(server_.port());
  raw.SendRaw("POST /v1/users/v/segments HTTP/1.1\r\nHost: x\r\nContent-Length: " +
              std::to_string(add.size()) + "\r\n\r\n" + add);
  HttpResult untyped = raw.ReadResponse();
  EXPECT_EQ(untyped.status, 415u) << untyped.body;
  // Imports too.
  EXPECT_EQ(
      client.Request("POST", "/v1/segments/s/users:import", "w\n", "text/plain; charset=iso-8859-1")
          .status,
      415u);
  EXPECT_EQ(Count(), 1u);
}

TEST_F(HttpStrictness, SameInputRulesOnEveryRoute) {
  HttpClient client(server_.port());
  HttpResult fraction = client.Post("/v1/segments", R"({"name":"half","auto_percent":50.5})");
  EXPECT_EQ(fraction.status, 400u) << fraction.body;
  EXPECT_EQ(client.Post("/v1/segments", R"({"name":"half","auto_percent":50})").status, 201u);
  // A user id no mutation accepts is a 400 on the check too.
  const std::string long_id(257, 'x');
  EXPECT_EQ(client.Post("/v1/users/" + long_id + "/segments", R"({"add":["s"]})").status, 400u);
  HttpResult check =
      client.Post("/v1/check", R"({"checks":[{"user_id":")" + long_id + R"(","segment":"s"}]})");
  EXPECT_EQ(check.status, 400u) << check.body;
}

TEST_F(HttpStrictness, ErrorsDoNotEchoPathLikeInput) {
  HttpClient client(server_.port());
  for (const std::string target :
       {"/v1/segments/..%2F..%2Fetc%2Fpasswd", "/v1/segments/..%2F..%2Fetc%2Fpasswd/count",
        "/v1/segments/s/users/..%2F..%2Fetc%2Fpasswd%00", "/v1/reports/..%2Fsecret.csv"}) {
    HttpResult r = client.Get(target);
    EXPECT_NE(r.status, 0u) << target;
    EXPECT_LT(r.status, 500u) << target;
    EXPECT_EQ(r.body.find("etc/passwd"), std::string::npos) << target << " " << r.body;
    EXPECT_EQ(r.body.find("../"), std::string::npos) << target << " " << r.body;
  }
}

}  // namespace
}  // namespace segd
