#include "engine/membership_shards.h"

#include <algorithm>

#include "absl/base/thread_annotations.h"

namespace segd::engine {

struct MembershipShards::Shard {
  mutable SharedMutex mu;
  // Indexed by segment id; null until the segment gets a member in this shard.
  std::vector<std::unique_ptr<Roaring>> members ABSL_GUARDED_BY(mu);
  Roaring registered ABSL_GUARDED_BY(mu);
  detail::SegmentListPool lists ABSL_GUARDED_BY(mu);

  const Roaring* MembersOf(SegmentId segment) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return segment < members.size() ? members[segment].get() : nullptr;
  }
};

namespace {
uint32_t LocalOf(UserId user) { return user & (MembershipShards::kShardUsers - 1); }
}  // namespace

const Roaring* MembershipShards::ShardView::Members(SegmentId segment) const
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return static_cast<const Shard*>(shard_)->MembersOf(segment);
}

const Roaring& MembershipShards::ShardView::Registered() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return static_cast<const Shard*>(shard_)->registered;
}

MembershipShards::MembershipShards() : shards_(new std::atomic<Shard*>[kMaxShards]) {
  for (size_t i = 0; i < kMaxShards; ++i) shards_[i].store(nullptr, std::memory_order_relaxed);
}

MembershipShards::~MembershipShards() {
  for (size_t i = 0; i < kMaxShards; ++i) delete shards_[i].load(std::memory_order_relaxed);
}

MembershipShards::Shard* MembershipShards::ShardFor(UserId user) const {
  return shards_[user >> kShardBits].load(std::memory_order_acquire);
}

MembershipShards::Shard* MembershipShards::EnsureShard(UserId user) {
  uint32_t index = user >> kShardBits;
  Shard* shard = shards_[index].load(std::memory_order_relaxed);
  if (shard == nullptr) {
    shard = new Shard;
    // Before it is shared: no lock needed yet.
    ABSL_TS_UNCHECKED_READ(shard->lists).ReserveUsers(kShardUsers);
    shards_[index].store(shard, std::memory_order_release);
    if (shard_count_.load(std::memory_order_relaxed) <= index) {
      shard_count_.store(index + 1, std::memory_order_release);
    }
  }
  return shard;
}

bool MembershipShards::Contains(SegmentId segment, UserId user) const {
  const Shard* shard = ShardFor(user);
  if (shard == nullptr) return false;
  ReaderMutexLock lock(&shard->mu);
  const Roaring* bitmap = shard->MembersOf(segment);
  return bitmap != nullptr && bitmap->contains(user);
}

bool MembershipShards::ContainsAsWriter(SegmentId segment,
                                        UserId user) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const Shard* shard = ShardFor(user);
  if (shard == nullptr) return false;
  const Roaring* bitmap = shard->MembersOf(segment);
  return bitmap != nullptr && bitmap->contains(user);
}

bool MembershipShards::IsRegisteredAsWriter(UserId user) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const Shard* shard = ShardFor(user);
  return shard != nullptr && shard->registered.contains(user);
}

void MembershipShards::ContainsMany(absl::Span<const std::pair<SegmentId, UserId>> queries,
                                    absl::Span<bool> out) const {
  size_t i = 0;
  while (i < queries.size()) {
    const uint32_t index = queries[i].second >> kShardBits;
    const Shard* shard = ShardFor(queries[i].second);
    size_t end = i + 1;
    while (end < queries.size() && (queries[end].second >> kShardBits) == index) ++end;
    if (shard == nullptr) {
      std::fill(out.begin() + i, out.begin() + end, false);
    } else {
      ReaderMutexLock lock(&shard->mu);
      for (size_t k = i; k < end; ++k) {
        const Roaring* bitmap = shard->MembersOf(queries[k].first);
        out[k] = bitmap != nullptr && bitmap->contains(queries[k].second);
      }
    }
    i = end;
  }
}

