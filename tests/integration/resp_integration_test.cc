// The Redis protocol against the real segd (--resp-port), through the real clients from
// Debian: redis-cli (commands and --pipe), redis-benchmark, and redis-py (RESP2, pipelines)
// with RESP3 spoken by hand; malformed input, limits, shutdown, kill -9, and the same changes
// made over HTTP and over RESP leaving the same state and history.

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/resp_client.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/tls_cert.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::RespConnection;
using testutil::ServerProcess;
using testutil::TempDir;

struct Shell {
  int exit_code = -1;
  std::string output;
};

// Runs `command` with sh, returning its exit code and stdout (stderr too with 2>&1).
Shell RunCommand(const std::string& command) {
  Shell result;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) result.output.append(buffer, n);
  const int status = pclose(p);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::vector<std::string> WithResp(std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), {"--resp-port", "0"});
  return extra;
}

std::string Cli(const ServerProcess& server) {
  return "redis-cli -p " + std::to_string(server.resp_port()) + " ";
}

TEST(RespServer, RedisCliRunsCommandsAndMassInsertsWithPipe) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), WithResp());
  ASSERT_TRUE(server.started());
  ASSERT_GT(server.resp_port(), 0) << server.start_line();
  EXPECT_EQ(RunCommand(Cli(server) + "PING").output, "PONG\n");
  EXPECT_EQ(RunCommand(Cli(server) + "SEGD.CREATE visitors").output, "OK\n");
  // Commands read from stdin, one per line (redis-cli's non-interactive mode).
  Shell typed = RunCommand(
      "printf 'SADD visitors alice bob\\nSISMEMBER visitors bob\\n"
      "SCARD visitors\\nSMEMBERS visitors\\n' | " +
      Cli(server));
  EXPECT_EQ(typed.output, "2\n1\n2\nalice\nbob\n");

  // --pipe: a mass insert in the protocol, as the Redis documentation recommends.
  const std::string commands = dir.Sub("mass.resp");
  {
    std::ofstream out(commands, std::ios::binary);
    for (int i = 0; i < 20000; ++i) {
      out << testutil::EncodeResp({"SADD", "visitors", "user:" + std::to_string(i)});
    }
  }
  Shell piped = RunCommand("cat " + commands + " | " + Cli(server) + "--pipe 2>&1");
  EXPECT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_NE(piped.output.find("errors: 0, replies: 20000"), std::string::npos) << piped.output;
  EXPECT_EQ(RunCommand(Cli(server) + "SCARD visitors").output, "20002\n");
  // redis-cli -3 speaks RESP3 (HELLO 3 first).
  EXPECT_EQ(RunCommand(Cli(server) + "-3 SISMEMBER visitors user:7").output, "1\n");
  EXPECT_EQ(RunCommand(Cli(server) + "NOSUCH x")
                .output.find("ERR unknown command 'NOSUCH', with args beginning with: 'x' "),
            0u);
}

TEST(RespServer, RedisBenchmarkRunsCustomCommands) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), WithResp());
  ASSERT_TRUE(server.started());
  RespConnection c(server.resp_port());
  ASSERT_EQ(c.Text({"SEGD.CREATE", "s"}), "OK");
  const std::string bench =
      "redis-benchmark -p " + std::to_string(server.resp_port()) + " -c 8 -n 4000 -q ";
  Shell adds = RunCommand(bench + "-r 1000 SADD s u:__rand_int__ 2>&1");
  EXPECT_EQ(adds.exit_code, 0) << adds.output;
  EXPECT_NE(adds.output.find("requests per second"), std::string::npos) << adds.output;
  const int64_t count = c.Call({"SCARD", "s"}).integer;
  EXPECT_GT(count, 500);  // 4000 draws of 1000 ids leave about 982
  EXPECT_LE(count, 1000);
  for (const char* read : {"SISMEMBER s u:000000000001", "SMISMEMBER s u:1 u:2 u:3", "SCARD s",
                           "-P 16 SISMEMBER s u:000000000001"}) {
    Shell r = RunCommand(bench + read + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << read << ": " << r.output;
    EXPECT_NE(r.output.find("requests per second"), std::string::npos) << r.output;
  }
  // -t ping sends PING inline and as a multibulk.
  Shell ping = RunCommand(bench + "-t ping 2>&1");
  EXPECT_NE(ping.output.find("PING_INLINE"), std::string::npos) << ping.output;
  EXPECT_NE(ping.output.find("PING_MBULK"), std::string::npos) << ping.output;
}

