#include "storage/oplog.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <map>
#include <tuple>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "roaring/roaring.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/sst_file_manager.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"
#include "storage/detail/block_reader.h"
#include "storage/detail/error_listener.h"
#include "storage/detail/info_logger.h"
#include "storage/detail/prefix_list_memtable.h"
#include "storage/detail/retention_filter.h"
#include "storage/detail/rocks_util.h"
#include "storage/oplog_format.h"

namespace segd::storage {

using detail::AsSlice;
using detail::Family;
using detail::FromRocks;
using detail::View;

namespace {

// Shorter runs of new users' records get by_user entries instead: a run entry saves little
// there, and one user's history then needs no run lookup in the common case of small batches.
constexpr size_t kMinUserRun = 8;
// Fewer records of one block in one set of users get by_user entries instead. A set entry
// replaces that many memtable inserts (and their flush and compaction, together about two
// thirds of segd's CPU in a bulk load of known users); a user's history pays for it with a
// scan of its set's entries (docs/oplog_format.md, "User sets").
constexpr size_t kMinUserSet = 4;
constexpr char kFormatKey[] = "format";
constexpr char kRulesKey[] = "rules";
constexpr char kCountsKey[] = "counts";
// Minutes held in memory past which a replay of the log into segment counts stores them.
constexpr size_t kCountsReplayFlush = 100'000;

}  // namespace

OpLog::OpLog(std::string dir, OpLogOptions options)
    : dir_(std::move(dir)), options_(options), tail_(options.change_tail_records) {}

OpLog::~OpLog() {
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* handle : families_) {
    if (handle) db_->DestroyColumnFamilyHandle(handle);
  }
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<std::unique_ptr<OpLog>> OpLog::Open(const std::string& data_dir,
                                                   OpLogOptions options) {
  auto locked = DataDir::Lock(data_dir);
  if (!locked.ok()) return locked.status();
  const std::string dir = (std::filesystem::path(data_dir) / "log").string();
  std::unique_ptr<OpLog> log(new OpLog(dir, options));
  log->data_dir_ = *std::move(locked);
  log->env_ = rocksdb::NewCompositeEnv(log->data_dir_->FileSystem());
  rocksdb::DBOptions db_options;
  db_options.env = log->env_.get();
  // RocksDB's own LOG, written so that a full disk cannot abort segd (detail/info_logger.h).
  db_options.info_log = detail::NewInfoLogger(dir);
  // A write-ahead log that the manifest knows was synced and closed must be there at the
  // next open (RocksDB refuses to open otherwise, instead of recovering less).
  db_options.track_and_verify_wals_in_manifest = true;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.paranoid_checks = true;
  // Restart time after a crash is RocksDB replaying its write-ahead log into memtables, about
  // 30 MB/s here. With nine column families, one that is rarely written would otherwise keep
  // every old WAL file alive (RocksDB's default bound is 4 x the memtable budget, gigabytes).
  // Bounding the WAL makes RocksDB flush the families that pin old files; the shared
  // memtable budget also bounds their memory.
  db_options.max_total_wal_size = options.max_wal_bytes;
  // No preallocation: RocksDB would fallocate each new file's expected size (1.1x a write
  // buffer, tens of MiB) up front, space the disk reserve cannot tell from data, and on a
  // small filesystem one flush's preallocation starves another's appends (ENOSPC).
  db_options.allow_fallocate = false;
  // One budget for memtables and cached blocks (OpLogOptions::memory_bytes): the memtables'
  // memory is charged to the block cache, which evicts blocks to make room for it.
  log->cache_ = rocksdb::NewLRUCache(options.memory_bytes);
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memory_bytes / 2, log->cache_);
  // What recovery replays stays in memtables (its WAL is kept) instead of being flushed to
  // files before the log opens.
  db_options.avoid_flush_during_recovery = true;
  // Every write to RocksDB holds rocks_write_mu_, so its write groups never hold more than one
  // batch and memtables are never written by two threads at once: concurrent memtable writes
  // are machinery segd cannot use. Off, single-record writes measured about 1.06x (seven
  // alternating pairs, docs/benchmarks.md). by_user's memtable requires it off as well: it
  // takes inserts from one thread at a time (RocksDB refuses to open otherwise).
  db_options.allow_concurrent_memtable_write = false;
  log->errors_ = std::make_shared<detail::ErrorListener>();
  db_options.listeners.push_back(log->errors_);
  log->disk_ = std::make_unique<DiskReserve>(data_dir, options.min_free_disk_bytes);
  if (options.min_free_disk_bytes > 0) {
    // A compaction writes its outputs before it deletes its inputs, and the reserve does not
    // see it coming: RocksDB postpones one that would leave less than half the reserve free
    // (like snapshots, compactions may use that half; they give the space back after).
    std::shared_ptr<rocksdb::SstFileManager> files(
        rocksdb::NewSstFileManager(rocksdb::Env::Default()));
    files->SetCompactionBufferSize(options.min_free_disk_bytes / 2);
    db_options.sst_file_manager = std::move(files);
  }
  log->retention_ = std::make_shared<detail::RetentionState>();
  log->retention_->retention_ms.store(std::max<int64_t>(0, options.retention_ms));
  log->retention_->clock = options.clock ? options.clock : engine::SystemClock::Default();
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.compression = rocksdb::kLZ4Compression;
  // The shared budget flushes the oldest memtable once they all hold half of it, one flush per
  // write, but cannot split a single large memtable: no family's may exceed a quarter of it.
  // (A stall at the budget, RocksDB's allow_stall, waited forever here when the flush it
  // waited for was not the one scheduled.)
  const size_t memtable_cap = std::max<size_t>(options.memory_bytes / 4, 1u << 20);
  cf_options.write_buffer_size = std::min(cf_options.write_buffer_size, memtable_cap);
  // One block cache for every family: history lookups (a user's rows, report rows) are
  // point reads spread over the whole log, which RocksDB's 8 MiB default cache cannot hold.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = log->cache_;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  // The record and index families carry the retention filter; with a retention, their files
  // are recompacted at least daily so that old entries do leave the disk.
  auto retained = [&](detail::RetainedFamily family) {
    rocksdb::ColumnFamilyOptions o = cf_options;
    o.compaction_filter_factory =
        std::make_shared<detail::RetentionFilterFactory>(log->retention_, family);
    if (options.retention_ms > 0) o.periodic_compaction_seconds = 24 * 3600;
    return o;
  };
  std::array<rocksdb::ColumnFamilyOptions, detail::kFamilyCount> family_options;
  family_options.fill(cf_options);
  auto options_of = [&](Family family) -> rocksdb::ColumnFamilyOptions& {
    return family_options[static_cast<size_t>(family)];
  };
  options_of(Family::kOps) = retained(detail::RetainedFamily::kOps);
  options_of(Family::kByTime) = retained(detail::RetainedFamily::kByTime);
  options_of(Family::kBySegment) = retained(detail::RetainedFamily::kById);
  options_of(Family::kUserRuns) = retained(detail::RetainedFamily::kUserRuns);
  options_of(Family::kSegmentCounts) = retained(detail::RetainedFamily::kCounts);
  log->retention_->event_retention_ms.store(std::max<int64_t>(0, options.event_retention_ms));
  {
    rocksdb::ColumnFamilyOptions events = cf_options;
    events.compaction_filter_factory = std::make_shared<detail::RetentionFilterFactory>(
        log->retention_, detail::RetainedFamily::kEvents);
    if (options.event_retention_ms > 0) events.periodic_compaction_seconds = 24 * 3600;
    options_of(Family::kEvents) = events;
  }
  {
    // by_user gets records for users spread over the whole id space. In RocksDB's skiplist
    // memtable each such insert searches the whole table, a chain of cache misses (4-5 µs
    // here, the largest single cost of a write for an existing user), paid again when a
    // restart replays the write-ahead log. Its memtable keeps one list per user instead
    // (detail/prefix_list_memtable.h): an insert is a hash lookup and an append. Writes for
    // existing users measured 1.3-1.6x with it (docs/benchmarks.md). The hash table has one
    // slot per 128 bytes of memtable, about one per user a full memtable holds.
    // The insert cost no longer depends on the memtable's size (the skiplist's did: it had
    // 16 MiB to stay within the CPU's cache). Lists cost a 40-byte head per user, so at
    // 16 MiB by_user flushed up to 1.7x as often, and the extra level-0 files made one
    // user's report 1.2x slower; 32 MiB brings it back.
    rocksdb::ColumnFamilyOptions by_user = retained(detail::RetainedFamily::kById);
    by_user.write_buffer_size = std::min<size_t>(32 << 20, memtable_cap);
    // The user is the 4-byte key prefix. Scans stay within one user's prefix (ScanHistory
    // sets prefix_same_as_start), so a memtable answers them from that user's list, and a
    // Bloom filter on the prefix lets them skip the files that hold nothing of that user.
    // (A memtable Bloom filter would answer what the memtable's hash table already does.)
    by_user.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    if (options.user_index_lists) {
      by_user.memtable_factory =
          detail::NewPrefixListMemTableFactory(by_user.write_buffer_size / 128);
    }
    rocksdb::BlockBasedTableOptions by_user_table = table_options;
    by_user_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    by_user_table.whole_key_filtering = false;
    by_user.table_factory.reset(rocksdb::NewBlockBasedTableFactory(by_user_table));
    // No filter in the last level, which holds most of the data: filters stay a small part of
    // memory (about 1.25 bytes per user per file above the last level), and the last level is
    // one seek anyway.
    by_user.optimize_filters_for_hits = true;
    // Single-user writes put one by_user entry each, for users spread over the whole id space,
    // so every level-0 file overlaps all of level 1 and each level-0 compaction rewrites level 1
    // whole. Compacting at 8 level-0 files instead of RocksDB's 4 halves how often that happens:
    // after loading the comparison's dataset, 2.4M single adds cost 1.1 s of compaction CPU
    // instead of 3.8 s (docs/benchmarks.md). A user's scan checks at most 4 more prefix Bloom
    // filters for it. The slowdown and stop thresholds move up with it (RocksDB: 20 and 36).
    by_user.level0_file_num_compaction_trigger = 8;
    by_user.level0_slowdown_writes_trigger = 32;
    by_user.level0_stop_writes_trigger = 48;
    options_of(Family::kByUser) = by_user;
    // user_sets: keys are a 4-byte set of users, then (at, seq), like by_user's; a user's scan
    // is a prefix scan of its set. Few entries, so RocksDB's own memtable.
    rocksdb::ColumnFamilyOptions user_sets = retained(detail::RetainedFamily::kById);
    user_sets.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    user_sets.table_factory.reset(rocksdb::NewBlockBasedTableFactory(by_user_table));
    user_sets.optimize_filters_for_hits = true;
    options_of(Family::kUserSets) = user_sets;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (size_t i = 0; i < detail::kFamilyCount; ++i) {
    descriptors.emplace_back(std::string(detail::kFamilyNames[i]), family_options[i]);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  if (s.IsNoSpace() || (!s.ok() && log->disk_->Refresh() < (1u << 20))) {
    // Opening for writing writes (a new manifest, a new write-ahead log). On a full disk,
    // open read-only instead: recovery and reads work, writes are refused.
    const rocksdb::Status writable = s;
    handles.clear();
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw);
    if (!s.ok()) {
      return FromRocks(writable, absl::StrCat("cannot open data directory '", dir, "'"));
    }
    log->read_only_ = true;
    log
        ->Fail(absl::UnavailableError(absl::StrCat(
            "the disk was full when segd started (", writable.ToString(),
            "), so the log was opened read-only; free space and restart segd to accept writes")))
        .IgnoreError();
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("cannot open data directory '", dir, "'"));
  log->db_.reset(raw);
  if (!log->read_only_) {
    // What the memtables hold goes to disk at their flush: count it as used already, so that
    // the reserve is what is left after the flush.
    rocksdb::DB* db = raw;
    log->disk_->set_pending_bytes([db] {
      uint64_t bytes = 0;
      return db->GetAggregatedIntProperty("rocksdb.cur-size-all-mem-tables", &bytes) ? bytes : 0;
    });
    log->disk_->Refresh();
  }
  std::copy(handles.begin(), handles.end(), log->families_.begin());
  // Every handle Open returned, the default one included, is destroyed in ~OpLog.

  std::string format;
  s = log->db_->Get(rocksdb::ReadOptions(), log->cf(Family::kDefault), kFormatKey, &format);
  bool write_version = false;
  if (s.IsNotFound()) {
    write_version = true;
  } else if (!s.ok()) {
    return FromRocks(s, absl::StrCat("cannot read data directory '", dir, "'"));
  } else if (format.size() != 4) {
    return absl::DataLossError(
        absl::StrCat("data directory '", dir, "' holds a malformed format version"));
  } else if (uint32_t found = GetBigEndian32(format.data());
             found >= kOldestReadFormatVersion && found < kFormatVersion) {
    // Older versions lack only what this segd adds (user_runs, continued runs) and read as
    // they are. Mark the directory current before writing any of it, so that a segd that
    // reads only the older versions refuses it from now on.
    write_version = true;
  } else if (found != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("data directory '", dir, "' holds log format version ", found,
                     "; this segd reads versions ", kOldestReadFormatVersion, " to ",
                     kFormatVersion, " (see docs/oplog_format.md)"));
  }
  if (write_version && log->read_only_) {
    if (!s.IsNotFound())
      write_version = false;  // an older version: read as it is
    else
      return absl::UnavailableError(absl::StrCat("the disk is full and data directory '", dir,
                                                 "' is new; free space and start again"));
  }
  if (write_version) {
    std::string version;
    PutBigEndian32(&version, kFormatVersion);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = log->db_->Put(sync, log->cf(Family::kDefault), kFormatKey, version);
    if (!s.ok()) return FromRocks(s, absl::StrCat("cannot write to data directory '", dir, "'"));
  }

