// Storage benchmarks (part of segd-bench; select with --benchmark_filter=Log).
//
// Each benchmark works in a fresh directory under $TMPDIR (default /tmp), removed afterwards.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "storage/csv_report.h"
#include "storage/oplog.h"
#include "storage/point_in_time.h"

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
    shared_engine =
        new LoggedEngine("writers", state.range(0) ? Durability::kFsync : Durability::kProcess);
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

// The same with users that exist already: 1M users are imported into segment "b" first, and
// each call adds a random one of them to "a" (a new membership or a renewal; either way one
// logged record). Unlike new users, whose index entries append, an existing user's by_user
// entry lands at a random place in its memtable. Arg: 0 = process, 1 = fsync (only 0 is
// registered: the fsync figure is bound by the disk's sync, not by the index).
void BM_LoggedSingleWritersExistingUsers(benchmark::State& state) {
  constexpr int kUsers = 1'000'000;
  if (state.thread_index() == 0) {
    shared_engine =
        new LoggedEngine("existing", state.range(0) ? Durability::kFsync : Durability::kProcess);
    if (!shared_engine->engine->CreateSegment({.name = "b"}).ok()) std::abort();
    std::vector<engine::ImportItem> items(10000);
    for (int batch = 0; batch < kUsers / 10000; ++batch) {
      for (int i = 0; i < 10000; ++i)
        items[i].user_id = "user-" + std::to_string(batch * 10000 + i);
      if (!shared_engine->engine->Import("b", items, std::nullopt).ok()) std::abort();
    }
  }
  std::mt19937_64 rng(state.thread_index());
  for (auto _ : state) {
    std::string user = "user-" + std::to_string(rng() % kUsers);
    if (!shared_engine->engine->UpdateUserSegments(user, {.add = {{"a"}}}).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared_engine;
    shared_engine = nullptr;
  }
}
BENCHMARK(BM_LoggedSingleWritersExistingUsers)->Arg(0)->Threads(50)->UseRealTime();

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
      for (int i = 0; i < 10000; ++i)
        items[i].user_id = "u" + std::to_string(batch / 4 * 10000 + i);
      if (!l->engine->Import(segments[batch % 4], items, 3600).ok()) std::abort();
    }
    std::atexit([] { delete logged; });  // removes its directory
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

// "Was U in S at T" (storage/point_in_time.h) for random users of the 2M-record log: one
// user's history through the by_user index and the user_runs seek.
void BM_LogMemberAt(benchmark::State& state) {
  LoggedEngine& l = ReportLog();
  const engine::SegmentId segment = *l.engine->FindSegment("b");
  const engine::TimeMs at = engine::SystemClock::Default()->NowMs();
  std::mt19937 rng(3);
  std::vector<engine::UserId> users;
  for (int i = 0; i < 4096; ++i)
    users.push_back(*l.engine->FindUser("u" + std::to_string(rng() % 500000)));
  size_t i = 0, members = 0;
  for (auto _ : state) {
    auto m = MemberAt(*l.log, users[i++ & 4095], segment, at, {});
    members += *m;
  }
  state.counters["member_share"] = static_cast<double>(members) / state.iterations();
}
BENCHMARK(BM_LogMemberAt)->UseRealTime();

