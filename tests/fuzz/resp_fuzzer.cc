// libFuzzer target for the Redis protocol: bytes in, split into reads as the first byte says,
// framed by the same RespParser and limits a RESP connection uses, and every command answered
// by the real RespCommands over a real engine (single-member SADDs through ApplyAdds, as a
// connection applies them). Fails (aborts) when a command's reply is not exactly one
// well-formed RESP value, when the parser hands out a command that breaks its limits, or on
// any sanitizer report. Every input is answered twice: with access control off,
// and on with the fixed keys of fixed_keys.h (inputs may AUTH with them).
//
// Built two ways, as request_fuzzer is: a libFuzzer binary with -DSEGD_FUZZ=ON under clang,
// and always resp_fuzzer_replay, which runs the checked-in corpus as a regression test.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/access/authenticator.h"
#include "server/access/key_store.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/resp/resp_commands.h"
#include "server/resp/resp_parser.h"
#include "tests/fuzz/fixed_keys.h"
#include "tests/testutil/resp_reply.h"
#include "tests/testutil/temp_dir.h"

namespace {

using namespace segd;
using server::resp::RespParser;

struct Fixture {
  Fixture() : metrics({"x"}) {
    config.resp_max_members = 50;
    testutil::WriteFixedKeys(dir.path());
    keys = std::move(server::access::KeyStore::Open(dir.path()).value());
    auth = std::make_unique<server::access::Authenticator>(*keys, nullptr);
    open = std::make_unique<server::resp::RespCommands>(engine, config, metrics, nullptr, false);
    guarded =
        std::make_unique<server::resp::RespCommands>(engine, config, metrics, auth.get(), true);
    for (const char* name : {"sport", "music"}) {
      engine::SegmentSpec spec;
      spec.name = name;
      (void)engine.CreateSegment(spec);
    }
    engine::UserUpdate update;
    update.add.push_back({"sport", std::nullopt, std::nullopt});
    (void)engine.UpdateUserSegments("u1", update);
  }

  testutil::TempDir dir;
  server::ServerConfig config;
  server::Metrics metrics;
  engine::Engine engine;  // in memory (no sink)
  std::unique_ptr<server::access::KeyStore> keys;
  std::unique_ptr<server::access::Authenticator> auth;
  std::unique_ptr<server::resp::RespCommands> open;
  std::unique_ptr<server::resp::RespCommands> guarded;
};

Fixture& TheFixture() {
  static Fixture fixture;
  return fixture;
}

[[noreturn]] void Fail(const char* why, const std::string& detail) {
  std::fprintf(stderr, "resp_fuzzer: %s: %s\n", why, detail.c_str());
  std::abort();
}

// Frames `input` as a connection would (reads of `step` bytes) and answers every command.
void Serve(server::resp::RespCommands& commands, const std::string& input, size_t step) {
  server::resp::RespLimits limits;
  limits.max_command = 64 * 1024;
  RespParser parser(limits);
  server::resp::RespClient client;
  client.ip = "10.0.0.1";
  std::string buffer;
  std::vector<absl::string_view> args;
  size_t fed = 0;
  while (true) {
    size_t consumed = 0;
    const RespParser::Result r = parser.Next(buffer, &args, &consumed);
    if (r == RespParser::Result::kError) return;  // the connection sends the error and closes
    if (r == RespParser::Result::kCommand) {
      if (args.empty() || args.size() > limits.max_args) Fail("bad argument count", buffer);
      for (absl::string_view a : args) {
        if (a.size() > limits.max_bulk) Fail("argument over the limit", std::string(a));
      }
      std::string out;
      if (commands.IsBatchableAdd(client, args)) {
        // The connection's path for single-member SADDs (resp_add_gatherer.h).
        const server::resp::RespCommands::PendingAdd add{args[1], args[2], &out};
        commands.ApplyAdds({&add, 1});
      } else {
        commands.Execute(client, args, &out);
      }
      size_t pos = 0;
      auto reply = testutil::DecodeResp(out, &pos);
      if (!reply || pos != out.size()) Fail("not exactly one reply", out);
      buffer.erase(0, consumed);
      if (client.close) return;
      continue;
    }
    buffer.erase(0, consumed);
    if (fed == input.size()) return;
    const size_t n = std::min(step, input.size() - fed);
    buffer.append(input, fed, n);
    fed += n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& f = TheFixture();
  // The first byte picks the read size: 1 to 256 bytes at a time.
  const size_t step = size_t{data[0]} + 1;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Serve(*f.open, input, step);
  Serve(*f.guarded, input, step);
  return 0;
}
