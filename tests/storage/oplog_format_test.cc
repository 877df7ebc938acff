#include "storage/oplog_format.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace segd::storage {
namespace {

using engine::OpKind;
using engine::OpReason;
using engine::OpRecord;

TEST(OpLogFormatTest, KeysSortNumerically) {
  EXPECT_LT(SeqKey(255), SeqKey(256));
  EXPECT_LT(SeqKey(1), SeqKey(uint64_t{1} << 40));
  EXPECT_LT(IdTimeSeqKey(1, 900, 9), IdTimeSeqKey(2, -5, 1));
  EXPECT_LT(TimeSeqKey(-1, 9), TimeSeqKey(0, 1));
  EXPECT_LT(TimeSeqKey(5, 9), TimeSeqKey(6, 1));
  int64_t at;
  uint64_t seq;
  ParseTimeSeq(IdTimeSeqKey(3, -42, 77), 4, &at, &seq);
  EXPECT_EQ(at, -42);
  EXPECT_EQ(seq, 77u);
  EXPECT_LT(IdTimeSeqKey(7, 1, 2), IdTimeSeqKey(7, 2, 1));
  EXPECT_EQ(GetBigEndian64(SeqKey(0x0102030405060708).data()), 0x0102030405060708u);
  EXPECT_EQ(GetBigEndian32(IdKey(0xdeadbeef).data()), 0xdeadbeefu);
}

TEST(OpLogFormatTest, RecordsRoundTrip) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10000; ++i) {
    OpRecord r;
    r.at = static_cast<int64_t>(rng() >> (rng() % 64)) * ((rng() % 5) ? 1 : -1);
    r.expires_at = (rng() % 2) ? 0 : static_cast<int64_t>(rng() % 253402300799999);
    r.user = static_cast<uint32_t>(rng());
    r.segment = static_cast<uint32_t>(rng() >> 33);
    r.op = (rng() % 2) ? OpKind::kAdd : OpKind::kRemove;
    r.reason = static_cast<OpReason>(rng() % 7);
    r.refresh = r.op == OpKind::kAdd && rng() % 3 == 0;
    auto decoded = DecodeRecord(EncodeRecord(r));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(*decoded, r);
  }
}

TEST(OpLogFormatTest, CorruptRecordsAreRejectedNotOverrun) {
  OpRecord r{1790000000123, 1790000600123, 42, 7, OpKind::kAdd, OpReason::kImport};
  std::string good = EncodeRecord(r);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeRecord(good.substr(0, n)).ok()) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeRecord(good + "x").ok());
  std::string bad_kind = good;
  bad_kind[bad_kind.size() - 7] = static_cast<char>(0x2F);  // op 2, reason 15
  EXPECT_FALSE(DecodeRecord(bad_kind).ok());
  bad_kind[bad_kind.size() - 7] = static_cast<char>(0x31);  // op 3
  EXPECT_FALSE(DecodeRecord(bad_kind).ok());
  // Op 2 is an add that refreshes a membership.
  std::string refresh = good;
  refresh[refresh.size() - 7] = static_cast<char>(0x21);
  auto decoded = DecodeRecord(refresh);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->op, OpKind::kAdd);
  EXPECT_TRUE(decoded->refresh);
  EXPECT_FALSE(DecodeRecord(std::string(20, '\xff')).ok());  // endless varint
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {  // random bytes: either a record or an error, never a crash
    std::string junk(rng() % 24, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    (void)DecodeRecord(junk);
    (void)DecodeSegment(1, junk);
  }
}

