// Handlers of /v1/users/{user_id}/aliases: other ids of a user, and merges (engine.h,
// Engine::AddAliases).

#include "absl/strings/str_cat.h"
#include "server/detail/handlers.h"

namespace segd::server::detail {
namespace {

void WriteAliasResult(const engine::AliasResult& r, std::string* body) {
  JsonWriter json(body);
  json.BeginObject().Key("user_id").String(r.user_id);
  json.Key("aliases").BeginArray();
  for (const std::string& a : r.aliases) json.String(a);
  json.EndArray().Key("merged").BeginArray();
  for (const std::string& m : r.merged) json.String(m);
  json.EndArray().EndObject();
}

}  // namespace

absl::Status AddAliases(const HandlerContext& ctx, Call& call) {
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  std::vector<std::string> aliases;
  std::deque<std::string> numeric;  // ids sent as JSON integers, as text
  bool merge = false, has_aliases = false;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "aliases") {
          has_aliases = true;
          return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
            if (aliases.size() == ctx.config.max_aliases) {
              return engine::BadRequest(
                  absl::StrCat("at most ", aliases.size(), " aliases per request"));
            }
            auto id = ReadUserId(e, &numeric.emplace_back(), "aliases[]");
            if (!id.ok()) return id.status();
            aliases.emplace_back(*id);
            return absl::OkStatus();
          });
        }
        if (key == "merge") {
          auto b = ReadBool(v, key);
          if (!b.ok()) return b.status();
          merge = *b;
          return absl::OkStatus();
        }
        return engine::BadRequest(
            absl::StrCat("unknown field '", AsAbsl(key), "'; this body takes aliases and merge"));
      });
  if (!parsed.ok()) return parsed;
  if (!has_aliases) return engine::BadRequest("'aliases' is required");
  // A merge moves memberships of every segment.
  if (merge) {
    if (absl::Status s = ctx.RequireUnscoped("a merge"); !s.ok()) return s;
  }
  auto result = ctx.engine.AddAliases(call.params[0], aliases, merge);
  if (!result.ok()) return result.status();
  WriteAliasResult(*result, &call.response.body);
  return absl::OkStatus();
}

absl::Status RemoveAlias(const HandlerContext& ctx, Call& call) {
  auto result = ctx.engine.RemoveAlias(call.params[0], call.params[1]);
  if (!result.ok()) return result.status();
  WriteAliasResult(*result, &call.response.body);
  return absl::OkStatus();
}

}  // namespace segd::server::detail
