// Persistence of the real server: across a graceful SIGTERM restart, across kill -9, and
// expiries that fall due while it is down.

#include <atomic>
#include <chrono>
#include <memory>
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
using testutil::MetricValue;
using testutil::ServerProcess;
using testutil::TempDir;

std::string Count(HttpClient& client, const std::string& segment) {
  return client.Get("/v1/segments/" + segment + "/count").body;
}

TEST(ServerRestart, SigtermDrainsSnapshotsAndExitsZero) {
  TempDir dir;
  {
    ServerProcess server(dir.path());
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"keep"})").status, 201u);
    std::string lines;
    for (int i = 0; i < 1000; ++i) lines += "user-" + std::to_string(i) + "\n";
    ASSERT_EQ(client.Request("POST", "/v1/segments/keep/users:import", lines, "text/plain").status,
              200u);
    EXPECT_EQ(server.Terminate(), 0);
  }
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started());
  // The clean shutdown wrote a snapshot: nothing is replayed.
  EXPECT_NE(again.start_line().find(" 0 records replayed"), std::string::npos)
      << again.start_line();
  EXPECT_NE(again.start_line().find("recovered 1000 memberships"), std::string::npos);
  HttpClient client(again.port());
  EXPECT_EQ(Count(client, "keep"), R"({"segment":"keep","user_count":1000})");
  EXPECT_NE(client.Get("/v1/segments/keep/users/user-999").body.find("true"), std::string::npos);
}

// With --snapshot-every, a heavy write load gets snapshots by count, not only by time: after a
// crash the restart replays the records since the last one, not the whole log.
TEST(ServerRestart, SnapshotsByCountBoundTheReplayAfterACrash) {
  TempDir dir;
  {
    ServerProcess server(dir.path(), {"--snapshot-every", "500", "--snapshot-interval", "1h"});
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"bulk"})").status, 201u);
    for (int batch = 0; batch < 4; ++batch) {
      std::string lines;
      for (int i = 0; i < 1000; ++i) lines += "u" + std::to_string(batch * 1000 + i) + "\n";
      ASSERT_EQ(
          client.Request("POST", "/v1/segments/bulk/users:import", lines, "text/plain").status,
          200u);
      // The housekeeper looks every 200 ms; wait for the snapshot this batch is due.
      bool snapshotted = false;
      for (int tries = 0; tries < 100 && !snapshotted; ++tries) {
        std::string metrics = client.Get("/metrics").body;
        snapshotted =
            metrics.find("segd_snapshots_total " + std::to_string(batch + 1)) != std::string::npos;
        if (!snapshotted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ASSERT_TRUE(snapshotted) << "no snapshot after batch " << batch;
    }
    ASSERT_EQ(client.Request("POST", "/v1/users/late/segments", R"({"add":["bulk"]})").status,
              200u);
    EXPECT_EQ(server.Kill(), 128 + SIGKILL);
  }
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started()) << again.start_line();
  // The last snapshot covers the four imports: only the one add after it is replayed.
  EXPECT_NE(again.start_line().find("snapshot at log position 4001 "), std::string::npos)
      << again.start_line();
  EXPECT_NE(again.start_line().find(" 1 records replayed"), std::string::npos)
      << again.start_line();
  HttpClient client(again.port());
  EXPECT_EQ(Count(client, "bulk"), R"({"segment":"bulk","user_count":4001})");
}

