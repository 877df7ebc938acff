#include "engine/detail/segment_list_pool.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace segd::engine::detail {
namespace {

constexpr uint32_t kExpiryFlag = 1u << 31;

uint32_t EntryWords(uint32_t word) { return (word & kExpiryFlag) ? 4 : 2; }

TimeMs ReadExpiry(const uint32_t* entry) {
  if (!(entry[0] & kExpiryFlag)) return kNoExpiry;
  uint64_t v = uint64_t{entry[2]} | (uint64_t{entry[3]} << 32);
  return static_cast<TimeMs>(v);
}

}  // namespace

uint32_t AddedAtWord(TimeMs at) {
  constexpr int64_t kLastSecond = int64_t{std::numeric_limits<uint32_t>::max()} - 1;
  const int64_t seconds = std::clamp<int64_t>(at < 0 ? 0 : at / 1000, 0, kLastSecond);
  return static_cast<uint32_t>(seconds + 1);
}

TimeMs AddedAtFromWord(uint32_t word) { return word == 0 ? kUnknownTime : TimeMs{word - 1} * 1000; }

uint32_t SegmentListPool::SizeClassFor(uint32_t words, uint32_t* cap) {
  uint32_t c = 2;
  uint32_t cls = 0;
  while (c < words) {
    c += std::max<uint32_t>(1, c / 4);
    ++cls;
  }
  *cap = c;
  return cls;
}

uint32_t SegmentListPool::Allocate(uint32_t words, uint32_t* cap) {
  uint32_t cls = SizeClassFor(words, cap);
  if (cls < free_.size() && !free_[cls].empty()) {
    uint32_t offset = free_[cls].back();
    free_[cls].pop_back();
    free_words_ -= *cap;
    return offset;
  }
  uint32_t offset = static_cast<uint32_t>(words_.size());
  words_.resize(words_.size() + *cap);
  return offset;
}

void SegmentListPool::Release(uint32_t offset, uint32_t cap) {
  uint32_t actual;
  uint32_t cls = SizeClassFor(cap, &actual);
  if (free_.size() <= cls) free_.resize(cls + 1);
  free_[cls].push_back(offset);
  free_words_ += actual;
}

bool SegmentListPool::ShouldRebuild(size_t extra_words) const {
  if (words_.size() >= 4096 && free_words_ * 4 > words_.size()) return true;
  return words_.capacity() - words_.size() < extra_words;
}

SegmentListPool SegmentListPool::Rebuilt(size_t extra_words) const {
  SegmentListPool out;
  out.heads_.resize(heads_.size());
  size_t live = words_.size() - free_words_;
  out.words_.reserve(live + live / 4 + extra_words);
  for (size_t user = 0; user < heads_.size(); ++user) {
    const Head& head = heads_[user];
    if (head.used == 0) continue;
    Head& to = out.heads_[user];
    SizeClassFor(head.used, &to.cap);
    to.offset = static_cast<uint32_t>(out.words_.size());
    to.used = head.used;
    out.words_.resize(out.words_.size() + to.cap);
    std::memcpy(out.words_.data() + to.offset, words_.data() + head.offset,
                head.used * sizeof(uint32_t));
  }
  return out;
}

uint32_t SegmentListPool::Locate(const Head& head, SegmentId segment, bool* found) const {
  const uint32_t* block = words_.data() + head.offset;
  uint32_t i = 0;
  while (i < head.used) {
    SegmentId s = block[i] & ~kExpiryFlag;
    if (s >= segment) {
      *found = s == segment;
      return i;
    }
    i += EntryWords(block[i]);
  }
  *found = false;
  return i;
}

void SegmentListPool::Resize(Head& head, uint32_t new_used) {
  if (new_used <= head.cap) {
    head.used = new_used;
    return;
  }
  uint32_t cap;
  uint32_t offset = Allocate(new_used, &cap);
  if (head.cap != 0) {
    std::memcpy(words_.data() + offset, words_.data() + head.offset, head.used * sizeof(uint32_t));
    Release(head.offset, head.cap);
  }
  head.offset = offset;
  head.cap = cap;
  head.used = new_used;
}

