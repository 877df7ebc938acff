#include "storage/detail/retention_filter.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "storage/oplog_format.h"

namespace segd::storage::detail {
namespace {

class RetentionFilter final : public rocksdb::CompactionFilter {
 public:
  RetentionFilter(RetainedFamily family, int64_t cutoff, uint64_t protected_seq)
      : family_(family), cutoff_(cutoff), protected_seq_(protected_seq) {}

  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    int64_t at = 0;
    uint64_t seq = 0;
    switch (family_) {
      case RetainedFamily::kOps: {
        // A block goes when all of its records may: each older than the cutoff and before
        // the protected position.
        if (key.size() != 8 || protected_seq_ == 0) return false;
        seq = GetBigEndian64(key.data());
        std::vector<engine::OpRecord> records;
        if (!DecodeBlock(absl::string_view(value.data(), value.size()), &records).ok()) {
          return false;  // never drop what cannot be read
        }
        if (seq + records.size() > protected_seq_) return false;
        at = std::numeric_limits<int64_t>::min();
        for (const engine::OpRecord& r : records) at = std::max(at, r.at);
        break;
      }
      case RetainedFamily::kByTime:
        if (key.size() != 16) return false;
        ParseTimeSeq(absl::string_view(key.data(), key.size()), 0, &at, &seq);
        break;
      case RetainedFamily::kById:
        if (key.size() != 20) return false;
        ParseTimeSeq(absl::string_view(key.data(), key.size()), 4, &at, &seq);
        break;
      case RetainedFamily::kCounts:
        if (key.size() != 12) return false;
        at = static_cast<int64_t>(GetBigEndian64(key.data() + 4) ^ (uint64_t{1} << 63)) +
             kSegmentCountBucketMs - 1;
        break;
      case RetainedFamily::kEvents:
        if (!EventTime(absl::string_view(value.data(), value.size()), &at)) return false;
        break;
      case RetainedFamily::kUserRuns: {
        engine::OpRecord first;
        uint32_t count = 0;
        if (!DecodeUserRun(absl::string_view(value.data(), value.size()), &first, &count).ok()) {
          return false;
        }
        at = first.at;
        break;
      }
    }
    return at < cutoff_;
  }

  const char* Name() const override { return "segd.RetentionFilter"; }

 private:
  RetainedFamily family_;
  int64_t cutoff_;
  uint64_t protected_seq_;
};

}  // namespace

std::unique_ptr<rocksdb::CompactionFilter> RetentionFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context& /*context*/) {
  int64_t retention = family_ == RetainedFamily::kEvents
                          ? state_->event_retention_ms.load(std::memory_order_acquire)
                          : state_->retention_ms.load(std::memory_order_acquire);
  // No retention: a cutoff before every time keeps everything.
  int64_t cutoff =
      retention <= 0 ? std::numeric_limits<int64_t>::min() : state_->clock->NowMs() - retention;
  // Events are not records: the snapshot's position does not protect them.
  return std::make_unique<RetentionFilter>(family_, cutoff,
                                           state_->protected_seq.load(std::memory_order_acquire));
}

}  // namespace segd::storage::detail
