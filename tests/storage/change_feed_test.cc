// The change feed (storage/change_feed.h) against a model: the log's records replayed on a
// brute-force membership map, which decides entries and exits from state (not from the
// records' refresh flag), grouped by the feed's rule. Readers page through it with random
// limits and filters, from the ring and from disk (the tail is kept tiny), and resume from
// their cursors.

#include "storage/change_feed.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/change_tail.h"
#include "storage/oplog.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using engine::SegmentId;
using testutil::TempDir;

constexpr engine::TimeMs kStart = 1'800'000'000'000;
constexpr engine::TimeMs kDay = 24 * 3600 * 1000;

// A change as a comparable value.
struct Seen {
  uint64_t cursor;
  engine::TimeMs at;
  engine::UserId user;
  engine::OpReason reason;
  std::vector<SegmentId> entered, exited;
  friend bool operator==(const Seen&, const Seen&) = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& c) {
  os << "{cursor " << c.cursor << " user " << c.user << " reason " << static_cast<int>(c.reason)
     << " +[";
  for (SegmentId s : c.entered) os << s << ' ';
  os << "] -[";
  for (SegmentId s : c.exited) os << s << ' ';
  return os << "]}";
}

Seen ToSeen(const Change& c) {
  return {c.cursor,
          c.at,
          c.user,
          c.reason,
          {c.entered.begin(), c.entered.end()},
          {c.exited.begin(), c.exited.end()}};
}

// Every change the log holds, derived from state: records replayed in log order on a map of
// memberships, grouped per ops block by (user, reason, at).
std::vector<Seen> ModelChanges(const OpLog& log, const std::vector<SegmentId>& filter) {
  std::set<std::pair<engine::UserId, SegmentId>> members;
  std::vector<Seen> out;
  bool open = false;
  Seen cur{};
  auto flush = [&] {
    if (open && (!cur.entered.empty() || !cur.exited.empty())) out.push_back(cur);
    open = false;
  };
  auto wanted = [&](SegmentId s) {
    return filter.empty() || std::find(filter.begin(), filter.end(), s) != filter.end();
  };
  EXPECT_TRUE(log.ForEachBlock(1,
                               [&](uint64_t first, absl::Span<const engine::OpRecord> block) {
                                 for (size_t i = 0; i < block.size(); ++i) {
                                   const engine::OpRecord& r = block[i];
                                   if (open && (i == 0 || r.user != cur.user ||
                                                r.reason != cur.reason || r.at != cur.at)) {
                                     flush();
                                   }
                                   if (!open) {
                                     open = true;
                                     cur = {0, r.at, r.user, r.reason, {}, {}};
                                   }
                                   cur.cursor = first + i;
                                   const bool was = members.count({r.user, r.segment}) > 0;
                                   if (r.op == engine::OpKind::kAdd) {
                                     members.insert({r.user, r.segment});
                                     if (!was && wanted(r.segment))
                                       cur.entered.push_back(r.segment);
                                   } else {
                                     members.erase({r.user, r.segment});
                                     if (was && wanted(r.segment)) cur.exited.push_back(r.segment);
                                   }
                                 }
                                 return true;
                               })
                  .ok());
  flush();
  return out;
}

// Reads every change after `after` in pages of random size, resuming from each page's `next`.
std::vector<Seen> ReadAll(const OpLog& log, std::optional<uint64_t> after,
                          std::vector<SegmentId> filter, std::mt19937& rng) {
  std::vector<Seen> out;
  ChangeQuery q{after, std::move(filter), 1};
  for (int guard = 0; guard < 100000; ++guard) {
    q.limit = 1 + rng() % 40;
    auto page = ReadChanges(log, q);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    EXPECT_LE(page->changes.size(), q.limit);
    for (const Change& c : page->changes) out.push_back(ToSeen(c));
    if (!page->changes.empty()) {
      EXPECT_GE(page->next, page->changes.back().cursor);
    }
    if (q.after && page->next == *q.after && page->changes.empty()) break;
    if (!q.after && page->changes.empty() && page->next + 1 == log.changes().published()) break;
    q.after = page->next;
  }
  return out;
}

class ChangeFeedTest : public ::testing::Test {
 protected:
  void Open(size_t tail_records, int64_t retention_ms = 0) {
    engine_.reset();
    log_.reset();
    auto log = OpLog::Open(
        dir_.path(),
        {.retention_ms = retention_ms, .clock = &clock_, .change_tail_records = tail_records});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    engine_ = std::make_unique<Engine>(EngineOptions{&clock_, log_.get(), 1});
    ASSERT_TRUE(log_->Recover(*engine_).ok());
  }
  SegmentId Seg(const std::string& name) { return *engine_->FindSegmentEvenDeleted(name); }
  engine::UserId User(const std::string& name) { return *engine_->FindUser(name); }
  std::vector<Seen> All() {
    std::mt19937 rng(1);
    return ReadAll(*log_, std::nullopt, {}, rng);
  }

