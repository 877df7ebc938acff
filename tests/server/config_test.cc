// Unit tests: Flags and environment variables.

#include "server/config.h"

#include <optional>
#include <string>
#include <vector>

#include "base/cpu_budget.h"
#include "gtest/gtest.h"

namespace segd::server {
namespace {

const char* NoEnv(const char*) { return nullptr; }
const char* SomeEnv(const char* name) {
  std::string n = name;
  if (n == "SEGD_PORT") return "9000";
  if (n == "SEGD_REPORT_TTL") return "30m";
  return nullptr;
}

TEST(ServerConfig, FlagsOverrideEnvironmentAndBadValuesAreNamed) {
  auto parsed =
      ParseServerConfig({"--port=7000", "--threads", "3", "--durability", "fsync", "--max-body",
                         "2MiB", "--read-timeout", "5s", "--history-retention", "90d"},
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
  EXPECT_EQ(ParseServerConfig({"--snapshot-every", "0"}, NoEnv)->config.snapshot_every_records, 0u);
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

  EXPECT_EQ(ParseServerConfig({}, NoEnv)->config.rocksdb_memory, 256u << 20);
  EXPECT_EQ(ParseServerConfig({"--rocksdb-memory", "1GiB"}, NoEnv)->config.rocksdb_memory,
            1u << 30);
  auto small = ParseServerConfig({"--rocksdb-memory", "1MiB"}, NoEnv);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("from 16MiB to 1TiB"), absl::string_view::npos);
  EXPECT_FALSE(ParseServerConfig({"--rocksdb-memory", "lots"}, NoEnv).ok());
}

TEST(ServerConfig, RespFlags) {
  auto defaults = ParseServerConfig({}, NoEnv);
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->config.resp_port.has_value());  // off unless asked for
  EXPECT_EQ(defaults->config.resp_max_members, 10000u);
  EXPECT_EQ(defaults->config.resp_idle_timeout_seconds, 0);
  auto set = ParseServerConfig(
      {"--resp-port", "0", "--resp-max-members", "100000", "--resp-idle-timeout", "5m"}, NoEnv);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->config.resp_port, std::optional<uint16_t>(0));
  EXPECT_EQ(set->config.resp_max_members, 100000u);
  EXPECT_EQ(set->config.resp_idle_timeout_seconds, 300);
  EXPECT_FALSE(ParseServerConfig({"--resp-port", "off"}, NoEnv)->config.resp_port.has_value());
  EXPECT_EQ(
      ParseServerConfig({"--resp-idle-timeout", "never"}, NoEnv)->config.resp_idle_timeout_seconds,
      0);
  for (std::vector<std::string> bad : {std::vector<std::string>{"--resp-port", "70000"},
                                       {"--resp-port", "-1"},
                                       {"--resp-max-members", "0"},
                                       {"--resp-max-members", "100001"},
                                       {"--resp-idle-timeout", "0"},
                                       {"--resp-idle-timeout", "soon"}}) {
    auto parsed = ParseServerConfig(bad, NoEnv);
    ASSERT_FALSE(parsed.ok()) << bad[0] << " " << bad[1];
    EXPECT_NE(parsed.status().message().find(bad[0]), absl::string_view::npos) << parsed.status();
  }
}

// The flag table's defaults are the ones a default-constructed ServerConfig holds (the
// library's callers and the binary agree), and --help names each of them.
TEST(ServerConfig, TheTablesDefaultsAreTheStructsAndHelpShowsThem) {
  auto parsed = ParseServerConfig({}, NoEnv);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ServerConfig expected;
  expected.threads = DefaultIoThreads(UsableCores());  // computed from the CPU budget
  expected.auth_keys = false;                          // computed: off on a loopback --bind
  EXPECT_TRUE(parsed->config == expected);
  const std::string& usage = ServerUsage();
  for (const char* shown : {"--bind ADDR", "(default 127.0.0.1; SEGD_BIND)", "SEGD_PORT",
                            "SEGD_CORS_ORIGIN", "--version", "(default 256MiB;"}) {
    EXPECT_NE(usage.find(shown), std::string::npos) << shown;
  }
  for (size_t start = 0, end; start < usage.size(); start = end + 1) {
    end = usage.find('\n', start);
    EXPECT_LE(end - start, 96u) << usage.substr(start, end - start);
  }
}

