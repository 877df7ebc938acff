#pragma once

// KeyStore: segd's API keys, kept in the data directory as digests, and the audit log of their
// creation and deletion.
//
// A key reads `segd_` + a 12-hex-digit id + `_` + 64 hex digits of secret (32 random bytes from
// OpenSSL's RAND_bytes). It is shown once, when created; the store keeps only its SHA-256.
// Checking a key finds its record by the id in it and compares digests in constant time; no
// storage is read (the file is loaded whole at Open).
//
// Files (docs/security.md gives them byte by byte):
//   DIR/keys.json  every live key: {"format":1,"keys":[{"id","digest","role","segments",
//                  "description","created_at","created_by","last_used_at"}, …]}. Rewritten
//                  whole on each change (written beside, fsynced, renamed over, directory
//                  fsynced), so a crash leaves the old file or the new one.
//   DIR/audit.log  one JSON object per line, appended and fsynced before the change is
//                  acknowledged: {"at","action":"key_created"|"key_deleted","key","role",
//                  "segments","description","by"}.
// `last_used_at` (to the minute) is kept in memory and written by FlushUsage, about once a
// minute: after a crash it may be up to that much behind.
//
// The caller holds the data directory (storage::DataDir::Lock or an open OpLog): two
// processes never write these files at once.
//
// Thread safety: every method may be called from any thread; changes are serialised by mu_.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"
#include "server/access/principal.h"

namespace segd::server::access {

struct KeySpec {
  Role role = Role::kReader;
  std::vector<std::string> segments;  // scope globs; empty: every segment
  std::string description;
};

struct KeyInfo {
  std::string id;
  Role role = Role::kReader;
  std::vector<std::string> segments;
  std::string description;
  int64_t created_at_ms = 0;
  std::string created_by;        // "cli", or the id of the key or "jwt" that made it
  int64_t last_used_minute = 0;  // Unix minute, 0: never
  uint64_t requests = 0;         // since this process started
};

struct CreatedKey {
  KeyInfo info;
  std::string key;  // the secret, shown once
};

class KeyStore {
 public:
  // At most this many keys; a description at most kMaxDescription bytes; a key at most
  // kMaxScope globs.
  static constexpr size_t kMaxKeys = 10000;
  static constexpr size_t kMaxDescription = 256;
  static constexpr size_t kMaxScope = 64;

  // Loads DIR/keys.json (none: no keys yet). Errors: DataLoss for a file that does not parse,
  // Unavailable for one that cannot be read.
  static absl::StatusOr<std::unique_ptr<KeyStore>> Open(const std::string& data_dir);

  // Creates a key. `by` names the creator in the audit log. Errors: bad_request for a bad
  // scope glob or description, Unavailable when the files cannot be written (nothing
  // changes then).
  absl::StatusOr<CreatedKey> Create(const KeySpec& spec, absl::string_view by, int64_t now_ms);
  // Deletes key `id`: returns false if there is none. Errors as Create's.
  absl::StatusOr<bool> Remove(absl::string_view id, absl::string_view by, int64_t now_ms);
  // Every key, oldest first, without secrets.
  std::vector<KeyInfo> List() const;
  size_t size() const;

  // The principal of `key` if it is a live key (constant-time digest compare), else null.
  std::shared_ptr<const Principal> Verify(absl::string_view key) const;

  // Writes keys.json if a key's last use moved to a later minute since the last write.
  absl::Status FlushUsage();

  // Counts of audited actions since start, for /metrics.
  uint64_t created_total() const;
  uint64_t deleted_total() const;

  // The 12-hex-digit id inside a well-formed key, nullopt for anything else.
  static std::optional<absl::string_view> IdOf(absl::string_view key);

 private:
  struct Record {
    KeyInfo info;
    std::string digest;  // SHA-256 of the whole key, 32 bytes
    std::shared_ptr<const Principal> principal;
    std::shared_ptr<KeyUsage> usage;
    uint64_t order = 0;  // creation order, for listing
  };
  explicit KeyStore(std::string data_dir) : dir_(std::move(data_dir)) {}
  absl::Status Load();
  // Writes keys.json from `records`. REQUIRES: mu_ held.
  absl::Status WriteFile(const std::vector<const Record*>& records) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<const Record*> Ordered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Audit(absl::string_view action, const KeyInfo& info, absl::string_view by,
                     int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::shared_ptr<const Principal> MakePrincipal(const KeyInfo& info,
                                                        std::shared_ptr<KeyUsage> usage);

  const std::string dir_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Record>> keys_ ABSL_GUARDED_BY(mu_);
  uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
  // last_used minutes as last written, by id.
  absl::flat_hash_map<std::string, int64_t> flushed_minute_ ABSL_GUARDED_BY(mu_);
  uint64_t created_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t deleted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segd::server::access
