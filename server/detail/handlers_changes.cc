// Handlers of /v1/changes: the change feed as pages (with long polling) and as Server-Sent
// Events. Both read storage::ReadChanges and wait on the log's ChangeTail without a thread.

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/change_json.h"
#include "server/detail/handlers.h"
#include "server/time_text.h"
#include "storage/change_feed.h"
#include "storage/change_tail.h"

namespace segd::server::detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kDefaultLimit = 1000;
constexpr size_t kMaxLimit = 10000;
constexpr int64_t kMaxWaitSeconds = 60;
// Changes an event stream reads per step.
constexpr size_t kStreamStep = 1000;

// The query both routes share: `after` (or the stream's Last-Event-ID), `segment=` filters.
// Without a cursor, the feed starts now.
absl::StatusOr<storage::ChangeQuery> ReadFeedQuery(const HandlerContext& ctx, const Call& call,
                                                   absl::string_view header_cursor) {
  storage::ChangeQuery query;
  std::optional<absl::string_view> after = call.query.Get("after");
  if (!after && !header_cursor.empty()) after = header_cursor;
  if (after) {
    if (absl::Status s = storage::ParseCursor(*after, &query.after); !s.ok()) return s;
  } else {
    query.after = ctx.log.changes().published() - 1;
  }
  std::vector<std::string> unknown;
  for (absl::string_view name : call.query.All("segment")) {
    if (auto id = ctx.engine.FindSegmentEvenDeleted(name)) {
      query.segments.push_back(*id);
    } else {
      unknown.emplace_back(name);
    }
  }
  if (!unknown.empty()) return engine::SegmentNotFound(std::move(unknown));
  for (absl::string_view name : call.query.All("segment")) {
    if (absl::Status s = ctx.RequireSegment(name); !s.ok()) return s;
  }
  if (query.segments.empty() && ctx.caller != nullptr && !ctx.caller->Unscoped()) {
    // A key limited to some segments reads their changes alone; with none to read, a filter
    // on an id no segment has.
    query.segments = VisibleSegments(ctx);
    if (query.segments.empty())
      query.segments.push_back(std::numeric_limits<engine::SegmentId>::max());
  }
  std::sort(query.segments.begin(), query.segments.end());
  query.segments.erase(std::unique(query.segments.begin(), query.segments.end()),
                       query.segments.end());
  return query;
}

// Waits on the tail for what `query` reads next; on a cancel that proves nothing came, moves
// the query past what was published meanwhile (nothing there is for it).
class FeedWait {
 public:
  explicit FeedWait(storage::ChangeTail& tail) : tail_(tail) {}
  void Arm(const storage::ChangeQuery& query, absl::AnyInvocable<void() &&> wake) {
    ticket_ = tail_.Wait(*query.after + 1, query.segments, std::move(wake));
  }
  void Disarm(storage::ChangeQuery& query) {
    const storage::ChangeTail::Cancelled c = tail_.Cancel(ticket_);
    if (!c.fired && c.quiet_until > 0) query.after = std::max(*query.after, c.quiet_until - 1);
  }

 private:
  storage::ChangeTail& tail_;
  uint64_t ticket_ = 0;
};

// GET /v1/changes: a page, at once or once a change is there (long poll).
class ChangesPoll final : public LiveAnswer {
 public:
  ChangesPoll(const engine::Engine& engine, storage::OpLog& log, storage::ChangeQuery query,
              Clock::time_point deadline)
      : engine_(engine),
        log_(log),
        query_(std::move(query)),
        deadline_(deadline),
        wait_(log.changes()) {}

  Step Produce(Response& response, bool final) override {
    auto page = storage::ReadChanges(log_, query_);
    if (!page.ok()) {
      ErrorResponse(page.status(), response);
      return Step::kDone;
    }
    query_.after = page->next;
    if (page->changes.empty() && !final && Clock::now() < deadline_) return Step::kWait;
    std::string& out = response.body;
    out.reserve(160 * page->changes.size() + 64);
    ChangeJson writer(engine_);
    out.append("{\"changes\":[");
    for (size_t i = 0; i < page->changes.size(); ++i) {
      if (i > 0) out.push_back(',');
      writer.Append(&out, page->changes[i]);
    }
    absl::StrAppend(&out, "],\"next\":\"", storage::FormatCursor(page->next), "\"}");
    return Step::kDone;
  }
  Clock::time_point Arm(absl::AnyInvocable<void() &&> wake) override {
    wait_.Arm(query_, std::move(wake));
    return deadline_;
  }
  void Disarm() override { wait_.Disarm(query_); }

 private:
  const engine::Engine& engine_;
  storage::OpLog& log_;
  storage::ChangeQuery query_;
  const Clock::time_point deadline_;
  FeedWait wait_;
};