TEST(OpLogFormatTest, BlocksRoundTrip) {
  std::mt19937_64 rng(3);
  for (size_t n : {size_t{1}, size_t{2}, size_t{17}, size_t{1000}, kMaxBlockRecords}) {
    std::vector<OpRecord> records(n);
    int64_t at = static_cast<int64_t>(rng() % 1'900'000'000'000);
    for (OpRecord& r : records) {
      // Mostly repeated or growing times, sometimes far back or at the extremes.
      switch (rng() % 8) {
        // Steps wrap (through unsigned) rather than overflow when `at` is at an extreme.
        case 0:
          at = static_cast<int64_t>(static_cast<uint64_t>(at) - rng() % 1'000'000'000);
          break;
        case 1:
          at = (rng() % 2) ? INT64_MIN : INT64_MAX;
          break;
        case 2:
          at = static_cast<int64_t>(static_cast<uint64_t>(at) + 1);
          break;
        default:
          break;
      }
      r.at = at;
      r.expires_at = (rng() % 2) ? 0 : static_cast<int64_t>(rng());
      r.user = static_cast<uint32_t>(rng());
      r.segment = static_cast<uint32_t>(rng() % 3000);
      r.op = (rng() % 2) ? OpKind::kAdd : OpKind::kRemove;
      r.reason = static_cast<OpReason>(rng() % 6);
    }
    std::vector<OpRecord> decoded = {OpRecord{}};  // replaced, not appended to
    absl::Status s = DecodeBlock(EncodeBlock(records), &decoded);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(decoded, records) << n << " records";
  }
}

TEST(OpLogFormatTest, CorruptBlocksAreRejectedNotOverrun) {
  std::vector<OpRecord> records;
  for (uint32_t i = 0; i < 5; ++i) {
    records.push_back({1790000000123, 0, 40 + i, 7, OpKind::kAdd, OpReason::kImport});
  }
  std::string good = EncodeBlock(records);
  std::vector<OpRecord> out;
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeBlock(good.substr(0, n), &out).ok()) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeBlock(good + "x", &out).ok());
  std::string more = good;
  more[0] = 6;  // claims a record it does not hold
  EXPECT_FALSE(DecodeBlock(more, &out).ok());
  EXPECT_FALSE(DecodeBlock(std::string(1, '\0'), &out).ok());  // an empty block
  EXPECT_FALSE(DecodeBlock("\xff\xff\xff\x7f" + std::string(64, '\1'), &out).ok());  // huge count
  std::mt19937 rng(9);
  for (int i = 0; i < 20000; ++i) {  // random bytes: either records or an error, never a crash
    std::string junk(rng() % 40, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    (void)DecodeBlock(junk, &out);
  }
}

TEST(OpLogFormatTest, RunLengths) {
  for (uint32_t n : {1u, 127u, 128u, static_cast<uint32_t>(kMaxBlockRecords)}) {
    auto decoded = DecodeRunLength(EncodeRunLength(n));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, n);
  }
  EXPECT_FALSE(DecodeRunLength(EncodeRunLength(0)).ok());
  EXPECT_FALSE(DecodeRunLength(EncodeRunLength(kMaxBlockRecords + 1)).ok());
  EXPECT_FALSE(DecodeRunLength("").ok());
  EXPECT_FALSE(DecodeRunLength(EncodeRunLength(3) + "x").ok());
}

TEST(OpLogFormatTest, UserRunsRoundTripAndRejectCorruption) {
  const engine::OpRecord first{.at = -5,
                               .expires_at = 77,
                               .user = 100,
                               .segment = 3,
                               .op = engine::OpKind::kAdd,
                               .reason = engine::OpReason::kImport};
  for (uint32_t count : {2u, 128u, static_cast<uint32_t>(kMaxBlockRecords)}) {
    engine::OpRecord decoded;
    uint32_t decoded_count = 0;
    ASSERT_TRUE(DecodeUserRun(EncodeUserRun(first, count), &decoded, &decoded_count).ok());
    EXPECT_EQ(decoded, first);
    EXPECT_EQ(decoded_count, count);
  }
  engine::OpRecord r;
  uint32_t n;
  EXPECT_FALSE(DecodeUserRun(EncodeUserRun(first, 1), &r, &n).ok());
  EXPECT_FALSE(DecodeUserRun(EncodeUserRun(first, kMaxBlockRecords + 1), &r, &n).ok());
  EXPECT_FALSE(DecodeUserRun("", &r, &n).ok());
  EXPECT_FALSE(DecodeUserRun(EncodeUserRun(first, 5) + "x", &r, &n).ok());
  const std::string whole = EncodeUserRun(first, 5);
  EXPECT_FALSE(DecodeUserRun(whole.substr(0, whole.size() - 1), &r, &n).ok());
  engine::OpRecord at_the_end = first;
  at_the_end.user = 0xFFFFFFFEu;
  EXPECT_TRUE(DecodeUserRun(EncodeUserRun(at_the_end, 2), &r, &n).ok());
  EXPECT_FALSE(DecodeUserRun(EncodeUserRun(at_the_end, 3), &r, &n).ok());
  // Keys sort by last user, then by sequence number.
  EXPECT_LT(UserRunKey(5, 900), UserRunKey(6, 1));
  EXPECT_LT(UserRunKey(0x01000000, 1), UserRunKey(0x01000000, 2));
  EXPECT_LT(UserRunKey(0xFF, 1), UserRunKey(0x100, 0));
}

