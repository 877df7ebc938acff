#include "server/access/key_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/errors.h"
#include "server/detail/json_input.h"
#include "server/json_writer.h"

namespace segd::server::access {
namespace {

constexpr absl::string_view kPrefix = "segd_";
constexpr size_t kIdHex = 12;
constexpr size_t kSecretHex = 64;
constexpr size_t kKeyBytes = 5 + kIdHex + 1 + kSecretHex;

std::string Sha256(absl::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    return absl::UnavailableError("the system's random source failed");
  }
  return absl::BytesToHexString(raw);
}

bool IsLowerHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " '", path, "': ", std::strerror(errno)));
}

// Writes `text` to `path` so that a crash leaves either the old file or the new one.
absl::Status WriteDurably(const std::string& dir, const std::string& path, absl::string_view text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno("cannot write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = Errno("cannot sync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename", tmp);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

void WriteScope(JsonWriter& json, const std::vector<std::string>& scope) {
  json.BeginArray();
  for (const std::string& g : scope) json.String(g);
  json.EndArray();
}

absl::Status CheckSpec(const KeySpec& spec) {
  if (spec.role == Role::kPublic) return engine::BadRequest("a key needs a role");
  if (spec.description.size() > KeyStore::kMaxDescription) {
    return engine::BadRequest(
        absl::StrCat("'description' is longer than ", KeyStore::kMaxDescription, " bytes"));
  }
  if (spec.segments.size() > KeyStore::kMaxScope) {
    return engine::BadRequest(
        absl::StrCat("'segments' holds more than ", KeyStore::kMaxScope, " globs"));
  }
  for (const std::string& glob : spec.segments) {
    if (!ValidGlob(glob)) {
      return engine::BadRequest(
          absl::StrCat("segment glob ", engine::Quote(glob),
                       " must be 1-128 characters of a segment name, '*' and '?'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<absl::string_view> KeyStore::IdOf(absl::string_view key) {
  if (key.size() != kKeyBytes || key.substr(0, kPrefix.size()) != kPrefix ||
      key[kPrefix.size() + kIdHex] != '_') {
    return std::nullopt;
  }
  absl::string_view id = key.substr(kPrefix.size(), kIdHex);
  if (!IsLowerHex(id) || !IsLowerHex(key.substr(kPrefix.size() + kIdHex + 1))) return std::nullopt;
  return id;
}

std::shared_ptr<const Principal> KeyStore::MakePrincipal(const KeyInfo& info,
                                                         std::shared_ptr<KeyUsage> usage) {
  auto p = std::make_shared<Principal>();
  p->role = info.role;
  p->scope = info.segments;
  p->id = info.id;
  p->usage = std::move(usage);
  return p;
}

absl::StatusOr<std::unique_ptr<KeyStore>> KeyStore::Open(const std::string& data_dir) {
  std::unique_ptr<KeyStore> store(new KeyStore(data_dir));
  if (absl::Status s = store->Load(); !s.ok()) return s;
  return store;
}

absl::Status KeyStore::Load() {
  const std::string path = dir_ + "/keys.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno("cannot read", path);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  auto corrupt = [&path](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("'", path, "' is damaged: ", why));
  };
  std::vector<std::unique_ptr<Record>> loaded;
  absl::Status s = detail::ParseObjectBody(text, [&](std::string_view key, detail::JsonValue& v) {
    if (key == "format") {
      auto format = detail::ReadInt(v, "format");
      if (!format.ok() || *format != 1) return corrupt("unknown format");
      return absl::OkStatus();
    }
    if (key != "keys") return absl::OkStatus();
    return detail::ForEachElement(v, "keys", [&](detail::JsonValue& element) {
      auto record = std::make_unique<Record>();
      KeyInfo& info = record->info;
      std::string digest_hex;
      absl::Status fields = detail::ForEachField(
          element, "key", [&](std::string_view name, detail::JsonValue& f) -> absl::Status {
            if (name == "id") {
              auto id = detail::ReadString(f, "id");
              if (!id.ok()) return id.status();
              info.id = std::string(*id);
            } else if (name == "digest") {
              auto d = detail::ReadString(f, "digest");
              if (!d.ok()) return d.status();
              digest_hex = std::string(*d);
            } else if (name == "role") {
              auto r = detail::ReadString(f, "role");
              if (!r.ok()) return r.status();
              auto role = ParseRole(*r);
              if (!role) return corrupt("unknown role");
              info.role = *role;
            } else if (name == "segments") {
              return detail::ForEachElement(f, "segments", [&](detail::JsonValue& g) {
                auto glob = detail::ReadString(g, "segments");
                if (!glob.ok()) return glob.status();
                info.segments.emplace_back(*glob);
                return absl::OkStatus();
              });
            } else if (name == "description") {
              auto d = detail::ReadString(f, "description");
              if (!d.ok()) return d.status();
              info.description = std::string(*d);
            } else if (name == "created_at") {
              auto t = detail::ReadInt(f, "created_at");
              if (!t.ok()) return t.status();
              info.created_at_ms = *t;
            } else if (name == "created_by") {
              auto b = detail::ReadString(f, "created_by");
              if (!b.ok()) return b.status();
              info.created_by = std::string(*b);
            } else if (name == "last_used_minute") {
              auto m = detail::ReadInt(f, "last_used_minute");
              if (!m.ok()) return m.status();
              info.last_used_minute = *m;
            }
            return absl::OkStatus();
          });
      if (!fields.ok()) return fields;
      if (info.id.size() != kIdHex || !IsLowerHex(info.id) || digest_hex.size() != 64 ||
          !IsLowerHex(digest_hex)) {
        return corrupt("a key without a valid id or digest");
      }
      record->digest = absl::HexStringToBytes(digest_hex);
      record->usage = std::make_shared<KeyUsage>();
      record->usage->last_used_minute.store(info.last_used_minute);
      record->principal = MakePrincipal(info, record->usage);
      loaded.push_back(std::move(record));
      return absl::OkStatus();
    });
  });
  if (!s.ok()) {
    return engine::ErrorCodeOf(s) == "bad_request" ? corrupt(s.message()) : s;
  }
  MutexLock lock(&mu_);
  for (std::unique_ptr<Record>& record : loaded) {
    const std::string id = record->info.id;
    if (keys_.contains(id)) return corrupt("a key id appears twice");
    flushed_minute_[id] = record->info.last_used_minute;
    record->order = next_order_++;
    keys_[id] = std::move(record);
  }
  return absl::OkStatus();
}

std::vector<const KeyStore::Record*> KeyStore::Ordered() const {
  std::vector<const Record*> records;
  for (const auto& [id, r] : keys_) records.push_back(r.get());
  std::sort(records.begin(), records.end(),
            [](const Record* a, const Record* b) { return a->order < b->order; });
  return records;
}

absl::Status KeyStore::WriteFile(const std::vector<const Record*>& records) const {
  std::string text;
  JsonWriter json(&text);
  json.BeginObject().Key("format").Int(1).Key("keys").BeginArray();
  for (const Record* r : records) {
    const KeyInfo& k = r->info;
    json.BeginObject();
    json.Key("id").String(k.id);
    json.Key("digest").String(absl::BytesToHexString(r->digest));
    json.Key("role").String(RoleName(k.role));
    json.Key("segments");
    WriteScope(json, k.segments);
    json.Key("description").String(k.description);
    json.Key("created_at").Int(k.created_at_ms);
    json.Key("created_by").String(k.created_by);
    json.Key("last_used_minute").Int(r->usage->last_used_minute.load(std::memory_order_relaxed));
    json.EndObject();
  }
  json.EndArray().EndObject();
  text.push_back('\n');
  return WriteDurably(dir_, dir_ + "/keys.json", text);
}

absl::Status KeyStore::Audit(absl::string_view action, const KeyInfo& info, absl::string_view by,
                             int64_t now_ms) {
  std::string line;
  JsonWriter json(&line);
  json.BeginObject();
  json.Key("at").Time(now_ms, -1);
  json.Key("action").String(action);
  json.Key("key").String(info.id);
  json.Key("role").String(RoleName(info.role));
  json.Key("segments");
  WriteScope(json, info.segments);
  json.Key("description").String(info.description);
  json.Key("by").String(by);
  json.EndObject();
  line.push_back('\n');
  const std::string path = dir_ + "/audit.log";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open", path);
  const ssize_t n = ::write(fd, line.data(), line.size());
  const bool ok = n == static_cast<ssize_t>(line.size()) && ::fdatasync(fd) == 0;
  absl::Status s = ok ? absl::OkStatus() : Errno("cannot append to", path);
  ::close(fd);
  return s;
}

absl::StatusOr<CreatedKey> KeyStore::Create(const KeySpec& spec, absl::string_view by,
                                            int64_t now_ms) {
  if (absl::Status s = CheckSpec(spec); !s.ok()) return s;
  MutexLock lock(&mu_);
  if (keys_.size() >= kMaxKeys) {
    return engine::BadRequest(absl::StrCat("segd holds at most ", kMaxKeys, " keys"));
  }
  std::string id;
  do {
    auto hex = RandomHex(kIdHex / 2);
    if (!hex.ok()) return hex.status();
    id = *std::move(hex);
  } while (keys_.contains(id));
  auto secret = RandomHex(kSecretHex / 2);
  if (!secret.ok()) return secret.status();
  CreatedKey created;
  created.key = absl::StrCat(kPrefix, id, "_", *secret);
  KeyInfo& info = created.info;
  info.id = id;
  info.role = spec.role;
  info.segments = spec.segments;
  info.description = spec.description;
  info.created_at_ms = now_ms;
  info.created_by = std::string(by);

  auto record = std::make_unique<Record>();
  record->info = info;
  record->digest = Sha256(created.key);
  record->usage = std::make_shared<KeyUsage>();
  record->principal = MakePrincipal(info, record->usage);
  // Audited first: a key that exists is always in the audit log (an audited key whose file
  // write then failed is audited as created and never usable; the log says so below).
  if (absl::Status s = Audit("key_created", info, by, now_ms); !s.ok()) return s;
  std::vector<const Record*> records = Ordered();
  records.push_back(record.get());
  if (absl::Status s = WriteFile(records); !s.ok()) {
    (void)Audit("key_create_failed", info, by, now_ms);
    return s;
  }
  record->order = next_order_++;
  flushed_minute_[id] = 0;
  keys_[id] = std::move(record);
  ++created_;
  return created;
}

absl::StatusOr<bool> KeyStore::Remove(absl::string_view id, absl::string_view by, int64_t now_ms) {
  MutexLock lock(&mu_);
  auto it = keys_.find(id);
  if (it == keys_.end()) return false;
  std::vector<const Record*> records;
  for (const Record* r : Ordered()) {
    if (r != it->second.get()) records.push_back(r);
  }
  if (absl::Status s = WriteFile(records); !s.ok()) return s;
  // The key is gone from the file; the audit line follows. (A crash in between leaves a
  // deleted key without its line: the file, not the audit log, decides what is live.)
  absl::Status audited = Audit("key_deleted", it->second->info, by, now_ms);
  flushed_minute_.erase(it->first);
  keys_.erase(it);
  ++deleted_;
  if (!audited.ok()) return audited;
  return true;
}

std::vector<KeyInfo> KeyStore::List() const {
  MutexLock lock(&mu_);
  std::vector<KeyInfo> out;
  for (const Record* r : Ordered()) {
    KeyInfo info = r->info;
    info.last_used_minute = r->usage->last_used_minute.load(std::memory_order_relaxed);
    info.requests = r->usage->requests();
    out.push_back(std::move(info));
  }
  return out;
}

size_t KeyStore::size() const {
  MutexLock lock(&mu_);
  return keys_.size();
}

std::shared_ptr<const Principal> KeyStore::Verify(absl::string_view key) const {
  std::optional<absl::string_view> id = IdOf(key);
  if (!id) return nullptr;
  const std::string digest = Sha256(key);
  MutexLock lock(&mu_);
  auto it = keys_.find(*id);
  if (it == keys_.end()) return nullptr;
  if (CRYPTO_memcmp(digest.data(), it->second->digest.data(), digest.size()) != 0) {
    return nullptr;
  }
  return it->second->principal;
}

absl::Status KeyStore::FlushUsage() {
  MutexLock lock(&mu_);
  bool changed = false;
  for (const auto& [id, r] : keys_) {
    if (r->usage->last_used_minute.load(std::memory_order_relaxed) != flushed_minute_[id]) {
      changed = true;
    }
  }
  if (!changed) return absl::OkStatus();
  std::vector<const Record*> records = Ordered();
  if (absl::Status s = WriteFile(records); !s.ok()) return s;
  for (const Record* r : records) {
    flushed_minute_[r->info.id] = r->usage->last_used_minute.load(std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

uint64_t KeyStore::created_total() const {
  MutexLock lock(&mu_);
  return created_;
}

uint64_t KeyStore::deleted_total() const {
  MutexLock lock(&mu_);
  return deleted_;
}

}  // namespace segd::server::access
