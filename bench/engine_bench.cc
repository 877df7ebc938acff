// segd-bench: Google Benchmark suite for the engine.
//
// Most benchmarks share one dataset, built once on first use: 10M registered users with 12-byte
// ids, 1,000 segments whose sizes follow Zipf's law (segment k holds about 10M / k users, so
// s1 holds everyone and the total is ~75M memberships), plus two random 5M-member segments for
// intersections. The dataset is loaded through Engine::ApplyRecovered, the path the log replay
// uses, because the load itself is not what is measured here.
//
// Environment: SEGD_BENCH_USERS overrides the 10M users (for a quick run).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"

namespace segd::engine {
namespace {

constexpr int kSegments = 1000;

uint32_t UserCount() {
  const char* env = std::getenv("SEGD_BENCH_USERS");
  return env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 10'000'000;
}

std::string UserName(uint32_t i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "u%011u", i);  // 12 bytes
  return buf;
}

// A counter that reports nanoseconds per item, given the items done in the timed loop.
benchmark::Counter NsPerItem(int64_t items) {
  return benchmark::Counter(static_cast<double>(items),
                            benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

// Adds `users` (sorted, distinct) to segment `id` through the replay path.
void LoadMembers(Engine& engine, SegmentId id, const std::vector<UserId>& users, TimeMs at,
                 TimeMs expires_at = kNoExpiry) {
  const size_t kBatch = 1 << 20;
  for (size_t i = 0; i < users.size(); i += kBatch) {
    OpBatch batch;
    size_t end = std::min(users.size(), i + kBatch);
    for (size_t k = i; k < end; ++k) {
      batch.memberships.push_back({at, expires_at, users[k], id, OpKind::kAdd, OpReason::kImport});
    }
    if (!engine.ApplyRecovered(batch).ok()) std::abort();
  }
}

SegmentId LoadSegment(Engine& engine, const std::string& name, TimeMs at) {
  SegmentMeta meta;
  meta.id = engine.Stats().active_segments;  // segments are only ever added here
  meta.name = name;
  meta.created_at = at;
  OpBatch batch;
  batch.segments.push_back(meta);
  if (!engine.ApplyRecovered(batch).ok()) std::abort();
  return meta.id;
}

void LoadUsers(Engine& engine, uint32_t from, uint32_t to) {
  const uint32_t kBatch = 1 << 20;
  for (uint32_t i = from; i < to; i += kBatch) {
    OpBatch batch;
    for (uint32_t u = i; u < std::min(to, i + kBatch); ++u) {
      batch.users.push_back({UserEvent::Kind::kCreated, u, UserName(u)});
    }
    if (!engine.ApplyRecovered(batch).ok()) std::abort();
  }
}

// A random subset of [0, n) of about `size` users, sorted.
std::vector<UserId> RandomSubset(uint32_t n, uint64_t size, std::mt19937_64& rng) {
  std::vector<UserId> out;
  if (size >= n) {
    out.resize(n);
    for (uint32_t i = 0; i < n; ++i) out[i] = i;
    return out;
  }
  // Bernoulli for dense sets, sorted-and-deduplicated draws for sparse ones.
  if (size * 20 > n) {
    std::uniform_real_distribution<double> unit(0, 1);
    double p = static_cast<double>(size) / n;
    for (uint32_t i = 0; i < n; ++i) {
      if (unit(rng) < p) out.push_back(i);
    }
    return out;
  }
  out.reserve(size);
  for (uint64_t i = 0; i < size; ++i) out.push_back(rng() % n);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Dataset {
  ManualClock clock{1'800'000'000'000};
  std::unique_ptr<Engine> engine;
  uint32_t users = 0;
  uint64_t memberships = 0;
  size_t rss_before = 0;
  size_t rss_users = 0;
  size_t rss_after = 0;
  double load_seconds = 0;
};

Dataset& Data() {
  static Dataset* data = [] {
    auto* d = new Dataset;
    auto t0 = std::chrono::steady_clock::now();
    d->rss_before = ResidentBytes();
    d->engine = std::make_unique<Engine>(EngineOptions{&d->clock, nullptr, 7});
    d->users = UserCount();
    LoadUsers(*d->engine, 0, d->users);
    d->rss_users = ResidentBytes();
    std::mt19937_64 rng(2024);
    TimeMs now = d->clock.NowMs();
    for (int k = 1; k <= kSegments; ++k) {
      SegmentId id = LoadSegment(*d->engine, "s" + std::to_string(k), now);
      auto members = RandomSubset(d->users, d->users / k, rng);
      d->memberships += members.size();
      LoadMembers(*d->engine, id, members, now);
    }
    for (const char* name : {"half_a", "half_b"}) {
      SegmentId id = LoadSegment(*d->engine, name, now);
      auto members = RandomSubset(d->users, d->users / 2, rng);
      d->memberships += members.size();
      LoadMembers(*d->engine, id, members, now);
    }
    d->rss_after = ResidentBytes();
    d->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return d;
  }();
  return *data;
}

// ------------------------------------------------------------------------------ point reads

// Random (segment, user) probes: segments uniform over the 1,000, users uniform.
std::vector<std::pair<SegmentId, UserId>> Probes(uint32_t users, size_t n) {
  std::mt19937_64 rng(99);
  std::vector<std::pair<SegmentId, UserId>> probes(n);
  for (auto& p : probes)
    p = {static_cast<SegmentId>(rng() % kSegments), static_cast<UserId>(rng() % users)};
  return probes;
}

void BM_ContainsByInternalId(benchmark::State& state) {
  Dataset& d = Data();
  auto probes = Probes(d.users, 1 << 20);
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    const auto& p = probes[i++ & (probes.size() - 1)];
    hits += d.engine->Contains(p.first, p.second);
  }
  benchmark::DoNotOptimize(hits);
}
BENCHMARK(BM_ContainsByInternalId);

// The CPU cost of the path alone: 4,096 probes (random segments and users) cycled, so that
// what they touch stays in cache.
void BM_ContainsHotSet(benchmark::State& state) {
  Dataset& d = Data();
  auto probes = Probes(d.users, 4096);
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    const auto& p = probes[i++ & 4095];
    hits += d.engine->Contains(p.first, p.second);
  }
  benchmark::DoNotOptimize(hits);
}
BENCHMARK(BM_ContainsHotSet);

// The same, but the user named by its 12-byte external id (segment id already resolved, as a
// server resolves it once per request).
void BM_ContainsByExternalId(benchmark::State& state) {
  Dataset& d = Data();
  auto probes = Probes(d.users, 1 << 16);
  std::vector<std::string> names;
  for (const auto& p : probes) names.push_back(UserName(p.second));
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    size_t k = i++ & (probes.size() - 1);
    auto user = d.engine->FindUser(names[k]);
    hits += user && d.engine->Contains(probes[k].first, *user);
  }
  benchmark::DoNotOptimize(hits);
}
BENCHMARK(BM_ContainsByExternalId);

// Engine::Check: segment by name and user by external id, with the expiry, as the API asks.
void BM_CheckByNames(benchmark::State& state) {
  Dataset& d = Data();
  auto probes = Probes(d.users, 1 << 16);
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& p : probes)
    names.emplace_back("s" + std::to_string(p.first + 1), UserName(p.second));
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    const auto& n = names[i++ & (names.size() - 1)];
    hits += d.engine->Check(n.first, n.second)->member;
  }
  benchmark::DoNotOptimize(hits);
}
BENCHMARK(BM_CheckByNames);

