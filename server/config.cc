#include "server/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "base/cpu_budget.h"
#include "server/time_text.h"

#ifndef SEGD_VERSION
#define SEGD_VERSION "unknown"
#endif

namespace segd::server {
namespace {

absl::Status FlagError(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", value, "': ", why));
}

using Setter = std::function<absl::Status(ServerConfig&, absl::string_view)>;

// One row of the flag table: everything about a flag is written here once. Parsing applies
// `default_value` first (when there is one), then the variable, then the command line;
// --help is printed from the same rows.
struct Flag {
  const char* name;           // without the leading dashes
  const char* env;            // its environment variable
  const char* arg;            // the value's placeholder in --help
  const char* default_value;  // applied through `set`; nullptr: computed (default_text says)
  const char* default_text;   // --help's "default …" when not default_value
  const char* help;           // one paragraph; --help wraps it
  Setter set;
};

absl::Status SetUnsigned(absl::string_view flag, absl::string_view value, uint64_t min,
                         uint64_t max, uint64_t* out) {
  uint64_t n;
  if (value.empty() || value[0] == '+' || !absl::SimpleAtoi(value, &n) || n < min || n > max) {
    return FlagError(flag, value, absl::StrCat("must be a whole number in ", min, "-", max));
  }
  *out = n;
  return absl::OkStatus();
}

Setter Duration(int64_t ServerConfig::*field) {
  return [field](ServerConfig& c, absl::string_view v) -> absl::Status {
    auto d = ParseDurationSeconds(v);
    if (!d.ok()) return d.status();
    c.*field = *d;
    return absl::OkStatus();
  };
}

// A whole number in [min, max].
template <typename T>
Setter Whole(const char* flag, T ServerConfig::*field, uint64_t min, uint64_t max) {
  return [flag, field, min, max](ServerConfig& c, absl::string_view v) -> absl::Status {
    uint64_t n = 0;
    if (absl::Status s = SetUnsigned(flag, v, min, max, &n); !s.ok()) return s;
    c.*field = static_cast<T>(n);
    return absl::OkStatus();
  };
}

template <typename T>
Setter Size(T ServerConfig::*field, uint64_t max) {
  return [field, max](ServerConfig& c, absl::string_view v) -> absl::Status {
    auto n = ParseByteSize(v);
    if (!n.ok()) return n.status();
    if (*n > max) return absl::InvalidArgumentError(absl::StrCat("'", v, "' is over ", max));
    c.*field = static_cast<T>(*n);
    return absl::OkStatus();
  };
}

Setter NonEmpty(const char* flag, std::string ServerConfig::*field) {
  return [flag, field](ServerConfig& c, absl::string_view v) {
    if (v.empty()) return FlagError(flag, v, "must not be empty");
    c.*field = std::string(v);
    return absl::OkStatus();
  };
}

// Any text, empty included (empty: the setting is off).
Setter Text(std::string ServerConfig::*field) {
  return [field](ServerConfig& c, absl::string_view v) {
    c.*field = std::string(v);
    return absl::OkStatus();
  };
}

bool IsIpAddress(const std::string& text) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, text.c_str(), bytes) == 1 ||
         inet_pton(AF_INET6, text.c_str(), bytes) == 1;
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> kFlags = {
      {"bind", "SEGD_BIND", "ADDR", "127.0.0.1", nullptr,
       "IP address to listen on (IPv4 or IPv6; 0.0.0.0 for every interface)",
       [](ServerConfig& c, absl::string_view v) {
         c.bind = std::string(v);
         if (!IsIpAddress(c.bind)) {
           return FlagError("--bind", v, "is not an IP address (such as 127.0.0.1 or ::1)");
         }
         return absl::OkStatus();
       }},
      {"port", "SEGD_PORT", "N", "8080", nullptr,
       "TCP port, 0-65535; 0 picks a free one, printed at start-up",
       Whole("--port", &ServerConfig::port, 0, 65535)},
      {"data-dir", "SEGD_DATA_DIR", "DIR", "./data", nullptr,
       "data directory: the operation log (DIR/log) and stored reports (DIR/reports); created if "
       "missing",
       NonEmpty("--data-dir", &ServerConfig::data_dir)},
      {"threads", "SEGD_THREADS", "N", nullptr, "usable cores - 1, at least 1",
       "I/O threads serving HTTP and RESP, 1-256; the default leaves a core to the log, the "
       "housekeeper and local clients, and counts the cores the affinity mask and a cgroup CPU "
       "quota allow",
       Whole("--threads", &ServerConfig::threads, 1, 256)},
      {"durability", "SEGD_DURABILITY", "MODE", "process", nullptr,
       "process: a change is acknowledged once it is in the write-ahead log (survives a crash of "
       "segd); fsync: once the log is fsynced (survives a power loss), concurrent changes "
       "sharing one fsync",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         auto d = storage::ParseDurability(v);
         if (!d.ok()) return d.status();
         c.durability = *d;
         return absl::OkStatus();
       }},
      {"report-ttl", "SEGD_REPORT_TTL", "DURATION", "4h", nullptr,
       "how long a report from POST /v1/reports is kept",
       Duration(&ServerConfig::report_ttl_seconds)},
      {"history-retention", "SEGD_HISTORY_RETENTION", "DURATION", "forever", nullptr,
       "how long the history of membership changes is kept for reports; older records leave "
       "reports at once and the disk within a day (recovery never needs them), or \"forever\"",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v == "forever") {
           c.history_retention_seconds = 0;
           return absl::OkStatus();
         }
         return Duration(&ServerConfig::history_retention_seconds)(c, v);
       }},
      {"event-retention", "SEGD_EVENT_RETENTION", "DURATION", "90d", nullptr,
       "how long events (POST /v1/events) are kept and accepted: the past a new rule is "
       "computed over, and the longest window a rule may name",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         absl::Status s = Duration(&ServerConfig::event_retention_seconds)(c, v);
         if (s.ok() && c.event_retention_seconds < 1) {
           return absl::InvalidArgumentError("--event-retention must be at least 1s");
         }
         return s;
       }},
      {"log-level", "SEGD_LOG_LEVEL", "LEVEL", "info", nullptr,
       "error, warn, info or debug; debug logs every request to stderr",
       [](ServerConfig& c, absl::string_view v) {
         static const std::pair<absl::string_view, LogLevel> kLevels[] = {
             {"error", LogLevel::kError},
             {"warn", LogLevel::kWarn},
             {"info", LogLevel::kInfo},
             {"debug", LogLevel::kDebug}};
         for (const auto& [name, level] : kLevels) {
           if (v == name) {
             c.log_level = level;
             return absl::OkStatus();
           }
         }
         return FlagError("--log-level", v, "must be error, warn, info or debug");
       }},
      {"max-body", "SEGD_MAX_BODY", "SIZE", "1MiB", nullptr, "largest JSON request body",
       Size(&ServerConfig::max_body, 1ull << 30)},
      {"max-check-body", "SEGD_MAX_CHECK_BODY", "SIZE", "8MiB", nullptr,
       "largest body of POST /v1/check", Size(&ServerConfig::max_check_body, 1ull << 30)},
      {"max-import-body", "SEGD_MAX_IMPORT_BODY", "SIZE", "256MiB", nullptr, "largest import body",
       Size(&ServerConfig::max_import_body, 4ull << 30)},
      {"max-header", "SEGD_MAX_HEADER", "SIZE", "16KiB", nullptr,
       "largest request line plus headers; over it the answer is 431 and the connection closes",
       Size(&ServerConfig::max_header, 1u << 20)},
      {"read-timeout", "SEGD_READ_TIMEOUT", "DURATION", "30s", nullptr,
       "a connection that is idle this long, takes longer than this to send a request's "
       "headers, or to take an answer, is closed",
       Duration(&ServerConfig::read_timeout_seconds)},
      {"max-connections", "SEGD_MAX_CONNECTIONS", "N", "10000", nullptr,
       "open connections at most; more are answered 503 and closed",
       Whole("--max-connections", &ServerConfig::max_connections, 1, 1000000)},
      {"resp-port", "SEGD_RESP_PORT", "N", nullptr, "off",
       "also serve the Redis protocol (RESP2 and RESP3, docs/resp.md) on this TCP port of "
       "--bind, 0-65535; 0 picks a free one, printed at start-up",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v == "off") {
           c.resp_port.reset();
           return absl::OkStatus();
         }
         uint64_t n = 0;
         if (absl::Status s = SetUnsigned("--resp-port", v, 0, 65535, &n); !s.ok()) return s;
         c.resp_port = static_cast<uint16_t>(n);
         return absl::OkStatus();
       }},
      {"resp-max-members", "SEGD_RESP_MAX_MEMBERS", "N", "10000", nullptr,
       "the most members SMEMBERS, SINTER, SUNION and SDIFF answer with, 1-100000; a larger "
       "answer is refused with an error that points to SSCAN",
       Whole("--resp-max-members", &ServerConfig::resp_max_members, 1, 100000)},
      {"resp-idle-timeout", "SEGD_RESP_IDLE_TIMEOUT", "DURATION", "never", nullptr,
       "close a RESP connection idle this long between commands (client pools keep idle "
       "connections, so by default never); a command begun must still arrive within "
       "--read-timeout",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v == "never") {
           c.resp_idle_timeout_seconds = 0;
           return absl::OkStatus();
         }
         absl::Status s = Duration(&ServerConfig::resp_idle_timeout_seconds)(c, v);
         if (s.ok() && c.resp_idle_timeout_seconds < 1) {
           return absl::InvalidArgumentError("--resp-idle-timeout must be at least 1s, or never");
         }
         return s;
       }},
      {"snapshot-interval", "SEGD_SNAPSHOT_INTERVAL", "DURATION", "10m", nullptr,
       "write a snapshot this often while changes arrive, so that a restart replays little of "
       "the log",
       Duration(&ServerConfig::snapshot_interval_seconds)},
      {"snapshot-every", "SEGD_SNAPSHOT_EVERY", "N", "1000000", nullptr,
       "also write one once N membership changes have been logged since the last (a tail "
       "replayed at start-up counts), so that a restart replays at most about N records however "
       "fast they arrive; 0 for time only",
       Whole("--snapshot-every", &ServerConfig::snapshot_every_records, 0, uint64_t{1} << 40)},
      {"shutdown-grace", "SEGD_SHUTDOWN_GRACE", "DURATION", "10s", nullptr,
       "on SIGTERM or SIGINT, how long in-flight requests may take to finish",
       Duration(&ServerConfig::shutdown_grace_seconds)},
      {"feed-bookmark", "SEGD_FEED_BOOKMARK", "DURATION", "15s", nullptr,
       "how long an event stream (GET /v1/changes/stream) may go without a change before segd "
       "sends a bookmark (the current cursor), so that idle subscribers stay current and dead "
       "connections are noticed",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         absl::Status s = Duration(&ServerConfig::feed_bookmark_seconds)(c, v);
         if (s.ok() && c.feed_bookmark_seconds < 1) {
           return absl::InvalidArgumentError("--feed-bookmark must be at least 1s");
         }
         return s;
       }},
      {"webhook-timeout", "SEGD_WEBHOOK_TIMEOUT", "DURATION", "10s", nullptr,
       "a webhook delivery that has no answer this long after it started is retried",
       Duration(&ServerConfig::webhook_timeout_seconds)},
      {"webhook-backoff", "SEGD_WEBHOOK_BACKOFF", "DURATION", "1s", nullptr,
       "the first retry of a failed webhook delivery; the next ones come 5, 30, 120, 600 times "
       "this after their failure, then every 1800 times this",
       Duration(&ServerConfig::webhook_backoff_seconds)},
      {"min-free-disk", "SEGD_MIN_FREE_DISK", "SIZE", nullptr,
       "1GiB, or a tenth of the filesystem if that is smaller",
       "free space to keep on the data directory's filesystem: below it writes are answered 503 "
       "(reads go on) so that flushes, compactions, snapshots and a clean shutdown still fit; "
       "writes resume by themselves once space is freed; 0 turns the check off",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v == "0") {
           c.min_free_disk = 0;
           return absl::OkStatus();
         }
         auto n = ParseByteSize(v);
         if (!n.ok()) return n.status();
         c.min_free_disk = *n;
         return absl::OkStatus();
       }},
      {"rocksdb-memory", "SEGD_ROCKSDB_MEMORY", "SIZE", "256MiB", nullptr,
       "memory of the operation log's RocksDB, one budget: cached log blocks (history, reports) "
       "and memtables, which are flushed once they hold half of it; 16MiB to 1TiB",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         auto n = ParseByteSize(v);
         if (!n.ok()) return n.status();
         if (*n < (16ull << 20) || *n > (1ull << 40)) {
           return FlagError("--rocksdb-memory", v, "must be from 16MiB to 1TiB");
         }
         c.rocksdb_memory = *n;
         return absl::OkStatus();
       }},
      {"user-index-memtable", "SEGD_USER_INDEX_MEMTABLE", "KIND", "lists", nullptr,
       "lists: the per-user index keeps its newest entries in segd's own memtable of per-user "
       "lists (fast writes for existing users); skiplist: RocksDB's own memtable, a fallback "
       "that changes nothing on disk",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v != "lists" && v != "skiplist") {
           return FlagError("--user-index-memtable", v, "must be lists or skiplist");
         }
         c.user_index_lists = v == "lists";
         return absl::OkStatus();
       }},
      {"cors-origin", "SEGD_CORS_ORIGIN", "ORIGINS", "", nullptr,
       "browser origins allowed to call the API, comma-separated (https://app.example.com), "
       "or * for any; answers then carry CORS headers and OPTIONS answers preflights. Empty: "
       "no CORS headers",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         c.cors_origins.clear();
         for (absl::string_view origin : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           origin = absl::StripAsciiWhitespace(origin);
           if (origin != "*" && !absl::StartsWith(origin, "http://") &&
               !absl::StartsWith(origin, "https://")) {
             return FlagError("--cors-origin", origin,
                              "an origin is * or starts with http:// or https://");
           }
           if (origin != "*" && absl::EndsWith(origin, "/")) {
             return FlagError("--cors-origin", origin, "an origin has no path (drop the '/')");
           }
           c.cors_origins.emplace_back(origin);
         }
         return absl::OkStatus();
       }},
      {"max-aliases", "SEGD_MAX_ALIASES", "N", "100", nullptr,
       "the most aliases one user may have (POST /v1/users/{id}/aliases); a request or merge "
       "that would pass it is refused with 409",
       Whole("--max-aliases", &ServerConfig::max_aliases, 1, 100000)},
      {"refused-aliases", "SEGD_REFUSED_ALIASES", "IDS",
       "null,undefined,0,-1,anonymous,none,nil,unknown,guest,[object object]", nullptr,
       "comma-separated ids refused as aliases (compared without case): what clients send when "
       "they have no id, which would otherwise join unrelated users into one",
       [](ServerConfig& c, absl::string_view v) {
         c.refused_aliases.clear();
         for (absl::string_view id : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           c.refused_aliases.emplace_back(absl::StripAsciiWhitespace(id));
         }
         return absl::OkStatus();
       }},
      {"auth", "SEGD_AUTH", "MODE", nullptr, "off on a loopback --bind, keys otherwise",
       "off: anyone who reaches the port may do anything; keys: every request but /health and "
       "the API description needs Authorization: Bearer with an API key (segd keys create) or a "
       "JWT, and the key's role (docs/security.md). off on a non-loopback --bind needs "
       "--insecure",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v != "off" && v != "keys") return FlagError("--auth", v, "must be off or keys");
         c.auth_keys = v == "keys";
         return absl::OkStatus();
       }},
      {"jwt-secret", "SEGD_JWT_SECRET", "FILE", "", nullptr,
       "with --auth keys, also accept JWTs signed with HS256 by the secret in FILE (at least 32 "
       "bytes); the token's role claim names its role",
       Text(&ServerConfig::jwt_secret_file)},
      {"jwt-public-key", "SEGD_JWT_PUBLIC_KEY", "FILE", "", nullptr,
       "with --auth keys, also accept JWTs signed by the private half of the PEM public key in "
       "FILE: RS256 for an RSA key, ES256 for an EC P-256 key",
       Text(&ServerConfig::jwt_public_key_file)},
      {"jwt-issuer", "SEGD_JWT_ISSUER", "TEXT", "", nullptr,
       "when set, a JWT's iss claim must equal it", Text(&ServerConfig::jwt_issuer)},
      {"jwt-audience", "SEGD_JWT_AUDIENCE", "TEXT", "", nullptr,
       "when set, a JWT's aud claim must name it", Text(&ServerConfig::jwt_audience)},
      {"tls-cert", "SEGD_TLS_CERT", "FILE", "", nullptr,
       "serve HTTPS (TLS 1.2 or 1.3) instead of HTTP on the port, with the PEM certificate "
       "chain in FILE; needs --tls-key",
       Text(&ServerConfig::tls_cert_file)},
      {"tls-key", "SEGD_TLS_KEY", "FILE", "", nullptr, "the PEM private key of --tls-cert",
       Text(&ServerConfig::tls_key_file)},
  };
  return kFlags;
}

