#include "storage/oplog.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
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
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/detail/error_listener.h"
#include "storage/detail/info_logger.h"
#include "storage/detail/prefix_list_memtable.h"
#include "storage/detail/retention_filter.h"
#include "storage/oplog_format.h"

namespace segd::storage {
namespace {

constexpr char kOpsCf[] = "ops";
constexpr char kByTimeCf[] = "by_time";
constexpr char kByUserCf[] = "by_user";
constexpr char kBySegmentCf[] = "by_segment";
constexpr char kUsersCf[] = "users";
constexpr char kUnregisteredCf[] = "unregistered";
constexpr char kSegmentsCf[] = "segments";
constexpr char kSnapshotsCf[] = "snapshots";
constexpr char kUserRunsCf[] = "user_runs";
// Shorter runs of new users' records get by_user entries instead: a run entry saves little
// there, and one user's history then needs no run lookup in the common case of small batches.
constexpr size_t kMinUserRun = 8;
constexpr char kFormatKey[] = "format";

// The one place where a rocksdb::Status becomes an absl::Status.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  // By kind, never by words in the text (a path may hold any word). Another segd holding the
  // directory is found before RocksDB is opened (DataDir::Lock).
  if (s.IsIOError()) {
    if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

rocksdb::Slice AsSlice(const IdTimeSeqKeyBytes& key) {
  return rocksdb::Slice(key.bytes, sizeof(key.bytes));
}

absl::string_view View(const rocksdb::Slice& slice) {
  return absl::string_view(slice.data(), slice.size());
}

// Records replayed per engine batch during recovery.
constexpr size_t kReplayBatch = 1 << 20;

}  // namespace

absl::StatusOr<Durability> ParseDurability(absl::string_view text) {
  if (text == "process") return Durability::kProcess;
  if (text == "fsync") return Durability::kFsync;
  return absl::InvalidArgumentError(
      absl::StrCat("durability must be 'process' or 'fsync', got '", text, "'"));
}

OpLog::OpLog(std::string dir, OpLogOptions options) : dir_(std::move(dir)), options_(options) {}

OpLog::~OpLog() {
  if (!db_) return;
  for (auto* cf : {default_, ops_, by_time_, by_user_, by_segment_, users_, unregistered_,
                   segments_, snapshots_, user_runs_}) {
    if (cf) db_->DestroyColumnFamilyHandle(cf);
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
  db_options.db_write_buffer_size = options.memtable_bytes;
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
  log->retention_ = std::make_shared<detail::RetentionState>();
  log->retention_->retention_ms.store(std::max<int64_t>(0, options.retention_ms));
  log->retention_->clock = options.clock ? options.clock : engine::SystemClock::Default();
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.compression = rocksdb::kLZ4Compression;
  // One block cache for every family: history lookups (a user's rows, report rows) are
  // point reads spread over the whole log, which RocksDB's 8 MiB default cache cannot hold.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
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
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  descriptors.emplace_back(kOpsCf, retained(detail::RetainedFamily::kOps));
  descriptors.emplace_back(kByTimeCf, retained(detail::RetainedFamily::kByTime));
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
    by_user.write_buffer_size = 32 << 20;
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
    descriptors.emplace_back(kByUserCf, by_user);
  }
  descriptors.emplace_back(kBySegmentCf, retained(detail::RetainedFamily::kById));
  for (const char* name : {kUsersCf, kUnregisteredCf, kSegmentsCf, kSnapshotsCf}) {
    descriptors.emplace_back(name, cf_options);
  }
  descriptors.emplace_back(kUserRunsCf, retained(detail::RetainedFamily::kUserRuns));
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
  log->default_ = handles[0];
  log->ops_ = handles[1];
  log->by_time_ = handles[2];
  log->by_user_ = handles[3];
  log->by_segment_ = handles[4];
  log->users_ = handles[5];
  log->unregistered_ = handles[6];
  log->segments_ = handles[7];
  log->snapshots_ = handles[8];
  log->user_runs_ = handles[9];
  // Every handle Open returned, the default one included, is destroyed in ~OpLog.

  std::string format;
  s = log->db_->Get(rocksdb::ReadOptions(), log->default_, kFormatKey, &format);
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
    s = log->db_->Put(sync, log->default_, kFormatKey, version);
    if (!s.ok()) return FromRocks(s, absl::StrCat("cannot write to data directory '", dir, "'"));
  }

