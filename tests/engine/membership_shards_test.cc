// MembershipShards against a brute-force model: random adds and removes (with expiries) over
// users in several shards; every read (Contains, ContainsMany, Lookup, SegmentsOf, the
// bitmaps through ForEachShard) and every Applied answer must match, added_at included; a
// shard copied and installed elsewhere reads the same; the registry counts what changed.

#include "engine/membership_shards.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace segd::engine {
namespace {

using Key = std::pair<UserId, SegmentId>;
struct Entry {
  TimeMs expires_at;
  TimeMs added_at;  // to the second
};
using Model = std::map<Key, Entry>;  // memberships, their expiries and added-at times

constexpr uint32_t kShard = MembershipShards::kShardUsers;

// Users in shards 0, 1 and 3 (shard 2 stays unallocated), near shard edges too.
UserId PickUser(std::mt19937_64& rng) {
  static const UserId kBases[] = {0, kShard, 3 * kShard};
  const UserId base = kBases[rng() % 3];
  const uint32_t offset = rng() % 4 == 0 ? kShard - 1 - static_cast<uint32_t>(rng() % 3)
                                         : static_cast<uint32_t>(rng() % 500);
  return base + offset;
}

void ExpectSame(const MembershipShards& shards, const Model& model, int segments) {
  std::vector<std::pair<SegmentId, UserId>> queries;
  for (UserId base : {UserId{0}, kShard, 2 * kShard, 3 * kShard}) {
    for (uint32_t off : {0u, 1u, 7u, 499u, kShard - 3, kShard - 1}) {
      for (int s = 0; s < segments; ++s) queries.emplace_back(s, base + off);
    }
  }
  std::unique_ptr<bool[]> out(new bool[queries.size()]);
  shards.ContainsMany(queries, absl::Span<bool>(out.get(), queries.size()));
  for (size_t i = 0; i < queries.size(); ++i) {
    const auto [segment, user] = queries[i];
    auto it = model.find({user, segment});
    const bool member = it != model.end();
    ASSERT_EQ(shards.Contains(segment, user), member) << user << " in " << segment;
    ASSERT_EQ(out[i], member) << "ContainsMany " << user << " in " << segment;
    TimeMs expires = -1;
    ASSERT_EQ(shards.Lookup(segment, user, &expires), member);
    if (member) {
      ASSERT_EQ(expires, it->second.expires_at);
    }
  }
  // Every user's list, in segment order.
  using Listed = std::tuple<SegmentId, TimeMs, TimeMs>;
  std::map<UserId, std::vector<Listed>> by_user;
  for (const auto& [key, entry] : model) {
    by_user[key.first].emplace_back(key.second, entry.expires_at, entry.added_at);
  }
  for (const auto& [user, want_list] : by_user) {
    std::vector<Listed> got;
    for (const ListedMembership& m : shards.SegmentsOf(user)) {
      got.emplace_back(m.segment, m.expires_at, m.added_at);
    }
    ASSERT_EQ(got, want_list) << "user " << user;
  }
  // The bitmaps, through ForEachShard.
  std::set<Key> seen;
  std::set<uint32_t> indexes;
  shards.ForEachShard([&](const MembershipShards::ShardView& view) {
    indexes.insert(view.index());
    for (int s = 0; s < segments; ++s) {
      if (const Roaring* members = view.Members(s)) {
        for (UserId user : *members) seen.emplace(user, s);
      }
    }
  });
  std::set<Key> want_keys;
  for (const auto& [key, entry] : model) want_keys.insert(key);
  ASSERT_EQ(seen, want_keys);
  EXPECT_EQ(indexes.count(2), 0u) << "a shard no user lives in is never allocated";
}

TEST(MembershipShardsTest, MatchesAModelThroughRandomChunks) {
  constexpr int kSegments = 5;
  MembershipShards shards;
  Model model;
  std::mt19937_64 rng(42);
  std::vector<MembershipShards::Applied> applied;
  for (int round = 0; round < 400; ++round) {
    // One chunk: records of one shard, at most kMaxChunk, some users repeated within it.
    const UserId anchor = PickUser(rng);
    const UserId base = anchor - anchor % kShard;
    std::vector<OpRecord> chunk;
    const size_t n = 1 + rng() % (round % 50 == 0 ? MembershipShards::kMaxChunk : 40);
    for (size_t i = 0; i < n; ++i) {
      OpRecord r;
      r.user = base + (PickUser(rng) % kShard);
      r.segment = static_cast<SegmentId>(rng() % kSegments);
      r.op = rng() % 3 == 0 ? OpKind::kRemove : OpKind::kAdd;
      r.at = 1'700'000'000'000 + static_cast<TimeMs>(rng() % 100'000'000);
      r.expires_at =
          r.op == OpKind::kAdd && rng() % 2 ? 1000 + static_cast<TimeMs>(rng() % 9000) : kNoExpiry;
      chunk.push_back(r);
    }
    shards.Apply(chunk, &applied);
    ASSERT_EQ(applied.size(), chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) {
      const OpRecord& r = chunk[i];
      auto it = model.find({r.user, r.segment});
      const bool was = it != model.end();
      ASSERT_EQ(applied[i].was_member, was) << "record " << i << " of round " << round;
      if (was) {
        ASSERT_EQ(applied[i].previous_expiry, it->second.expires_at);
      }
      if (r.op == OpKind::kAdd) {
        model[{r.user, r.segment}] = {r.expires_at, r.at / 1000 * 1000};
      } else if (was) {
        model.erase(it);
      }
    }
    if (round % 40 == 39) {
      ASSERT_NO_FATAL_FAILURE(ExpectSame(shards, model, kSegments));
    }
  }
  for (int s = 0; s < kSegments; ++s) shards.Optimize(s);
  ASSERT_NO_FATAL_FAILURE(ExpectSame(shards, model, kSegments));

  // Copied shard by shard and installed in a fresh instance, the state reads the same.
  MembershipShards copy;
  std::map<SegmentId, uint64_t> counts;
  for (uint32_t index = 0; index < shards.shard_count(); ++index) {
    MembershipShards::ShardState state = shards.CopyShard(index);
    if (state.members.empty()) continue;
    std::vector<std::pair<SegmentId, uint64_t>> installed;
    copy.InstallShard(std::move(state), &installed);
    for (const auto& [segment, n] : installed) counts[segment] += n;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectSame(copy, model, kSegments));
  std::map<SegmentId, uint64_t> want_counts;
  for (const auto& [key, entry] : model) ++want_counts[key.second];
  EXPECT_EQ(counts, want_counts);
}

TEST(MembershipShardsTest, TheRegistryCountsOnlyChanges) {
  MembershipShards shards;
  EXPECT_FALSE(shards.IsRegistered(5));
  EXPECT_TRUE(shards.Register(5));
  EXPECT_FALSE(shards.Register(5));
  EXPECT_TRUE(shards.IsRegistered(5));
  // A range across a shard edge, overlapping user 5 and an already registered kShard + 1.
  EXPECT_TRUE(shards.Register(kShard + 1));
  EXPECT_EQ(shards.RegisterRange(0, kShard + 10), kShard + 10 - 2);
  EXPECT_TRUE(shards.IsRegistered(kShard + 9));
  EXPECT_FALSE(shards.IsRegistered(kShard + 10));
  EXPECT_TRUE(shards.Unregister(7));
  EXPECT_FALSE(shards.Unregister(7));
  EXPECT_FALSE(shards.IsRegistered(7));
  uint64_t registered = 0;
  shards.ForEachShard([&](const MembershipShards::ShardView& view) {
    registered += view.Registered().cardinality();
  });
  EXPECT_EQ(registered, kShard + 10 - 1);
}

}  // namespace
}  // namespace segd::engine