TEST(OpLogFormatTest, UserSetsRoundTripAndRejectCorruption) {
  // A block whose records 0, 3, 4 and 4,095 are for users of set 5: its first and last users.
  constexpr uint32_t kFirst = 5u << kUserSetBits, kLast = (6u << kUserSetBits) - 1;
  std::vector<engine::OpRecord> block(kMaxBlockRecords);
  for (uint32_t i = 0; i < block.size(); ++i) {
    block[i] = {.at = 9,
                .expires_at = i % 2 ? 0 : 1'800'000'000'000,
                .user = 1 + i * 997 % 900'000,
                .segment = i % 3,
                .op = i % 5 ? engine::OpKind::kAdd : engine::OpKind::kRemove,
                .reason = engine::OpReason::kImport,
                .refresh = i % 5 == 1};
  }
  const std::vector<uint32_t> indices = {0, 3, 4, kMaxBlockRecords - 1};
  for (uint32_t k = 0; k < indices.size(); ++k) block[indices[k]].user = k % 2 ? kLast : kFirst;
  const std::string value = EncodeUserSet(block, indices);
  std::vector<std::pair<uint32_t, engine::OpRecord>> got;
  auto collect = [&](uint32_t index, const engine::OpRecord& r) { got.emplace_back(index, r); };
  ASSERT_TRUE(DecodeUserSet(value, 5, -5, collect).ok());
  ASSERT_EQ(got.size(), indices.size());
  for (uint32_t k = 0; k < indices.size(); ++k) {
    engine::OpRecord want = block[indices[k]];
    want.at = -5;  // from the key
    EXPECT_EQ(got[k].first, indices[k]);
    EXPECT_EQ(got[k].second, want);
  }
  EXPECT_EQ(UserSetOf(kFirst - 1), 4u);
  EXPECT_EQ(UserSetOf(kFirst), 5u);
  EXPECT_EQ(UserSetOf(kLast), 5u);
  EXPECT_EQ(UserSetOf(kLast + 1), 6u);

  auto rejects = [&](absl::string_view bytes, uint32_t set) {
    return !DecodeUserSet(bytes, set, 0, [](uint32_t, const engine::OpRecord&) {}).ok();
  };
  EXPECT_FALSE(rejects(value, 5));
  EXPECT_TRUE(rejects(value, 4));  // users outside the key's set
  EXPECT_TRUE(rejects("", 5));
  EXPECT_TRUE(rejects(std::string(1, '\0'), 5));  // no records
  EXPECT_TRUE(rejects(value + "x", 5));
  EXPECT_TRUE(rejects(value.substr(0, value.size() - 1), 5));
  // An index past the largest block (the encoder is handed a longer block to write one).
  std::vector<engine::OpRecord> longer(kMaxBlockRecords + 1, block[0]);
  const std::vector<uint32_t> last = {kMaxBlockRecords - 1}, past = {kMaxBlockRecords};
  EXPECT_FALSE(rejects(EncodeUserSet(longer, last), 5));
  EXPECT_TRUE(rejects(EncodeUserSet(longer, past), 5));
}

TEST(OpLogFormatTest, SegmentsAndUsersRoundTrip) {
  engine::SegmentMeta m;
  m.id = 9;
  m.name = "AVITO_VOICE_MESSAGES";
  m.description = "with \"quotes\", commas, and UTF-8: \xc3\xa9";
  m.created_at = 1790000000123;
  m.deleted_at = 1790000009999;
  m.auto_percent = 12.345;
  m.sticky = true;
  m.ttl_seconds = 1209600;
  auto decoded = DecodeSegment(9, EncodeSegment(m));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, m);
  std::string enc = EncodeSegment(m);
  EXPECT_FALSE(DecodeSegment(9, enc.substr(0, enc.size() - 1)).ok());

  std::string block;
  const std::vector<std::string> ids = {"a@b c/d", std::string(256, 'x'), "\xc3\xa9", "1"};
  std::vector<size_t> boundaries;  // a block cut after a whole id is a valid, shorter block
  for (const std::string& id : ids) {
    AppendUserName(&block, id);
    boundaries.push_back(block.size());
  }
  std::vector<std::string> names = {"stale"};
  ASSERT_TRUE(DecodeUserNames(block, &names).ok());
  EXPECT_EQ(names, ids);
  for (size_t n = 0; n < block.size(); ++n) {
    bool whole = std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
    EXPECT_EQ(DecodeUserNames(block.substr(0, n), &names).ok(), whole) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeUserNames("", &names).ok());
  EXPECT_FALSE(DecodeUserNames(std::string("\0", 1), &names).ok());  // an empty id
  EXPECT_FALSE(DecodeUserNames(std::string("\x05x", 2), &names).ok());
}