// A long tail replayed at start-up counts towards --snapshot-every: the restarted server takes
// a snapshot without waiting for new changes, so that a second crash replays nothing.
TEST(ServerRestart, AReplayedTailIsSnapshottedSoonAfterStart) {
  TempDir dir;
  auto import_and_crash = [&](std::vector<std::string> flags, int users) {
    ServerProcess server(dir.path(), std::move(flags));
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"tail"})").status, 201u);
    std::string lines;
    for (int i = 0; i < users; ++i) lines += "t" + std::to_string(i) + "\n";
    ASSERT_EQ(client.Request("POST", "/v1/segments/tail/users:import", lines, "text/plain").status,
              200u);
    EXPECT_EQ(server.Kill(), 128 + SIGKILL);
  };
  import_and_crash({"--snapshot-every", "0", "--snapshot-interval", "1h"}, 800);
  {
    ServerProcess server(dir.path(), {"--snapshot-every", "500", "--snapshot-interval", "1h"});
    ASSERT_TRUE(server.started());
    EXPECT_NE(server.start_line().find(" 800 records replayed"), std::string::npos)
        << server.start_line();
    HttpClient client(server.port());
    bool snapshotted = false;
    for (int tries = 0; tries < 100 && !snapshotted; ++tries) {
      snapshotted = client.Get("/metrics").body.find("segd_snapshots_total 1") != std::string::npos;
      if (!snapshotted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(snapshotted) << "no snapshot after replaying 800 records";
    EXPECT_EQ(server.Kill(), 128 + SIGKILL);
  }
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started());
  EXPECT_NE(again.start_line().find(" 0 records replayed"), std::string::npos)
      << again.start_line();
  HttpClient client(again.port());
  EXPECT_EQ(Count(client, "tail"), R"({"segment":"tail","user_count":800})");
}

// Connections that close while SIGTERM drains them: shutdown must not wait on a session that
// ends at the same moment (it once could deadlock when it dropped the last reference to one).
TEST(ServerRestart, SigtermWhileConnectionsCloseExitsPromptly) {
  constexpr int kRounds = 12;
  constexpr int kConnections = 48;
  for (int round = 0; round < kRounds; ++round) {
    TempDir dir;
    // More server threads than cores: a worker that closes a session can preempt shutdown.
    ServerProcess server(dir.path(), {"--threads", "8"});
    ASSERT_TRUE(server.started());
    std::vector<std::unique_ptr<HttpClient>> clients;
    for (int i = 0; i < kConnections; ++i) {
      clients.push_back(std::make_unique<HttpClient>(server.port()));
      ASSERT_EQ(clients.back()->Get("/health").status, 200u);
    }
    std::thread closer([&] {
      for (auto& c : clients) c.reset();
    });
    int code = server.TerminateWithin(20);
    closer.join();
    ASSERT_EQ(code, 0) << "round " << round
                       << (code == ServerProcess::kTimedOut ? ": shutdown hung" : "");
  }
}

// A writer adds users while the process is killed; every add it saw acknowledged must be there
// after a restart.
void KillDuringWrites(const std::vector<std::string>& flags) {
  TempDir dir;
  int acknowledged = 0;
  {
    ServerProcess server(dir.path(), flags);
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"k"})").status, 201u);
    // A writer runs while the process is killed; everything it saw acknowledged must survive.
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      HttpClient w(server.port());
      for (int i = 0; !stop.load(); ++i) {
        HttpResult r = w.Post("/v1/users/w" + std::to_string(i) + "/segments", R"({"add":["k"]})");
        if (r.status != 200) break;
        acknowledged = i + 1;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(server.Kill(), 128 + SIGKILL);
    stop = true;
    writer.join();
  }
  ASSERT_GT(acknowledged, 0);
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started()) << again.start_line();
  HttpClient client(again.port());
  for (int i = 0; i < acknowledged; ++i) {
    ASSERT_NE(client.Get("/v1/segments/k/users/w" + std::to_string(i)).body.find("true"),
              std::string::npos)
        << "acknowledged add " << i << " of " << acknowledged << " was lost";
  }
  // Whatever was in flight is either fully there or absent: the count matches the members.
  HttpResult count = client.Get("/v1/segments/k/count");
  int n = std::stoi(count.body.substr(count.body.find("user_count\":") + 12));
  EXPECT_GE(n, acknowledged);
  EXPECT_LE(n, acknowledged + 1);
}

TEST(ServerRestart, AcknowledgedChangesSurviveKillDashNine) { KillDuringWrites({}); }

// With fsync durability, mutations run on the durable-write workers and answer after the group
// fsync.
TEST(ServerRestart, AcknowledgedChangesSurviveKillDashNineWithFsync) {
  KillDuringWrites({"--durability", "fsync"});
}

