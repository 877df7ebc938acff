// Faults an operator meets, against the real server: the disk filling up (on a small tmpfs),
// the data directory moved or its log files lost, expiry lateness under snapshots and across
// restarts, and clients too slow to read their reports.

#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
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
using testutil::ServerProcess;
using testutil::TempDir;

using Clock = std::chrono::system_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

bool IsMember(HttpClient& client, const std::string& segment, const std::string& user) {
  HttpResult r = client.Get("/v1/segments/" + segment + "/users/" + user);
  return r.status == 200 && r.body.find("\"member\":true") != std::string::npos;
}

// A tmpfs of `megabytes` mounted on a fresh directory for the test's life. mounted() is false
// where mounting is not allowed (not root, or no mount namespace rights).
class SmallFilesystem {
 public:
  explicit SmallFilesystem(int megabytes) {
    const std::string options = "size=" + std::to_string(megabytes) + "m";
    mounted_ = mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallFilesystem() {
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  std::string Sub(const std::string& name) const { return dir_.Sub(name); }

  // Writes `megabytes` of zeros to `name` (stops early when the filesystem is full).
  void Fill(const std::string& name, int megabytes) const {
    std::ofstream out(Sub(name), std::ios::binary);
    const std::string chunk(1 << 20, '\0');
    for (int i = 0; i < megabytes && out; ++i) out.write(chunk.data(), chunk.size());
  }

 private:
  TempDir dir_;
  bool mounted_ = false;
};

std::string ImportBody(const std::string& prefix, int first, int n) {
  std::string lines;
  for (int i = first; i < first + n; ++i) lines += prefix + std::to_string(i) + "\n";
  return lines;
}

// Fills a 48 MiB filesystem through imports, single writes, snapshots every 20,000 records and
// bursts of one-second TTLs, until segd refuses writes for the disk; then checks that reads
// went on, that writes come back by themselves once space is freed, that a start on a
// completely full disk serves reads, and that every acknowledged write survives.
TEST(DiskFull, WritesStopAtTheReserveReadsGoOnAndNothingAcknowledgedIsLost) {
  SmallFilesystem fs(48);
  if (!fs.mounted()) GTEST_SKIP() << "mounting a tmpfs needs root; this test cannot run here";
  fs.Fill("ballast", 12);  // freed later to give space back
  const std::string data = fs.Sub("data");
  const std::vector<std::string> flags = {"--snapshot-every", "20000", "--min-free-disk", "8MiB"};

  std::vector<int> imported_batches;     // acknowledged imports into "keep"
  std::vector<std::string> single_adds;  // acknowledged single adds into "keep"
  bool refused_for_disk = false;
  {
    ServerProcess server(data, flags);
    ASSERT_TRUE(server.started()) << server.start_line();
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"keep"})").status, 201u);
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"brief","ttl_seconds":1})").status, 201u);
    for (int batch = 0; batch < 400 && !refused_for_disk; ++batch) {
      HttpResult r =
          client.Request("POST", "/v1/segments/keep/users:import",
                         ImportBody("long-user-name-number-", batch * 20000, 20000), "text/plain");
      if (r.status == 200) {
        imported_batches.push_back(batch);
      } else {
        ASSERT_EQ(r.status, 503u) << r.body;
        EXPECT_NE(r.body.find("disk almost full"), std::string::npos) << r.body;
        refused_for_disk = true;
      }
      // An expiry burst a second from now, and single writes.
      client.Request("POST", "/v1/segments/brief/users:import",
                     ImportBody("brief-", batch * 500, 500), "text/plain");
      for (int k = 0; k < 5; ++k) {
        const std::string user = "single-" + std::to_string(batch) + "-" + std::to_string(k);
        HttpResult add = client.Post("/v1/users/" + user + "/segments", R"({"add":["keep"]})");
        if (add.status == 200) single_adds.push_back(user);
      }
      // Reads are answered throughout.
      ASSERT_EQ(client.Get("/health").status, 200u);
      if (!imported_batches.empty()) {
        EXPECT_TRUE(
            IsMember(client, "keep",
                     "long-user-name-number-" + std::to_string(imported_batches.back() * 20000)));
      }
    }
    ASSERT_TRUE(refused_for_disk) << "the disk never filled";
    std::printf("writes refused for the disk after %zu imports of 20,000 and %zu single adds\n",
                imported_batches.size(), single_adds.size());
    ASSERT_GE(imported_batches.size(), 5u) << "refused too early to test much";
    HttpResult health = client.Get("/health");
    EXPECT_NE(health.body.find("\"disk_free_bytes\":"), std::string::npos) << health.body;

    // Space comes back: writes resume by themselves within a few ticks.
    std::filesystem::remove(fs.Sub("ballast"));
    bool resumed = false;
    for (int i = 0; i < 50 && !resumed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      resumed = client.Post("/v1/users/after-space/segments", R"({"add":["keep"]})").status == 200;
    }
    EXPECT_TRUE(resumed);
    if (resumed) single_adds.push_back("after-space");
    EXPECT_EQ(server.Terminate(), 0);
  }

  // A start on a disk with no space at all: reads are served, writes refused with the reason.
  fs.Fill("ballast", 64);
  {
    ServerProcess server(data, flags);
    ASSERT_TRUE(server.started()) << "no start on a full disk";
    HttpClient client(server.port());
    EXPECT_TRUE(IsMember(client, "keep", single_adds.front()));
    HttpResult refused = client.Post("/v1/users/on-full-disk/segments", R"({"add":["keep"]})");
    EXPECT_EQ(refused.status, 503u) << refused.body;
    HttpResult health = client.Get("/health");
    EXPECT_NE(health.body.find("\"writes\":\"refused\""), std::string::npos) << health.body;
    EXPECT_EQ(server.Terminate(), 0);
  }

  // Space back: everything acknowledged is there, and writes work.
  std::filesystem::remove(fs.Sub("ballast"));
  ServerProcess server(data, flags);
  ASSERT_TRUE(server.started()) << server.start_line();
  HttpClient client(server.port());
  for (const std::string& user : single_adds) EXPECT_TRUE(IsMember(client, "keep", user)) << user;
  for (int batch : imported_batches) {
    for (int i : {0, 9999, 19999}) {
      const std::string user = "long-user-name-number-" + std::to_string(batch * 20000 + i);
      EXPECT_TRUE(IsMember(client, "keep", user)) << user;
    }
  }
  EXPECT_EQ(client.Post("/v1/users/at-the-end/segments", R"({"add":["keep"]})").status, 200u);
  EXPECT_EQ(server.Terminate(), 0);
}

