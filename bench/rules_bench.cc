// Rule segments (part of segd-bench; select with --benchmark_filter=Rules).
//
// The workload of issue 15's targets, scaled by SEGD_RULES_USERS (default 1M; the targets are
// stated for 10M): that many registered users, 100 rules over 20 event types (counts with and
// without WHERE, sums, did and NOT did with windows from an hour to 30 days, some with a
// trait), and events whose users follow Zipf's law (s = 1.1) with a property or two each,
// arriving in time order but for one in twenty, late by up to an hour.
//
//   BM_RulesIngestEngine      events/s through the engine alone, batches of 10,000
//   BM_RulesIngestLogged      the same with the durable log (process durability)
//   BM_RulesIngestOneEvent    one event a mutation: the server-side cost of a single event
//   BM_RulesBackfill          a new rule computed over the logged events, events/s
//   BM_RulesRestart           recovery of that log (memberships and rule state), seconds
//   BM_RulesStateBytes        bytes of rule state per (user, aggregate) with state
//   BM_RulesMassExit/L        SEGD_RULES_EXITS users (default 1M) leave a rule segment at the
//                             same millisecond: seconds until all are out (L=0 the engine
//                             alone, L=1 with the log, process durability), and a reader's
//                             check latency meanwhile

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "storage/oplog.h"

namespace segd::engine {
namespace {

constexpr int kTypes = 20;
constexpr int kRules = 100;
constexpr size_t kBatch = 10000;

uint32_t Users() {
  const char* env = std::getenv("SEGD_RULES_USERS");
  return env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 1'000'000;
}

std::string Rule(int r) {
  const std::string t = absl::StrCat("e", r % kTypes);
  switch ((r / kTypes) % 5) {
    case 0:
      return absl::StrCat("count(", t, ", 7d) >= ", 2 + r % 5);
    case 1:
      return absl::StrCat("did(", t, ", 1h)");
    case 2:
      return absl::StrCat("trait.plan = \"pro\" AND NOT did(", t, ", 30d)");
    case 3:
      return absl::StrCat("sum(", t, ", properties.v, 30d) > 50");
    default:
      return absl::StrCat("count(", t, " WHERE properties.c = \"x\") >= 3");
  }
}

// Zipf(s) over [0, n) by inverting a continuous approximation of the CDF.
class Zipf {
 public:
  Zipf(uint32_t n, double s) : n_(n), s_(s), h_n_(H(n + 0.5)), h_0_(H(0.5)) {}
  uint32_t operator()(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(h_0_, h_n_);
    const double x = std::pow(u(rng) * (1 - s_), 1 / (1 - s_)) - 0.5;
    return std::min<uint32_t>(n_ - 1, static_cast<uint32_t>(std::max(0.0, x)));
  }

