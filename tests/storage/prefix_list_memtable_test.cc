// The prefix-list memtable, driven through a real RocksDB column family and checked against
// a std::map: total-order iteration both ways, seeks, prefix seeks, newer versions of a key,
// deletes, keys outside the prefix extractor's domain, flushes and write-ahead-log replays,
// and readers that run while one thread inserts.

#include "storage/detail/prefix_list_memtable.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage::detail {
namespace {

using Model = std::map<std::string, std::string>;

class PrefixListMemTableTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override { Close(); }

  void Open() {
    rocksdb::DBOptions db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.allow_concurrent_memtable_write = false;
    db_options.avoid_flush_during_recovery = true;
    rocksdb::ColumnFamilyOptions cf;
    cf.write_buffer_size = 64 << 20;  // everything stays in the memtable unless flushed
    cf.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    // Four slots: many prefixes share a slot, so the slot chains are exercised too.
    cf.memtable_factory = NewPrefixListMemTableFactory(4);
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}, {"t", cf}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_options, dir_.path(), families, &handles, &db).ok());
    db_.reset(db);
    handles_ = handles;
    cf_ = handles[1];
  }

  void Close() {
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      ASSERT_TRUE(db_->DestroyColumnFamilyHandle(h).ok());
    }
    handles_.clear();
    db_.reset();
  }

  void Put(const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), cf_, key, value).ok());
    model_[key] = value;
  }

  std::unique_ptr<rocksdb::Iterator> TotalOrder() {
    rocksdb::ReadOptions options;
    options.total_order_seek = true;
    return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(options, cf_));
  }

  // Prefix seeks (prefix_same_as_start) to random targets return the model's keys of the
  // target's prefix from the target on.
  void ExpectPrefixSeeksMatch(std::mt19937& rng) {
    rocksdb::ReadOptions options;
    options.prefix_same_as_start = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf_));
    for (int i = 0; i < 500; ++i) {
      std::string target = RandomKey(rng);
      if (target.size() <= 4) continue;
      if (i % 10 == 0) target[1] = 'z';  // a prefix that holds nothing
      std::vector<std::string> expected, got;
      for (auto m = model_.lower_bound(target);
           m != model_.end() && m->first.compare(0, 4, target, 0, 4) == 0; ++m) {
        expected.push_back(m->first);
      }
      for (it->Seek(target); it->Valid(); it->Next()) got.push_back(it->key().ToString());
      ASSERT_TRUE(it->status().ok());
      EXPECT_EQ(got, expected) << target;
    }
  }

  // Seek lands on the model's first key at or after the target.
  void ExpectSeekFinds(rocksdb::Iterator* it, const std::string& target) {
    it->Seek(target);
    auto lower = model_.lower_bound(target);
    if (lower == model_.end()) {
      EXPECT_FALSE(it->Valid()) << target;
    } else {
      ASSERT_TRUE(it->Valid()) << target;
      EXPECT_EQ(it->key().ToString(), lower->first);
    }
  }

  // Forward, backward, Seek and SeekForPrev in total order, against the model.
  void ExpectTotalOrderMatches(std::mt19937& rng) {
    auto it = TotalOrder();
    Model seen;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ASSERT_TRUE(seen.empty() || seen.rbegin()->first < it->key().ToString());
      seen[it->key().ToString()] = it->value().ToString();
    }
    ASSERT_TRUE(it->status().ok());
    EXPECT_EQ(seen, model_);
    auto expected = model_.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++expected) {
      ASSERT_NE(expected, model_.rend());
      ASSERT_EQ(it->key().ToString(), expected->first);
    }
    EXPECT_EQ(expected, model_.rend());
    for (int i = 0; i < 300; ++i) {
      const std::string target = RandomKey(rng);
      ExpectSeekFinds(it.get(), target);
      it->SeekForPrev(target);
      auto upper = model_.upper_bound(target);
      if (upper == model_.begin()) {
        EXPECT_FALSE(it->Valid()) << target;
      } else {
        ASSERT_TRUE(it->Valid()) << target;
        EXPECT_EQ(it->key().ToString(), std::prev(upper)->first);
      }
    }
  }

  // A key of one of 40 prefixes (prefixes share leading bytes), with a random suffix; now
  // and then a key shorter than the prefix (outside the extractor's domain, unless
  // `in_domain`) or a bare prefix.
  static std::string RandomKey(std::mt19937& rng, bool in_domain = false) {
    const uint32_t p = rng() % 40;
    std::string key = {'u', static_cast<char>('a' + p / 8), static_cast<char>(p % 8), 'x'};
    switch (in_domain ? 1 + rng() % 19 : rng() % 20) {
      case 0:
        return key.substr(0, 1 + rng() % 3);
      case 1:
        return key;
      default:
        for (int i = 0; i < 6; ++i) key.push_back(static_cast<char>(rng() % 4));
        return key;
    }
  }

  testutil::TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* cf_ = nullptr;
  Model model_;
};

TEST_F(PrefixListMemTableTest, IteratesInKeyOrderWhateverTheInsertOrder) {
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) Put(RandomKey(rng), std::to_string(i));
  ExpectTotalOrderMatches(rng);
}

TEST_F(PrefixListMemTableTest, PrefixSeeksReturnTheirPrefixsKeysFromTheTarget) {
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) Put(RandomKey(rng), std::to_string(i));
  ExpectPrefixSeeksMatch(rng);
}

