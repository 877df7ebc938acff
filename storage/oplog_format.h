#pragma once

// Byte layout of everything segd keeps in RocksDB (docs/oplog_format.md describes it for
// humans). Pure functions: no RocksDB here, so the format is unit-tested alone.
//
// Column families and keys (all integers in keys big-endian, so that byte order is numeric
// order):
//   ops         seq(8)                 -> OpRecord: zigzag varint at, varint user,
//                                         varint segment, byte (op << 4 | reason),
//                                         zigzag varint expires_at
//   by_time     at(8) seq(8)           -> empty
//   by_user     user(4) at(8) seq(8)   -> empty
//   by_segment  segment(4) at(8) seq(8)-> empty
//   users       user(4)                -> byte 1, external id bytes
//   unregistered user(4)               -> empty: the user is deleted (not registered)
//   segments    segment(4)             -> SegmentMeta (see EncodeSegment)
//   snapshots   'm' id(8)              -> snapshot meta: varint seq, varint shards,
//                                         zigzag varint created_at (written last: commits it)
//               's' id(8) shard(4)     -> one shard's state (see EncodeShardState)
//   default     "format"               -> format version (4 bytes)
// `at` in keys is the signed millisecond time with its sign bit flipped, so that byte order is
// time order; the index keys therefore list records by (at, seq), the order of reports.
//
// Thread safety: the functions are pure and reentrant.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/membership_shards.h"
#include "engine/op_record.h"

namespace segd::storage {

inline constexpr uint32_t kFormatVersion = 1;

void PutBigEndian32(std::string* out, uint32_t v);
void PutBigEndian64(std::string* out, uint64_t v);
uint32_t GetBigEndian32(const char* p);
uint64_t GetBigEndian64(const char* p);

std::string SeqKey(uint64_t seq);
std::string IdKey(uint32_t id);
// (at, seq), for by_time.
std::string TimeSeqKey(int64_t at, uint64_t seq);
// (id, at, seq), for by_user and by_segment.
std::string IdTimeSeqKey(uint32_t id, int64_t at, uint64_t seq);
// The (at, seq) at the end of an index key of `prefix_bytes` + 16 bytes.
void ParseTimeSeq(absl::string_view key, size_t prefix_bytes, int64_t* at, uint64_t* seq);

std::string EncodeRecord(const engine::OpRecord& record);
// DataLoss on malformed bytes; never reads past `bytes`.
absl::StatusOr<engine::OpRecord> DecodeRecord(absl::string_view bytes);

std::string EncodeUser(bool registered, absl::string_view external_id);
absl::Status DecodeUser(absl::string_view bytes, bool* registered, std::string* external_id);

// A shard's memberships: varint count, then per segment varint id, varint length and the
// bitmap in Roaring's portable format; then varint count of expiries, each varint segment,
// varint user, zigzag varint expires_at.
std::string EncodeShardState(const engine::MembershipShards::ShardState& state);
// Decodes with Roaring's bounds-checked reader; DataLoss on anything malformed.
absl::StatusOr<engine::MembershipShards::ShardState> DecodeShardState(uint32_t index,
                                                                      absl::string_view bytes);

struct SnapshotMeta {
  uint64_t seq = 0;  // replay the log from here after loading the snapshot
  uint32_t shards = 0;
  int64_t created_at = 0;
};
std::string SnapshotMetaKey(uint64_t id);
std::string SnapshotShardKey(uint64_t id, uint32_t shard);
std::string EncodeSnapshotMeta(const SnapshotMeta& meta);
absl::StatusOr<SnapshotMeta> DecodeSnapshotMeta(absl::string_view bytes);

std::string EncodeSegment(const engine::SegmentMeta& meta);
absl::StatusOr<engine::SegmentMeta> DecodeSegment(uint32_t id, absl::string_view bytes);

}  // namespace segd::storage