 private:
  double H(double x) const { return std::pow(x, 1 - s_) / (1 - s_); }
  uint32_t n_;
  double s_, h_n_, h_0_;
};

std::vector<EventInput> MakeEvents(size_t count, uint32_t users, TimeMs now, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Zipf zipf(users, 1.1);
  std::vector<EventInput> out(count);
  for (EventInput& e : out) {
    e.user_id = absl::StrCat("u", zipf(rng));
    e.type = absl::StrCat("e", rng() % kTypes);
    // In order, one a microsecond or so, and one in twenty late by up to an hour.
    e.at = rng() % 20 == 0 ? now - static_cast<TimeMs>(rng() % (3600 * 1000))
                           : now - static_cast<TimeMs>((count - (&e - out.data())) / 1000);
    e.properties.push_back({"v", rules::Value(static_cast<double>(rng() % 100))});
    if (rng() % 2) e.properties.push_back({"c", rules::Value(std::string(rng() % 3 ? "x" : "y"))});
    if (rng() % 50 == 0) e.traits.push_back({"plan", rules::Value(std::string("pro"))});
  }
  return out;
}

// Registers `users` users and creates the rules (backfilled at once: no events yet).
void Setup(Engine& engine, uint32_t users) {
  std::vector<ImportItem> items;
  if (!engine.CreateSegment({.name = "all"}).ok()) std::abort();
  for (uint32_t i = 0; i < users; ++i) {
    items.push_back({absl::StrCat("u", i), std::nullopt});
    if (items.size() == 1'000'000 || i + 1 == users) {
      if (!engine.Import("all", items, std::nullopt).ok()) std::abort();
      items.clear();
    }
  }
  for (int r = 0; r < kRules; ++r) {
    if (!engine.CreateSegment({.name = absl::StrCat("r", r), .rule = Rule(r)}).ok()) std::abort();
  }
  if (!engine.RunBackfills().ok()) std::abort();
}

// An engine writing to `log` and backfilling from it.
EngineOptions WithLog(storage::OpLog* log) {
  EngineOptions options;
  options.sink = log;
  options.events = log;
  return options;
}

std::string FreshDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("segd-bench-rules-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

void Ingest(benchmark::State& state, Engine& engine, uint32_t users, size_t batch) {
  const std::vector<EventInput> events =
      MakeEvents(1 << 20, users, SystemClock::Default()->NowMs(), 7);
  size_t next = 0;
  uint64_t done = 0;
  for (auto _ : state) {
    if (next + batch > events.size()) next = 0;
    auto r = engine.Ingest(absl::MakeConstSpan(events).subspan(next, batch));
    if (!r.ok() || r->accepted != batch) std::abort();
    next += batch;
    done += batch;
  }
  state.SetItemsProcessed(static_cast<int64_t>(done));
  const RuleStats stats = engine.GetRuleStats();
  state.counters["rule_changes"] = static_cast<double>(stats.rule_changes);
  state.counters["states"] = static_cast<double>(stats.rules.states);
}

void BM_RulesIngestEngine(benchmark::State& state) {
  const uint32_t users = Users();
  Engine engine;
  Setup(engine, users);
  Ingest(state, engine, users, kBatch);
}
BENCHMARK(BM_RulesIngestEngine)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RulesIngestLogged(benchmark::State& state) {
  const uint32_t users = Users();
  const std::string dir = FreshDir("logged");
  {
    auto log = storage::OpLog::Open(dir, {});
    if (!log.ok()) std::abort();
    EngineOptions options = WithLog(log->get());
    Engine engine(options);
    Setup(engine, users);
    Ingest(state, engine, users, kBatch);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RulesIngestLogged)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RulesIngestOneEvent(benchmark::State& state) {
  const uint32_t users = Users();
  Engine engine;
  Setup(engine, users);
  Ingest(state, engine, users, 1);
}
BENCHMARK(BM_RulesIngestOneEvent)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A log with events, shared by the backfill and restart benchmarks.
struct LoggedEvents {
  std::string dir = FreshDir("events");
  uint64_t events = 0;
  LoggedEvents() {
    auto log = storage::OpLog::Open(dir, {});
    if (!log.ok()) std::abort();
    EngineOptions options = WithLog(log->get());
    Engine engine(options);
    const uint32_t users = Users();
    Setup(engine, users);
    const TimeMs now = SystemClock::Default()->NowMs();
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      std::vector<EventInput> batch = MakeEvents(1 << 20, users, now, seed);
      for (size_t i = 0; i < batch.size(); i += kBatch) {
        auto r = engine.Ingest(absl::MakeConstSpan(batch).subspan(i, kBatch));
        if (!r.ok()) std::abort();
        events += r->accepted;
      }
    }
  }
  ~LoggedEvents() { std::filesystem::remove_all(dir); }
};

LoggedEvents& Logged() {
  static LoggedEvents* logged = new LoggedEvents;
  return *logged;
}

void BM_RulesBackfill(benchmark::State& state) {
  LoggedEvents& logged = Logged();
  auto log = storage::OpLog::Open(logged.dir, {});
  if (!log.ok()) std::abort();
  EngineOptions options = WithLog(log->get());
  Engine engine(options);
  if (!(*log)->Recover(engine).ok()) std::abort();
  int n = 0;
  for (auto _ : state) {
    // A rule with a new aggregate: the backfill reads every logged event.
    const std::string name = absl::StrCat("new", n);
    const std::string rule = absl::StrCat("count(e", n % kTypes, ", ", 29 - n % 20, "d) >= 3");
    ++n;
    if (!engine.CreateSegment({.name = name, .rule = rule}).ok()) std::abort();
    if (!engine.RunBackfills().ok()) std::abort();
  }
  state.SetItemsProcessed(static_cast<int64_t>(logged.events * state.iterations()));
}
BENCHMARK(BM_RulesBackfill)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

void BM_RulesRestart(benchmark::State& state) {
  LoggedEvents& logged = Logged();
  storage::RecoveryStats stats;
  for (auto _ : state) {
    auto log = storage::OpLog::Open(logged.dir, {});
    if (!log.ok()) std::abort();
    Engine engine(EngineOptions{nullptr, log->get()});
    auto recovered = (*log)->Recover(engine);
    if (!recovered.ok()) std::abort();
    stats = *recovered;
  }
  state.counters["events"] = static_cast<double>(stats.events);
  state.counters["rules_seconds"] = stats.rules_seconds;
  state.counters["records_seconds"] = stats.replay_seconds;
}
BENCHMARK(BM_RulesRestart)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_RulesStateBytes(benchmark::State& state) {
  LoggedEvents& logged = Logged();
  for (auto _ : state) {
    auto log = storage::OpLog::Open(logged.dir, {});
    if (!log.ok()) std::abort();
    Engine engine(EngineOptions{nullptr, log->get()});
    if (!(*log)->Recover(engine).ok()) std::abort();
    const RuleStats stats = engine.GetRuleStats(/*walk=*/true);
    state.counters["states"] = static_cast<double>(stats.rules.states);
    state.counters["entries"] = static_cast<double>(stats.rules.entries);
    state.counters["bytes_per_state"] =
        static_cast<double>(stats.rules.bytes) / std::max<uint64_t>(1, stats.rules.states);
    state.counters["disk_bytes_per_event"] =
        static_cast<double>((*log)->ApproximateBytes()) / std::max<uint64_t>(1, logged.events);
  }
}
BENCHMARK(BM_RulesStateBytes)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_RulesMassExit(benchmark::State& state) {
  const char* env = std::getenv("SEGD_RULES_EXITS");
  const uint32_t users = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 1'000'000;
  const std::string dir = FreshDir("exit");
  for (auto _ : state) {
    state.PauseTiming();
    auto log = storage::OpLog::Open(dir, {});
    if (!log.ok()) std::abort();
    const TimeMs start = SystemClock::Default()->NowMs();
    ManualClock clock(start);
    EngineOptions options;
    if (state.range(0) == 1) {
      options.sink = log->get();
      options.events = log->get();
    }
    options.clock = &clock;
    Engine engine(options);
    if (!engine.CreateSegment({.name = "burst", .rule = "did(ping, 1m)"}).ok()) std::abort();
    if (!engine.RunBackfills().ok()) std::abort();
    // Every user pings at the same millisecond, so every one leaves a minute later.
    std::vector<EventInput> batch(kBatch);
    for (uint32_t i = 0; i < users; i += kBatch) {
      batch.resize(std::min<size_t>(kBatch, users - i));
      for (size_t j = 0; j < batch.size(); ++j) {
        batch[j] = EventInput{.user_id = absl::StrCat("u", i + j), .type = "ping", .at = start};
      }
      if (!engine.Ingest(batch).ok()) std::abort();
    }
    if (*engine.Count("burst") != users) std::abort();
    // A reader checks random users the whole time.
    std::atomic<bool> stop{false};
    std::vector<uint64_t> latencies;
    latencies.reserve(1 << 22);
    std::thread reader([&] {
      std::mt19937_64 rng(5);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::string user = absl::StrCat("u", rng() % users);
        const auto t0 = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(engine.Check("burst", user));
        latencies.push_back(
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now() - t0)
                                      .count()));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    clock.Set(start + 60'000);
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    // What the housekeeper's tick does.
    if (!engine.ProcessRuleDeadlines().ok()) std::abort();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.store(true);
    reader.join();
    if (*engine.Count("burst") != 0) std::abort();
    std::sort(latencies.begin(), latencies.end());
    auto pct = [&](double p) {
      return latencies.empty() ? 0.0
                               : static_cast<double>(latencies[static_cast<size_t>(
                                     p * static_cast<double>(latencies.size() - 1))]) /
                                     1000.0;
    };
    state.counters["exits"] = users;
    state.counters["exit_seconds"] = seconds;
    state.counters["check_p50_us"] = pct(0.5);
    state.counters["check_p999_us"] = pct(0.999);
    state.counters["check_max_us"] = latencies.empty() ? 0 : latencies.back() / 1000.0;
    state.counters["checks"] = static_cast<double>(latencies.size());
    state.ResumeTiming();
  }
  std::filesystem::remove_all(dir);
}
// Argument: 0 the engine alone, 1 with the durable log.
BENCHMARK(BM_RulesMassExit)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace segd::engine
