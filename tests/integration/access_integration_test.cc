// Access control against the real server: keys from the command line and from /v1/keys, roles,
// the audit log, metrics by key, failure limits, refusals before a body is read, the
// non-loopback guard, and JWTs signed by another library (PyJWT).

#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/tls_cert.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers Bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `command`, returning its exit code and (through *out) what it printed on stdout and
// stderr.
int RunCommand(const std::string& command, std::string* out) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buffer[4096];
  out->clear();
  while (size_t n = std::fread(buffer, 1, sizeof buffer, p)) out->append(buffer, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string JsonField(const std::string& body, const std::string& name) {
  const size_t at = body.find("\"" + name + "\":\"");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 4;
  return body.substr(start, body.find('"', start) - start);
}

TEST(Access, KeysRolesAuditAndMetricsOverHttp) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  const std::string admin = testutil::CreateKeyWithCli(data, "admin");
  ASSERT_EQ(admin.rfind("segd_", 0), 0u) << admin;
  ServerProcess server(data, {"--auth", "keys"});
  ASSERT_TRUE(server.started()) << server.start_line();
  EXPECT_NE(server.start_line().find("access control on"), std::string::npos);
  HttpClient client(server.port());

  // Health needs nothing; everything else needs a key.
  EXPECT_EQ(client.Get("/health").status, 200u);
  HttpResult anonymous = client.Get("/v1/segments");
  EXPECT_EQ(anonymous.status, 401u);
  EXPECT_EQ(anonymous.header("www-authenticate").rfind("Bearer", 0), 0u);
  EXPECT_NE(anonymous.body.find("\"code\":\"unauthorized\""), std::string::npos);
  EXPECT_TRUE(anonymous.keep_alive) << "a 401 without a body to skip keeps the connection";

  // The admin makes a segment and a reader key; the key is shown once.
  EXPECT_EQ(
      client
          .Request("POST", "/v1/segments", R"({"name":"ads_a"})", "application/json", Bearer(admin))
          .status,
      201u);
  HttpResult made =
      client.Request("POST", "/v1/keys", R"({"role":"reader","description":"ad server"})",
                     "application/json", Bearer(admin));
  ASSERT_EQ(made.status, 201u) << made.body;
  const std::string reader = JsonField(made.body, "key");
  const std::string reader_id = JsonField(made.body, "id");
  ASSERT_FALSE(reader.empty());

  EXPECT_EQ(client.Request("GET", "/v1/segments/ads_a/count", "", "", Bearer(reader)).status, 200u);
  HttpResult refused =
      client.Request("POST", "/v1/segments", R"({"name":"b"})", "application/json", Bearer(reader));
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.body.find(R"("required":"admin")"), std::string::npos) << refused.body;

  // Listing shows no secret; /metrics counts by key id and never shows a secret.
  HttpResult list = client.Request("GET", "/v1/keys", "", "", Bearer(admin));
  ASSERT_EQ(list.status, 200u);
  EXPECT_NE(list.body.find(reader_id), std::string::npos);
  EXPECT_EQ(list.body.find(reader.substr(18)), std::string::npos) << "a secret was listed";
  EXPECT_NE(list.body.find("\"last_used_at\":\"20"), std::string::npos) << list.body;
  HttpResult metrics = client.Request("GET", "/metrics", "", "", Bearer(reader));
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("segd_requests_by_key_total{key=\"" + reader_id + "\"} 3"),
            std::string::npos)
      << "reader: count, refused create, metrics";
  EXPECT_NE(metrics.body.find("segd_key_events_total{action=\"created\"} 1"), std::string::npos);
  EXPECT_EQ(metrics.body.find(admin.substr(18)), std::string::npos);

  // A deleted key fails on its very next request.
  EXPECT_EQ(client.Request("DELETE", "/v1/keys/" + reader_id, "", "", Bearer(admin)).status, 200u);
  EXPECT_EQ(client.Request("GET", "/v1/segments", "", "", Bearer(reader)).status, 401u);

  // While segd runs, the command line cannot touch its keys.
  std::string out;
  EXPECT_EQ(
      RunCommand(std::string(SEGD_BINARY) + " keys create --data-dir " + data + " --role admin",
                 &out),
      1)
      << out;
  EXPECT_NE(out.find("/v1/keys"), std::string::npos) << out;

  // Both key events are in the audit log, which holds no secret.
  const std::string audit = ReadFile(data + "/audit.log");
  EXPECT_NE(audit.find("\"action\":\"key_created\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"action\":\"key_deleted\",\"key\":\"" + reader_id), std::string::npos);
  EXPECT_EQ(audit.find(reader.substr(18)), std::string::npos);

  // Keys survive a restart, and the deleted one stays deleted.
  EXPECT_EQ(server.Terminate(), 0);
  ServerProcess again(data, {"--auth", "keys"});
  ASSERT_TRUE(again.started());
  HttpClient c2(again.port());
  EXPECT_EQ(c2.Request("GET", "/v1/segments", "", "", Bearer(admin)).status, 200u);
  EXPECT_EQ(c2.Request("GET", "/v1/segments", "", "", Bearer(reader)).status, 401u);
}

