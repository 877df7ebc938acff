#pragma once

// UserDictionary: external user id (1–256 bytes) <-> dense internal UserId.
//
// Ids are handed out in first-seen order, 0, 1, 2, … and never reused or forgotten: a deleted
// user keeps its id (the registry, not the dictionary, says who is active), so that history
// always maps back to a name.
//
// Layout, per user: the name bytes with a one-byte length in an append-only arena of 1 MiB
// blocks; an 8-byte pointer to them in a chunked id -> name table; an 8-byte entry (the id and
// 32 bits of the name's hash, plus absl's control byte) in one of kIndexShards hash sets. The
// sets hash entries by the stored bits, so growing one never reads names, and a probe compares
// a candidate's name only when its bits match. About 36 bytes per user for 12-byte ids.
// Sharding the index bounds the pause of a rehash to one shard's worth of entries.
//
// Thread safety: Find, FindMany, Name and size may be called from any thread at any time.
// Insert, InsertConsecutive and Reserve must be called by one thread at a time (the engine's
// writer). Insert never blocks readers for longer than one index shard's rehash;
// InsertConsecutive holds a shard's lock for at most 1,024 inserts (or that shard's rehash).

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/types.h"

namespace segd::engine {

class UserDictionary {
 public:
  static constexpr size_t kMaxIdBytes = 256;

  UserDictionary();
  ~UserDictionary();
  UserDictionary(const UserDictionary&) = delete;
  UserDictionary& operator=(const UserDictionary&) = delete;

  // The internal id of `external_id`, or nullopt if it was never inserted.
  std::optional<UserId> Find(absl::string_view external_id) const;
  // out[i] = Find(names[i]) for every i, taking each index shard's lock once for all the names
  // that hash to it (a batch costs one lock per shard touched, not one per name).
  // REQUIRES: out.size() == names.size().
  void FindMany(absl::Span<const absl::string_view> names,
                absl::Span<std::optional<UserId>> out) const;

  // A hint that Find(external_id) or an insert of it follows soon: starts loading the index
  // memory it will probe. Writer only (it reads the index without a lock, which is safe
  // because only the writer changes it).
  void Prefetch(absl::string_view external_id) const;

  // The external id of `id`. REQUIRES: id < size(). The view stays valid for the dictionary's
  // lifetime.
  absl::string_view Name(UserId id) const;

  // Number of ids handed out.
  uint32_t size() const { return size_.load(std::memory_order_acquire); }

  // Returns the id of `external_id`, inserting it with the next id if new. `inserted` (when
  // non-null) tells which. InvalidArgument for an id that is not 1–256 bytes.
  absl::StatusOr<UserId> Insert(absl::string_view external_id, bool* inserted = nullptr);

  // Inserts names[i] as first + i for every i (the users one write batch creates, or one
  // recovered block of them), taking each index shard's lock once for the whole batch.
  // DataLoss if first != size(), a name repeats one already present, or a name is invalid; the
  // dictionary is then partly filled and must be discarded.
  absl::Status InsertConsecutive(UserId first, absl::Span<const absl::string_view> names);

  // Writer only: sizes the index for `users` ids in all, so that loading that many does not
  // rehash (recovery knows the count up front).
  void Reserve(size_t users);

  // Checks that `external_id` is acceptable as a user id: 1–256 bytes, valid UTF-8, no control
  // characters.
  static absl::Status Validate(absl::string_view external_id);

  // Bytes held by the dictionary's own structures.
  size_t MemoryUsage() const;

 private:
  static constexpr int kIndexShardBits = 6;
  static constexpr int kIndexShards = 1 << kIndexShardBits;
  static constexpr int kChunkBits = 16;
  static constexpr size_t kChunkSize = size_t{1} << kChunkBits;
  static constexpr size_t kMaxChunks = (size_t{1} << 32) >> kChunkBits;
  static constexpr size_t kArenaBlockBytes = 1 << 20;
  // InsertConsecutive releases a shard's lock after this many inserts.
  static constexpr uint32_t kMaxInsertsPerLock = 1024;
  // How many names ahead a batch insert prefetches the index memory it will probe.
  static constexpr uint32_t kPrefetchDistance = 8;

  struct Entry;
  struct Probe;
  struct EntryHash;
  struct EntryEq;
  struct IndexShard;
  struct ShardOrder;

  const char* StoreName(absl::string_view name);
  // Adds `probe`'s name as `id` to `shard`, which must not hold the name yet (DataLoss if it
  // does). REQUIRES: shard.mu held for writing.
  static absl::Status InsertNew(IndexShard& shard, const Probe& probe, UserId id);
  // The id -> name table entry (not yet covered by size_ nor in the index).
  void SetName(UserId id, const char* stored);
  // SetName, then size_ = id + 1, then the index entry.
  void Publish(UserId id, const char* stored);
  static uint64_t HashName(absl::string_view name);

  // id -> pointer to [len byte][bytes]; chunks are allocated by the writer and never move.
  std::unique_ptr<std::atomic<const char**>[]> chunks_;
  std::atomic<uint32_t> size_{0};

  // Written by the writer only.
  std::vector<std::unique_ptr<char[]>> arena_blocks_;
  size_t arena_used_ = kArenaBlockBytes;
  size_t arena_bytes_ = 0;

  std::unique_ptr<IndexShard[]> index_;
};

}  // namespace segd::engine
