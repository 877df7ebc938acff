#pragma once

// What a RESP command's implementation reaches (RespCommands::Context), and the commands of
// each family. Internal to server/resp/: resp_commands.h is the front door.
//
// Thread safety: a Context lives for one command on one thread.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/engine.h"
#include "server/access/principal.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/resp/resp_commands.h"
#include "server/resp/resp_writer.h"

namespace segd::server::resp {

struct RespCommands::Context {
  engine::Engine& engine;
  const ServerConfig& config;
  Metrics& metrics;
  access::Authenticator* auth;
  bool enforce;
  RespCommands& commands;
  RespClient& client;
  absl::Span<const absl::string_view> args;
  RespWriter& out;
  // The authenticated caller; null with access control off (every segment is visible).
  const access::Principal* caller = nullptr;
  bool failed = false;  // an error reply was written (for the metrics)

  // Whether the caller may see segment `name`.
  bool CanSee(absl::string_view name) const { return caller == nullptr || caller->CanSee(name); }
  // Writes a NOPERM error and returns false unless the caller may see `name`.
  bool RequireSegment(absl::string_view name);
  // Writes the error reply `message` (it starts with its code: "ERR …", "NOPERM …").
  void Error(absl::string_view message);
  // Writes the error reply for an engine or storage error.
  void Fail(const absl::Status& status);
  // Writes "ERR syntax error".
  void SyntaxError() { Error("ERR syntax error"); }
  // Whether `key` names an active segment.
  bool Exists(absl::string_view key) const;
};

// The error reply of a write to segment `key` that the engine refused: a missing segment
// is explained (segments are created deliberately), the rest as Context::Fail words them.
std::string WriteErrorMessage(absl::string_view key, const absl::Status& status);

// An argument as a decimal integer in [min, max]; nullopt if it is not one.
std::optional<int64_t> ParseInteger(absl::string_view arg, int64_t min, int64_t max);
// Redis's glob (SSCAN MATCH, CONFIG GET, COMMAND LIST): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
bool RedisGlobMatches(absl::string_view pattern, absl::string_view text);

// Set commands and segd's own (resp_set_commands.cc).
void SAdd(RespCommands::Context& ctx);
void SRem(RespCommands::Context& ctx);
void SIsMember(RespCommands::Context& ctx);
void SMIsMember(RespCommands::Context& ctx);
void SCard(RespCommands::Context& ctx);
void SMembers(RespCommands::Context& ctx);
void SScan(RespCommands::Context& ctx);
void SInterCard(RespCommands::Context& ctx);
void SInter(RespCommands::Context& ctx);
void SUnion(RespCommands::Context& ctx);
void SDiff(RespCommands::Context& ctx);
void Exists(RespCommands::Context& ctx);
void Type(RespCommands::Context& ctx);
void DbSize(RespCommands::Context& ctx);
void SegdAdd(RespCommands::Context& ctx);
void SegdCreate(RespCommands::Context& ctx);
void SegdUserSegments(RespCommands::Context& ctx);
void SegdQuery(RespCommands::Context& ctx);

}  // namespace segd::server::resp
