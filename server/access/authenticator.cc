#include "server/access/authenticator.h"

#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api.h"
#include "server/log.h"

namespace segd::server::access {
namespace {

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

absl::Status Unauthorized(absl::string_view message) { return HttpError("unauthorized", message); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::atomic<uint64_t> next_instance{1};

}  // namespace

struct Authenticator::ThreadCache {
  uint64_t instance = 0;
  uint64_t generation = 0;
  absl::flat_hash_map<std::string, Cached> entries;
};

Authenticator::Authenticator(KeyStore& keys, std::unique_ptr<JwtVerifier> jwt)
    : keys_(keys), jwt_(std::move(jwt)), instance_(next_instance.fetch_add(1)) {}

Authenticator::ThreadCache& Authenticator::LocalCache() {
  thread_local ThreadCache cache;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (cache.instance != instance_ || cache.generation != generation) {
    cache.entries.clear();
    cache.instance = instance_;
    cache.generation = generation;
  }
  return cache;
}

absl::StatusOr<std::shared_ptr<const Principal>> Authenticator::Authenticate(
    absl::string_view authorization, absl::string_view client) {
  if (authorization.empty()) {
    missing_.fetch_add(1, std::memory_order_relaxed);
    return Unauthorized("this request needs the header Authorization: Bearer KEY");
  }
  const int64_t now = UnixNow();
  // RFC 9110: the scheme is case-insensitive; one or more spaces follow it.
  absl::string_view credential;
  if (authorization.size() > 7 && absl::EqualsIgnoreCase(authorization.substr(0, 7), "bearer ")) {
    credential = absl::StripAsciiWhitespace(authorization.substr(7));
  }
  if (!credential.empty()) {
    ThreadCache& cache = LocalCache();
    auto it = cache.entries.find(credential);
    if (it != cache.entries.end() && (it->second.expires_at == 0 || now <= it->second.expires_at)) {
      it->second.principal->usage->Count(now / 60);
      return it->second.principal;
    }
  }
  if (!credential.empty()) {
    if (auto known = FromShared(credential, now)) {
      known->usage->Count(now / 60);
      return known;
    }
  }
  int64_t retry_after = 0;
  if (!MayTry(client, &retry_after)) {
    limited_.fetch_add(1, std::memory_order_relaxed);
    return HttpError("too_many_requests",
                     absl::StrCat("too many failed authentications from this address; retry in ",
                                  retry_after, " s"));
  }
  if (credential.empty()) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    Failed(client);
    return Unauthorized("the Authorization header must read 'Bearer KEY'");
  }
  auto verified = Verify(credential, now);
  if (!verified.ok()) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    Failed(client);
    Log(LogLevel::kInfo, "authentication failed from %.*s: %s", static_cast<int>(client.size()),
        client.data(), std::string(verified.status().message()).c_str());
    return Unauthorized("the key or token is not valid");
  }
  (*verified)->usage->Count(now / 60);
  return verified;
}

absl::StatusOr<std::shared_ptr<const Principal>> Authenticator::Verify(absl::string_view credential,
                                                                       int64_t now) {
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  Cached entry;
  if (KeyStore::IdOf(credential)) {
    entry.principal = keys_.Verify(credential);
    if (!entry.principal) return absl::UnauthenticatedError("unknown key");
  } else if (jwt_ != nullptr) {
    auto token = jwt_->Verify(credential, now);
    if (!token.ok()) return token.status();
    auto principal = std::make_shared<Principal>(*token->principal);
    principal->usage = jwt_usage_;
    entry.principal = std::move(principal);
    // A token without exp is re-verified every ten minutes.
    entry.expires_at = token->expires_at != 0 ? token->expires_at : now + 600;
  } else {
    return absl::UnauthenticatedError("not a segd key (JWTs are off)");
  }
  std::shared_ptr<const Principal> principal = entry.principal;
  Remember(credential, std::move(entry), generation);
  return ThreadCopy(credential, std::move(principal));
}

std::shared_ptr<const Principal> Authenticator::ThreadCopy(
    absl::string_view credential, std::shared_ptr<const Principal> fallback) {
  ThreadCache& cache = LocalCache();
  auto it = cache.entries.find(credential);
  return it != cache.entries.end() ? it->second.principal : std::move(fallback);
}

void Authenticator::ClearSharedIfStale() {
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (shared_generation_ != generation) {
    shared_.clear();
    shared_generation_ = generation;
  }
}

std::shared_ptr<const Principal> Authenticator::FromShared(absl::string_view credential,
                                                           int64_t now) {
  Cached found;
  uint64_t generation;
  {
    MutexLock lock(&shared_mu_);
    ClearSharedIfStale();
    generation = shared_generation_;
    auto it = shared_.find(credential);
    if (it == shared_.end() || (it->second.expires_at != 0 && now > it->second.expires_at)) {
      return nullptr;
    }
    found = it->second;
  }
  std::shared_ptr<const Principal> principal = found.principal;
  Remember(credential, std::move(found), generation);
  return ThreadCopy(credential, std::move(principal));
}

