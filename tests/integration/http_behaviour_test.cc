// HTTP-level behaviour of the real server: pipelining, keep-alive, limits, slow clients,
// Expect: 100-continue, chunked bodies, many concurrent clients, connection cap, TTL expiry.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
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
using testutil::RawRequest;
using testutil::ServerProcess;
using testutil::TempDir;

TEST(HttpBehaviour, PipelinedRequestsAnswerInOrderOnOneConnection) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  std::string batch = RawRequest("POST", "/v1/segments", R"({"name":"p"})");
  for (int i = 0; i < 50; ++i) {
    batch +=
        RawRequest("POST", "/v1/users/u" + std::to_string(i) + "/segments", R"({"add":["p"]})");
    batch += RawRequest("GET", "/v1/segments/p/count");
  }
  batch += RawRequest("GET", "/v1/nope");
  client.SendRaw(batch);
  ASSERT_EQ(client.ReadResponse().status, 201u);
  for (int i = 0; i < 50; ++i) {
    HttpResult add = client.ReadResponse();
    ASSERT_EQ(add.status, 200u) << i;
    EXPECT_NE(add.body.find("\"u" + std::to_string(i) + "\""), std::string::npos);
    HttpResult count = client.ReadResponse();
    EXPECT_EQ(count.body, R"({"segment":"p","user_count":)" + std::to_string(i + 1) + "}");
  }
  EXPECT_EQ(client.ReadResponse().status, 404u);
  // The connection stays usable.
  EXPECT_EQ(client.Get("/health").status, 200u);
}

// Streamed answers (reports) mixed with plain ones, sequential and pipelined: each answer
// arrives exactly once and in order. (A stream that finished before its first write was once
// sent twice.)
TEST(HttpBehaviour, StreamedAnswersArriveOnceAndInOrder) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"s"})").status, 201u);
  ASSERT_EQ(client.Post("/v1/users/u1/segments", R"({"add":["s"]})").status, 200u);
  for (int i = 0; i < 40; ++i) {
    HttpResult csv = client.Get("/v1/reports/history");
    ASSERT_EQ(csv.status, 200u);
    ASSERT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 2) << i << csv.body;
    ASSERT_EQ(client.Get("/v1/segments/s/count").body, R"({"segment":"s","user_count":1})") << i;
  }
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    batch += RawRequest("GET", "/v1/reports/history?user_id=u1");
    batch += RawRequest("GET", "/health");
  }
  client.SendRaw(batch);
  for (int i = 0; i < 20; ++i) {
    HttpResult csv = client.ReadResponse();
    ASSERT_EQ(csv.header("content-type").rfind("text/csv", 0), 0u) << i;
    ASSERT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 2) << i;
    ASSERT_NE(client.ReadResponse().body.find("\"status\":\"ok\""), std::string::npos) << i;
  }
  EXPECT_EQ(client.Get("/v1/segments/s/count").body, R"({"segment":"s","user_count":1})");
}

