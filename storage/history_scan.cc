#include "storage/history_scan.h"

#include <algorithm>
#include <limits>

#include "rocksdb/db.h"
#include "rocksdb/snapshot.h"
#include "storage/detail/rocks_util.h"
#include "storage/oplog_format.h"

namespace segd::storage {

using detail::Family;
using detail::FromRocks;
using detail::View;

void HistoryScan::Cursor::Advance() {
  it->Next();
  loaded = Load();
}

bool HistoryScan::Cursor::Load() {
  if (!it->Valid() || it->key().compare(end) >= 0) return false;
  if (it->key().size() != prefix.size() + 16) {
    corrupt = true;  // the scan must fail, not end short
    return false;
  }
  ParseTimeSeq(View(it->key()), prefix.size(), &at, &seq);
  return true;
}

HistoryScan::HistoryScan(const OpLog& log, const HistoryFilter& filter) : log_(log) {
  if (absl::Status s = Open(filter); !s.ok()) Fail(s).IgnoreError();
}

HistoryScan::~HistoryScan() {
  // Iterators first: they read through the snapshot.
  cursors_.clear();
  blocks_.reset();
  ops_it_.reset();
}

absl::Status HistoryScan::Fail(absl::Status status) {
  ended_ = true;
  status_ = std::move(status);
  live_.clear();
  run_.active = false;
  return status_;
}

absl::Status HistoryScan::Open(const HistoryFilter& filter) {
  // Records past the retention are out of every report, also before compaction removes them.
  from_ = std::max(filter.from, log_.RetentionCutoff());
  to_ = filter.to;
  if (from_ >= to_) {
    ended_ = true;
    return absl::OkStatus();
  }
  rocksdb::DB* db = log_.db_.get();
  snapshot_ = std::make_unique<rocksdb::ManagedSnapshot>(db);
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_->snapshot();
  // Read ahead only for long range scans (a period, a segment). A user's history is a few
  // entries: a 1 MiB read-ahead per scan made GET /v1/users/{id}/segments read megabytes.
  if (filter.users.empty()) options.readahead_size = 1 << 20;
  // by_user has a prefix (user) Bloom filter: its scans are prefix seeks, valid within the
  // user's entries only.
  options.prefix_same_as_start = true;

  // Which index: the listed users' (entries hold their records), else the listed segments',
  // else by time (entries are runs of records, read from `ops`).
  std::vector<uint32_t> ids;
  Family family = Family::kByTime;
  if (!filter.users.empty()) {
    ids.assign(filter.users.begin(), filter.users.end());
    index_ = Index::kByUser;
    family = Family::kByUser;
    filter_segments_ = !filter.segments.empty();
  } else if (!filter.segments.empty()) {
    ids.assign(filter.segments.begin(), filter.segments.end());
    index_ = Index::kBySegment;
    family = Family::kBySegment;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  wanted_segments_.assign(filter.segments.begin(), filter.segments.end());
  std::sort(wanted_segments_.begin(), wanted_segments_.end());

  auto open_cursor = [&](std::string prefix) {
    Cursor c;
    c.it.reset(db->NewIterator(options, log_.cf(family)));
    c.prefix = std::move(prefix);
    c.end = c.prefix + TimeSeqKey(to_, 0);
    c.it->Seek(c.prefix + TimeSeqKey(from_, 0));
    cursors_.push_back(std::move(c));
  };
  if (index_ == Index::kByTime) {
    open_cursor("");
  } else {
    for (uint32_t id : ids) open_cursor(IdKey(id));
  }
  ops_it_.reset(db->NewIterator(options, log_.cf(Family::kOps)));
  blocks_ = std::make_unique<detail::BlockReader>(ops_it_.get());
  // The listed users' records that sit in user_runs and user_sets, merged in by (at, seq) as
  // the scan goes.
  if (index_ == Index::kByUser) {
    if (absl::Status s = FindUserRunRecords(ids); !s.ok()) return s;
    if (absl::Status s = FindUserSetRecords(ids); !s.ok()) return s;
    std::sort(run_records_.begin(), run_records_.end(), [](const auto& a, const auto& b) {
      return a.second.at < b.second.at || (a.second.at == b.second.at && a.first < b.first);
    });
  }
  for (size_t i = 0; i < cursors_.size(); ++i) {
    cursors_[i].loaded = cursors_[i].Load();
    if (cursors_[i].corrupt) {
      return absl::DataLossError("a history index key of the wrong length; the log is damaged");
    }
    if (!cursors_[i].loaded && !cursors_[i].it->status().ok()) {
      return FromRocks(cursors_[i].it->status(), "reading the history index");
    }
    if (cursors_[i].loaded) live_.push_back(i);
  }
  return absl::OkStatus();
}

absl::Status HistoryScan::FindUserRunRecords(absl::Span<const uint32_t> users) {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_->snapshot();
  std::unique_ptr<rocksdb::Iterator> runs(
      log_.db_->NewIterator(options, log_.cf(Family::kUserRuns)));
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
    if (record.at < from_ || record.at >= to_) continue;
    if (filter_segments_ &&
        !std::binary_search(wanted_segments_.begin(), wanted_segments_.end(), record.segment)) {
      continue;
    }
    const uint64_t seq = GetBigEndian64(runs->key().data() + 4) + (user - record.user);
    record.user = user;
    run_records_.emplace_back(seq, record);
  }
  return absl::OkStatus();
}

absl::Status HistoryScan::FindUserSetRecords(absl::Span<const uint32_t> users) {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_->snapshot();
  options.prefix_same_as_start = true;
  std::unique_ptr<rocksdb::Iterator> sets(
      log_.db_->NewIterator(options, log_.cf(Family::kUserSets)));
  // `users` is sorted, so the users of one set are adjacent: one scan of the set serves them.
  for (size_t first = 0; first < users.size();) {
    const uint32_t set = UserSetOf(users[first]);
    size_t end = first + 1;
    while (end < users.size() && UserSetOf(users[end]) == set) ++end;
    const absl::Span<const uint32_t> wanted = users.subspan(first, end - first);
    const std::string prefix = IdKey(set);
    const std::string stop = prefix + TimeSeqKey(to_, 0);
    for (sets->Seek(prefix + TimeSeqKey(from_, 0)); sets->Valid() && sets->key().compare(stop) < 0;
         sets->Next()) {
      if (sets->key().size() != 20) return absl::DataLossError("corrupt key in the user sets");
      engine::TimeMs at;
      uint64_t block_seq;
      ParseTimeSeq(View(sets->key()), 4, &at, &block_seq);
      absl::Status decoded = DecodeUserSet(
          View(sets->value()), set, at, [&](uint32_t index, const engine::OpRecord& record) {
            if (!std::binary_search(wanted.begin(), wanted.end(), record.user)) return;
            if (filter_segments_ && !std::binary_search(wanted_segments_.begin(),
                                                        wanted_segments_.end(), record.segment)) {
              return;
            }
            run_records_.emplace_back(block_seq + index, record);
          });
      if (!decoded.ok()) return decoded;
    }
    if (!sets->status().ok()) return FromRocks(sets->status(), "reading the user sets");
    first = end;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> HistoryScan::NextOfRun(uint64_t* seq, const engine::OpRecord** record) {
  const uint64_t next = run_.next;
  if (next >= run_.next_entry) {
    run_.active = false;
    return false;
  }
  absl::Status got = blocks_->Get(next, 1, record);
  if (next >= run_.own_end) {
    // Past the entry's own records: those with its time (and segment) continue it.
    if (absl::IsNotFound(got)) {  // the end of the log this scan sees
      run_.active = false;
      return false;
    }
    if (!got.ok()) return got;
    if ((*record)->at != run_.at ||
        (index_ == Index::kBySegment && (*record)->segment != run_.segment)) {
      run_.active = false;
      return false;
    }
  } else if (!got.ok()) {
    return absl::IsNotFound(got) ? absl::DataLossError("index entry without a record") : got;
  }
  *seq = next;
  ++run_.next;
  return true;
}

absl::StatusOr<bool> HistoryScan::TakeEntry(size_t best, uint64_t* seq, engine::OpRecord* record) {
  Cursor& c = cursors_[live_[best]];
  const engine::TimeMs at = c.at;
  const uint64_t entry_seq = c.seq;
  const rocksdb::Slice value = c.it->value();
  bool have_record = false;
  uint32_t run_length = 0;
  if (index_ == Index::kByUser) {
    auto decoded = DecodeRecord(View(value));
    if (!decoded.ok()) return decoded.status();
    *record = *decoded;
    *seq = entry_seq;
    have_record = !filter_segments_ || std::binary_search(wanted_segments_.begin(),
                                                          wanted_segments_.end(), record->segment);
  } else {
    auto run = DecodeRunLength(View(value));
    if (!run.ok()) return run.status();
    run_length = *run;
  }
  const engine::SegmentId segment =
      index_ == Index::kBySegment ? GetBigEndian32(c.prefix.data()) : 0;
  c.Advance();
  const uint64_t next_entry = c.loaded && c.at == at ? c.seq : std::numeric_limits<uint64_t>::max();
  if (!c.loaded) {
    if (c.corrupt) {
      return absl::DataLossError("a history index key of the wrong length; the log is damaged");
    }
    if (!c.it->status().ok()) return FromRocks(c.it->status(), "reading the history index");
    live_.erase(live_.begin() + static_cast<ptrdiff_t>(best));
  }
  if (index_ == Index::kByUser) return have_record;
  // Every record of the run's own must be there.
  const engine::OpRecord* records = nullptr;
  if (absl::Status got = blocks_->Get(entry_seq, run_length, &records); !got.ok()) {
    // Retention may have removed records whose index entry a compaction has not reached
    // yet (the cutoff moves on while a scan runs): those rows have left the history.
    if (absl::IsNotFound(got) && at < log_.RetentionCutoff()) return false;
    return absl::IsNotFound(got) ? absl::DataLossError("index entry without a record") : got;
  }
  run_ = {.active = true,
          .next = entry_seq,
          .own_end = entry_seq + run_length,
          .next_entry = std::max(next_entry, entry_seq + run_length),
          .at = at,
          .segment = segment};
  return false;
}

absl::StatusOr<bool> HistoryScan::Next(RecordFn fn) {
  if (ended_) {
    if (!status_.ok()) return status_;
    return true;
  }
  for (;;) {
    if (run_.active) {
      uint64_t seq = 0;
      const engine::OpRecord* record = nullptr;
      auto more = NextOfRun(&seq, &record);
      if (!more.ok()) return Fail(more.status());
      if (*more && !fn(seq, *record)) return false;
      continue;
    }
    // A k-way merge by (at, seq); k is small (one per listed id), so a linear pick is enough.
    // Runs never overlap and all records of a run share its time, so merging runs by their
    // first record keeps (at, seq) order.
    size_t best = 0;
    for (size_t k = 1; k < live_.size(); ++k) {
      const Cursor& a = cursors_[live_[k]];
      const Cursor& b = cursors_[live_[best]];
      if (a.at < b.at || (a.at == b.at && a.seq < b.seq)) best = k;
    }
    // Records from user_runs and user_sets go first while they come before the next index
    // entry.
    if (next_run_record_ < run_records_.size()) {
      const auto& [seq, record] = run_records_[next_run_record_];
      const Cursor* c = live_.empty() ? nullptr : &cursors_[live_[best]];
      if (c == nullptr || record.at < c->at || (record.at == c->at && seq < c->seq)) {
        ++next_run_record_;
        if (!fn(seq, record)) return false;
        continue;
      }
    }
    if (live_.empty()) {
      ended_ = true;
      return true;
    }
    uint64_t seq = 0;
    engine::OpRecord record;
    auto have = TakeEntry(best, &seq, &record);
    if (!have.ok()) return Fail(have.status());
    if (*have && !fn(seq, record)) return false;
  }
}

absl::Status OpLog::ScanHistory(
    const HistoryFilter& filter,
    absl::FunctionRef<bool(uint64_t, const engine::OpRecord&)> fn) const {
  HistoryScan scan(*this, filter);
  auto ended = scan.Next(fn);
  return ended.ok() ? absl::OkStatus() : ended.status();
}

}  // namespace segd::storage