void Authenticator::Remember(absl::string_view credential, Cached entry, uint64_t generation) {
  {
    MutexLock lock(&shared_mu_);
    ClearSharedIfStale();
    if (shared_generation_ != generation) return;  // a key was deleted meanwhile
    if (shared_.size() >= kMaxCached) shared_.clear();
    shared_[credential] = entry;
  }
  // The thread's own copy: handing out the principal then touches only this thread's
  // reference count.
  entry.principal = std::make_shared<Principal>(*entry.principal);
  ThreadCache& cache = LocalCache();
  if (cache.generation != generation) return;
  if (cache.entries.size() >= kMaxCached) cache.entries.clear();
  cache.entries[credential] = std::move(entry);
}

bool Authenticator::MayTry(absl::string_view client, int64_t* retry_after) {
  MutexLock lock(&limit_mu_);
  auto it = buckets_.find(client);
  if (it == buckets_.end()) return true;
  Bucket& b = it->second;
  const auto now = std::chrono::steady_clock::now();
  const double refill = std::chrono::duration<double>(now - b.updated) /
                        std::chrono::duration<double>(kFailureRefill);
  b.tokens = std::min<double>(kFailureBurst, b.tokens + refill);
  b.updated = now;
  if (b.tokens >= 1) return true;
  *retry_after = 1;
  return false;
}

void Authenticator::Failed(absl::string_view client) {
  MutexLock lock(&limit_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (buckets_.size() >= kMaxTrackedAddresses && !buckets_.contains(client)) {
    // Forget the addresses whose failures have all been refilled; if none, start over.
    absl::erase_if(buckets_, [&](const auto& entry) {
      const double refill = std::chrono::duration<double>(now - entry.second.updated) /
                            std::chrono::duration<double>(kFailureRefill);
      return entry.second.tokens + refill >= kFailureBurst;
    });
    if (buckets_.size() >= kMaxTrackedAddresses) buckets_.clear();
  }
  auto [it, inserted] = buckets_.try_emplace(client);
  Bucket& b = it->second;
  if (inserted) b.updated = now;
  b.tokens = std::max(0.0, b.tokens - 1);
}

absl::StatusOr<CreatedKey> Authenticator::CreateKey(const KeySpec& spec, absl::string_view by) {
  return keys_.Create(spec, by, NowMs());
}

absl::StatusOr<bool> Authenticator::DeleteKey(absl::string_view id, absl::string_view by) {
  auto removed = keys_.Remove(id, by, NowMs());
  // Whatever happened, a key that left the file must not outlive it in a cache: the shared
  // cache drops its entries, and every thread's cache is emptied before its next use (and
  // refills from the shared one, so other keys are not met as new and never limited).
  MutexLock lock(&shared_mu_);
  const uint64_t generation = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  absl::erase_if(shared_, [&](const auto& entry) { return entry.second.principal->id == id; });
  shared_generation_ = generation;
  return removed;
}

void Authenticator::AppendMetrics(std::string* out) const {
  absl::StrAppend(out,
                  "# HELP segd_auth_failures_total Requests refused for their credentials, by "
                  "reason.\n# TYPE segd_auth_failures_total counter\n");
  absl::StrAppend(out, "segd_auth_failures_total{reason=\"missing\"} ", missing_.load(), "\n");
  absl::StrAppend(out, "segd_auth_failures_total{reason=\"invalid\"} ", invalid_.load(), "\n");
  absl::StrAppend(out, "segd_auth_failures_total{reason=\"rate_limited\"} ", limited_.load(), "\n");
  absl::StrAppend(out,
                  "# HELP segd_requests_by_key_total Authenticated requests by key id (JWTs "
                  "count as \"jwt\").\n# TYPE segd_requests_by_key_total counter\n");
  for (const KeyInfo& k : keys_.List()) {
    absl::StrAppend(out, "segd_requests_by_key_total{key=\"", k.id, "\"} ", k.requests, "\n");
  }
  if (jwt_ != nullptr) {
    absl::StrAppend(out, "segd_requests_by_key_total{key=\"jwt\"} ", jwt_usage_->requests(), "\n");
  }
  absl::StrAppend(out,
                  "# HELP segd_key_events_total Keys created and deleted since start (audit "
                  "log: DATA_DIR/audit.log).\n# TYPE segd_key_events_total counter\n");
  absl::StrAppend(out, "segd_key_events_total{action=\"created\"} ", keys_.created_total(), "\n");
  absl::StrAppend(out, "segd_key_events_total{action=\"deleted\"} ", keys_.deleted_total(), "\n");
  absl::StrAppend(out, "# HELP segd_keys Live API keys.\n# TYPE segd_keys gauge\nsegd_keys ",
                  keys_.size(), "\n");
}

}  // namespace segd::server::access