  std::unique_ptr<rocksdb::Iterator> it(
      log->db_->NewIterator(rocksdb::ReadOptions(), log->cf(Family::kOps)));
  it->SeekToLast();
  if (it->Valid()) {  // the next record follows the last block's
    if (it->key().size() != 8) return absl::DataLossError("corrupt key in the operation log");
    std::vector<engine::OpRecord> last;
    if (absl::Status s = DecodeBlock(View(it->value()), &last); !s.ok()) return s;
    log->next_seq_.store(GetBigEndian64(it->key().data()) + last.size(), std::memory_order_release);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "cannot read the operation log");
  // Retention may have removed every record the newest snapshot covers: numbering goes on
  // from the snapshot's position then.
  std::unique_ptr<rocksdb::Iterator> snapshots(
      log->db_->NewIterator(rocksdb::ReadOptions(), log->cf(Family::kSnapshots)));
  snapshots->SeekForPrev(SnapshotMetaKey(UINT64_MAX));
  if (snapshots->Valid() && snapshots->key().size() == 9 && snapshots->key()[0] == 'm') {
    auto meta = DecodeSnapshotMeta(View(snapshots->value()));
    if (!meta.ok()) return meta.status();
    if (meta->seq > log->next_seq_.load(std::memory_order_relaxed)) {
      log->next_seq_.store(meta->seq, std::memory_order_release);
    }
  }
  if (!snapshots->status().ok()) return FromRocks(snapshots->status(), "reading snapshots");
  {
    std::string rules;
    rocksdb::Status got =
        log->db_->Get(rocksdb::ReadOptions(), log->cf(Family::kDefault), kRulesKey, &rules);
    if (got.ok()) {
      absl::StatusOr<RulesMeta> meta = DecodeRulesMeta(rules);
      if (!meta.ok()) return meta.status();
      log->rules_meta_ = *meta;
    } else if (!got.IsNotFound()) {
      return FromRocks(got, "reading the rules position");
    }
  }
  if (absl::Status s =
          log->data_dir_->CheckRecovered(log->next_seq(), options.durability == Durability::kFsync);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = log->CatchUpSegmentCounts(); !s.ok()) return s;
  log->synced_seq_.store(log->next_seq(), std::memory_order_release);
  log->applied_seq_.store(log->next_seq(), std::memory_order_release);
  log->tail_.Reset(log->next_seq());
  return log;
}

