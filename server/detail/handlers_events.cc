// Handlers of POST /v1/events, GET /v1/users/{id} and PATCH /v1/users/{id}/traits
// (docs/rules.md).
//
// Events in NDJSON (read whole when small, else as a stream of lines: Api::OpenLines) go to
// the engine in batches of kBatchEvents: each batch is one log write,
// and its membership changes are applied before the next is read. The answer lists invalid
// lines (the first kMaxListedInvalid, and how many in all) and counts the events accepted.

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/time_text.h"

namespace segd::server::detail {
namespace {

constexpr size_t kBatchEvents = 10000;
constexpr size_t kMaxListedInvalid = 1000;

// Reads an event's flat object of scalars (properties, traits): no nulls.
absl::Status ReadFlat(JsonValue& v, std::string_view what,
                      std::vector<engine::EventProperty>* out) {
  return ForEachField(v, what, [&](std::string_view key, JsonValue& f) -> absl::Status {
    auto value = ReadScalar(f, key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) {
      return engine::BadRequest(absl::StrCat("'", AsAbsl(what), ".", AsAbsl(key),
                                             "' is null; values are strings, numbers or "
                                             "booleans"));
    }
    out->push_back({std::string(key), **std::move(value)});
    return absl::OkStatus();
  });
}

// Parses one event object. `capacity` bytes from data are readable.
absl::Status ParseEvent(const char* data, size_t len, size_t capacity, engine::EventInput* e) {
  bool has_user = false, has_type = false;
  std::string numeric;
  absl::Status s =
      ParseObject(data, len, capacity, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "user_id") {
          auto id = ReadUserId(v, &numeric, key);
          if (!id.ok()) return id.status();
          e->user_id = std::string(*id);
          has_user = true;
        } else if (key == "type") {
          auto type = ReadString(v, key);
          if (!type.ok()) return type.status();
          e->type = std::string(*type);
          has_type = true;
        } else if (key == "at") {
          if (IsNull(v)) return absl::OkStatus();
          auto text = ReadString(v, key);
          if (!text.ok()) return text.status();
          auto at = ParseRfc3339(*text);
          if (!at.ok()) return engine::BadRequest(absl::StrCat("'at': ", at.status().message()));
          e->at = *at;
        } else if (key == "properties") {
          if (IsNull(v)) return absl::OkStatus();
          return ReadFlat(v, key, &e->properties);
        } else if (key == "traits") {
          if (IsNull(v)) return absl::OkStatus();
          return ReadFlat(v, key, &e->traits);
        } else {
          return UnknownField(key);
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (!has_user) return MissingField("user_id");
  if (!has_type) return MissingField("type");
  return engine::Engine::ValidateEventShape(*e);
}

class EventRun {
 public:
  explicit EventRun(engine::Engine& engine) : engine_(engine) {}

  void Invalid(uint64_t line, absl::string_view error) {
    ++invalid_count_;
    if (invalid_.size() < kMaxListedInvalid) invalid_.push_back({line, std::string(error)});
  }
  absl::Status Add(uint64_t line, engine::EventInput event) {
    events_.push_back(std::move(event));
    lines_.push_back(line);
    if (events_.size() >= kBatchEvents) return Flush();
    return absl::OkStatus();
  }
  absl::Status Flush() {
    if (events_.empty()) return absl::OkStatus();
    auto result = engine_.Ingest(events_);
    if (!result.ok()) return result.status();
    accepted_ += result->accepted;
    for (const auto& [index, status] : result->invalid) Invalid(lines_[index], status.message());
    events_.clear();
    lines_.clear();
    return absl::OkStatus();
  }
  void Write(Response& response) {
    std::sort(invalid_.begin(), invalid_.end());
    JsonWriter json(&response.body);
    json.BeginObject().Key("accepted").Uint(accepted_).Key("invalid_lines").BeginArray();
    for (const auto& [line, error] : invalid_) {
      json.BeginObject().Key("line").Uint(line).Key("error").String(error).EndObject();
    }
    json.EndArray().Key("invalid_count").Uint(invalid_count_).EndObject();
  }

 private:
  engine::Engine& engine_;
  std::vector<engine::EventInput> events_;
  std::vector<uint64_t> lines_;
  std::vector<std::pair<uint64_t, std::string>> invalid_;
  uint64_t invalid_count_ = 0;
  uint64_t accepted_ = 0;
};

// NDJSON events as they arrive.
class EventLines final : public LineConsumer {
 public:
  explicit EventLines(engine::Engine& engine) : run_(engine) {}

  absl::Status Consume(BodyPiece& piece) override {
    for (uint64_t line : piece.overlong_lines) run_.Invalid(line, LineTooLong());
    return ForEachLine(
        piece, [this](uint64_t number, absl::string_view line, size_t readable) -> absl::Status {
          engine::EventInput event;
          absl::Status parsed = ParseEvent(line.data(), line.size(), readable, &event);
          if (!parsed.ok()) {
            run_.Invalid(number, parsed.message());
            return absl::OkStatus();
          }
          return run_.Add(number, std::move(event));
        });
  }

  absl::Status Finish(Response& response) override {
    if (absl::Status s = run_.Flush(); !s.ok()) return s;
    run_.Write(response);
    return absl::OkStatus();
  }

 private:
  EventRun run_;
};

bool IsNdjson(absl::string_view media) {
  return absl::EqualsIgnoreCase(media, "application/x-ndjson") ||
         absl::EqualsIgnoreCase(media, "application/ndjson") ||
         absl::EqualsIgnoreCase(media, "application/jsonl");
}

void WriteProfile(const engine::UserProfile& profile, std::string* body) {
  JsonWriter json(body);
  json.BeginObject().Key("user_id").String(profile.user_id);
  json.Key("aliases").BeginArray();
  for (const std::string& a : profile.aliases) json.String(a);
  json.EndArray();
  json.Key("traits").BeginObject();
  for (const auto& [key, value] : profile.traits) {
    json.Key(key);
    if (const double* d = std::get_if<double>(&value)) {
      json.Double(*d);
    } else if (const bool* b = std::get_if<bool>(&value)) {
      json.Bool(*b);
    } else {
      json.String(std::get<std::string>(value));
    }
  }
  json.EndObject();
  WriteSegmentList(json, profile.segments);
  json.EndObject();
}

// The profile. added_at comes from the reverse index; only where a format-6 snapshot left it
// unknown is the history read, on a worker.
void AnswerProfile(const HandlerContext& ctx, engine::UserProfile profile, Response& response) {
  std::erase_if(profile.segments,
                [&ctx](const engine::UserSegment& m) { return !ctx.CanSee(m.segment); });
  std::optional<engine::UserId> id;
  if (AddedAtUnknown(profile.segments)) id = ctx.engine.FindUser(profile.user_id);
  if (!id) {
    WriteProfile(profile, &response.body);
    return;
  }
  const storage::OpLog& log = ctx.log;
  const engine::Engine& engine = ctx.engine;
  response.blocking = [&log, &engine, id = *id, profile = std::move(profile)](Response& r) mutable {
    if (absl::Status s = FillAddedAtFromHistory(log, engine, id, &profile.segments); !s.ok()) {
      ErrorResponse(s, r);
      return;
    }
    WriteProfile(profile, &r.body);
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<LineConsumer>> OpenEventLines(const HandlerContext& ctx,
                                                             Call& call) {
  const absl::string_view content_type = call.request.content_type;
  const absl::string_view media =
      absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';')));
  if (!IsNdjson(media)) return nullptr;  // one event as JSON: read whole (PostEvents)
  if (absl::Status s = RequireUtf8(content_type); !s.ok()) return s;
  return std::make_unique<EventLines>(ctx.engine);
}

absl::Status PostEvents(const HandlerContext& ctx, Call& call) {
  auto lines = OpenEventLines(ctx, call);
  if (!lines.ok()) return lines.status();
  std::string& body = call.request.body;
  if (*lines != nullptr) {
    BodyPiece piece{std::move(body), 1, {}};
    if (absl::Status s = (*lines)->Consume(piece); !s.ok()) return s;
    return (*lines)->Finish(call.response);
  }
  const absl::string_view content_type = call.request.content_type;
  // One event as JSON: an invalid one is a 400, like any other malformed JSON body.
  if (absl::Status s = RequireJson(call.request); !s.ok()) {
    return HttpError("unsupported_media_type",
                     absl::StrCat("Content-Type '", content_type,
                                  "' is not accepted for events; send application/json (one "
                                  "event) or application/x-ndjson (one event a line)"));
  }
  engine::EventInput event;
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  if (absl::Status s = ParseEvent(body.data(), body.size(), body.capacity(), &event); !s.ok()) {
    return s;
  }
  auto result = ctx.engine.Ingest({&event, 1});
  if (!result.ok()) return result.status();
  if (!result->invalid.empty()) return result->invalid[0].second;
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("accepted").Uint(result->accepted);
  json.Key("invalid_lines").BeginArray().EndArray().Key("invalid_count").Uint(0).EndObject();
  return absl::OkStatus();
}

absl::Status GetUser(const HandlerContext& ctx, Call& call) {
  auto profile = ctx.engine.Profile(call.params[0]);
  if (!profile.ok()) return profile.status();
  AnswerProfile(ctx, *std::move(profile), call.response);
  return absl::OkStatus();
}

absl::Status PatchTraits(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  engine::TraitPatch patch;
  std::string& body = call.request.body;
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  absl::Status parsed = ParseObject(body.data(), body.size(), body.capacity(),
                                    [&](std::string_view key, JsonValue& v) -> absl::Status {
                                      auto value = ReadScalar(v, key);
                                      if (!value.ok()) return value.status();
                                      patch.emplace_back(std::string(key), *std::move(value));
                                      return absl::OkStatus();
                                    });
  if (!parsed.ok()) return parsed;
  auto profile = ctx.engine.PatchTraits(call.params[0], patch);
  if (!profile.ok()) return profile.status();
  AnswerProfile(ctx, *std::move(profile), call.response);
  return absl::OkStatus();
}

}  // namespace segd::server::detail
