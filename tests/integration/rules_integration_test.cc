// Events, traits and rule segments over HTTP against the real server: real-time entry seen
// by the very next check, time-driven exit and entry logged at their exact moment, backfills
// and edits, cycles, profiles, and kill -9 during ingestion and during a backfill with nothing
// acknowledged lost.

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/time_text.h"
#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Rfc3339(int64_t ms) {
  std::string out;
  AppendRfc3339Millis(&out, ms);
  return out;
}

HttpResult Ndjson(HttpClient& client, const std::string& body) {
  return client.Request("POST", "/v1/events", body, "application/x-ndjson");
}

bool Member(HttpClient& client, const std::string& segment, const std::string& user) {
  HttpResult r = client.Get("/v1/segments/" + segment + "/users/" + user);
  return r.status == 200 && r.body.find("\"member\":true") != std::string::npos;
}

// Waits (up to 60 s) until the segment's state is ready.
bool WaitReady(HttpClient& client, const std::string& segment) {
  for (int i = 0; i < 6000; ++i) {
    HttpResult r = client.Get("/v1/segments/" + segment);
    if (r.body.find("\"state\":\"ready\"") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string CreateRule(const std::string& name, const std::string& rule) {
  std::string escaped;
  for (char c : rule) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return absl::StrCat(R"({"name":")", name, R"(","rule":")", escaped, R"("})");
}

TEST(RulesOverHttp, AnEventsEffectIsSeenByTheNextCheck) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started()) << server.start_line();
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("buyers", "count(purchase, 1h) >= 2")).status,
            201u);
  ASSERT_TRUE(WaitReady(client, "buyers"));
  for (int i = 0; i < 200; ++i) {
    const std::string user = "b" + std::to_string(i);
    const std::string event = R"({"user_id":")" + user + R"(","type":"purchase"})";
    ASSERT_EQ(client.Post("/v1/events", event).body,
              R"({"accepted":1,"invalid_lines":[],"invalid_count":0})");
    ASSERT_FALSE(Member(client, "buyers", user));
    ASSERT_EQ(client.Post("/v1/events", event).status, 200u);
    ASSERT_TRUE(Member(client, "buyers", user)) << "after the second purchase of " << user;
  }
  EXPECT_EQ(client.Get("/v1/segments/buyers/count").body,
            R"({"segment":"buyers","user_count":200})");
}

TEST(RulesOverHttp, TimeDrivenExitAndEntryAreLoggedAtTheirExactMoment) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("active", "did(visit, 2s)")).status, 201u);
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("lapsed", "NOT did(visit, 2s)")).status, 201u);
  ASSERT_TRUE(WaitReady(client, "active"));
  ASSERT_TRUE(WaitReady(client, "lapsed"));
  const int64_t at = NowMs() - 500;
  ASSERT_EQ(
      client.Post("/v1/events", R"({"user_id":"t1","type":"visit","at":")" + Rfc3339(at) + R"("})")
          .status,
      200u);
  EXPECT_TRUE(Member(client, "active", "t1"));
  EXPECT_FALSE(Member(client, "lapsed", "t1"));
  // The event leaves the window at at + 2 s; within a second after that the user has moved.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  while (Member(client, "active", "t1") && std::chrono::system_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(NowMs(), at + 2000);
  EXPECT_FALSE(Member(client, "active", "t1"));
  EXPECT_TRUE(Member(client, "lapsed", "t1"));
  HttpResult report = client.Get("/v1/reports/history?user_id=t1");
  ASSERT_EQ(report.status, 200u);
  const std::string moment = Rfc3339(at + 2000);
  EXPECT_NE(report.body.find("t1,active,remove," + moment + ",rule,"), std::string::npos)
      << report.body;
  EXPECT_NE(report.body.find("t1,lapsed,add," + moment + ",rule,"), std::string::npos)
      << report.body;
}

