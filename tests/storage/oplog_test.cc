#include "storage/oplog.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/errors.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/oplog_format.h"
#include "tests/testutil/engine_state.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using testutil::TempDir;

constexpr engine::TimeMs kStart = 1'800'000'000'000;

std::unique_ptr<OpLog> MustOpen(const std::string& dir, Durability d = Durability::kProcess) {
  auto log = OpLog::Open(dir, {d});
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

// Random mutations of every kind through a logged engine.
void RandomWorkload(Engine& engine, ManualClock& clock, std::mt19937_64& rng,
                    const std::vector<std::string>& users, int steps) {
  const std::vector<std::string> segments = {"a", "b", "c", "d.e", "f:g"};
  for (const auto& s : segments) {
    (void)engine.CreateSegment(
        {.name = s, .ttl_seconds = (rng() % 2) ? std::optional<int64_t>(30) : std::nullopt});
  }
  for (int step = 0; step < steps; ++step) {
    const std::string& user = users[rng() % users.size()];
    const std::string& seg = segments[rng() % segments.size()];
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2: {
        engine::MembershipAdd add{seg};
        if (rng() % 2) add.ttl_seconds = 1 + rng() % 100;
        (void)engine.UpdateUserSegments(user, {.add = {add}});
        break;
      }
      case 3:
        (void)engine.UpdateUserSegments(user, {.remove = {seg}});
        break;
      case 4:
        clock.Advance(rng() % 20000);
        ASSERT_TRUE(engine.ProcessExpiries().ok());
        break;
      case 5:
        (void)engine.DeleteUser(user);
        break;
      case 6:
        if (rng() % 4 == 0) {
          (void)engine.DeleteSegment(seg);
        } else {
          (void)engine.CreateSegment({.name = seg,
                                      .description = "d" + std::to_string(step),
                                      .auto_percent = double(rng() % 60),
                                      .auto_percent_sticky = rng() % 2 == 0});
        }
        break;
      case 7: {
        std::vector<engine::ImportItem> items;
        for (int i = 0; i < 5; ++i) items.push_back({users[rng() % users.size()]});
        (void)engine.Import(seg, items, std::nullopt);
        break;
      }
      case 8:
        (void)engine.RegisterUser(user);
        break;
      default:
        (void)engine.UpdateSegment(seg, {.ttl_seconds = std::optional<int64_t>(1 + rng() % 50)});
    }
  }
}

class OpLogRecoveryTest : public ::testing::TestWithParam<Durability> {};

TEST_P(OpLogRecoveryTest, RestartRebuildsTheSameState) {
  TempDir dir;
  std::vector<std::string> users;
  for (int i = 0; i < 60; ++i) users.push_back("user " + std::to_string(i) + "@x/y");
  ManualClock clock(kStart);
  auto log = MustOpen(dir.path(), GetParam());
  ASSERT_TRUE(log);
  Engine original(EngineOptions{&clock, log.get(), 11});
  std::mt19937_64 rng(77);
  RandomWorkload(original, clock, rng, users, 3000);
  uint64_t records = log->next_seq() - 1;
  EXPECT_GT(records, 1000u);

  // Restart: the same state; then more work on the recovered engine, and another restart.
  log.reset();
  log = MustOpen(dir.path(), GetParam());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->next_seq() - 1, records);
  Engine recovered(EngineOptions{&clock, log.get(), 12});
  auto stats = log->Recover(recovered);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->records, records);
  testutil::ExpectSameState(original, recovered, users);

  RandomWorkload(recovered, clock, rng, users, 500);
  EXPECT_GT(log->next_seq() - 1, records);
  log.reset();
  log = MustOpen(dir.path(), GetParam());
  Engine again(EngineOptions{&clock, log.get(), 13});
  ASSERT_TRUE(log->Recover(again).ok());
  testutil::ExpectSameState(recovered, again, users);
}

