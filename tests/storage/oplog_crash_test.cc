// Crash test: a real writer process (oplog_crash_writer), which also takes snapshots back to
// back in a second thread, is killed with SIGKILL at random moments, again and again on the
// same data directory. After each kill the log must hold every
// acknowledged operation, and exactly the schedule's first K operations for some K (no gaps, no
// strays, nothing reordered); the recovered state must be the schedule's state after K, and the
// history indexes must list exactly those records (the time and segment index runs continue
// from request to request, and a kill cuts them anywhere).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

Child Spawn(const std::string& dir, const char* mode) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(SEGD_CRASH_WRITER, SEGD_CRASH_WRITER, dir.c_str(), mode, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  return {pid, fds[0]};
}

// Reads acks until `deadline`; returns the highest acknowledged operation number + 1 (0 if none).
uint64_t ReadAcks(int fd, std::chrono::steady_clock::time_point deadline, uint64_t acked,
                  std::string* partial) {
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      partial->append(buf, n);
      size_t nl;
      while ((nl = partial->find('\n')) != std::string::npos) {
        unsigned long long op;
        if (std::sscanf(partial->c_str(), "ack %llu", &op) == 1) acked = op + 1;
        partial->erase(0, nl + 1);
      }
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return acked;
}

// The period index (whole log) and each segment's index list exactly `whole`'s records of
// that filter, in (at, seq) order.
void ExpectIndexesMatch(const OpLog& log,
                        const std::vector<std::pair<uint64_t, engine::OpRecord>>& whole) {
  using Row = std::pair<uint64_t, engine::OpRecord>;
  std::vector<Row> in_time_order = whole;
  std::stable_sort(in_time_order.begin(), in_time_order.end(),
                   [](const Row& a, const Row& b) { return a.second.at < b.second.at; });
  for (int segment = -1; segment < 3; ++segment) {
    HistoryFilter filter;
    if (segment >= 0) filter.segments = {static_cast<engine::SegmentId>(segment)};
    std::vector<Row> want, got;
    for (const Row& row : in_time_order) {
      if (segment < 0 || row.second.segment == static_cast<engine::SegmentId>(segment)) {
        want.push_back(row);
      }
    }
    ASSERT_TRUE(log.ScanHistory(filter,
                                [&](uint64_t seq, const engine::OpRecord& r) {
                                  got.emplace_back(seq, r);
                                  return true;
                                })
                    .ok());
    ASSERT_EQ(got.size(), want.size()) << "segment filter " << segment;
    ASSERT_TRUE(got == want) << "segment filter " << segment;
  }
}

TEST(OpLogCrashTest, KillNineNeverLosesAcknowledgedOperations) {
  testutil::TempDir dir;
  const std::string data = dir.Sub("data");
  std::mt19937_64 rng(2026);
  uint64_t acked_total = 0;
  int recovered_from_snapshot = 0;
  const int kKills = 24;
  for (int round = 0; round < kKills; ++round) {
    const char* mode = (round % 2) ? "fsync" : "process";
    Child child = Spawn(data, mode);
    std::string partial;
    uint64_t acked = 0;
    if (round % 2 == 1) {
      // Odd rounds: wait (up to 20 s, for slow sanitizer builds) for the writer to be running,
      // so that progress does not depend on how fast it starts. Even rounds may kill it while
      // it is still starting or recovering.
      auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (acked == 0 && std::chrono::steady_clock::now() < limit) {
        acked = ReadAcks(child.out, std::chrono::steady_clock::now() + std::chrono::milliseconds(5),
                         acked, &partial);
      }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(30 + rng() % 300);
    acked = ReadAcks(child.out, deadline, acked, &partial);
    kill(child.pid, SIGKILL);
    int status = 0;
    waitpid(child.pid, &status, 0);
    close(child.out);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited on its own, status " << status;
    acked_total = std::max(acked_total, acked);

    // Verify: records 1..K are exactly the schedule's operations 0..K-1, K >= acked.
    auto log = OpLog::Open(data, {});
    ASSERT_TRUE(log.ok()) << log.status();
    uint64_t k = (*log)->next_seq() - 1;
    ASSERT_GE(k, acked_total) << "round " << round << ": acknowledged operations lost";
    uint64_t expect = 0;
    std::vector<std::pair<uint64_t, engine::OpRecord>> whole;
    ASSERT_TRUE((*log)
                    ->ForEachRecord(
                        1,
                        [&](uint64_t seq, const engine::OpRecord& r) {
                          whole.emplace_back(seq, r);
                          EXPECT_EQ(seq, expect + 1);
                          bool remove = expect % 4 == 3;
                          EXPECT_EQ(r.op, remove ? engine::OpKind::kRemove : engine::OpKind::kAdd)
                              << "operation " << expect;
                          ++expect;
                          return true;
                        })
                    .ok());
    ASSERT_EQ(expect, k);
    ASSERT_NO_FATAL_FAILURE(ExpectIndexesMatch(**log, whole));
    engine::Engine engine(engine::EngineOptions{nullptr, log->get(), 1});
    auto recovered = (*log)->Recover(engine);
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    if (recovered->snapshot_seq > 0) ++recovered_from_snapshot;
    // The schedule's state after K operations.
    std::set<uint64_t> members[3];
    for (uint64_t n = 0; n < k; ++n) {
      if (n % 4 == 3) {
        members[(n - 1) % 3].erase(n - 1);
      } else {
        members[n % 3].insert(n);
      }
    }
    for (int s = 0; s < 3; ++s) {
      std::string name = "s" + std::to_string(s);
      auto count = engine.Count(name);
      if (!count.ok()) {
        // Killed while creating the segments: nothing else can have happened yet.
        ASSERT_EQ(k, 0u) << name << " missing after operations";
        continue;
      }
      ASSERT_EQ(*count, members[s].size()) << name << " round " << round;
    }
    for (uint64_t n = (k > 50 ? k - 50 : 0); n < k; ++n) {
      bool member = members[n % 3].count(n) > 0;
      ASSERT_EQ(engine.Check("s" + std::to_string(n % 3), "u" + std::to_string(n))->member, member)
          << "u" << n;
    }
  }
  EXPECT_GT(acked_total, 100u) << "the writer made too little progress to test anything";
  EXPECT_GT(recovered_from_snapshot, kKills / 2) << "snapshots were not exercised";
}

}  // namespace
}  // namespace segd::storage
