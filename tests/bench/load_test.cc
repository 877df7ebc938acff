// segd-load's parts: the latency histogram, the dataset and request generator, and the binary
// itself run for a moment against a real segd.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench/load/dataset_dump.h"
#include "bench/load/latency_histogram.h"
#include "bench/load/workload.h"
#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd::load {
namespace {

TEST(LatencyHistogram, PercentilesWithinABucketOfTheTruth) {
  LatencyHistogram h;
  for (uint64_t us = 1; us <= 10000; ++us) h.Record(us * 1000);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.max(), 10000000u);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    double truth = q * 10000 * 1000;
    double got = static_cast<double>(h.Percentile(q));
    EXPECT_GE(got, truth * 0.99) << q;
    EXPECT_LE(got, truth * 1.07) << q;  // 16 buckets per power of two
  }
  EXPECT_EQ(h.Percentile(1.0), 10000000u);
  LatencyHistogram other;
  other.Record(50'000'000'000);  // 50 s
  h.Merge(other);
  EXPECT_EQ(h.count(), 10001u);
  EXPECT_EQ(h.Percentile(1.0), 50'000'000'000u);
  EXPECT_EQ(LatencyHistogram().Percentile(0.5), 0u);
}

TEST(Workload, DatasetAndRequestsAreDeterministic) {
  Dataset a({.users = 1000, .segments = 10, .seed = 7});
  Dataset b({.users = 1000, .segments = 10, .seed = 7});
  Dataset c({.users = 1000, .segments = 10, .seed = 8});
  EXPECT_EQ(a.UserId(5), b.UserId(5));
  EXPECT_NE(a.UserId(5), c.UserId(5));
  EXPECT_EQ(a.UserId(5).size(), 14u);  // u- and 12 hex digits
  EXPECT_EQ(a.SegmentSize(1), 1000u);
  EXPECT_EQ(a.SegmentSize(4), 250u);
  std::set<uint64_t> members;
  a.ForEachMember(4, [&](uint64_t i) { members.insert(i); });
  EXPECT_EQ(members.size(), 250u);  // distinct

  RequestGenerator g1(a, {.workload = Workload::kCheck}, 3),
      g2(b, {.workload = Workload::kCheck}, 3);
  std::string r1, r2;
  for (int i = 0; i < 10; ++i) {
    g1.Append(&r1);
    g2.Append(&r2);
  }
  EXPECT_EQ(r1, r2);
  EXPECT_EQ(r1.rfind("GET /v1/segments/seg-", 0), 0u);
  std::string batch;
  RequestGenerator(a, {.workload = Workload::kBatchCheck, .batch = 3}, 1).Append(&batch);
  EXPECT_NE(batch.find("POST /v1/check"), std::string::npos);
  EXPECT_EQ(std::count(batch.begin(), batch.end(), '{'), 4);  // the object and three checks
  EXPECT_FALSE(ParseWorkload("nope").ok());
  EXPECT_EQ(*ParseWorkload("user-segments"), Workload::kUserSegments);
}

TEST(Workload, DecimalIdsAndAFixedSegment) {
  Dataset d({.users = 1000, .segments = 10, .ids = IdFormat::kDecimal});
  EXPECT_EQ(d.UserId(42), "000000000042");  // redis-benchmark's __rand_int__ spelling
  RequestGenerator check(d, {.workload = Workload::kCheck, .segment = 3}, 1);
  RequestGenerator add(d, {.workload = Workload::kAdd, .segment = 3}, 1);
  RequestGenerator query(d, {.workload = Workload::kQuery, .expr = "seg-2 AND seg-3"}, 1);
  for (int i = 0; i < 20; ++i) {
    std::string c, a;
    check.Append(&c);
    add.Append(&a);
    EXPECT_EQ(c.rfind("GET /v1/segments/seg-3/users/000000000", 0), 0u) << c;
    EXPECT_EQ(a.rfind("POST /v1/users/000000000", 0), 0u) << a;
    EXPECT_NE(a.find("{\"add\":[\"seg-3\"]}"), std::string::npos) << a;
  }
  std::string q;
  query.Append(&q);
  EXPECT_NE(q.find("{\"expr\":\"seg-2 AND seg-3\"}"), std::string::npos) << q;
}

// Reads RESP commands back: each is a vector of its arguments.
std::vector<std::vector<std::string>> ParseResp(const std::string& text) {
  std::vector<std::vector<std::string>> commands;
  size_t pos = 0;
  auto line = [&] {
    size_t end = text.find("\r\n", pos);
    std::string l = text.substr(pos, end - pos);
    pos = end + 2;
    return l;
  };
  while (pos < text.size()) {
    std::string head = line();
    EXPECT_EQ(head[0], '*');
    std::vector<std::string> args(std::stoul(head.substr(1)));
    for (std::string& arg : args) {
      std::string len = line();
      EXPECT_EQ(len[0], '$');
      arg = text.substr(pos, std::stoul(len.substr(1)));
      pos += arg.size();
      EXPECT_EQ(text.substr(pos, 2), "\r\n");
      pos += 2;
    }
    commands.push_back(std::move(args));
  }
  return commands;
}

std::string Dump(const Dataset& d, DumpFormat format, int64_t now) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  auto rows = DumpDataset(d, format, now, f);
  std::fclose(f);
  std::string text(buf, size);
  std::free(buf);
  EXPECT_TRUE(rows.ok()) << rows.status();
  return text;
}

