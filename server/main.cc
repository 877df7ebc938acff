// segd: the server binary. Opens the data directory, recovers the engine from the operation
// log, expires what fell due while down, serves the HTTP API until SIGTERM or SIGINT, then
// drains connections, writes a snapshot and exits 0.

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/access/authenticator.h"
#include "server/api.h"
#include "server/config.h"
#include "server/housekeeper.h"
#include "server/http_server.h"
#include "server/keys_command.h"
#include "server/log.h"
#include "server/resp/resp_commands.h"
#include "server/webhooks.h"
#include "storage/oplog.h"
#include "storage/report_store.h"

namespace {

using namespace segd;

const char* GetEnv(const char* name) { return std::getenv(name); }

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "segd: %s: %s\n", what, std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "keys") {
    return server::RunKeysCommand(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  auto parsed = server::ParseServerConfig(args, GetEnv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "segd: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->help) {
    std::fputs(server::ServerUsage().c_str(), stdout);
    return 0;
  }
  if (parsed->version) {
    std::printf("%s\n", server::ServerVersion().c_str());
    return 0;
  }
  const server::ServerConfig config = parsed->config;
  server::SetLogLevel(config.log_level);
  // glibc gives each thread that contends for malloc a heap of its own (up to eight per core),
  // and memory freed in one heap is not reused by threads of another. After a bulk import
  // (request bodies, batches, RocksDB's flushes on their own threads) resident memory then
  // stayed at 4x what the data needs. One heap per I/O thread bounds that: loading the
  // comparison's dataset grew resident memory by 36 bytes per membership instead of 84, and
  // ran 1.2x faster (docs/benchmarks.md). Set before any thread starts.
  mallopt(M_ARENA_MAX, static_cast<int>(config.threads));

  // Every thread started from here on inherits the blocked signals; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  uint64_t min_free_disk = 0;
  if (config.min_free_disk) {
    min_free_disk = *config.min_free_disk;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);  // Open reports failures
    min_free_disk =
        server::DefaultMinFreeDisk(storage::DiskReserve(config.data_dir, 0).total_bytes());
  }
  auto log = storage::OpLog::Open(config.data_dir,
                                  {.durability = config.durability,
                                   .retention_ms = config.history_retention_seconds * 1000,
                                   .memory_bytes = config.rocksdb_memory,
                                   .min_free_disk_bytes = min_free_disk,
                                   .event_retention_ms = config.event_retention_seconds * 1000,
                                   .user_index_lists = config.user_index_lists});
  if (!log.ok()) return Fail("opening the log", log.status());
  engine::EngineOptions engine_options;
  engine_options.sink = log->get();
  engine_options.events = log->get();
  engine_options.event_retention_ms = config.event_retention_seconds * 1000;
  engine_options.max_aliases = config.max_aliases;
  engine_options.refused_aliases = config.refused_aliases;
  engine::Engine engine(engine_options);
  auto recovered = (*log)->Recover(engine);
  if (!recovered.ok()) return Fail("recovery", recovered.status());
  // What fell due while down is expired here, and again right before the first request is
  // accepted (recovery and opening the reports take time too).
  auto expired = engine.ProcessExpiries();
  // Likewise rule deadlines (each change logged at its own moment).
  if (auto deadlines = engine.ProcessRuleDeadlines(); !deadlines.ok()) {
    server::Log(server::LogLevel::kError, "acting on rule deadlines due while down failed: %s",
                std::string(deadlines.status().message()).c_str());
  }
  if (!expired.ok()) {
    // A full disk: serve reads all the same; the housekeeper retries every tick.
    server::Log(server::LogLevel::kError, "expiring memberships due while down failed: %s",
                std::string(expired.status().message()).c_str());
  }
  auto reports = storage::ReportStore::Open(config.data_dir, config.report_ttl_seconds * 1000,
                                            engine::SystemClock::Default());
  if (!reports.ok()) return Fail("opening the report directory", reports.status());

  auto keys = server::access::KeyStore::Open(config.data_dir);
  if (!keys.ok()) return Fail("reading the API keys", keys.status());
  std::unique_ptr<server::access::JwtVerifier> jwt;
  if (!config.jwt_secret_file.empty() || !config.jwt_public_key_file.empty()) {
    auto verifier =
        server::access::JwtVerifier::Create({.secret_file = config.jwt_secret_file,
                                             .public_key_file = config.jwt_public_key_file,
                                             .issuer = config.jwt_issuer,
                                             .audience = config.jwt_audience});
    if (!verifier.ok()) return Fail("setting up JWTs", verifier.status());
    jwt = *std::move(verifier);
  }
  const bool jwt_on = jwt != nullptr;
  server::access::Authenticator auth(**keys, std::move(jwt));
  if (config.AuthOn() && (*keys)->size() == 0 && !jwt_on) {
    server::Log(server::LogLevel::kWarn,
                "access control is on and there are no API keys yet: every request but /health "
                "is refused. Stop segd and run: segd keys create --data-dir %s --role admin",
                config.data_dir.c_str());
  }

  server::ServiceFigures figures;
  figures.recovery_seconds.store(recovered->seconds);
  server::Webhooks webhooks(engine, **log,
                            {.timeout = std::chrono::seconds(config.webhook_timeout_seconds),
                             .backoff = std::chrono::seconds(config.webhook_backoff_seconds)});
  server::Api api(engine, **log, **reports, config, figures);
  api.set_webhooks(&webhooks);
  api.set_access(&auth, config.AuthOn());
  server::resp::RespCommands resp(engine, config, api.metrics(), &auth, config.AuthOn());
  api.metrics().set_extra([&resp](std::string* out) { resp.AppendMetrics(out); });
  server::HttpServer http(api, config, config.resp_port ? &resp : nullptr);
  server::Housekeeper housekeeper(engine, **log, **reports, config, figures);
  housekeeper.set_keys(keys->get());
  uint64_t expired_count = expired.ok() ? *expired : 0;
  if (auto more = engine.ProcessExpiries(); more.ok()) expired_count += *more;
  housekeeper.Start();
  if (absl::Status s = webhooks.Start(); !s.ok()) return Fail("starting webhooks", s);
  if (absl::Status s = http.Start(); !s.ok()) return Fail("starting HTTP", s);
  if (absl::Status writes = (*log)->WriteState(); !writes.ok()) {
    server::Log(server::LogLevel::kError, "serving reads only: %s",
                std::string(writes.message()).c_str());
  }
  housekeeper.WarnIfDiskShort(/*at_start=*/true);

  engine::EngineStats stats = engine.Stats();
  std::printf(
      "segd: listening on %s://%s:%u, access control %s, data dir %s; recovered %llu memberships "
      "(%llu segments, %llu users) in %.3f s (dictionaries %.3f s, snapshot at log position %llu "
      "%.3f s, %llu records replayed %.3f s, %llu events into rule state %.3f s); %llu expired "
      "while down; %u threads, durability %s",
      config.Tls() ? "https" : "http", config.bind.c_str(), http.port(),
      config.AuthOn() ? "on" : "off", config.data_dir.c_str(),
      static_cast<unsigned long long>(stats.memberships),
      static_cast<unsigned long long>(stats.active_segments),
      static_cast<unsigned long long>(stats.registered_users), recovered->seconds,
      recovered->dictionary_seconds, static_cast<unsigned long long>(recovered->snapshot_seq),
      recovered->snapshot_seconds, static_cast<unsigned long long>(recovered->records),
      recovered->replay_seconds, static_cast<unsigned long long>(recovered->events),
      recovered->rules_seconds, static_cast<unsigned long long>(expired_count), config.threads,
      config.durability == storage::Durability::kFsync ? "fsync" : "process");
  if (config.resp_port) {
    std::printf("; RESP (Redis protocol) on %s:%u", config.bind.c_str(), http.resp_port());
  }
  std::printf("\n");
  std::fflush(stdout);

  int signal = 0;
  sigwait(&signals, &signal);
  server::Log(server::LogLevel::kInfo, "%s: draining connections, then a snapshot",
              signal == SIGTERM ? "SIGTERM" : "SIGINT");
  figures.shutting_down.store(true);
  http.Shutdown();
  webhooks.Stop();
  housekeeper.Stop();
  // The snapshot is synced when it commits, and with it every log record before it.
  if (absl::Status s = housekeeper.Snapshot(); !s.ok()) {
    // The log holds every acknowledged change; the next start replays it instead of loading
    // a snapshot. Only a log that failed (not merely a full disk) makes this an unclean stop.
    server::Log(server::LogLevel::kError, "snapshot at shutdown failed: %s",
                std::string(s.message()).c_str());
    const bool disk_short = (*log)->read_only() || (*log)->disk().low();
    if (!disk_short && !(*log)->WriteState().ok()) return 1;
  }
  if (absl::Status s = (*keys)->FlushUsage(); !s.ok()) {
    server::Log(server::LogLevel::kWarn, "recording when keys were last used failed: %s",
                std::string(s.message()).c_str());
  }
  server::Log(server::LogLevel::kInfo, "stopped cleanly");
  return 0;
}