// Checks the flags that only make sense together, and applies --auth's default.
absl::Status Finish(ServerConfig& c) {
  if (!c.auth_keys) c.auth_keys = !IsLoopback(c.bind);
  if (!*c.auth_keys && !IsLoopback(c.bind) && !c.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth off on the non-loopback address ", c.bind,
        " lets anyone who reaches the port change or delete every segment; use --auth keys "
        "(docs/security.md), or add --insecure if a proxy in front enforces access"));
  }
  if (!c.jwt_secret_file.empty() && !c.jwt_public_key_file.empty()) {
    return absl::InvalidArgumentError("--jwt-secret and --jwt-public-key exclude each other");
  }
  const bool jwt = !c.jwt_secret_file.empty() || !c.jwt_public_key_file.empty();
  if (jwt && !*c.auth_keys) {
    return absl::InvalidArgumentError("--jwt-secret and --jwt-public-key need --auth keys");
  }
  if (!jwt && (!c.jwt_issuer.empty() || !c.jwt_audience.empty())) {
    return absl::InvalidArgumentError(
        "--jwt-issuer and --jwt-audience need --jwt-secret or --jwt-public-key");
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  return absl::OkStatus();
}

// Appends `text` wrapped to `width` columns, every line indented by `indent` spaces; the first
// line starts at column `column`.
void AppendWrapped(std::string* out, absl::string_view text, size_t column, size_t indent,
                   size_t width) {
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > indent && column + 1 + word.size() > width) {
      absl::StrAppend(out, "\n", std::string(indent, ' '));
      column = indent;
    } else if (column > indent) {
      out->push_back(' ');
      ++column;
    }
    out->append(word.data(), word.size());
    column += word.size();
  }
  out->push_back('\n');
}

