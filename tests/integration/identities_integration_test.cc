// Identities over HTTP: aliases in every place a user id goes, a merge's answers and logs,
// and merges cut by kill -9 (each acknowledged one complete after the restart, the one in
// flight all or nothing).

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

TEST(IdentitiesHttp, AliasesResolveInPathsBodiesChecksImportsAndEvents) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.started());
  HttpClient c(server.port());
  for (const char* s : {"a", "b", "c"}) {
    ASSERT_EQ(c.Post("/v1/segments", std::string(R"({"name":")") + s + "\"}").status, 201u);
  }
  ASSERT_EQ(c.Post("/v1/users/login:1/aliases", R"({"aliases":["cookie:1",42]})").status, 200u);
  // Path, body, batch check, import, event: all act on login:1, and answers name it.
  HttpResult added = c.Post("/v1/users/cookie:1/segments", R"({"add":["a"]})");
  EXPECT_EQ(added.body, R"({"user_id":"login:1","added":["a"],"updated":[],"removed":[]})");
  EXPECT_EQ(c.Request("POST", "/v1/segments/b/users:import", "42\n", "text/plain").status, 200u);
  EXPECT_EQ(
      c.Post("/v1/events", R"({"user_id":"cookie:1","type":"x","traits":{"plan":"pro"}})").status,
      200u);
  HttpResult check = c.Post(
      "/v1/check",
      R"({"checks":[{"user_id":"login:1","segment":"a"},{"user_id":"login:1","segment":"b"},{"user_id":42,"segment":"a"}]})");
  EXPECT_EQ(check.body, R"({"results":[true,true,true]})");
  HttpResult profile = c.Get("/v1/users/42");
  EXPECT_NE(profile.body.find(R"("user_id":"login:1","aliases":["42","cookie:1"])"),
            std::string::npos)
      << profile.body;
  EXPECT_NE(profile.body.find(R"("plan":"pro")"), std::string::npos) << profile.body;
  EXPECT_EQ(c.Get("/v1/segments/a/users/cookie:1").body, R"({"member":true,"expires_at":null})");
  // One user, not three.
  EXPECT_NE(c.Get("/health").body.find(R"("users":1)"), std::string::npos);

  // Removing an alias: it no longer resolves.
  EXPECT_EQ(c.Request("DELETE", "/v1/users/login:1/aliases/cookie:1").status, 200u);
  EXPECT_EQ(c.Get("/v1/users/cookie:1").status, 404u);
  EXPECT_EQ(c.Request("DELETE", "/v1/users/login:1/aliases/cookie:1").status, 404u);
  // Bad requests.
  EXPECT_EQ(c.Post("/v1/users/login:1/aliases", R"({"aliases":["undefined"]})").status, 400u);
  EXPECT_EQ(c.Post("/v1/users/login:1/aliases", R"({"aliases":"x"})").status, 400u);
  EXPECT_EQ(c.Post("/v1/users/login:1/aliases", R"({"merge":true})").status, 400u);
}

TEST(IdentitiesHttp, AMergeIsLoggedAndInTheFeed) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.started());
  HttpClient c(server.port());
  ASSERT_EQ(c.Post("/v1/segments", R"({"name":"a"})").status, 201u);
  ASSERT_EQ(c.Post("/v1/users/anon/segments", R"({"add":["a"]})").status, 200u);
  ASSERT_EQ(c.Request("PUT", "/v1/users/known").status, 201u);
  HttpResult taken = c.Post("/v1/users/known/aliases", R"({"aliases":["anon"]})");
  EXPECT_EQ(taken.status, 409u);
  EXPECT_NE(taken.body.find(R"("code":"alias_taken")"), std::string::npos);
  EXPECT_NE(taken.body.find(R"("details":{"user_id":"anon"})"), std::string::npos) << taken.body;
  HttpResult merged = c.Post("/v1/users/known/aliases", R"({"aliases":["anon"],"merge":true})");
  EXPECT_EQ(merged.body, R"({"user_id":"known","aliases":["anon"],"merged":["anon"]})");
  HttpResult report = c.Get("/v1/reports/history?segment=a");
  EXPECT_NE(report.body.find("anon,a,remove,"), std::string::npos) << report.body;
  EXPECT_NE(report.body.find(",merge,"), std::string::npos) << report.body;
  EXPECT_NE(report.body.find("known,a,add,"), std::string::npos) << report.body;
  HttpResult feed = c.Get("/v1/changes?after=0");
  EXPECT_NE(feed.body.find(R"("user_id":"known","entered":["a"],"exited":[],"reason":"merge")"),
            std::string::npos)
      << feed.body;
}

TEST(IdentitiesHttp, MergesCutByKillDashNineAreAllOrNothing) {
  TempDir dir;
  const int kPairs = 400;
  std::atomic<int> acknowledged{0};
  {
    ServerProcess server(dir.Sub("data"));
    ASSERT_TRUE(server.started());
    HttpClient c(server.port());
    ASSERT_EQ(c.Post("/v1/segments", R"({"name":"p"})").status, 201u);
    ASSERT_EQ(c.Post("/v1/segments", R"({"name":"q"})").status, 201u);
    for (int i = 0; i < kPairs; ++i) {
      ASSERT_EQ(c.Post("/v1/users/p" + std::to_string(i) + "/segments", R"({"add":["p"]})").status,
                200u);
      ASSERT_EQ(c.Post("/v1/users/q" + std::to_string(i) + "/segments", R"({"add":["q"]})").status,
                200u);
    }
    std::thread merger([&] {
      HttpClient m(server.port());
      for (int i = 0; i < kPairs; ++i) {
        const std::string body = R"({"aliases":["q)" + std::to_string(i) + R"("],"merge":true})";
        HttpResult r = m.Post("/v1/users/p" + std::to_string(i) + "/aliases", body);
        if (r.status != 200) return;
        acknowledged.store(i + 1);
      }
    });
    while (acknowledged.load() < kPairs / 4) std::this_thread::yield();
    server.Kill();
    merger.join();
  }
  ASSERT_GE(acknowledged.load(), kPairs / 4);
  ServerProcess again(dir.Sub("data"));
  ASSERT_TRUE(again.started());
  HttpClient c(again.port());
  int merged = 0;
  for (int i = 0; i < kPairs; ++i) {
    const std::string p = "p" + std::to_string(i), q = "q" + std::to_string(i);
    HttpResult as_q = c.Get("/v1/users/" + q + "/segments");
    const bool done = as_q.body.find("\"user_id\":\"" + p + "\"") != std::string::npos;
    if (i < acknowledged.load()) {
      ASSERT_TRUE(done) << "acknowledged merge " << i << " lost";
    }
    if (done) {
      ++merged;
      // Complete: the survivor has both, the alias names it.
      EXPECT_NE(as_q.body.find(R"("name":"p")"), std::string::npos) << as_q.body;
      EXPECT_NE(as_q.body.find(R"("name":"q")"), std::string::npos) << as_q.body;
    } else {
      // Not at all: q is still its own user, in q only; p in p only.
      EXPECT_NE(as_q.body.find("\"user_id\":\"" + q + "\""), std::string::npos) << as_q.body;
      EXPECT_EQ(as_q.body.find(R"("name":"p")"), std::string::npos) << as_q.body;
      EXPECT_EQ(c.Get("/v1/users/" + p + "/segments").body.find(R"("name":"q")"),
                std::string::npos);
    }
  }
  EXPECT_GE(merged, acknowledged.load());
  EXPECT_LE(merged, acknowledged.load() + 1) << "at most the one in flight beyond";
}

}  // namespace
}  // namespace segd
