// ScanHistory and ForEachRecord against a model: every filter's answer must equal the whole log
// filtered and ordered by (at, seq). The workload crosses record-block boundaries (imports
// larger than a block), mixes segments inside one block, logs expiries at their due time,
// which is earlier than records already logged (times in the log are not monotonic), and
// writes many single-record batches at one time, whose index runs continue from batch to batch
// (also across a reopen of the log, which starts a new run of the same time).

#include "storage/history_scan.h"

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "storage/oplog_format.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using engine::OpRecord;
using Row = std::pair<uint64_t, OpRecord>;

constexpr engine::TimeMs kStart = 1'800'000'000'000;

std::vector<Row> Scan(const OpLog& log, const HistoryFilter& filter) {
  std::vector<Row> rows;
  absl::Status s = log.ScanHistory(filter, [&](uint64_t seq, const OpRecord& r) {
    rows.emplace_back(seq, r);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return rows;
}

std::vector<Row> Model(const std::vector<Row>& log, const HistoryFilter& filter) {
  std::vector<Row> rows;
  for (const Row& row : log) {
    const OpRecord& r = row.second;
    if (r.at < filter.from || r.at >= filter.to) continue;
    auto listed = [](const auto& ids, uint32_t id) {
      return ids.empty() || std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    if (!listed(filter.users, r.user) || !listed(filter.segments, r.segment)) continue;
    rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.second.at, a.first) < std::tie(b.second.at, b.first);
  });
  return rows;
}

class HistoryScanTest : public ::testing::Test {
 protected:
  void Open() {
    engine_.reset();
    log_.reset();
    auto opened = OpLog::Open(dir_.path(), {});
    ASSERT_TRUE(opened.ok()) << opened.status();
    log_ = *std::move(opened);
    engine_ = std::make_unique<Engine>(EngineOptions{&clock_, log_.get(), 1});
    ASSERT_TRUE(log_->Recover(*engine_).ok());
  }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(Open());
    for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(engine_->CreateSegment({.name = s}).ok());
    std::mt19937_64 rng(7);
    for (int round = 0; round < 6; ++round) {
      // An import larger than a block, with a TTL on some rounds.
      std::vector<engine::ImportItem> items;
      for (size_t i = 0; i < kMaxBlockRecords + 1000; ++i) {
        items.push_back({"u" + std::to_string(rng() % 9000)});
      }
      const char* segment = round % 2 ? "a" : "b";
      std::optional<int64_t> ttl;
      if (round % 3 == 0) ttl = 5;
      ASSERT_TRUE(engine_->Import(segment, items, ttl).ok());
      // New users only, so their records form user_runs; one item with its own TTL splits
      // a run, and users seen before sit between new ones.
      std::vector<engine::ImportItem> fresh;
      for (size_t i = 0; i < kMaxBlockRecords + 500; ++i) {
        fresh.push_back({"n" + std::to_string(round) + "-" + std::to_string(i)});
        if (i == 700) fresh.back().ttl_seconds = 100;
        if (i % 1000 == 999) fresh.push_back({"u" + std::to_string(rng() % 9000)});
      }
      ASSERT_TRUE(engine_->Import(round % 2 ? "b" : "c", fresh, std::nullopt).ok());
      clock_.Advance(8000);  // past the TTL: its expiries are logged later, at their due time
      // Single users changing several segments at once: runs of one record per segment.
      for (int i = 0; i < 50; ++i) {
        std::string user = "u" + std::to_string(rng() % 9000);
        ASSERT_TRUE(
            engine_->UpdateUserSegments(user, {.add = {{"c"}, {"a"}}, .remove = {"b"}}).ok());
        if (i % 10 == 0) clock_.Advance(1);
      }
      // One record per request at one time: mostly one segment (by_segment runs continue),
      // sometimes another (a run of the first segment ends, and a later one starts anew);
      // on some rounds the log is reopened halfway, at the same time.
      for (int i = 0; i < 120; ++i) {
        if (i == 60 && round % 2 == 1) {
          ASSERT_NO_FATAL_FAILURE(Open());
        }
        std::string user = i % 3 ? "s" + std::to_string(round) + "-" + std::to_string(i)
                                 : "u" + std::to_string(rng() % 9000);
        const char* segment = i % 17 == 5 ? "b" : "a";
        ASSERT_TRUE(engine_->UpdateUserSegments(user, {.add = {{segment}}}).ok());
      }
      clock_.Advance(10'000);
      // Expiries are logged at their due time, before the records just written.
      ASSERT_TRUE(engine_->ProcessExpiries().ok());
    }
    ASSERT_TRUE(log_->ForEachRecord(1,
                                    [&](uint64_t seq, const OpRecord& r) {
                                      whole_.emplace_back(seq, r);
                                      users_ = std::max(users_, r.user + 1);
                                      return true;
                                    })
                    .ok());
  }

  testutil::TempDir dir_;
  ManualClock clock_{kStart};
  std::unique_ptr<OpLog> log_;
  std::unique_ptr<Engine> engine_;
  std::vector<Row> whole_;
  uint32_t users_ = 0;  // every user id is below this
};

TEST_F(HistoryScanTest, TheLogHoldsEveryRecordInOrder) {
  ASSERT_GT(whole_.size(), 6 * kMaxBlockRecords);
  for (size_t i = 0; i < whole_.size(); ++i) ASSERT_EQ(whole_[i].first, i + 1);
  EXPECT_EQ(log_->next_seq(), whole_.size() + 1);
  bool earlier_after_later = false;
  for (size_t i = 1; i < whole_.size(); ++i) {
    earlier_after_later |= whole_[i].second.at < whole_[i - 1].second.at;
  }
  EXPECT_TRUE(earlier_after_later) << "the workload should log times out of order";
}

TEST_F(HistoryScanTest, ForEachRecordStartsAnywhereInsideABlock) {
  for (uint64_t from :
       {uint64_t{1}, uint64_t{2}, uint64_t{kMaxBlockRecords}, uint64_t{kMaxBlockRecords + 1},
        uint64_t{kMaxBlockRecords + 7}, uint64_t{whole_.size()}, uint64_t{whole_.size() + 1}}) {
    std::vector<Row> rows;
    ASSERT_TRUE(log_->ForEachRecord(from,
                                    [&](uint64_t seq, const OpRecord& r) {
                                      rows.emplace_back(seq, r);
                                      return true;
                                    })
                    .ok());
    std::vector<Row> want(whole_.begin() + std::min<size_t>(from - 1, whole_.size()), whole_.end());
    ASSERT_EQ(rows, want) << "from " << from;
  }
}

TEST_F(HistoryScanTest, EveryFilterMatchesTheModel) {
  const engine::TimeMs end = clock_.NowMs() + 1;
  std::vector<HistoryFilter> filters = {
      {},
      {.from = kStart + 1000, .to = kStart + 30'000},
      {.from = kStart + 5000, .to = kStart + 5001},  // only records due then
      {.segments = {0}},
      {.segments = {2, 0}},
      {.from = kStart + 12'000, .to = end, .segments = {1}},
  };
  std::mt19937_64 rng(11);
  for (int i = 0; i < 60; ++i) {
    HistoryFilter f;
    for (int k = 0; k < 1 + i % 4; ++k) f.users.push_back(static_cast<uint32_t>(rng() % users_));
    if (i % 3 == 0) f.segments = {static_cast<uint32_t>(rng() % 3)};
    if (i % 2 == 0) {
      f.from = kStart + static_cast<int64_t>(rng() % 40'000);
      f.to = f.from + static_cast<int64_t>(rng() % 40'000);
    }
    filters.push_back(f);
  }
  for (size_t i = 0; i < filters.size(); ++i) {
    std::vector<Row> want = Model(whole_, filters[i]);
    std::vector<Row> got = Scan(*log_, filters[i]);
    ASSERT_EQ(got.size(), want.size()) << "filter " << i;
    ASSERT_TRUE(got == want) << "filter " << i;
    if (i < 6) {
      EXPECT_FALSE(want.empty()) << "filter " << i << " should select something";
    }
  }
}

// Every user's own history, for each user of one fresh import (runs, their edges, the user
// with its own TTL, the known users between) and around it.
TEST_F(HistoryScanTest, EachUsersHistoryMatchesTheModel) {
  const std::optional<engine::UserId> first = engine_->FindUser("n3-0");
  ASSERT_TRUE(first.has_value());
  for (uint32_t user = *first - 3; user < *first + kMaxBlockRecords + 520; ++user) {
    const HistoryFilter f{.users = {user}};
    ASSERT_EQ(Scan(*log_, f), Model(whole_, f)) << "user " << user;
  }
}

// The workload reaches all three ways of indexing a user's records: by_user entries (single
// requests), user_runs (imports of new users) and user_sets (imports of known users); and
// every user's history (a sample of every seventh user id, each with and without a segment
// and a period) matches the model, whichever of them hold it.
TEST_F(HistoryScanTest, EveryUserIndexIsUsedAndEveryUsersHistoryMatchesTheModel) {
  const auto [by_user, user_runs] = log_->TEST_UserIndexEntries();
  EXPECT_GT(by_user, 0u);
  EXPECT_GT(user_runs, 0u);
  EXPECT_GT(log_->TEST_UserSetEntries(), 0u);
  std::vector<std::vector<Row>> of_user(users_);
  for (const Row& row : whole_) of_user[row.second.user].push_back(row);
  auto model = [&](const HistoryFilter& f) {
    std::vector<Row> want;
    for (uint32_t user : f.users) {
      for (const Row& row : of_user[user]) {
        const bool in_segments = f.segments.empty() || row.second.segment == f.segments[0];
        if (in_segments && row.second.at >= f.from && row.second.at < f.to) want.push_back(row);
      }
    }
    std::sort(want.begin(), want.end(), [](const Row& a, const Row& b) {
      return std::tie(a.second.at, a.first) < std::tie(b.second.at, b.first);
    });
    return want;
  };
  std::mt19937_64 rng(3);
  size_t nonempty = 0;
  for (uint32_t user = 0; user < users_; user += 7) {
    HistoryFilter f{.users = {user}};
    const std::vector<Row> want = model(f);
    nonempty += !want.empty();
    ASSERT_EQ(Scan(*log_, f), want) << "user " << user;
    f.segments = {static_cast<uint32_t>(rng() % 3)};
    f.from = kStart + static_cast<int64_t>(rng() % 40'000);
    f.to = f.from + 1 + static_cast<int64_t>(rng() % 40'000);
    ASSERT_EQ(Scan(*log_, f), model(f)) << "user " << user << " segment " << f.segments[0];
    // Two users of one set (adjacent ids), read in one scan.
    if (user + 1 < users_) {
      const HistoryFilter pair{.users = {user + 1, user}};
      ASSERT_EQ(Scan(*log_, pair), model(HistoryFilter{.users = {user, user + 1}}))
          << "users " << user << ", " << user + 1;
    }
  }
  EXPECT_GT(nonempty, users_ / 7 / 2);
}

// A scan paused after random numbers of records (one, at times: inside runs, at the seam of a
// user_runs record and an index entry) goes on where it stopped, and sees none of the writes
// made while it was paused.
TEST_F(HistoryScanTest, APausedScanGoesOnWhereItStoppedAndSeesNoLaterWrite) {
  std::mt19937_64 rng(5);
  const engine::UserId fresh = *engine_->FindUser("n2-0");
  std::vector<HistoryFilter> filters = {
      {},
      {.segments = {1}},
      {.from = kStart + 12'000, .to = clock_.NowMs() + 1, .segments = {0, 2}},
      {.users = {fresh, fresh + 1, fresh + 700, static_cast<uint32_t>(rng() % users_)}},
      {.users = {fresh + 3, fresh + 2000}, .segments = {1}},
  };
  int write = 0;
  for (size_t i = 0; i < filters.size(); ++i) {
    // The log as the scan opens, the writes of earlier rounds included.
    std::vector<Row> log;
    ASSERT_TRUE(log_->ForEachRecord(1,
                                    [&](uint64_t seq, const OpRecord& r) {
                                      log.emplace_back(seq, r);
                                      return true;
                                    })
                    .ok());
    const std::vector<Row> want = Model(log, filters[i]);
    HistoryScan scan(*log_, filters[i]);
    std::vector<Row> got;
    for (int calls = 0;; ++calls) {
      ASSERT_LT(calls, 1'000'000) << "the scan never ends";
      const size_t take = rng() % 4 == 0 ? 1 : 1 + rng() % 3000;
      size_t taken = 0;
      auto ended = scan.Next([&](uint64_t seq, const OpRecord& r) {
        got.emplace_back(seq, r);
        return ++taken < take;
      });
      ASSERT_TRUE(ended.ok()) << ended.status();
      if (*ended) break;
      ASSERT_EQ(taken, take) << "a paused call hands out what was asked";
      // Writes that every filter here would select, were they seen.
      const std::string user = "late-" + std::to_string(write++);
      ASSERT_TRUE(engine_->UpdateUserSegments(user, {.add = {{"a"}, {"b"}, {"c"}}}).ok());
    }
    ASSERT_EQ(got.size(), want.size()) << "filter " << i;
    ASSERT_TRUE(got == want) << "filter " << i;
    auto again = scan.Next([&](uint64_t, const OpRecord&) { return true; });
    ASSERT_TRUE(again.ok() && *again) << "an ended scan stays ended";
  }
  EXPECT_GT(write, 100);
}

TEST_F(HistoryScanTest, AScanStopsWhenAsked) {
  size_t calls = 0;
  ASSERT_TRUE(log_->ScanHistory({}, [&](uint64_t, const OpRecord&) { return ++calls < 3; }).ok());
  EXPECT_EQ(calls, 3u);
}

}  // namespace
}  // namespace segd::storage