TEST_P(OpLogRecoveryTest, SnapshotThenTailGivesTheSameStateAsFullReplay) {
  TempDir dir;
  std::vector<std::string> users;
  for (int i = 0; i < 60; ++i) users.push_back("user-" + std::to_string(i));
  ManualClock clock(kStart);
  auto log = MustOpen(dir.path(), GetParam());
  Engine original(EngineOptions{&clock, log.get(), 21});
  std::mt19937_64 rng(5);
  RandomWorkload(original, clock, rng, users, 1500);
  auto snap = log->WriteSnapshot(original);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->seq, log->next_seq());
  RandomWorkload(original, clock, rng, users, 1500);
  ASSERT_TRUE(log->WriteSnapshot(original).ok());  // a second one replaces the first
  RandomWorkload(original, clock, rng, users, 500);
  uint64_t total = log->next_seq() - 1;

  log.reset();
  log = MustOpen(dir.path(), GetParam());
  Engine from_snapshot(EngineOptions{&clock, log.get(), 22});
  auto stats = log->Recover(from_snapshot);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->snapshot_seq, 1u);
  EXPECT_LT(stats->records, total);
  EXPECT_EQ(stats->records, total - stats->snapshot_seq + 1);
  testutil::ExpectSameState(original, from_snapshot, users);

  // With the snapshots gone, a full replay gives the same state too.
  ASSERT_TRUE(log->TEST_DropSnapshots().ok());
  Engine from_log(EngineOptions{&clock, log.get(), 23});
  auto full = log->Recover(from_log);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->snapshot_seq, 0u);
  EXPECT_EQ(full->records, total);
  testutil::ExpectSameState(original, from_log, users);
}

// Snapshots taken while writers keep changing the same users and segments: the snapshot is
// fuzzy, and replaying the tail from its start must still land on the exact final state.
TEST(OpLogSnapshotTest, SnapshotsDuringConcurrentWrites) {
  TempDir dir;
  auto log = MustOpen(dir.path());
  Engine engine(EngineOptions{nullptr, log.get(), 31});
  for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(engine.CreateSegment({.name = s}).ok());
  std::vector<std::string> users;
  for (int i = 0; i < 200; ++i) users.push_back("w" + std::to_string(i * 7919));
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!stop.load()) {
        const std::string& user = users[rng() % users.size()];
        std::string seg(1, "abc"[rng() % 3]);
        if (rng() % 3) {
          engine::MembershipAdd add{seg};
          if (rng() % 2) add.ttl_seconds = 3600 + rng() % 100;
          (void)engine.UpdateUserSegments(user, {.add = {add}});
        } else {
          (void)engine.UpdateUserSegments(user, {.remove = {seg}});
        }
      }
    });
  }
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(log->WriteSnapshot(engine).ok());
  stop = true;
  for (auto& t : writers) t.join();
  log.reset();
  log = MustOpen(dir.path());
  Engine recovered(EngineOptions{nullptr, log.get(), 32});
  auto stats = log->Recover(recovered);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->snapshot_seq, 0u);
  testutil::ExpectSameState(engine, recovered, users);
}

INSTANTIATE_TEST_SUITE_P(Modes, OpLogRecoveryTest,
                         ::testing::Values(Durability::kProcess, Durability::kFsync),
                         [](const ::testing::TestParamInfo<Durability>& info) {
                           return info.param == Durability::kFsync ? "Fsync" : "Process";
                         });

TEST(OpLogTest, HistoryHoldsEveryChangeWithReasons) {
  TempDir dir;
  ManualClock clock(kStart);
  auto log = MustOpen(dir.path());
  Engine engine(EngineOptions{&clock, log.get(), 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  ASSERT_TRUE(engine.UpdateUserSegments("u1", {.add = {{"a", 5}}}).ok());
  ASSERT_TRUE(engine.Import("a", {{"u2"}}, std::nullopt).ok());
  ASSERT_TRUE(engine.DeleteUser("u2").ok());
  clock.Advance(6000);
  ASSERT_TRUE(engine.ProcessExpiries().ok());
  std::vector<std::pair<uint64_t, engine::OpRecord>> seen;
  ASSERT_TRUE(log->ForEachRecord(1,
                                 [&](uint64_t seq, const engine::OpRecord& r) {
                                   seen.emplace_back(seq, r);
                                   return true;
                                 })
                  .ok());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].first, 1u);
  EXPECT_EQ(seen[0].second.reason, engine::OpReason::kApi);
  EXPECT_EQ(seen[0].second.expires_at, kStart + 5000);
  EXPECT_EQ(seen[1].second.reason, engine::OpReason::kImport);
  EXPECT_EQ(seen[2].second.reason, engine::OpReason::kUserDeleted);
  EXPECT_EQ(seen[3].second.reason, engine::OpReason::kTtlExpired);
  EXPECT_EQ(seen[3].second.at, kStart + 5000);  // logged at its due time
}

