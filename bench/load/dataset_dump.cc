#include "bench/load/dataset_dump.h"

#include <ctime>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace segd::load {
namespace {

constexpr uint32_t kMembersPerCommand = 1000;

void AppendBulk(std::string* out, absl::string_view s) {
  absl::StrAppend(out, "$", s.size(), "\r\n", s, "\r\n");
}

// One RESP command: `verb key [score] member [score] member ...`.
void AppendCommand(std::string* out, absl::string_view verb, absl::string_view key,
                   absl::string_view score, const std::vector<std::string>& members) {
  size_t args = 2 + members.size() * (score.empty() ? 1 : 2);
  absl::StrAppend(out, "*", args, "\r\n");
  AppendBulk(out, verb);
  AppendBulk(out, key);
  for (const std::string& m : members) {
    if (!score.empty()) AppendBulk(out, score);
    AppendBulk(out, m);
  }
}

std::string Rfc3339(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool Write(std::FILE* out, std::string* chunk) {
  bool ok = std::fwrite(chunk->data(), 1, chunk->size(), out) == chunk->size();
  chunk->clear();
  return ok;
}

}  // namespace

absl::StatusOr<DumpFormat> ParseDumpFormat(absl::string_view name) {
  if (name == "redis-sets") return DumpFormat::kRedisSets;
  if (name == "redis-zsets") return DumpFormat::kRedisZsets;
  if (name == "pg-users") return DumpFormat::kPgUsers;
  if (name == "pg-memberships") return DumpFormat::kPgMemberships;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dump format '", name,
                   "'; one of redis-sets, redis-zsets, pg-users, pg-memberships"));
}

absl::StatusOr<uint64_t> DumpDataset(const Dataset& dataset, DumpFormat format, int64_t now_unix,
                                     std::FILE* out) {
  const DatasetSpec& spec = dataset.spec();
  if (format == DumpFormat::kRedisZsets && spec.ttl_seconds == 0) {
    return absl::InvalidArgumentError("redis-zsets needs a TTL (--ttl)");
  }
  const int64_t expires = now_unix + spec.ttl_seconds;
  std::string chunk;
  uint64_t rows = 0;
  bool ok = true;
  auto flush_if_big = [&] {
    if (chunk.size() >= (1u << 20)) ok = ok && Write(out, &chunk);
  };

  if (format == DumpFormat::kPgUsers) {
    for (uint64_t i = 0; i < spec.users; ++i, ++rows) {
      absl::StrAppend(&chunk, i, "\t", dataset.UserId(i), "\n");
      flush_if_big();
    }
  } else if (format == DumpFormat::kPgMemberships) {
    const std::string end = spec.ttl_seconds ? Rfc3339(expires) : "\\N";
    for (uint32_t k = 1; k <= spec.segments; ++k) {
      dataset.ForEachMember(k, [&](uint64_t index) {
        absl::StrAppend(&chunk, k, "\t", index, "\t", end, "\n");
        ++rows;
        flush_if_big();
      });
    }
  } else {
    const bool zsets = format == DumpFormat::kRedisZsets;
    const std::string score = zsets ? absl::StrCat(expires) : "";
    for (uint32_t k = 1; k <= spec.segments; ++k) {
      const std::string key = (zsets ? "ttl:" : "") + Dataset::SegmentName(k);
      std::vector<std::string> members;
      auto emit = [&] {
        AppendCommand(&chunk, zsets ? "ZADD" : "SADD", key, score, members);
        members.clear();
        flush_if_big();
      };
      dataset.ForEachMember(k, [&](uint64_t index) {
        members.push_back(dataset.UserId(index));
        ++rows;
        if (members.size() == kMembersPerCommand) emit();
      });
      if (!members.empty()) emit();
    }
  }
  ok = ok && Write(out, &chunk) && std::fflush(out) == 0;
  if (!ok) return absl::DataLossError("cannot write the dataset");
  return rows;
}

}  // namespace segd::load
