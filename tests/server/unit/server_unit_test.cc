// Unit tests of the server's parts that need no socket: JSON writing, routing and
// percent-decoding, time and size parsing, flags, metrics.

#include "gtest/gtest.h"
#include "absl/strings/ascii.h"
#include "server/api.h"
#include "server/config.h"
#include "server/json_writer.h"
#include "server/metrics.h"
#include "server/openapi.h"
#include "server/router.h"
#include "server/time_text.h"

namespace segd::server {
namespace {

TEST(JsonWriter, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  JsonWriter json(&out);
  json.BeginObject().Key("k\"").String(std::string("a\"b\\c\n\t\x01\x7f\xc3\xa9", 11));
  json.Key("n").Null().Key("list").BeginArray().Int(-3).Uint(4).Bool(false).Double(0.25);
  json.EndArray().EndObject();
  EXPECT_EQ(out, "{\"k\\\"\":\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\xc3\xa9\",\"n\":null,"
                 "\"list\":[-3,4,false,0.25]}");
}

TEST(JsonWriter, ReplacesBytesThatAreNotUtf8) {
  std::string out;
  AppendJsonEscaped(&out, std::string("/qu\xb4ry \xe2\x82\xac \xed\xa0\x80 \xf4\x90\x80\x80 \xc3", 21));
  EXPECT_EQ(out, "/qu\\ufffdry \xe2\x82\xac \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd "
                 "\\ufffd");
}

TEST(JsonWriter, WritesTimesAndNullTimes) {
  std::string out;
  JsonWriter json(&out);
  json.BeginArray().Time(1795341600123, 0).Time(0, 0).EndArray();
  EXPECT_EQ(out, "[\"2026-11-22T10:00:00.123Z\",null]");
}

TEST(Router, MatchesCapturesAndReportsAllowedMethods) {
  Router router;
  router.Add("GET", "/v1/segments/{name}/users/{user_id}", 1);
  router.Add("POST", "/v1/segments/{name}/users:import", 2);
  router.Add("GET", "/v1/reports/{id}.csv", 3);
  router.Add("DELETE", "/v1/segments/{name}/users/{user_id}", 4);

  RouteMatch m = router.Match("GET", "/v1/segments/sport/users/a%2Fb%40c%20d");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route, 1);
  EXPECT_EQ(m.params, (std::vector<std::string>{"sport", "a/b@c d"}));

  m = router.Match("POST", "/v1/segments/sport/users:import");
  EXPECT_EQ(m.route, 2);
  m = router.Match("GET", "/v1/reports/abc.csv");
  EXPECT_EQ(m.params, (std::vector<std::string>{"abc"}));
  EXPECT_EQ(router.Match("GET", "/v1/reports/abc.txt").kind, RouteMatch::Kind::kNoPath);