TEST(RespServer, PythonClientsSpeakRespTwoWithPipelinesAndRespThree) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), WithResp());
  ASSERT_TRUE(server.started());
  const std::string script = dir.Sub("client.py");
  {
    std::ofstream out(script);
    out << R"PY(
import socket, sys
import redis

port = int(sys.argv[1])
r = redis.Redis(port=port, decode_responses=True)
assert r.ping()
assert r.execute_command("SEGD.CREATE", "a") == "OK"
assert r.execute_command("SEGD.CREATE", "b") == "OK"
try:
    r.sadd("nosuch", "u")
    raise SystemExit("SADD to a missing segment succeeded")
except redis.ResponseError as e:
    assert "does not exist" in str(e), e
p = r.pipeline(transaction=False)
for i in range(500):
    p.sadd("a", "u%d" % i)
    if i % 2 == 0:
        p.sadd("b", "u%d" % i)
p.scard("a")
p.sismember("b", "u3")
p.smismember("b", ["u2", "u3"])
replies = p.execute()
assert replies[-3] == 500, replies[-3]
assert replies[-2] in (0, False), replies[-2]
assert [bool(x) for x in replies[-1]] == [True, False], replies[-1]
assert set(r.sscan_iter("b", count=37)) == {"u%d" % i for i in range(0, 500, 2)}
assert r.sintercard(2, ["a", "b"]) == 250
assert r.sdiff("b", "a") == set()
assert r.type("a") == "set" and r.exists("a", "zz") == 1
assert r.srem("a", "u1", "u1", "nobody") == 1
assert r.client_setname("py") and r.client_getname() == "py"
assert "redis_version" in r.info("server")

# RESP3 by hand: HELLO 3, then a set, a map and a null.
s = socket.create_connection(("127.0.0.1", port))
def call(*args):
    s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
    data = b""
    while not data.endswith(b"\r\n"):
        data += s.recv(65536)
    return data
assert call("HELLO", "3").startswith(b"%7\r\n")
members = call("SMEMBERS", "b")
while members.count(b"\r\n") < 1 + 2 * 250:
    members += s.recv(65536)
assert members.startswith(b"~250\r\n"), members[:20]
assert call("CLIENT", "GETNAME") == b"_\r\n"
assert call("SEGD.QUERY", "a AND b").startswith(b"%2\r\n")
print("ok")
)PY";
  }
  Shell py =
      RunCommand("/usr/bin/python3 " + script + " " + std::to_string(server.resp_port()) + " 2>&1");
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_EQ(py.output, "ok\n");
}

TEST(RespServer, MalformedInputGetsAnErrorOrACleanCloseAndNeverACrash) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), WithResp({"--read-timeout", "1s"}));
  ASSERT_TRUE(server.started());
  struct Case {
    std::string bytes;
    std::string error;
  };
  const Case cases[] = {
      {"*1\r\n$99999999999\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$2000000\r\n", "ERR Protocol error: invalid bulk length"},  // over 1 MiB
      {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*2\r\n:1\r\n", "ERR Protocol error: expected ':', got ':'"},
      {"*1\r\n$4\r\nPINGxx\r\n", "ERR Protocol error: bulk string not ended by CRLF"},
      {"ECHO \"open\r\n", "ERR Protocol error: unbalanced quotes in request"},
      {std::string(70000, 'a'), "ERR Protocol error: too big inline request"},
  };
  for (const Case& c : cases) {
    RespConnection conn(server.resp_port());
    conn.SendRaw(c.bytes);
    testutil::RespReply r = conn.Read();
    EXPECT_TRUE(r.is_error()) << c.bytes.substr(0, 40);
    if (c.error.find("expected ':'") != std::string::npos) {
      EXPECT_EQ(r.text, "ERR Protocol error: expected '$', got ':'");
    } else {
      EXPECT_EQ(r.text, c.error) << c.bytes.substr(0, 40);
    }
    EXPECT_TRUE(conn.ServerClosed());
  }
  {
    // Inline commands work, pipelined with multibulk ones.
    RespConnection conn(server.resp_port());
    conn.SendRaw("PING\r\nECHO \"a b\"\r\n" + testutil::EncodeResp({"PING", "x"}));
    EXPECT_EQ(conn.Read().ToString(), "PONG");
    EXPECT_EQ(conn.Read().ToString(), "a b");
    EXPECT_EQ(conn.Read().ToString(), "x");
  }
  {
    // A frame cut short is dropped after --read-timeout; the connection just closes.
    RespConnection conn(server.resp_port());
    conn.SendRaw("*2\r\n$4\r\nECHO\r\n$10\r\nabc");
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(conn.ServerClosed());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  }
  {
    // A client that disconnects mid-frame costs nothing.
    RespConnection conn(server.resp_port());
    conn.SendRaw("*3\r\n$4\r\nSADD\r\n");
  }
  RespConnection after(server.resp_port());
  EXPECT_EQ(after.Text({"PING"}), "PONG");
  EXPECT_EQ(server.Terminate(), 0);
}