absl::StatusOr<SegmentCount> OpLog::StoredSegmentCount(const SegmentCounts::Key& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(Family::kSegmentCounts),
                               SegmentCountKey(key.first, key.second), &value);
  if (s.IsNotFound()) return absl::NotFoundError("no count");
  if (!s.ok()) return FromRocks(s, "reading a segment count");
  return DecodeSegmentCount(value);
}

void OpLog::PutSegmentCounts(rocksdb::WriteBatch& wb,
                             const std::vector<std::pair<SegmentCounts::Key, SegmentCount>>& dirty,
                             uint64_t through) {
  for (const auto& [key, count] : dirty) {
    wb.Put(cf(Family::kSegmentCounts), SegmentCountKey(key.first, key.second),
           EncodeSegmentCount(count));
  }
  std::string value;
  PutBigEndian64(&value, through);
  wb.Put(cf(Family::kDefault), kCountsKey, value);
}

absl::Status OpLog::CatchUpSegmentCounts() {
  std::string value;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf(Family::kDefault), kCountsKey, &value);
  uint64_t from = 1;  // a log from before segment counts: count all of it, once
  if (got.ok()) {
    if (value.size() != 8) return absl::DataLossError("malformed segment counts position");
    from = GetBigEndian64(value.data());
  } else if (!got.IsNotFound()) {
    return FromRocks(got, "reading the segment counts position");
  }
  const uint64_t end = next_seq();
  if (from >= end) return absl::OkStatus();
  auto store = [&](uint64_t through) -> absl::Status {
    if (read_only_) return absl::OkStatus();  // counted in memory only, again next time
    auto dirty = counts_.TakeDirty();
    rocksdb::WriteBatch wb;
    PutSegmentCounts(wb, dirty, through);
    MutexLock lock(&rocks_write_mu_);
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &wb);
    if (!s.ok()) return FromRocks(s, "storing segment counts");
    counts_.Forget(dirty);
    return absl::OkStatus();
  };
  absl::Status status;
  absl::Status scan =
      ForEachBlock(from, [&](uint64_t first, absl::Span<const engine::OpRecord> block) {
        if (counts_.dirty() >= kCountsReplayFlush) {
          status = store(std::max(first, from));
          if (!status.ok()) return false;
        }
        status =
            counts_.Count(block.subspan(first < from ? from - first : 0),
                          [&](const SegmentCounts::Key& key) { return StoredSegmentCount(key); });
        return status.ok();
      });
  if (!scan.ok()) return scan;
  if (!status.ok()) return status;
  return store(end);
}

