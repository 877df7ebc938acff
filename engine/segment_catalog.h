#pragma once

// SegmentCatalog: segment names <-> SegmentIds, each segment's metadata and member count.
//
// Ids are dense and never reused: a deleted segment keeps its id and name (so history maps
// back), and creating the name again restores that same id.
//
// Thread safety: const methods may be called from any thread concurrently with one writer.
// Non-const methods must be called by one thread at a time (the engine's writer). Member
// counts are atomics, read without the lock.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/op_record.h"
#include "engine/types.h"

namespace segd::engine {

class SegmentCatalog {
 public:
  static constexpr size_t kMaxNameBytes = 128;
  static constexpr size_t kMaxDescriptionBytes = 4096;

  SegmentCatalog() = default;
  SegmentCatalog(const SegmentCatalog&) = delete;
  SegmentCatalog& operator=(const SegmentCatalog&) = delete;

  // OK if `name` matches ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$, else a bad_request status.
  static absl::Status ValidateName(absl::string_view name);

  // The id of `name`, active or deleted; nullopt if never created.
  std::optional<SegmentId> Find(absl::string_view name) const;
  // The id of `name` if it names an active segment.
  std::optional<SegmentId> FindActive(absl::string_view name) const;
  // A copy of the metadata. REQUIRES: id < size().
  SegmentMeta Get(SegmentId id) const;
  bool IsActive(SegmentId id) const;
  std::string Name(SegmentId id) const;
  // Number of ids handed out.
  uint32_t size() const;
  // Every segment's metadata, active and deleted, in id order.
  std::vector<SegmentMeta> All() const;
  // Active segments created with auto_percent_sticky.
  std::vector<SegmentMeta> ActiveSticky() const;

  uint64_t Count(SegmentId id) const;

  // The id and default TTL (0 if none) of an active segment, without copying its metadata.
  struct Active {
    SegmentId id;
    int64_t ttl_seconds;
  };
  std::optional<Active> ResolveActive(absl::string_view name) const;

  // The names of `ids`, under one lock hold. The views stay valid for the catalog's lifetime:
  // a name never changes once created, and entries never move. REQUIRES: every id < size().
  void NamesOf(absl::Span<const SegmentId> ids, std::vector<absl::string_view>* out) const;

  // --- Writer only. ---

  // Inserts or replaces the metadata of meta.id. REQUIRES: meta.id <= size(); a new id must
  // be exactly size(), and a name must keep its id.
  absl::Status Upsert(const SegmentMeta& meta);
  // Adds `delta` (may be negative) to the member count of `id`.
  void AddToCount(SegmentId id, int64_t delta);

 private:
  struct Entry {
    explicit Entry(std::string n) : name(std::move(n)) {}
    const std::string name;  // never written after creation: readers may keep views of it
    SegmentMeta meta;
    std::atomic<uint64_t> count{0};
  };

  mutable SharedMutex mu_;
  absl::flat_hash_map<std::string, SegmentId> ids_ ABSL_GUARDED_BY(mu_);
  // Entries never move: pointers stay valid, and counts are read without mu_.
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segd::engine