// 31 daily sizes of a segment whose Arg members all entered within the period (the worst
// case for a series counted from the log: every entry is scanned).
void BM_LogSizes31Days(benchmark::State& state) {
  const int64_t members = state.range(0);
  LoggedEngine l("sizes", Durability::kProcess);
  std::vector<engine::ImportItem> items(100000);
  for (int64_t done = 0; done < members; done += items.size()) {
    for (size_t i = 0; i < items.size(); ++i) items[i].user_id = "s" + std::to_string(done + i);
    if (!l.engine->Import("a", items, std::nullopt).ok()) std::abort();
  }
  const engine::TimeMs now = engine::SystemClock::Default()->NowMs();
  const engine::TimeMs day = 24 * 3600 * 1000;
  for (auto _ : state) {
    auto sizes = SizesOf(*l.log, *l.engine->FindSegment("a"), now - 31 * day, day, 31, now,
                         static_cast<uint64_t>(members));
    benchmark::DoNotOptimize(sizes);
  }
  state.counters["records"] = static_cast<double>(members);
}
BENCHMARK(BM_LogSizes31Days)
    ->Arg(1'000'000)
    ->Arg(3'000'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One user's month out of a long log: SEGD_BENCH_LOG_RECORDS (default 100M) membership
// records over 90 days, written straight to the log in batches of 10,000 (random users among
// 10M, random segments among 1,000, time advancing evenly), about 10 records per user in all.
// Each iteration scans the middle month for a different user, so the block cache rarely holds
// the answer. The log is built once (several minutes at full size) and removed at exit.
void BM_LogReportOneUserMonthInLongLog(benchmark::State& state) {
  const char* env = std::getenv("SEGD_BENCH_LOG_RECORDS");
  const uint64_t records = env ? std::strtoull(env, nullptr, 10) : 100'000'000;
  constexpr uint32_t kUsers = 10'000'000;
  constexpr engine::TimeMs kStart = 1'790'000'000'000;
  constexpr engine::TimeMs kDay = 86'400'000;
  static std::unique_ptr<OpLog> log;
  static std::string dir;
  static double build_rate = 0;
  if (!log) {
    auto build_start = std::chrono::steady_clock::now();
    dir = FreshDir("long-log");
    log = *OpLog::Open(dir, {Durability::kProcess});
    std::mt19937_64 rng(7);
    engine::OpBatch batch;
    const double step = 90.0 * kDay / static_cast<double>(records);
    for (uint64_t n = 0; n < records;) {
      batch.memberships.clear();
      for (int i = 0; i < 10'000 && n < records; ++i, ++n) {
        auto at = kStart + static_cast<engine::TimeMs>(static_cast<double>(n) * step);
        batch.memberships.push_back({at, engine::kNoExpiry, static_cast<uint32_t>(rng() % kUsers),
                                     static_cast<uint32_t>(rng() % 1000),
                                     (rng() & 3) ? engine::OpKind::kAdd : engine::OpKind::kRemove,
                                     engine::OpReason::kImport});
      }
      if (!log->Write(batch).ok()) std::abort();
    }
    build_rate =
        static_cast<double>(records) /
        std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
    std::atexit([] {
      log.reset();
      std::filesystem::remove_all(dir);
    });
  }
  const HistoryFilter month{.from = kStart + 30 * kDay, .to = kStart + 60 * kDay};
  uint64_t rows = 0;
  uint32_t user = 12345;
  for (auto _ : state) {
    HistoryFilter filter = month;
    filter.users = {user};
    user = (user + 7'654'321) % kUsers;
    absl::Status s = log->ScanHistory(filter, [&](uint64_t, const engine::OpRecord&) {
      ++rows;
      return true;
    });
    if (!s.ok()) std::abort();
  }
  state.counters["rows_per_scan"] = static_cast<double>(rows) / state.iterations();
  state.counters["log_records"] = static_cast<double>(records);
  // Writing it: records each with its own time, random users and segments (4 index entries each).
  state.counters["build_records_per_s"] = build_rate;
  state.counters["log_MB"] = log->ApproximateBytes() / 1e6;
}
BENCHMARK(BM_LogReportOneUserMonthInLongLog)->Unit(benchmark::kMicrosecond)->UseRealTime();

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

// Restart from a snapshot plus a log tail, at full scale: SEGD_BENCH_USERS (default 10M) users
// with 12-byte ids and 1,000 Zipf-sized segments (segment k holds min(1, 1.4/k) of the users,
// at random: 100M memberships for 10M users), a snapshot of that, then a tail of 1M logged
// memberships (imports of 1,000). Timed: what a restart does after a crash that follows the
// tail: open the log (RocksDB replays its write-ahead log) and Recover into a fresh engine
// (dictionaries, snapshot, tail).
void BM_LogRestartFromSnapshot(benchmark::State& state) {
  const char* env = std::getenv("SEGD_BENCH_USERS");
  const uint32_t users = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 10'000'000;
  std::string dir = FreshDir("restart");
  auto log = *OpLog::Open(dir, {Durability::kProcess});
  engine::Engine original(engine::EngineOptions{nullptr, log.get(), 1});
  // Users, logged (the dictionary must be in the log), 1M per batch.
  for (uint32_t from = 0; from < users; from += 1 << 20) {
    engine::OpBatch batch;
    for (uint32_t u = from; u < std::min(users, from + (1u << 20)); ++u) {
      char name[16];
      std::snprintf(name, sizeof name, "u%011u", u);
      batch.users.push_back({engine::UserEvent::Kind::kCreated, u, name});
    }
    if (!log->Write(batch).ok() || !original.ApplyRecovered(batch).ok()) std::abort();
  }
  std::mt19937_64 rng(2024);
  uint64_t memberships = 0;
  for (int k = 1; k <= 1000; ++k) {
    if (!original.CreateSegment({.name = "s" + std::to_string(k)}).ok()) std::abort();
    engine::SegmentId id = *original.FindSegment("s" + std::to_string(k));
    // Memberships straight into memory: the snapshot will carry them.
    engine::OpBatch batch;
    double p = std::min(1.0, 1.4 / k);
    std::uniform_real_distribution<double> unit(0, 1);
    if (k <= 20) {
      for (uint32_t u = 0; u < users; ++u) {
        if (k == 1 || unit(rng) < p)
          batch.memberships.push_back(
              {0, 0, u, id, engine::OpKind::kAdd, engine::OpReason::kImport});
      }
    } else {
      std::vector<uint32_t> pick(static_cast<size_t>(users * p));
      for (auto& u : pick) u = rng() % users;
      std::sort(pick.begin(), pick.end());
      pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
      for (uint32_t u : pick)
        batch.memberships.push_back({0, 0, u, id, engine::OpKind::kAdd, engine::OpReason::kImport});
    }
    memberships += batch.memberships.size();
    if (!original.ApplyRecovered(batch).ok()) std::abort();
  }
  auto snapshot = log->WriteSnapshot(original);
  if (!snapshot.ok()) std::abort();
  // The tail: 1M logged mutations in requests of 1,000 (one segment, random users).
  std::vector<engine::ImportItem> items(1000);
  for (int r = 0; r < 1000; ++r) {
    for (auto& item : items) {
      char name[16];
      std::snprintf(name, sizeof name, "u%011u", static_cast<uint32_t>(rng() % users));
      item.user_id = name;
    }
    if (!original.Import("s" + std::to_string(1 + r % 1000), items, std::nullopt).ok())
      std::abort();
  }
  uint64_t snapshot_bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) snapshot_bytes += e.file_size();
  }
  log.reset();
  RecoveryStats stats;
  double open_seconds = 0;
  for (auto _ : state) {
    // Timed as a restart is: opening the log (RocksDB replays its write-ahead log) and
    // rebuilding the engine.
    auto open_start = std::chrono::steady_clock::now();
    log = *OpLog::Open(dir, {Durability::kProcess});
    open_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - open_start).count();
    engine::Engine recovered(engine::EngineOptions{nullptr, log.get(), 2});
    stats = *log->Recover(recovered);
    if (recovered.Stats().memberships != original.Stats().memberships) std::abort();
  }
  state.counters["memberships"] = static_cast<double>(memberships);
  state.counters["snapshot_encoded_MB"] = snapshot->bytes / 1e6;
  state.counters["data_dir_MB"] = snapshot_bytes / 1e6;
  state.counters["tail_records"] = static_cast<double>(stats.records);
  state.counters["snapshot_write_s"] = snapshot->seconds;
  state.counters["open_s"] = open_seconds;
  state.counters["dictionary_s"] = stats.dictionary_seconds;
  state.counters["snapshot_load_s"] = stats.snapshot_seconds;
  state.counters["tail_replay_s"] = stats.replay_seconds;
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_LogRestartFromSnapshot)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace segd::storage
BENCHMARK_MAIN();
