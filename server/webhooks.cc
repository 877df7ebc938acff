#include "server/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/errors.h"
#include "server/detail/change_json.h"
#include "server/log.h"
#include "storage/change_feed.h"
#include "storage/change_tail.h"

namespace segd::server {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

struct Target {
  std::string host;
  std::string port;
  std::string path;
};

absl::StatusOr<Target> ParseUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "http://";
  if (url.size() > Webhooks::kMaxUrlBytes) {
    return engine::BadRequest(
        absl::StrCat("'url' is longer than ", Webhooks::kMaxUrlBytes, " bytes"));
  }
  if (!absl::StartsWith(url, kScheme)) {
    return engine::BadRequest(
        "'url' must start with http:// (segd does not send webhooks over TLS yet)");
  }
  absl::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  Target t;
  t.path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  const size_t colon = authority.rfind(':');
  t.host = std::string(authority.substr(0, colon));
  t.port = colon == absl::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  int port = 0;
  if (t.host.empty() || !absl::SimpleAtoi(t.port, &port) || port < 1 || port > 65535 ||
      t.host.find_first_of(" @\r\n\t") != std::string::npos ||
      t.path.find_first_of(" \r\n\t") != std::string::npos) {
    return engine::BadRequest(
        absl::StrCat("'url' is not a valid http:// URL: ", engine::Quote(url)));
  }
  return t;
}

std::string NewId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16));
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string HmacSha256Hex(absl::string_view secret, absl::string_view text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), len));
}

// One webhook. The record's cursor, `expired`, failures, last_error, failing_since and
// delivered are shared with the API and touched under Webhooks::mu_; the rest belongs to the
// delivery thread.
struct Webhooks::Hook {
  Hook(asio::io_context& ioc, storage::WebhookRecord r, Target t)
      : record(std::move(r)), target(std::move(t)), timer(ioc), resolver(ioc) {}

  storage::WebhookRecord record;
  Target target;
  uint32_t failures = 0;
  std::string last_error;
  int64_t failing_since = 0;  // ms; 0 while deliveries succeed
  uint64_t delivered = 0;

  std::vector<engine::SegmentId> segments;  // resolved from record.segments, sorted
  uint64_t scan_from = 0;  // examined through here (≥ cursor) with nothing to send
  bool deleted = false;
  bool busy = false;  // a batch is being sent, or a retry timer runs
  uint64_t wait_ticket = 0;
  bool waiting = false;
  asio::steady_timer timer;
  asio::ip::tcp::resolver resolver;
  std::unique_ptr<beast::tcp_stream> stream;
  http::request<http::string_body> request;
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  uint64_t batch_next = 0;   // the cursor a 2xx moves to
  size_t batch_changes = 0;  // changes in the batch being sent
};

Webhooks::Webhooks(engine::Engine& engine, storage::OpLog& log, WebhookOptions options)
    : engine_(engine), log_(log), options_(options) {}

Webhooks::~Webhooks() { Stop(); }

absl::Status Webhooks::Start() {
  auto stored = log_.LoadWebhooks();
  if (!stored.ok()) return stored.status();
  for (storage::WebhookRecord& r : *stored) {
    auto target = ParseUrl(r.url);
    if (!target.ok()) continue;  // cannot happen: checked when created
    Add(std::make_shared<Hook>(ioc_, std::move(r), *std::move(target)));
  }
  started_ = true;
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(ioc_);
    ioc_.run();
  });
  return absl::OkStatus();
}

void Webhooks::Stop() {
  if (!started_) return;
  started_ = false;
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
  // The delivery thread is gone: withdraw the waits whose wakes would post to it.
  MutexLock lock(&mu_);
  for (auto& [id, hook] : hooks_) retired_.push_back(hook);
  for (auto& hook : retired_) {
    if (hook->waiting) log_.changes().Cancel(hook->wait_ticket);
    hook->waiting = false;
  }
}

void Webhooks::Add(std::shared_ptr<Hook> hook) {
  for (const std::string& name : hook->record.segments) {
    if (auto id = engine_.FindSegmentEvenDeleted(name)) hook->segments.push_back(*id);
  }
  std::sort(hook->segments.begin(), hook->segments.end());
  hook->scan_from = hook->record.cursor;
  {
    MutexLock lock(&mu_);
    hooks_[hook->record.id] = hook;
  }
  asio::post(ioc_, [this, hook] { Pump(hook); });
}

