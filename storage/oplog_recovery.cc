// OpLog's recovery side: rebuilding an engine from the log (Recover, ForEachRecord) and the
// snapshots that shorten it (WriteSnapshot). The write path is in oplog.cc.

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/detail/block_reader.h"
#include "storage/detail/retention_filter.h"
#include "storage/detail/rocks_util.h"
#include "storage/oplog.h"
#include "storage/oplog_format.h"

namespace segd::storage {

using detail::Family;
using detail::FromRocks;
using detail::View;

namespace {

// Records replayed per engine batch during recovery.
constexpr size_t kReplayBatch = 1 << 20;

}  // namespace

absl::StatusOr<RecoveryStats> OpLog::Recover(engine::Engine& engine) {
  auto start = std::chrono::steady_clock::now();
  RecoveryStats stats;
  engine::OpBatch dictionaries;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kSegments)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 4) return absl::DataLossError("corrupt segment key");
      auto meta = DecodeSegment(GetBigEndian32(it->key().data()), View(it->value()));
      if (!meta.ok()) return meta.status();
      dictionaries.segments.push_back(*std::move(meta));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading segments");
  }
  // Segments first (their ids must exist before anything names them), then users in chunks.
  stats.segments = dictionaries.segments.size();
  if (absl::Status s = engine.ApplyRecovered(dictionaries); !s.ok()) return s;
  dictionaries.segments.clear();
  // Identities: merged users before the users (their names are not indexed), aliases after.
  std::vector<engine::UserMerge> merges;
  std::vector<engine::AliasChange> aliases;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kDefault)));
    for (it->Seek(detail::AsSlice(kMergedKeyPrefix));
         it->Valid() && it->key().starts_with(detail::AsSlice(kMergedKeyPrefix)); it->Next()) {
      if (it->key().size() != kMergedKeyPrefix.size() + 4 || it->value().size() != 4) {
        return absl::DataLossError("corrupt merge record");
      }
      merges.push_back({GetBigEndian32(it->key().data() + kMergedKeyPrefix.size()),
                        GetBigEndian32(it->value().data())});
    }
    for (it->Seek(detail::AsSlice(kAliasKeyPrefix));
         it->Valid() && it->key().starts_with(detail::AsSlice(kAliasKeyPrefix)); it->Next()) {
      if (it->value().size() != 4) return absl::DataLossError("corrupt alias record");
      aliases.push_back({std::string(View(it->key()).substr(kAliasKeyPrefix.size())),
                         GetBigEndian32(it->value().data()), true});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading identities");
  }
  engine.RecoverMerges(merges);
  {
    rocksdb::ReadOptions options;
    options.readahead_size = 2 << 20;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf(Family::kUsers)));
    std::vector<std::string> names;
    // The last entry tells how many users there are: size the dictionary once.
    it->SeekToLast();
    if (it->Valid()) {
      if (it->key().size() != 4) return absl::DataLossError("corrupt user key");
      if (absl::Status s = DecodeUserNames(View(it->value()), &names); !s.ok()) return s;
      engine.ReserveUsers(uint64_t{GetBigEndian32(it->key().data())} + names.size());
    }
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 4) return absl::DataLossError("corrupt user key");
      const engine::UserId first = GetBigEndian32(it->key().data());
      if (absl::Status s = DecodeUserNames(View(it->value()), &names); !s.ok()) return s;
      if (absl::Status s = engine.RecoverUsers(first, names); !s.ok()) return s;
      stats.users += names.size();
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading users");
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kUnregistered)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 4) return absl::DataLossError("corrupt user key");
      dictionaries.users.push_back(
          {engine::UserEvent::Kind::kDeleted, GetBigEndian32(it->key().data()), {}});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading the registry");
  }
  if (absl::Status s = engine.RecoverAliases(aliases); !s.ok()) return s;
  stats.users -= dictionaries.users.size();  // deleted users are not counted
  if (absl::Status s = engine.ApplyRecovered(dictionaries); !s.ok()) return s;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  stats.dictionary_seconds = since(start);
  auto snapshot_start = std::chrono::steady_clock::now();

  // The newest committed snapshot, if any.
  uint64_t replay_from = 1;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kSnapshots)));
    it->SeekForPrev(SnapshotMetaKey(UINT64_MAX));
    if (it->Valid() && it->key().size() == 9 && it->key()[0] == 'm') {
      uint64_t id = GetBigEndian64(it->key().data() + 1);
      auto meta = DecodeSnapshotMeta(View(it->value()));
      if (!meta.ok()) return meta.status();
      for (uint32_t shard = 0; shard < meta->shards; ++shard) {
        std::string value;
        rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf(Family::kSnapshots),
                                       SnapshotShardKey(id, shard), &value);
        if (got.IsNotFound()) continue;  // an empty shard
        if (!got.ok()) return FromRocks(got, "reading the snapshot");
        auto state = DecodeShardState(shard, value);
        if (!state.ok()) return state.status();
        if (absl::Status s = engine.InstallShard(*std::move(state)); !s.ok()) return s;
      }
      replay_from = meta->seq;
      stats.snapshot_seq = meta->seq;
      retention_->protected_seq.store(meta->seq, std::memory_order_release);
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading snapshots");
  }

  stats.snapshot_seconds = since(snapshot_start);
  auto replay_start = std::chrono::steady_clock::now();
  engine::OpBatch batch;
  absl::Status replay_error;
  absl::Status s = ForEachRecord(replay_from, [&](uint64_t, const engine::OpRecord& r) {
    batch.memberships.push_back(r);
    if (batch.memberships.size() == kReplayBatch) {
      replay_error = engine.ApplyRecovered(batch);
      stats.records += batch.memberships.size();
      batch.memberships.clear();
    }
    return replay_error.ok();
  });
  if (!s.ok()) return s;
  if (!replay_error.ok()) return replay_error;
  if (absl::Status last = engine.ApplyRecovered(batch); !last.ok()) return last;
  stats.records += batch.memberships.size();
  stats.replay_seconds = since(replay_start);

  // Rule state: every retained event into the aggregates, then the traits.
  auto rules_start = std::chrono::steady_clock::now();
  engine.BeginRuleRecovery(rules_meta_.rules_through);
  absl::Status event_error;
  absl::Status scanned = ScanEvents(1, UINT64_MAX, [&](const engine::Event& e) {
    engine.RecoverEvent(e);
    ++stats.events;
    return true;
  });
  if (!scanned.ok()) return scanned;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kTraits)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      absl::StatusOr<engine::TraitChange> t = DecodeTrait(View(it->key()), View(it->value()));
      if (!t.ok()) return t.status();
      engine.RecoverTrait(*t);
      ++stats.traits;
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading traits");
  }
  engine.FinishRuleRecovery(rules_meta_.next_event_seq);
  stats.rules_seconds = since(rules_start);
  stats.seconds = since(start);
  return stats;
}