TEST(HttpBehaviour, OversizeBodiesAre413BeforeTheBodyIsRead) {
  TempDir dir;
  ServerProcess server(
      dir.path(), {"--max-body", "1KiB", "--max-check-body", "2KiB", "--max-import-body", "4KiB"});
  ASSERT_TRUE(server.started());
  {
    // An import's answer names the import limit and its flag, not the JSON one.
    HttpClient client(server.port());
    client.SendRaw(
        "POST /v1/segments/s/users:import HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 5000\r\n\r\n");
    HttpResult r = client.ReadResponse();
    EXPECT_EQ(r.status, 413u);
    EXPECT_NE(r.body.find("the limit for imports is 4096 bytes (--max-import-body)"),
              std::string::npos)
        << r.body;
  }
  {
    HttpClient client(server.port());
    // Declares 10 MB but sends none of it: the answer must come from the header alone.
    client.SendRaw(
        "POST /v1/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\n\r\n");
    HttpResult r = client.ReadResponse();
    EXPECT_EQ(r.status, 413u);
    EXPECT_NE(r.body.find("payload_too_large"), std::string::npos);
    EXPECT_NE(r.body.find("1024 bytes (--max-body)"), std::string::npos) << r.body;
    EXPECT_TRUE(client.ServerClosed());
  }
  {
    HttpClient client(server.port());
    std::string checks = R"({"checks":[)" + std::string(1500, ' ') + "]}";
    // Over --max-body but under --max-check-body: read and answered.
    HttpResult r = client.Post("/v1/check", checks);
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, R"({"results":[]})");
  }
  {
    // A chunked body that passes the limit.
    HttpClient client(server.port());
    std::string chunk(800, ' ');
    client.SendRaw(
        "POST /v1/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n320\r\n" +
        chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n");
    EXPECT_EQ(client.ReadResponse().status, 413u);
  }
  {
    HttpClient client(server.port());
    client.SendRaw("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                   "\r\n\r\n");
    EXPECT_EQ(client.ReadResponse().status, 431u);
  }
  {
    HttpClient client(server.port());
    client.SendRaw("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(client.ReadResponse().status, 400u);
  }
  HttpClient other(server.port());
  EXPECT_EQ(other.Get("/health").status, 200u);
}

TEST(HttpBehaviour, ChunkedBodiesAndExpectContinue) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  std::string body = R"({"name":"chunky"})";
  client.SendRaw(
      "POST /v1/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n5\r\n" +
      body.substr(0, 5) + "\r\nc\r\n" + body.substr(5) + "\r\n0\r\n\r\n");
  ASSERT_EQ(body.size() - 5, 0xcu);
  EXPECT_EQ(client.ReadResponse().status, 201u);

  std::string body2 = R"({"name":"patient"})";
  client.SendRaw(
      "POST /v1/segments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: " +
      std::to_string(body2.size()) + "\r\n\r\n");
  // The interim 100 comes before the body is sent.
  HttpResult interim = client.ReadResponse();
  EXPECT_EQ(interim.status, 100u);
  client.SendRaw(body2);
  EXPECT_EQ(client.ReadResponse().status, 201u);
}

TEST(HttpBehaviour, SlowAndIdleClientsAreDisconnectedWithoutHurtingOthers) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--read-timeout", "1s"});
  ASSERT_TRUE(server.started());
  HttpClient slow(server.port());
  slow.SendRaw("GET /health HTTP/1.1\r\nHost: x\r\n");  // never finishes its headers
  HttpClient idle(server.port());
  auto start = std::chrono::steady_clock::now();
  HttpClient good(server.port());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(good.Get("/health").status, 200u);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  EXPECT_TRUE(slow.ServerClosed());
  EXPECT_TRUE(idle.ServerClosed());
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(5));
  // Trickling a header byte by byte does not extend the deadline.
  HttpClient trickle(server.port());
  std::string request = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(40, 'a');
  bool closed = false;
  for (char c : request) {
    try {
      trickle.SendRaw(std::string(1, c));
    } catch (...) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(closed || trickle.ServerClosed());
}

// --read-timeout bounds the client's reads and writes, not the server's own work: a long poll
// longer than the timeout is answered on a connection that then goes on, while an idle one is
// closed and counted.
TEST(HttpBehaviour, ReadTimeoutCountsTheClientsTimeNotTheServers) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--read-timeout", "1s"});
  ASSERT_TRUE(server.started());
  {
    HttpClient poll(server.port());
    ASSERT_EQ(poll.Post("/v1/segments", R"({"name":"lp"})").status, 201u);
    const auto start = std::chrono::steady_clock::now();
    HttpResult waited = poll.Get("/v1/changes?wait=3s&segment=lp");
    EXPECT_EQ(waited.status, 200u);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2900));
    EXPECT_EQ(poll.Get("/health").status, 200u);  // the same connection, still open
  }                                               // closed by the client: not a timeout
  HttpClient idle(server.port());
  EXPECT_TRUE(idle.ServerClosed());
  HttpClient fresh(server.port());
  EXPECT_EQ(
      testutil::MetricValue(fresh.Get("/metrics").body, "segd_http_connections_timed_out_total"),
      1);
}

TEST(HttpBehaviour, ConnectionsOverTheCapAreRefused) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--max-connections", "2"});
  ASSERT_TRUE(server.started());
  HttpClient a(server.port());
  HttpClient b(server.port());
  ASSERT_EQ(a.Get("/health").status, 200u);
  ASSERT_EQ(b.Get("/health").status, 200u);
  HttpClient c(server.port());
  HttpResult refused = c.ReadResponse();
  EXPECT_EQ(refused.status, 503u);
  EXPECT_EQ(a.Get("/health").status, 200u);
}