TEST(OpLogTest, ExpiryAcrossDowntimeIsLoggedAtItsDueTime) {
  TempDir dir;
  ManualClock clock(kStart);
  {
    auto log = MustOpen(dir.path());
    Engine engine(EngineOptions{&clock, log.get(), 1});
    ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("u1", {.add = {{"a", 10}}}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("u2", {.add = {{"a", 3600}}}).ok());
  }
  clock.Advance(60'000);  // down for a minute
  auto log = MustOpen(dir.path());
  Engine engine(EngineOptions{&clock, log.get(), 2});
  ASSERT_TRUE(log->Recover(engine).ok());
  EXPECT_TRUE(engine.Check("a", "u1")->member);  // until expiries are processed
  EXPECT_EQ(*engine.ProcessExpiries(), 1u);
  EXPECT_FALSE(engine.Check("a", "u1")->member);
  EXPECT_TRUE(engine.Check("a", "u2")->member);
  engine::OpRecord last;
  ASSERT_TRUE(log->ForEachRecord(1,
                                 [&](uint64_t, const engine::OpRecord& r) {
                                   last = r;
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(last.reason, engine::OpReason::kTtlExpired);
  EXPECT_EQ(last.at, kStart + 10'000);
}

TEST(OpLogTest, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  auto first = MustOpen(dir.path());
  auto second = OpLog::Open(dir.path(), {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find(dir.path()), std::string::npos);
}

TEST(OpLogTest, UncreatableDirectoryIsAClearError) {
  TempDir dir;
  std::ofstream(dir.Sub("file")) << "not a directory";
  auto log = OpLog::Open(dir.Sub("file") + "/data", {});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("data directory"), std::string::npos) << log.status();
}

TEST(OpLogTest, CorruptDirectoryIsRefusedWithAClearError) {
  TempDir dir;
  {
    auto log = MustOpen(dir.path());
    Engine engine(EngineOptions{nullptr, log.get(), 1});
    ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("u", {.add = {{"a"}}}).ok());
  }
  // CURRENT names the manifest; pointing it at nothing is a corrupt directory.
  std::ofstream(dir.Sub("log/CURRENT"), std::ios::trunc) << "MANIFEST-999999\n";
  auto log = OpLog::Open(dir.path(), {});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(dir.path()), std::string::npos) << log.status();
}

TEST(OpLogTest, DirectoryThatIsNotADatabaseIsRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir.Sub("log"));
  std::ofstream(dir.Sub("log/CURRENT")) << "garbage";
  auto log = OpLog::Open(dir.path(), {});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(dir.path()), std::string::npos) << log.status();
}

// A snapshot's sync of the write-ahead log does not hold the lock every RocksDB write takes:
// an engine write made while the snapshot is about to sync completes without waiting for it.
// (It once waited: the meta key was a synced put under that lock, and the prune after it.)
TEST(OpLogTest, WritersDoNotWaitForASnapshotsSync) {
  TempDir dir;
  auto log = MustOpen(dir.path());
  engine::Engine engine(engine::EngineOptions{nullptr, log.get()});
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  ASSERT_TRUE(engine.UpdateUserSegments("before", {.add = {{"s"}}}).ok());
  bool written_during_sync = false;
  std::promise<bool> done;
  std::thread writer;
  log->TEST_SetBeforeSnapshotSync([&] {
    // Stands for a slow sync: a write from another thread must finish meanwhile.
    writer = std::thread(
        [&] { done.set_value(engine.UpdateUserSegments("during", {.add = {{"s"}}}).ok()); });
    auto result = done.get_future();
    written_during_sync =
        result.wait_for(std::chrono::seconds(10)) == std::future_status::ready && result.get();
  });
  ASSERT_TRUE(log->WriteSnapshot(engine).ok());
  writer.join();  // a write that waited for the sync is done by now
  EXPECT_TRUE(written_during_sync);
  EXPECT_TRUE(engine.Check("s", "during")->member);
}

// The skiplist fallback for by_user's memtable: a log written with either memtable reads the
// same with the other (nothing of the choice is on disk).
TEST(OpLogTest, TheUserIndexMemtableCanFallBackToTheSkiplist) {
  TempDir dir;
  auto rows_of = [&](OpLog& log, engine::Engine& engine, const std::string& user) {
    storage::HistoryFilter filter;
    filter.users.push_back(*engine.FindUser(user));
    size_t rows = 0;
    EXPECT_TRUE(log.ScanHistory(filter,
                                [&](uint64_t, const engine::OpRecord&) {
                                  ++rows;
                                  return true;
                                })
                    .ok());
    return rows;
  };
  size_t round = 0;
  for (bool lists : {false, true, false}) {
    ++round;
    auto log = OpLog::Open(dir.path(), {.user_index_lists = lists});
    ASSERT_TRUE(log.ok()) << log.status();
    engine::Engine engine(engine::EngineOptions{nullptr, log->get()});
    ASSERT_TRUE((*log)->Recover(engine).ok());
    if (!engine.FindSegment("s")) {
      ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
    }
    ASSERT_TRUE(engine.UpdateUserSegments("u", {.add = {{"s"}}}).ok());  // one more add each time
    EXPECT_EQ(rows_of(**log, engine, "u"), round) << (lists ? "lists" : "skiplist");
  }
}

// An error whose text happens to hold "lock" (here in the path) is not a directory in use: the
// error is mapped by its kind. (It was once reported as "in use by another segd process".)
TEST(OpLogTest, ErrorsAreMappedByKindNotByWordsInTheirText) {
  TempDir dir;
  const std::string data = dir.Sub("blockstore");
  std::filesystem::create_directories(data);
  std::ofstream(data + "/log") << "a file where the log's directory should be";
  auto log = OpLog::Open(data, {});
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().code(), absl::StatusCode::kFailedPrecondition) << log.status();
  EXPECT_EQ(log.status().message().find("in use"), std::string::npos) << log.status();
  EXPECT_NE(log.status().message().find(data), std::string::npos) << log.status();
}

