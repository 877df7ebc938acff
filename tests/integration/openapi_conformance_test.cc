// The real server's answers against docs/openapi.yaml: a scripted tour of every endpoint
// (successes and the errors a client meets) is sent through Stoplight Prism's validating
// proxy (pinned in tools/api), and any answer the document does not describe fails the test.
// Prism reports such an answer on its log as "Violation: response…".

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/api.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

// A port that was free a moment ago.
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// `prism proxy` in front of segd, its log in a file.
class PrismProxy {
 public:
  PrismProxy(uint16_t upstream, const std::string& log) : port_(FreePort()) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = std::fopen(log.c_str(), "w");
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
      const std::string target = "http://127.0.0.1:" + std::to_string(upstream);
      const std::string port = std::to_string(port_);
      execl(SEGD_PRISM, SEGD_PRISM, "proxy", SEGD_OPENAPI, target.c_str(), "--host", "127.0.0.1",
            "--port", port.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 600 && !Accepts(port_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~PrismProxy() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return Accepts(port_); }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

struct Step {
  std::string pattern;  // the route, as in Api::Routes()
  std::string method;
  std::string target;
  unsigned status;  // what segd must answer: the tour checks itself
  std::string body = "";
  std::string content_type = "application/json";
  // Whose key the request carries: the admin's unless it says "reader", "ads" (a writer
  // limited to ads_*) or "none".
  std::string as = "admin";
};

TEST(OpenApiConformance, EveryAnswerOfATourOfEveryEndpointIsDescribed) {
  TempDir dir;
  // With access control on, every step carries a key; some show the refusals.
  std::map<std::string, std::string> keys = {
      {"admin", testutil::CreateKeyWithCli(dir.Sub("data"), "admin")},
      {"reader", testutil::CreateKeyWithCli(dir.Sub("data"), "reader")},
      {"ads", testutil::CreateKeyWithCli(dir.Sub("data"), "writer", "ads_*")},
      {"none", ""}};
  for (const auto& [who, key] : keys) ASSERT_TRUE(who == "none" || !key.empty()) << who;
  ServerProcess server(dir.Sub("data"), {"--max-body", "4KiB", "--auth", "keys"});
  ASSERT_TRUE(server.started());
  const std::string log = dir.Sub("prism.log");
  PrismProxy prism(server.port(), log);
  ASSERT_TRUE(prism.started()) << "prism did not start; its log: " << log;

  const std::string big(5000, ' ');
  const std::vector<Step> tour = {
      {"/v1/segments", "POST", "/v1/segments", 201,
       R"({"name":"sport","description":"fans","ttl_seconds":3600})"},
      {"/v1/segments", "POST", "/v1/segments", 201,
       R"({"name":"roll","auto_percent":50,"auto_percent_sticky":true})"},
      {"/v1/segments", "POST", "/v1/segments", 409, R"({"name":"sport"})"},
      {"/v1/segments", "POST", "/v1/segments", 400, R"({"name":"bad name"})"},
      {"/v1/segments", "POST", "/v1/segments", 400, R"({"nme":"x"})"},
      {"/v1/segments", "POST", "/v1/segments", 415, R"({"name":"x"})", "text/plain"},
      {"/v1/segments", "POST", "/v1/segments", 413, "{\"description\":\"" + big + "\"}"},
      {"/v1/segments", "GET", "/v1/segments", 200},
      {"/v1/segments", "GET", "/v1/segments", 401, "", "application/json", "none"},
      {"/v1/segments", "POST", "/v1/segments", 403, R"({"name":"x"})", "application/json",
       "reader"},
      {"/v1/segments/{name}/count", "GET", "/v1/segments/sport/count", 403, "", "", "ads"},
      {"/v1/keys", "POST", "/v1/keys", 201,
       R"({"role":"reader","segments":["ads_*"],"description":"tour"})"},
      {"/v1/keys", "POST", "/v1/keys", 400, R"({"role":"root"})"},
      {"/v1/keys", "GET", "/v1/keys", 200},
      {"/v1/keys", "GET", "/v1/keys", 403, "", "", "reader"},
      {"/v1/keys/{id}", "DELETE", "/v1/keys/000000000000", 404},
      {"/v1/segments", "GET", "/v1/segments?include_deleted=true", 200},
      {"/v1/segments", "GET", "/v1/segments?bogus=1", 400},
      {"/v1/segments/{name}", "GET", "/v1/segments/sport", 200},
      {"/v1/segments/{name}", "GET", "/v1/segments/nope", 404},
      {"/v1/segments/{name}", "PATCH", "/v1/segments/sport", 200,
       R"({"description":"sport fans","ttl_seconds":null})"},
      {"/v1/segments/{name}", "PATCH", "/v1/segments/roll", 200, R"({"auto_percent":80})"},
      {"/v1/segments/{name}", "PATCH", "/v1/segments/sport", 400, R"({"auto_percent":80})"},
      {"/v1/segments/{name}", "PATCH", "/v1/segments/nope", 404, R"({"description":"x"})"},
      {"/v1/users/{user_id}", "PUT", "/v1/users/u1", 201},
      {"/v1/users/{user_id}", "PUT", "/v1/users/u1", 200},
      {"/v1/users/{user_id}", "PUT", "/v1/users/u9", 201},
      {"/v1/users/{user_id}/aliases", "POST", "/v1/users/u1/aliases", 200,
       R"({"aliases":["cookie:1","email:1"]})"},
      {"/v1/users/{user_id}/aliases", "POST", "/v1/users/u1/aliases", 409, R"({"aliases":["u9"]})"},
      {"/v1/users/{user_id}/aliases", "POST", "/v1/users/u1/aliases", 200,
       R"({"aliases":["u9"],"merge":true})"},
      {"/v1/users/{user_id}/aliases", "POST", "/v1/users/u1/aliases", 400,
       R"({"aliases":["undefined"]})"},
      {"/v1/users/{user_id}/aliases/{alias}", "DELETE", "/v1/users/u1/aliases/email:1", 200},
      {"/v1/users/{user_id}/aliases/{alias}", "DELETE", "/v1/users/u1/aliases/email:1", 404},
      {"/v1/users/{user_id}/segments", "POST", "/v1/users/u1/segments", 200,
       R"({"add":["sport",{"name":"roll","ttl_seconds":60}]})"},
      {"/v1/users/{user_id}/segments", "POST", "/v1/users/u1/segments", 422,
       R"({"add":["sport"],"remove":["sport"]})"},
      {"/v1/users/{user_id}/segments", "POST", "/v1/users/u1/segments", 404, R"({"add":["nope"]})"},
      {"/v1/users/{user_id}/segments", "POST", "/v1/users/u1/segments", 400, R"({"add":[1]})"},
      {"/v1/users/{user_id}/segments", "GET", "/v1/users/u1/segments", 200},
      {"/v1/segments", "POST", "/v1/segments", 201,
       R"j({"name":"buyers","rule":"count(purchase, 1h) >= 1 OR in_segment(sport)"})j"},
      {"/v1/segments", "POST", "/v1/segments", 400, R"({"name":"bad","rule":"count(x) >="})"},
      {"/v1/segments/{name}", "GET", "/v1/segments/buyers", 200},
      {"/v1/segments/{name}", "PATCH", "/v1/segments/buyers", 200,
       R"j({"rule":"count(purchase, 2h) >= 1"})j"},
      {"/v1/events", "POST", "/v1/events", 200,
       R"({"user_id":"u1","type":"purchase","properties":{"total":12.5,"ok":true},"traits":{"plan":"pro"}})"},
      {"/v1/events", "POST", "/v1/events", 200, "{\"user_id\":7,\"type\":\"view\"}\nnot json\n",
       "application/x-ndjson"},
      {"/v1/events", "POST", "/v1/events", 400, R"({"user_id":"u1"})"},
      {"/v1/events", "POST", "/v1/events", 415, "x", "text/csv"},
      {"/v1/users/{user_id}/traits", "PATCH", "/v1/users/u1/traits", 200,
       R"({"age":31,"plan":null,"vip":true})"},
      {"/v1/users/{user_id}/traits", "PATCH", "/v1/users/u1/traits", 400, R"({"a":[1]})"},
      {"/v1/users/{user_id}", "GET", "/v1/users/u1", 200},
      {"/v1/users/{user_id}", "GET", "/v1/users/nobody", 404},
      {"/v1/users/{user_id}/segments", "POST", "/v1/users/u1/segments", 409,
       R"({"add":["buyers"]})"},
      {"/v1/segments/{name}/count", "GET", "/v1/segments/sport/count", 200},
      {"/v1/segments/{name}/count", "GET", "/v1/segments/nope/count", 404},
      {"/v1/segments/{name}/users", "GET", "/v1/segments/sport/users?limit=1", 200},
      {"/v1/segments/{name}/users", "GET", "/v1/segments/sport/users?limit=0", 400},
      {"/v1/segments/{name}/users/{user_id}", "GET", "/v1/segments/sport/users/u1", 200},
      {"/v1/segments/{name}/users/{user_id}", "GET", "/v1/segments/sport/users/nobody", 200},
      {"/v1/segments/{name}/users/{user_id}", "GET", "/v1/segments/nope/users/u1", 404},
      {"/v1/segments/{name}/users/{user_id}", "GET",
       "/v1/segments/sport/users/u1?at=2999-01-01T00:00:00Z", 200},
      {"/v1/segments/{name}/users/{user_id}", "GET", "/v1/segments/sport/users/u1?at=soon", 400},
      {"/v1/segments/{name}/sizes", "GET",
       "/v1/segments/sport/sizes?from=2020-01-01T00:00:00Z&step=31d", 200},
      {"/v1/segments/{name}/sizes", "GET", "/v1/segments/sport/sizes?step=1d", 400},
      {"/v1/webhooks", "POST", "/v1/webhooks", 201,
       R"({"url":"http://127.0.0.1:9/hook","secret":"s","segments":["sport"]})"},
      {"/v1/webhooks", "POST", "/v1/webhooks", 400, R"({"url":"ftp://x/","secret":"s"})"},
      {"/v1/webhooks", "GET", "/v1/webhooks", 200},
      {"/v1/webhooks/{id}", "GET", "/v1/webhooks/nope", 404},
      {"/v1/webhooks/{id}", "DELETE", "/v1/webhooks/nope", 404},
      {"/v1/changes", "GET", "/v1/changes?after=0&limit=5&segment=sport", 200},
      {"/v1/changes", "GET", "/v1/changes?wait=1s", 200},
      {"/v1/changes", "GET", "/v1/changes?limit=0", 400},
      {"/v1/changes", "GET", "/v1/changes?segment=nope", 404},
      // (A stream that starts never ends by itself: only its refusals are toured.)
      {"/v1/changes/stream", "GET", "/v1/changes/stream?after=bad", 400},
      {"/v1/changes/stream", "GET", "/v1/changes/stream?segment=nope", 404},
      {"/v1/segments/{name}/users:import", "POST", "/v1/segments/sport/users:import?ttl_seconds=60",
       200, "u2\nu3\n\n\x01x\n", "text/plain"},
      {"/v1/segments/{name}/users:import", "POST", "/v1/segments/sport/users:import", 200,
       "{\"user_id\":\"u4\"}\n", "application/x-ndjson"},
      {"/v1/segments/{name}/users:import", "POST", "/v1/segments/nope/users:import", 404, "u5\n",
       "text/plain"},
      {"/v1/segments/{name}/users:import", "POST", "/v1/segments/sport/users:import", 415, "u5\n",
       "application/octet-stream"},
      {"/v1/query", "POST", "/v1/query", 200, R"({"expr":"sport AND NOT roll","limit":10})"},
      {"/v1/query", "POST", "/v1/query", 400, R"({"expr":"sport and roll"})"},
      {"/v1/query", "POST", "/v1/query", 404, R"({"expr":"nope"})"},
      {"/v1/check", "POST", "/v1/check", 200,
       R"({"checks":[{"user_id":"u1","segment":"sport"},{"user_id":7,"segment":"nope"}]})"},
      {"/v1/check", "POST", "/v1/check", 400, R"({"checks":{}})"},
      {"/v1/reports/history", "GET", "/v1/reports/history?segment=sport", 200},
      {"/v1/reports/history", "GET", "/v1/reports/history?period=2026-13", 400},
      {"/v1/reports/history", "GET", "/v1/reports/history?segment=nope", 404},
      {"/v1/reports", "POST", "/v1/reports", 201, R"({"segments":["sport"]})"},
      {"/v1/reports", "POST", "/v1/reports", 400, R"({"from":"yesterday"})"},
      {"/v1/reports", "POST", "/v1/reports", 404, R"({"segments":["nope"]})"},
      {"/v1/reports/{id}.csv", "GET", "/v1/reports/0123456789abcdef0123456789abcdef.csv", 404},
      {"/v1/users/{user_id}", "DELETE", "/v1/users/u1", 200},
      {"/v1/users/{user_id}", "DELETE", "/v1/users/u1", 404},
      {"/v1/segments/{name}", "DELETE", "/v1/segments/sport", 200},
      {"/v1/segments/{name}", "DELETE", "/v1/segments/sport", 404},
      {"/v1/segments/{name}/count", "GET", "/v1/segments/sport/count", 404},
      {"/health", "GET", "/health", 200},
      {"/metrics", "GET", "/metrics", 200},
      {"/openapi.yaml", "GET", "/openapi.yaml", 200},
      {"/docs", "GET", "/docs", 200},
      {"/docs/{file}", "GET", "/docs/swagger-ui.css", 200},
      {"/docs/{file}", "GET", "/docs/segd-docs.js", 200},
      {"/docs/{file}", "GET", "/docs/nope.js", 404},
  };
  std::set<std::pair<std::string, std::string>> visited;
  auto client = std::make_unique<HttpClient>(prism.port());
  std::string report_url, webhook_id, key_id;
  for (const Step& step : tour) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!keys[step.as].empty()) headers.emplace_back("Authorization", "Bearer " + keys[step.as]);
    HttpResult r = client->Request(step.method, step.target, step.body, step.content_type, headers);
    EXPECT_EQ(r.status, step.status) << step.method << " " << step.target << ": " << r.body;
    visited.emplace(step.method, step.pattern);
    if (step.pattern == "/v1/webhooks" && r.status == 201) {
      const size_t at = r.body.find("\"id\":\"") + 6;
      webhook_id = r.body.substr(at, r.body.find('"', at) - at);
    }
    if (step.pattern == "/v1/keys" && r.status == 201) {
      const size_t at = r.body.find("\"id\":\"") + 6;
      key_id = r.body.substr(at, r.body.find('"', at) - at);
    }
    if (step.pattern == "/v1/reports" && r.status == 201) {
      const size_t at = r.body.find("/v1/reports/");
      report_url = r.body.substr(at, r.body.find('"', at) - at);
    }
    // A new connection after an answer that closed one.
    if (!r.keep_alive || r.status == 0) client = std::make_unique<HttpClient>(prism.port());
  }
  const std::vector<std::pair<std::string, std::string>> admin = {
      {"Authorization", "Bearer " + keys["admin"]}};
  ASSERT_FALSE(key_id.empty());
  EXPECT_EQ(client->Request("DELETE", "/v1/keys/" + key_id, "", "", admin).status, 200u);
  visited.emplace("DELETE", "/v1/keys/{id}");
  ASSERT_FALSE(report_url.empty());
  EXPECT_EQ(client->Request("GET", report_url, "", "", admin).status, 200u);
  visited.emplace("GET", "/v1/reports/{id}.csv");
  ASSERT_FALSE(webhook_id.empty());
  EXPECT_EQ(client->Request("GET", "/v1/webhooks/" + webhook_id, "", "", admin).status, 200u);
  EXPECT_EQ(client->Request("DELETE", "/v1/webhooks/" + webhook_id, "", "", admin).status, 204u);

  for (const auto& [method, pattern] : server::Api::Routes()) {
    EXPECT_TRUE(visited.count({method, pattern})) << "the tour misses " << method << " " << pattern;
  }
  // Prism logs asynchronously: give it a moment before reading.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  std::istringstream lines(text.str());
  int violations = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("Violation: response") != std::string::npos ||
        line.find("Unable to match") != std::string::npos) {
      ADD_FAILURE() << "not as docs/openapi.yaml describes: " << line;
      ++violations;
    }
  }
  EXPECT_EQ(violations, 0);
  EXPECT_NE(text.str().find("Forwarding"), std::string::npos) << "prism forwarded nothing";
}

}  // namespace
}  // namespace segd