// Concurrent fsync-mode writers share WAL syncs, and every answered write is durable.
TEST(ServerRestart, FsyncModeSharesSyncsAmongConcurrentWriters) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--durability", "fsync"});
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"g"})").status, 201u);
  const int kWriters = 8, kEach = 30;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      HttpClient w(server.port());
      for (int i = 0; i < kEach; ++i) {
        const std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (w.Post("/v1/users/" + user + "/segments", R"({"add":["g"]})").status != 200) failures++;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string metrics = client.Get("/metrics").body;
  const double batches = MetricValue(metrics, "segd_log_write_batches_total");
  const double durable = MetricValue(metrics, "segd_log_durable_batches_total");
  const double syncs = MetricValue(metrics, "segd_log_wal_syncs_total");
  // One batch for the segment, then at most one per write: concurrent single-user writes may
  // share a batch (combined commits).
  EXPECT_GE(batches, 2);
  EXPECT_LE(batches, 1 + kWriters * kEach) << metrics;
  EXPECT_EQ(durable, batches);
  EXPECT_GT(syncs, 0);
  EXPECT_LT(syncs, kWriters * kEach);
  EXPECT_LE(syncs, batches);
  EXPECT_EQ(Count(client, "g"), R"({"segment":"g","user_count":240})");
  // Every answered write is in the log: all of them are there after a kill -9.
  server.Kill();
  ServerProcess again(dir.path(), {"--durability", "fsync"});
  ASSERT_TRUE(again.started());
  HttpClient after(again.port());
  EXPECT_EQ(Count(after, "g"), R"({"segment":"g","user_count":240})");
}

TEST(ServerRestart, FsyncModeKeepsPipelinedWritesInOrder) {
  TempDir dir;
  ServerProcess server(dir.path(), {"--durability", "fsync"});
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  std::string batch = testutil::RawRequest("POST", "/v1/segments", R"({"name":"f"})");
  for (int i = 0; i < 20; ++i) {
    std::string body = i % 2 == 0 ? R"({"add":["f"]})" : R"({"remove":["f"]})";
    batch += testutil::RawRequest("POST", "/v1/users/u/segments", body);
    batch += testutil::RawRequest("GET", "/v1/segments/f/users/u");
  }
  client.SendRaw(batch);
  ASSERT_EQ(client.ReadResponse().status, 201u);
  for (int i = 0; i < 20; ++i) {
    HttpResult write = client.ReadResponse();
    ASSERT_EQ(write.status, 200u) << write.body;
    EXPECT_NE(write.body.find(i % 2 == 0 ? "\"added\":[\"f\"]" : "\"removed\":[\"f\"]"),
              std::string::npos)
        << i << write.body;
    HttpResult check = client.ReadResponse();
    EXPECT_EQ(check.body.find("true") != std::string::npos, i % 2 == 0) << i << check.body;
  }
}

TEST(ServerRestart, ExpiriesDueWhileDownAreAppliedAtStart) {
  TempDir dir;
  {
    ServerProcess server(dir.path());
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"t"})").status, 201u);
    // Due 1 s after the add; expired within the second after that, so 2.5 s of downtime is
    // always enough.
    ASSERT_EQ(
        client.Post("/v1/users/u/segments", R"({"add":[{"name":"t","ttl_seconds":1}]})").status,
        200u);
    EXPECT_EQ(server.Kill(), 128 + SIGKILL);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ServerProcess again(dir.path());
  ASSERT_TRUE(again.started());
  EXPECT_NE(again.start_line().find("1 expired while down"), std::string::npos)
      << again.start_line();
  HttpClient client(again.port());
  EXPECT_EQ(client.Get("/v1/segments/t/users/u").body, R"({"member":false})");
  HttpResult history = client.Get("/v1/reports/history?segment=t");
  EXPECT_NE(history.body.find("u,t,remove,"), std::string::npos) << history.body;
}

TEST(ServerRestart, BadFlagsExitNonZeroWithAMessage) {
  TempDir dir;
  ServerProcess bad(dir.path(), {"--threads", "zero"});
  EXPECT_FALSE(bad.started());
  EXPECT_EQ(bad.Terminate(), 2);
}

}  // namespace
}  // namespace segd