  std::unique_ptr<rocksdb::Iterator> it(log->db_->NewIterator(rocksdb::ReadOptions(), log->ops_));
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
      log->db_->NewIterator(rocksdb::ReadOptions(), log->snapshots_));
  snapshots->SeekForPrev(SnapshotMetaKey(UINT64_MAX));
  if (snapshots->Valid() && snapshots->key().size() == 9 && snapshots->key()[0] == 'm') {
    auto meta = DecodeSnapshotMeta(View(snapshots->value()));
    if (!meta.ok()) return meta.status();
    if (meta->seq > log->next_seq_.load(std::memory_order_relaxed)) {
      log->next_seq_.store(meta->seq, std::memory_order_release);
    }
  }
  if (!snapshots->status().ok()) return FromRocks(snapshots->status(), "reading snapshots");
  if (absl::Status s =
          log->data_dir_->CheckRecovered(log->next_seq(), options.durability == Durability::kFsync);
      !s.ok()) {
    return s;
  }
  log->synced_seq_.store(log->next_seq(), std::memory_order_release);
  return log;
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

absl::Status OpLog::Fail(absl::Status status) {
  absl::Status refused = absl::UnavailableError(absl::StrCat(
      "the operation log cannot be written; mutations are refused: ", status.message()));
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
        db_->Flush(flush, {default_, ops_, by_time_, by_user_, by_segment_, users_, unregistered_,
                           segments_, snapshots_, user_runs_})
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
        wb.Put(user_runs_, UserRunKey(r.user + count - 1, first_seq + i), EncodeUserRun(r, count));
        *users_in_runs_end = uint64_t{r.user} + count;
        i = j;
        continue;
      }
      j = i + 1;
    }
    wb.Put(by_user_, AsSlice(MakeIdTimeSeqKey(r.user, r.at, first_seq + i)), EncodeRecord(r));
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
    wb.Put(segments_, IdKey(meta.id), EncodeSegment(meta));
  }
  // Users a batch creates have consecutive ids: one `users` entry per run of them.
  std::string created;
  engine::UserId first_created = 0, next_created = 0;
  // [first, end) ranges of the users this batch creates, for user_runs.
  absl::InlinedVector<std::pair<engine::UserId, uint64_t>, 2> created_ranges;
  auto put_created = [&] {
    if (!created.empty()) {
      wb.Put(users_, IdKey(first_created), created);
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
        wb.Delete(unregistered_, IdKey(e.user));
        break;
      case engine::UserEvent::Kind::kDeleted:
        wb.Put(unregistered_, IdKey(e.user), "");
        break;
    }
  }
  put_created();
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
    wb.Put(ops_, SeqKey(first), EncodeBlock(block));
    // Runs of consecutive records: same time (by_time), same time and segment (by_segment).
    for (size_t i = 0, j; i < block.size(); i = j) {
      for (j = i + 1; j < block.size() && block[j].at == block[i].at; ++j) {
      }
      if (first + i != last.end_seq || block[i].at != last.at) {
        wb.Put(by_time_, TimeSeqKey(block[i].at, first + i),
               EncodeRunLength(static_cast<uint32_t>(j - i)));
      }
    }
    for (size_t i = 0, j; i < block.size(); i = j) {
      for (j = i + 1;
           j < block.size() && block[j].at == block[i].at && block[j].segment == block[i].segment;
           ++j) {
      }
      if (first + i != last.end_seq || block[i].at != last.at || block[i].segment != last.segment) {
        wb.Put(by_segment_, AsSlice(MakeIdTimeSeqKey(block[i].segment, block[i].at, first + i)),
               EncodeRunLength(static_cast<uint32_t>(j - i)));
      }
    }
    last = {first + block.size(), block.back().at, block.back().segment};
    PutUserIndex(wb, block, first, created_ranges, &users_in_runs_end);
  }
  seq += records.size();
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
    std::lock_guard<std::mutex> lock(rocks_write_mu_);
    s = db_->Write(options, &wb);
  }
  if (!s.ok()) return Fail(FromRocks(s, "write"));
  last_run_ = last;
  next_seq_.store(seq, std::memory_order_release);
  written_batches_.fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
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
      } else {
        std::lock_guard<std::mutex> lock(sync_error_mu_);
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
  std::lock_guard<std::mutex> lock(sync_error_mu_);
  return sync_error_;
}

