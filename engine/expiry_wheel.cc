#include "engine/expiry_wheel.h"

#include <algorithm>
#include <bit>

namespace segd::engine {

ExpiryWheel::ExpiryWheel(int64_t now_sec) : now_(now_sec), slots_(kLevels * kSlots) {}

uint64_t ExpiryWheel::pending() const {
  uint64_t total = 0;
  for (uint64_t c : counts_) total += c;
  return total;
}

void ExpiryWheel::Place(int64_t due, int* level, int* slot) const {
  uint64_t diff = static_cast<uint64_t>(due) ^ static_cast<uint64_t>(now_);
  int l = diff == 0 ? 0 : (std::bit_width(diff) - 1) / kSlotBits;
  *level = std::min(l, kLevels - 1);
  *slot = static_cast<int>((static_cast<uint64_t>(due) >> (*level * kSlotBits)) & (kSlots - 1));
}

void ExpiryWheel::Schedule(SegmentId segment, UserId user, int64_t due_sec) {
  int64_t due = std::clamp(due_sec, now_ + 1, kMaxSecond);
  int level, slot;
  Place(due, &level, &slot);
  if (slots_[level * kSlots + slot][segment].addChecked(user)) ++counts_[level];
}

void ExpiryWheel::Cancel(SegmentId segment, UserId user, int64_t due_sec) {
  int64_t due = std::clamp(due_sec, now_ + 1, kMaxSecond);
  int level, slot;
  Place(due, &level, &slot);
  Slot& s = slots_[level * kSlots + slot];
  auto it = s.find(segment);
  if (it == s.end()) return;
  if (it->second.removeChecked(user)) --counts_[level];
  if (it->second.isEmpty()) s.erase(it);
}

void ExpiryWheel::CancelSegment(SegmentId segment) {
  for (int level = 0; level < kLevels; ++level) {
    for (int slot = 0; slot < kSlots; ++slot) {
      Slot& s = slots_[level * kSlots + slot];
      auto it = s.find(segment);
      if (it == s.end()) continue;
      counts_[level] -= it->second.cardinality();
      s.erase(it);
    }
  }
}

void ExpiryWheel::Cascade(int level, DueFn due_of) {
  int slot = static_cast<int>((static_cast<uint64_t>(now_) >> (level * kSlotBits)) & (kSlots - 1));
  Slot moving;
  moving.swap(slots_[level * kSlots + slot]);
  for (auto& [segment, users] : moving) {
    counts_[level] -= users.cardinality();
    for (UserId user : users) {
      int64_t due = std::max(due_of(segment, user), now_);
      int to_level, to_slot;
      Place(due, &to_level, &to_slot);
      if (slots_[to_level * kSlots + to_slot][segment].addChecked(user)) ++counts_[to_level];
    }
  }
}

void ExpiryWheel::AdvanceTo(int64_t to_sec, DueFn due_of, FireFn fire) {
  to_sec = std::min(to_sec, kMaxSecond);
  while (now_ < to_sec) {
    if (pending() == 0) {
      now_ = to_sec;
      return;
    }
    // Skip to the next second at which something can happen: a level-0 slot firing, or a
    // cascade from the lowest non-empty level.
    int lowest = 0;
    while (lowest < kLevels - 1 && counts_[lowest] == 0) ++lowest;
    int64_t next = now_ + 1;
    if (lowest > 0) {
      int64_t step = int64_t{1} << (lowest * kSlotBits);
      next = (now_ / step + 1) * step;
      if (next > to_sec) {
        now_ = to_sec;
        return;
      }
    }
    now_ = next;
    for (int level = kLevels - 1; level >= 1; --level) {
      int64_t span = int64_t{1} << (level * kSlotBits);
      if (now_ % span == 0) Cascade(level, due_of);
    }
    Slot due;
    due.swap(slots_[static_cast<size_t>(now_ & (kSlots - 1))]);
    for (auto& [segment, users] : due) {
      counts_[0] -= users.cardinality();
      fire(now_, segment, std::move(users));
    }
  }
}

size_t ExpiryWheel::MemoryUsage() const {
  size_t bytes = slots_.capacity() * sizeof(Slot);
  for (const Slot& s : slots_) {
    bytes += s.capacity() * (sizeof(std::pair<SegmentId, Roaring>) + 1);
    for (const auto& [segment, users] : s) bytes += users.getSizeInBytes(false);
  }
  return bytes;
}

}  // namespace segd::engine
