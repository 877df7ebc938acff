#include "storage/change_tail.h"

#include <algorithm>
#include <bit>
#include <utility>

namespace segd::storage {

ChangeTail::ChangeTail(size_t capacity)
    : mask_(std::bit_ceil(std::max<size_t>(capacity, 2)) - 1), ring_(mask_ + 1) {}

void ChangeTail::Reset(uint64_t next_seq) {
  {
    WriterMutexLock lock(&ring_mu_);
    begin_ = end_ = next_seq;
  }
  MutexLock lock(&wait_mu_);
  published_.store(next_seq, std::memory_order_release);
}

void ChangeTail::Append(uint64_t first_seq, absl::Span<const engine::OpRecord> block) {
  if (block.empty()) return;
  WriterMutexLock lock(&ring_mu_);
  if (first_seq != end_) begin_ = first_seq;  // a gap (cannot happen): start over
  const size_t capacity = mask_ + 1;
  size_t skip = block.size() > capacity ? block.size() - capacity : 0;
  for (size_t i = skip; i < block.size(); ++i) {
    TailRecord& slot = ring_[(first_seq + i) & mask_];
    slot.record = block[i];
    slot.block_start = i == 0;
  }
  end_ = first_seq + block.size();
  if (end_ - begin_ > capacity) begin_ = end_ - capacity;
}

uint64_t ChangeTail::first_held() const {
  ReaderMutexLock lock(&ring_mu_);
  return begin_;
}

bool ChangeTail::Read(uint64_t from, uint64_t to, std::vector<TailRecord>* out) const {
  ReaderMutexLock lock(&ring_mu_);
  if (from < begin_ || to > end_) return false;
  out->reserve(out->size() + (to - from));
  for (uint64_t seq = from; seq < to; ++seq) out->push_back(ring_[seq & mask_]);
  return true;
}

bool ChangeTail::Touches(uint64_t from, uint64_t to,
                         absl::Span<const engine::SegmentId> segments) const {
  if (from >= to) return false;
  if (segments.empty() || from < begin_ || to > end_) return true;
  for (uint64_t seq = from; seq < to; ++seq) {
    const engine::SegmentId s = ring_[seq & mask_].record.segment;
    if (std::binary_search(segments.begin(), segments.end(), s)) return true;
  }
  return false;
}

void ChangeTail::Unindex(uint64_t ticket, const Waiter& waiter) {
  if (waiter.segments.empty()) {
    any_segment_.erase(ticket);
    return;
  }
  for (engine::SegmentId s : waiter.segments) {
    auto it = by_segment_.find(s);
    if (it == by_segment_.end()) continue;
    it->second.erase(ticket);
    if (it->second.empty()) by_segment_.erase(it);
  }
}

void ChangeTail::Publish(uint64_t end_seq) {
  std::vector<WakeFn> fire;
  {
    MutexLock lock(&wait_mu_);
    const uint64_t old = published_.load(std::memory_order_relaxed);
    if (end_seq <= old) return;
    published_.store(end_seq, std::memory_order_release);
    if (waiters_.empty()) return;
    std::vector<uint64_t> tickets(any_segment_.begin(), any_segment_.end());
    if (!by_segment_.empty()) {
      ReaderMutexLock ring_lock(&ring_mu_);
      if (old < begin_ || end_seq > end_) {
        for (const auto& [ticket, waiter] : waiters_) tickets.push_back(ticket);
      } else {
        // The segments the new records touch; a batch usually touches one or two.
        std::vector<engine::SegmentId> touched;
        for (uint64_t seq = old; seq < end_seq; ++seq) {
          const engine::SegmentId s = ring_[seq & mask_].record.segment;
          if (touched.empty() || touched.back() != s) touched.push_back(s);
        }
        std::sort(touched.begin(), touched.end());
        touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
        for (engine::SegmentId s : touched) {
          auto it = by_segment_.find(s);
          if (it != by_segment_.end())
            tickets.insert(tickets.end(), it->second.begin(), it->second.end());
        }
      }
    }
    std::sort(tickets.begin(), tickets.end());
    tickets.erase(std::unique(tickets.begin(), tickets.end()), tickets.end());
    fire.reserve(tickets.size());
    for (uint64_t ticket : tickets) {
      auto it = waiters_.find(ticket);
      if (it == waiters_.end()) continue;
      Unindex(ticket, it->second);
      fire.push_back(std::move(it->second.wake));
      waiters_.erase(it);
    }
  }
  for (WakeFn& wake : fire) std::move(wake)();
}

uint64_t ChangeTail::Wait(uint64_t from, std::vector<engine::SegmentId> segments, WakeFn wake) {
  uint64_t ticket;
  {
    MutexLock lock(&wait_mu_);
    ticket = next_ticket_++;
    const uint64_t published = published_.load(std::memory_order_relaxed);
    bool now;
    {
      ReaderMutexLock ring_lock(&ring_mu_);
      now = Touches(from, published, segments);
    }
    if (!now) {
      Waiter& waiter = waiters_[ticket];
      waiter.segments = std::move(segments);
      waiter.wake = std::move(wake);
      if (waiter.segments.empty()) {
        any_segment_.insert(ticket);
      } else {
        for (engine::SegmentId s : waiter.segments) by_segment_[s].insert(ticket);
      }
      return ticket;
    }
  }
  std::move(wake)();
  return ticket;
}

ChangeTail::Cancelled ChangeTail::Cancel(uint64_t ticket) {
  MutexLock lock(&wait_mu_);
  auto it = waiters_.find(ticket);
  if (it == waiters_.end()) return {true, 0};
  Unindex(ticket, it->second);
  waiters_.erase(it);
  return {false, published_.load(std::memory_order_relaxed)};
}

size_t ChangeTail::waiting() const {
  MutexLock lock(&wait_mu_);
  return waiters_.size();
}

}  // namespace segd::storage
