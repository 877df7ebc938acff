#pragma once

// MembershipShards: who is in which segment, and who is registered.
//
// Users are split by internal id into shards of 2^16 consecutive ids. A shard holds, under its
// own reader/writer mutex: one Roaring bitmap per segment with the shard's members of that
// segment (in Roaring's terms, a single container), the registry bitmap of its active users,
// and the per-user reverse index (detail::SegmentListPool) of segment ids and expiries. So:
//   - everything about one user lives under one lock: a multi-segment update of one user is
//     seen whole or not at all;
//   - a writer never holds a lock for more than the chunk it applies (the engine cuts bulk
//     work into chunks of at most kMaxChunk records), so readers wait microseconds, not the
//     length of a 10M-user delete;
//   - a long reader (set algebra over big segments) holds one shard at a time.
//
// Counts per segment are kept by the engine, not here.
//
// Thread safety: const methods may be called from any thread concurrently with one writer.
// Non-const methods must be called by one thread at a time (the engine's writer).

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/detail/segment_list_pool.h"
#include "engine/op_record.h"
#include "engine/types.h"
#include "roaring/roaring.hh"

namespace segd::engine {

using detail::AddedAtFromWord;
using detail::AddedAtWord;
using detail::ListedMembership;

class MembershipShards {
 public:
  static constexpr int kShardBits = 16;
  static constexpr uint32_t kShardUsers = 1u << kShardBits;
  static constexpr size_t kMaxShards = (size_t{1} << 32) >> kShardBits;
  // The most records a writer applies under one shard lock.
  static constexpr size_t kMaxChunk = 1024;

  // What applying one record found.
  struct Applied {
    bool was_member = false;
    TimeMs previous_expiry = kNoExpiry;
  };

  // Read access to one shard, valid only inside ForEachShard's callback (the shard's reader
  // lock is held).
  class ShardView {
   public:
    // Members of `segment` in this shard, or nullptr when none were ever added.
    const Roaring* Members(SegmentId segment) const;
    const Roaring& Registered() const;
    uint32_t index() const { return index_; }

   private:
    friend class MembershipShards;
    ShardView(const void* shard, uint32_t index) : shard_(shard), index_(index) {}
    const void* shard_;
    uint32_t index_;
  };

  MembershipShards();
  ~MembershipShards();
  MembershipShards(const MembershipShards&) = delete;
  MembershipShards& operator=(const MembershipShards&) = delete;

  // --- Reads: any thread. ---

  bool Contains(SegmentId segment, UserId user) const;
  // out[i] = Contains(queries[i].first, queries[i].second) for every i, taking each shard's
  // lock once for all the queries about its users. Cheapest when `queries` is sorted by user.
  // REQUIRES: out.size() == queries.size().
  void ContainsMany(absl::Span<const std::pair<SegmentId, UserId>> queries,
                    absl::Span<bool> out) const;
  // Like Contains; also gives the expiry (kNoExpiry if none) of a membership.
  bool Lookup(SegmentId segment, UserId user, TimeMs* expires_at) const;
  // Every membership of `user`, in segment id order.
  std::vector<ListedMembership> SegmentsOf(UserId user) const;
  bool IsRegistered(UserId user) const;

  // --- Reads by the writer alone. ---
  // Contains and IsRegistered without the shard's lock: safe because only the writer changes
  // shards. For loops over many users on the write path (an import checks every line).
  bool ContainsAsWriter(SegmentId segment, UserId user) const;
  bool IsRegisteredAsWriter(UserId user) const;

  // Calls fn(const ShardView&) for every allocated shard in id order, holding that shard's
  // reader lock during the call. fn must not call other methods of this object.
  void ForEachShard(absl::FunctionRef<void(const ShardView&)> fn) const;
  // Number of shards allocated (users ids below shard_count() << kShardBits may exist).
  uint32_t shard_count() const { return shard_count_.load(std::memory_order_acquire); }

  // One shard's memberships, as snapshots store them.
  struct ShardState {
    uint32_t index = 0;
    std::vector<std::pair<SegmentId, Roaring>> members;  // non-empty bitmaps, by segment id
    std::vector<std::pair<uint64_t, TimeMs>> expiries;   // (segment << 32 | user, expires_at)
    // Empty (every added_at unknown), or per entry of `members` the added-at word
    // (AddedAtWord) of each member, in user order.
    std::vector<std::vector<uint32_t>> added;
  };
  // Copies shard `index` (empty state if it does not exist) under its reader lock: writers to
  // that shard wait for the copy (memcpy of its containers), readers do not wait at all.
  ShardState CopyShard(uint32_t index) const;
  // Writer only, on shards never written before (recovery): installs `state`. Returns, per
  // segment, how many members were installed (for the counts).
  void InstallShard(ShardState state, std::vector<std::pair<SegmentId, uint64_t>>* counts);

  size_t MemoryUsage() const;
  // Bytes of the segment bitmaps alone (Roaring's own size estimate).
  size_t BitmapBytes() const;

  // --- Writes: the engine's writer only. ---

  // Applies `records`, which must all fall in one shard (same user id >> kShardBits) and number
  // at most kMaxChunk, under one hold of that shard's lock. out[i] receives what record i found.
  void Apply(absl::Span<const OpRecord> records, std::vector<Applied>* out);

  // Adds/removes users to/from the registry. Returns whether the state changed.
  bool Register(UserId user);
  // Adds users first … first + count - 1 to the registry, one lock hold per shard. Returns how
  // many were not registered before.
  uint64_t RegisterRange(UserId first, uint64_t count);
  bool Unregister(UserId user);

  // Shrinks the bitmaps of `segment` (run containers where they pay, spare capacity freed).
  void Optimize(SegmentId segment);

 private:
  struct Shard;
  Shard* ShardFor(UserId user) const;
  Shard* EnsureShard(UserId user);

  std::unique_ptr<std::atomic<Shard*>[]> shards_;
  std::atomic<uint32_t> shard_count_{0};
};

}  // namespace segd::engine