TEST(ServerConfig, AccessControlIsOnOffLoopbackAndOffThereOnlyWhenInsecure) {
  EXPECT_FALSE(ParseServerConfig({}, NoEnv)->config.AuthOn());
  EXPECT_FALSE(ParseServerConfig({"--bind", "::1"}, NoEnv)->config.AuthOn());
  EXPECT_FALSE(ParseServerConfig({"--bind", "127.0.0.2"}, NoEnv)->config.AuthOn());
  EXPECT_TRUE(ParseServerConfig({"--bind", "0.0.0.0"}, NoEnv)->config.AuthOn());
  EXPECT_TRUE(ParseServerConfig({"--bind", "10.1.2.3"}, NoEnv)->config.AuthOn());
  EXPECT_TRUE(ParseServerConfig({"--auth", "keys"}, NoEnv)->config.AuthOn());

  auto open = ParseServerConfig({"--bind", "0.0.0.0", "--auth", "off"}, NoEnv);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("--insecure"), absl::string_view::npos);
  auto insecure = ParseServerConfig({"--bind", "0.0.0.0", "--auth", "off", "--insecure"}, NoEnv);
  ASSERT_TRUE(insecure.ok()) << insecure.status();
  EXPECT_FALSE(insecure->config.AuthOn());
  EXPECT_FALSE(ParseServerConfig({"--auth", "maybe"}, NoEnv).ok());

  EXPECT_FALSE(ParseServerConfig({"--jwt-secret", "/s"}, NoEnv).ok()) << "JWTs with auth off";
  EXPECT_TRUE(ParseServerConfig({"--auth", "keys", "--jwt-secret", "/s"}, NoEnv).ok());
  EXPECT_FALSE(
      ParseServerConfig({"--auth", "keys", "--jwt-secret", "/s", "--jwt-public-key", "/p"}, NoEnv)
          .ok());
  EXPECT_FALSE(ParseServerConfig({"--auth", "keys", "--jwt-audience", "segd"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"--tls-cert", "/c"}, NoEnv).ok());
  EXPECT_TRUE(ParseServerConfig({"--tls-cert", "/c", "--tls-key", "/k"}, NoEnv)->config.Tls());
}

TEST(ServerConfig, VersionBindAndCorsOrigins) {
  EXPECT_TRUE(ParseServerConfig({"--version"}, NoEnv)->version);
  EXPECT_NE(ServerVersion().find("segd "), std::string::npos);
  EXPECT_TRUE(ParseServerConfig({"--bind", "::1"}, NoEnv).ok());
  EXPECT_TRUE(ParseServerConfig({"--bind", "0.0.0.0"}, NoEnv).ok());
  auto host = ParseServerConfig({"--bind", "localhost"}, NoEnv);
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.status().message().find("not an IP address"), absl::string_view::npos);
  EXPECT_FALSE(ParseServerConfig({"--bind", ""}, NoEnv).ok());

  auto cors =
      ParseServerConfig({"--cors-origin", "https://a.example, http://localhost:3000"}, NoEnv);
  ASSERT_TRUE(cors.ok()) << cors.status();
  EXPECT_EQ(cors->config.cors_origins,
            (std::vector<std::string>{"https://a.example", "http://localhost:3000"}));
  EXPECT_EQ(ParseServerConfig({"--cors-origin", "*"}, NoEnv)->config.cors_origins,
            std::vector<std::string>{"*"});
  EXPECT_FALSE(ParseServerConfig({"--cors-origin", "a.example"}, NoEnv).ok());
  EXPECT_FALSE(ParseServerConfig({"--cors-origin", "https://a.example/"}, NoEnv).ok());
}

}  // namespace
}  // namespace segd::server