void BM_UserSegments(benchmark::State& state) {
  Dataset& d = Data();
  std::mt19937_64 rng(5);
  std::vector<std::string> names;
  for (int i = 0; i < 4096; ++i) names.push_back(UserName(rng() % d.users));
  size_t i = 0, total = 0;
  for (auto _ : state) total += d.engine->UserSegments(names[i++ & 4095]).size();
  state.counters["segments_per_user"] = static_cast<double>(total) / state.iterations();
}
BENCHMARK(BM_UserSegments);

// A user in all 1,000 segments.
void BM_UserSegmentsAllThousand(benchmark::State& state) {
  Dataset& d = Data();
  static bool loaded = false;
  const std::string user = "heavy-user-1";
  if (!loaded) {
    UserUpdate update;
    for (int k = 1; k <= kSegments; ++k) update.add.push_back({"s" + std::to_string(k)});
    if (!d.engine->UpdateUserSegments(user, update).ok()) std::abort();
    loaded = true;
  }
  size_t total = 0;
  for (auto _ : state) total += d.engine->UserSegments(user).size();
  state.counters["segments_per_user"] = static_cast<double>(total) / state.iterations();
}
BENCHMARK(BM_UserSegmentsAllThousand);

// ------------------------------------------------------------------------------ counts, algebra