// A live data directory renamed away, a second segd started in its place and written to: the
// first one notices, stops writing, and its clean stop touches nothing of the second's; the
// second, killed, recovers all it acknowledged.
TEST(DataDirectory, AMovedDirectoryIsLeftAloneAndTheNewOneKeepsItsData) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  ServerProcess first(data);
  ASSERT_TRUE(first.started());
  HttpClient to_first(first.port());
  ASSERT_EQ(to_first.Post("/v1/segments", R"({"name":"s"})").status, 201u);
  ASSERT_EQ(to_first.Post("/v1/users/early/segments", R"({"add":["s"]})").status, 200u);

  // The same directory while the first runs: refused.
  {
    ServerProcess twin(data);
    EXPECT_FALSE(twin.started());
    EXPECT_NE(twin.Terminate(), 0);
  }

  std::filesystem::rename(data, dir.Sub("data.old"));
  uint64_t acknowledged = 0;
  {
    ServerProcess second(data);
    ASSERT_TRUE(second.started());
    HttpClient to_second(second.port());
    ASSERT_EQ(to_second.Post("/v1/segments", R"({"name":"s"})").status, 201u);
    for (int batch = 0; batch < 4; ++batch) {
      HttpResult r = to_second.Request("POST", "/v1/segments/s/users:import",
                                       ImportBody("second-", batch * 20000, 20000), "text/plain");
      ASSERT_EQ(r.status, 200u);
      acknowledged += 20000;
    }
    // The first one sees its directory gone within a tick and refuses writes, loudly.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    HttpResult late = to_first.Post("/v1/users/late/segments", R"({"add":["s"]})");
    EXPECT_EQ(late.status, 503u);
    EXPECT_NE(late.body.find("moved or deleted"), std::string::npos) << late.body;
    EXPECT_TRUE(IsMember(to_first, "s", "early"));  // reads go on from memory
    // Its stop is not clean (no snapshot where it no longer belongs), and deletes nothing.
    EXPECT_EQ(first.Terminate(), 1);
    second.Kill();
  }
  ServerProcess again(data);
  ASSERT_TRUE(again.started());
  EXPECT_NE(again.start_line().find("recovered " + std::to_string(acknowledged) + " memberships"),
            std::string::npos)
      << again.start_line();
}

