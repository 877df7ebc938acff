// Handlers of point-in-time questions: membership at an instant
// (GET /v1/segments/{name}/users/{user_id}?at=T) and size series
// (GET /v1/segments/{name}/sizes), answered from the history (storage/point_in_time.h).

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/time_text.h"
#include "storage/point_in_time.h"

namespace segd::server::detail {
namespace {

constexpr int64_t kMinStepSeconds = 60;
constexpr int64_t kMaxStepSeconds = 31 * 24 * 3600;
constexpr int64_t kMaxPoints = 10000;

absl::StatusOr<engine::TimeMs> ReadTime(const QueryParams& query, absl::string_view name) {
  auto v = query.Get(name);
  if (!v) return engine::BadRequest(absl::StrCat("'", name, "' is required"));
  auto t = ParseRfc3339(*v);
  if (!t.ok()) return engine::BadRequest(absl::StrCat("'", name, "': ", t.status().message()));
  return *t;
}

// The segment of `name`, active or deleted (its past is still asked about).
absl::StatusOr<engine::SegmentId> FindSegment(const HandlerContext& ctx, absl::string_view name) {
  if (auto id = ctx.engine.FindSegmentEvenDeleted(name)) return *id;
  return engine::SegmentNotFound({std::string(name)});
}

}  // namespace

absl::Status CheckMemberAt(const HandlerContext& ctx, Call& call) {
  auto at = ReadTime(call.query, "at");
  if (!at.ok()) return at.status();
  auto segment = FindSegment(ctx, call.params[0]);
  if (!segment.ok()) return segment.status();
  if (absl::Status s = engine::UserDictionary::Validate(call.params[1]); !s.ok()) return s;
  const engine::TimeMs t = std::min(*at, ctx.engine.ClockNow());
  std::optional<engine::UserId> user = ctx.engine.FindUser(call.params[1]);
  if (!user) {  // never seen: never a member
    JsonWriter json(&call.response.body);
    json.BeginObject().Key("member").Bool(false).Key("at").Time(t, -1).EndObject();
    return absl::OkStatus();
  }
  storage::CurrentMembership now;
  if (auto m = ctx.engine.Check(call.params[0], call.params[1]); m.ok() && m->member) {
    now.member = true;
    now.expires_at = m->expires_at;
  }
  // Inline, on the connection's thread: one user's history is a prefix scan and a seek, a few
  // microseconds from the block cache, where a hand-off to a worker and back cost ~200 µs.
  auto member = storage::MemberAt(ctx.log, *user, *segment, t, now);
  if (!member.ok()) return member.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("member").Bool(*member).Key("at").Time(t, -1).EndObject();
  return absl::OkStatus();
}

absl::Status SegmentSizes(const HandlerContext& ctx, Call& call) {
  auto from = ReadTime(call.query, "from");
  if (!from.ok()) return from.status();
  const engine::TimeMs now = ctx.engine.ClockNow();
  engine::TimeMs to = now;
  if (call.query.Get("to")) {
    auto t = ReadTime(call.query, "to");
    if (!t.ok()) return t.status();
    to = std::min(*t, now);
  }
  auto step_text = call.query.Get("step");
  if (!step_text) return engine::BadRequest("'step' is required (1m to 31d)");
  auto step = ParseDurationSeconds(*step_text);
  if (!step.ok() || *step < kMinStepSeconds || *step > kMaxStepSeconds) {
    return engine::BadRequest(
        absl::StrCat("'step' must be a duration from 1m to 31d, got ", engine::Quote(*step_text)));
  }
  if (*from >= to) return engine::BadRequest("'from' must be before 'to' (and before now)");
  const engine::TimeMs step_ms = *step * 1000;
  const int64_t points = (to - *from) / step_ms;
  if (points > kMaxPoints) {
    return engine::BadRequest(absl::StrCat("that is ", points, " points; at most ", kMaxPoints,
                                           " are answered: use a larger 'step'"));
  }
  auto segment = FindSegment(ctx, call.params[0]);
  if (!segment.ok()) return segment.status();
  auto info = ctx.engine.GetSegment(call.params[0]);
  const uint64_t count_now = info.ok() && !info->meta.deleted() ? info->user_count : 0;
  const storage::OpLog& log = ctx.log;
  call.response.blocking = [&log, name = std::string(call.params[0]), segment = *segment,
                            from = *from, step_ms, points, now, count_now](Response& r) {
    auto sizes =
        storage::SizesOf(log, segment, from, step_ms, static_cast<size_t>(points), now, count_now);
    if (!sizes.ok()) {
      ErrorResponse(sizes.status(), r);
      return;
    }
    JsonWriter json(&r.body);
    json.BeginObject().Key("segment").String(name).Key("points").BeginArray();
    for (const storage::SizePoint& p : *sizes) {
      json.BeginObject().Key("at").Time(p.at, -1).Key("user_count").Uint(p.user_count);
      json.Key("entered").Uint(p.entered).Key("exited").Uint(p.exited).EndObject();
    }
    json.EndArray().EndObject();
  };
  return absl::OkStatus();
}

}  // namespace segd::server::detail