absl::StatusOr<RecoveryStats> OpLog::Recover(engine::Engine& engine) {
  auto start = std::chrono::steady_clock::now();
  RecoveryStats stats;
  engine::OpBatch dictionaries;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), segments_));
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
  {
    rocksdb::ReadOptions options;
    options.readahead_size = 2 << 20;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, users_));
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
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), unregistered_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 4) return absl::DataLossError("corrupt user key");
      dictionaries.users.push_back(
          {engine::UserEvent::Kind::kDeleted, GetBigEndian32(it->key().data()), {}});
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading the registry");
  }
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
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), snapshots_));
    it->SeekForPrev(SnapshotMetaKey(UINT64_MAX));
    if (it->Valid() && it->key().size() == 9 && it->key()[0] == 'm') {
      uint64_t id = GetBigEndian64(it->key().data() + 1);
      auto meta = DecodeSnapshotMeta(View(it->value()));
      if (!meta.ok()) return meta.status();
      for (uint32_t shard = 0; shard < meta->shards; ++shard) {
        std::string value;
        rocksdb::Status got =
            db_->Get(rocksdb::ReadOptions(), snapshots_, SnapshotShardKey(id, shard), &value);
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
  stats.seconds = since(start);
  return stats;
}

absl::StatusOr<SnapshotStats> OpLog::WriteSnapshot(engine::Engine& engine) {
  std::lock_guard<std::mutex> one_at_a_time(snapshot_mu_);
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
      std::lock_guard<std::mutex> lock(rocks_write_mu_);
      s = db_->Put(options, snapshots_, SnapshotShardKey(id, shard), value);
    }
    if (!s.ok()) return FromRocks(s, "writing a snapshot");
    ++stats.shards;
  }
  // Commit: the meta key, then a sync of the write-ahead log, which makes it durable together
  // with the shard entries written before it. The sync runs outside rocks_write_mu_: the
  // engine's writes go on meanwhile instead of waiting for it.
  rocksdb::Status s;
  {
    std::lock_guard<std::mutex> lock(rocks_write_mu_);
    s = db_->Put(rocksdb::WriteOptions(), snapshots_, SnapshotMetaKey(id),
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
  prune.DeleteRange(snapshots_, SnapshotMetaKey(0), SnapshotMetaKey(id));
  prune.DeleteRange(snapshots_, SnapshotShardKey(0, 0), SnapshotShardKey(id, 0));
  {
    std::lock_guard<std::mutex> lock(rocks_write_mu_);
    s = db_->Write(rocksdb::WriteOptions(), &prune);
  }
  if (!s.ok()) return FromRocks(s, "pruning old snapshots");
  // Flush every memtable, so that the write-ahead log up to here can be deleted: a restart
  // then replays only what was written after this snapshot (nothing, at clean shutdown).
  // Writes continue meanwhile into new memtables.
  rocksdb::FlushOptions flush;
  flush.allow_write_stall = true;
  s = db_->Flush(flush, {default_, ops_, by_time_, by_user_, by_segment_, users_, unregistered_,
                         segments_, snapshots_, user_runs_});
  if (!s.ok()) return FromRocks(s, "flushing after a snapshot");
  stats.seq = meta.seq;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
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
  for (rocksdb::ColumnFamilyHandle* cf : {ops_, by_time_, by_user_, by_segment_, user_runs_}) {
    if (rocksdb::Status s = db_->Flush(rocksdb::FlushOptions(), cf); !s.ok()) {
      return FromRocks(s, "flush");
    }
    if (rocksdb::Status s = db_->CompactRange(options, cf, nullptr, nullptr); !s.ok()) {
      return FromRocks(s, "compaction");
    }
  }
  return absl::OkStatus();
}

uint64_t OpLog::ApproximateBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* cf : {default_, ops_, by_time_, by_user_, by_segment_, users_,
                                          unregistered_, segments_, snapshots_, user_runs_}) {
    uint64_t value = 0;
    if (db_->GetIntProperty(cf, "rocksdb.total-sst-files-size", &value)) total += value;
    if (db_->GetIntProperty(cf, "rocksdb.cur-size-all-mem-tables", &value)) total += value;
  }
  return total;
}

std::optional<engine::TimeMs> OpLog::FirstRecordAt() const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), ops_));
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

std::pair<uint64_t, uint64_t> OpLog::TEST_UserIndexEntries() const {
  return {TEST_CountEntries(by_user_), TEST_CountEntries(user_runs_)};
}

std::pair<uint64_t, uint64_t> OpLog::TEST_RunIndexEntries() const {
  return {TEST_CountEntries(by_time_), TEST_CountEntries(by_segment_)};
}