TEST_F(PrefixListMemTableTest, RandomWritesDeletesFlushesAndReopensMatchTheModel) {
  // Keys in the extractor's domain only: once files hold keys, RocksDB's own prefix check in
  // prefix_same_as_start scans requires it (segd's by_user keys are all 20 bytes).
  std::mt19937 rng(17);
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 800; ++i) {
      const uint32_t what = rng() % 10;
      if (what < 6 || model_.empty()) {
        Put(RandomKey(rng, true), "r" + std::to_string(round));
        continue;
      }
      auto victim = model_.begin();
      std::advance(victim, rng() % model_.size());
      if (what < 8) {
        Put(victim->first, "overwritten " + std::to_string(i));
      } else {
        ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), cf_, victim->first).ok());
        model_.erase(victim);
      }
    }
    ExpectTotalOrderMatches(rng);
    ExpectPrefixSeeksMatch(rng);
    if (round % 2 == 1) {
      ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions(), cf_).ok());
    }
    if (round % 3 == 2) {
      Close();
      Open();
    }
  }
  ExpectTotalOrderMatches(rng);
}

TEST_F(PrefixListMemTableTest, WithoutAPrefixExtractorTheFactoryStillGivesAWorkingMemtable) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.allow_concurrent_memtable_write = false;
  options.memtable_factory = NewPrefixListMemTableFactory(4);
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir_.Sub("plain"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const char* key : {"b", "a", "c"}) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, key).ok());
  }
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  std::string keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) keys += it->key().ToString();
  EXPECT_EQ(keys, "abc");
}

TEST_F(PrefixListMemTableTest, SeeksOutsideTheExtractorsDomainFindTheNextKeyOfAnyPrefix) {
  std::mt19937 rng(13);
  for (int i = 0; i < 1000; ++i) Put(RandomKey(rng), std::to_string(i));
  // Default options: the memtable is read through its prefix iterator, and a target shorter
  // than the prefix must still find the first key at or after it, whatever its prefix.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
  for (const std::string target : {"u", "ua", "ub\x03", "uc\x09", "v"}) {
    ExpectSeekFinds(it.get(), target);
  }
}

TEST_F(PrefixListMemTableTest, NewerVersionsOfAKeyAreSeenAndOlderOnesStayUnderSnapshots) {
  // A newer version of a key sorts before the older one: an insert below the list's tail.
  Put("ukey-1", "old");
  Put("ukey-2", "other");
  const rocksdb::Snapshot* before = db_->GetSnapshot();
  Put("ukey-1", "new");
  ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), cf_, "ukey-2").ok());
  model_.erase("ukey-2");
  std::string value;
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), cf_, "ukey-1", &value).ok());
  EXPECT_EQ(value, "new");
  EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), cf_, "ukey-2", &value).IsNotFound());
  rocksdb::ReadOptions old;
  old.snapshot = before;
  ASSERT_TRUE(db_->Get(old, cf_, "ukey-1", &value).ok());
  EXPECT_EQ(value, "old");
  ASSERT_TRUE(db_->Get(old, cf_, "ukey-2", &value).ok());
  EXPECT_EQ(value, "other");
  db_->ReleaseSnapshot(before);
  std::mt19937 rng(3);
  ExpectTotalOrderMatches(rng);
}

TEST_F(PrefixListMemTableTest, FlushAndLogReplayKeepEveryKey) {
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) Put(RandomKey(rng), std::to_string(i));
  // The flush reads the memtable through its total-order iterator.
  ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions(), cf_).ok());
  for (int i = 0; i < 2000; ++i) Put(RandomKey(rng), "second " + std::to_string(i));
  ExpectTotalOrderMatches(rng);
  // Reopening replays the write-ahead log into a new memtable of this kind.
  Close();
  Open();
  ExpectTotalOrderMatches(rng);
}

TEST_F(PrefixListMemTableTest, ReadersSeeEveryAcknowledgedKeyWhileOneThreadInserts) {
  constexpr int kPrefixes = 16;
  constexpr int kPerPrefix = 1500;
  std::atomic<int> acknowledged[kPrefixes];
  for (auto& a : acknowledged) a.store(0);
  auto prefix_of = [](int p) { return std::string{'p', 'r', 'e', static_cast<char>('a' + p)}; };
  std::thread writer([&] {
    std::mt19937 rng(1);
    std::vector<int> next(kPrefixes, 0);
    for (int n = 0; n < kPrefixes * kPerPrefix; ++n) {
      int p = static_cast<int>(rng() % kPrefixes);
      while (next[p] == kPerPrefix) p = (p + 1) % kPrefixes;
      // Mostly ascending within a prefix, every fifth key below the newest.
      const int k = next[p]++;
      const int order = k % 5 == 4 ? k - 3 : k;
      char suffix[16];
      snprintf(suffix, sizeof(suffix), "%08d-%04d", order, k);
      ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), cf_, prefix_of(p) + suffix, "v").ok());
      acknowledged[p].store(k + 1, std::memory_order_release);
    }
  });
  auto reader = [&](int seed) {
    std::mt19937 rng(seed);
    rocksdb::ReadOptions options;
    options.prefix_same_as_start = true;
    for (int round = 0; round < 300; ++round) {
      const int p = static_cast<int>(rng() % kPrefixes);
      const int at_least = acknowledged[p].load(std::memory_order_acquire);
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, cf_));
      int count = 0;
      std::string last;
      // Odd rounds seek the bare prefix, which the memtable answers in total order.
      const std::string target = round % 2 == 1 ? prefix_of(p) : prefix_of(p) + "0";
      for (it->Seek(target); it->Valid(); it->Next(), ++count) {
        ASSERT_LT(last, it->key().ToString());
        last = it->key().ToString();
      }
      ASSERT_GE(count, at_least) << "prefix " << p << " round " << round;
    }
  };
  std::thread r1(reader, 2), r2(reader, 3);
  writer.join();
  r1.join();
  r2.join();
  auto it = TotalOrder();
  int total = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++total;
  EXPECT_EQ(total, kPrefixes * kPerPrefix);
}

}  // namespace
}  // namespace segd::storage::detail
