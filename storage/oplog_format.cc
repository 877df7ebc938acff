#include "storage/oplog_format.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace segd::storage {
namespace {

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Signed values (times may in principle precede 1970) are zigzag-encoded.
void PutSigned(std::string* out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void PutString(std::string* out, absl::string_view s) {
  PutVarint(out, s.size());
  out->append(s.data(), s.size());
}

// Reads from a view, failing (never overrunning) on truncated or overlong input.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return false;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      *v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Varint32(uint32_t* v) {
    uint64_t x;
    if (!Varint(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool Signed(int64_t* v) {
    uint64_t x;
    if (!Varint(&x)) return false;
    *v = static_cast<int64_t>((x >> 1) ^ (~(x & 1) + 1));
    return true;
  }
  bool Byte(uint8_t* b) {
    if (in_.empty()) return false;
    *b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool String(std::string* s) {
    uint64_t n;
    if (!Varint(&n) || n > in_.size()) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Double(double* d) {
    uint64_t bits;
    if (!Varint(&bits)) return false;
    std::memcpy(d, &bits, sizeof bits);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("corrupt ", what, " in the operation log"));
}

}  // namespace

namespace {

// Writes the low `bytes` bytes of v to out[0 .. bytes), most significant first.
void StoreBigEndian(char* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
}

}  // namespace

void PutBigEndian32(std::string* out, uint32_t v) {
  char bytes[4];
  StoreBigEndian(bytes, v, 4);
  out->append(bytes, 4);
}

void PutBigEndian64(std::string* out, uint64_t v) {
  char bytes[8];
  StoreBigEndian(bytes, v, 8);
  out->append(bytes, 8);
}

uint32_t GetBigEndian32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t GetBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string SeqKey(uint64_t seq) {
  std::string key;
  PutBigEndian64(&key, seq);
  return key;
}

std::string TimeSeqKey(int64_t at, uint64_t seq) {
  std::string key;
  PutBigEndian64(&key, static_cast<uint64_t>(at) ^ (uint64_t{1} << 63));
  PutBigEndian64(&key, seq);
  return key;
}

IdTimeSeqKeyBytes MakeIdTimeSeqKey(uint32_t id, int64_t at, uint64_t seq) {
  IdTimeSeqKeyBytes key;
  StoreBigEndian(key.bytes, id, 4);
  StoreBigEndian(key.bytes + 4, static_cast<uint64_t>(at) ^ (uint64_t{1} << 63), 8);
  StoreBigEndian(key.bytes + 12, seq, 8);
  return key;
}

std::string IdTimeSeqKey(uint32_t id, int64_t at, uint64_t seq) {
  return std::string(MakeIdTimeSeqKey(id, at, seq).view());
}

void ParseTimeSeq(absl::string_view key, size_t prefix_bytes, int64_t* at, uint64_t* seq) {
  *at = static_cast<int64_t>(GetBigEndian64(key.data() + prefix_bytes) ^ (uint64_t{1} << 63));
  *seq = GetBigEndian64(key.data() + prefix_bytes + 8);
}

std::string IdKey(uint32_t id) {
  std::string key;
  PutBigEndian32(&key, id);
  return key;
}

namespace {

// A record's fields after `at`: varint user, varint segment, kind byte, zigzag expires_at.
void PutRecordTail(std::string* out, const engine::OpRecord& r) {
  PutVarint(out, r.user);
  PutVarint(out, r.segment);
  out->push_back(
      static_cast<char>((static_cast<uint8_t>(r.op) << 4) | static_cast<uint8_t>(r.reason)));
  PutSigned(out, r.expires_at);
}

bool ReadRecordTail(Reader& in, engine::OpRecord* r) {
  uint8_t kind;
  if (!in.Varint32(&r->user) || !in.Varint32(&r->segment) || !in.Byte(&kind) ||
      !in.Signed(&r->expires_at)) {
    return false;
  }
  uint8_t op = kind >> 4, reason = kind & 0x0F;
  if (op > 1 || reason > static_cast<uint8_t>(engine::OpReason::kUserDeleted)) return false;
  r->op = static_cast<engine::OpKind>(op);
  r->reason = static_cast<engine::OpReason>(reason);
  return true;
}

}  // namespace

std::string EncodeRecord(const engine::OpRecord& r) {
  std::string out;
  PutSigned(&out, r.at);
  PutRecordTail(&out, r);
  return out;
}

absl::StatusOr<engine::OpRecord> DecodeRecord(absl::string_view bytes) {
  Reader in(bytes);
  engine::OpRecord r;
  if (!in.Signed(&r.at) || !ReadRecordTail(in, &r) || !in.done()) {
    return Corrupt("operation record");
  }
  return r;
}

std::string EncodeBlock(absl::Span<const engine::OpRecord> records) {
  std::string out;
  out.reserve(1 + records.size() * 12);
  PutVarint(&out, records.size());
  int64_t previous_at = 0;
  for (const engine::OpRecord& r : records) {
    // Wrapping subtraction: the difference of any two times round-trips through zigzag.
    PutSigned(&out, static_cast<int64_t>(static_cast<uint64_t>(r.at) -
                                         static_cast<uint64_t>(previous_at)));
    previous_at = r.at;
    PutRecordTail(&out, r);
  }
  return out;
}

absl::Status DecodeBlock(absl::string_view bytes, std::vector<engine::OpRecord>* out) {
  out->clear();
  Reader in(bytes);
  uint64_t count;
  // Each record takes at least 4 bytes, which bounds the count before anything is allocated.
  if (!in.Varint(&count) || count == 0 || count > kMaxBlockRecords || count > bytes.size() / 4) {
    return Corrupt("record block");
  }
  out->resize(count);
  int64_t at = 0;
  for (engine::OpRecord& r : *out) {
    int64_t delta;
    if (!in.Signed(&delta)) return Corrupt("record block");
    at = static_cast<int64_t>(static_cast<uint64_t>(at) + static_cast<uint64_t>(delta));
    r.at = at;
    if (!ReadRecordTail(in, &r)) return Corrupt("record block");
  }
  if (!in.done()) return Corrupt("record block");
  return absl::OkStatus();
}

std::string UserRunKey(uint32_t last_user, uint64_t first_seq) {
  std::string key;
  key.reserve(12);
  PutBigEndian32(&key, last_user);
  PutBigEndian64(&key, first_seq);
  return key;
}

std::string EncodeUserRun(const engine::OpRecord& first, uint32_t count) {
  std::string out;
  PutVarint(&out, count);
  PutSigned(&out, first.at);
  PutRecordTail(&out, first);
  return out;
}

absl::Status DecodeUserRun(absl::string_view bytes, engine::OpRecord* first, uint32_t* count) {
  Reader in(bytes);
  if (!in.Varint32(count) || *count < 2 || *count > kMaxBlockRecords || !in.Signed(&first->at) ||
      !ReadRecordTail(in, first) || !in.done() ||
      uint64_t{first->user} + *count - 1 > std::numeric_limits<uint32_t>::max()) {
    return Corrupt("user run");
  }
  return absl::OkStatus();
}

std::string EncodeRunLength(uint32_t records) {
  std::string out;
  PutVarint(&out, records);
  return out;
}

absl::StatusOr<uint32_t> DecodeRunLength(absl::string_view bytes) {
  Reader in(bytes);
  uint32_t n;
  if (!in.Varint32(&n) || n == 0 || n > kMaxBlockRecords || !in.done()) {
    return Corrupt("index run");
  }
  return n;
}

std::string EncodeShardState(const engine::MembershipShards::ShardState& state) {
  std::string out;
  PutVarint(&out, state.members.size());
  std::string bytes;
  for (const auto& [segment, bitmap] : state.members) {
    PutVarint(&out, segment);
    bytes.resize(bitmap.getSizeInBytes(true));
    bitmap.write(bytes.data(), true);
    PutString(&out, bytes);
  }
  PutVarint(&out, state.expiries.size());
  for (const auto& [key, expires_at] : state.expiries) {
    PutVarint(&out, key >> 32);
    PutVarint(&out, key & 0xFFFFFFFFu);
    PutSigned(&out, expires_at);
  }
  return out;
}

absl::StatusOr<engine::MembershipShards::ShardState> DecodeShardState(uint32_t index,
                                                                      absl::string_view bytes) {
  Reader in(bytes);
  engine::MembershipShards::ShardState state;
  state.index = index;
  uint64_t n;
  if (!in.Varint(&n) || n > bytes.size()) return Corrupt("snapshot shard");
  std::string blob;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t segment;
    if (!in.Varint32(&segment) || !in.String(&blob)) return Corrupt("snapshot shard");
    roaring_bitmap_t* r = roaring_bitmap_portable_deserialize_safe(blob.data(), blob.size());
    if (r == nullptr) return Corrupt("snapshot bitmap");
    Roaring bitmap(r);
    if (bitmap.getSizeInBytes(true) != blob.size()) return Corrupt("snapshot bitmap size");
    state.members.emplace_back(segment, std::move(bitmap));
  }
  if (!in.Varint(&n) || n > bytes.size()) return Corrupt("snapshot shard");
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t segment, user;
    int64_t expires_at;
    if (!in.Varint32(&segment) || !in.Varint32(&user) || !in.Signed(&expires_at)) {
      return Corrupt("snapshot expiry");
    }
    state.expiries.emplace_back((uint64_t{segment} << 32) | user, expires_at);
  }
  if (!in.done()) return Corrupt("snapshot shard");
  return state;
}

std::string SnapshotMetaKey(uint64_t id) {
  std::string key = "m";
  PutBigEndian64(&key, id);
  return key;
}

std::string SnapshotShardKey(uint64_t id, uint32_t shard) {
  std::string key = "s";
  PutBigEndian64(&key, id);
  PutBigEndian32(&key, shard);
  return key;
}

std::string EncodeSnapshotMeta(const SnapshotMeta& meta) {
  std::string out;
  PutVarint(&out, meta.seq);
  PutVarint(&out, meta.shards);
  PutSigned(&out, meta.created_at);
  return out;
}

absl::StatusOr<SnapshotMeta> DecodeSnapshotMeta(absl::string_view bytes) {
  Reader in(bytes);
  SnapshotMeta meta;
  if (!in.Varint(&meta.seq) || !in.Varint32(&meta.shards) || !in.Signed(&meta.created_at) ||
      !in.done()) {
    return Corrupt("snapshot meta");
  }
  return meta;
}

void AppendUserName(std::string* block, absl::string_view external_id) {
  PutString(block, external_id);
}

absl::Status DecodeUserNames(absl::string_view bytes, std::vector<std::string>* names) {
  names->clear();
  Reader in(bytes);
  while (!in.done()) {
    std::string name;
    if (!in.String(&name) || name.empty()) return Corrupt("user entry");
    names->push_back(std::move(name));
  }
  if (names->empty()) return Corrupt("user entry");
  return absl::OkStatus();
}

std::string EncodeSegment(const engine::SegmentMeta& m) {
  std::string out;
  PutString(&out, m.name);
  PutString(&out, m.description);
  PutSigned(&out, m.created_at);
  PutSigned(&out, m.deleted_at);
  uint64_t percent_bits;
  std::memcpy(&percent_bits, &m.auto_percent, sizeof percent_bits);
  PutVarint(&out, percent_bits);
  out.push_back(m.sticky ? 1 : 0);
  PutSigned(&out, m.ttl_seconds);
  return out;
}

absl::StatusOr<engine::SegmentMeta> DecodeSegment(uint32_t id, absl::string_view bytes) {
  Reader in(bytes);
  engine::SegmentMeta m;
  m.id = id;
  uint8_t sticky;
  if (!in.String(&m.name) || !in.String(&m.description) || !in.Signed(&m.created_at) ||
      !in.Signed(&m.deleted_at) || !in.Double(&m.auto_percent) || !in.Byte(&sticky) || sticky > 1 ||
      !in.Signed(&m.ttl_seconds) || !in.done()) {
    return Corrupt("segment entry");
  }
  m.sticky = sticky == 1;
  return m;
}

}  // namespace segd::storage