void BM_CountTenMillion(benchmark::State& state) {
  Dataset& d = Data();
  uint64_t n = 0;
  for (auto _ : state) n = *d.engine->Count("s1");
  state.counters["members"] = static_cast<double>(n);
}
BENCHMARK(BM_CountTenMillion);

void BM_SegmentIntersectCount(benchmark::State& state) {
  Dataset& d = Data();
  uint64_t n = 0;
  for (auto _ : state) n = d.engine->Query("half_a AND half_b", 0)->user_count;
  state.counters["result"] = static_cast<double>(n);
}
BENCHMARK(BM_SegmentIntersectCount)->Unit(benchmark::kMillisecond);

void BM_QueryThreeWay(benchmark::State& state) {
  Dataset& d = Data();
  uint64_t n = 0;
  for (auto _ : state) n = d.engine->Query("(s2 OR s3) AND NOT s5", 100)->user_count;
  state.counters["result"] = static_cast<double>(n);
}
BENCHMARK(BM_QueryThreeWay)->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------ writes

// One membership added and then removed, through the full mutation path (validation, planning,
// NullSink, apply). Reported per single-membership mutation.
void BM_AddRemoveOne(benchmark::State& state) {
  Dataset& d = Data();
  std::mt19937_64 rng(11);
  std::vector<std::string> users;
  for (int i = 0; i < 4096; ++i) users.push_back(UserName(rng() % d.users));
  UserUpdate add{.add = {{"s500"}}}, remove{.remove = {"s500"}};
  size_t i = 0;
  for (auto _ : state) {
    const std::string& u = users[i++ & 4095];
    benchmark::DoNotOptimize(d.engine->UpdateUserSegments(u, add));
    benchmark::DoNotOptimize(d.engine->UpdateUserSegments(u, remove));
  }
  state.SetItemsProcessed(state.iterations() * 2);
  state.counters["ns_per_mutation"] = NsPerItem(state.iterations() * 2);
}
BENCHMARK(BM_AddRemoveOne);

// The engine's mutation core without the string front: one add and one remove by internal ids,
// applied through the same code that applies planned batches (writer lock, shard lock, bitmap,
// reverse index, counts).
void BM_ApplyAddRemoveByInternalId(benchmark::State& state) {
  Dataset& d = Data();
  std::mt19937_64 rng(12);
  SegmentId segment = *d.engine->FindSegment("s500");
  std::vector<OpBatch> adds(4096), removes(4096);
  for (size_t i = 0; i < adds.size(); ++i) {
    UserId u = rng() % d.users;
    adds[i].memberships.push_back({0, kNoExpiry, u, segment, OpKind::kAdd, OpReason::kApi});
    removes[i].memberships.push_back({0, kNoExpiry, u, segment, OpKind::kRemove, OpReason::kApi});
  }
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ & 4095;
    benchmark::DoNotOptimize(d.engine->ApplyRecovered(adds[k]));
    benchmark::DoNotOptimize(d.engine->ApplyRecovered(removes[k]));
  }
  state.counters["ns_per_mutation"] = NsPerItem(state.iterations() * 2);
}
BENCHMARK(BM_ApplyAddRemoveByInternalId);

// Bulk: batches of 10,000 adds of random users to one segment, then the same removes.
void BM_ApplyBulkTenThousand(benchmark::State& state) {
  Dataset& d = Data();
  std::mt19937_64 rng(13);
  SegmentId segment = *d.engine->FindSegment("s700");
  OpBatch add, remove;
  auto users = RandomSubset(d.users, 10000, rng);
  for (UserId u : users) {
    if (d.engine->Contains(segment, u)) continue;
    add.memberships.push_back({0, kNoExpiry, u, segment, OpKind::kAdd, OpReason::kImport});
    remove.memberships.push_back({0, kNoExpiry, u, segment, OpKind::kRemove, OpReason::kApi});
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(d.engine->ApplyRecovered(add));
    benchmark::DoNotOptimize(d.engine->ApplyRecovered(remove));
  }
  state.counters["ns_per_mutation"] = NsPerItem(state.iterations() * 2 * add.memberships.size());
}
BENCHMARK(BM_ApplyBulkTenThousand)->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------ memory