TEST(Access, AnUnauthenticatedUploadIsRefusedBeforeItsBodyIsRead) {
  TempDir dir;
  ASSERT_FALSE(testutil::CreateKeyWithCli(dir.Sub("data"), "admin").empty());
  ServerProcess server(dir.Sub("data"), {"--auth", "keys"});
  ASSERT_TRUE(server.started());
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), server.port()});
  // 200 MB announced, none sent: the answer must come anyway.
  const std::string head =
      "POST /v1/segments/s/users:import HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
      "Content-Length: 200000000\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(head));
  std::string answer;
  boost::system::error_code ec;
  char buffer[4096];
  while (answer.find("\r\n\r\n") == std::string::npos) {
    size_t n = socket.read_some(boost::asio::buffer(buffer), ec);
    if (ec) break;
    answer.append(buffer, n);
  }
  EXPECT_EQ(answer.rfind("HTTP/1.1 401", 0), 0u) << answer;
}

TEST(Access, RepeatedFailuresFromOneAddressAreSlowedDown) {
  TempDir dir;
  const std::string admin = testutil::CreateKeyWithCli(dir.Sub("data"), "admin");
  ServerProcess server(dir.Sub("data"), {"--auth", "keys"});
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  EXPECT_EQ(client.Request("GET", "/v1/segments", "", "", Bearer(admin)).status, 200u);
  int unauthorized = 0, limited = 0;
  for (int i = 0; i < 15; ++i) {
    HttpResult r = client.Request(
        "GET", "/v1/segments", "", "",
        Bearer("segd_00000000000" + std::to_string(i % 10) + "_" + std::string(64, 'f')));
    if (r.status == 401) ++unauthorized;
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(r.header("retry-after"), "1");
    }
  }
  EXPECT_EQ(unauthorized, 10);
  EXPECT_EQ(limited, 5);
  // The admin's key, known before, is not slowed down.
  EXPECT_EQ(client.Request("GET", "/v1/segments", "", "", Bearer(admin)).status, 200u);
}

TEST(Access, NoAccessControlOffLoopbackUnlessInsecure) {
  TempDir dir;
  std::string out;
  const std::string segd = std::string(SEGD_BINARY) + " --data-dir " + dir.Sub("data") +
                           " --port 0 --bind 0.0.0.0 --auth off";
  EXPECT_EQ(RunCommand(segd, &out), 2) << out;
  EXPECT_NE(out.find("--insecure"), std::string::npos) << out;
  ServerProcess insecure(dir.Sub("data"), {"--bind", "0.0.0.0", "--auth", "off", "--insecure"});
  ASSERT_TRUE(insecure.started()) << insecure.start_line();
  EXPECT_NE(insecure.start_line().find("access control off"), std::string::npos);
}

// Tokens made by PyJWT (python3-jwt), so that segd's checks are not only tested against the
// library that verifies them.
TEST(Access, JwtsFromAnotherLibrary) {
  TempDir dir;
  const std::string secret_file = dir.Sub("secret");
  std::ofstream(secret_file) << "0123456789abcdef0123456789abcdef-segd";
  const std::string script = dir.Sub("tokens.py");
  std::ofstream(script) << R"py(
import sys, time, jwt
secret = open(sys.argv[1]).read().strip()
now = int(time.time())
def hs(claims, alg="HS256", key=secret):
    print(jwt.encode(claims, key, algorithm=alg))
hs({"role": "writer", "exp": now + 600, "aud": "segd"})
hs({"role": "admin", "exp": now - 3600, "aud": "segd"})
hs({"role": "admin", "exp": now + 600, "aud": "other"})
hs({"role": "admin", "exp": now + 600, "nbf": now + 3600, "aud": "segd"})
hs({"role": "admin", "exp": now + 600, "aud": "segd"}, key="another secret of 32 bytes or more!!")
hs({"role": "superuser", "exp": now + 600, "aud": "segd"})
hs({"role": "admin", "exp": now + 600, "aud": "segd"}, alg="HS512")
)py";
  std::string tokens;
  // Debian's interpreter, which python3-jwt is installed for (scripts/install-deps.sh --test).
  ASSERT_EQ(RunCommand("/usr/bin/python3 " + script + " " + secret_file, &tokens), 0) << tokens;
  std::vector<std::string> t;
  std::istringstream lines(tokens);
  for (std::string line; std::getline(lines, line);) t.push_back(line);
  ASSERT_EQ(t.size(), 7u) << tokens;

  ServerProcess server(dir.Sub("data"),
                       {"--auth", "keys", "--jwt-secret", secret_file, "--jwt-audience", "segd"});
  ASSERT_TRUE(server.started()) << server.start_line();
  HttpClient client(server.port());
  const std::string body = R"({"add":["s"]})";
  EXPECT_EQ(client.Request("GET", "/v1/segments", "", "", Bearer(t[0])).status, 200u);
  EXPECT_EQ(
      client.Request("POST", "/v1/segments", R"({"name":"s"})", "application/json", Bearer(t[0]))
          .status,
      403u)
      << "a writer's token cannot create segments";
  for (size_t i = 1; i < t.size(); ++i) {
    SCOPED_TRACE("token " + std::to_string(i));
    EXPECT_EQ(client.Request("GET", "/v1/segments", "", "", Bearer(t[i])).status, 401u);
  }
}

}  // namespace
}  // namespace segd