// Every format must hold exactly the dataset's memberships, so that peers are loaded alike.
TEST(DatasetDump, EveryFormatHoldsTheSameMemberships) {
  Dataset d({.users = 2500, .segments = 7, .seed = 3, .ttl_seconds = 60});
  std::map<std::string, std::set<std::string>> want;
  uint64_t total = 0;
  for (uint32_t k = 1; k <= 7; ++k) {
    d.ForEachMember(k, [&](uint64_t i) { want[Dataset::SegmentName(k)].insert(d.UserId(i)); });
    total += d.SegmentSize(k);
  }

  std::map<std::string, std::set<std::string>> sets, zsets;
  for (const auto& cmd : ParseResp(Dump(d, DumpFormat::kRedisSets, 0))) {
    ASSERT_EQ(cmd[0], "SADD");
    ASSERT_LE(cmd.size(), 1002u);  // 1,000 members a command
    for (size_t i = 2; i < cmd.size(); ++i) sets[cmd[1]].insert(cmd[i]);
  }
  EXPECT_EQ(sets, want);
  for (const auto& cmd : ParseResp(Dump(d, DumpFormat::kRedisZsets, 1000))) {
    ASSERT_EQ(cmd[0], "ZADD");
    ASSERT_EQ(cmd[1].rfind("ttl:", 0), 0u);
    ASSERT_EQ(cmd.size() % 2, 0u);
    for (size_t i = 2; i < cmd.size(); i += 2) {
      EXPECT_EQ(cmd[i], "1060");  // now + TTL
      zsets[cmd[1].substr(4)].insert(cmd[i + 1]);
    }
  }
  EXPECT_EQ(zsets, want);

  std::map<std::string, std::string> id_of_index;
  std::string users = Dump(d, DumpFormat::kPgUsers, 0);
  EXPECT_EQ(std::count(users.begin(), users.end(), '\n'), 2500);
  for (size_t pos = 0; pos < users.size();) {
    size_t tab = users.find('\t', pos), end = users.find('\n', pos);
    id_of_index[users.substr(pos, tab - pos)] = users.substr(tab + 1, end - tab - 1);
    pos = end + 1;
  }
  std::map<std::string, std::set<std::string>> rows;
  std::string memberships = Dump(d, DumpFormat::kPgMemberships, 0);
  EXPECT_EQ(static_cast<uint64_t>(std::count(memberships.begin(), memberships.end(), '\n')), total);
  for (size_t pos = 0; pos < memberships.size();) {
    size_t t1 = memberships.find('\t', pos), t2 = memberships.find('\t', t1 + 1);
    size_t end = memberships.find('\n', pos);
    EXPECT_EQ(memberships.substr(t2 + 1, end - t2 - 1), "1970-01-01T00:01:00Z");
    rows["seg-" + memberships.substr(pos, t1 - pos)].insert(
        id_of_index.at(memberships.substr(t1 + 1, t2 - t1 - 1)));
    pos = end + 1;
  }
  EXPECT_EQ(rows, want);

  EXPECT_FALSE(ParseDumpFormat("csv").ok());
  std::FILE* sink = std::fopen("/dev/null", "w");
  EXPECT_FALSE(DumpDataset(Dataset({.users = 10}), DumpFormat::kRedisZsets, 0, sink).ok());
  std::fclose(sink);
}

// Runs the binary with --load and --json against a real server; every answer must be 200.
TEST(SegdLoad, LoadsADatasetAndReportsJson) {
  testutil::TempDir dir;
  testutil::ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  for (const char* workload : {"check", "mixed", "batch-check", "add"}) {
    std::string command =
        std::string(SEGD_LOAD_BINARY) + " --port " + std::to_string(server.port()) +
        " --users 2000 --segments 5 --duration 0.5 --connections 4 --batch 10"
        " --json --workload " +
        workload + (std::string(workload) == "check" ? " --load" : "") + " 2>/dev/null";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char line[4096] = {0};
    ASSERT_NE(std::fgets(line, sizeof line, pipe), nullptr) << workload;
    EXPECT_EQ(pclose(pipe), 0);
    std::string json = line;
    EXPECT_NE(json.find("\"workload\":\"" + std::string(workload) + "\""), std::string::npos);
    EXPECT_NE(json.find("\"errors\":0}"), std::string::npos) << json;
    EXPECT_EQ(json.find("\"requests\":0,"), std::string::npos) << json;
  }
  testutil::HttpClient client(server.port());
  EXPECT_EQ(client.Get("/v1/segments/seg-1/count").status, 200u);
}