std::string MakeUsage() {
  constexpr size_t kHelpColumn = 26;
  constexpr size_t kWidth = 96;
  std::string out = absl::StrCat(ServerVersion(),
                                 R"(: in-memory user segmentation engine with an HTTP/1.1 JSON API

Usage: segd [flags]
       segd keys create --data-dir DIR --role ROLE [--segments GLOBS] [--description TEXT]
       segd keys list --data-dir DIR
       segd keys delete --data-dir DIR ID
         manage API keys while segd is stopped (a running segd holds DIR: use /v1/keys)

Every flag can also be set by the environment variable named on its line; a flag wins over
its variable.

)");
  for (const Flag& f : Flags()) {
    std::string left = absl::StrCat("  --", f.name, " ", f.arg);
    size_t column = left.size();
    out += left;
    if (column + 1 > kHelpColumn) {
      absl::StrAppend(&out, "\n", std::string(kHelpColumn, ' '));
    } else {
      out.append(kHelpColumn - column, ' ');
    }
    std::string def =
        f.default_value ? (*f.default_value ? f.default_value : "empty") : f.default_text;
    AppendWrapped(&out, absl::StrCat(f.help, " (default ", def, "; ", f.env, ")"), kHelpColumn,
                  kHelpColumn, kWidth);
  }
  out += R"(  --insecure              allow --auth off on a non-loopback --bind (SEGD_INSECURE=1)
  --version               print the version and exit
  --help                  print this help and exit

Durations read 90s, 30m, 4h, 7d; sizes read 1048576, 512KiB, 1MiB, 1GiB.
On SIGTERM or SIGINT segd stops accepting, finishes in-flight requests, writes a snapshot
and exits 0. Exit codes: 0 clean stop, 1 a failure while running, 2 bad flags.
)";
  return out;
}

}  // namespace