  TempDir dir_;
  ManualClock clock_{kStart};
  std::unique_ptr<OpLog> log_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ChangeFeedTest, OneRequestIsOneChangeAndRefreshesAreNone) {
  Open(1024);
  for (const char* s : {"A", "B", "C"}) ASSERT_TRUE(engine_->CreateSegment({.name = s}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("u1", {.add = {{"C"}}}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("u1", {.add = {{"A"}, {"B"}}, .remove = {"C"}}).ok());
  // Only the expiry moves: not a change.
  ASSERT_TRUE(engine_->UpdateUserSegments("u1", {.add = {{"A", 3600}}}).ok());
  // An import of a member and a new user: one change, for the new user.
  ASSERT_TRUE(engine_->Import("B", {{"u1"}, {"u2"}, {"u2"}}, std::nullopt).ok());
  clock_.Advance(3601 * 1000);
  ASSERT_TRUE(engine_->ProcessExpiries().ok());
  ASSERT_TRUE(engine_->DeleteSegment("B").ok());

  const auto changes = All();
  const auto u1 = User("u1"), u2 = User("u2");
  const SegmentId a = Seg("A"), b = Seg("B"), c = Seg("C");
  ASSERT_EQ(changes.size(), 6u) << ::testing::PrintToString(changes);
  EXPECT_EQ(changes[0].entered, std::vector<SegmentId>{c});
  EXPECT_EQ(changes[1].user, u1);
  EXPECT_EQ(changes[1].entered, (std::vector<SegmentId>{a, b}));
  EXPECT_EQ(changes[1].exited, std::vector<SegmentId>{c});
  EXPECT_EQ(changes[1].reason, engine::OpReason::kApi);
  EXPECT_EQ(changes[2].user, u2);
  EXPECT_EQ(changes[2].reason, engine::OpReason::kImport);
  EXPECT_EQ(changes[2].entered, std::vector<SegmentId>{b});
  EXPECT_EQ(changes[3].user, u1);
  EXPECT_EQ(changes[3].reason, engine::OpReason::kTtlExpired);
  EXPECT_EQ(changes[3].exited, std::vector<SegmentId>{a});
  EXPECT_EQ(changes[3].at, kStart + 3600 * 1000);  // when it was due
  EXPECT_EQ(changes[4].reason, engine::OpReason::kSegmentDeleted);
  EXPECT_EQ(changes[4].exited, std::vector<SegmentId>{b});
  EXPECT_EQ(changes[5].exited, std::vector<SegmentId>{b});
  EXPECT_NE(changes[4].user, changes[5].user);
  // Cursors grow with the log.
  for (size_t i = 1; i < changes.size(); ++i) EXPECT_LT(changes[i - 1].cursor, changes[i].cursor);
  EXPECT_EQ(changes, ModelChanges(*log_, {}));
}

TEST_F(ChangeFeedTest, PagesFromRingAndDiskMatchTheModelAcrossRestarts) {
  std::mt19937 rng(42);
  Open(64);  // a tiny ring: most reads start on disk and move over to it
  std::vector<std::string> segs = {"s0", "s1", "s2", "s3", "s4"};
  for (const auto& s : segs) ASSERT_TRUE(engine_->CreateSegment({.name = s}).ok());
  auto user = [&] { return "u" + std::to_string(rng() % 60); };
  for (int step = 0; step < 1500; ++step) {
    const int op = rng() % 10;
    if (op < 6) {
      engine::UserUpdate u;
      std::set<std::string> used;
      for (int k = rng() % 3; k >= 0; --k) {
        const std::string& s = segs[rng() % segs.size()];
        if (!used.insert(s).second) continue;
        if (rng() % 3 == 0) {
          u.remove.push_back(s);
        } else {
          u.add.push_back(
              {s, rng() % 4 == 0 ? std::optional<int64_t>(1 + rng() % 50) : std::nullopt});
        }
      }
      ASSERT_TRUE(engine_->UpdateUserSegments(user(), u).ok());
    } else if (op < 8) {
      std::vector<engine::ImportItem> items;
      for (int k = rng() % 30; k >= 0; --k) items.push_back({user()});
      ASSERT_TRUE(engine_->Import(segs[rng() % segs.size()], items, std::nullopt).ok());
    } else if (op == 8) {
      clock_.Advance(1000 * (1 + rng() % 20));
      ASSERT_TRUE(engine_->ProcessExpiries().ok());
    } else if (rng() % 4 == 0) {
      ASSERT_TRUE(engine_->DeleteUser(user()).ok() || true);
    }
    if (step % 500 == 499) Open(64);  // a restart: the ring starts empty
  }
  const auto model = ModelChanges(*log_, {});
  ASSERT_GT(model.size(), 500u);
  EXPECT_EQ(ReadAll(*log_, std::nullopt, {}, rng), model);
  // A filter keeps the changes of its segments, with their lists cut to them.
  std::vector<SegmentId> filter = {Seg("s1"), Seg("s3")};
  EXPECT_EQ(ReadAll(*log_, std::nullopt, filter, rng), ModelChanges(*log_, filter));
  // Resuming from any change's cursor yields exactly what follows it.
  for (int k = 0; k < 20; ++k) {
    const size_t i = rng() % model.size();
    std::vector<Seen> rest(model.begin() + i + 1, model.end());
    EXPECT_EQ(ReadAll(*log_, model[i].cursor, {}, rng), rest) << "after change " << i;
  }
}

TEST_F(ChangeFeedTest, CursorsOutsideTheLogAreRefused) {
  Open(1024, 2 * kDay);
  ASSERT_TRUE(engine_->CreateSegment({.name = "s"}).ok());
  ASSERT_TRUE(engine_->UpdateUserSegments("old", {.add = {{"s"}}}).ok());
  const uint64_t old_cursor = log_->changes().published() - 1;
  clock_.Advance(3 * kDay);
  ASSERT_TRUE(engine_->UpdateUserSegments("new", {.add = {{"s"}}}).ok());

  // After the old change: its successor is still within the retention.
  auto page = ReadChanges(*log_, {old_cursor, {}, 10});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->changes.size(), 1u);
  // Before it: the old record is past the retention.
  auto expired = ReadChanges(*log_, {old_cursor - 1, {}, 10});
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(engine::ErrorCodeOf(expired.status()), "cursor_expired");
  // "0" starts at the oldest retained change.
  auto oldest = ReadChanges(*log_, {std::nullopt, {}, 10});
  ASSERT_TRUE(oldest.ok());
  ASSERT_EQ(oldest->changes.size(), 1u);
  EXPECT_EQ(oldest->changes[0].user, User("new"));
  // A cursor past the end.
  auto ahead = ReadChanges(*log_, {log_->changes().published() + 5, {}, 10});
  EXPECT_EQ(engine::ErrorCodeOf(ahead.status()), "bad_request");
  // The end itself: an empty page that stays there.
  auto at_end = ReadChanges(*log_, {log_->changes().published() - 1, {}, 10});
  ASSERT_TRUE(at_end.ok());
  EXPECT_TRUE(at_end->changes.empty());
  EXPECT_EQ(at_end->next, log_->changes().published() - 1);
}

TEST(CursorTextTest, RoundTripsAndRefusesOtherText) {
  std::optional<uint64_t> after;
  ASSERT_TRUE(ParseCursor(FormatCursor(0x1234abcd), &after).ok());
  EXPECT_EQ(after, 0x1234abcdu);
  EXPECT_EQ(FormatCursor(255), "00000000000000ff");
  EXPECT_LT(FormatCursor(9), FormatCursor(10));  // text order is log order
  ASSERT_TRUE(ParseCursor("0", &after).ok());
  EXPECT_EQ(after, std::nullopt);
  for (const char* bad :
       {"", "00", "000000000000000g", "00000000000000FF", "-1", "12345678901234567"}) {
    EXPECT_FALSE(ParseCursor(bad, &after).ok()) << bad;
  }
}

TEST(ChangeTailTest, WaitsWakeOnlyForTheirSegmentsAndCancelProvesQuiet) {
  ChangeTail tail(8);
  tail.Reset(1);
  auto record = [](SegmentId s) {
    engine::OpRecord r;
    r.segment = s;
    return r;
  };
  int woke_any = 0, woke_seg2 = 0;
  tail.Wait(1, {}, [&] { ++woke_any; });
  const uint64_t t2 = tail.Wait(1, {2}, [&] { ++woke_seg2; });
  std::vector<engine::OpRecord> block = {record(1), record(1)};
  tail.Append(1, block);
  tail.Publish(3);
  EXPECT_EQ(woke_any, 1);
  EXPECT_EQ(woke_seg2, 0);
  EXPECT_EQ(tail.waiting(), 1u);
  auto cancelled = tail.Cancel(t2);
  EXPECT_FALSE(cancelled.fired);
  EXPECT_EQ(cancelled.quiet_until, 3u);
  // A wait on what is published already fires at once.
  int now = 0;
  tail.Wait(1, {1}, [&] { ++now; });
  EXPECT_EQ(now, 1);
  // Segment 2 appears: its waiter wakes; a cancel afterwards reports it fired.
  const uint64_t t3 = tail.Wait(3, {2}, [&] { ++woke_seg2; });
  block = {record(3), record(2)};
  tail.Append(3, block);
  tail.Publish(5);
  EXPECT_EQ(woke_seg2, 1);
  EXPECT_TRUE(tail.Cancel(t3).fired);
  // The ring keeps the last 8 records; older reads fail.
  for (uint64_t seq = 5; seq < 20; ++seq) {
    std::vector<engine::OpRecord> one = {record(1)};
    tail.Append(seq, one);
  }
  tail.Publish(20);
  std::vector<TailRecord> out;
  EXPECT_FALSE(tail.Read(5, 20, &out));
  EXPECT_TRUE(tail.Read(12, 20, &out));
  EXPECT_EQ(out.size(), 8u);
}

}  // namespace
}  // namespace segd::storage
