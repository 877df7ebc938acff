#pragma once

// Writes a segd-load dataset in the bulk-load formats of the systems segd is compared with
// (bench/compare), so that each of them holds exactly the users and memberships segd holds.
//
//   redis-sets      RESP for `redis-cli --pipe`: one set per segment, `SADD seg-k user ...`,
//                   1,000 members a command.
//   redis-zsets     RESP: one sorted set per segment, `ZADD ttl:seg-k <expiry> user ...`, the
//                   score being the Unix time the membership expires (now + the dataset's TTL,
//                   which must be set): the structure Redis users keep for per-member TTLs.
//   pg-users        PostgreSQL COPY text: `index<TAB>external_id`, one row per user.
//   pg-memberships  PostgreSQL COPY text: `segment_id<TAB>user_index<TAB>end_date`, end_date an
//                   RFC 3339 time (now + TTL) or \N without a TTL.
//
// Thread safety: a free function over an immutable Dataset.

#include <cstdint>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/load/workload.h"

namespace segd::load {

enum class DumpFormat { kRedisSets, kRedisZsets, kPgUsers, kPgMemberships };

absl::StatusOr<DumpFormat> ParseDumpFormat(absl::string_view name);

// Writes the whole dataset to `out`. `now_unix` is the time TTLs count from. Returns the number
// of rows (users or memberships) written.
absl::StatusOr<uint64_t> DumpDataset(const Dataset& dataset, DumpFormat format, int64_t now_unix,
                                     std::FILE* out);

}  // namespace segd::load