absl::Status OpLog::TEST_DropSnapshots() {
  rocksdb::WriteBatch wb;
  wb.DeleteRange(snapshots_, "", std::string(16, '\xff'));
  std::lock_guard<std::mutex> lock(rocks_write_mu_);
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "dropping snapshots");
}

namespace {

// Reads records by sequence number from `ops` through one iterator, keeping the last block
// decoded: consecutive lookups (a replay, a period's report) decode each block once.
class BlockReader {
 public:
  explicit BlockReader(rocksdb::Iterator* it) : it_(it) {}

  // Points *records at the n records from `seq` on. NotFound if no block holds all of them
  // (retention removed it, or the log has no such records).
  absl::Status Get(uint64_t seq, uint32_t n, const engine::OpRecord** records) {
    if (records_.empty() || seq < first_ || seq + n > first_ + records_.size()) {
      if (absl::Status s = Load(seq); !s.ok()) return s;
      if (seq < first_ || seq + n > first_ + records_.size()) {
        return absl::NotFoundError("no such records");
      }
    }
    *records = &records_[seq - first_];
    return absl::OkStatus();
  }

  // The first record at or after `seq` and the block holding it: first(), records().
  // NotFound past the end of the log.
  absl::Status LoadAtOrAfter(uint64_t seq) {
    if (absl::Status s = Load(seq); !s.ok() && !absl::IsNotFound(s)) return s;
    if (!records_.empty() && seq < first_ + records_.size()) return absl::OkStatus();
    it_->Seek(SeqKey(seq));
    return Decode();
  }
  // The block after the current one; NotFound at the end of the log.
  absl::Status Next() {
    it_->Next();
    return Decode();
  }
  uint64_t first() const { return first_; }
  const std::vector<engine::OpRecord>& records() const { return records_; }

 private:
  // The block whose first record is the greatest at or before `seq`.
  absl::Status Load(uint64_t seq) {
    // Sequential reading: the next block is the iterator's next entry.
    if (!records_.empty() && seq == first_ + records_.size() && it_->Valid()) {
      it_->Next();
    } else {
      it_->SeekForPrev(SeqKey(seq));
    }
    return Decode();
  }
  absl::Status Decode() {
    records_.clear();
    if (!it_->Valid()) {
      if (!it_->status().ok()) return FromRocks(it_->status(), "reading the operation log");
      return absl::NotFoundError("end of the operation log");
    }
    if (it_->key().size() != 8) return absl::DataLossError("corrupt key in the operation log");
    first_ = GetBigEndian64(it_->key().data());
    return DecodeBlock(View(it_->value()), &records_);
  }

  rocksdb::Iterator* it_;
  uint64_t first_ = 0;
  std::vector<engine::OpRecord> records_;
};

}  // namespace

absl::Status OpLog::ForEachRecord(
    uint64_t from_seq, absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const {
  rocksdb::ReadOptions options;
  options.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, ops_));
  BlockReader reader(it.get());
  for (absl::Status s = reader.LoadAtOrAfter(from_seq);; s = reader.Next()) {
    if (absl::IsNotFound(s)) return absl::OkStatus();
    if (!s.ok()) return s;
    const std::vector<engine::OpRecord>& records = reader.records();
    for (size_t i = 0; i < records.size(); ++i) {
      const uint64_t seq = reader.first() + i;
      if (seq >= from_seq && !fn(seq, records[i])) return absl::OkStatus();
    }
  }
}

}  // namespace segd::storage

namespace segd::storage {
namespace {

// One index range being merged: keys `prefix` + (at, seq) for at in [from, to).
struct Cursor {
  std::unique_ptr<rocksdb::Iterator> it;
  std::string prefix;
  std::string end;  // first key past the range
  int64_t at = 0;
  uint64_t seq = 0;
  bool loaded = false;   // whether it is at an entry in range (the last Load's answer)
  bool corrupt = false;  // Load met a key of the wrong length inside the range

  // Moves to the next entry and loads it.
  void Advance() {
    it->Next();
    loaded = Load();
  }

