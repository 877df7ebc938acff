// Merging two users (part of segd-bench; select with --benchmark_filter=Merge).
//
//   BM_MergeUser   a user with 1,000 memberships and 10,000 retained events, merged into
//                  another with 500 of the same segments, through the engine and the durable
//                  log (process durability). Ten rule segments count the events' type with
//                  windows of 1-10 days, so the merge joins rule state and evaluates the rules
//                  again. Time per merge; the merged user is made again, untimed, before each.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "storage/oplog.h"

namespace segd::storage {
namespace {

constexpr int kSegments = 1000;
constexpr int kEvents = 10000;

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "merge bench: %s\n", std::string(s.message()).c_str());
    std::abort();
  }
}

void BM_MergeUser(benchmark::State& state) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("segd-bench-merge-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove_all(dir);
  {
    std::unique_ptr<OpLog> log = *OpLog::Open(dir, {});
    engine::EngineOptions options{nullptr, log.get(), 1};
    options.events = log.get();
    engine::Engine engine(options);
    engine::UserUpdate all, half;
    for (int s = 0; s < kSegments; ++s) {
      const std::string name = "s" + std::to_string(s);
      Check(engine.CreateSegment({.name = name}).status());
      all.add.push_back({name, std::nullopt, std::nullopt});
      if (s % 2 == 0) half.add.push_back({name, std::nullopt, std::nullopt});
    }
    for (int r = 1; r <= 10; ++r) {
      Check(engine
                .CreateSegment({.name = "r" + std::to_string(r),
                                .rule = "count(page_viewed, " + std::to_string(r) +
                                        "d) >= " + std::to_string(r * 500)})
                .status());
    }
    Check(engine.RunBackfills().status());
    Check(engine.UpdateUserSegments("survivor", half).status());
    std::vector<engine::EventInput> events(kEvents);
    int round = 0;
    for (auto _ : state) {
      state.PauseTiming();
      const std::string merged = "merged" + std::to_string(round++);
      Check(engine.UpdateUserSegments(merged, all).status());
      for (engine::EventInput& e : events) e = {merged, "page_viewed", std::nullopt, {}, {}};
      Check(engine.Ingest(events).status());
      state.ResumeTiming();
      auto result = engine.AddAliases("survivor", {merged}, /*merge=*/true);
      if (!result.ok() || result->merged.size() != 1) Check(result.status());
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_MergeUser)->Unit(benchmark::kMillisecond)->Iterations(20)->UseRealTime();

}  // namespace
}  // namespace segd::storage
