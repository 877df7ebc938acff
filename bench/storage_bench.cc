// Storage benchmarks (part of segd-bench; select with --benchmark_filter=Log).
//
// Each benchmark works in a fresh directory under $TMPDIR (default /tmp), removed afterwards.

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "storage/csv_report.h"
#include "storage/oplog.h"

namespace segd::storage {
namespace {

std::string FreshDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("segd-bench-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

struct LoggedEngine {
  std::string dir;
  std::unique_ptr<OpLog> log;
  std::unique_ptr<engine::Engine> engine;

  LoggedEngine(const std::string& name, Durability durability) : dir(FreshDir(name)) {
    log = *OpLog::Open(dir, {durability});
    engine = std::make_unique<engine::Engine>(engine::EngineOptions{nullptr, log.get(), 1});
    if (!engine->CreateSegment({.name = "a"}).ok()) std::abort();
  }
  ~LoggedEngine() {
    engine.reset();
    log.reset();
    std::filesystem::remove_all(dir);
  }
};

// Single-membership adds from many writer threads at once (one new user each), through the
// engine and the log. Arg: 0 = process durability, 1 = fsync (group commit).
LoggedEngine* shared_engine = nullptr;
std::atomic<uint64_t> next_user{0};

void BM_LoggedSingleWriters(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_engine = new LoggedEngine("writers", state.range(0) ? Durability::kFsync
                                                                : Durability::kProcess);
  }
  for (auto _ : state) {
    std::string user = "user-" + std::to_string(next_user.fetch_add(1));
    if (!shared_engine->engine->UpdateUserSegments(user, {.add = {{"a"}}}).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared_engine;
    shared_engine = nullptr;
  }
}
BENCHMARK(BM_LoggedSingleWriters)->Arg(0)->Arg(1)->Threads(50)->UseRealTime();

// Bulk: imports of 10,000 new users per request into one segment, process durability.
void BM_LoggedBulkImport(benchmark::State& state) {
  LoggedEngine logged("bulk", Durability::kProcess);
  uint64_t n = 0;
  std::vector<engine::ImportItem> items(10000);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& item : items) item.user_id = "bulk-" + std::to_string(n++);
    state.ResumeTiming();
    if (!logged.engine->Import("a", items, std::nullopt).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * items.size());
}
BENCHMARK(BM_LoggedBulkImport)->Unit(benchmark::kMillisecond)->UseRealTime();

// A log of 2M records (500k users, each imported into 4 segments, 10k per request), built once.
LoggedEngine& ReportLog() {
  static LoggedEngine* logged = [] {
    auto* l = new LoggedEngine("report", Durability::kProcess);
    for (const char* s : {"b", "c", "d"}) {
      if (!l->engine->CreateSegment({.name = s}).ok()) std::abort();
    }
    const char* segments[] = {"a", "b", "c", "d"};
    std::vector<engine::ImportItem> items(10000);
    for (int batch = 0; batch < 200; ++batch) {
      // Each group of four imports adds the same 10k users to a, b, c and d.
      for (int i = 0; i < 10000; ++i) items[i].user_id = "u" + std::to_string(batch / 4 * 10000 + i);
      if (!l->engine->Import(segments[batch % 4], items, 3600).ok()) std::abort();
    }
    return l;
  }();
  return *logged;
}

// Streams the whole log as CSV (to a byte counter).
void BM_LogReportWholeLog(benchmark::State& state) {
  LoggedEngine& l = ReportLog();
  uint64_t rows = 0, bytes = 0;
  for (auto _ : state) {
    auto r = WriteCsvReport(*l.log, *l.engine, {}, [&](absl::string_view chunk) {
      bytes += chunk.size();
      return true;
    });
    rows += *r;
  }
  state.SetItemsProcessed(rows);
  state.counters["bytes_per_row"] = static_cast<double>(bytes) / rows;
}
BENCHMARK(BM_LogReportWholeLog)->Unit(benchmark::kMillisecond)->UseRealTime();

// One user's report out of the 2M-record log.
void BM_LogReportOneUser(benchmark::State& state) {
  LoggedEngine& l = ReportLog();
  engine::UserId user = *l.engine->FindUser("u12345");
  uint64_t rows = 0;
  for (auto _ : state) {
    rows += *WriteCsvReport(*l.log, *l.engine, {.users = {user}},
                            [](absl::string_view) { return true; });
  }
  state.counters["rows"] = static_cast<double>(rows) / state.iterations();
}
BENCHMARK(BM_LogReportOneUser)->UseRealTime();

// Recovery by replay of the 2M-record log into a fresh engine (no snapshots yet).
void BM_LogRecoverReplay(benchmark::State& state) {
  LoggedEngine& l = ReportLog();
  uint64_t records = 0;
  for (auto _ : state) {
    engine::Engine fresh(engine::EngineOptions{nullptr, nullptr, 1});
    auto stats = l.log->Recover(fresh);
    records += stats->records;
  }
  state.SetItemsProcessed(records);
}
BENCHMARK(BM_LogRecoverReplay)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace segd::storage
BENCHMARK_MAIN();
