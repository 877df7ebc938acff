#include "storage/segment_counts.h"

namespace segd::storage {

absl::Status SegmentCounts::Count(
    const engine::OpRecord& r, absl::FunctionRef<absl::StatusOr<SegmentCount>(const Key&)> stored) {
  const bool entry = r.op == engine::OpKind::kAdd && !r.refresh;
  const bool exit = r.op == engine::OpKind::kRemove;
  if (!entry && !exit) return absl::OkStatus();
  const Key key{r.segment, MinuteOf(r.at)};
  bool present;
  {
    MutexLock lock(&mu_);
    present = held_.contains(key);
  }
  SegmentCount base;
  if (!present) {  // only the writer inserts: reading the stored value unlocked is safe
    auto s = stored(key);
    if (s.ok()) {
      base = *s;
    } else if (!absl::IsNotFound(s.status())) {
      return s.status();
    }
  }
  MutexLock lock(&mu_);
  auto [it, inserted] = held_.try_emplace(key);
  if (inserted) it->second.count = base;
  (entry ? it->second.count.entered : it->second.count.exited) += 1;
  if (!it->second.dirty) {
    it->second.dirty = true;
    ++dirty_;
  }
  return absl::OkStatus();
}

size_t SegmentCounts::dirty() const {
  MutexLock lock(&mu_);
  return dirty_;
}

std::vector<std::pair<SegmentCounts::Key, SegmentCount>> SegmentCounts::TakeDirty() {
  std::vector<std::pair<Key, SegmentCount>> out;
  MutexLock lock(&mu_);
  out.reserve(dirty_);
  for (auto& [key, entry] : held_) {
    if (!entry.dirty) continue;
    entry.dirty = false;
    out.emplace_back(key, entry.count);
  }
  dirty_ = 0;
  return out;
}

void SegmentCounts::Forget(const std::vector<std::pair<Key, SegmentCount>>& stored) {
  MutexLock lock(&mu_);
  for (const auto& [key, count] : stored) {
    auto it = held_.find(key);
    if (it != held_.end() && !it->second.dirty) held_.erase(it);
  }
}

void SegmentCounts::Held(engine::SegmentId segment, int64_t from, int64_t to,
                         std::map<int64_t, SegmentCount>* out) const {
  MutexLock lock(&mu_);
  for (const auto& [key, entry] : held_) {
    if (key.first == segment && key.second >= from && key.second < to) {
      (*out)[key.second] = entry.count;
    }
  }
}

}  // namespace segd::storage
