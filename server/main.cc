// segd: the server binary. The HTTP front is not built yet: for now segd opens the data
// directory, recovers the engine from the operation log, expires what fell due while it was
// down, prints one line with the figures, writes a snapshot (as a clean shutdown does) and
// exits. `make run` runs exactly this.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/engine.h"
#include "storage/oplog.h"

namespace {

constexpr char kUsage[] = R"(segd: in-memory user segmentation engine

Usage: segd [--data-dir DIR] [--port N] [--durability process|fsync] [--help]

  --data-dir DIR        data directory holding the operation log; created if missing
                        (default ./data, environment SEGD_DATA_DIR)
  --port N              HTTP port, 1-65535 (default 8080, environment SEGD_PORT)
  --durability MODE     process: a change is acknowledged once it is in the write-ahead log
                        (survives a crash of segd); fsync: once the log is fsynced (survives
                        a power loss); concurrent changes share one fsync
                        (default process, environment SEGD_DURABILITY)
  --help                print this help and exit

This build has the engine and the durable log; the HTTP API is not part of it yet.
segd recovers the data directory, expires memberships that fell due while it was
down, prints what it holds, writes a snapshot, and exits.
)";

const char* EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = EnvOr("SEGD_DATA_DIR", "./data");
  std::string port_text = EnvOr("SEGD_PORT", "8080");
  std::string durability_text = EnvOr("SEGD_DURABILITY", "process");
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--data-dir" || arg == "--port" || arg == "--durability") && i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--data-dir") data_dir = value;
      if (arg == "--port") port_text = value;
      if (arg == "--durability") durability_text = value;
      continue;
    }
    std::fprintf(stderr, "segd: unknown or incomplete flag '%s' (see --help)\n", argv[i]);
    return 2;
  }
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (end == port_text.c_str() || *end != '\0' || port < 1 || port > 65535) {
    std::fprintf(stderr, "segd: --port must be 1-65535, got '%s'\n", port_text.c_str());
    return 2;
  }
  auto durability = segd::storage::ParseDurability(durability_text);
  if (!durability.ok()) {
    std::fprintf(stderr, "segd: %s\n", std::string(durability.status().message()).c_str());
    return 2;
  }
  auto log = segd::storage::OpLog::Open(data_dir, {*durability});
  if (!log.ok()) {
    std::fprintf(stderr, "segd: %s\n", std::string(log.status().message()).c_str());
    return 1;
  }
  segd::engine::Engine engine(segd::engine::EngineOptions{nullptr, log->get()});
  auto recovered = (*log)->Recover(engine);
  if (!recovered.ok()) {
    std::fprintf(stderr, "segd: recovery of '%s' failed: %s\n", data_dir.c_str(),
                 std::string(recovered.status().message()).c_str());
    return 1;
  }
  auto expired = engine.ProcessExpiries();
  if (!expired.ok()) {
    std::fprintf(stderr, "segd: %s\n", std::string(expired.status().message()).c_str());
    return 1;
  }
  auto stats = engine.Stats();
  std::printf(
      "segd: data dir %s recovered in %.3f s (snapshot at log position %llu, %llu log records "
      "replayed; segments=%llu users=%llu memberships=%llu; %llu expired while down); HTTP on "
      "port %ld is not part of this build yet\n",
      data_dir.c_str(), recovered->seconds,
      static_cast<unsigned long long>(recovered->snapshot_seq),
      static_cast<unsigned long long>(recovered->records),
      static_cast<unsigned long long>(stats.active_segments),
      static_cast<unsigned long long>(stats.registered_users),
      static_cast<unsigned long long>(stats.memberships),
      static_cast<unsigned long long>(*expired), port);
  // A clean shutdown ends with a snapshot, so that the next start replays nothing.
  auto snapshot = (*log)->WriteSnapshot(engine);
  if (!snapshot.ok()) {
    std::fprintf(stderr, "segd: snapshot at shutdown failed: %s\n",
                 std::string(snapshot.status().message()).c_str());
    return 1;
  }
  return 0;
}
