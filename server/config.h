#pragma once

// ServerConfig: every setting of the segd binary, read from the command line and from SEGD_*
// environment variables (a flag wins over its variable).
//
// Thread safety: ParseServerConfig is reentrant; a ServerConfig is a plain value.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/durability.h"

namespace segd::server {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

struct ServerConfig {
  std::string bind = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (printed at start-up)
  std::string data_dir = "./data";
  unsigned threads = 0;  // 0: DefaultIoThreads(UsableCores()), base/cpu_budget.h
  storage::Durability durability = storage::Durability::kProcess;
  int64_t report_ttl_seconds = 4 * 3600;
  int64_t history_retention_seconds = 0;  // 0: keep the history forever
  int64_t event_retention_seconds = 90 * 24 * 3600;
  LogLevel log_level = LogLevel::kInfo;
  uint64_t max_body = 1ull << 20;           // JSON bodies
  uint64_t max_check_body = 8ull << 20;     // POST /v1/check
  uint64_t max_import_body = 256ull << 20;  // imports
  uint32_t max_header = 16 * 1024;
  int64_t read_timeout_seconds = 30;
  uint32_t max_connections = 10000;
  int64_t snapshot_interval_seconds = 600;
  uint64_t snapshot_every_records = 1'000'000;  // 0: by time only
  int64_t shutdown_grace_seconds = 10;
  // GET /v1/changes/stream sends a bookmark after this long without a change.
  int64_t feed_bookmark_seconds = 15;
  // Webhooks: how long a delivery may take, and the first retry's delay (the ladder scales).
  int64_t webhook_timeout_seconds = 10;
  int64_t webhook_backoff_seconds = 1;
  // Free space kept on the data directory's filesystem (storage/disk_reserve.h); unset: 1 GiB
  // or a tenth of the filesystem, whichever is smaller (DefaultMinFreeDisk).
  std::optional<uint64_t> min_free_disk;
  // RocksDB's memory budget: block cache and memtables (storage::OpLogOptions::memory_bytes).
  uint64_t rocksdb_memory = 256ull << 20;
  // by_user's memtable (storage::OpLogOptions::user_index_lists).
  bool user_index_lists = true;
  // Browser origins allowed to call the API (CORS): empty (none; no CORS headers), "*" (any),
  // or exact origins such as "https://app.example.com".
  std::vector<std::string> cors_origins;
  // Identities (docs/api.md): the most aliases a user may have, and ids refused as aliases
  // (compared without case).
  uint32_t max_aliases = 100;
  std::vector<std::string> refused_aliases = {"null",      "undefined",      "0",   "-1",
                                              "anonymous", "none",           "nil", "unknown",
                                              "guest",     "[object object]"};
  // Access control (docs/security.md). auth_keys: every request but the public routes needs a
  // key or token; when not given it is on unless `bind` is a loopback address. Off on another
  // address is refused unless `insecure`.
  std::optional<bool> auth_keys;
  bool insecure = false;
  std::string jwt_secret_file;      // HS256
  std::string jwt_public_key_file;  // RS256 / ES256
  std::string jwt_issuer;
  std::string jwt_audience;
  // The Redis protocol (docs/resp.md): its port (unset: off; 0: any free port), the largest
  // answer of SMEMBERS and the set operations, and how long a connection may sit idle
  // between commands (0: forever).
  std::optional<uint16_t> resp_port;
  uint32_t resp_max_members = 10000;
  int64_t resp_idle_timeout_seconds = 0;
  // HTTPS on the port when both are set (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;

  // Whether access control is on, after the default for `bind` is applied.
  bool AuthOn() const { return auth_keys.value_or(false); }
  bool Tls() const { return !tls_cert_file.empty(); }

  bool operator==(const ServerConfig&) const = default;
};

// Whether `address` (an IP address) is a loopback address: 127.0.0.0/8 or ::1.
bool IsLoopback(const std::string& address);

// --min-free-disk when it is not given: 1 GiB, or a tenth of a filesystem of `total_bytes`,
// whichever is smaller.
uint64_t DefaultMinFreeDisk(uint64_t total_bytes);

// What the command line asked for.
struct ParsedCommandLine {
  bool help = false;     // print ServerUsage() and exit 0
  bool version = false;  // print ServerVersion() and exit 0
  ServerConfig config;
};

// The text of --help, made from the flag table (config.cc) that parsing uses.
const std::string& ServerUsage();
// "segd 0.1.0".
std::string ServerVersion();

// Reads `args` (without the program name) over the SEGD_* variables that `getenv` returns,
// over each flag's default. Errors: InvalidArgument naming the flag (or variable) and what is
// wrong with it.
absl::StatusOr<ParsedCommandLine> ParseServerConfig(const std::vector<std::string>& args,
                                                    const char* (*getenv)(const char*));

}  // namespace segd::server