absl::StatusOr<WebhookStatus> Webhooks::Create(absl::string_view url,
                                               std::vector<std::string> segments,
                                               absl::string_view secret) {
  auto target = ParseUrl(url);
  if (!target.ok()) return target.status();
  if (secret.empty() || secret.size() > kMaxSecretBytes) {
    return engine::BadRequest(
        absl::StrCat("'secret' is required: 1 to ", kMaxSecretBytes, " bytes"));
  }
  std::vector<std::string> unknown;
  for (const std::string& name : segments) {
    if (!engine_.FindSegmentEvenDeleted(name)) unknown.push_back(name);
  }
  if (!unknown.empty()) return engine::SegmentNotFound(std::move(unknown));
  std::sort(segments.begin(), segments.end());
  segments.erase(std::unique(segments.begin(), segments.end()), segments.end());
  storage::WebhookRecord record;
  record.id = NewId();
  record.url = std::string(url);
  record.secret = std::string(secret);
  record.segments = std::move(segments);
  record.cursor = log_.changes().published() - 1;  // from now on
  record.created_at = UnixMillis();
  if (absl::Status s = log_.PutWebhook(record); !s.ok()) return s;
  auto hook = std::make_shared<Hook>(ioc_, record, *std::move(target));
  Add(hook);
  MutexLock lock(&mu_);
  return StatusOf(*hook);
}

absl::StatusOr<bool> Webhooks::Delete(absl::string_view id) {
  std::shared_ptr<Hook> hook;
  {
    MutexLock lock(&mu_);
    auto it = hooks_.find(std::string(id));
    if (it == hooks_.end()) return false;
    hook = it->second;
  }
  if (absl::Status s = log_.DeleteWebhook(id); !s.ok()) return s;
  {
    MutexLock lock(&mu_);
    hooks_.erase(std::string(id));
    retired_.push_back(hook);  // until Stop, which withdraws any wait it still has
  }
  asio::post(ioc_, [this, hook] {
    hook->deleted = true;
    if (hook->waiting) log_.changes().Cancel(hook->wait_ticket);
    hook->waiting = false;
    hook->timer.cancel();
    if (hook->stream) hook->stream->cancel();
  });
  return true;
}

WebhookStatus Webhooks::StatusOf(const Hook& hook) const {
  WebhookStatus s;
  s.id = hook.record.id;
  s.url = hook.record.url;
  s.segments = hook.record.segments;
  s.cursor = hook.record.cursor;
  s.created_at = hook.record.created_at;
  const uint64_t end = log_.changes().published() - 1;
  s.lag = end > hook.record.cursor ? end - hook.record.cursor : 0;
  s.last_error = hook.last_error;
  s.failures = hook.failures;
  s.delivered = hook.delivered;
  if (hook.record.expired) {
    s.state = "expired";
  } else if (hook.failing_since != 0 &&
             UnixMillis() - hook.failing_since >= options_.failing_after.count()) {
    s.state = "failing";
  } else {
    s.state = "active";
  }
  return s;
}

std::vector<WebhookStatus> Webhooks::List() const {
  MutexLock lock(&mu_);
  std::vector<WebhookStatus> out;
  for (const auto& [id, hook] : hooks_) out.push_back(StatusOf(*hook));
  return out;
}

std::optional<WebhookStatus> Webhooks::Get(absl::string_view id) const {
  MutexLock lock(&mu_);
  auto it = hooks_.find(std::string(id));
  if (it == hooks_.end()) return std::nullopt;
  return StatusOf(*it->second);
}

void Webhooks::Pump(const std::shared_ptr<Hook>& hook) {
  if (hook->deleted || hook->busy || hook->waiting) return;
  {
    MutexLock lock(&mu_);
    if (hook->record.expired) return;
  }
  storage::ChangeQuery query{hook->scan_from, hook->segments, kBatchChanges};
  auto page = storage::ReadChanges(log_, query);
  if (!page.ok()) {
    if (engine::ErrorCodeOf(page.status()) == "cursor_expired") {
      MutexLock lock(&mu_);
      hook->record.expired = true;
      hook->last_error = std::string(page.status().message());
      log_.PutWebhook(hook->record).IgnoreError();  // a restart finds it expired again
      Log(LogLevel::kWarn, "webhook %s expired: %s", hook->record.id.c_str(),
          hook->last_error.c_str());
      return;
    }
    Delivered(hook, false, std::string(page.status().message()));
    return;
  }
  if (page->changes.empty()) {
    hook->scan_from = page->next;
    hook->waiting = true;
    std::weak_ptr<Hook> weak = hook;
    hook->wait_ticket = log_.changes().Wait(hook->scan_from + 1, hook->segments, [this, weak] {
      asio::post(ioc_, [this, weak] {
        if (auto h = weak.lock()) {
          h->waiting = false;
          Pump(h);
        }
      });
    });
    return;
  }
  std::string body = "{\"changes\":[";
  detail::ChangeJson json(engine_);
  for (size_t i = 0; i < page->changes.size(); ++i) {
    if (i > 0) body.push_back(',');
    json.Append(&body, page->changes[i]);
  }
  body.append("]}");
  hook->batch_next = page->next;
  hook->batch_changes = page->changes.size();
  const std::string t = absl::StrCat(UnixMillis() / 1000);
  auto& req = hook->request;
  req = {};
  req.method(http::verb::post);
  req.target(hook->target.path);
  req.version(11);
  req.set(http::field::host, hook->target.host + ":" + hook->target.port);
  req.set(http::field::user_agent, "segd-webhook");
  req.set(http::field::content_type, "application/json");
  req.set("Segd-Signature",
          absl::StrCat("t=", t, ",v1=", HmacSha256Hex(hook->record.secret, t + "." + body)));
  req.body() = std::move(body);
  req.prepare_payload();
  Send(hook);
}