bool MembershipShards::Lookup(SegmentId segment, UserId user, TimeMs* expires_at) const {
  const Shard* shard = ShardFor(user);
  if (shard == nullptr) return false;
  ReaderMutexLock lock(&shard->mu);
  return shard->lists.Find(LocalOf(user), segment, expires_at);
}

std::vector<ListedMembership> MembershipShards::SegmentsOf(UserId user) const {
  std::vector<ListedMembership> out;
  const Shard* shard = ShardFor(user);
  if (shard == nullptr) return out;
  ReaderMutexLock lock(&shard->mu);
  shard->lists.List(LocalOf(user), &out);
  return out;
}

bool MembershipShards::IsRegistered(UserId user) const {
  const Shard* shard = ShardFor(user);
  if (shard == nullptr) return false;
  ReaderMutexLock lock(&shard->mu);
  return shard->registered.contains(user);
}

void MembershipShards::ForEachShard(absl::FunctionRef<void(const ShardView&)> fn) const {
  uint32_t n = shard_count();
  for (uint32_t i = 0; i < n; ++i) {
    const Shard* shard = shards_[i].load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    ReaderMutexLock lock(&shard->mu);
    fn(ShardView(shard, i));
  }
}

void MembershipShards::Apply(absl::Span<const OpRecord> records, std::vector<Applied>* out) {
  out->clear();
  if (records.empty()) return;
  Shard* shard = EnsureShard(records[0].user);
  // Compaction and growth of the reverse index happen here, outside the lock: this thread is
  // the only writer, so reading the pool unlocked is safe, and readers keep using the old pool
  // until the O(1) swap. (Margin: a record writes at most 4 words, plus one block move.)
  size_t extra_words = records.size() * 10 + 4096;
  if (ABSL_TS_UNCHECKED_READ(shard->lists).ShouldRebuild(extra_words)) {
    detail::SegmentListPool rebuilt = ABSL_TS_UNCHECKED_READ(shard->lists).Rebuilt(extra_words);
    {
      WriterMutexLock lock(&shard->mu);
      std::swap(shard->lists, rebuilt);
    }
    // The old pool is freed here, after the lock is released.
  }
  WriterMutexLock lock(&shard->mu);
  for (const OpRecord& r : records) {
    Applied applied;
    uint32_t local = LocalOf(r.user);
    if (r.op == OpKind::kAdd) {
      applied.was_member =
          shard->lists.Upsert(local, r.segment, r.expires_at, r.at, &applied.previous_expiry);
      if (!applied.was_member) {
        if (shard->members.size() <= r.segment) shard->members.resize(r.segment + 1);
        auto& bitmap = shard->members[r.segment];
        if (!bitmap) bitmap = std::make_unique<Roaring>();
        bitmap->add(r.user);
      }
    } else {
      applied.was_member = shard->lists.Remove(local, r.segment, &applied.previous_expiry);
      if (applied.was_member) shard->members[r.segment]->remove(r.user);
    }
    out->push_back(applied);
  }
}

bool MembershipShards::Register(UserId user) {
  Shard* shard = EnsureShard(user);
  WriterMutexLock lock(&shard->mu);
  return shard->registered.addChecked(user);
}

uint64_t MembershipShards::RegisterRange(UserId first, uint64_t count) {
  uint64_t added = 0;
  const uint64_t end = uint64_t{first} + count;
  for (uint64_t lo = first; lo < end;) {
    const uint64_t shard_end = ((lo >> kShardBits) + 1) << kShardBits;
    const uint64_t hi = std::min(end, shard_end);
    Shard* shard = EnsureShard(static_cast<UserId>(lo));
    WriterMutexLock lock(&shard->mu);
    const uint64_t before = shard->registered.cardinality();
    shard->registered.addRange(lo, hi);
    added += shard->registered.cardinality() - before;
    lo = hi;
  }
  return added;
}

bool MembershipShards::Unregister(UserId user) {
  Shard* shard = ShardFor(user);
  if (shard == nullptr) return false;
  WriterMutexLock lock(&shard->mu);
  return shard->registered.removeChecked(user);
}