// Reports memory figures of the shared dataset (one iteration; the numbers are the result).
void BM_MemoryPerMembership(benchmark::State& state) {
  Dataset& d = Data();
  for (auto _ : state) benchmark::DoNotOptimize(d.engine->Stats());
  EngineMemory m = d.engine->Memory();
  double members = static_cast<double>(d.memberships);
  state.counters["memberships"] = members;
  state.counters["bitmap_bytes_per_membership"] = m.bitmaps / members;
  state.counters["membership_bytes_per_membership"] = m.memberships / members;
  state.counters["rss_bytes_per_membership"] = (d.rss_after - d.rss_users) / members;
  state.counters["dictionary_bytes_per_user"] = static_cast<double>(m.dictionary) / d.users;
  state.counters["rss_bytes_per_user_dictionary"] =
      static_cast<double>(d.rss_users - d.rss_before) / d.users;
  state.counters["load_seconds"] = d.load_seconds;
}
BENCHMARK(BM_MemoryPerMembership)->Iterations(1);

// A random 10% of 10M users in one segment: bytes of its bitmaps per member.
void BM_BitmapBytesRandomTenPercent(benchmark::State& state) {
  const uint32_t users = UserCount();
  ManualClock clock(1'800'000'000'000);
  Engine engine(EngineOptions{&clock, nullptr, 3});
  std::mt19937_64 rng(8);
  SegmentId id = LoadSegment(engine, "ten", clock.NowMs());
  auto members = RandomSubset(users, users / 10, rng);
  LoadMembers(engine, id, members, clock.NowMs());
  for (auto _ : state) benchmark::DoNotOptimize(engine.Stats());
  state.counters["bitmap_bytes_per_membership"] =
      static_cast<double>(engine.Memory().bitmaps) / members.size();
}
BENCHMARK(BM_BitmapBytesRandomTenPercent)->Iterations(1);

// Extra bytes a TTL costs: 1M memberships with expiries spread over a day, against the same
// without TTL.
void BM_BytesPerTtlMembership(benchmark::State& state) {
  const uint32_t users = std::min<uint32_t>(UserCount(), 10'000'000);
  auto measure = [&](bool ttl) {
    ManualClock clock(1'800'000'000'000);
    Engine engine(EngineOptions{&clock, nullptr, 3});
    std::mt19937_64 rng(8);
    SegmentId id = LoadSegment(engine, "t", clock.NowMs());
    auto members = RandomSubset(users, 1'000'000, rng);
    OpBatch batch;
    for (UserId u : members) {
      TimeMs exp = ttl ? clock.NowMs() + 1000 * static_cast<TimeMs>(1 + rng() % 86400) : kNoExpiry;
      batch.memberships.push_back({clock.NowMs(), exp, u, id, OpKind::kAdd, OpReason::kApi});
    }
    if (!engine.ApplyRecovered(batch).ok()) std::abort();
    EngineMemory m = engine.Memory();
    return std::make_pair(static_cast<double>(m.memberships + m.expiry_wheel), members.size());
  };
  std::pair<double, size_t> with{}, without{};
  for (auto _ : state) {
    with = measure(true);
    without = measure(false);
  }
  state.counters["extra_bytes_per_ttl_membership"] = (with.first - without.first) / with.second;
  state.counters["bytes_per_ttl_membership"] = with.first / with.second;
}
BENCHMARK(BM_BytesPerTtlMembership)->Iterations(1)->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------ stalls

