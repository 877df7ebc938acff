#pragma once

// RespCommands: segd's commands in the Redis protocol (docs/resp.md), as a function from one
// parsed command to its reply, independent of sockets. RespSession feeds it commands; the
// fuzz target and tests call it directly.
//
// A segment is a set key and a user id is a member. Reads answer as Redis answers for a set:
// a segment that does not exist (never created, deleted, or a name segd would refuse) is an
// empty set. Writes differ on purpose: segments are created deliberately, so SADD to one that
// does not exist is an error that says how to create it. Every write goes through the engine
// as the HTTP API's do, logged with reason `api`, and is answered once the log has it (under
// --durability fsync, once it is on disk).
//
// With access control on (--auth keys), a connection must AUTH (or HELLO … AUTH) with an API
// key or a JWT before any command but AUTH, HELLO, QUIT and RESET; each command then needs the
// role the matching HTTP route needs (reader for reads, writer for SADD/SREM/SEGD.ADD, admin
// for SEGD.CREATE), and keys limited to some segments may name only those.
//
// Thread safety: Execute may be called from any number of threads at once, each with its own
// RespClient; the engine, config, metrics and authenticator must outlive this object.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/engine.h"
#include "server/access/authenticator.h"
#include "server/config.h"
#include "server/metrics.h"

namespace segd::server::resp {

// One connection's state, which commands read and change (HELLO, AUTH, CLIENT SETNAME, …).
struct RespClient {
  uint64_t id = 0;
  int protocol = 2;                   // RESP2 until HELLO 3
  std::string name;                   // CLIENT SETNAME
  std::string lib_name, lib_version;  // CLIENT SETINFO
  std::string address;                // the peer's "ip:port"
  std::string ip;                     // the peer's IP address (failed AUTHs are limited by it)
  std::string credential;             // "Bearer <key or token>" after AUTH; empty before
  int64_t connected_at = 0;           // Unix seconds
  bool close = false;                 // set by QUIT: close once the reply is written
};

class RespCommands {
 public:
  // --resp-max-members: SMEMBERS, SINTER, SUNION and SDIFF refuse larger answers (use SSCAN).
  RespCommands(engine::Engine& engine, const ServerConfig& config, Metrics& metrics,
               access::Authenticator* auth, bool enforce);
  RespCommands(const RespCommands&) = delete;
  RespCommands& operator=(const RespCommands&) = delete;

  // Whether the command named `name` (any case) writes to the log. Under --durability fsync
  // such a command waits for a disk sync, so the connection runs it off its I/O thread.
  bool Mutates(absl::string_view name) const;
  // Answers `args` (the command name first), appending the reply to `out` in the client's
  // protocol version. Unknown commands, wrong arity and every engine error become error
  // replies; nothing here closes the connection but QUIT (client.close).
  void Execute(RespClient& client, absl::Span<const absl::string_view> args, std::string* out);
  // Whether `command` is a single-member SADD ("SADD key member") that `client` may run. Such
  // commands may be applied together (ApplyAdds): a pipeline's, and several connections'. A
  // false answer leaves the command to Execute, which answers any refusal.
  bool IsBatchableAdd(const RespClient& client, absl::Span<const absl::string_view> command);
  // One single-member SADD to apply with others.
  struct PendingAdd {
    absl::string_view key;
    absl::string_view member;
    std::string* out;  // its reply is appended here
  };
  // Applies `adds` in one engine batch (Engine::AddEach, one log write), appending each one's
  // reply (1, 0, or the error Execute would answer) to its `out`, in order.
  void ApplyAdds(absl::Span<const PendingAdd> adds);
  // Whether `client` must still authenticate (access control on and no AUTH yet): its commands
  // are then held to tight size limits, as an unauthenticated Redis client is.
  bool MustAuthenticate(const RespClient& client) const {
    return enforce_ && client.credential.empty();
  }
  // A new connection's id (CLIENT ID).
  uint64_t NextClientId() { return next_client_id_.fetch_add(1, std::memory_order_relaxed); }

  // segd_resp_commands_total by command and outcome, in the Prometheus text format.
  void AppendMetrics(std::string* out) const;
  // INFO's figures.
  int64_t UptimeSeconds() const;
  uint64_t CommandsProcessed() const;

  // One row of the command table (resp_commands.cc).
  struct CommandDef;
  // What a command's implementation reaches.
  struct Context;

 private:
  const CommandDef* Find(absl::string_view name) const;

  engine::Engine& engine_;
  const ServerConfig& config_;
  Metrics& metrics_;
  access::Authenticator* auth_;
  const bool enforce_;
  const int64_t started_at_;  // Unix seconds
  std::atomic<uint64_t> next_client_id_{1};
  absl::flat_hash_map<std::string, int> by_name_;  // upper-case name -> row
  // Per row: commands answered, and those answered with an error.
  std::unique_ptr<std::atomic<uint64_t>[]> calls_;
  std::unique_ptr<std::atomic<uint64_t>[]> errors_;
  std::atomic<uint64_t> unknown_{0};
};

}  // namespace segd::server::resp
