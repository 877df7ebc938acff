// Handlers of /v1/keys: create, list and delete API keys (server/access/key_store.h).

#include "absl/strings/str_cat.h"
#include "server/detail/handlers.h"

namespace segd::server::detail {
namespace {

absl::Status NoKeys() { return HttpError("unavailable", "API keys are not set up in this server"); }

void WriteKey(JsonWriter& json, const access::KeyInfo& k) {
  json.Key("id").String(k.id);
  json.Key("role").String(access::RoleName(k.role));
  json.Key("segments");
  if (k.segments.empty()) {
    json.Null();
  } else {
    json.BeginArray();
    for (const std::string& g : k.segments) json.String(g);
    json.EndArray();
  }
  json.Key("description").String(k.description);
  json.Key("created_at").Time(k.created_at_ms, -1);
  json.Key("created_by").String(k.created_by);
}

}  // namespace

absl::Status CreateKey(const HandlerContext& ctx, Call& call) {
  if (ctx.auth == nullptr) return NoKeys();
  // A key limited to some segments could otherwise mint one that is not.
  if (absl::Status s = ctx.RequireUnscoped("creating a key"); !s.ok()) return s;
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  access::KeySpec spec;
  bool has_role = false;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "role") {
          auto name = ReadString(v, "role");
          if (!name.ok()) return name.status();
          auto role = access::ParseRole(*name);
          if (!role) return engine::BadRequest("'role' must be reader, writer or admin");
          spec.role = *role;
          has_role = true;
        } else if (key == "segments") {
          if (IsNull(v)) return absl::OkStatus();
          return ForEachElement(v, "segments", [&](JsonValue& e) -> absl::Status {
            auto glob = ReadString(e, "segments[]");
            if (!glob.ok()) return glob.status();
            spec.segments.emplace_back(*glob);
            return absl::OkStatus();
          });
        } else if (key == "description") {
          auto text = ReadString(v, "description");
          if (!text.ok()) return text.status();
          spec.description = std::string(*text);
        } else {
          return engine::BadRequest(absl::StrCat("unknown field '", AsAbsl(key),
                                                 "'; a key takes role, segments, description"));
        }
        return absl::OkStatus();
      });
  if (!parsed.ok()) return parsed;
  if (!has_role) return engine::BadRequest("'role' is required: reader, writer or admin");
  auto created = ctx.auth->CreateKey(spec, ctx.CallerName());
  if (!created.ok()) return created.status();
  call.response.status = 201;
  JsonWriter json(&call.response.body);
  json.BeginObject();
  WriteKey(json, created->info);
  json.Key("key").String(created->key);
  json.EndObject();
  return absl::OkStatus();
}

absl::Status ListKeys(const HandlerContext& ctx, Call& call) {
  if (ctx.auth == nullptr) return NoKeys();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("keys").BeginArray();
  for (const access::KeyInfo& k : ctx.auth->keys().List()) {
    json.BeginObject();
    WriteKey(json, k);
    json.Key("last_used_at").Time(k.last_used_minute * 60000, 0);
    json.Key("requests").Uint(k.requests);
    json.EndObject();
  }
  json.EndArray().EndObject();
  return absl::OkStatus();
}

absl::Status DeleteKey(const HandlerContext& ctx, Call& call) {
  if (ctx.auth == nullptr) return NoKeys();
  if (absl::Status s = ctx.RequireUnscoped("deleting a key"); !s.ok()) return s;
  const std::string& id = call.params[0];
  auto removed = ctx.auth->DeleteKey(id, ctx.CallerName());
  if (!removed.ok()) return removed.status();
  if (!*removed) {
    return HttpError("not_found", absl::StrCat("key ", engine::Quote(id), " does not exist"));
  }
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("id").String(id).Key("deleted").Bool(true).EndObject();
  return absl::OkStatus();
}

}  // namespace segd::server::detail