  m = router.Match("PUT", "/v1/segments/s/users/u");
  EXPECT_EQ(m.kind, RouteMatch::Kind::kWrongMethod);
  EXPECT_EQ(m.allow, "GET, DELETE");
  EXPECT_EQ(router.Match("GET", "/v1/segments/s/users/%4").error.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Match("GET", "relative").kind, RouteMatch::Kind::kNoPath);
  EXPECT_EQ(router.Match("GET", "/a/b/c/d/e/f/g/h/i/j").kind, RouteMatch::Kind::kNoPath);
}

TEST(PercentDecode, PlusIsSpaceOnlyInQueries) {
  std::string out;
  ASSERT_TRUE(PercentDecode("a+b%2B", true, &out).ok());
  EXPECT_EQ(out, "a b+");
  ASSERT_TRUE(PercentDecode("a+b", false, &out).ok());
  EXPECT_EQ(out, "a+b");
  EXPECT_FALSE(PercentDecode("%", false, &out).ok());
  EXPECT_FALSE(PercentDecode("%g0", false, &out).ok());
  EXPECT_FALSE(PercentDecode("ab%2", false, &out).ok());
}

TEST(TimeText, ParsesRfc3339AndCutsToTheMillisecond) {
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.123Z"), 1795341600123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.123999Z"), 1795341600123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.5Z"), 1795341600500);
  EXPECT_EQ(*ParseRfc3339("2026-11-22t12:00:00+02:00"), 1795341600000);
  EXPECT_EQ(*ParseRfc3339("1969-12-31T23:59:59.999Z"), -1);
  for (const char* bad : {"", "2026-11-22", "2026-11-22T10:00:00", "2026-02-30T00:00:00Z",
                          "2026-11-22T24:00:00Z", "2026-11-22T10:00:00.Z",
                          "2026-11-22T10:00:00Zjunk", "2026-11-22 10:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(TimeText, MonthsDurationsAndSizes) {
  auto sept = ParseMonth("2023-09");
  ASSERT_TRUE(sept.ok());
  EXPECT_EQ(sept->first, *ParseRfc3339("2023-09-01T00:00:00Z"));
  EXPECT_EQ(sept->second, *ParseRfc3339("2023-10-01T00:00:00Z"));
  EXPECT_EQ(ParseMonth("2023-12")->second, *ParseRfc3339("2024-01-01T00:00:00Z"));
  EXPECT_FALSE(ParseMonth("2023-9").ok());
  EXPECT_FALSE(ParseMonth("2023-00").ok());

  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationSeconds("30m"), 1800);
  EXPECT_EQ(*ParseDurationSeconds("4h"), 14400);
  EXPECT_EQ(*ParseDurationSeconds("7d"), 604800);
  EXPECT_EQ(*ParseDurationSeconds("15"), 15);
  for (const char* bad : {"", "h", "0s", "-5s", "1.5h", "4w", "+4h"}) {
    EXPECT_FALSE(ParseDurationSeconds(bad).ok()) << bad;
  }
  EXPECT_EQ(*ParseByteSize("1MiB"), 1u << 20);
  EXPECT_EQ(*ParseByteSize("512KiB"), 512u << 10);
  EXPECT_EQ(*ParseByteSize("2048"), 2048u);
  EXPECT_FALSE(ParseByteSize("0").ok());
  EXPECT_FALSE(ParseByteSize("1TiB").ok());
}

const char* NoEnv(const char*) { return nullptr; }
const char* SomeEnv(const char* name) {
  std::string n = name;
  if (n == "SEGD_PORT") return "9000";
  if (n == "SEGD_REPORT_TTL") return "30m";
  return nullptr;
}

TEST(ServerConfig, FlagsOverrideEnvironmentAndBadValuesAreNamed) {
  auto parsed = ParseServerConfig({"--port=7000", "--threads", "3", "--durability", "fsync",
                                   "--max-body", "2MiB", "--read-timeout", "5s",
                                   "--history-retention", "90d"},
                                  SomeEnv);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 7000);
  EXPECT_EQ(parsed->config.threads, 3u);
  EXPECT_EQ(parsed->config.durability, storage::Durability::kFsync);
  EXPECT_EQ(parsed->config.max_body, 2u << 20);
  EXPECT_EQ(parsed->config.read_timeout_seconds, 5);
  EXPECT_EQ(parsed->config.report_ttl_seconds, 1800);  // from the environment
  EXPECT_EQ(parsed->config.history_retention_seconds, 90 * 86400);
  EXPECT_EQ(ParseServerConfig({"--history-retention", "forever"}, NoEnv)
                ->config.history_retention_seconds,
            0);
  EXPECT_FALSE(ParseServerConfig({"--history-retention", "0"}, NoEnv).ok());
  EXPECT_EQ(ParseServerConfig({}, NoEnv)->config.snapshot_every_records, 1'000'000u);
  EXPECT_EQ(ParseServerConfig({"--snapshot-every", "0"}, NoEnv)->config.snapshot_every_records,
            0u);
  EXPECT_FALSE(ParseServerConfig({"--snapshot-every", "-5"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"--snapshot-every", "1e6"}, NoEnv).ok());

  EXPECT_TRUE(ParseServerConfig({"--help"}, NoEnv)->help);
  auto bad = ParseServerConfig({"--port", "70000"}, NoEnv);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--port"), absl::string_view::npos);
  EXPECT_FALSE(ParseServerConfig({"--nope"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"--port"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"--durability", "sometimes"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"stray"}, NoEnv).ok());
  EXPECT_GE(ParseServerConfig({}, NoEnv)->config.threads, 1u);
}

TEST(Metrics, CountsByRouteAndStatusAndEstimatesQuantiles) {
  Metrics metrics({"check", "count"});
  for (int i = 0; i < 100; ++i) metrics.Record(0, 200, 1500);  // in the 1–2 µs bucket
  metrics.Record(0, 404, 800);
  metrics.Record(-1, 404, 100);
  std::string text;
  metrics.AppendPrometheus(&text);
  EXPECT_NE(text.find("segd_http_requests_total{route=\"check\",status=\"200\"} 100"),
            std::string::npos);
  EXPECT_NE(text.find("segd_http_requests_total{route=\"unmatched\",status=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("segd_http_request_duration_seconds_bucket{route=\"check\",le=\"2e-06\"} 101"),
            std::string::npos)
      << text;
  double median = metrics.EstimateQuantileNs(0, 0.5);
  EXPECT_GT(median, 1000);
  EXPECT_LE(median, 2000);
  EXPECT_EQ(metrics.EstimateQuantileNs(1, 0.5), 0);
}

TEST(OpenApi, DescribesEveryRouteWithItsMethod) {
  std::string yaml = kOpenApiYaml;
  for (const auto& [method, pattern] : Api::Routes()) {
    size_t path = yaml.find("\n  " + pattern + ":\n");
    ASSERT_NE(path, std::string::npos) << pattern << " is missing from docs/openapi.yaml";
    size_t next_path = yaml.find("\n  /", path + 1);
    size_t op = yaml.find("\n    " + absl::AsciiStrToLower(method) + ":\n", path);
    EXPECT_LT(op, next_path) << method << " " << pattern << " is missing from docs/openapi.yaml";
  }
}

}  // namespace
}  // namespace segd::server
