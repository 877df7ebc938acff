// The by_user memtable alone (part of segd-bench; --benchmark_filter=UserIndexMemtable): a
// RocksDB column family set up like by_user (4-byte user prefix, 20-byte keys), 250,000 puts
// without the write-ahead log into one memtable, then a flush. Reported per entry: the put
// (the foreground cost a write pays) and the flush (the background cost it leaves).
//
// Args: memtable (0 = RocksDB's skiplist, 1 = segd's prefix lists), users (0 = random among
// 1M existing users, 1 = ascending new users).

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "storage/detail/prefix_list_memtable.h"
#include "storage/oplog_format.h"

namespace segd::storage {
namespace {

constexpr int kEntries = 250'000;

void BM_UserIndexMemtable(benchmark::State& state) {
  const bool lists = state.range(0) == 1;
  const bool ascending = state.range(1) == 1;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("segd-bench-memtable-" + std::to_string(::getpid()));
  double put_seconds = 0, flush_seconds = 0;
  std::mt19937 rng(1);
  for (auto _ : state) {
    std::filesystem::remove_all(dir);
    rocksdb::Options options;
    options.create_if_missing = true;
    options.allow_concurrent_memtable_write = false;
    options.write_buffer_size = 256 << 20;  // one memtable holds every put
    options.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    if (lists) options.memtable_factory = detail::NewPrefixListMemTableFactory(1 << 17);
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, dir.string(), &raw).ok()) std::abort();
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions no_wal;
    no_wal.disableWAL = true;
    std::string key;  // user (4) · at (8) · seq (8), as by_user's keys
    key.reserve(20);
    const std::string value(16, 'v');
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < kEntries; ++i) {
      const uint64_t user = ascending ? 1'000'000 + i : rng() % 1'000'000;
      key.clear();
      PutBigEndian32(&key, static_cast<uint32_t>(user));
      PutBigEndian64(&key, 1'800'000'000'000 + i);
      PutBigEndian64(&key, i);
      if (!db->Put(no_wal, key, value).ok()) std::abort();
    }
    const auto put_end = std::chrono::steady_clock::now();
    if (!db->Flush(rocksdb::FlushOptions()).ok()) std::abort();
    const auto flush_end = std::chrono::steady_clock::now();
    put_seconds += std::chrono::duration<double>(put_end - start).count();
    flush_seconds += std::chrono::duration<double>(flush_end - put_end).count();
    state.SetIterationTime(std::chrono::duration<double>(flush_end - start).count());
  }
  std::filesystem::remove_all(dir);
  const double entries = static_cast<double>(kEntries) * static_cast<double>(state.iterations());
  state.counters["put_us"] = put_seconds * 1e6 / entries;
  state.counters["flush_us"] = flush_seconds * 1e6 / entries;
}
BENCHMARK(BM_UserIndexMemtable)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"lists", "ascending"})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace segd::storage