// Runs `work` on this thread while a reader thread checks memberships back to back, and reports
// the reader's worst and median single-check latency during the work.
template <typename Work>
void WithReader(benchmark::State& state, Engine& engine, SegmentId segment, uint32_t users,
                Work work) {
  std::atomic<bool> stop{false};
  std::vector<double> latencies;
  latencies.reserve(1 << 22);
  double worst = 0;
  std::chrono::steady_clock::time_point worst_at;
  std::thread reader([&] {
    std::mt19937_64 rng(1);
    while (!stop.load(std::memory_order_relaxed)) {
      auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(engine.Contains(segment, rng() % users));
      auto t1 = std::chrono::steady_clock::now();
      double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
      if (us > worst) {
        worst = us;
        worst_at = t0;
      }
      if (latencies.size() < latencies.capacity()) latencies.push_back(us);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t0 = std::chrono::steady_clock::now();
  work();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // When, as a fraction of the work's duration, the worst read started (< 0: before the work).
  state.counters["worst_at_fraction"] =
      std::chrono::duration<double>(worst_at - t0).count() / std::max(seconds, 1e-9);
  stop = true;
  reader.join();
  std::sort(latencies.begin(), latencies.end());
  state.SetIterationTime(seconds);
  state.counters["reader_max_us"] = latencies.empty() ? 0 : latencies.back();
  state.counters["reader_p50_us"] = latencies.empty() ? 0 : latencies[latencies.size() / 2];
  state.counters["reader_p9999_us"] =
      latencies.empty() ? 0 : latencies[latencies.size() * 9999 / 10000];
}

// The control for the two below: the same reader with no writer at all, for 1.5 s. Its worst
// latency is what this machine's scheduling alone costs.
void BM_ReaderAloneControl(benchmark::State& state) {
  Dataset& d = Data();
  SegmentId id = *d.engine->FindSegment("s1");
  for (auto _ : state) {
    WithReader(state, *d.engine, id, d.users,
               [] { std::this_thread::sleep_for(std::chrono::milliseconds(1500)); });
  }
}
BENCHMARK(BM_ReaderAloneControl)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// 1M memberships of one segment all due in the same second, expired by one ProcessExpiries
// call while a reader probes that segment.
void BM_ExpiryBurstOneMillion(benchmark::State& state) {
  const uint32_t users = std::min<uint32_t>(UserCount(), 10'000'000);
  for (auto _ : state) {
    state.PauseTiming();
    ManualClock clock(1'800'000'000'000);
    Engine engine(EngineOptions{&clock, nullptr, 3});
    std::mt19937_64 rng(8);
    LoadUsers(engine, 0, users);
    SegmentId id = LoadSegment(engine, "burst", clock.NowMs());
    auto members = RandomSubset(users, 1'000'000, rng);
    LoadMembers(engine, id, members, clock.NowMs(), clock.NowMs() + 60'000);
    clock.Advance(61'000);
    state.ResumeTiming();
    uint64_t expired = 0;
    WithReader(state, engine, id, users, [&] { expired = *engine.ProcessExpiries(); });
    state.counters["expired"] = static_cast<double>(expired);
  }
}
BENCHMARK(BM_ExpiryBurstOneMillion)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// 1M memberships of one segment whose expiries are spread over one second (a millisecond
// each for 1,000 users), expired by the ten ProcessExpiries calls of that second (the server's
// 100 ms ticks). Time: the ten calls. Each call hands out the tenth that came due, and none
// looks again at entries not yet due.
void BM_ExpiryTicksSpreadOverASecond(benchmark::State& state) {
  const uint32_t users = std::min<uint32_t>(UserCount(), 10'000'000);
  for (auto _ : state) {
    state.PauseTiming();
    ManualClock clock(1'800'000'000'000);
    Engine engine(EngineOptions{&clock, nullptr, 3});
    std::mt19937_64 rng(9);
    LoadUsers(engine, 0, users);
    SegmentId id = LoadSegment(engine, "spread", clock.NowMs());
    auto members = RandomSubset(users, 1'000'000, rng);
    const TimeMs first = clock.NowMs() + 60'000;
    for (size_t i = 0; i < members.size(); i += 1000) {
      const size_t end = std::min(members.size(), i + 1000);
      std::vector<UserId> slice(members.begin() + i, members.begin() + end);
      LoadMembers(engine, id, slice, clock.NowMs(), first + static_cast<TimeMs>(i / 1000));
    }
    clock.Advance(60'000 - 1);
    if (!engine.ProcessExpiries().ok()) std::abort();  // nothing due yet
    state.ResumeTiming();
    uint64_t expired = 0;
    for (int tick = 0; tick < 10; ++tick) {
      clock.Advance(100);
      expired += *engine.ProcessExpiries();
    }
    state.counters["expired"] = static_cast<double>(expired);
  }
}
BENCHMARK(BM_ExpiryTicksSpreadOverASecond)->Iterations(1)->Unit(benchmark::kMillisecond);

// Deleting the 10M-member segment while a reader probes it.
void BM_DeleteTenMillionSegment(benchmark::State& state) {
  const uint32_t users = UserCount();
  for (auto _ : state) {
    state.PauseTiming();
    ManualClock clock(1'800'000'000'000);
    Engine engine(EngineOptions{&clock, nullptr, 3});
    LoadUsers(engine, 0, users);
    SegmentId id = LoadSegment(engine, "all", clock.NowMs());
    std::mt19937_64 rng(8);
    LoadMembers(engine, id, RandomSubset(users, users, rng), clock.NowMs());
    state.ResumeTiming();
    uint64_t removed = 0;
    WithReader(state, engine, id, users, [&] { removed = *engine.DeleteSegment("all"); });
    state.counters["removed"] = static_cast<double>(removed);
  }
}
BENCHMARK(BM_DeleteTenMillionSegment)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace segd::engine
