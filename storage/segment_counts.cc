#include "storage/segment_counts.h"

namespace segd::storage {

absl::Status SegmentCounts::Count(absl::Span<const engine::OpRecord> records, StoredFn stored) {
  // Neighbouring records mostly share their segment and minute: one Add per run of them.
  Key key{0, 0};
  SegmentCount run;
  for (const engine::OpRecord& r : records) {
    const bool entry = r.op == engine::OpKind::kAdd && !r.refresh;
    const bool exit = r.op == engine::OpKind::kRemove;
    if (!entry && !exit) continue;
    const Key k{r.segment, MinuteOf(r.at)};
    if (k != key && (run.entered | run.exited) != 0) {
      if (absl::Status s = Add(key, run, stored); !s.ok()) return s;
      run = {};
    }
    key = k;
    (entry ? run.entered : run.exited) += 1;
  }
  if ((run.entered | run.exited) != 0) return Add(key, run, stored);
  return absl::OkStatus();
}

absl::Status SegmentCounts::Add(const Key& key, const SegmentCount& delta, StoredFn stored) {
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
  it->second.count.entered += delta.entered;
  it->second.count.exited += delta.exited;
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