bool SegmentListPool::Find(uint32_t local, SegmentId segment, TimeMs* expires_at,
                           uint32_t* added_word) const {
  if (local >= heads_.size()) return false;
  const Head& head = heads_[local];
  bool found;
  uint32_t i = Locate(head, segment, &found);
  if (found) {
    const uint32_t* entry = words_.data() + head.offset + i;
    if (expires_at) *expires_at = ReadExpiry(entry);
    if (added_word) *added_word = entry[1];
  }
  return found;
}

bool SegmentListPool::Upsert(uint32_t local, SegmentId segment, TimeMs expires_at, TimeMs added_at,
                             TimeMs* previous_expiry) {
  if (local >= heads_.size()) heads_.resize(local + 1);
  Head& head = heads_[local];
  bool found;
  uint32_t i = Locate(head, segment, &found);
  uint32_t old_words = 0;
  if (found) {
    const uint32_t* entry = words_.data() + head.offset + i;
    if (previous_expiry) *previous_expiry = ReadExpiry(entry);
    old_words = EntryWords(entry[0]);
  }
  uint32_t new_words = expires_at == kNoExpiry ? 2 : 4;
  uint32_t old_used = head.used;
  uint32_t tail = old_used - i - old_words;
  Resize(head, old_used - old_words + new_words);  // may move the block
  uint32_t* block = words_.data() + head.offset;
  if (new_words != old_words) {
    std::memmove(block + i + new_words, block + i + old_words, tail * sizeof(uint32_t));
  }
  block[i + 1] = AddedAtWord(added_at);
  if (expires_at == kNoExpiry) {
    block[i] = segment;
  } else {
    uint64_t v = static_cast<uint64_t>(expires_at);
    block[i] = segment | kExpiryFlag;
    block[i + 2] = static_cast<uint32_t>(v);
    block[i + 3] = static_cast<uint32_t>(v >> 32);
  }
  return found;
}

bool SegmentListPool::Remove(uint32_t local, SegmentId segment, TimeMs* previous_expiry) {
  if (local >= heads_.size()) return false;
  Head& head = heads_[local];
  bool found;
  uint32_t i = Locate(head, segment, &found);
  if (!found) return false;
  uint32_t* block = words_.data() + head.offset;
  if (previous_expiry) *previous_expiry = ReadExpiry(block + i);
  uint32_t words = EntryWords(block[i]);
  std::memmove(block + i, block + i + words, (head.used - i - words) * sizeof(uint32_t));
  head.used -= words;
  if (head.used == 0) {
    Release(head.offset, head.cap);
    head = Head{};
  }
  return true;
}

void SegmentListPool::List(uint32_t local, std::vector<ListedMembership>* out) const {
  if (local >= heads_.size()) return;
  const Head& head = heads_[local];
  const uint32_t* block = words_.data() + head.offset;
  for (uint32_t i = 0; i < head.used; i += EntryWords(block[i])) {
    out->push_back({block[i] & ~kExpiryFlag, ReadExpiry(block + i), AddedAtFromWord(block[i + 1])});
  }
}

uint32_t SegmentListPool::CountOf(uint32_t local) const {
  if (local >= heads_.size()) return 0;
  const Head& head = heads_[local];
  const uint32_t* block = words_.data() + head.offset;
  uint32_t n = 0;
  for (uint32_t i = 0; i < head.used; i += EntryWords(block[i])) ++n;
  return n;
}

size_t SegmentListPool::MemoryUsage() const {
  size_t bytes = heads_.capacity() * sizeof(Head) + words_.capacity() * sizeof(uint32_t);
  for (const auto& f : free_) bytes += f.capacity() * sizeof(uint32_t);
  return bytes;
}

}  // namespace segd::engine::detail