const std::string& ServerUsage() {
  static const std::string kUsage = MakeUsage();
  return kUsage;
}

std::string ServerVersion() { return absl::StrCat("segd ", SEGD_VERSION); }

bool IsLoopback(const std::string& address) {
  unsigned char bytes[16];
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) return bytes[0] == 127;
  if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    static const unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(bytes, bytes + 16, kLoopback6);
  }
  return false;
}

uint64_t DefaultMinFreeDisk(uint64_t total_bytes) {
  return std::min<uint64_t>(uint64_t{1} << 30, total_bytes / 10);
}

absl::StatusOr<ParsedCommandLine> ParseServerConfig(const std::vector<std::string>& args,
                                                    const char* (*getenv)(const char*)) {
  ParsedCommandLine parsed;
  for (const Flag& flag : Flags()) {
    if (flag.default_value == nullptr) continue;
    if (absl::Status s = flag.set(parsed.config, flag.default_value); !s.ok()) {
      return absl::InternalError(absl::StrCat("default of --", flag.name, ": ", s.message()));
    }
  }
  for (const Flag& flag : Flags()) {
    const char* value = getenv(flag.env);
    if (value == nullptr || *value == '\0') continue;
    if (absl::Status s = flag.set(parsed.config, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("environment ", flag.env, ": ", s.message()));
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      return parsed;
    }
    if (arg == "--version") {
      parsed.version = true;
      return parsed;
    }
    if (arg == "--insecure") {
      parsed.config.insecure = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    absl::string_view name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != absl::string_view::npos) {
      value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* found = nullptr;
    for (const Flag& flag : Flags()) {
      if (name == flag.name) found = &flag;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "' (see --help)"));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    if (absl::Status s = found->set(parsed.config, value); !s.ok()) {
      // Some setters name the flag themselves.
      if (absl::StartsWith(s.message(), "--")) return s;
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", s.message()));
    }
  }
  if (const char* v = getenv("SEGD_INSECURE"); v != nullptr && absl::string_view(v) == "1") {
    parsed.config.insecure = true;
  }
  if (absl::Status s = Finish(parsed.config); !s.ok()) return s;
  if (parsed.config.threads == 0) {
    parsed.config.threads = DefaultIoThreads(UsableCores());
  }
  return parsed;
}

}  // namespace segd::server