  bool Load() {
    if (!it->Valid() || it->key().compare(end) >= 0) return false;
    if (it->key().size() != prefix.size() + 16) {
      corrupt = true;  // the scan must fail, not end short
      return false;
    }
    ParseTimeSeq(View(it->key()), prefix.size(), &at, &seq);
    return true;
  }
};

}  // namespace

absl::Status OpLog::FindUserRunRecords(
    const rocksdb::Snapshot* snapshot, absl::Span<const uint32_t> users, engine::TimeMs from,
    engine::TimeMs to, std::vector<std::pair<uint64_t, engine::OpRecord>>* out) const {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> runs(db_->NewIterator(options, user_runs_));
  for (uint32_t user : users) {
    // Runs never share a user, so the first run ending at or after `user` is the only one
    // that can hold it.
    runs->Seek(IdKey(user));
    if (!runs->Valid()) {
      if (!runs->status().ok()) return FromRocks(runs->status(), "reading the user runs");
      continue;
    }
    if (runs->key().size() != 12) return absl::DataLossError("corrupt key in the user runs");
    engine::OpRecord record;
    uint32_t count = 0;
    if (absl::Status s = DecodeUserRun(View(runs->value()), &record, &count); !s.ok()) return s;
    if (user < record.user) continue;
    if (user - record.user >= count) {
      return absl::DataLossError("a user run does not end where its key says");
    }
    if (record.at < from || record.at >= to) continue;
    const uint64_t seq = GetBigEndian64(runs->key().data() + 4) + (user - record.user);
    record.user = user;
    out->emplace_back(seq, record);
  }
  std::sort(out->begin(), out->end(), [](const auto& a, const auto& b) {
    return a.second.at < b.second.at || (a.second.at == b.second.at && a.first < b.first);
  });
  return absl::OkStatus();
}

absl::Status OpLog::ScanHistory(
    const HistoryFilter& filter,
    absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const {
  // Records past the retention are out of every report, also before compaction removes them.
  const engine::TimeMs from = std::max(filter.from, RetentionCutoff());
  if (from >= filter.to) return absl::OkStatus();
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  rocksdb::ReadOptions options;
  options.snapshot = snapshot;
  // Read ahead only for long range scans (a period, a segment). A user's history is a few
  // entries: a 1 MiB read-ahead per scan made GET /v1/users/{id}/segments read megabytes.
  if (filter.users.empty()) options.readahead_size = 1 << 20;
  // by_user has a prefix (user) Bloom filter: its scans are prefix seeks, valid within the
  // user's entries only.
  options.prefix_same_as_start = true;

  // Which index: the listed users' (entries hold their records), else the listed segments',
  // else by time (entries are runs of records, read from `ops`).
  std::vector<uint32_t> ids;
  rocksdb::ColumnFamilyHandle* index = by_time_;
  bool filter_segments = false;
  if (!filter.users.empty()) {
    ids.assign(filter.users.begin(), filter.users.end());
    index = by_user_;
    filter_segments = !filter.segments.empty();
  } else if (!filter.segments.empty()) {
    ids.assign(filter.segments.begin(), filter.segments.end());
    index = by_segment_;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<engine::SegmentId> wanted_segments(filter.segments.begin(), filter.segments.end());
  std::sort(wanted_segments.begin(), wanted_segments.end());
  // Whether a record from the user index passes the segment filter.
  auto segment_wanted = [&](engine::SegmentId segment) {
    return !filter_segments ||
           std::binary_search(wanted_segments.begin(), wanted_segments.end(), segment);
  };

  std::vector<Cursor> cursors;
  auto open_cursor = [&](std::string prefix) {
    Cursor c;
    c.it.reset(db_->NewIterator(options, index));
    c.prefix = std::move(prefix);
    c.end = c.prefix + TimeSeqKey(filter.to, 0);
    c.it->Seek(c.prefix + TimeSeqKey(from, 0));
    cursors.push_back(std::move(c));
  };
  if (index == by_time_) {
    open_cursor("");
  } else {
    for (uint32_t id : ids) open_cursor(IdKey(id));
  }
  std::unique_ptr<rocksdb::Iterator> ops_it(db_->NewIterator(options, ops_));
  BlockReader blocks(ops_it.get());

  // Emits one index entry: a record (by_user) or a run of records (by_time, by_segment), and
  // moves the cursor to its next entry. Returns false to stop.
  absl::Status status;
  const bool by_segment = index == by_segment_;
  auto emit = [&](Cursor& c) -> bool {
    if (index == by_user_) {
      auto record = DecodeRecord(View(c.it->value()));
      if (!record.ok()) {
        status = record.status();
        return false;
      }
      const uint64_t seq = c.seq;
      c.Advance();
      return !segment_wanted(record->segment) || fn(seq, *record);
    }
    auto run = DecodeRunLength(View(c.it->value()));
    if (!run.ok()) {
      status = run.status();
      return false;
    }
    const engine::TimeMs at = c.at;
    const uint64_t seq = c.seq;
    // A run's own n records, then any that later batches continued it with: the records after
    // them with the same time (and segment), up to the next entry of that time (and segment),
    // which starts a run of its own ("Continued runs" in docs/oplog_format.md).
    c.Advance();
    const uint64_t next_entry =
        c.loaded && c.at == at ? c.seq : std::numeric_limits<uint64_t>::max();
    const engine::OpRecord* records = nullptr;
    if (absl::Status got = blocks.Get(seq, *run, &records); !got.ok()) {
      // Retention may have removed records whose index entry a compaction has not reached
      // yet (the cutoff moves on while a scan runs): those rows have left the history.
      if (absl::IsNotFound(got) && at < RetentionCutoff()) return true;
      status = absl::IsNotFound(got) ? absl::DataLossError("index entry without a record") : got;
      return false;
    }
    for (uint32_t i = 0; i < *run; ++i) {
      if (!fn(seq + i, records[i])) return false;
    }
    const engine::SegmentId segment = by_segment ? GetBigEndian32(c.prefix.data()) : 0;
    for (uint64_t next = seq + *run; next < next_entry; ++next) {
      const engine::OpRecord* record = nullptr;
      absl::Status got = blocks.Get(next, 1, &record);
      if (absl::IsNotFound(got)) break;  // the end of the log this scan sees
      if (!got.ok()) {
        status = got;
        return false;
      }
      if (record->at != at || (by_segment && record->segment != segment)) break;
      if (!fn(next, *record)) return false;
    }
    return true;
  };

  // The listed users' records that sit in user_runs (users a batch created): at most one per
  // user, merged in by (at, seq) below.
  std::vector<std::pair<uint64_t, engine::OpRecord>> run_records;
  if (index == by_user_) {
    if (absl::Status s = FindUserRunRecords(snapshot, ids, from, filter.to, &run_records);
        !s.ok()) {
      db_->ReleaseSnapshot(snapshot);
      return s;
    }
    std::erase_if(run_records,
                  [&](const auto& row) { return !segment_wanted(row.second.segment); });
  }
  size_t next_run_record = 0;
  bool stopped = false;
  // Emits the run records before (at, seq); false once `fn` asked to stop.
  auto emit_run_records_before = [&](int64_t at, uint64_t seq) {
    for (; next_run_record < run_records.size(); ++next_run_record) {
      const auto& [run_seq, record] = run_records[next_run_record];
      if (record.at > at || (record.at == at && run_seq >= seq)) return true;
      if (!fn(run_seq, record)) return false;
    }
    return true;
  };

  // A k-way merge by (at, seq); k is small (one per listed id), so a linear pick is enough.
  // Runs never overlap and all records of a run share its time, so merging runs by their
  // first record keeps (at, seq) order.
  std::vector<size_t> live;
  const absl::Status corrupt_key =
      absl::DataLossError("a history index key of the wrong length; the log is damaged");
  for (size_t i = 0; i < cursors.size(); ++i) {
    cursors[i].loaded = cursors[i].Load();
    if (cursors[i].loaded) live.push_back(i);
    if (cursors[i].corrupt) {
      status = corrupt_key;
      stopped = true;
      live.clear();
      break;
    }
  }
  while (!live.empty()) {
    size_t best = 0;
    for (size_t k = 1; k < live.size(); ++k) {
      const Cursor& a = cursors[live[k]];
      const Cursor& b = cursors[live[best]];
      if (a.at < b.at || (a.at == b.at && a.seq < b.seq)) best = k;
    }
    Cursor& c = cursors[live[best]];
    if (!emit_run_records_before(c.at, c.seq) || !emit(c)) {
      stopped = true;
      break;
    }
    if (!c.loaded) {
      if (c.corrupt) {
        status = corrupt_key;
        stopped = true;
        break;
      }
      if (!c.it->status().ok()) {
        status = FromRocks(c.it->status(), "reading the history index");
        stopped = true;
        break;
      }
      live.erase(live.begin() + best);
    }
  }
  if (!stopped) {
    emit_run_records_before(std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<uint64_t>::max());
  }
  cursors.clear();
  ops_it.reset();
  db_->ReleaseSnapshot(snapshot);
  return status;
}

}  // namespace segd::storage