namespace segd {
namespace {

// A blocking HTTPS client that trusts one certificate.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca_file)
      : ctx_(boost::asio::ssl::context::tls_client), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca_file);
    stream_.set_verify_mode(boost::asio::ssl::verify_peer);
    boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
    boost::beast::get_lowest_layer(stream_).connect(endpoint);
    stream_.handshake(boost::asio::ssl::stream_base::client, error_);
  }
  const boost::system::error_code& handshake_error() const { return error_; }

  // Sends `requests` in one write (pipelined) and reads as many answers.
  std::vector<HttpResult> Pipeline(const std::vector<std::string>& targets,
                                   const std::string& key) {
    namespace http = boost::beast::http;
    std::string wire;
    for (const std::string& target : targets) {
      wire += "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      if (!key.empty()) wire += "Authorization: Bearer " + key + "\r\n";
      wire += "\r\n";
    }
    boost::asio::write(stream_, boost::asio::buffer(wire));
    std::vector<HttpResult> out;
    for (size_t i = 0; i < targets.size(); ++i) {
      http::response<http::string_body> res;
      boost::beast::error_code ec;
      http::read(stream_, buffer_, res, ec);
      HttpResult r;
      if (!ec) {
        r.status = res.result_int();
        r.body = res.body();
        r.keep_alive = res.keep_alive();
      }
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ssl::context ctx_;
  boost::beast::ssl_stream<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
  boost::system::error_code error_;
};

TEST(Tls, HttpsOnTheSamePortWithKeepAlivePipeliningAndKeys) {
  TempDir dir;
  const std::string cert = dir.Sub("cert.pem"), key = dir.Sub("key.pem");
  ASSERT_TRUE(testutil::MakeSelfSignedCert(cert, key));
  const std::string admin = testutil::CreateKeyWithCli(dir.Sub("data"), "admin");
  ServerProcess server(dir.Sub("data"), {"--auth", "keys", "--tls-cert", cert, "--tls-key", key,
                                         "--read-timeout", "1s"});
  ASSERT_TRUE(server.started()) << server.start_line();
  EXPECT_NE(server.start_line().find("https://127.0.0.1:"), std::string::npos);
  // A client that never starts its handshake is closed after --read-timeout.
  HttpClient silent(server.port());
  EXPECT_TRUE(silent.ServerClosed());

  TlsClient client(server.port(), cert);
  ASSERT_FALSE(client.handshake_error()) << client.handshake_error().message();
  // Three requests in one write, twice on the same connection.
  for (int round = 0; round < 2; ++round) {
    std::vector<HttpResult> answers =
        client.Pipeline({"/health", "/v1/segments", "/v1/segments/none/count"}, admin);
    ASSERT_EQ(answers.size(), 3u);
    EXPECT_EQ(answers[0].status, 200u);
    EXPECT_EQ(answers[1].status, 200u);
    EXPECT_EQ(answers[1].body, R"({"segments":[]})");
    EXPECT_EQ(answers[2].status, 404u);
    for (const HttpResult& r : answers) EXPECT_TRUE(r.keep_alive);
  }
  EXPECT_EQ(client.Pipeline({"/v1/segments"}, "")[0].status, 401u);

  // Plain HTTP to the TLS port gets no answer: the connection is closed.
  HttpClient plain(server.port());
  EXPECT_EQ(plain.Get("/health").status, 0u);

  // A certificate and a key that do not belong together are refused at start-up.
  const std::string other_cert = dir.Sub("other.pem"), other_key = dir.Sub("other-key.pem");
  ASSERT_TRUE(testutil::MakeSelfSignedCert(other_cert, other_key));
  std::string out;
  EXPECT_EQ(RunCommand(std::string(SEGD_BINARY) + " --data-dir " + dir.Sub("data2") +
                           " --port 0 --tls-cert " + cert + " --tls-key " + other_key,
                       &out),
            1)
      << out;
  EXPECT_NE(out.find("--tls-key"), std::string::npos) << out;
  EXPECT_NE(out.find("mismatch"), std::string::npos) << out;
}

}  // namespace
}  // namespace segd
