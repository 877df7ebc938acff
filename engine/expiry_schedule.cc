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

uint64_t ExpirySchedule::Collect(TimeMs now_ms, uint64_t limit, ExpiresAtFn expires_of, DueFn due) {
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
  uint64_t handed = 0;
  std::vector<UserId> stale;
  while (!near_.empty() && near_.begin()->first <= now_ms && handed < limit) {
    const TimeMs expires_at = near_.begin()->first;
    auto& segments = near_.begin()->second;
    while (!segments.empty() && handed < limit) {
      auto it = segments.begin();
      const SegmentId segment = it->first;
      Roaring users;
      if (it->second.cardinality() <= limit - handed) {
        users = std::move(it->second);
        segments.erase(it);
      } else {
        // Part of this bitmap: its first users, up to the limit.
        uint64_t taken = 0;
        for (auto u = it->second.begin(); u != it->second.end() && taken < limit - handed;
             ++u, ++taken) {
          users.add(*u);
        }
        it->second -= users;
      }
      const uint64_t n = users.cardinality();
      near_count_ -= n;
      handed += n;
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
    if (segments.empty()) near_.erase(near_.begin());
  }
  if (near_.empty()) stale_segments_.clear();
  return handed;
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