// Log files deleted while segd is down: the next start refuses instead of starting empty.
TEST(DataDirectory, LostLogFilesStopTheStartInsteadOfAnEmptyRecovery) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  {
    ServerProcess server(data);
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"s"})").status, 201u);
    for (int i = 0; i < 50; ++i) {
      ASSERT_EQ(
          client.Post("/v1/users/u" + std::to_string(i) + "/segments", R"({"add":["s"]})").status,
          200u);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a tick records the position
    server.Kill();
  }
  for (const auto& entry : std::filesystem::directory_iterator(data + "/log")) {
    if (entry.path().extension() == ".log") std::filesystem::remove(entry.path());
  }
  {
    ServerProcess server(data);
    EXPECT_FALSE(server.started()) << server.start_line();
    EXPECT_EQ(server.Terminate(), 1);
  }
  // Accepting the loss, as the message says: delete segd.state.
  std::filesystem::remove(data + "/segd.state");
  ServerProcess server(data);
  EXPECT_TRUE(server.started());
}

// Lateness of one-second TTLs: forty of them added 37 ms apart (so that their expiries do not
// sit at whole seconds), all polled together until each ends, while imports keep snapshots
// (every 300 records) running; then memberships that fell due while the server was down must
// be gone by the first answer after a restart.
TEST(Expiry, MembershipsEndWithinASecondUnderSnapshotsAndAfterRestarts) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  const std::vector<std::string> flags = {"--snapshot-every", "300", "--snapshot-interval", "1s"};
  constexpr int kUsers = 40;
  std::vector<int64_t> lateness_ms;
  {
    ServerProcess server(data, flags);
    ASSERT_TRUE(server.started());
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"t"})").status, 201u);
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"load"})").status, 201u);
    std::vector<int64_t> expires_at(kUsers, 0);
    std::vector<bool> ended(kUsers, false);
    std::string checks;
    for (int i = 0; i < kUsers; ++i) {
      checks += std::string(i ? "," : "") + R"({"segment":"t","user_id":"ttl-)" +
                std::to_string(i) + "\"}";
    }
    const std::string body = R"({"checks":[)" + checks + "]}";
    int added = 0;
    int left = kUsers;
    // Polls every added user once, noting those that ended.
    auto poll = [&] {
      HttpResult r = client.Post("/v1/check", body);
      ASSERT_EQ(r.status, 200u) << r.body;
      const int64_t now = NowMs();
      // {"results":[true,false,…]}: the i-th answer.
      size_t at = r.body.find('[') + 1;
      for (int i = 0; i < kUsers; ++i) {
        const bool member = r.body.compare(at, 4, "true") == 0;
        at = r.body.find_first_of(",]", at) + 1;
        if (i < added && !member && !ended[i]) {
          ended[i] = true;
          --left;
          lateness_ms.push_back(std::max<int64_t>(0, now - expires_at[i]));
        }
      }
    };
    auto last_add = std::chrono::steady_clock::now();
    while (left > 0) {
      if (added < kUsers &&
          std::chrono::steady_clock::now() - last_add >= std::chrono::milliseconds(37)) {
        // The server's expires_at is its time of the add + 1 s, no earlier than this:
        // lateness measured from here is never smaller than the real one.
        expires_at[added] = NowMs() + 1000;
        last_add = std::chrono::steady_clock::now();
        ASSERT_EQ(client
                      .Post("/v1/users/ttl-" + std::to_string(added) + "/segments",
                            R"({"add":[{"name":"t","ttl_seconds":1}]})")
                      .status,
                  200u);
        ++added;
        // Writes that keep snapshots going.
        client.Request("POST", "/v1/segments/load/users:import",
                       ImportBody("l" + std::to_string(added) + "-", 0, 100), "text/plain");
      }
      poll();
      if (HasFatalFailure()) return;
      ASSERT_TRUE(added == 0 || NowMs() < expires_at[added - 1] + 10000)
          << left << " never expired";
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
    // Memberships due while the server is down.
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(client
                    .Post("/v1/users/down-" + std::to_string(i) + "/segments",
                          R"({"add":[{"name":"t","ttl_seconds":1}]})")
                    .status,
                200u);
    }
    server.Kill();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ServerProcess again(data, flags);
  ASSERT_TRUE(again.started());
  HttpClient client(again.port());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(IsMember(client, "t", "down-" + std::to_string(i))) << "overdue at start";
  }
  std::sort(lateness_ms.begin(), lateness_ms.end());
  const int64_t worst = lateness_ms.back();
  std::printf("expiry lateness over %zu TTLs: median %lld ms, worst %lld ms\n", lateness_ms.size(),
              static_cast<long long>(lateness_ms[lateness_ms.size() / 2]),
              static_cast<long long>(worst));
  EXPECT_LE(worst, 1000) << "the contract: a membership ends within a second of expires_at";
}