// The same changes through HTTP (one server) and RESP (another) leave the same members and
// the same history, reasons included.
TEST(RespServer, SameChangesOverHttpAndRespLeaveTheSameStateAndHistory) {
  TempDir dir;
  ServerProcess over_http(dir.Sub("http"), WithResp());
  ServerProcess over_resp(dir.Sub("resp"), WithResp());
  ASSERT_TRUE(over_http.started() && over_resp.started());
  HttpClient h(over_http.port());
  RespConnection r(over_resp.resp_port());
  ASSERT_EQ(h.Post("/v1/segments", R"({"name":"s","ttl_seconds":3600})").status, 201u);
  ASSERT_EQ(r.Text({"SEGD.CREATE", "s", "TTL", "3600"}), "OK");
  for (const char* u : {"u1", "u2", "u3"}) {
    ASSERT_EQ(h.Post(std::string("/v1/users/") + u + "/segments", R"({"add":["s"]})").status, 200u);
    ASSERT_EQ(r.Text({"SADD", "s", u}), "1");
  }
  ASSERT_EQ(h.Post("/v1/users/u2/segments", R"({"remove":["s"]})").status, 200u);
  ASSERT_EQ(r.Text({"SREM", "s", "u2"}), "1");
  ASSERT_EQ(h.Post("/v1/users/u4/segments", R"({"add":[{"name":"s","ttl_seconds":60}]})").status,
            200u);
  ASSERT_EQ(r.Text({"SEGD.ADD", "s", "u4", "TTL", "60"}), "1");

  HttpClient hr(over_resp.port());
  EXPECT_EQ(h.Get("/v1/segments/s/users").body, hr.Get("/v1/segments/s/users").body);
  // History rows without their times (columns: user, segment, operation, at, reason, expiry).
  auto rows = [](const std::string& csv) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < csv.size()) {
      size_t end = csv.find('\n', start);
      std::string line = csv.substr(start, end - start);
      std::vector<std::string> cells;
      size_t from = 0;
      for (size_t comma; (comma = line.find(',', from)) != std::string::npos; from = comma + 1) {
        cells.push_back(line.substr(from, comma - from));
      }
      cells.push_back(line.substr(from));
      if (cells.size() == 6)
        out.push_back(cells[0] + "," + cells[1] + "," + cells[2] + "," + cells[4] + "," +
                      (cells[5].empty() ? "" : "expiry"));
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return out;
  };
  const auto from_http = rows(h.Get("/v1/reports/history?segment=s").body);
  const auto from_resp = rows(hr.Get("/v1/reports/history?segment=s").body);
  EXPECT_EQ(from_http.size(), 6u);  // header, 3 adds, 1 remove, 1 add with a TTL
  EXPECT_EQ(from_http, from_resp);
  for (size_t i = 1; i < from_resp.size(); ++i) {
    EXPECT_NE(from_resp[i].find(",api,"), std::string::npos) << from_resp[i];
  }
  // RESP commands are counted in /metrics.
  const std::string metrics = hr.Get("/metrics").body;
  EXPECT_NE(metrics.find("segd_resp_commands_total{command=\"sadd\"} 3\n"), std::string::npos);
  EXPECT_NE(metrics.find("segd_resp_commands_total{command=\"srem\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("segd_resp_command_errors_total{command=\"sadd\"} 0\n"),
            std::string::npos);
}