void MembershipShards::Optimize(SegmentId segment) {
  uint32_t n = shard_count();
  for (uint32_t i = 0; i < n; ++i) {
    Shard* shard = shards_[i].load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    WriterMutexLock lock(&shard->mu);
    if (segment >= shard->members.size() || !shard->members[segment]) continue;
    shard->members[segment]->runOptimize();
    shard->members[segment]->shrinkToFit();
  }
}

MembershipShards::ShardState MembershipShards::CopyShard(uint32_t index) const {
  ShardState state;
  state.index = index;
  const Shard* shard = shards_[index].load(std::memory_order_acquire);
  if (shard == nullptr) return state;
  ReaderMutexLock lock(&shard->mu);
  for (SegmentId segment = 0; segment < shard->members.size(); ++segment) {
    const auto& bitmap = shard->members[segment];
    if (!bitmap || bitmap->isEmpty()) continue;
    state.members.emplace_back(segment, *bitmap);
    std::vector<uint32_t>& added = state.added.emplace_back();
    added.reserve(bitmap->cardinality());
    for (UserId user : *bitmap) {
      TimeMs expires_at = kNoExpiry;
      uint32_t added_word = 0;
      shard->lists.Find(LocalOf(user), segment, &expires_at, &added_word);
      added.push_back(added_word);
      if (expires_at != kNoExpiry) {
        state.expiries.emplace_back((uint64_t{segment} << 32) | user, expires_at);
      }
    }
  }
  return state;
}

void MembershipShards::InstallShard(ShardState state,
                                    std::vector<std::pair<SegmentId, uint64_t>>* counts) {
  if (state.members.empty()) return;
  Shard* shard = EnsureShard(state.index << kShardBits);
  // Built unlocked (nobody can see the contents yet: recovery runs before serving), then
  // published under the lock.
  // REQUIRES (checked by the engine): members sorted by segment, expiries sorted by key and
  // each naming a member, added empty or one word per member.
  detail::SegmentListPool packed =
      detail::SegmentListPool::BuildFrom(state.members, state.expiries, state.added, kShardUsers,
                                         [](UserId user) { return LocalOf(user); });
  std::vector<std::unique_ptr<Roaring>> members;
  for (auto& [segment, bitmap] : state.members) {
    counts->emplace_back(segment, bitmap.cardinality());
    if (members.size() <= segment) members.resize(segment + 1);
    members[segment] = std::make_unique<Roaring>(std::move(bitmap));
  }
  WriterMutexLock lock(&shard->mu);
  for (size_t segment = 0; segment < members.size(); ++segment) {
    if (!members[segment]) continue;
    if (shard->members.size() <= segment) shard->members.resize(segment + 1);
    shard->members[segment] = std::move(members[segment]);
  }
  std::swap(shard->lists, packed);
}

size_t MembershipShards::MemoryUsage() const {
  size_t bytes = kMaxShards * sizeof(std::atomic<Shard*>);
  uint32_t n = shard_count();
  for (uint32_t i = 0; i < n; ++i) {
    const Shard* shard = shards_[i].load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    ReaderMutexLock lock(&shard->mu);
    bytes += sizeof(Shard) + shard->members.capacity() * sizeof(std::unique_ptr<Roaring>);
    for (const auto& bitmap : shard->members) {
      if (bitmap) bytes += sizeof(Roaring) + bitmap->getSizeInBytes(false);
    }
    bytes += shard->registered.getSizeInBytes(false) + shard->lists.MemoryUsage();
  }
  return bytes;
}

size_t MembershipShards::BitmapBytes() const {
  size_t bytes = 0;
  ForEachShard([&](const ShardView& view) {
    // ShardView has no iteration over segments; go through the shard directly (ForEachShard
    // holds its reader lock).
    const Shard* shard = shards_[view.index()].load(std::memory_order_acquire);
    for (const auto& bitmap : ABSL_TS_UNCHECKED_READ(shard->members)) {
      if (bitmap) bytes += sizeof(Roaring) + bitmap->getSizeInBytes(false);
    }
  });
  return bytes;
}

}  // namespace segd::engine