absl::Status OpLog::ForEachSegmentCount(
    engine::SegmentId segment, int64_t from_minute, int64_t to_minute,
    absl::FunctionRef<void(int64_t, const SegmentCount&)> fn) const {
  // Held minutes first: each is at least as new as its stored value (segment_counts.h).
  std::map<int64_t, SegmentCount> minutes;
  counts_.Held(segment, from_minute, to_minute, &minutes);
  rocksdb::ReadOptions options;
  const std::string end = SegmentCountKey(segment, to_minute);
  rocksdb::Slice upper(end);
  options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf(Family::kSegmentCounts)));
  for (it->Seek(SegmentCountKey(segment, from_minute)); it->Valid(); it->Next()) {
    if (it->key().size() != 12) return absl::DataLossError("corrupt segment count key");
    const int64_t minute =
        static_cast<int64_t>(GetBigEndian64(it->key().data() + 4) ^ (uint64_t{1} << 63));
    if (minutes.contains(minute)) continue;
    auto count = DecodeSegmentCount(View(it->value()));
    if (!count.ok()) return count.status();
    minutes.emplace(minute, *count);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading segment counts");
  for (const auto& [minute, count] : minutes) fn(minute, count);
  return absl::OkStatus();
}

absl::Status OpLog::CheckDirectory() {
  absl::Status s = data_dir_->CheckInPlace();
  if (!s.ok() && !failed_.load(std::memory_order_acquire)) Fail(s).IgnoreError();
  return s;
}

absl::Status OpLog::RecordPosition() {
  if (read_only_) return absl::OkStatus();  // nothing moves
  return data_dir_->RecordPosition(options_.durability == Durability::kFsync
                                       ? synced_seq_.load(std::memory_order_acquire)
                                       : next_seq());
}

