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
  std::vector<SizePoint> out(points);
  for (size_t k = 0; k < points; ++k) out[k].at = from + static_cast<engine::TimeMs>(k + 1) * step;
  // net[k]: entries minus exits in step k; `later`: the same after the last step.
  std::vector<int64_t> net(points, 0);
  int64_t later = 0;
  HistoryFilter filter;
  filter.from = from;
  filter.to = now + 1;
  filter.segments = {segment};
  absl::Status s = log.ScanHistory(filter, [&](uint64_t, const engine::OpRecord& r) {
    const int delta = Entry(r) ? 1 : r.op == engine::OpKind::kRemove ? -1 : 0;
    if (delta == 0) return true;
    const uint64_t k = static_cast<uint64_t>(r.at - from) / static_cast<uint64_t>(step);
    if (k >= points) {
      later += delta;
      return true;
    }
    (delta > 0 ? out[k].entered : out[k].exited) += 1;
    net[k] += delta;
    return true;
  });
  if (!s.ok()) return s;
  int64_t size = static_cast<int64_t>(count_now) - later;
  for (size_t k = points; k-- > 0;) {
    out[k].user_count = static_cast<uint64_t>(std::max<int64_t>(0, size));
    size -= net[k];
  }
  return out;
}

}  // namespace segd::storage
