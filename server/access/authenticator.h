#pragma once

// Authenticator: turns a request's `Authorization: Bearer …` header into a Principal, from an
// API key (KeyStore) or a JWT (JwtVerifier), fast enough to sit on every request.
//
// - Verified credentials are cached by their bytes (a key until it is deleted, a token until
//   its `exp`), so a request with a credential seen before costs one hash lookup: no digest,
//   no signature, no storage access. The cache is per thread, so that threads share no
//   written cache line per request; behind it a shared cache (under a mutex, consulted only
//   when a thread's own misses) holds every credential verified by any thread. A deletion
//   bumps a generation that every cache checks before use.
// - Failures are limited per client address: each address has kFailureBurst failures in
//   hand, refilled at one per kFailureRefill. Once they are spent, credentials from that
//   address that are not already cached get 429 without being checked, so guessing runs at
//   one try per second per address. Cached (known good) credentials are never limited.
// - Deleting a key drops it from every cache: it fails on its next request, and no other key
//   is met as new because of it.
//
// Thread safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"
#include "server/access/jwt_verifier.h"
#include "server/access/key_store.h"
#include "server/access/principal.h"

namespace segd::server::access {

class Authenticator {
 public:
  static constexpr int kFailureBurst = 10;
  static constexpr auto kFailureRefill = std::chrono::seconds(1);
  static constexpr size_t kMaxCached = 100000;
  static constexpr size_t kMaxTrackedAddresses = 65536;

  // `keys` must outlive the authenticator; `jwt` may be null (no JWTs accepted).
  Authenticator(KeyStore& keys, std::unique_ptr<JwtVerifier> jwt);

  // The caller of a request whose Authorization header is `authorization` (empty when absent)
  // from `client` (its address). Errors carry the API code: unauthorized (missing, malformed,
  // unknown, expired) or too_many_requests (this address failed too often; the message says
  // when to retry).
  absl::StatusOr<std::shared_ptr<const Principal>> Authenticate(absl::string_view authorization,
                                                                absl::string_view client);

  // Creates and deletes keys through the store, keeping the cache right.
  absl::StatusOr<CreatedKey> CreateKey(const KeySpec& spec, absl::string_view by);
  absl::StatusOr<bool> DeleteKey(absl::string_view id, absl::string_view by)
      ABSL_LOCKS_EXCLUDED(shared_mu_);
  KeyStore& keys() { return keys_; }

  // Appends segd_auth_* and segd_requests_by_key_total in the Prometheus text format.
  void AppendMetrics(std::string* out) const;

 private:
  struct Cached {
    std::shared_ptr<const Principal> principal;
    int64_t expires_at = 0;  // Unix seconds, 0: until the cache is cleared
  };
  struct ThreadCache;
  // This thread's cache, emptied first if it belongs to another instance or generation.
  ThreadCache& LocalCache();
  // A credential another thread verified (the shared cache), copied into this thread's.
  std::shared_ptr<const Principal> FromShared(absl::string_view credential, int64_t now)
      ABSL_LOCKS_EXCLUDED(shared_mu_);
  // Puts a verified credential in this thread's cache (a copy of its own) and the shared one,
  // unless a key was deleted since `generation` (when it was verified): a deleted key must not
  // enter a cache after the deletion emptied them.
  void Remember(absl::string_view credential, Cached entry, uint64_t generation)
      ABSL_LOCKS_EXCLUDED(shared_mu_);
  struct Bucket {
    double tokens = kFailureBurst;
    std::chrono::steady_clock::time_point updated;
  };
  // Whether `client` may try an uncached credential now; if not, *retry_after is set.
  bool MayTry(absl::string_view client, int64_t* retry_after) ABSL_LOCKS_EXCLUDED(limit_mu_);
  void Failed(absl::string_view client) ABSL_LOCKS_EXCLUDED(limit_mu_);
  absl::StatusOr<std::shared_ptr<const Principal>> Verify(absl::string_view credential,
                                                          int64_t now);
  void ClearSharedIfStale() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_mu_);
  // This thread's copy of the principal cached for `credential`, else `fallback`: callers
  // then touch only their own thread's reference count.
  std::shared_ptr<const Principal> ThreadCopy(absl::string_view credential,
                                              std::shared_ptr<const Principal> fallback);

  KeyStore& keys_;
  std::unique_ptr<JwtVerifier> jwt_;
  std::shared_ptr<KeyUsage> jwt_usage_ = std::make_shared<KeyUsage>();

  // Per-thread caches (authenticator.cc) belong to the instance with this id and hold what
  // was verified in this generation.
  const uint64_t instance_;
  std::atomic<uint64_t> generation_{0};
  Mutex shared_mu_;
  absl::flat_hash_map<std::string, Cached> shared_ ABSL_GUARDED_BY(shared_mu_);
  uint64_t shared_generation_ ABSL_GUARDED_BY(shared_mu_) = 0;

  Mutex limit_mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(limit_mu_);

  std::atomic<uint64_t> missing_{0};
  std::atomic<uint64_t> invalid_{0};
  std::atomic<uint64_t> limited_{0};
};

}  // namespace segd::server::access
