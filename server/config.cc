#include "server/config.h"

#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/time_text.h"

namespace segd::server {

const char kServerUsage[] = R"(segd: in-memory user segmentation engine with an HTTP/1.1 JSON API

Usage: segd [flags]

Every flag can also be set by the environment variable named on its line; a flag wins over
its variable.

  --bind ADDR             address to listen on (default 127.0.0.1; SEGD_BIND)
  --port N                TCP port, 0-65535; 0 picks a free one, printed at start-up
                          (default 8080; SEGD_PORT)
  --data-dir DIR          data directory: the operation log (DIR/log) and stored reports
                          (DIR/reports); created if missing (default ./data; SEGD_DATA_DIR)
  --threads N             HTTP threads (default: one per core; SEGD_THREADS)
  --durability MODE       process: a change is acknowledged once it is in the write-ahead log
                          (survives a crash of segd); fsync: once the log is fsynced (survives
                          a power loss), concurrent changes sharing one fsync
                          (default process; SEGD_DURABILITY)
  --report-ttl DURATION   how long a report from POST /v1/reports is kept (default 4h;
                          SEGD_REPORT_TTL)
  --history-retention DURATION
                          how long the history of membership changes is kept for reports;
                          older records leave reports at once and the disk within a day
                          (recovery never needs them), or "forever" (default forever;
                          SEGD_HISTORY_RETENTION)
  --log-level LEVEL       error, warn, info or debug; debug logs every request to stderr
                          (default info; SEGD_LOG_LEVEL)
  --max-body SIZE         largest JSON request body (default 1MiB; SEGD_MAX_BODY)
  --max-check-body SIZE   largest body of POST /v1/check (default 8MiB; SEGD_MAX_CHECK_BODY)
  --max-import-body SIZE  largest import body (default 256MiB; SEGD_MAX_IMPORT_BODY)
  --max-header SIZE       largest request line plus headers; over it the answer is 431 and
                          the connection closes (default 16KiB; SEGD_MAX_HEADER)
  --read-timeout DURATION a connection that is idle this long, or takes longer than this to
                          send a request's headers, is closed (default 30s; SEGD_READ_TIMEOUT)
  --max-connections N     open connections at most; more are answered 503 and closed
                          (default 10000; SEGD_MAX_CONNECTIONS)
  --snapshot-interval DURATION
                          write a snapshot this often while changes arrive, so that a restart
                          replays little of the log (default 10m; SEGD_SNAPSHOT_INTERVAL)
  --snapshot-every N      also write one once N membership changes have been logged since the
                          last (a tail replayed at start-up counts), so that a restart replays
                          at most about N records however fast they arrive; 0 for time only
                          (default 1000000; SEGD_SNAPSHOT_EVERY)
  --shutdown-grace DURATION
                          on SIGTERM or SIGINT, how long in-flight requests may take to finish
                          (default 10s; SEGD_SHUTDOWN_GRACE)
  --min-free-disk SIZE    free space to keep on the data directory's filesystem: below it
                          writes are answered 503 (reads go on) so that flushes, compactions,
                          snapshots and a clean shutdown still fit; writes resume by
                          themselves once space is freed; 0 turns the check off
                          (default 1GiB, or a tenth of the filesystem if that is smaller;
                          SEGD_MIN_FREE_DISK)
  --user-index-memtable KIND
                          lists: the per-user index keeps its newest entries in segd's own
                          memtable of per-user lists (fast writes for existing users);
                          skiplist: RocksDB's own memtable, a fallback that changes nothing
                          on disk (default lists; SEGD_USER_INDEX_MEMTABLE)
  --help                  print this help and exit

Durations read 90s, 30m, 4h, 7d; sizes read 1048576, 512KiB, 1MiB, 1GiB.
On SIGTERM or SIGINT segd stops accepting, finishes in-flight requests, writes a snapshot
and exits 0.
)";

