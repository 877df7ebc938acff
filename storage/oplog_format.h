#pragma once

// Byte layout of everything segd keeps in RocksDB (docs/oplog_format.md describes it for
// humans). Pure functions: no RocksDB here, so the format is unit-tested alone.
//
// Column families and keys (all integers in keys big-endian, so that byte order is numeric
// order):
//   ops         seq(8)            -> OpRecord: varint at, varint user, varint segment,
//                                    byte (op << 4 | reason), varint expires_at
//   by_user     user(4) seq(8)    -> empty
//   by_segment  segment(4) seq(8) -> empty
//   users       user(4)           -> byte flags (bit 0: registered), external id bytes
//   segments    segment(4)        -> SegmentMeta (see EncodeSegment)
//   default     "format"          -> format version
//
// Thread safety: the functions are pure and reentrant.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/op_record.h"

namespace segd::storage {

inline constexpr uint32_t kFormatVersion = 1;

void PutBigEndian32(std::string* out, uint32_t v);
void PutBigEndian64(std::string* out, uint64_t v);
uint32_t GetBigEndian32(const char* p);
uint64_t GetBigEndian64(const char* p);

std::string SeqKey(uint64_t seq);
std::string IdSeqKey(uint32_t id, uint64_t seq);
std::string IdKey(uint32_t id);

std::string EncodeRecord(const engine::OpRecord& record);
// DataLoss on malformed bytes; never reads past `bytes`.
absl::StatusOr<engine::OpRecord> DecodeRecord(absl::string_view bytes);

std::string EncodeUser(bool registered, absl::string_view external_id);
absl::Status DecodeUser(absl::string_view bytes, bool* registered, std::string* external_id);

std::string EncodeSegment(const engine::SegmentMeta& meta);
absl::StatusOr<engine::SegmentMeta> DecodeSegment(uint32_t id, absl::string_view bytes);

}  // namespace segd::storage