// GET /v1/changes/stream: Server-Sent Events, with a bookmark after each quiet interval.
class ChangeStream final : public LiveAnswer {
 public:
  ChangeStream(const engine::Engine& engine, storage::OpLog& log, storage::ChangeQuery query,
               std::chrono::seconds bookmark)
      : log_(log),
        query_(std::move(query)),
        bookmark_(bookmark),
        wait_(log.changes()),
        writer_(engine) {}

  Step Produce(Response& response, bool final) override {
    if (final) return Step::kDone;
    storage::ChangeQuery step = query_;
    step.limit = kStreamStep;
    auto page = storage::ReadChanges(log_, step);
    if (!page.ok()) {
      if (!started_) {  // nothing sent yet: an ordinary error answer
        response.live_streamed = false;
        ErrorResponse(page.status(), response);
      }
      return Step::kDone;  // otherwise the stream ends (the client resumes from its cursor)
    }
    started_ = true;
    query_.after = page->next;
    std::string& out = response.body;
    const Clock::time_point now = Clock::now();
    if (page->changes.empty()) {
      if (sent_any_ && now < last_sent_ + bookmark_) return Step::kWait;
      absl::StrAppend(&out, "id: ", storage::FormatCursor(page->next),
                      "\nevent: bookmark\ndata: {}\n\n");
      sent_any_ = true;
      last_sent_ = now;
      return Step::kWait;
    }
    for (const storage::Change& c : page->changes) {
      absl::StrAppend(&out, "id: ", storage::FormatCursor(c.cursor), "\nevent: change\ndata: ");
      writer_.Append(&out, c);
      out.append("\n\n");
    }
    sent_any_ = true;
    last_sent_ = now;
    return Step::kMore;
  }
  Clock::time_point Arm(absl::AnyInvocable<void() &&> wake) override {
    wait_.Arm(query_, std::move(wake));
    return last_sent_ + bookmark_;
  }
  void Disarm() override { wait_.Disarm(query_); }

 private:
  storage::OpLog& log_;
  storage::ChangeQuery query_;
  const std::chrono::seconds bookmark_;
  FeedWait wait_;
  ChangeJson writer_;
  bool started_ = false;
  bool sent_any_ = false;
  Clock::time_point last_sent_;
};

}  // namespace

absl::Status GetChanges(const HandlerContext& ctx, Call& call) {
  auto query = ReadFeedQuery(ctx, call, {});
  if (!query.ok()) return query.status();
  query->limit = kDefaultLimit;
  if (auto v = call.query.Get("limit")) {
    uint64_t limit = 0;
    if (!absl::SimpleAtoi(*v, &limit) || limit < 1 || limit > kMaxLimit) {
      return engine::BadRequest(absl::StrCat("'limit' must be a whole number from 1 to ", kMaxLimit,
                                             ", got ", engine::Quote(*v)));
    }
    query->limit = limit;
  }
  int64_t wait_seconds = 0;
  if (auto v = call.query.Get("wait")) {
    // ParseDurationSeconds refuses zero, which a wait may be.
    absl::string_view digits = *v;
    if (!digits.empty() &&
        absl::string_view("smhd").find(digits.back()) != absl::string_view::npos) {
      digits.remove_suffix(1);
    }
    const bool zero = !digits.empty() && digits.find_first_not_of('0') == absl::string_view::npos;
    auto seconds = zero ? absl::StatusOr<int64_t>(0) : ParseDurationSeconds(*v);
    if (!seconds.ok() || *seconds < 0 || *seconds > kMaxWaitSeconds) {
      return engine::BadRequest(absl::StrCat("'wait' must be a duration from 0s to ",
                                             kMaxWaitSeconds, "s, got ", engine::Quote(*v)));
    }
    wait_seconds = *seconds;
  }
  call.response.live = std::make_unique<ChangesPoll>(
      ctx.engine, ctx.log, *std::move(query), Clock::now() + std::chrono::seconds(wait_seconds));
  return absl::OkStatus();
}

absl::Status StreamChanges(const HandlerContext& ctx, Call& call) {
  auto query = ReadFeedQuery(ctx, call, call.request.last_event_id);
  if (!query.ok()) return query.status();
  call.response.content_type = "text/event-stream; charset=utf-8";
  call.response.headers.emplace_back("Cache-Control", "no-cache");
  call.response.live_streamed = true;
  call.response.live =
      std::make_unique<ChangeStream>(ctx.engine, ctx.log, *std::move(query),
                                     std::chrono::seconds(ctx.config.feed_bookmark_seconds));
  return absl::OkStatus();
}

}  // namespace segd::server::detail