absl::Status OpLog::Fail(absl::Status status, bool no_space) {
  absl::Status refused = absl::UnavailableError(absl::StrCat(
      no_space ? "disk almost full: the operation log ran out of space; mutations are refused "
                 "until there is room again: "
               : "the operation log cannot be written; mutations are refused: ",
      status.message()));
  {
    MutexLock lock(&failure_mu_);
    if (!failed_.load(std::memory_order_relaxed)) failure_ = refused;
    failed_.store(true, std::memory_order_release);
  }
  return refused;
}

absl::Status OpLog::WriteState() const {
  if (failed_.load(std::memory_order_acquire)) {
    MutexLock lock(&failure_mu_);
    return failure_;
  }
  if (disk_->low()) {
    return absl::UnavailableError(absl::StrCat(
        "disk almost full: ", disk_->free_bytes(), " bytes free (", disk_->pending_bytes(),
        " of them promised to memtables not yet flushed), below the reserve of ",
        disk_->min_free_bytes(), " bytes (--min-free-disk)"));
  }
  return absl::OkStatus();
}

absl::Status OpLog::TryResume() {
  disk_->Refresh();
  if (!failed_.load(std::memory_order_acquire)) {
    if (disk_->low() && disk_->pending_bytes() >= (1u << 20) && !data_dir_->moved()) {
      // Writes are refused partly for what the memtables will take when flushed. Flushing
      // now turns that into files and frees the write-ahead log it came from, which often
      // lifts the refusal. At most once a second; RocksDB does the work in the background.
      const auto now = std::chrono::steady_clock::now();
      if (now - last_low_disk_flush_ >= std::chrono::seconds(1)) {
        last_low_disk_flush_ = now;
        rocksdb::FlushOptions flush;
        flush.wait = false;
        flush.allow_write_stall = true;
        db_->Flush(flush,
                   std::vector<rocksdb::ColumnFamilyHandle*>(families_.begin(), families_.end()))
            .PermitUncheckedError();
      }
    }
    return absl::OkStatus();
  }
  if (read_only_ || data_dir_->moved() || errors_->wal_failed() ||
      sync_failed_.load(std::memory_order_acquire)) {
    return WriteState();  // only a restart cures these
  }
  if (disk_->low()) return WriteState();
  // A background flush or compaction failed (for lack of space); RocksDB stopped writes.
  // Resume() flushes the memtables again and clears the error if that works.
  rocksdb::Status s = db_->Resume();
  if (!s.ok()) return FromRocks(s, "resuming the log");
  MutexLock lock(&failure_mu_);
  failure_ = absl::OkStatus();
  failed_.store(false, std::memory_order_release);
  return absl::OkStatus();
}

void OpLog::PutUserIndex(rocksdb::WriteBatch& wb, absl::Span<const engine::OpRecord> block,
                         uint64_t first_seq,
                         absl::Span<const std::pair<engine::UserId, uint64_t>> created_ranges,
                         uint64_t* users_in_runs_end) {
  // The end of the created range holding `user`, or 0 if the batch did not create it.
  auto created_end = [&](engine::UserId user) -> uint64_t {
    for (const auto& [begin, end] : created_ranges) {
      if (user >= begin && user < end) return end;
    }
    return 0;
  };
  // Records left to user_sets or by_user, by (set of users, at, index in the block).
  struct Rest {
    uint32_t set;
    engine::TimeMs at;
    uint32_t index;
  };
  absl::InlinedVector<Rest, 4> rest;
  for (size_t i = 0; i < block.size();) {
    const engine::OpRecord& r = block[i];
    size_t j = i + 1;
    if (const uint64_t end = created_end(r.user); end != 0 && r.user >= *users_in_runs_end) {
      // Records for the next users, equal to this one but for the user, all created here.
      while (j < block.size() && uint64_t{block[j].user} == uint64_t{r.user} + (j - i) &&
             block[j].user < end && block[j].at == r.at && block[j].segment == r.segment &&
             block[j].op == r.op && block[j].reason == r.reason &&
             block[j].expires_at == r.expires_at) {
        ++j;
      }
      if (j - i >= kMinUserRun) {
        const auto count = static_cast<uint32_t>(j - i);
        wb.Put(cf(Family::kUserRuns), UserRunKey(r.user + count - 1, first_seq + i),
               EncodeUserRun(r, count));
        *users_in_runs_end = uint64_t{r.user} + count;
        i = j;
        continue;
      }
      j = i + 1;
    }
    rest.push_back({UserSetOf(r.user), r.at, static_cast<uint32_t>(i)});
    i = j;
  }
  auto put_by_user = [&](uint32_t index) {
    const engine::OpRecord& r = block[index];
    wb.Put(cf(Family::kByUser), AsSlice(MakeIdTimeSeqKey(r.user, r.at, first_seq + index)),
           EncodeRecord(r));
  };
  if (rest.size() < kMinUserSet) {
    for (const Rest& r : rest) put_by_user(r.index);
    return;
  }
  std::sort(rest.begin(), rest.end(), [](const Rest& a, const Rest& b) {
    return std::tie(a.set, a.at, a.index) < std::tie(b.set, b.at, b.index);
  });
  std::vector<uint32_t> indices;
  for (size_t i = 0; i < rest.size();) {
    size_t j = i + 1;
    while (j < rest.size() && rest[j].set == rest[i].set && rest[j].at == rest[i].at) ++j;
    if (j - i < kMinUserSet) {
      for (size_t k = i; k < j; ++k) put_by_user(rest[k].index);
    } else {
      indices.clear();
      for (size_t k = i; k < j; ++k) indices.push_back(rest[k].index);
      wb.Put(cf(Family::kUserSets), AsSlice(MakeIdTimeSeqKey(rest[i].set, rest[i].at, first_seq)),
             EncodeUserSet(block, indices));
    }
    i = j;
  }
}