absl::Status OpLog::ScanEvents(uint64_t from_seq, uint64_t to_seq,
                               absl::FunctionRef<bool(const engine::Event&)> fn) const {
  const int64_t retention = retention_->event_retention_ms.load(std::memory_order_acquire);
  const engine::TimeMs cutoff = retention <= 0 ? std::numeric_limits<engine::TimeMs>::min()
                                               : retention_->clock->NowMs() - retention;
  rocksdb::ReadOptions options;
  options.readahead_size = 2 << 20;
  options.fill_cache = false;  // a backfill reads everything once
  // The iterator reads a consistent view of the log as of now (RocksDB pins one for it).
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf(Family::kEvents)));
  for (it->Seek(SeqKey(from_seq)); it->Valid(); it->Next()) {
    if (it->key().size() != 8) return absl::DataLossError("corrupt event key");
    const uint64_t seq = GetBigEndian64(it->key().data());
    if (seq >= to_seq) break;
    absl::StatusOr<engine::Event> e = DecodeEvent(seq, View(it->value()));
    if (!e.ok()) return e.status();
    if (e->at <= cutoff) continue;  // past the retention, not yet compacted away
    if (!fn(*e)) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading events");
  return absl::OkStatus();
}

absl::StatusOr<SnapshotStats> OpLog::WriteSnapshot(engine::Engine& engine) {
  MutexLock one_at_a_time(&snapshot_mu_);
  if (failed_.load(std::memory_order_acquire)) {
    MutexLock lock(&failure_mu_);
    return failure_;
  }
  auto start = std::chrono::steady_clock::now();
  SnapshotStats stats;
  SnapshotMeta meta;
  // A log position that memory matches exactly: everything before it is applied.
  engine.AtQuiescentPoint([&] {
    meta.seq = next_seq();
    meta.shards = engine.shard_count();
  });
  meta.created_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  const uint64_t id = meta.seq;
  rocksdb::WriteOptions options;
  for (uint32_t shard = 0; shard < meta.shards; ++shard) {
    engine::MembershipShards::ShardState state = engine.CopyShard(shard);
    if (state.members.empty()) continue;
    std::string value = EncodeShardState(state);
    stats.bytes += value.size();
    // Twice: once in the write-ahead log, once in the file the flush after it writes.
    if (absl::Status s = disk_->Admit(2 * value.size(), DiskReserve::Use::kSnapshot); !s.ok()) {
      return s;
    }
    rocksdb::Status s;
    {
      MutexLock lock(&rocks_write_mu_);
      s = db_->Put(options, cf(Family::kSnapshots), SnapshotShardKey(id, shard), value);
    }
    if (!s.ok()) return FromRocks(s, "writing a snapshot");
    ++stats.shards;
  }
  // Commit: the meta key, then a sync of the write-ahead log, which makes it durable together
  // with the shard entries written before it. The sync runs outside rocks_write_mu_: the
  // engine's writes go on meanwhile instead of waiting for it.
  rocksdb::Status s;
  {
    MutexLock lock(&rocks_write_mu_);
    s = db_->Put(rocksdb::WriteOptions(), cf(Family::kSnapshots), SnapshotMetaKey(id),
                 EncodeSnapshotMeta(meta));
  }
  if (!s.ok()) return FromRocks(s, "committing a snapshot");
  if (TEST_before_snapshot_sync_) TEST_before_snapshot_sync_();
  s = db_->SyncWAL();
  if (!s.ok()) return FromRocks(s, "syncing a snapshot");
  // From now on recovery starts at meta.seq: retention may drop records before it.
  retention_->protected_seq.store(meta.seq, std::memory_order_release);
  // Prune every older snapshot: keys 'm'/'s' with an id below this one. It follows the meta
  // key in the write-ahead log, so no recovery sees the prune without the new snapshot.
  rocksdb::WriteBatch prune;
  prune.DeleteRange(cf(Family::kSnapshots), SnapshotMetaKey(0), SnapshotMetaKey(id));
  prune.DeleteRange(cf(Family::kSnapshots), SnapshotShardKey(0, 0), SnapshotShardKey(id, 0));
  {
    MutexLock lock(&rocks_write_mu_);
    s = db_->Write(rocksdb::WriteOptions(), &prune);
  }
  if (!s.ok()) return FromRocks(s, "pruning old snapshots");
  // Flush every memtable, so that the write-ahead log up to here can be deleted: a restart
  // then replays only what was written after this snapshot (nothing, at clean shutdown).
  // Writes continue meanwhile into new memtables.
  rocksdb::FlushOptions flush;
  flush.allow_write_stall = true;
  s = db_->Flush(flush,
                 std::vector<rocksdb::ColumnFamilyHandle*>(families_.begin(), families_.end()));
  if (!s.ok()) return FromRocks(s, "flushing after a snapshot");
  stats.seq = meta.seq;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

absl::Status OpLog::ForEachRecord(
    uint64_t from_seq, absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const {
  return ForEachBlock(from_seq, [&](uint64_t first, absl::Span<const engine::OpRecord> records) {
    for (size_t i = 0; i < records.size(); ++i) {
      const uint64_t seq = first + i;
      if (seq >= from_seq && !fn(seq, records[i])) return false;
    }
    return true;
  });
}

absl::Status OpLog::TEST_DropSnapshots() {
  rocksdb::WriteBatch wb;
  wb.DeleteRange(cf(Family::kSnapshots), "", std::string(16, '\xff'));
  MutexLock lock(&rocks_write_mu_);
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "dropping snapshots");
}

}  // namespace segd::storage
