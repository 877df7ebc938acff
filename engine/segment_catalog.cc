#include "engine/segment_catalog.h"

#include "absl/strings/str_cat.h"
#include "engine/errors.h"

namespace segd::engine {
namespace {

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

absl::Status SegmentCatalog::ValidateName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return BadRequest(absl::StrCat("segment name must be 1-", kMaxNameBytes, " characters"));
  }
  if (!IsAlnum(name[0])) {
    return BadRequest("segment name must start with a letter or digit");
  }
  for (char c : name) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != ':' && c != '-') {
      return BadRequest("segment name may hold only letters, digits and _ . : -");
    }
  }
  return absl::OkStatus();
}

std::optional<SegmentId> SegmentCatalog::Find(absl::string_view name) const {
  ReaderMutexLock lock(&mu_);
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<SegmentId> SegmentCatalog::FindActive(absl::string_view name) const {
  ReaderMutexLock lock(&mu_);
  auto it = ids_.find(name);
  if (it == ids_.end() || entries_[it->second]->meta.deleted()) return std::nullopt;
  return it->second;
}

SegmentMeta SegmentCatalog::Get(SegmentId id) const {
  ReaderMutexLock lock(&mu_);
  return entries_[id]->meta;
}

bool SegmentCatalog::IsActive(SegmentId id) const {
  ReaderMutexLock lock(&mu_);
  return id < entries_.size() && !entries_[id]->meta.deleted();
}

std::string SegmentCatalog::Name(SegmentId id) const {
  ReaderMutexLock lock(&mu_);
  return entries_[id]->name;
}

std::optional<SegmentCatalog::Active> SegmentCatalog::ResolveActive(absl::string_view name) const {
  ReaderMutexLock lock(&mu_);
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  const SegmentMeta& meta = entries_[it->second]->meta;
  if (meta.deleted()) return std::nullopt;
  return Active{it->second, meta.ttl_seconds};
}

void SegmentCatalog::NamesOf(absl::Span<const SegmentId> ids,
                             std::vector<absl::string_view>* out) const {
  ReaderMutexLock lock(&mu_);
  for (SegmentId id : ids) out->push_back(entries_[id]->name);
}

uint32_t SegmentCatalog::size() const {
  ReaderMutexLock lock(&mu_);
  return static_cast<uint32_t>(entries_.size());
}

std::vector<SegmentMeta> SegmentCatalog::All() const {
  ReaderMutexLock lock(&mu_);
  std::vector<SegmentMeta> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e->meta);
  return out;
}

std::vector<SegmentMeta> SegmentCatalog::ActiveSticky() const {
  ReaderMutexLock lock(&mu_);
  std::vector<SegmentMeta> out;
  for (const auto& e : entries_) {
    if (!e->meta.deleted() && e->meta.sticky) out.push_back(e->meta);
  }
  return out;
}

uint64_t SegmentCatalog::Count(SegmentId id) const {
  const Entry* entry;
  {
    ReaderMutexLock lock(&mu_);
    entry = entries_[id].get();
  }
  return entry->count.load(std::memory_order_acquire);
}

absl::Status SegmentCatalog::Upsert(const SegmentMeta& meta) {
  WriterMutexLock lock(&mu_);
  if (meta.id > entries_.size()) {
    return absl::DataLossError(absl::StrCat("segment id ", meta.id, " out of order"));
  }
  auto it = ids_.find(meta.name);
  if (meta.id == entries_.size()) {
    if (it != ids_.end()) {
      return absl::DataLossError(absl::StrCat("segment '", meta.name, "' created twice"));
    }
    if (meta.id > kMaxSegmentId) return LimitExceeded("too many segments");
    auto entry = std::make_unique<Entry>(meta.name);
    entry->meta = meta;
    entries_.push_back(std::move(entry));
    ids_.emplace(meta.name, meta.id);
    return absl::OkStatus();
  }
  if (it == ids_.end() || it->second != meta.id) {
    return absl::DataLossError(absl::StrCat("segment ", meta.id, " renamed to '", meta.name, "'"));
  }
  entries_[meta.id]->meta = meta;
  return absl::OkStatus();
}

void SegmentCatalog::AddToCount(SegmentId id, int64_t delta) {
  Entry* entry;
  {
    ReaderMutexLock lock(&mu_);
    entry = entries_[id].get();
  }
  entry->count.fetch_add(static_cast<uint64_t>(delta), std::memory_order_acq_rel);
}

}  // namespace segd::engine