// Runs `edit` on DIR/log opened directly with RocksDB (every family), as a damaged disk or
// another program might have left it.
void EditDatabase(
    const TempDir& dir,
    const std::function<void(rocksdb::DB*, const std::vector<std::string>&,
                             const std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir.Sub("log"), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open({}, dir.Sub("log"), families, &handles, &raw).ok());
  edit(raw, names, handles);
  for (rocksdb::ColumnFamilyHandle* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

// A period scan that meets an index key of the wrong length fails with DataLoss instead of
// ending early with a silently short report.
TEST(OpLogTest, AMalformedIndexKeyIsDataLossNotAShortReport) {
  TempDir dir;
  engine::TimeMs at = 0;
  {
    auto log = MustOpen(dir.path());
    engine::Engine engine(engine::EngineOptions{nullptr, log.get()});
    ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("u", {.add = {{"s"}}}).ok());
    ASSERT_TRUE(log->ScanHistory({},
                                 [&](uint64_t, const engine::OpRecord& r) {
                                   at = r.at;
                                   return true;
                                 })
                    .ok());
  }
  EditDatabase(dir, [&](rocksdb::DB* raw, const std::vector<std::string>& names,
                        const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != "by_time") continue;
      // 15 bytes: a prefix of a real key, so it sorts inside every range that holds `at`.
      const std::string key = TimeSeqKey(at, 0).substr(0, 15);
      EXPECT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[i], key, EncodeRunLength(1)).ok());
    }
  });
  auto log = MustOpen(dir.path());
  size_t rows = 0;
  absl::Status s = log->ScanHistory({}, [&](uint64_t, const engine::OpRecord&) {
    ++rows;
    return true;
  });
  EXPECT_TRUE(absl::IsDataLoss(s)) << s << " after " << rows << " rows";
}

