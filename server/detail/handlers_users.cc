// Handlers of /v1/users/… and POST /v1/check.

#include <deque>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "server/detail/handlers.h"
#include "server/time_text.h"

namespace segd::server::detail {
namespace {

constexpr size_t kMaxChecks = 10000;

void WriteNames(JsonWriter& json, absl::string_view key, const std::vector<std::string>& names) {
  json.Key(key).BeginArray();
  for (const std::string& n : names) json.String(n);
  json.EndArray();
}

// One element of "add": a segment name, or {"name","ttl_seconds"|"expires_at"}.
absl::Status ReadAdd(JsonValue& v, engine::MembershipAdd* add) {
  if (IsString(v)) {
    auto name = ReadString(v, "add[]");
    if (!name.ok()) return name.status();
    add->segment = std::string(*name);
    return absl::OkStatus();
  }
  if (!IsObject(v)) return engine::BadRequest("'add' elements must be names or objects");
  bool has_name = false;
  absl::Status s =
      ForEachField(v, "add[]", [&](std::string_view key, JsonValue& f) -> absl::Status {
        if (key == "name") {
          auto name = ReadString(f, "add[].name");
          if (!name.ok()) return name.status();
          add->segment = std::string(*name);
          has_name = true;
        } else if (key == "ttl_seconds") {
          if (IsNull(f)) return absl::OkStatus();
          auto ttl = ReadTtl(f);
          if (!ttl.ok()) return ttl.status();
          add->ttl_seconds = *ttl;
        } else if (key == "expires_at") {
          if (IsNull(f)) return absl::OkStatus();
          auto text = ReadString(f, "add[].expires_at");
          if (!text.ok()) return text.status();
          auto at = ParseRfc3339(*text);
          if (!at.ok())
            return engine::BadRequest(absl::StrCat("'expires_at': ", at.status().message()));
          add->expires_at = *at;
        } else {
          return UnknownField(key);
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (!has_name) return MissingField("add[].name");
  return absl::OkStatus();
}

}  // namespace

absl::Status PutUser(const HandlerContext& ctx, Call& call) {
  auto created = ctx.engine.RegisterUser(call.params[0]);
  if (!created.ok()) return created.status();
  call.response.status = *created ? 201 : 200;
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("user_id").String(OwnName(ctx, call.params[0])).EndObject();
  return absl::OkStatus();
}

absl::Status DeleteUser(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = ctx.RequireUnscoped("deleting a user"); !s.ok()) return s;
  const std::string own = OwnName(ctx, call.params[0]);
  auto removed = ctx.engine.DeleteUser(call.params[0]);
  if (!removed.ok()) return removed.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("user_id").String(own);
  WriteNames(json, "removed_from", *removed);
  json.EndObject();
  return absl::OkStatus();
}

void WriteSegmentList(JsonWriter& json, const std::vector<engine::UserSegment>& segments) {
  json.Key("segments").BeginArray();
  for (const engine::UserSegment& m : segments) {
    json.BeginObject().Key("name").String(m.segment);
    // null: recovered from a snapshot without it, and its add is older than the history kept.
    json.Key("added_at").Time(m.added_at, engine::kUnknownTime);
    json.Key("expires_at").Time(m.expires_at, engine::kNoExpiry).EndObject();
  }
  json.EndArray();
}

bool AddedAtUnknown(const std::vector<engine::UserSegment>& segments) {
  return std::any_of(segments.begin(), segments.end(), [](const engine::UserSegment& m) {
    return m.added_at == engine::kUnknownTime;
  });
}

absl::Status FillAddedAtFromHistory(const storage::OpLog& log, const engine::Engine& engine,
                                    engine::UserId user,
                                    std::vector<engine::UserSegment>* segments) {
  absl::flat_hash_map<engine::SegmentId, engine::TimeMs> last_add;
  storage::HistoryFilter filter;
  filter.users.push_back(user);
  absl::Status s = log.ScanHistory(filter, [&](uint64_t, const engine::OpRecord& record) {
    if (record.op == engine::OpKind::kAdd) last_add[record.segment] = record.at;
    return true;
  });
  if (!s.ok()) return s;
  for (engine::UserSegment& m : *segments) {
    if (m.added_at != engine::kUnknownTime) continue;
    auto id = engine.FindSegment(m.segment);
    auto it = id ? last_add.find(*id) : last_add.end();
    // To the second, as the reverse index keeps it.
    if (it != last_add.end()) {
      m.added_at = engine::AddedAtFromWord(engine::AddedAtWord(it->second));
    }
  }
  return absl::OkStatus();
}

namespace {

// The body of GET /v1/users/{id}/segments.
void WriteUserSegments(absl::string_view user_id, const std::vector<engine::UserSegment>& segments,
                       std::string* body) {
  JsonWriter json(body);
  json.BeginObject().Key("user_id").String(user_id);
  WriteSegmentList(json, segments);
  json.EndObject();
}

}  // namespace

absl::Status GetUserSegments(const HandlerContext& ctx, Call& call) {
  const std::string user_id = OwnName(ctx, call.params[0]);
  if (absl::Status s = engine::UserDictionary::Validate(user_id); !s.ok()) return s;
  std::vector<engine::UserSegment> segments = ctx.engine.UserSegments(user_id);
  std::erase_if(segments, [&ctx](const engine::UserSegment& m) { return !ctx.CanSee(m.segment); });
  // added_at is in the reverse index: a memory read, answered here. Only memberships recovered
  // from a format-6 snapshot lack it; for those the user's history is read, which may go to
  // disk, so on a worker and not on an HTTP thread.
  std::optional<engine::UserId> user;
  if (AddedAtUnknown(segments)) user = ctx.engine.FindUser(user_id);
  if (!user) {
    WriteUserSegments(user_id, segments, &call.response.body);
    return absl::OkStatus();
  }
  const storage::OpLog& log = ctx.log;
  const engine::Engine& engine = ctx.engine;
  call.response.blocking = [&log, &engine, id = *user, name = user_id,
                            segments = std::move(segments)](Response& r) mutable {
    if (absl::Status s = FillAddedAtFromHistory(log, engine, id, &segments); !s.ok()) {
      ErrorResponse(s, r);
      return;
    }
    WriteUserSegments(name, segments, &r.body);
  };
  return absl::OkStatus();
}

absl::Status UpdateUserSegments(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  engine::UserUpdate update;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "add") {
          return ForEachElement(v, key, [&](JsonValue& e) {
            update.add.emplace_back();
            return ReadAdd(e, &update.add.back());
          });
        }
        if (key == "remove") {
          return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
            auto name = ReadString(e, "remove[]");
            if (!name.ok()) return name.status();
            update.remove.emplace_back(*name);
            return absl::OkStatus();
          });
        }
        return UnknownField(key);
      });
  if (!parsed.ok()) return parsed;
  for (const engine::MembershipAdd& add : update.add) {
    if (absl::Status s = ctx.RequireSegment(add.segment); !s.ok()) return s;
  }
  for (const std::string& name : update.remove) {
    if (absl::Status s = ctx.RequireSegment(name); !s.ok()) return s;
  }
  auto result = ctx.engine.UpdateUserSegments(call.params[0], update);
  if (!result.ok()) return result.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("user_id").String(OwnName(ctx, call.params[0]));
  WriteNames(json, "added", result->added);
  WriteNames(json, "updated", result->updated);
  WriteNames(json, "removed", result->removed);
  json.EndObject();
  return absl::OkStatus();
}