absl::Status OpLog::Write(const engine::OpBatch& batch) {
  if (failed_.load(std::memory_order_acquire)) {
    MutexLock lock(&failure_mu_);
    return failure_;
  }
  // RocksDB counts per-thread statistics by default (perf_context, which segd never reads).
  // Each counter is a thread-local access through the shared library; off, the write path
  // measured about 5% faster. The level is per thread, so it is set here on every write.
  rocksdb::SetPerfLevel(rocksdb::kDisable);
  // Reserved at about its final size: growing a batch's buffer step by step cost several
  // reallocations and copies per single-record write.
  size_t reserve = 256 + 64 * batch.memberships.size() + 32 * batch.segments.size();
  for (const engine::UserEvent& e : batch.users) reserve += 24 + e.external_id.size();
  rocksdb::WriteBatch wb(reserve);
  for (const engine::SegmentMeta& meta : batch.segments) {
    wb.Put(cf(Family::kSegments), IdKey(meta.id), EncodeSegment(meta));
  }
  // Users a batch creates have consecutive ids: one `users` entry per run of them.
  std::string created;
  engine::UserId first_created = 0, next_created = 0;
  // [first, end) ranges of the users this batch creates, for user_runs.
  absl::InlinedVector<std::pair<engine::UserId, uint64_t>, 2> created_ranges;
  auto put_created = [&] {
    if (!created.empty()) {
      wb.Put(cf(Family::kUsers), IdKey(first_created), created);
      created_ranges.emplace_back(first_created, uint64_t{next_created});
    }
    created.clear();
  };
  for (const engine::UserEvent& e : batch.users) {
    switch (e.kind) {
      case engine::UserEvent::Kind::kCreated:
        if (created.empty() || e.user != next_created) {
          put_created();
          first_created = e.user;
        }
        AppendUserName(&created, e.external_id);
        next_created = e.user + 1;
        break;
      case engine::UserEvent::Kind::kRegistered:
        wb.Delete(cf(Family::kUnregistered), IdKey(e.user));
        break;
      case engine::UserEvent::Kind::kDeleted:
        wb.Put(cf(Family::kUnregistered), IdKey(e.user), "");
        break;
    }
  }
  put_created();
  for (const engine::Event& e : batch.events) {
    wb.Put(cf(Family::kEvents), SeqKey(e.seq), EncodeEvent(e));
  }
  // The engine hands over only changes that win over what the user has (newest `at`).
  for (const engine::TraitChange& t : batch.traits) {
    wb.Put(cf(Family::kTraits), TraitKey(t.user, t.key), EncodeTrait(t));
  }
  for (const engine::AliasChange& a : batch.aliases) {
    if (a.attach) {
      std::string id;
      PutBigEndian32(&id, a.user);
      wb.Put(cf(Family::kDefault), AliasKey(a.name), id);
    } else {
      wb.Delete(cf(Family::kDefault), AliasKey(a.name));
    }
  }
  for (const engine::UserMerge& m : batch.merges) {
    std::string into;
    PutBigEndian32(&into, m.into);
    wb.Put(cf(Family::kDefault), MergedKey(m.from), into);
  }
  if (!batch.events.empty() || batch.rules_through != 0) {
    if (!batch.events.empty()) rules_meta_.next_event_seq = batch.events.back().seq + 1;
    rules_meta_.rules_through = std::max(rules_meta_.rules_through, batch.rules_through);
    wb.Put(cf(Family::kDefault), kRulesKey, EncodeRulesMeta(rules_meta_));
  }
  uint64_t seq = next_seq_.load(std::memory_order_relaxed);
  const absl::Span<const engine::OpRecord> records(batch.memberships);
  // Users at or after this one may start a run; keeps this batch's runs apart.
  uint64_t users_in_runs_end = 0;
  // A run that starts where the previous one ended, with its time (and segment), continues
  // that one's index entry instead of starting its own. Runs inside a block are maximal, so
  // only a block's first run can continue the previous block's (or batch's) last.
  LastRun last = last_run_;
  for (size_t begin = 0; begin < records.size(); begin += kMaxBlockRecords) {
    const absl::Span<const engine::OpRecord> block = records.subspan(begin, kMaxBlockRecords);
    const uint64_t first = seq + begin;
    wb.Put(cf(Family::kOps), SeqKey(first), EncodeBlock(block));
    // Runs of consecutive records: same time (by_time), same time and segment (by_segment).
    for (size_t i = 0, j; i < block.size(); i = j) {
      for (j = i + 1; j < block.size() && block[j].at == block[i].at; ++j) {
      }
      if (first + i != last.end_seq || block[i].at != last.at) {
        wb.Put(cf(Family::kByTime), TimeSeqKey(block[i].at, first + i),
               EncodeRunLength(static_cast<uint32_t>(j - i)));
      }
    }
    for (size_t i = 0, j; i < block.size(); i = j) {
      for (j = i + 1;
           j < block.size() && block[j].at == block[i].at && block[j].segment == block[i].segment;
           ++j) {
      }
      if (first + i != last.end_seq || block[i].at != last.at || block[i].segment != last.segment) {
        wb.Put(cf(Family::kBySegment),
               AsSlice(MakeIdTimeSeqKey(block[i].segment, block[i].at, first + i)),
               EncodeRunLength(static_cast<uint32_t>(j - i)));
      }
    }
    last = {first + block.size(), block.back().at, block.back().segment};
    PutUserIndex(wb, block, first, created_ranges, &users_in_runs_end);
  }
  seq += records.size();
  if (absl::Status s = counts_.Count(
          records, [&](const SegmentCounts::Key& key) { return StoredSegmentCount(key); });
      !s.ok()) {
    return Fail(s);
  }
  // About once a second (or when many minutes changed), the changed minutes go with this batch.
  std::vector<std::pair<SegmentCounts::Key, SegmentCount>> counted;
  const auto now = std::chrono::steady_clock::now();
  if (const size_t dirty = counts_.dirty();
      dirty > 0 && (dirty >= 4096 || now - last_counts_flush_ >=
                                         std::chrono::milliseconds(options_.counts_flush_ms))) {
    counted = counts_.TakeDirty();
    PutSegmentCounts(wb, counted, seq);
    last_counts_flush_ = now;
  }
  // Expiries may use half of the disk reserve: they keep the promise that memberships end on
  // time, and each is a few dozen bytes.
  const bool expiries_only =
      batch.users.empty() && batch.segments.empty() &&
      std::all_of(records.begin(), records.end(), [](const engine::OpRecord& r) {
        return r.reason == engine::OpReason::kTtlExpired;
      });
  if (absl::Status s = disk_->Admit(wb.GetDataSize(), expiries_only ? DiskReserve::Use::kExpiry
                                                                    : DiskReserve::Use::kMutation);
      !s.ok()) {
    return s;
  }
  rocksdb::WriteOptions options;  // sync happens in WaitDurable, grouped
  rocksdb::Status s;
  {
    MutexLock lock(&rocks_write_mu_);
    s = db_->Write(options, &wb);
  }
  // (A write-ahead log append that ran out of space is not curable by room alone: see
  // TryResume. The listener has heard of it before Write returns.)
  if (!s.ok()) return Fail(FromRocks(s, "write"), s.IsNoSpace() && !errors_->wal_failed());
  last_run_ = last;
  if (!counted.empty()) counts_.Forget(counted);
  for (size_t begin = 0; begin < records.size(); begin += kMaxBlockRecords) {
    tail_.Append(seq - records.size() + begin, records.subspan(begin, kMaxBlockRecords));
  }
  next_seq_.store(seq, std::memory_order_release);
  written_batches_.fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
}

