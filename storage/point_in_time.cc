#include "storage/point_in_time.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/time_text.h"
#include "engine/errors.h"
#include "storage/history_scan.h"

namespace segd::storage {
namespace {

absl::Status CheckRetained(const OpLog& log, engine::TimeMs at) {
  const engine::TimeMs cutoff = log.RetentionCutoff();
  if (at >= cutoff) return absl::OkStatus();
  std::string text;
  AppendRfc3339Millis(&text, at);
  absl::StrAppend(&text, " is older than the retained history, which starts at ");
  AppendRfc3339Millis(&text, cutoff);
  return engine::BeforeRetention(text);
}

bool Entry(const engine::OpRecord& r) { return r.op == engine::OpKind::kAdd && !r.refresh; }

}  // namespace

absl::StatusOr<bool> MemberAt(const OpLog& log, engine::UserId user, engine::SegmentId segment,
                              engine::TimeMs at, CurrentMembership now) {
  if (absl::Status s = CheckRetained(log, at); !s.ok()) return s;
  HistoryFilter filter;
  filter.from = log.RetentionCutoff();
  filter.users = {user};
  filter.segments = {segment};
  std::optional<engine::OpRecord> last_before, first_after;
  absl::Status s = log.ScanHistory(filter, [&](uint64_t, const engine::OpRecord& r) {
    if (r.at <= at) {
      last_before = r;
      return true;
    }
    first_after = r;
    return false;
  });
  if (!s.ok()) return s;
  if (last_before) {
    return last_before->op == engine::OpKind::kAdd &&
           (last_before->expires_at == engine::kNoExpiry || last_before->expires_at > at);
  }
  if (first_after) return !Entry(*first_after);
  return now.member && (now.expires_at == engine::kNoExpiry || now.expires_at > at);
}

absl::StatusOr<std::vector<SizePoint>> SizesOf(const OpLog& log, engine::SegmentId segment,
                                               engine::TimeMs from, engine::TimeMs step,
                                               size_t points, engine::TimeMs now,
                                               uint64_t count_now) {
  if (absl::Status s = CheckRetained(log, from); !s.ok()) return s;
  // Entries and exits per minute, from the minute holding `from` to the one holding now.
  const int64_t first_minute = MinuteOf(from);
  std::vector<std::pair<int64_t, SegmentCount>> minutes;
  if (absl::Status s = log.ForEachSegmentCount(
          segment, first_minute, MinuteOf(now) + kSegmentCountBucketMs,
          [&](int64_t minute, const SegmentCount& c) { minutes.emplace_back(minute, c); });
      !s.ok()) {
    return s;
  }
  SegmentCount total;
  for (const auto& [minute, c] : minutes) {
    total.entered += c.entered;
    total.exited += c.exited;
  }
  // Entries and exits from first_minute up to t (exclusive): whole minutes from the counts;
  // off a minute, t's whole minute less the part of it from t on, read from the log (that
  // part lies within the retention, where the part before t might not). Called with t
  // increasing.
  size_t next = 0;
  SegmentCount whole;
  auto before = [&](engine::TimeMs t) -> absl::StatusOr<SegmentCount> {
    const int64_t minute = MinuteOf(t);
    const int64_t through = t == minute ? minute : minute + kSegmentCountBucketMs;
    while (next < minutes.size() && minutes[next].first < through) {
      whole.entered += minutes[next].second.entered;
      whole.exited += minutes[next].second.exited;
      ++next;
    }
    SegmentCount c = whole;
    if (t == minute) return c;
    HistoryFilter filter;
    filter.from = t;
    filter.to = through;
    filter.segments = {segment};
    absl::Status s = log.ScanHistory(filter, [&](uint64_t, const engine::OpRecord& r) {
      if (Entry(r)) --c.entered;
      if (r.op == engine::OpKind::kRemove) --c.exited;
      return true;
    });
    if (!s.ok()) return s;
    return c;
  };
  std::vector<SizePoint> out(points);
  auto start = before(from);
  if (!start.ok()) return start.status();
  SegmentCount previous = *start;
  for (size_t k = 0; k < points; ++k) {
    SizePoint& p = out[k];
    p.at = from + static_cast<engine::TimeMs>(k + 1) * step;
    auto upto = before(p.at);
    if (!upto.ok()) return upto.status();
    p.entered = upto->entered - previous.entered;
    p.exited = upto->exited - previous.exited;
    // The size now, less what entered since the step's end, plus what left since.
    const int64_t size = static_cast<int64_t>(count_now) -
                         static_cast<int64_t>(total.entered - upto->entered) +
                         static_cast<int64_t>(total.exited - upto->exited);
    p.user_count = static_cast<uint64_t>(std::max<int64_t>(0, size));
    previous = *upto;
  }
  return out;
}

}  // namespace segd::storage