namespace {

absl::Status FlagError(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", value, "': ", why));
}

using Setter = std::function<absl::Status(ServerConfig&, absl::string_view)>;

struct Flag {
  const char* name;  // without the leading dashes
  const char* env;
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

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> kFlags = {
      {"bind", "SEGD_BIND",
       [](ServerConfig& c, absl::string_view v) {
         if (v.empty()) return FlagError("--bind", v, "must not be empty");
         c.bind = std::string(v);
         return absl::OkStatus();
       }},
      {"port", "SEGD_PORT", Whole("--port", &ServerConfig::port, 0, 65535)},
      {"data-dir", "SEGD_DATA_DIR",
       [](ServerConfig& c, absl::string_view v) {
         if (v.empty()) return FlagError("--data-dir", v, "must not be empty");
         c.data_dir = std::string(v);
         return absl::OkStatus();
       }},
      {"threads", "SEGD_THREADS", Whole("--threads", &ServerConfig::threads, 1, 256)},
      {"durability", "SEGD_DURABILITY",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         auto d = storage::ParseDurability(v);
         if (!d.ok()) return d.status();
         c.durability = *d;
         return absl::OkStatus();
       }},
      {"report-ttl", "SEGD_REPORT_TTL", Duration(&ServerConfig::report_ttl_seconds)},
      {"history-retention", "SEGD_HISTORY_RETENTION",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v == "forever") {
           c.history_retention_seconds = 0;
           return absl::OkStatus();
         }
         return Duration(&ServerConfig::history_retention_seconds)(c, v);
       }},
      {"log-level", "SEGD_LOG_LEVEL",
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
      {"max-body", "SEGD_MAX_BODY", Size(&ServerConfig::max_body, 1ull << 30)},
      {"max-check-body", "SEGD_MAX_CHECK_BODY", Size(&ServerConfig::max_check_body, 1ull << 30)},
      {"max-import-body", "SEGD_MAX_IMPORT_BODY", Size(&ServerConfig::max_import_body, 4ull << 30)},
      {"max-header", "SEGD_MAX_HEADER", Size(&ServerConfig::max_header, 1u << 20)},
      {"read-timeout", "SEGD_READ_TIMEOUT", Duration(&ServerConfig::read_timeout_seconds)},
      {"max-connections", "SEGD_MAX_CONNECTIONS",
       Whole("--max-connections", &ServerConfig::max_connections, 1, 1000000)},
      {"snapshot-interval", "SEGD_SNAPSHOT_INTERVAL",
       Duration(&ServerConfig::snapshot_interval_seconds)},
      {"snapshot-every", "SEGD_SNAPSHOT_EVERY",
       Whole("--snapshot-every", &ServerConfig::snapshot_every_records, 0, uint64_t{1} << 40)},
      {"shutdown-grace", "SEGD_SHUTDOWN_GRACE", Duration(&ServerConfig::shutdown_grace_seconds)},
      {"user-index-memtable", "SEGD_USER_INDEX_MEMTABLE",
       [](ServerConfig& c, absl::string_view v) -> absl::Status {
         if (v != "lists" && v != "skiplist") {
           return FlagError("--user-index-memtable", v, "must be lists or skiplist");
         }
         c.user_index_lists = v == "lists";
         return absl::OkStatus();
       }},
      {"min-free-disk", "SEGD_MIN_FREE_DISK",
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
  };
  return kFlags;
}

}  // namespace

uint64_t DefaultMinFreeDisk(uint64_t total_bytes) {
  return std::min<uint64_t>(uint64_t{1} << 30, total_bytes / 10);
}

absl::StatusOr<ParsedCommandLine> ParseServerConfig(const std::vector<std::string>& args,
                                                    const char* (*getenv)(const char*)) {
  ParsedCommandLine parsed;
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
  if (parsed.config.threads == 0) {
    parsed.config.threads = std::max(1u, std::thread::hardware_concurrency());
  }
  return parsed;
}

}  // namespace segd::server