void OpLog::Applied() {
  const uint64_t seq = next_seq_.load(std::memory_order_relaxed);
  applied_seq_.store(seq, std::memory_order_release);
  tail_.Publish(options_.durability == Durability::kFsync
                    ? std::min(seq, synced_seq_.load(std::memory_order_acquire))
                    : seq);
}

absl::Status OpLog::ForEachBlock(
    uint64_t from_seq,
    absl::FunctionRef<bool(uint64_t, absl::Span<const engine::OpRecord>)> fn) const {
  rocksdb::ReadOptions options;
  options.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf(Family::kOps)));
  detail::BlockReader reader(it.get());
  for (absl::Status s = reader.LoadAtOrAfter(from_seq);; s = reader.Next()) {
    if (absl::IsNotFound(s)) return absl::OkStatus();
    if (!s.ok()) return s;
    if (!fn(reader.first(), reader.records())) return absl::OkStatus();
  }
}

absl::Status OpLog::PutWebhook(const WebhookRecord& hook) {
  if (absl::Status s = WriteState(); !s.ok()) return s;
  rocksdb::WriteBatch wb;
  wb.Put(cf(Family::kDefault), WebhookKey(hook.id), EncodeWebhook(hook));
  MutexLock lock(&rocks_write_mu_);
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "writing a webhook");
}

absl::Status OpLog::DeleteWebhook(absl::string_view id) {
  if (absl::Status s = WriteState(); !s.ok()) return s;
  rocksdb::WriteBatch wb;
  wb.Delete(cf(Family::kDefault), WebhookKey(id));
  MutexLock lock(&rocks_write_mu_);
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "deleting a webhook");
}

absl::StatusOr<std::vector<WebhookRecord>> OpLog::LoadWebhooks() const {
  std::vector<WebhookRecord> hooks;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kDefault)));
  const std::string prefix(kWebhookKeyPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto hook = DecodeWebhook(View(it->value()));
    if (!hook.ok()) return hook.status();
    hooks.push_back(*std::move(hook));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading webhooks");
  return hooks;
}

