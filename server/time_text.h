#pragma once

// Parsing of the times and durations that clients and operators write.
//
// Thread safety: pure functions, reentrant.

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/engine.h"

namespace segd::server {

// RFC 3339: `2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.123456Z`, `2026-11-22T12:00:00+02:00`
// ('T' and 'Z' in either case). Digits past the millisecond are cut (towards the past).
// Errors: InvalidArgument naming what is wrong.
absl::StatusOr<engine::TimeMs> ParseRfc3339(absl::string_view text);

// A calendar month in UTC, `2023-09`: [first millisecond of the month, first of the next).
absl::StatusOr<std::pair<engine::TimeMs, engine::TimeMs>> ParseMonth(absl::string_view text);

// A duration such as `90s`, `30m`, `4h`, `7d` (a bare number is seconds). Returns seconds.
// Errors: InvalidArgument for anything else, zero or negative, or over 100 years.
absl::StatusOr<int64_t> ParseDurationSeconds(absl::string_view text);

// A byte size such as `1048576`, `512KiB`, `1MiB`, `256MiB`, `1GiB` (also K, M, G, KB, MB, GB,
// all powers of 1024). Errors: InvalidArgument, or zero.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

}  // namespace segd::server