TEST(OpLogFormatTest, ShardStatesRoundTripAndRejectCorruption) {
  engine::MembershipShards::ShardState state;
  state.index = 3;
  Roaring a, b;
  for (uint32_t u = 3 << 16; u < (3 << 16) + 5000; u += 3) a.add(u);
  b.addRange(3 << 16, (3 << 16) + 40000);
  b.runOptimize();
  state.members.emplace_back(1, a);
  state.members.emplace_back(7, b);
  state.expiries.emplace_back((uint64_t{7} << 32) | (3 << 16), 1790000000123);
  std::string bytes = EncodeShardState(state);
  auto decoded = DecodeShardState(3, bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->members.size(), 2u);
  EXPECT_EQ(decoded->members[0].first, 1u);
  EXPECT_TRUE(decoded->members[0].second == a);
  EXPECT_TRUE(decoded->members[1].second == b);
  EXPECT_EQ(decoded->expiries, state.expiries);
  EXPECT_TRUE(decoded->added.empty());  // none given: every added_at unknown
  for (size_t n = 0; n < bytes.size(); n += 97) {
    EXPECT_FALSE(DecodeShardState(3, bytes.substr(0, n)).ok()) << n;
  }
  std::string flipped = bytes;
  flipped[12] ^= 0x5a;  // inside the first bitmap's header
  auto bad = DecodeShardState(3, flipped);
  if (bad.ok()) {  // a flip may still parse; then the contents must differ
    EXPECT_FALSE(bad->members[0].second == a);
  }
  auto meta = DecodeSnapshotMeta(EncodeSnapshotMeta({42, 7, 1790000000123}));
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->seq, 42u);
  EXPECT_EQ(meta->shards, 7u);
  EXPECT_LT(SnapshotShardKey(1, 9), SnapshotShardKey(2, 0));
}

// Added-at words go as runs of equal values; a shard entry without them (format 6) reads as
// every added_at unknown; counts that do not add up to the members are refused.
TEST(OpLogFormatTest, ShardStatesCarryAddedAtWords) {
  engine::MembershipShards::ShardState state;
  state.index = 0;
  Roaring imported, mixed;
  imported.addRange(0, 30000);
  for (uint32_t u = 5; u < 2000; u += 7) mixed.add(u);
  state.members.emplace_back(2, imported);
  state.members.emplace_back(4, mixed);
  state.added.emplace_back(30000, engine::AddedAtWord(1'764'720'000'500));
  state.added.emplace_back();
  std::mt19937 rng(3);
  for (uint64_t i = 0; i < mixed.cardinality(); ++i) {
    // Ups and downs, 0 (unknown) and the largest word included.
    const uint32_t word = i % 50 == 0 ? 0 : i % 77 == 0 ? 0xFFFFFFFFu : 1'764'000'000 + rng() % 900;
    state.added.back().push_back(word);
  }
  std::string bytes = EncodeShardState(state);
  auto decoded = DecodeShardState(0, bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->added.size(), 2u);
  EXPECT_EQ(decoded->added[0], state.added[0]);
  EXPECT_EQ(decoded->added[1], state.added[1]);
  // 30,000 members added in one second cost a run, not 30,000 values.
  engine::MembershipShards::ShardState without = state;
  without.added.clear();
  EXPECT_LT(bytes.size() - EncodeShardState(without).size(), 16 + 4 * mixed.cardinality());

  // A format 6 entry: the same bytes up to the expiries.
  std::string old = EncodeShardState(without);
  old.pop_back();  // its trailing count of added-at lists (0), which format 6 did not write
  auto from_old = DecodeShardState(0, old);
  ASSERT_TRUE(from_old.ok()) << from_old.status();
  EXPECT_TRUE(from_old->added.empty());
  EXPECT_EQ(from_old->members.size(), 2u);

  // Runs longer than the members left, and a list for some segments only.
  engine::MembershipShards::ShardState one = without;
  one.members.pop_back();
  one.added.emplace_back(30000, 9);
  std::string good = EncodeShardState(one);
  ASSERT_TRUE(DecodeShardState(0, good).ok());
  std::string too_long = good;
  ASSERT_EQ(static_cast<uint8_t>(too_long[too_long.size() - 4]), 0xB0);  // varint 30000: B0 EA 01
  too_long[too_long.size() - 3] = static_cast<char>(0xEB);               // 30128
  EXPECT_FALSE(DecodeShardState(0, too_long).ok());
  engine::MembershipShards::ShardState partial = state;
  partial.added.pop_back();
  EXPECT_FALSE(DecodeShardState(0, EncodeShardState(partial)).ok());
  for (size_t n = old.size() + 1; n < bytes.size(); n += 13) {
    EXPECT_FALSE(DecodeShardState(0, bytes.substr(0, n)).ok()) << n;
  }
}

}  // namespace
}  // namespace segd::storage
