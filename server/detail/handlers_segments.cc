// Handlers of /v1/segments… and /v1/query.

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/expression.h"
#include "server/detail/handlers.h"

namespace segd::server::detail {
namespace {

// Reads an integer query parameter within [min, max].
absl::StatusOr<std::optional<int64_t>> IntParam(const QueryParams& query, absl::string_view name,
                                                int64_t min, int64_t max) {
  auto text = query.Get(name);
  if (!text) return std::optional<int64_t>();
  int64_t n;
  if (text->empty() || (*text)[0] == '+' || !absl::SimpleAtoi(*text, &n) || n < min || n > max) {
    return engine::BadRequest(
        absl::StrCat("query parameter '", name, "' must be a whole number in ", min, "-", max));
  }
  return std::optional<int64_t>(n);
}

void SegmentBody(const engine::SegmentInfo& info, Response& response) {
  JsonWriter json(&response.body);
  WriteSegment(json, info);
}

}  // namespace

absl::Status CreateSegment(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  engine::SegmentSpec spec;
  bool has_name = false;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "name") {
          auto name = ReadString(v, key);
          if (!name.ok()) return name.status();
          spec.name = std::string(*name);
          has_name = true;
        } else if (key == "description") {
          if (IsNull(v)) return absl::OkStatus();
          auto d = ReadString(v, key);
          if (!d.ok()) return d.status();
          spec.description = std::string(*d);
        } else if (key == "auto_percent") {
          if (IsNull(v)) return absl::OkStatus();
          auto p = ReadNumber(v, key);
          if (!p.ok()) return p.status();
          if (*p != std::floor(*p)) {
            return engine::BadRequest("'auto_percent' must be a whole number from 0 to 100");
          }
          spec.auto_percent = *p;
        } else if (key == "auto_percent_sticky") {
          auto b = ReadBool(v, key);
          if (!b.ok()) return b.status();
          spec.auto_percent_sticky = *b;
        } else if (key == "ttl_seconds") {
          if (IsNull(v)) return absl::OkStatus();
          auto ttl = ReadTtl(v);
          if (!ttl.ok()) return ttl.status();
          spec.ttl_seconds = *ttl;
        } else if (key == "rule") {
          if (IsNull(v)) return absl::OkStatus();
          auto rule = ReadString(v, key);
          if (!rule.ok()) return rule.status();
          spec.rule = std::string(*rule);
        } else {
          return UnknownField(key);
        }
        return absl::OkStatus();
      });
  if (!parsed.ok()) return parsed;
  if (has_name) {
    if (absl::Status s = ctx.RequireSegment(spec.name); !s.ok()) return s;
  }
  if (!has_name) return MissingField("name");
  if (spec.auto_percent_sticky && !spec.auto_percent) {
    return engine::BadRequest("'auto_percent_sticky' needs 'auto_percent'");
  }
  auto info = ctx.engine.CreateSegment(spec);
  if (!info.ok()) return info.status();
  call.response.status = 201;
  SegmentBody(*info, call.response);
  return absl::OkStatus();
}

absl::Status ListSegments(const HandlerContext& ctx, Call& call) {
  bool include_deleted = false;
  if (auto v = call.query.Get("include_deleted")) {
    if (*v == "true" || *v == "1") {
      include_deleted = true;
    } else if (*v != "false" && *v != "0") {
      return engine::BadRequest("query parameter 'include_deleted' must be true or false");
    }
  }
  std::vector<engine::SegmentInfo> segments = ctx.engine.ListSegments(include_deleted);
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("segments").BeginArray();
  for (const engine::SegmentInfo& info : segments) {
    if (ctx.CanSee(info.meta.name)) WriteSegment(json, info);
  }
  json.EndArray().EndObject();
  return absl::OkStatus();
}

absl::Status GetSegment(const HandlerContext& ctx, Call& call) {
  auto info = ctx.engine.GetSegment(call.params[0]);
  if (!info.ok()) return info.status();
  SegmentBody(*info, call.response);
  return absl::OkStatus();
}

