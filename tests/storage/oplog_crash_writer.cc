// oplog_crash_writer DIR process|fsync
//
// The writer half of the crash test: opens the log in DIR, recovers, and applies a fixed
// schedule of operations from where the log ends, printing "ack N" after operation N is
// acknowledged, until killed. Operation N (counted from 0) is one membership record:
//   N % 4 == 3: remove user u(N-1) from segment s((N-1) % 3)
//   otherwise:  add user uN to segment s(N % 3)
// so the number of records in the log is the number of operations done. A second thread takes
// snapshots back to back, so kills also land in the middle of snapshots.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "storage/oplog.h"

using segd::engine::Engine;
using segd::engine::EngineOptions;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR process|fsync\n", argv[0]);
    return 2;
  }
  auto durability = segd::storage::ParseDurability(argv[2]);
  if (!durability.ok()) return 2;
  auto log = segd::storage::OpLog::Open(argv[1], {*durability});
  if (!log.ok()) {
    std::fprintf(stderr, "open: %s\n", log.status().ToString().c_str());
    return 1;
  }
  Engine engine(EngineOptions{nullptr, log->get(), 1});
  if (auto s = (*log)->Recover(engine); !s.ok()) {
    std::fprintf(stderr, "recover: %s\n", s.status().ToString().c_str());
    return 1;
  }
  for (const char* name : {"s0", "s1", "s2"}) {
    if (!engine.GetSegment(name).ok() && !engine.CreateSegment({.name = name}).ok()) return 1;
  }
  std::thread snapshots([&] {
    for (;;) {
      if (!(*log)->WriteSnapshot(engine).ok()) std::_Exit(3);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  snapshots.detach();
  for (uint64_t n = (*log)->next_seq() - 1;; ++n) {
    absl::Status status;
    if (n % 4 == 3) {
      status = engine
                   .UpdateUserSegments("u" + std::to_string(n - 1),
                                       {.remove = {"s" + std::to_string((n - 1) % 3)}})
                   .status();
    } else {
      status =
          engine
              .UpdateUserSegments("u" + std::to_string(n), {.add = {{"s" + std::to_string(n % 3)}}})
              .status();
    }
    if (!status.ok()) {
      std::fprintf(stderr, "op %llu: %s\n", static_cast<unsigned long long>(n),
                   status.ToString().c_str());
      return 1;
    }
    std::printf("ack %llu\n", static_cast<unsigned long long>(n));
    std::fflush(stdout);
  }
}
