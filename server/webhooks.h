#pragma once

// Webhooks: segd POSTs the change feed to URLs, in order, in batches of up to 1,000 changes
// (`{"changes":[…]}`), signed with `Segd-Signature: t=UNIX_SECONDS,v1=HEX`, HEX being
// HMAC-SHA256(secret, t + "." + body). A 2xx acknowledges a batch: only then does the webhook's
// cursor move, and it is stored in the log (OpLog::PutWebhook), so delivery resumes where it
// stood after a restart. Anything else, or no answer within the timeout, is retried after
// 1 s, 5 s, 30 s, 2 min, 10 min, then every 30 min (scaled by WebhookOptions::backoff); a
// webhook failing for 3 days shows state "failing" and keeps being retried; one whose cursor
// leaves the retained history stops with state "expired".
//
// Every webhook is a small state machine on one delivery thread (an io_context): read a batch
// from the feed, send it, wait for the answer or a timer, and, with nothing to send, wait on the
// change tail like a long poll. A slow or dead receiver holds its own webhook only: never a
// writer, another webhook or the feed.
//
// Thread safety: Create, Delete, List and Get from any thread; Start and Stop from one thread,
// once each. Status fields shared with the delivery thread are guarded by mu_.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "storage/oplog.h"

namespace segd::server {

struct WebhookOptions {
  std::chrono::milliseconds timeout{10'000};  // for a whole delivery: connect, send, answer
  std::chrono::milliseconds backoff{1'000};   // the first retry; the ladder scales with it
  std::chrono::milliseconds failing_after{72LL * 3600 * 1000};
};

struct WebhookStatus {
  std::string id;
  std::string url;
  std::vector<std::string> segments;
  uint64_t cursor = 0;     // the last change acknowledged (or where it started)
  int64_t created_at = 0;  // ms
  std::string state;       // "active", "failing" or "expired"
  uint64_t lag = 0;        // log records after the cursor: changes not yet acknowledged, at most
  std::string last_error;  // of the last delivery that failed; empty after a success
  uint32_t failures = 0;   // consecutive
  uint64_t delivered = 0;  // changes acknowledged since segd started
};

// HMAC-SHA256(secret, text) in lower-case hex.
std::string HmacSha256Hex(absl::string_view secret, absl::string_view text);

class Webhooks {
 public:
  static constexpr size_t kBatchChanges = 1000;
  static constexpr size_t kMaxUrlBytes = 2048;
  static constexpr size_t kMaxSecretBytes = 256;

  Webhooks(engine::Engine& engine, storage::OpLog& log, WebhookOptions options = {});
  ~Webhooks();
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  // Loads the stored webhooks and starts delivering.
  absl::Status Start();
  // Stops delivering (in-flight deliveries are abandoned; they are sent again on restart).
  void Stop();

  // A webhook for `url` (http://host[:port]/path) from now on. Errors: bad_request (url,
  // secret), segment_not_found, unavailable (the log refuses writes).
  absl::StatusOr<WebhookStatus> Create(absl::string_view url, std::vector<std::string> segments,
                                       absl::string_view secret);
  // Whether it existed. Errors: unavailable.
  absl::StatusOr<bool> Delete(absl::string_view id);
  std::vector<WebhookStatus> List() const;
  std::optional<WebhookStatus> Get(absl::string_view id) const;

 private:
  struct Hook;
  void Add(std::shared_ptr<Hook> hook);
  // Delivery steps, on the delivery thread.
  void Pump(const std::shared_ptr<Hook>& hook);
  void Send(const std::shared_ptr<Hook>& hook);
  void Delivered(const std::shared_ptr<Hook>& hook, bool ok, std::string error);
  void Retry(const std::shared_ptr<Hook>& hook);
  WebhookStatus StatusOf(const Hook& hook) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  engine::Engine& engine_;
  storage::OpLog& log_;
  const WebhookOptions options_;
  boost::asio::io_context ioc_;
  std::thread thread_;
  bool started_ = false;

  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Hook>> hooks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Hook>> retired_ ABSL_GUARDED_BY(mu_);  // deleted ones
};

}  // namespace segd::server