TEST(RulesOverHttp, BackfillEditsCyclesProfilesAndErrors) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  std::string body;
  for (int i = 0; i < 3000; ++i) {
    body += absl::StrCat(R"({"user_id":"p)", i % 100, R"(","type":"view","properties":{"n":)", i,
                         R"(},"traits":{"plan":")", i % 2 ? "pro" : "free", "\"}}\n");
  }
  body += "not json\n\n";
  HttpResult r = Ndjson(client, body);
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.body,
            R"({"accepted":3000,"invalid_lines":[{"line":3001,"error":"expected a JSON object"}],)"
            R"("invalid_count":1})");
  // A new rule is computed over the events already in the log.
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("fans", "count(view) >= 30")).status, 201u);
  ASSERT_TRUE(WaitReady(client, "fans"));
  EXPECT_EQ(client.Get("/v1/segments/fans/count").body, R"({"segment":"fans","user_count":100})");
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("pros", "trait.plan = \"pro\"")).status, 201u);
  ASSERT_TRUE(WaitReady(client, "pros"));
  EXPECT_EQ(client.Get("/v1/segments/pros/count").body, R"({"segment":"pros","user_count":50})");
  // An edit swaps in once backfilled, logging only the differences.
  r = client.Request("PATCH", "/v1/segments/fans",
                     R"({"rule":"count(view WHERE properties.n >= 1500) >= 15"})");
  ASSERT_EQ(r.status, 200u) << r.body;
  ASSERT_TRUE(WaitReady(client, "fans"));
  HttpResult fans = client.Get("/v1/segments/fans");
  EXPECT_NE(fans.body.find(R"("rule":"count(view WHERE properties.n >= 1500) >= 15")"),
            std::string::npos)
      << fans.body;
  EXPECT_EQ(client.Get("/v1/segments/fans/count").body, R"({"segment":"fans","user_count":100})");
  HttpResult history = client.Get("/v1/reports/history?segment=fans");
  EXPECT_EQ(std::count(history.body.begin(), history.body.end(), '\n'), 101) << "no churn";
  // Rules reading rules; a cycle is refused.
  ASSERT_EQ(
      client.Post("/v1/segments", CreateRule("pro_fans", "in_segment(fans) AND in_segment(pros)"))
          .status,
      201u);
  ASSERT_TRUE(WaitReady(client, "pro_fans"));
  EXPECT_EQ(client.Get("/v1/segments/pro_fans/count").body,
            R"({"segment":"pro_fans","user_count":50})");
  r = client.Request("PATCH", "/v1/segments/fans", R"j({"rule":"in_segment(pro_fans)"})j");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("\"code\":\"rule_cycle\""), std::string::npos) << r.body;
  r = client.Post("/v1/segments", CreateRule("broken", "count(view) >= 3 AND trait.x <"));
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find(R"("details":{"position":)"), std::string::npos) << r.body;
  r = client.Post("/v1/segments", R"j({"name":"both","rule":"did(view)","ttl_seconds":5})j");
  EXPECT_EQ(r.status, 400u);
  r = client.Post("/v1/segments/fans/users:import", "p1");
  EXPECT_EQ(r.status, 415u);
  r = client.Request("POST", "/v1/segments/fans/users:import", "p1", "text/plain");
  EXPECT_EQ(r.status, 409u);
  EXPECT_NE(r.body.find("segment_is_computed"), std::string::npos);
  r = client.Post("/v1/users/p1/segments", R"({"remove":["fans"]})");
  EXPECT_EQ(r.status, 409u);
  // Traits by PATCH, profiles.
  r = client.Request("PATCH", "/v1/users/p1/traits", R"({"plan":null,"age":31,"vip":true})");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(r.body.find(R"("traits":{"age":31,"vip":true})"), std::string::npos) << r.body;
  EXPECT_FALSE(Member(client, "pros", "p1"));
  r = client.Get("/v1/users/p3");
  EXPECT_NE(r.body.find(R"("traits":{"plan":"pro"})"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("name":"pro_fans")"), std::string::npos) << r.body;
  EXPECT_EQ(client.Get("/v1/users/nobody").status, 404u);
  // A single invalid event is a 400; other media types 415.
  r = client.Post("/v1/events", R"({"user_id":"x","type":"view","at":"1999-01-01T00:00:00Z"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("at_out_of_range"), std::string::npos) << r.body;
  EXPECT_EQ(client.Post("/v1/events", R"({"user_id":"x"})").status, 400u);
  EXPECT_EQ(
      client.Post("/v1/events", R"({"user_id":"x","type":"v","properties":{"a":[1]}})").status,
      400u);
  EXPECT_EQ(client.Request("POST", "/v1/events", "x", "text/csv").status, 415u);
}

// kill -9 while a client streams events: every event acknowledged before the kill is in the
// log (a rule created after the restart counts it) and in the recovered rule state.
TEST(RulesOverHttp, KillNineDuringIngestionLosesNothingAcknowledged) {
  TempDir dir;
  std::atomic<int> acknowledged{0};
  {
    ServerProcess server(dir.path());
    ASSERT_TRUE(server.started());
    {
      HttpClient client(server.port());
      ASSERT_EQ(client.Post("/v1/segments", CreateRule("seen", "did(ping)")).status, 201u);
      ASSERT_TRUE(WaitReady(client, "seen"));
    }
    std::thread writer([&] {
      try {
        HttpClient client(server.port());
        for (int batch = 0;; ++batch) {
          std::string body;
          for (int i = 0; i < 100; ++i) {
            body += absl::StrCat(R"({"user_id":"k)", batch * 100 + i, R"(","type":"ping"})", "\n");
          }
          HttpResult r = Ndjson(client, body);
          if (r.status != 200) return;
          acknowledged.store((batch + 1) * 100);
        }
      } catch (const std::exception&) {
        // The connection died with the server.
      }
    });
    while (acknowledged.load() < 3000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server.Kill();
    writer.join();
  }
  const int acked = acknowledged.load();
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started()) << again.start_line();
  HttpClient client(again.port());
  ASSERT_EQ(client.Post("/v1/segments", CreateRule("seen_again", "count(ping) >= 1")).status, 201u);
  ASSERT_TRUE(WaitReady(client, "seen_again"));
  for (int u = 0; u < acked; u += 97) {
    ASSERT_TRUE(Member(client, "seen", "k" + std::to_string(u))) << u << " of " << acked;
    ASSERT_TRUE(Member(client, "seen_again", "k" + std::to_string(u))) << u << " of " << acked;
  }
  ASSERT_TRUE(Member(client, "seen_again", "k" + std::to_string(acked - 1)));
}

// kill -9 while a new rule is being backfilled: after the restart it becomes ready with the
// members it would have had.
TEST(RulesOverHttp, KillNineDuringABackfillFinishesItAfterTheRestart) {
  TempDir dir;
  {
    ServerProcess server(dir.path());
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    for (int batch = 0; batch < 20; ++batch) {
      std::string body;
      for (int i = 0; i < 10000; ++i) {
        body += absl::StrCat(R"({"user_id":"m)", (batch * 10000 + i) % 5000, R"(","type":"tick"})",
                             "\n");
      }
      ASSERT_EQ(Ndjson(client, body).status, 200u);
    }
    ASSERT_EQ(client.Post("/v1/segments", CreateRule("ticked", "count(tick) >= 40")).status, 201u);
    server.Kill();  // most likely mid-backfill; either way the outcome below must hold
  }
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started()) << again.start_line();
  HttpClient client(again.port());
  ASSERT_TRUE(WaitReady(client, "ticked"));
  EXPECT_EQ(client.Get("/v1/segments/ticked/count").body,
            R"({"segment":"ticked","user_count":5000})");
}

}  // namespace
}  // namespace segd