// An acknowledged SADD survives kill -9, in both durability modes (under fsync, SADDs are
// answered once the engine's durability thread has synced them, SREM on a durable-write
// worker).
TEST(RespServer, AcknowledgedWritesSurviveKillDashNine) {
  for (const char* durability : {"process", "fsync"}) {
    TempDir dir;
    {
      ServerProcess server(dir.Sub("data"), WithResp({"--durability", durability}));
      ASSERT_TRUE(server.started());
      RespConnection c(server.resp_port());
      ASSERT_EQ(c.Text({"SEGD.CREATE", "s"}), "OK");
      // A pipeline mixing writes and reads keeps its order on the worker.
      std::string batch;
      for (int i = 0; i < 200; ++i) {
        batch += testutil::EncodeResp({"SADD", "s", "u" + std::to_string(i)});
        batch += testutil::EncodeResp({"SCARD", "s"});
      }
      c.SendRaw(batch);
      for (int i = 0; i < 200; ++i) {
        ASSERT_EQ(c.Read().ToString(), "1") << durability;
        ASSERT_EQ(c.Read().ToString(), std::to_string(i + 1)) << durability;
      }
      ASSERT_EQ(c.Text({"SREM", "s", "u0", "u1"}), "2");
      server.Kill();
    }
    ServerProcess again(dir.Sub("data"), WithResp());
    ASSERT_TRUE(again.started());
    RespConnection c(again.resp_port());
    EXPECT_EQ(c.Text({"SCARD", "s"}), "198") << durability;
    EXPECT_EQ(c.Text({"SISMEMBER", "s", "u199"}), "1") << durability;
    EXPECT_EQ(c.Text({"SISMEMBER", "s", "u0"}), "0") << durability;
  }
}

TEST(RespServer, ConnectionCapAndGracefulShutdownCoverRespConnections) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), WithResp({"--max-connections", "2"}));
  ASSERT_TRUE(server.started());
  RespConnection a(server.resp_port());
  RespConnection b(server.resp_port());
  ASSERT_EQ(a.Text({"PING"}), "PONG");
  ASSERT_EQ(b.Text({"PING"}), "PONG");
  RespConnection refused(server.resp_port());
  EXPECT_EQ(refused.Read().ToString(), "-ERR max number of clients reached");
  EXPECT_TRUE(refused.ServerClosed());
  // Idle RESP connections do not hold up a shutdown.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server.TerminateWithin(8), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(a.ServerClosed());
}

TEST(RespServer, KeysAuthenticateRedisClientsAndTlsCarriesThem) {
  TempDir dir;
  const std::string key = testutil::CreateKeyWithCli(dir.Sub("data"), "writer");
  ASSERT_FALSE(key.empty());
  const std::string cert = dir.Sub("cert.pem"), private_key = dir.Sub("key.pem");
  ASSERT_TRUE(testutil::MakeSelfSignedCert(cert, private_key));
  {
    ServerProcess server(dir.Sub("data"), WithResp({"--auth", "keys"}));
    ASSERT_TRUE(server.started());
    EXPECT_EQ(RunCommand(Cli(server) + "PING").output.find("NOAUTH Authentication required."), 0u);
    EXPECT_EQ(RunCommand(Cli(server) + "--no-auth-warning -a " + key + " PING").output, "PONG\n");
    Shell wrong = RunCommand(Cli(server) + "--no-auth-warning -a wrong PING 2>&1");
    EXPECT_NE(wrong.output.find("WRONGPASS"), std::string::npos) << wrong.output;
    // Before AUTH, commands are held to Redis's unauthenticated limits.
    RespConnection c(server.resp_port());
    c.SendRaw(testutil::EncodeResp(std::vector<std::string>(11, "x")));
    EXPECT_EQ(c.Read().ToString(), "-ERR Protocol error: invalid multibulk length");
  }
  ServerProcess tls(dir.Sub("data"), WithResp({"--tls-cert", cert, "--tls-key", private_key}));
  ASSERT_TRUE(tls.started());
  Shell over_tls = RunCommand(Cli(tls) + "--tls --cacert " + cert + " PING 2>&1");
  EXPECT_EQ(over_tls.output, "PONG\n");
  Shell plain = RunCommand(Cli(tls) + "PING 2>&1");
  EXPECT_NE(plain.output, "PONG\n");
}

}  // namespace
}  // namespace segd
