// segd-load's parts: the latency histogram, the dataset and request generator, and the binary
// itself run for a moment against a real segd.

#include <cstdio>
#include <algorithm>
#include <set>
#include <string>

#include "bench/load/latency_histogram.h"
#include "bench/load/workload.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"
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

  RequestGenerator g1(a, {.workload = Workload::kCheck}, 3), g2(b, {.workload = Workload::kCheck}, 3);
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

// Runs the binary with --load and --json against a real server; every answer must be 200.
TEST(SegdLoad, LoadsADatasetAndReportsJson) {
  testutil::TempDir dir;
  testutil::ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  for (const char* workload : {"check", "mixed", "batch-check"}) {
    std::string command = std::string(SEGD_LOAD_BINARY) + " --port " +
                          std::to_string(server.port()) +
                          " --users 2000 --segments 5 --duration 0.5 --connections 4 --batch 10"
                          " --json --workload " + workload +
                          (std::string(workload) == "check" ? " --load" : "") + " 2>/dev/null";
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

}  // namespace
}  // namespace segd::load