TEST(HttpBehaviour, ConcurrentClientsMixingReadsAndWrites) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  {
    HttpClient setup(server.port());
    ASSERT_EQ(setup.Post("/v1/segments", R"({"name":"mix"})").status, 201u);
  }
  constexpr int kThreads = 8;
  constexpr int kUsersEach = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client(server.port());
      for (int i = 0; i < kUsersEach; ++i) {
        std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (client.Post("/v1/users/" + user + "/segments", R"({"add":["mix"]})").status != 200) {
          ++failures;
        }
        HttpResult check = client.Get("/v1/segments/mix/users/" + user);
        if (check.body.find("\"member\":true") == std::string::npos) ++failures;
        if (i % 3 == 0) {
          if (client.Post("/v1/users/" + user + "/segments", R"({"remove":["mix"]})").status !=
              200) {
            ++failures;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  HttpClient client(server.port());
  int removed_each = (kUsersEach + 2) / 3;
  EXPECT_EQ(client.Get("/v1/segments/mix/count").body,
            R"({"segment":"mix","user_count":)" +
                std::to_string(kThreads * (kUsersEach - removed_each)) + "}");
}

// The adds of many connections at once are gathered into shared log batches (group commit
// across connections, detail/write_gatherer.h): every add is answered and applied, in fewer
// log writes than adds.
TEST(HttpBehaviour, ConcurrentSingleAddsShareLogWrites) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  auto batches = [&] {
    HttpClient client(server.port());
    std::string metrics = client.Get("/metrics").body;
    const std::string name = "\nsegd_log_write_batches_total ";
    size_t at = metrics.find(name);
    return at == std::string::npos ? -1L : std::stol(metrics.substr(at + name.size()));
  };
  {
    HttpClient setup(server.port());
    ASSERT_EQ(setup.Post("/v1/segments", R"({"name":"g"})").status, 201u);
  }
  const long before = batches();
  ASSERT_GE(before, 0);
  constexpr int kClients = 40, kAddsEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      HttpClient client(server.port());
      for (int i = 0; i < kAddsEach; ++i) {
        std::string user = "c" + std::to_string(t) + "-" + std::to_string(i);
        HttpResult r = client.Post("/v1/users/" + user + "/segments", R"({"add":["g"]})");
        if (r.status != 200 || r.body.find("\"added\":[\"g\"]") == std::string::npos) ++failures;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
  HttpClient client(server.port());
  EXPECT_EQ(client.Get("/v1/segments/g/count").body,
            R"({"segment":"g","user_count":)" + std::to_string(kClients * kAddsEach) + "}");
  const long written = batches() - before;
  EXPECT_GT(written, 0);
  EXPECT_LT(written, kClients * kAddsEach);
  // Nothing is lost on a restart either.
  ASSERT_EQ(server.Kill(), 128 + SIGKILL);
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started());
  HttpClient after(again.port());
  EXPECT_EQ(after.Get("/v1/segments/g/count").body,
            R"({"segment":"g","user_count":)" + std::to_string(kClients * kAddsEach) + "}");
}

TEST(HttpBehaviour, TtlExpirySeenThroughTheApi) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"short","ttl_seconds":1})").status, 201u);
  ASSERT_EQ(client.Post("/v1/users/u1/segments", R"({"add":["short"]})").status, 200u);
  ASSERT_EQ(client.Post("/v1/users/u2/segments", R"({"add":[{"name":"short","ttl_seconds":3600}]})")
                .status,
            200u);
  EXPECT_NE(client.Get("/v1/segments/short/users/u1").body.find("true"), std::string::npos);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (client.Get("/v1/segments/short/users/u1").body.find("true") != std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(client.Get("/v1/segments/short/users/u1").body, R"({"member":false})");
  EXPECT_NE(client.Get("/v1/segments/short/users/u2").body.find("true"), std::string::npos);
  HttpResult history = client.Get("/v1/reports/history?user_id=u1");
  EXPECT_NE(history.body.find("u1,short,remove,"), std::string::npos) << history.body;
  EXPECT_NE(history.body.find(",ttl_expired,"), std::string::npos) << history.body;
}

TEST(HttpBehaviour, HistoryRetentionHidesOldRows) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--history-retention", "1s"});
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"r"})").status, 201u);
  ASSERT_EQ(client.Post("/v1/users/old/segments", R"({"add":["r"]})").status, 200u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(client.Post("/v1/users/new/segments", R"({"add":["r"]})").status, 200u);
  HttpResult history = client.Get("/v1/reports/history");
  EXPECT_EQ(history.body.find("old,"), std::string::npos) << history.body;
  EXPECT_NE(history.body.find("new,r,add,"), std::string::npos) << history.body;
  // Membership itself is not history: the old member is still in the segment.
  EXPECT_EQ(client.Get("/v1/segments/r/count").body, R"({"segment":"r","user_count":2})");
}

}  // namespace
}  // namespace segd
