#include "engine/user_dictionary.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "engine/errors.h"

namespace segd::engine {
namespace {

absl::string_view ReadStored(const char* stored) {
  size_t len = static_cast<unsigned char>(stored[0]) + size_t{1};
  return absl::string_view(stored + 1, len);
}

}  // namespace

// An index entry: the id, 32 bits of its name's hash and where its name is stored. The sets
// hash entries from those bits alone, so growing a set never reads a name, and a probe reads a
// candidate's name only when the stored bits match too. The name's address rides along so that
// the probe reads the name straight away: going through the id -> name table would be one more
// cache miss on every lookup.
struct UserDictionary::Entry {
  const char* stored;
  UserId id;
  uint32_t hash_bits;
};

// A name being looked up, with its hash computed once.
struct UserDictionary::Probe {
  absl::string_view name;
  uint64_t hash;
};

struct UserDictionary::EntryHash {
  using is_transparent = void;
  // Spreads the stored 32 bits over the 64 that absl's tables use (position and control byte).
  static size_t Spread(uint32_t bits) { return uint64_t{bits} * 0x9E3779B97F4A7C15ull; }
  size_t operator()(const Entry& e) const { return Spread(e.hash_bits); }
  size_t operator()(const Probe& p) const { return Spread(static_cast<uint32_t>(p.hash)); }
};

struct UserDictionary::EntryEq {
  using is_transparent = void;
  bool operator()(const Entry& a, const Entry& b) const { return a.id == b.id; }
  bool operator()(const Entry& a, const Probe& b) const {
    return a.hash_bits == static_cast<uint32_t>(b.hash) && ReadStored(a.stored) == b.name;
  }
  bool operator()(const Probe& a, const Entry& b) const { return (*this)(b, a); }
};

struct UserDictionary::IndexShard {
  mutable SharedMutex mu;
  absl::flat_hash_set<Entry, EntryHash, EntryEq> ids ABSL_GUARDED_BY(mu);
};

UserDictionary::UserDictionary()
    : chunks_(new std::atomic<const char**>[kMaxChunks]), index_(new IndexShard[kIndexShards]) {
  for (size_t i = 0; i < kMaxChunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  for (int i = 0; i < kIndexShards; ++i) {
    WriterMutexLock lock(&index_[i].mu);
    index_[i].ids = absl::flat_hash_set<Entry, EntryHash, EntryEq>(0, EntryHash{}, EntryEq{});
  }
}

UserDictionary::~UserDictionary() {
  for (size_t i = 0; i < kMaxChunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

uint64_t UserDictionary::HashName(absl::string_view name) { return absl::HashOf(name); }

std::optional<UserId> UserDictionary::Find(absl::string_view external_id) const {
  const Probe probe{external_id, HashName(external_id)};
  const IndexShard& shard = index_[probe.hash >> (64 - kIndexShardBits)];
  {
    ReaderMutexLock lock(&shard.mu);
    // The control bytes and the first slots of the probe's group are two cache misses apart;
    // asking for both at once makes them one wait instead of two.
    shard.ids.prefetch(probe);
    auto it = shard.ids.find(probe);
    if (it != shard.ids.end()) return it->id;
  }
  if (alias_count() == 0) return std::nullopt;
  return FindAlias(external_id);
}

std::optional<UserId> UserDictionary::FindAsWriter(absl::string_view external_id) const {
  const Probe probe{external_id, HashName(external_id)};
  const IndexShard& shard = index_[probe.hash >> (64 - kIndexShardBits)];
  const auto& ids = ABSL_TS_UNCHECKED_READ(shard.ids);
  auto it = ids.find(probe);
  if (it != ids.end()) return it->id;
  if (alias_count() == 0) return std::nullopt;
  return FindAlias(external_id);
}

std::optional<UserId> UserDictionary::FindAlias(absl::string_view alias) const {
  ReaderMutexLock lock(&alias_mu_);
  auto it = aliases_.find(alias);
  if (it == aliases_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> UserDictionary::AliasesOf(UserId user) const {
  ReaderMutexLock lock(&alias_mu_);
  auto it = aliases_of_.find(user);
  if (it == aliases_of_.end()) return {};
  return it->second;
}

void UserDictionary::SetAlias(absl::string_view alias, UserId user) {
  {
    WriterMutexLock lock(&alias_mu_);
    auto [it, inserted] = aliases_.try_emplace(alias, user);
    if (!inserted) {
      if (it->second == user) return;
      std::vector<std::string>& old = aliases_of_[it->second];
      old.erase(std::remove(old.begin(), old.end(), alias), old.end());
      if (old.empty()) aliases_of_.erase(it->second);
      it->second = user;
    }
    std::vector<std::string>& mine = aliases_of_[user];
    mine.insert(std::upper_bound(mine.begin(), mine.end(), alias), std::string(alias));
    alias_count_.store(aliases_.size(), std::memory_order_release);
  }
  // A merged user's own name: out of the index, after the alias is in (a concurrent Find sees
  // the old user or the new one, never neither).
  const Probe probe{alias, HashName(alias)};
  IndexShard& shard = index_[probe.hash >> (64 - kIndexShardBits)];
  WriterMutexLock lock(&shard.mu);
  if (auto it = shard.ids.find(probe); it != shard.ids.end() && it->id != user) {
    retired_.insert(it->id);
    shard.ids.erase(it);
  }
}

void UserDictionary::MarkRetired(UserId user) { retired_.insert(user); }

bool UserDictionary::RemoveAlias(absl::string_view alias) {
  WriterMutexLock lock(&alias_mu_);
  auto it = aliases_.find(alias);
  if (it == aliases_.end()) return false;
  std::vector<std::string>& list = aliases_of_[it->second];
  list.erase(std::remove(list.begin(), list.end(), alias), list.end());
  if (list.empty()) aliases_of_.erase(it->second);
  aliases_.erase(it);
  alias_count_.store(aliases_.size(), std::memory_order_release);
  return true;
}

void UserDictionary::Prefetch(absl::string_view external_id) const {
  const Probe probe{external_id, HashName(external_id)};
  const IndexShard& shard = index_[probe.hash >> (64 - kIndexShardBits)];
  ABSL_TS_UNCHECKED_READ(shard.ids).prefetch(probe);
}

// Groups names by index shard (a counting sort): the names of shard s are
// names[order[starts[s]]], …, names[order[starts[s + 1] - 1]], in their original order.
struct UserDictionary::ShardOrder {
  std::array<uint32_t, kIndexShards + 1> starts{};
  std::vector<uint32_t> order;
  std::vector<uint64_t> hashes;  // hashes[i] = HashName(names[i])

  template <typename Names>
  explicit ShardOrder(const Names& names) : order(names.size()), hashes(names.size()) {
    std::vector<uint8_t> shard_of(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      hashes[i] = HashName(names[i]);
      shard_of[i] = static_cast<uint8_t>(hashes[i] >> (64 - kIndexShardBits));
      ++starts[shard_of[i] + 1];
    }
    for (int s = 0; s < kIndexShards; ++s) starts[s + 1] += starts[s];
    std::array<uint32_t, kIndexShards> next;
    std::copy(starts.begin(), starts.end() - 1, next.begin());
    for (size_t i = 0; i < names.size(); ++i) order[next[shard_of[i]]++] = static_cast<uint32_t>(i);
  }
};

void UserDictionary::FindMany(absl::Span<const absl::string_view> names,
                              absl::Span<std::optional<UserId>> out) const {
  // One lock per shard touched.
  const ShardOrder by_shard(names);
  for (int s = 0; s < kIndexShards; ++s) {
    if (by_shard.starts[s] == by_shard.starts[s + 1]) continue;
    const IndexShard& shard = index_[s];
    ReaderMutexLock lock(&shard.mu);
    for (uint32_t k = by_shard.starts[s]; k < by_shard.starts[s + 1]; ++k) {
      uint32_t i = by_shard.order[k];
      auto it = shard.ids.find(Probe{names[i], by_shard.hashes[i]});
      out[i] = it == shard.ids.end() ? std::nullopt : std::optional<UserId>(it->id);
    }
  }
  if (alias_count() == 0) return;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!out[i]) out[i] = FindAlias(names[i]);
  }
}

absl::string_view UserDictionary::Name(UserId id) const { return ReadStored(StoredName(id)); }

const char* UserDictionary::StoredName(UserId id) const {
  const char** chunk = chunks_[id >> kChunkBits].load(std::memory_order_acquire);
  return chunk[id & (kChunkSize - 1)];
}

absl::Status UserDictionary::Validate(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) {
    return BadRequest(absl::StrCat("user_id must be 1-", kMaxIdBytes, " bytes, got ", id.size()));
  }
  // UTF-8 well-formedness (no overlongs, no surrogates, at most U+10FFFF) and no control
  // characters (C0, DEL, C1).
  const auto* p = reinterpret_cast<const unsigned char*>(id.data());
  const auto* end = p + id.size();
  while (p < end) {
    unsigned char c = *p;
    uint32_t cp;
    int extra;
    if (c < 0x80) {
      cp = c;
      extra = 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      extra = 2;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      extra = 3;
    } else {
      return BadRequest("user_id is not valid UTF-8");
    }
    if (end - p <= extra) return BadRequest("user_id is not valid UTF-8");
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return BadRequest("user_id is not valid UTF-8");
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return BadRequest("user_id is not valid UTF-8");
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
      return BadRequest("user_id must not contain control characters");
    }
    p += extra + 1;
  }
  return absl::OkStatus();
}

const char* UserDictionary::StoreName(absl::string_view name) {
  size_t need = name.size() + 1;
  if (arena_used_ + need > kArenaBlockBytes) {
    arena_blocks_.emplace_back(new char[kArenaBlockBytes]);
    arena_used_ = 0;
    arena_bytes_ += kArenaBlockBytes;
  }
  char* out = arena_blocks_.back().get() + arena_used_;
  out[0] = static_cast<char>(name.size() - 1);
  std::memcpy(out + 1, name.data(), name.size());
  arena_used_ += need;
  return out;
}

void UserDictionary::SetName(UserId id, const char* stored) {
  size_t chunk_index = id >> kChunkBits;
  const char** chunk = chunks_[chunk_index].load(std::memory_order_relaxed);
  if (chunk == nullptr) {
    chunk = new const char*[kChunkSize];
    chunks_[chunk_index].store(chunk, std::memory_order_release);
  }
  chunk[id & (kChunkSize - 1)] = stored;
}

void UserDictionary::Publish(UserId id, const char* stored) {
  SetName(id, stored);
  // The name must be visible before the id enters the index or size_ covers it.
  size_.store(id + 1, std::memory_order_release);
  const uint64_t hash = HashName(ReadStored(stored));
  IndexShard& shard = index_[hash >> (64 - kIndexShardBits)];
  WriterMutexLock lock(&shard.mu);
  shard.ids.insert(Entry{stored, id, static_cast<uint32_t>(hash)});
}

absl::StatusOr<UserId> UserDictionary::Insert(absl::string_view external_id, bool* inserted) {
  if (auto found = Find(external_id)) {
    if (inserted) *inserted = false;
    return *found;
  }
  if (absl::Status s = Validate(external_id); !s.ok()) return s;
  uint32_t id = size();
  if (id > kMaxUserId) return LimitExceeded("the user dictionary is full (2^32 ids)");
  Publish(id, StoreName(external_id));
  if (inserted) *inserted = true;
  return id;
}

absl::Status UserDictionary::InsertNew(IndexShard& shard, const Probe& probe, UserId id) {
  const char* stored = StoredName(id);
  // Looked up by name (ids always differ), inserted in the same probe. The callers hold
  // shard.mu for writing (the header's REQUIRES; IndexShard is incomplete there, so the
  // analysis cannot be told).
  bool inserted = false;
  ABSL_TS_UNCHECKED_READ(shard.ids).lazy_emplace(probe, [&](const auto& construct) {
    construct(Entry{stored, id, static_cast<uint32_t>(probe.hash)});
    inserted = true;
  });
  if (!inserted) return absl::DataLossError(absl::StrCat("user '", probe.name, "' created twice"));
  return absl::OkStatus();
}

absl::Status UserDictionary::InsertConsecutive(UserId first,
                                               absl::Span<const absl::string_view> names) {
  if (first != size()) {
    return absl::DataLossError(absl::StrCat("user id ", first, " out of order, expected ", size()));
  }
  if (names.empty()) return absl::OkStatus();
  if (uint64_t{first} + names.size() - 1 > kMaxUserId) {
    return absl::DataLossError("user ids beyond the dictionary's range");
  }
  // Names first (the arena and the id table), then size_, then the index: as in Publish, a
  // name is visible before its id can be found.
  for (size_t i = 0; i < names.size(); ++i) {
    if (absl::Status s = Validate(names[i]); !s.ok()) {
      return absl::DataLossError(absl::StrCat("user ", first + i, ": ", s.message()));
    }
    SetName(static_cast<UserId>(first + i), StoreName(names[i]));
  }
  size_.store(static_cast<uint32_t>(first + names.size()), std::memory_order_release);
  if (!retired_.empty()) {
    // Recovery of a log with merges: index one by one, leaving merged users out.
    for (size_t i = 0; i < names.size(); ++i) {
      const UserId id = static_cast<UserId>(first + i);
      if (retired_.contains(id)) continue;
      const uint64_t hash = HashName(names[i]);
      IndexShard& shard = index_[hash >> (64 - kIndexShardBits)];
      WriterMutexLock lock(&shard.mu);
      if (absl::Status s = InsertNew(shard, Probe{names[i], hash}, id); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (names.size() == 1) {
    // One new user (the usual single-user request): no grouping by shard to pay for.
    const uint64_t hash = HashName(names[0]);
    IndexShard& shard = index_[hash >> (64 - kIndexShardBits)];
    WriterMutexLock lock(&shard.mu);
    return InsertNew(shard, Probe{names[0], hash}, first);
  }
  // Shard by shard, at most kMaxInsertsPerLock names per hold of a shard's lock, so that a
  // large batch does not keep that shard's readers waiting.
  const ShardOrder by_shard(names);
  for (int s = 0; s < kIndexShards; ++s) {
    IndexShard& shard = index_[s];
    for (uint32_t from = by_shard.starts[s]; from < by_shard.starts[s + 1];
         from += kMaxInsertsPerLock) {
      const uint32_t to = std::min(by_shard.starts[s + 1], from + kMaxInsertsPerLock);
      WriterMutexLock lock(&shard.mu);
      for (uint32_t k = from; k < to; ++k) {
        if (k + kPrefetchDistance < to) {
          const uint32_t ahead = by_shard.order[k + kPrefetchDistance];
          shard.ids.prefetch(Probe{names[ahead], by_shard.hashes[ahead]});
        }
        const uint32_t i = by_shard.order[k];
        absl::Status s =
            InsertNew(shard, Probe{names[i], by_shard.hashes[i]}, static_cast<UserId>(first + i));
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

void UserDictionary::Reserve(size_t users) {
  size_t per_shard = users / kIndexShards + users / kIndexShards / 8 + 16;
  for (int i = 0; i < kIndexShards; ++i) {
    WriterMutexLock lock(&index_[i].mu);
    index_[i].ids.reserve(per_shard);
  }
}

size_t UserDictionary::MemoryUsage() const {
  size_t bytes = arena_bytes_ + kMaxChunks * sizeof(std::atomic<const char**>);
  bytes += ((size() + kChunkSize - 1) >> kChunkBits) * kChunkSize * sizeof(const char*);
  for (int i = 0; i < kIndexShards; ++i) {
    ReaderMutexLock lock(&index_[i].mu);
    bytes += index_[i].ids.capacity() * (sizeof(Entry) + 1);
  }
  return bytes;
}

}  // namespace segd::engine
