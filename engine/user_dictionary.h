#pragma once

// UserDictionary: external user id (1–256 bytes) <-> dense internal UserId.
//
// Ids are handed out in first-seen order, 0, 1, 2, … and never reused or forgotten: a deleted
// user keeps its id (the registry, not the dictionary, says who is active), so that history
// always maps back to a name.
//
// Layout, per user: the name bytes with a one-byte length in an append-only arena of 1 MiB
// blocks; an 8-byte pointer to them in a chunked id -> name table; a 16-byte entry (the id, 32
// bits of the name's hash and the name's address, plus absl's control byte) in one of
// kIndexShards hash sets. The sets hash entries by the stored bits, so growing one never reads
// names, and a probe compares a candidate's name only when its bits match, reading it through
// the entry's address (one cache miss fewer than through the table). About 48 bytes per user
// for 12-byte ids.
// Sharding the index bounds the pause of a rehash to one shard's worth of entries.
//
// Aliases (other names of a user, docs/api.md "Identities") live in a table of their own,
// consulted only when a name is not a user's own and some alias exists: a lookup of a user's
// own name costs nothing more. A user merged into another keeps its id and Name (history
// names it), but its name leaves the index and becomes an alias of the survivor.
//
// Thread safety: Find, FindMany, Name, AliasesOf and size may be called from any thread at any
// time. SetAlias and RemoveAlias, like the inserts, by the writer only.
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
#include "absl/container/flat_hash_map.h"
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

  // Find for the writer alone: reads the index without its locks, which is safe because
  // only the writer changes it (an import looks up every line; the locks were a twentieth of
  // a bulk load's time).
  std::optional<UserId> FindAsWriter(absl::string_view external_id) const;

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

  // Makes `alias` resolve to `user`. If `alias` is some user's own name (that user was merged),
  // it leaves the index. REQUIRES: `alias` is not `user`'s own name. Writer only.
  void SetAlias(absl::string_view alias, UserId user);
  // Stops `alias` resolving; returns whether it was an alias. Writer only.
  bool RemoveAlias(absl::string_view alias);
  // The user `alias` resolves to, if it is an alias.
  std::optional<UserId> FindAlias(absl::string_view alias) const;
  // The aliases of `user`, sorted.
  std::vector<std::string> AliasesOf(UserId user) const;
  size_t alias_count() const { return alias_count_.load(std::memory_order_acquire); }
  // Recovery, before the users are inserted: `user` was merged into another, so its name is
  // not indexed when it is inserted (it may be an alias, or, once that alias was removed, the
  // name of a later user). Writer only.
  void MarkRetired(UserId user);

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
  // Adds `probe`'s name as `id` (whose name is stored already) to `shard`, which must not hold
  // the name yet (DataLoss if it does). REQUIRES: shard.mu held for writing.
  absl::Status InsertNew(IndexShard& shard, const Probe& probe, UserId id);
  // Where `id`'s name is stored: [length - 1 byte][bytes]. REQUIRES: SetName(id) happened.
  const char* StoredName(UserId id) const;
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

  mutable SharedMutex alias_mu_;
  absl::flat_hash_map<std::string, UserId> aliases_ ABSL_GUARDED_BY(alias_mu_);
  absl::flat_hash_map<UserId, std::vector<std::string>> aliases_of_ ABSL_GUARDED_BY(alias_mu_);
  // Merged users: their names are stored but not indexed. Written and read by the writer.
  absl::flat_hash_set<UserId> retired_;
  std::atomic<size_t> alias_count_{0};
};

}  // namespace segd::engine
