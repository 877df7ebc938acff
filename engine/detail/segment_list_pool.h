#pragma once

// SegmentListPool: for each user of one shard, the sorted list of segments it belongs to, with
// each membership's expiry and the time it was last added. This is the reverse index behind
// "which segments is U in, since when, until when?" and "when does U leave S?", so that none of
// them scans every segment or reads the log.
//
// Encoding: all lists live in one vector of 32-bit words. An entry is the segment id in the low
// 31 bits, then the added-at word (AddedAtWord: whole seconds since the epoch plus one, 0 when
// unknown); when bit 31 of the first word is set, two more words follow holding the expiry
// (TimeMs, low word first). So a membership costs 8 bytes, 16 with an expiry. Entries are kept
// sorted by segment id. A user's list sits in a block whose capacity is one of a fixed ladder
// of sizes (steps of about 1.25×); a block that grows out of its size moves, and the old block
// goes on a free list for that size. Per user: a 12-byte head.
//
// Lists grow one membership at a time, so freed blocks pile up; Rebuilt() makes a packed copy
// with room to grow. The copy is made from a const pool, so the owner's single writer can build
// it while readers still use the old pool, and swap it in under the lock in O(1).
//
// Thread safety: none. The owning MembershipShards guards it with its mutex.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/types.h"

namespace segd::engine::detail {

struct ListedMembership {
  SegmentId segment;
  TimeMs expires_at;  // kNoExpiry if none
  TimeMs added_at;    // to the second; kUnknownTime if not known
};

// The added-at word of a membership added at `at`: whole seconds since the epoch plus one
// (times before the epoch count as the epoch, after 2106-02-07 as that day), so that 0 can mean
// "unknown". Four bytes per membership keep added_at in memory, at the price of its
// milliseconds.
uint32_t AddedAtWord(TimeMs at);
// The time an added-at word stands for (the start of its second), or kUnknownTime for 0.
TimeMs AddedAtFromWord(uint32_t word);

class SegmentListPool {
 public:
  SegmentListPool() = default;
  SegmentListPool(const SegmentListPool&) = delete;
  SegmentListPool& operator=(const SegmentListPool&) = delete;

  // Whether `local` belongs to `segment`; fills *expires_at and *added_word (each when
  // non-null) if so.
  bool Find(uint32_t local, SegmentId segment, TimeMs* expires_at,
            uint32_t* added_word = nullptr) const;

  // Inserts or updates the membership, which was (last) added at `added_at`. Returns true if it
  // existed; *previous_expiry (when non-null) then receives its old expiry.
  bool Upsert(uint32_t local, SegmentId segment, TimeMs expires_at, TimeMs added_at,
              TimeMs* previous_expiry);

  // Removes the membership. Returns true if it existed; *previous_expiry as for Upsert.
  bool Remove(uint32_t local, SegmentId segment, TimeMs* previous_expiry);

  // Appends every membership of `local` to *out, in segment id order.
  void List(uint32_t local, std::vector<ListedMembership>* out) const;

  // Number of memberships of `local`.
  uint32_t CountOf(uint32_t local) const;

  size_t MemoryUsage() const;

  // Whether Rebuilt() should run before up to `extra_words` more words are written: garbage
  // from freed blocks is over a quarter of the pool, or the vector would have to grow.
  bool ShouldRebuild(size_t extra_words) const;
  // A packed copy (every block in the smallest size class that holds it, no free lists) with
  // capacity for `extra_words` more words and a margin. Cost: O(words).
  SegmentListPool Rebuilt(size_t extra_words) const;
  SegmentListPool(SegmentListPool&&) = default;
  SegmentListPool& operator=(SegmentListPool&&) = default;
  // Builds the pool of a whole shard at once (recovery from a snapshot): `members` as
  // (segment, users) sorted by segment, `expiries` as (segment << 32 | user, expires_at) sorted
  // by key, each naming a membership in `members`; `added` either empty (every added_at
  // unknown) or holding, for each entry of `members`, one added-at word per member in user
  // order. `local_of` maps a user to its index in the shard. One counting pass sizes every
  // block, a second fills them in order: O(memberships).
  template <typename Members, typename Expiries, typename Added, typename LocalOf>
  static SegmentListPool BuildFrom(const Members& members, const Expiries& expiries,
                                   const Added& added, size_t users, LocalOf local_of);

  // Sizes the head table for `users` users up front (so that it never grows under a lock).
  void ReserveUsers(size_t users) { heads_.resize(users); }

 private:
  struct Head {
    uint32_t offset = 0;
    uint32_t used = 0;  // words
    uint32_t cap = 0;   // words; 0 = no block
  };

  static uint32_t SizeClassFor(uint32_t words, uint32_t* cap);
  uint32_t Allocate(uint32_t words, uint32_t* cap);
  void Release(uint32_t offset, uint32_t cap);
  // Word index (relative to the block) of `segment`'s entry in `head`, or of the first entry
  // with a larger id (or head.used) when absent. *found tells which.
  uint32_t Locate(const Head& head, SegmentId segment, bool* found) const;
  void Resize(Head& head, uint32_t new_used);

  std::vector<Head> heads_;
  std::vector<uint32_t> words_;
  std::vector<std::vector<uint32_t>> free_;  // by size class
  size_t free_words_ = 0;                    // words in blocks on the free lists
};

template <typename Members, typename Expiries, typename Added, typename LocalOf>
SegmentListPool SegmentListPool::BuildFrom(const Members& members, const Expiries& expiries,
                                           const Added& added, size_t users, LocalOf local_of) {
  constexpr uint32_t kFlag = 1u << 31;
  SegmentListPool pool;
  pool.heads_.resize(users);
  for (const auto& [segment, bitmap] : members) {
    for (auto user : bitmap) pool.heads_[local_of(user)].used += 2;
  }
  for (const auto& [key, expires_at] : expiries) {
    pool.heads_[local_of(static_cast<uint32_t>(key))].used += 2;
  }
  size_t total = 0;
  for (Head& head : pool.heads_) {
    if (head.used == 0) continue;
    SizeClassFor(head.used, &head.cap);
    head.offset = static_cast<uint32_t>(total);
    total += head.cap;
    head.used = 0;  // from here on: the fill cursor
  }
  pool.words_.reserve(total + total / 4);
  pool.words_.resize(total);
  size_t next_expiry = 0;
  for (size_t k = 0; k < members.size(); ++k) {
    const auto& [segment, bitmap] = members[k];
    size_t rank = 0;
    for (auto user : bitmap) {
      Head& head = pool.heads_[local_of(user)];
      uint32_t* at = pool.words_.data() + head.offset + head.used;
      at[1] = added.empty() ? 0 : added[k][rank];
      ++rank;
      uint64_t key = (uint64_t{segment} << 32) | user;
      if (next_expiry < expiries.size() && expiries[next_expiry].first == key) {
        auto v = static_cast<uint64_t>(expiries[next_expiry++].second);
        at[0] = segment | kFlag;
        at[2] = static_cast<uint32_t>(v);
        at[3] = static_cast<uint32_t>(v >> 32);
        head.used += 4;
      } else {
        at[0] = segment;
        head.used += 2;
      }
    }
  }
  return pool;
}

}  // namespace segd::engine::detail