void Webhooks::Send(const std::shared_ptr<Hook>& hook) {
  hook->busy = true;
  hook->stream = std::make_unique<beast::tcp_stream>(ioc_);
  hook->stream->expires_after(options_.timeout);
  hook->resolver.async_resolve(
      hook->target.host, hook->target.port,
      [this, hook](beast::error_code ec, asio::ip::tcp::resolver::results_type results) {
        if (ec) return Delivered(hook, false, "resolving the host: " + ec.message());
        hook->stream->async_connect(results, [this, hook](beast::error_code ec, auto) {
          if (ec) return Delivered(hook, false, "connecting: " + ec.message());
          http::async_write(
              *hook->stream, hook->request, [this, hook](beast::error_code ec, size_t) {
                if (ec) return Delivered(hook, false, "sending: " + ec.message());
                hook->response = {};
                hook->buffer.clear();
                http::async_read(*hook->stream, hook->buffer, hook->response,
                                 [this, hook](beast::error_code ec, size_t) {
                                   if (ec) {
                                     return Delivered(hook, false,
                                                      ec == beast::error::timeout
                                                          ? "no answer within the timeout"
                                                          : "reading the answer: " + ec.message());
                                   }
                                   const unsigned status = hook->response.result_int();
                                   if (status >= 200 && status < 300) {
                                     return Delivered(hook, true, {});
                                   }
                                   Delivered(hook, false, absl::StrCat("answered ", status));
                                 });
              });
        });
      });
}

void Webhooks::Delivered(const std::shared_ptr<Hook>& hook, bool ok, std::string error) {
  if (hook->stream) {
    beast::error_code ignored;
    hook->stream->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    hook->stream.reset();
  }
  hook->busy = false;
  if (hook->deleted) return;
  if (ok) {
    {
      MutexLock lock(&mu_);
      hook->record.cursor = hook->batch_next;
      hook->failures = 0;
      hook->last_error.clear();
      hook->failing_since = 0;
    }
    absl::Status s = log_.PutWebhook(hook->record);
    if (!s.ok()) {
      Log(LogLevel::kWarn, "webhook %s: storing its cursor failed: %s", hook->record.id.c_str(),
          std::string(s.message()).c_str());
    }
    {
      MutexLock lock(&mu_);
      hook->delivered += hook->batch_changes;
    }
    hook->scan_from = hook->batch_next;
    Pump(hook);
    return;
  }
  {
    MutexLock lock(&mu_);
    ++hook->failures;
    hook->last_error = std::move(error);
    if (hook->failing_since == 0) hook->failing_since = UnixMillis();
  }
  Retry(hook);
}

void Webhooks::Retry(const std::shared_ptr<Hook>& hook) {
  static constexpr int kLadder[] = {1, 5, 30, 120, 600, 1800};
  uint32_t failures;
  {
    MutexLock lock(&mu_);
    failures = hook->failures;
  }
  const int step = kLadder[std::min<size_t>(failures, std::size(kLadder)) - 1];
  hook->busy = true;
  hook->timer.expires_after(options_.backoff * step);
  hook->timer.async_wait([this, hook](beast::error_code ec) {
    hook->busy = false;
    if (ec || hook->deleted) return;
    // Again from the acknowledged cursor: the same batch, plus what came since.
    {
      MutexLock lock(&mu_);
      hook->scan_from = hook->record.cursor;
    }
    Pump(hook);
  });
}

}  // namespace segd::server
