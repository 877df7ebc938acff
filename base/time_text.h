#pragma once

// RFC 3339 times in UTC, the one format segd reads and writes (JSON, CSV, logs), through
// Abseil's time library.
//
// Written: 2026-11-22T10:00:00.123Z — always UTC, always milliseconds.
// Read: a full date and time with a 'T' (or 't'), an optional fraction of any length (cut to
// the millisecond, towards the past), and 'Z' (or 'z') or a +hh:mm/-hh:mm offset. A leap
// second (hh:mm:60) reads as the last millisecond-resolution instant of the second before it
// plus its fraction (23:59:60.5 → 23:59:59.5): it stays in its own minute, day and month,
// which is what a period filter expects of it.
//
// Thread safety: pure functions.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segd {

// Appends `ms` (milliseconds since the Unix epoch) as 2026-11-22T10:00:00.123Z.
void AppendRfc3339Millis(std::string* out, int64_t ms);
// AppendRfc3339Millis for a caller that writes many times close together (a CSV report): it
// keeps the text of the last whole second and reuses it while times stay in that second.
// Confined to one thread at a time.
class Rfc3339Writer {
 public:
  void Append(std::string* out, int64_t ms);

 private:
  int64_t second_ = INT64_MIN;
  std::string prefix_;  // second_ as 2026-11-22T10:00:00
};
// Milliseconds since the epoch. Errors: InvalidArgument naming the text and what is wrong.
absl::StatusOr<int64_t> ParseRfc3339Millis(absl::string_view text);

}  // namespace segd