absl::Status OpLog::WaitDurable() {
  if (options_.durability != Durability::kFsync) return absl::OkStatus();
  const uint64_t target = written_batches_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t round = sync_rounds_.Load();
    if (synced_batches_.load(std::memory_order_acquire) >= target) return absl::OkStatus();
    if (sync_failed_.load(std::memory_order_acquire)) return SyncError();
    bool leading = false;
    if (!sync_leader_.compare_exchange_strong(leading, true, std::memory_order_acq_rel)) {
      // A sync is running; it may not cover this batch. Sleep until it ends.
      sync_rounds_.Wait(round);
      continue;
    }
    // Lead one sync for everything written so far; the others wait for it. Every record
    // before `seq` is in a batch that Write finished, so the sync covers it.
    const uint64_t seq = next_seq();
    const uint64_t goal = written_batches_.load(std::memory_order_acquire);
    if (synced_batches_.load(std::memory_order_acquire) < target) {
      rocksdb::Status s = db_->SyncWAL();
      wal_syncs_.fetch_add(1, std::memory_order_relaxed);
      if (s.ok()) {
        synced_batches_.store(goal, std::memory_order_release);
        synced_seq_.store(seq, std::memory_order_release);
        tail_.Publish(std::min(seq, applied_seq_.load(std::memory_order_acquire)));
      } else {
        MutexLock lock(&sync_error_mu_);
        sync_error_ = Fail(FromRocks(s, "fsync of the write-ahead log"));
        sync_failed_.store(true, std::memory_order_release);
      }
    }
    sync_leader_.store(false, std::memory_order_release);
    sync_rounds_.AdvanceAndWakeAll();
  }
}

DurabilityCounters OpLog::durability_counters() const {
  DurabilityCounters c;
  c.durable_batches = options_.durability == Durability::kFsync
                          ? synced_batches_.load(std::memory_order_acquire)
                          : written_batches_.load(std::memory_order_acquire);
  c.written_batches = written_batches_.load(std::memory_order_acquire);
  c.wal_syncs = wal_syncs_.load(std::memory_order_relaxed);
  return c;
}

absl::Status OpLog::SyncError() {
  MutexLock lock(&sync_error_mu_);
  return sync_error_;
}

uint64_t OpLog::replay_start() const {
  return std::max<uint64_t>(1, retention_->protected_seq.load(std::memory_order_acquire));
}

engine::TimeMs OpLog::RetentionCutoff() const {
  int64_t retention = retention_->retention_ms.load(std::memory_order_acquire);
  if (retention <= 0) return std::numeric_limits<engine::TimeMs>::min();
  return retention_->clock->NowMs() - retention;
}

absl::Status OpLog::TEST_CompactHistory() {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (Family family : {Family::kOps, Family::kByTime, Family::kByUser, Family::kBySegment,
                        Family::kUserRuns, Family::kUserSets}) {
    rocksdb::ColumnFamilyHandle* handle = cf(family);
    if (rocksdb::Status s = db_->Flush(rocksdb::FlushOptions(), handle); !s.ok()) {
      return FromRocks(s, "flush");
    }
    if (rocksdb::Status s = db_->CompactRange(options, handle, nullptr, nullptr); !s.ok()) {
      return FromRocks(s, "compaction");
    }
  }
  return absl::OkStatus();
}

uint64_t OpLog::ApproximateBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* handle : families_) {
    uint64_t value = 0;
    if (db_->GetIntProperty(handle, "rocksdb.total-sst-files-size", &value)) total += value;
    if (db_->GetIntProperty(handle, "rocksdb.cur-size-all-mem-tables", &value)) total += value;
  }
  return total;
}

OpLog::MemoryUsage OpLog::memory_usage() const {
  MemoryUsage usage;
  usage.budget = options_.memory_bytes;
  uint64_t memtables = 0;
  if (db_->GetAggregatedIntProperty("rocksdb.cur-size-all-mem-tables", &memtables)) {
    usage.memtables = memtables;
  }
  usage.cache = cache_->GetUsage();
  return usage;
}

std::optional<engine::TimeMs> OpLog::FirstRecordAt() const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(Family::kOps)));
  it->SeekToFirst();
  if (!it->Valid()) return std::nullopt;
  std::vector<engine::OpRecord> records;
  if (!DecodeBlock(View(it->value()), &records).ok() || records.empty()) return std::nullopt;
  return records.front().at;
}

uint64_t OpLog::TEST_CountEntries(rocksdb::ColumnFamilyHandle* cf) const {
  uint64_t n = 0;
  rocksdb::ReadOptions options;
  options.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  return n;
}

uint64_t OpLog::TEST_UserSetEntries() const { return TEST_CountEntries(cf(Family::kUserSets)); }

std::pair<uint64_t, uint64_t> OpLog::TEST_UserIndexEntries() const {
  return {TEST_CountEntries(cf(Family::kByUser)), TEST_CountEntries(cf(Family::kUserRuns))};
}

std::pair<uint64_t, uint64_t> OpLog::TEST_RunIndexEntries() const {
  return {TEST_CountEntries(cf(Family::kByTime)), TEST_CountEntries(cf(Family::kBySegment))};
}

}  // namespace segd::storage
