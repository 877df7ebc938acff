#pragma once

// Byte layout of everything segd keeps in RocksDB (docs/oplog_format.md describes it for
// humans). Pure functions: no RocksDB here, so the format is unit-tested alone.
//
// Column families and keys (all integers in keys big-endian, so that byte order is numeric
// order):
//   ops         seq(8)                 -> a block of the records seq, seq+1, …, all from one
//                                         write batch (see EncodeBlock)
//   by_time     at(8) seq(8)           -> varint n: records seq … seq+n-1 all have this `at`
//   by_user     user(4) at(8) seq(8)   -> the record (EncodeRecord)
//   user_runs   last_user(4) seq(8)    -> a run of records for users a write batch created:
//                                         records seq, seq+1, … are for users first, first+1,
//                                         …, last_user and equal but for the user (see
//                                         EncodeUserRun); they have no by_user entries
//   user_sets   set(4) at(8) seq(8)    -> records of one block for users of one set (user >>
//                                         kUserSetBits) with this `at`; seq is the block's
//                                         first (see EncodeUserSet); no by_user entries
//   by_segment  segment(4) at(8) seq(8)-> varint n: records seq … seq+n-1 all have this
//                                         segment and `at`
//   users       user(4)                -> the external ids of users user, user+1, … created by
//                                         one write batch (see AppendUserName)
//   unregistered user(4)               -> empty: the user is deleted (not registered)
//   segments    segment(4)             -> SegmentMeta (see EncodeSegment)
//   events      seq(8)                 -> an event (see EncodeEvent); seq counts events alone
//   traits      user(4) key            -> the trait's latest value or removal (EncodeTrait)
//   snapshots   'm' id(8)              -> snapshot meta: varint seq, varint shards,
//                                         zigzag varint created_at (written last: commits it)
//               's' id(8) shard(4)     -> one shard's state (see EncodeShardState)
//   default     "format"               -> format version (4 bytes)
//               "rules"                -> RulesMeta (see EncodeRulesMeta)
// `at` in keys is the signed millisecond time with its sign bit flipped, so that byte order is
// time order; the index keys therefore list records (or runs of them) by (at, seq), the order
// of reports. by_time and by_segment hold one entry per run of consecutive records of a block
// (an import of 10,000 users into one segment is three entries in each, not 10,000); by_user
// holds one entry per record, with the record, so that one user's history reads that index
// alone, except for the records of user_runs: an import of 10,000 new users into a segment is
// three user_runs entries. A user is created by one batch only, and a batch's runs never
// share a user, so runs never overlap in users: the first user_runs key at or after a user is
// the only run that can hold that user.
//
// Thread safety: the functions are pure and reentrant.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/engine.h"

