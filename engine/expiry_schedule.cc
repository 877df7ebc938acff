#include "engine/expiry_schedule.h"

#include <vector>

namespace segd::engine {

// The wheel starts a second back: an entry due in the current second is near at once.
ExpirySchedule::ExpirySchedule(TimeMs now_ms) : wheel_(now_ms / 1000 - 1) {}

void ExpirySchedule::AddNear(TimeMs expires_at, SegmentId segment, UserId user) {
  if (near_[expires_at][segment].addChecked(user)) ++near_count_;
}

void ExpirySchedule::Schedule(SegmentId segment, UserId user, TimeMs expires_at) {
  const int64_t second = SecondOf(expires_at);
  if (second <= wheel_.now()) {
    AddNear(expires_at, segment, user);
  } else {
    wheel_.Schedule(segment, user, second);
  }
}

void ExpirySchedule::Cancel(SegmentId segment, UserId user, TimeMs expires_at) {
  const int64_t second = SecondOf(expires_at);
  if (second > wheel_.now()) {
    wheel_.Cancel(segment, user, second);
    return;
  }
  auto at = near_.find(expires_at);
  if (at == near_.end()) return;
  auto it = at->second.find(segment);
  if (it == at->second.end()) return;
  if (it->second.removeChecked(user)) --near_count_;
  if (it->second.isEmpty()) at->second.erase(it);
  if (at->second.empty()) near_.erase(at);
}

void ExpirySchedule::CancelSegment(SegmentId segment) {
  wheel_.CancelSegment(segment);
  if (!near_.empty()) stale_segments_.insert(segment);
}

void ExpirySchedule::Collect(TimeMs now_ms, ExpiresAtFn expires_of, DueFn due) {
  // Bring the second that holds now_ms into near_.
  wheel_.AdvanceTo(
      SecondOf(now_ms),
      [&](SegmentId segment, UserId user) { return SecondOf(expires_of(segment, user)); },
      [&](int64_t, SegmentId segment, Roaring users) {
        for (UserId user : users) {
          const TimeMs expires_at = expires_of(segment, user);
          if (expires_at != kNoExpiry) AddNear(expires_at, segment, user);
        }
      });
  std::vector<UserId> stale;
  while (!near_.empty() && near_.begin()->first <= now_ms) {
    auto node = near_.extract(near_.begin());
    const TimeMs expires_at = node.key();
    for (auto& [segment, users] : node.mapped()) {
      near_count_ -= users.cardinality();
      // Entries cancelled with their whole segment are still here: keep only those whose
      // membership still expires at this time. (Every other cancel removed its entry.)
      if (stale_segments_.contains(segment)) {
        stale.clear();
        for (UserId user : users) {
          if (expires_of(segment, user) != expires_at) stale.push_back(user);
        }
        for (UserId user : stale) users.remove(user);
      }
      if (!users.isEmpty()) due(expires_at, segment, users);
    }
  }
  if (near_.empty()) stale_segments_.clear();
}

size_t ExpirySchedule::MemoryUsage() const {
  size_t bytes = wheel_.MemoryUsage();
  for (const auto& [at, segments] : near_) {
    bytes += 64 + segments.capacity() * (sizeof(std::pair<SegmentId, Roaring>) + 1);
    for (const auto& [segment, users] : segments) bytes += users.getSizeInBytes(false);
  }
  return bytes;
}

}  // namespace segd::engine