absl::Status CheckMany(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  std::vector<std::pair<absl::string_view, absl::string_view>> checks;
  std::deque<std::string> numeric_ids;  // user ids sent as integers, as text
  bool has_checks = false;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key != "checks") return UnknownField(key);
        has_checks = true;
        return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
          if (checks.size() == kMaxChecks) {
            return engine::BadRequest(absl::StrCat("at most ", kMaxChecks, " checks per request"));
          }
          absl::string_view user, segment;
          bool has_user = false, has_segment = false;
          absl::Status s =
              ForEachField(e, "checks[]", [&](std::string_view k, JsonValue& f) -> absl::Status {
                if (k == "user_id") {
                  numeric_ids.emplace_back();
                  auto id = ReadUserId(f, &numeric_ids.back(), "checks[].user_id");
                  if (!id.ok()) return id.status();
                  // The same rule as every other route (a check of an id no route accepts is a bug
                  // in the caller, not a "false").
                  if (absl::Status valid = engine::Engine::ValidateUserId(*id); !valid.ok()) {
                    return engine::BadRequest(
                        absl::StrCat("checks[", checks.size(), "].user_id: ", valid.message()));
                  }
                  user = *id;
                  has_user = true;
                } else if (k == "segment") {
                  auto name = ReadString(f, "checks[].segment");
                  if (!name.ok()) return name.status();
                  segment = *name;
                  has_segment = true;
                } else {
                  return UnknownField(k);
                }
                return absl::OkStatus();
              });
          if (!s.ok()) return s;
          if (!has_user) return MissingField("checks[].user_id");
          if (!has_segment) return MissingField("checks[].segment");
          checks.emplace_back(segment, user);
          return absl::OkStatus();
        });
      });
  if (!parsed.ok()) return parsed;
  if (!has_checks) return MissingField("checks");
  if (ctx.caller != nullptr && !ctx.caller->Unscoped()) {
    for (const auto& [segment, user] : checks) {
      if (absl::Status s = ctx.RequireSegment(segment); !s.ok()) return s;
    }
  }
  std::vector<bool> results = ctx.engine.CheckMany(checks);
  std::string& body = call.response.body;
  body.reserve(16 + results.size() * 6);
  body.append("{\"results\":[");
  for (size_t i = 0; i < results.size(); ++i) {
    if (i) body.push_back(',');
    body.append(results[i] ? "true" : "false");
  }
  body.append("]}");
  return absl::OkStatus();
}

}  // namespace segd::server::detail