// DIR/log opened directly with RocksDB, every column family included, as another segd would.
class RawLog {
 public:
  explicit RawLog(const TempDir& dir) {
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir.Sub("log"), &names_).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names_) {
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    EXPECT_TRUE(rocksdb::DB::Open({}, dir.Sub("log"), families, &handles_, &db_).ok());
  }
  ~RawLog() {
    for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }
  RawLog(const RawLog&) = delete;
  RawLog& operator=(const RawLog&) = delete;

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* family(absl::string_view name) const {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return handles_[i];
    }
    return nullptr;
  }
  void SetFormatVersion(uint32_t version) {
    std::string bytes;
    PutBigEndian32(&bytes, version);
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), "format", bytes).ok());
  }

 private:
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::DB* db_ = nullptr;
};

// The format version DIR/log holds after writing `version` there (when given).
uint32_t FormatVersionAt(const TempDir& dir, std::optional<uint32_t> version = std::nullopt) {
  RawLog raw(dir);
  if (raw.db() == nullptr) return 0;
  if (version) raw.SetFormatVersion(*version);
  std::string found;
  EXPECT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), "format", &found).ok());
  return found.size() == 4 ? GetBigEndian32(found.data()) : 0;
}

TEST(OpLogTest, OtherFormatVersionIsRefusedNamingBoth) {
  TempDir dir;
  MustOpen(dir.path()).reset();
  EXPECT_EQ(FormatVersionAt(dir, 1), 1u);  // as a much older segd would have left it
  auto log = OpLog::Open(dir.path(), {});
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition) << log.status();
  EXPECT_NE(log.status().message().find("version 1;"), std::string::npos) << log.status();
  EXPECT_NE(log.status().message().find(
                absl::StrCat("versions ", kOldestReadFormatVersion, " to ", kFormatVersion)),
            std::string::npos)
      << log.status();
}

// A version 2 or 3 directory (no user_runs, no continued runs) is read as it is and marked
// current when opened, so that a segd that reads only the older versions refuses it once
// runs or continued runs may be in it.
TEST(OpLogTest, OlderVersionsAreOpenedAndMarkedCurrent) {
  for (uint32_t older = kOldestReadFormatVersion; older < kFormatVersion; ++older) {
    TempDir dir;
    {
      auto log = MustOpen(dir.path());
      Engine engine(EngineOptions{nullptr, log.get(), 1});
      ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
      ASSERT_TRUE(engine.UpdateUserSegments("old", {.add = {{"a"}}}).ok());
    }
    EXPECT_EQ(FormatVersionAt(dir, older), older);
    {
      auto log = MustOpen(dir.path());
      Engine engine(EngineOptions{nullptr, log.get(), 1});
      ASSERT_TRUE(log->Recover(engine).ok());
      EXPECT_EQ(engine.UserSegments("old").size(), 1u) << "version " << older;
    }
    EXPECT_EQ(FormatVersionAt(dir), kFormatVersion) << "version " << older;
  }
}

// Rewrites every snapshot shard entry in DIR/log as format 6 wrote it (no added-at times) and
// marks the directory version 6, as a segd of that version would have left it. Returns how
// many entries it rewrote.
int PlantFormat6Snapshot(const TempDir& dir) {
  RawLog raw(dir);
  if (raw.db() == nullptr) return 0;
  rocksdb::ColumnFamilyHandle* snapshots = raw.family("snapshots");
  int rewritten = 0;
  std::unique_ptr<rocksdb::Iterator> it(raw.db()->NewIterator({}, snapshots));
  for (it->Seek("s"); it->Valid() && it->key().starts_with("s"); it->Next()) {
    const uint32_t shard = GetBigEndian32(it->key().data() + 9);
    auto state = DecodeShardState(shard, absl::string_view(it->value().data(), it->value().size()));
    EXPECT_TRUE(state.ok()) << state.status();
    if (!state.ok()) break;
    EXPECT_FALSE(state->added.empty()) << "format 7 keeps added-at times in snapshots";
    state->added.clear();
    std::string bytes = EncodeShardState(*state);
    bytes.pop_back();  // the count of added-at lists, 0: format 6 wrote nothing there
    EXPECT_TRUE(raw.db()->Put({}, snapshots, it->key(), bytes).ok());
    ++rewritten;
  }
  it.reset();
  raw.SetFormatVersion(6);
  return rewritten;
}