// A connection that asks for a report and then reads nothing: its receive buffer is made as
// small as the kernel allows before connecting, so that the server's writes stall at once.
class StalledReader {
 public:
  StalledReader(uint16_t port, const std::string& target) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int small = 1;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const std::string request = testutil::RawRequest("GET", target);
    connected_ = connected_ &&
                 write(fd_, request.data(), request.size()) == static_cast<ssize_t>(request.size());
  }
  ~StalledReader() { close(fd_); }
  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// More clients than report workers ask for a large report and never read it. Another client's
// report and a user's history (which share those workers) must still be answered in full,
// long before the stalled connections time out.
TEST(SlowClients, ReadersThatStallHoldNoWorker) {
  TempDir dir;
  // The stalled connections would hold a blocked worker for the whole read timeout.
  ServerProcess server(dir.Sub("data"), {"--read-timeout", "600s"});
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"big"})").status, 201u);
  // About 16 MB of CSV: several times what socket buffers and the server's queue hold.
  constexpr int kUsers = 250'000;
  ASSERT_EQ(client
                .Request("POST", "/v1/segments/big/users:import",
                         ImportBody("a-rather-long-user-name-", 0, kUsers), "text/plain")
                .status,
            200u);
  std::vector<std::unique_ptr<StalledReader>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(
        std::make_unique<StalledReader>(server.port(), "/v1/reports/history?segment=big"));
    ASSERT_TRUE(stalled.back()->connected());
  }
  // Give the stalled reports time to fill every buffer between them and their readers.
  std::this_thread::sleep_for(std::chrono::seconds(2));

  // A fresh client, with a deadline far below the read timeout: a stall fails here.
  auto fetch = std::async(std::launch::async, [port = server.port()] {
    HttpClient reader(port);
    HttpResult report = reader.Get("/v1/reports/history?segment=big");
    HttpResult history = reader.Get("/v1/users/a-rather-long-user-name-7/segments");
    return std::make_pair(report, history);
  });
  if (fetch.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    server.Kill();  // ends the fetch, which the future's destructor waits for
    FAIL() << "no answer within 60 s: the stalled readers hold every worker";
  }
  auto [report, history] = fetch.get();
  ASSERT_EQ(report.status, 200u);
  EXPECT_EQ(std::count(report.body.begin(), report.body.end(), '\n'), kUsers + 1);
  EXPECT_EQ(history.status, 200u);
}

}  // namespace
}  // namespace segd