TEST(Workload, EventsGoToZipfUsersWithAMixOfTypes) {
  Dataset d({.users = 100000, .segments = 1, .seed = 3});
  RequestGenerator g(
      d, {.workload = Workload::kEvents, .batch = 20000, .event_types = 5, .trait_fraction = 0.1},
      1);
  std::string request;
  g.Append(&request);
  EXPECT_EQ(request.rfind("POST /v1/events HTTP/1.1", 0), 0u);
  EXPECT_NE(request.find("Content-Type: application/x-ndjson"), std::string::npos);
  const std::string body = request.substr(request.find("\r\n\r\n") + 4);
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 20000);
  std::map<std::string, int> per_user, per_type;
  int with_traits = 0;
  for (size_t at = 0; at < body.size();) {
    const size_t end = body.find('\n', at);
    const std::string line = body.substr(at, end - at);
    at = end + 1;
    const size_t u = line.find("\"user_id\":\"") + 11;
    ++per_user[line.substr(u, line.find('"', u) - u)];
    const size_t t = line.find("\"type\":\"") + 8;
    ++per_type[line.substr(t, line.find('"', t) - t)];
    with_traits += line.find("\"traits\"") != std::string::npos;
  }
  EXPECT_EQ(per_type.size(), 5u);
  EXPECT_GT(per_type["ev-0"], per_type["ev-4"] * 2);  // Zipf-weighted types
  int busiest = 0;
  for (const auto& [user, n] : per_user) busiest = std::max(busiest, n);
  EXPECT_GT(busiest, 100);  // uniform users would give about 0.2 events each
  EXPECT_GT(with_traits, 1500);
  EXPECT_LT(with_traits, 2500);
  // One event a request is sent as JSON.
  std::string single;
  RequestGenerator(d, {.workload = Workload::kEvents, .batch = 1}, 1).Append(&single);
  EXPECT_NE(single.find("Content-Type: application/json"), std::string::npos);
  EXPECT_EQ(Dataset::Rule(1, 20), "count(ev-0, 7d) >= 3");
  EXPECT_EQ(Dataset::Rule(22, 20), "did(ev-1, 1h) AND NOT did(ev-4, 1d)");
}

TEST(SegdLoad, CreatesRulesAndSendsEvents) {
  testutil::TempDir dir;
  testutil::ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  const std::string command = std::string(SEGD_LOAD_BINARY) + " --port " +
                              std::to_string(server.port()) +
                              " --users 5000 --rules 5 --event-types 4 --workload events"
                              " --batch 200 --duration 0.5 --connections 2 --json 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[4096] = {0};
  ASSERT_NE(std::fgets(line, sizeof line, pipe), nullptr);
  EXPECT_EQ(pclose(pipe), 0);
  const std::string json = line;
  EXPECT_NE(json.find("\"errors\":0}"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"events_per_second\":0.0"), std::string::npos) << json;
  testutil::HttpClient client(server.port());
  for (int k = 1; k <= 5; ++k) {
    testutil::HttpResult r = client.Get("/v1/segments/rule-" + std::to_string(k));
    EXPECT_NE(r.body.find("\"state\":\"ready\""), std::string::npos) << r.body;
  }
  // Seven days of at least three events of the most frequent type: some users qualify.
  const std::string count = client.Get("/v1/segments/rule-1/count").body;
  EXPECT_NE(count.find("\"user_count\":"), std::string::npos) << count;
  EXPECT_EQ(count.find("\"user_count\":0}"), std::string::npos) << count;
}

// Runs segd-load and returns its exit status and what it wrote to stderr.
std::pair<int, std::string> RunLoad(const std::string& flags) {
  testutil::TempDir dir;
  const std::string err = dir.Sub("stderr");
  const std::string command = std::string(SEGD_LOAD_BINARY) + " " + flags + " >/dev/null 2>" + err;
  const int status = std::system(command.c_str());
  std::string text;
  if (std::FILE* f = std::fopen(err.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// A run that measures nothing but errors must not look like a result.
TEST(SegdLoad, FailsLoudlyWhenItCannotConnectOrMostAnswersAreErrors) {
  {
    // A port nothing listens on (a server started and stopped).
    testutil::TempDir dir;
    uint16_t port = 0;
    {
      testutil::ServerProcess server(dir.path());
      ASSERT_TRUE(server.started());
      port = server.port();
      server.Terminate();
    }
    auto [code, err] = RunLoad("--port " + std::to_string(port) + " --duration 0.2");
    EXPECT_EQ(code, 1);
    EXPECT_NE(err.find("cannot connect to 127.0.0.1:" + std::to_string(port)), std::string::npos)
        << err;
  }
  testutil::TempDir dir;
  testutil::ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  // Checks of segments that were never loaded: every answer is a 404.
  auto [code, err] = RunLoad("--port " + std::to_string(server.port()) +
                             " --users 100 --segments 2 --duration 0.3 --connections 2");
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("requests failed"), std::string::npos) << err;
  // The same after --load: a real result.
  auto [ok_code, ok_err] =
      RunLoad("--port " + std::to_string(server.port()) +
              " --users 100 --segments 2 --duration 0.3 --connections 2 --load");
  EXPECT_EQ(ok_code, 0) << ok_err;
}

}  // namespace
}  // namespace segd::load
