#include "storage/oplog_format.h"

#include <cmath>
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
  bool Fixed64(double* d) {
    if (in_.size() < 8) return false;
    std::memcpy(d, in_.data(), 8);
    in_.remove_prefix(8);
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
  // op: 0 add, 1 remove, 2 add that refreshes a membership (an add with `refresh`).
  const uint8_t op = r.op == engine::OpKind::kAdd && r.refresh ? 2 : static_cast<uint8_t>(r.op);
  out->push_back(static_cast<char>((op << 4) | static_cast<uint8_t>(r.reason)));
  PutSigned(out, r.expires_at);
}

bool ReadRecordTail(Reader& in, engine::OpRecord* r) {
  uint8_t kind;
  if (!in.Varint32(&r->user) || !in.Varint32(&r->segment) || !in.Byte(&kind) ||
      !in.Signed(&r->expires_at)) {
    return false;
  }
  uint8_t op = kind >> 4, reason = kind & 0x0F;
  if (op > 2 || reason > static_cast<uint8_t>(engine::OpReason::kMerge)) return false;
  r->refresh = op == 2;
  r->op = op == 2 ? engine::OpKind::kAdd : static_cast<engine::OpKind>(op);
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

std::string EncodeUserSet(absl::Span<const engine::OpRecord> block,
                          absl::Span<const uint32_t> indices) {
  std::string out;
  out.reserve(2 + indices.size() * 8);
  PutVarint(&out, indices.size());
  uint32_t next = 0;  // the smallest index the next record may have
  for (uint32_t index : indices) {
    PutVarint(&out, index - next);
    next = index + 1;
    PutRecordTail(&out, block[index]);
  }
  return out;
}

absl::Status DecodeUserSet(absl::string_view bytes, uint32_t set, int64_t at,
                           absl::FunctionRef<void(uint32_t, const engine::OpRecord&)> fn) {
  Reader in(bytes);
  uint32_t count;
  if (!in.Varint32(&count) || count == 0 || count > kMaxBlockRecords) return Corrupt("user set");
  uint64_t next = 0;
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t gap;
    engine::OpRecord record;
    if (!in.Varint32(&gap) || next + gap >= kMaxBlockRecords || !ReadRecordTail(in, &record) ||
        UserSetOf(record.user) != set) {
      return Corrupt("user set");
    }
    const auto index = static_cast<uint32_t>(next + gap);
    next = uint64_t{index} + 1;
    record.at = at;
    fn(index, record);
  }
  if (!in.done()) return Corrupt("user set");
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
  // Added-at words as runs of equal values: an import or a percentage add gives one run.
  PutVarint(&out, state.added.size());
  for (const std::vector<uint32_t>& words : state.added) {
    int64_t previous = 0;
    for (size_t i = 0, j; i < words.size(); i = j) {
      for (j = i + 1; j < words.size() && words[j] == words[i]; ++j) {
      }
      PutVarint(&out, j - i);
      PutSigned(&out, int64_t{words[i]} - previous);
      previous = words[i];
    }
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
  // Format 6 wrote no added-at section: every added_at of such a snapshot is unknown.
  if (in.done()) return state;
  if (!in.Varint(&n) || (n != 0 && n != state.members.size())) {
    return Corrupt("snapshot added-at times");
  }
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t members = state.members[k].second.cardinality();
    std::vector<uint32_t>& words = state.added.emplace_back();
    words.reserve(members);
    int64_t value = 0;
    while (words.size() < members) {
      uint64_t run;
      int64_t delta;
      if (!in.Varint(&run) || !in.Signed(&delta) || run == 0 || run > members - words.size()) {
        return Corrupt("snapshot added-at times");
      }
      // Both bounds checked before the sum, so that a corrupt delta cannot overflow it.
      constexpr int64_t kMaxWord = std::numeric_limits<uint32_t>::max();
      if (delta < -value || delta > kMaxWord - value) return Corrupt("snapshot added-at times");
      value += delta;
      words.insert(words.end(), run, static_cast<uint32_t>(value));
    }
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

namespace {

// A value: a tag byte, then its payload (docs/oplog_format.md, "Values").
enum ValueTag : uint8_t { kDouble = 0, kInteger = 1, kFalse = 2, kTrue = 3, kString = 4 };

void PutValue(std::string* out, const engine::rules::Value& v) {
  if (const double* d = std::get_if<double>(&v)) {
    // Whole numbers (counts, prices in cents, ids) take a zigzag varint; others 8 bytes.
    if (*d >= -9.0e15 && *d <= 9.0e15 && *d == static_cast<double>(static_cast<int64_t>(*d)) &&
        !(*d == 0 && std::signbit(*d))) {
      out->push_back(static_cast<char>(kInteger));
      PutSigned(out, static_cast<int64_t>(*d));
    } else {
      out->push_back(static_cast<char>(kDouble));
      char bytes[8];
      std::memcpy(bytes, d, 8);
      out->append(bytes, 8);
    }
  } else if (const bool* b = std::get_if<bool>(&v)) {
    out->push_back(static_cast<char>(*b ? kTrue : kFalse));
  } else {
    out->push_back(static_cast<char>(kString));
    PutString(out, std::get<std::string>(v));
  }
}

bool ReadValue(Reader& in, engine::rules::Value* v) {
  uint8_t tag;
  if (!in.Byte(&tag)) return false;
  switch (tag) {
    case kDouble: {
      double d;
      if (!in.Fixed64(&d)) return false;
      *v = d;
      return true;
    }
    case kInteger: {
      int64_t i;
      if (!in.Signed(&i)) return false;
      *v = static_cast<double>(i);
      return true;
    }
    case kFalse:
    case kTrue:
      *v = tag == kTrue;
      return true;
    case kString: {
      std::string str;
      if (!in.String(&str)) return false;
      *v = std::move(str);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string EncodeEvent(const engine::Event& e) {
  std::string out;
  PutSigned(&out, e.at);
  PutVarint(&out, e.user);
  PutString(&out, e.type);
  PutVarint(&out, e.properties.size());
  for (const engine::EventProperty& p : e.properties) {
    PutString(&out, p.key);
    PutValue(&out, p.value);
  }
  return out;
}

absl::StatusOr<engine::Event> DecodeEvent(uint64_t seq, absl::string_view bytes) {
  Reader in(bytes);
  engine::Event e;
  e.seq = seq;
  uint64_t n;
  if (!in.Signed(&e.at) || !in.Varint32(&e.user) || !in.String(&e.type) || !in.Varint(&n) ||
      n > 4096) {
    return Corrupt("event");
  }
  e.properties.resize(n);
  for (engine::EventProperty& p : e.properties) {
    if (!in.String(&p.key) || !ReadValue(in, &p.value)) return Corrupt("event");
  }
  if (!in.done()) return Corrupt("event");
  return e;
}

bool EventTime(absl::string_view bytes, int64_t* at) {
  Reader in(bytes);
  return in.Signed(at);
}

std::string TraitKey(uint32_t user, absl::string_view key) {
  std::string out;
  PutBigEndian32(&out, user);
  out.append(key.data(), key.size());
  return out;
}

std::string EncodeTrait(const engine::TraitChange& t) {
  std::string out;
  PutSigned(&out, t.at);
  out.push_back(t.value ? 1 : 0);
  if (t.value) PutValue(&out, *t.value);
  return out;
}

absl::StatusOr<engine::TraitChange> DecodeTrait(absl::string_view key, absl::string_view bytes) {
  if (key.size() < 5) return Corrupt("trait key");
  engine::TraitChange t;
  t.user = GetBigEndian32(key.data());
  t.key = std::string(key.substr(4));
  Reader in(bytes);
  uint8_t present;
  if (!in.Signed(&t.at) || !in.Byte(&present) || present > 1) return Corrupt("trait");
  if (present == 1) {
    engine::rules::Value v;
    if (!ReadValue(in, &v)) return Corrupt("trait");
    t.value = std::move(v);
  }
  if (!in.done()) return Corrupt("trait");
  return t;
}

std::string EncodeRulesMeta(const RulesMeta& m) {
  std::string out;
  PutVarint(&out, m.next_event_seq);
  PutSigned(&out, m.rules_through);
  return out;
}

absl::StatusOr<RulesMeta> DecodeRulesMeta(absl::string_view bytes) {
  Reader in(bytes);
  RulesMeta m;
  if (!in.Varint(&m.next_event_seq) || !in.Signed(&m.rules_through) || !in.done()) {
    return Corrupt("rules meta");
  }
  return m;
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
  if (m.computed()) {  // a rule segment: its rules follow
    PutString(&out, m.rule);
    PutString(&out, m.pending_rule);
    out.push_back(m.rule_ready ? 1 : 0);
  }
  return out;
}

absl::StatusOr<engine::SegmentMeta> DecodeSegment(uint32_t id, absl::string_view bytes) {
  Reader in(bytes);
  engine::SegmentMeta m;
  m.id = id;
  uint8_t sticky;
  if (!in.String(&m.name) || !in.String(&m.description) || !in.Signed(&m.created_at) ||
      !in.Signed(&m.deleted_at) || !in.Double(&m.auto_percent) || !in.Byte(&sticky) || sticky > 1 ||
      !in.Signed(&m.ttl_seconds)) {
    return Corrupt("segment entry");
  }
  m.sticky = sticky == 1;
  if (!in.done()) {
    uint8_t ready;
    if (!in.String(&m.rule) || !in.String(&m.pending_rule) || !in.Byte(&ready) || ready > 1 ||
        m.rule.empty() || !in.done()) {
      return Corrupt("segment entry");
    }
    m.rule_ready = ready == 1;
  }
  return m;
}

std::string SegmentCountKey(uint32_t segment, int64_t minute) {
  std::string key;
  PutBigEndian32(&key, segment);
  PutBigEndian64(&key, static_cast<uint64_t>(minute) ^ (uint64_t{1} << 63));
  return key;
}

std::string EncodeSegmentCount(const SegmentCount& count) {
  std::string out;
  PutVarint(&out, count.entered);
  PutVarint(&out, count.exited);
  return out;
}

absl::StatusOr<SegmentCount> DecodeSegmentCount(absl::string_view bytes) {
  Reader in(bytes);
  SegmentCount c;
  if (!in.Varint(&c.entered) || !in.Varint(&c.exited) || !in.done()) {
    return Corrupt("segment count");
  }
  return c;
}

int64_t MinuteOf(int64_t at) {
  int64_t m = at / kSegmentCountBucketMs;
  if (at % kSegmentCountBucketMs < 0) --m;  // floor, also before 1970
  return m * kSegmentCountBucketMs;
}

std::string AliasKey(absl::string_view alias) { return absl::StrCat(kAliasKeyPrefix, alias); }

std::string MergedKey(uint32_t from) {
  std::string key(kMergedKeyPrefix);
  PutBigEndian32(&key, from);
  return key;
}

std::string WebhookKey(absl::string_view id) { return absl::StrCat(kWebhookKeyPrefix, id); }

std::string EncodeWebhook(const WebhookRecord& hook) {
  std::string out;
  PutString(&out, hook.url);
  PutString(&out, hook.secret);
  PutString(&out, hook.id);
  PutVarint(&out, hook.segments.size());
  for (const std::string& s : hook.segments) PutString(&out, s);
  PutVarint(&out, hook.cursor);
  PutSigned(&out, hook.created_at);
  out.push_back(hook.expired ? 1 : 0);
  return out;
}

absl::StatusOr<WebhookRecord> DecodeWebhook(absl::string_view bytes) {
  Reader in(bytes);
  WebhookRecord hook;
  uint64_t segments;
  if (!in.String(&hook.url) || !in.String(&hook.secret) || !in.String(&hook.id) ||
      !in.Varint(&segments) || segments > bytes.size()) {
    return Corrupt("webhook entry");
  }
  hook.segments.resize(segments);
  for (std::string& s : hook.segments) {
    if (!in.String(&s)) return Corrupt("webhook entry");
  }
  uint8_t expired;
  if (!in.Varint(&hook.cursor) || !in.Signed(&hook.created_at) || !in.Byte(&expired) ||
      expired > 1 || !in.done()) {
    return Corrupt("webhook entry");
  }
  hook.expired = expired == 1;
  return hook;
}

}  // namespace segd::storage