// Snapshots keep each membership's added-at time, so that a restart answers it from memory;
// one written by format 6 recovers with those it covers unknown (the server then reads them
// from the history), and the records replayed after it set theirs.
TEST(OpLogTest, SnapshotsKeepAddedAtAndFormat6OnesRecoverItUnknown) {
  TempDir dir;
  ManualClock clock(kStart + 345);
  {
    auto log = MustOpen(dir.path());
    Engine engine(EngineOptions{&clock, log.get(), 1});
    ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
    ASSERT_TRUE(engine.UpdateUserSegments("early", {.add = {{"a"}}}).ok());
    std::vector<engine::ImportItem> items;
    for (int i = 0; i < 100; ++i) items.push_back({"imported-" + std::to_string(i)});
    clock.Advance(61'000);
    ASSERT_TRUE(engine.Import("a", items, std::nullopt).ok());
    ASSERT_TRUE(log->WriteSnapshot(engine).ok());
    clock.Advance(5'500);
    ASSERT_TRUE(engine.UpdateUserSegments("late", {.add = {{"a"}}}).ok());
  }
  {
    auto log = MustOpen(dir.path());
    Engine engine(EngineOptions{&clock, log.get(), 1});
    auto stats = log->Recover(engine);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_GT(stats->snapshot_seq, 1u);
    EXPECT_EQ(engine.UserSegments("early").at(0).added_at, kStart);
    EXPECT_EQ(engine.UserSegments("imported-7").at(0).added_at, kStart + 61'000);
    EXPECT_EQ(engine.UserSegments("late").at(0).added_at, kStart + 66'000);
  }
  EXPECT_GT(PlantFormat6Snapshot(dir), 0);
  {
    auto log = MustOpen(dir.path());
    Engine engine(EngineOptions{&clock, log.get(), 1});
    auto stats = log->Recover(engine);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_GT(stats->snapshot_seq, 1u);
    EXPECT_EQ(engine.UserSegments("early").at(0).added_at, engine::kUnknownTime);
    EXPECT_EQ(engine.UserSegments("imported-7").at(0).added_at, engine::kUnknownTime);
    EXPECT_EQ(engine.UserSegments("late").at(0).added_at, kStart + 66'000);
  }
  EXPECT_EQ(FormatVersionAt(dir), kFormatVersion);
}

// An import of new users indexes them as runs (one user_runs entry per block), not one
// by_user entry each; users seen before, interleaved new ones and short runs get by_user
// entries. Each user's history is found either way.
TEST(OpLogTest, ImportsOfNewUsersIndexThemAsRuns) {
  TempDir dir;
  auto log = MustOpen(dir.path());
  Engine engine(EngineOptions{nullptr, log.get(), 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  std::vector<engine::ImportItem> items;
  for (int i = 0; i < 10000; ++i) items.push_back({"n-" + std::to_string(i)});
  ASSERT_TRUE(engine.Import("a", items, std::nullopt).ok());
  EXPECT_EQ(log->TEST_UserIndexEntries(), std::make_pair(uint64_t{0}, uint64_t{3}));

  items.clear();
  for (int i = 0; i < 50; ++i) {
    items.push_back({"n-" + std::to_string(i * 7)});
    items.push_back({"m-" + std::to_string(i)});
  }
  ASSERT_TRUE(engine.Import("a", items, std::nullopt).ok());
  ASSERT_TRUE(engine.UpdateUserSegments("single", {.add = {{"a"}}}).ok());
  // The second import's records are in user sets (n-0 … n-343 are users 0 … 343, m-0 … m-49
  // users 10,000 … 10,049, each set with at least 4 of them); only "single" is in by_user.
  std::set<uint32_t> sets;
  for (int i = 0; i < 50; ++i) {
    sets.insert(UserSetOf(i * 7));
    sets.insert(UserSetOf(10000 + i));
  }
  EXPECT_EQ(log->TEST_UserIndexEntries(), std::make_pair(uint64_t{1}, uint64_t{3}));
  EXPECT_EQ(log->TEST_UserSetEntries(), sets.size());

  auto history = [&](const std::string& name) {
    std::vector<uint64_t> seqs;
    EXPECT_TRUE(log->ScanHistory({.users = {*engine.FindUser(name)}},
                                 [&](uint64_t seq, const engine::OpRecord& r) {
                                   EXPECT_EQ(r.user, *engine.FindUser(name));
                                   seqs.push_back(seq);
                                   return true;
                                 })
                    .ok());
    return seqs;
  };
  // Records 1 … 10,000 are the first import, in item order; 10,001 … 10,100 the second.
  EXPECT_EQ(history("n-0"), (std::vector<uint64_t>{1, 10001}));
  EXPECT_EQ(history("n-4095"), (std::vector<uint64_t>{4096}));
  EXPECT_EQ(history("n-4096"), (std::vector<uint64_t>{4097}));
  EXPECT_EQ(history("n-9999"), (std::vector<uint64_t>{10000}));
  EXPECT_EQ(history("m-0"), (std::vector<uint64_t>{10002}));
  EXPECT_EQ(history("single"), (std::vector<uint64_t>{10101}));
}

// --rocksdb-memory: the memtables are charged to the block cache and flushed at half the
// budget, so however much is written they stay within it, and the cache counts them.
TEST(OpLogTest, MemtablesStayWithinTheMemoryBudget) {
  TempDir dir;
  constexpr uint64_t kBudget = 4u << 20;
  auto opened = OpLog::Open(dir.path(), {.memory_bytes = kBudget});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<OpLog> log = std::move(*opened);
  Engine engine(EngineOptions{nullptr, log.get(), 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  ASSERT_TRUE(engine.CreateSegment({.name = "b"}).ok());
  uint64_t most = 0;
  std::vector<engine::ImportItem> items;
  // Existing users in a shuffled order (user_sets entries, and their blocks in ops).
  std::vector<int> order(20000);
  for (int i = 0; i < 20000; ++i) order[i] = i;
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    items.clear();
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order) items.push_back({absl::StrCat("user-with-a-long-id-", i)});
    ASSERT_TRUE(engine.Import(round % 2 ? "a" : "b", items, std::nullopt).ok());
    OpLog::MemoryUsage usage = log->memory_usage();
    EXPECT_EQ(usage.budget, kBudget);
    EXPECT_LE(usage.memtables, kBudget) << "round " << round;
    // The memtables' charge is in the cache (in whole dummy entries, so allow one).
    EXPECT_GE(usage.cache + (1u << 20), usage.memtables) << "round " << round;
    most = std::max(most, usage.memtables);
  }
  // 800,000 records went in; far more than the budget was written and flushed.
  EXPECT_GT(log->ApproximateBytes(), kBudget);
  EXPECT_GT(most, 0u);
}

// Single-record requests at one time into one segment continue the time and segment index
// runs of the request before them instead of adding entries; a request at another time or
// into another segment starts new ones, and so does the first request after a reopen. Reports
// by period and by segment still list every record once, in log order.
TEST(OpLogTest, RequestsAtOneTimeContinueTheIndexRuns) {
  TempDir dir;
  ManualClock clock(1'800'000'000'000);
  auto log = MustOpen(dir.path());
  auto engine = std::make_unique<Engine>(EngineOptions{&clock, log.get(), 1});
  ASSERT_TRUE(engine->CreateSegment({.name = "a"}).ok());
  ASSERT_TRUE(engine->CreateSegment({.name = "b"}).ok());
  auto add = [&](const std::string& user, const std::string& segment) {
    ASSERT_TRUE(engine->UpdateUserSegments(user, {.add = {{segment}}}).ok());
  };
  for (int i = 0; i < 100; ++i) add("u" + std::to_string(i), "a");
  EXPECT_EQ(log->TEST_RunIndexEntries(), std::make_pair(uint64_t{1}, uint64_t{1}));
  add("u0", "b");  // same time, another segment: one more by_segment run
  add("u1", "a");  // back to a: its earlier run is interrupted, so a new one
  EXPECT_EQ(log->TEST_RunIndexEntries(), std::make_pair(uint64_t{1}, uint64_t{3}));
  clock.Advance(1);
  add("u2", "a");  // a new time: new runs in both
  EXPECT_EQ(log->TEST_RunIndexEntries(), std::make_pair(uint64_t{2}, uint64_t{4}));

  engine.reset();
  log.reset();
  log = MustOpen(dir.path());
  engine = std::make_unique<Engine>(EngineOptions{&clock, log.get(), 1});
  ASSERT_TRUE(log->Recover(*engine).ok());
  add("u3", "a");  // same time and segment as the last record, but after a reopen
  add("u4", "a");
  EXPECT_EQ(log->TEST_RunIndexEntries(), std::make_pair(uint64_t{3}, uint64_t{5}));

  auto seqs = [&](const HistoryFilter& filter) {
    std::vector<uint64_t> out;
    EXPECT_TRUE(log->ScanHistory(filter,
                                 [&](uint64_t seq, const engine::OpRecord&) {
                                   out.push_back(seq);
                                   return true;
                                 })
                    .ok());
    return out;
  };
  std::vector<uint64_t> all(105);
  for (size_t i = 0; i < all.size(); ++i) all[i] = i + 1;
  EXPECT_EQ(seqs({}), all);
  std::vector<uint64_t> in_a = all;
  std::erase(in_a, uint64_t{101});
  EXPECT_EQ(seqs({.segments = {engine->GetSegment("a")->meta.id}}), in_a);
  EXPECT_EQ(seqs({.segments = {engine->GetSegment("b")->meta.id}}), std::vector<uint64_t>{101});
  // A period that starts at the later time holds the records from there on only.
  EXPECT_EQ(seqs({.from = clock.NowMs()}), (std::vector<uint64_t>{103, 104, 105}));
}

TEST(OpLogTest, ParseDurability) {
  EXPECT_EQ(*ParseDurability("process"), Durability::kProcess);
  EXPECT_EQ(*ParseDurability("fsync"), Durability::kFsync);
  EXPECT_FALSE(ParseDurability("FSYNC").ok());
}

// Many threads writing through one engine in fsync mode: every mutation acknowledged only once a
// sync covered its batch, every record in the log once, and syncs shared.
TEST(OpLogTest, ConcurrentWritersInFsyncMode) {
  TempDir dir;
  auto log = MustOpen(dir.path(), Durability::kFsync);
  Engine engine(EngineOptions{nullptr, log.get(), 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  std::vector<std::thread> threads;
  const int kThreads = 8, kEach = 100;
  std::atomic<int> failures{0}, early{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
        // This mutation's batch comes after every batch written before it starts.
        const uint64_t written_before = log->durability_counters().written_batches;
        if (!engine.UpdateUserSegments(user, {.add = {{"a"}}}).ok()) failures++;
        if (log->durability_counters().durable_batches < written_before + 1) early++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(early.load(), 0);
  EXPECT_EQ(log->next_seq() - 1, uint64_t(kThreads * kEach));
  EXPECT_EQ(*engine.Count("a"), uint64_t(kThreads * kEach));
  const DurabilityCounters counters = log->durability_counters();
  EXPECT_EQ(counters.durable_batches, counters.written_batches);
  EXPECT_GE(counters.wal_syncs, 1u);
  EXPECT_LT(counters.wal_syncs, counters.written_batches);
}

}  // namespace
}  // namespace segd::storage