namespace segd::storage {

inline constexpr uint32_t kFormatVersion = 8;
// The oldest version read. Version 7 is version 8 without user_sets (its users' records are
// all in by_user and user_runs). Version 6 is version 7 without added-at times in snapshots (its
// snapshots recover with every added_at unknown); version 5 is version 6 without refresh
// records (op 2: its adds of members count as entries); version 4 is version 5 without events,
// traits and rule segments; versions 2 and 3 are version 4 without continued runs (and 2 also
// without user_runs): read as they are, and marked 8 when opened (docs/oplog_format.md).
inline constexpr uint32_t kOldestReadFormatVersion = 2;

// Most records in one ops block (a write batch of more is split into several blocks).
inline constexpr size_t kMaxBlockRecords = 4096;

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
// The same key in a fixed buffer, for the write path (20 bytes is past std::string's inline
// capacity, and a heap allocation per record showed in profiles).
struct IdTimeSeqKeyBytes {
  char bytes[20];
  absl::string_view view() const { return absl::string_view(bytes, sizeof(bytes)); }
};
IdTimeSeqKeyBytes MakeIdTimeSeqKey(uint32_t id, int64_t at, uint64_t seq);
// The (at, seq) at the end of an index key of `prefix_bytes` + 16 bytes.
void ParseTimeSeq(absl::string_view key, size_t prefix_bytes, int64_t* at, uint64_t* seq);

std::string EncodeRecord(const engine::OpRecord& record);
// DataLoss on malformed bytes; never reads past `bytes`.
absl::StatusOr<engine::OpRecord> DecodeRecord(absl::string_view bytes);

// An ops block: varint count (1 … kMaxBlockRecords), then per record the zigzag varint of
// its `at` minus the previous record's (the first: minus 0), varint user, varint segment, the
// kind byte and zigzag varint expires_at. About 8 bytes a record when times repeat.
// REQUIRES: 1 <= records.size() <= kMaxBlockRecords.
std::string EncodeBlock(absl::Span<const engine::OpRecord> records);
// Replaces *out with the block's records. DataLoss on malformed bytes; never reads past them.
absl::Status DecodeBlock(absl::string_view bytes, std::vector<engine::OpRecord>* out);

// A user_runs entry. The key: the run's last user and its first record's seq. The value:
// varint count (2 … kMaxBlockRecords), then the run's first record (EncodeRecord).
std::string UserRunKey(uint32_t last_user, uint64_t first_seq);
std::string EncodeUserRun(const engine::OpRecord& first, uint32_t count);
// DataLoss on malformed bytes, or a run whose users would pass the last id.
absl::Status DecodeUserRun(absl::string_view bytes, engine::OpRecord* first, uint32_t* count);

// user_sets: the records of one ops block whose users share a set (user >> kUserSetBits) and
// whose `at` is the key's, as one entry instead of one by_user entry each. The key is
// IdTimeSeqKey(set, at, the block's first seq). The value: varint count (1 …
// kMaxBlockRecords), then per record, in block order, varint of its index in the block (the
// first) or of the gap to the previous index minus one (the others), varint user, varint
// segment, the kind byte and zigzag varint expires_at (EncodeRecord without `at`).
inline constexpr uint32_t kUserSetBits = 8;
inline uint32_t UserSetOf(engine::UserId user) { return user >> kUserSetBits; }
// REQUIRES: indices ascending, each < block.size(), and 1 <= indices.size().
std::string EncodeUserSet(absl::Span<const engine::OpRecord> block,
                          absl::Span<const uint32_t> indices);
// Calls fn(index, record) for each record, with record.at = at. DataLoss on malformed bytes,
// an index past a block, or a user outside `set` (after handing out the records before the
// damage); never reads past `bytes`.
absl::Status DecodeUserSet(absl::string_view bytes, uint32_t set, int64_t at,
                           absl::FunctionRef<void(uint32_t index, const engine::OpRecord&)> fn);

// The value of a by_time or by_segment entry: how many records the run holds.
std::string EncodeRunLength(uint32_t records);
absl::StatusOr<uint32_t> DecodeRunLength(absl::string_view bytes);

// A `users` entry: the external ids of the users first, first+1, … (created by one write
// batch), each as varint length + bytes. AppendUserName adds one to a block being built.
void AppendUserName(std::string* block, absl::string_view external_id);
// Replaces *names with the block's ids; DataLoss if malformed, empty or holding an empty id.
absl::Status DecodeUserNames(absl::string_view bytes, std::vector<std::string>* names);

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

// Values (event properties, traits): a tag byte, then 0: a double, 8 bytes little-endian;
// 1: a whole number as a zigzag varint; 2: false; 3: true; 4: a string (varint length, bytes).
//
// An event: zigzag varint at, varint user, type (varint length, bytes), varint count of
// properties, each key (varint length, bytes) and value. `at` comes first: the retention filter
// reads it alone (EventTime).
std::string EncodeEvent(const engine::Event& event);
absl::StatusOr<engine::Event> DecodeEvent(uint64_t seq, absl::string_view bytes);
bool EventTime(absl::string_view bytes, int64_t* at);

// A trait: key user(4) + the trait's key; value zigzag varint at, a byte 1 (set) or 0
// (removed), and the value when set.
std::string TraitKey(uint32_t user, absl::string_view key);
std::string EncodeTrait(const engine::TraitChange& trait);
absl::StatusOr<engine::TraitChange> DecodeTrait(absl::string_view key, absl::string_view bytes);

// Where rule state stands: the number the next event gets, and the time through which every
// rule deadline has been acted on. Varint, zigzag varint.
struct RulesMeta {
  uint64_t next_event_seq = 1;
  int64_t rules_through = 0;
};
std::string EncodeRulesMeta(const RulesMeta& meta);
absl::StatusOr<RulesMeta> DecodeRulesMeta(absl::string_view bytes);

// A segment: name, description (varint length, bytes), zigzag created_at and deleted_at,
// auto_percent's bits as a varint, sticky byte, zigzag ttl_seconds; for a rule segment then
// rule and pending_rule (varint length, bytes) and a rule_ready byte.
std::string EncodeSegment(const engine::SegmentMeta& meta);
absl::StatusOr<engine::SegmentMeta> DecodeSegment(uint32_t id, absl::string_view bytes);

// Entries and exits of a segment within one minute (size series, point_in_time.h). Key: the
// segment (4) and the minute's first millisecond (8, sign bit flipped); value: varint entered,
// varint exited. `default` key "counts" holds varint counts_through: every record before that
// seq is counted in the stored buckets.
inline constexpr int64_t kSegmentCountBucketMs = 60'000;
struct SegmentCount {
  uint64_t entered = 0;
  uint64_t exited = 0;
  friend bool operator==(const SegmentCount&, const SegmentCount&) = default;
};
std::string SegmentCountKey(uint32_t segment, int64_t minute);
std::string EncodeSegmentCount(const SegmentCount& count);
absl::StatusOr<SegmentCount> DecodeSegmentCount(absl::string_view bytes);
// The first millisecond of the minute holding `at`.
int64_t MinuteOf(int64_t at);

// A webhook (POST /v1/webhooks), kept in `default` under WebhookKey(id): url, secret and id
// (varint length, bytes each), varint count of segment names and each name, varint cursor
// (the last change acknowledged), zigzag varint created_at, a byte: 1 once expired.
struct WebhookRecord {
  std::string id;
  std::string url;
  std::string secret;
  std::vector<std::string> segments;  // empty: every segment
  uint64_t cursor = 0;
  int64_t created_at = 0;
  bool expired = false;
  friend bool operator==(const WebhookRecord&, const WebhookRecord&) = default;
};
inline constexpr absl::string_view kWebhookKeyPrefix = "webhook/";
std::string WebhookKey(absl::string_view id);

// Identities, in `default`: "alias/" + the alias's bytes -> the user's id (4 bytes, big
// endian); "merged/" + a merged user's id (4 bytes) -> the id it was merged into (4 bytes).
// Written in the batch of the change they belong to; a removed alias is deleted.
inline constexpr absl::string_view kAliasKeyPrefix = "alias/";
inline constexpr absl::string_view kMergedKeyPrefix = "merged/";
std::string AliasKey(absl::string_view alias);
std::string MergedKey(uint32_t from);
std::string EncodeWebhook(const WebhookRecord& hook);
absl::StatusOr<WebhookRecord> DecodeWebhook(absl::string_view bytes);

}  // namespace segd::storage
