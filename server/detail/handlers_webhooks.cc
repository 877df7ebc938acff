// Handlers of /v1/webhooks: create, list, show and delete webhooks (server/webhooks.h).

#include "absl/strings/str_cat.h"
#include "server/detail/handlers.h"
#include "storage/change_feed.h"

namespace segd::server::detail {
namespace {

void WriteWebhook(JsonWriter& json, const WebhookStatus& s) {
  json.BeginObject().Key("id").String(s.id).Key("url").String(s.url);
  json.Key("segments");
  if (s.segments.empty()) {
    json.Null();
  } else {
    json.BeginArray();
    for (const std::string& name : s.segments) json.String(name);
    json.EndArray();
  }
  json.Key("cursor").String(storage::FormatCursor(s.cursor));
  json.Key("state").String(s.state).Key("lag").Uint(s.lag);
  json.Key("last_error");
  if (s.last_error.empty()) {
    json.Null();
  } else {
    json.String(s.last_error);
  }
  json.Key("failures").Uint(s.failures).Key("delivered").Uint(s.delivered);
  json.Key("created_at").Time(s.created_at, -1).EndObject();
}

absl::Status NoWebhooks() {
  return HttpError("unavailable", "webhooks are not running in this server");
}

absl::Status WebhookNotFound(absl::string_view id) {
  return HttpError("not_found", absl::StrCat("webhook ", engine::Quote(id), " does not exist"));
}

}  // namespace

absl::Status CreateWebhook(const HandlerContext& ctx, Call& call) {
  if (ctx.webhooks == nullptr) return NoWebhooks();
  if (absl::Status s = RequireJson(call.request); !s.ok()) return s;
  std::string url, secret;
  bool has_url = false;
  std::vector<std::string> segments;
  absl::Status parsed =
      ParseObjectBody(call.request.body, [&](std::string_view key, JsonValue& v) -> absl::Status {
        if (key == "url" || key == "secret") {
          auto text = ReadString(v, key);
          if (!text.ok()) return text.status();
          (key == "url" ? url : secret) = std::string(*text);
          if (key == "url") has_url = true;
          return absl::OkStatus();
        }
        if (key == "segments") {
          return ForEachElement(v, key, [&](JsonValue& e) -> absl::Status {
            auto name = ReadString(e, "segments[]");
            if (!name.ok()) return name.status();
            segments.emplace_back(*name);
            return absl::OkStatus();
          });
        }
        return UnknownField(key);
      });
  if (!parsed.ok()) return parsed;
  if (!has_url) return engine::BadRequest("'url' is required");
  if (segments.empty()) {
    if (absl::Status s = ctx.RequireUnscoped("a webhook without 'segments'"); !s.ok()) return s;
  }
  for (const std::string& name : segments) {
    if (absl::Status s = ctx.RequireSegment(name); !s.ok()) return s;
  }
  auto created = ctx.webhooks->Create(url, std::move(segments), secret);
  if (!created.ok()) return created.status();
  call.response.status = 201;
  JsonWriter json(&call.response.body);
  WriteWebhook(json, *created);
  return absl::OkStatus();
}

absl::Status ListWebhooks(const HandlerContext& ctx, Call& call) {
  if (ctx.webhooks == nullptr) return NoWebhooks();
  JsonWriter json(&call.response.body);
  json.BeginObject().Key("webhooks").BeginArray();
  for (const WebhookStatus& s : ctx.webhooks->List()) WriteWebhook(json, s);
  json.EndArray().EndObject();
  return absl::OkStatus();
}

absl::Status GetWebhook(const HandlerContext& ctx, Call& call) {
  if (ctx.webhooks == nullptr) return NoWebhooks();
  auto s = ctx.webhooks->Get(call.params[0]);
  if (!s) return WebhookNotFound(call.params[0]);
  JsonWriter json(&call.response.body);
  WriteWebhook(json, *s);
  return absl::OkStatus();
}

absl::Status DeleteWebhook(const HandlerContext& ctx, Call& call) {
  if (ctx.webhooks == nullptr) return NoWebhooks();
  auto deleted = ctx.webhooks->Delete(call.params[0]);
  if (!deleted.ok()) return deleted.status();
  if (!*deleted) return WebhookNotFound(call.params[0]);
  call.response.status = 204;
  return absl::OkStatus();
}

}  // namespace segd::server::detail
