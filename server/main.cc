// segd: the server binary. The HTTP front is not built yet; for now this binary parses its
// command line, opens an engine and reports what it holds, so that `make run` has something
// real to start.

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/engine.h"

namespace {

constexpr char kUsage[] = R"(segd: in-memory user segmentation engine

Usage: segd [--data-dir DIR] [--port N] [--help]

  --data-dir DIR   where the durable log will live (default ./data)
  --port N         HTTP port (default 8080)
  --help           print this help and exit

This build contains the engine only (segments, users, TTL expiry, set algebra);
the durable log and the HTTP API are not part of it yet, so segd starts an empty
engine, prints its figures and exits.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = "./data";
  int port = 8080;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--data-dir" || arg == "--port") && i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--data-dir") {
        data_dir = value;
      } else {
        char* end = nullptr;
        long p = std::strtol(value.c_str(), &end, 10);
        if (end == value.c_str() || *end != '\0' || p < 1 || p > 65535) {
          std::fprintf(stderr, "segd: --port must be 1-65535, got '%s'\n", value.c_str());
          return 2;
        }
        port = static_cast<int>(p);
      }
      continue;
    }
    std::fprintf(stderr, "segd: unknown or incomplete flag '%s' (see --help)\n", argv[i]);
    return 2;
  }
  segd::engine::Engine engine;
  auto stats = engine.Stats();
  std::printf(
      "segd: engine ready (segments=%llu users=%llu memberships=%llu); data dir %s and port %d "
      "are reserved for the log and HTTP API, which this build does not include yet\n",
      static_cast<unsigned long long>(stats.active_segments),
      static_cast<unsigned long long>(stats.registered_users),
      static_cast<unsigned long long>(stats.memberships), data_dir.c_str(), port);
  return 0;
}