absl::Status PatchSegment(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  engine::SegmentPatch patch;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "description") {
          if (IsNull(v)) {
            patch.description = std::string();
            return absl::OkStatus();
          }
          auto d = ReadString(v, key);
          if (!d.ok()) return d.status();
          patch.description = std::string(*d);
        } else if (key == "ttl_seconds") {
          if (IsNull(v)) {
            patch.ttl_seconds = std::optional<int64_t>();
            return absl::OkStatus();
          }
          auto ttl = ReadTtl(v);
          if (!ttl.ok()) return ttl.status();
          patch.ttl_seconds = std::optional<int64_t>(*ttl);
        } else if (key == "auto_percent") {
          auto p = ReadNumber(v, key);
          if (!p.ok()) return p.status();
          if (*p != std::floor(*p) || *p < 0 || *p > 100) {
            return engine::BadRequest("'auto_percent' must be a whole number from 0 to 100");
          }
          patch.auto_percent = *p;
        } else if (key == "rule") {
          auto rule = ReadString(v, key);
          if (!rule.ok()) return rule.status();
          patch.rule = std::string(*rule);
        } else if (key == "name" || key == "auto_percent_sticky") {
          return engine::BadRequest(absl::StrCat("'", AsAbsl(key),
                                                 "' cannot be changed; PATCH takes "
                                                 "'description', 'ttl_seconds', "
                                                 "'auto_percent' (of a sticky rollout) and "
                                                 "'rule' (of a rule segment)"));
        } else {
          return UnknownField(key);
        }
        return absl::OkStatus();
      });
  if (!parsed.ok()) return parsed;
  auto info = ctx.engine.UpdateSegment(call.params[0], patch);
  if (!info.ok()) return info.status();
  SegmentBody(*info, call.response);
  return absl::OkStatus();
}

absl::Status DeleteSegment(const HandlerContext& ctx, Call& call) {
  auto removed = ctx.engine.DeleteSegment(call.params[0]);
  if (!removed.ok()) return removed.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("name").String(call.params[0]).Key("removed_users").Uint(*removed);
  json.EndObject();
  return absl::OkStatus();
}

absl::Status CountSegment(const HandlerContext& ctx, Call& call) {
  auto count = ctx.engine.Count(call.params[0]);
  if (!count.ok()) return count.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("segment").String(call.params[0]).Key("user_count").Uint(*count);
  json.EndObject();
  return absl::OkStatus();
}

absl::Status ListMembers(const HandlerContext& ctx, Call& call) {
  auto limit = IntParam(call.query, "limit", 1, engine::Engine::kMaxPageLimit);
  if (!limit.ok()) return limit.status();
  auto page = ctx.engine.ListMembers(call.params[0], static_cast<uint32_t>(limit->value_or(1000)),
                                     call.query.Get("after"));
  if (!page.ok()) return page.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("users").BeginArray();
  for (const std::string& u : page->users) json.String(u);
  json.EndArray().Key("next");
  if (page->next) {
    json.String(*page->next);
  } else {
    json.Null();
  }
  json.EndObject();
  return absl::OkStatus();
}

absl::Status CheckMember(const HandlerContext& ctx, Call& call) {
  if (call.query.Get("at")) return CheckMemberAt(ctx, call);
  auto m = ctx.engine.Check(call.params[0], call.params[1]);
  if (!m.ok()) return m.status();
  std::string& body = call.response.body;
  if (!m->member) {
    body.assign("{\"member\":false}");
  } else {
    JsonWriter json(&body);
    json.BeginObject()
        .Key("member")
        .Bool(true)
        .Key("expires_at")
        .Time(m->expires_at, engine::kNoExpiry);
    json.EndObject();
  }
  return absl::OkStatus();
}

absl::Status Query(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  std::string expr;
  bool has_expr = false;
  int64_t limit = 0;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "expr") {
          auto e = ReadString(v, key);
          if (!e.ok()) return e.status();
          expr = std::string(*e);
          has_expr = true;
        } else if (key == "limit") {
          auto n = ReadInt(v, key);
          if (!n.ok()) return n.status();
          if (*n < 0 || *n > engine::Engine::kMaxQueryLimit) {
            return engine::BadRequest(
                absl::StrCat("'limit' must be 0-", engine::Engine::kMaxQueryLimit));
          }
          limit = *n;
        } else {
          return UnknownField(key);
        }
        return absl::OkStatus();
      });
  if (!parsed.ok()) return parsed;
  if (!has_expr) return MissingField("expr");
  if (ctx.caller != nullptr && !ctx.caller->Unscoped()) {
    // (A malformed expression is left for the engine to explain.)
    if (auto parsed_expr = engine::ParseExpression(expr); parsed_expr.ok()) {
      for (const std::string& name : engine::SegmentNamesOf(**parsed_expr)) {
        if (absl::Status s = ctx.RequireSegment(name); !s.ok()) return s;
      }
    }
  }
  auto result = ctx.engine.Query(expr, static_cast<uint32_t>(limit));
  if (!result.ok()) return result.status();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("user_count").Uint(result->user_count).Key("users").BeginArray();
  for (const std::string& u : result->users) json.String(u);
  json.EndArray().EndObject();
  return absl::OkStatus();
}

}  // namespace segd::server::detail
