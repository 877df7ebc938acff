#include "base/time_text.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace segd {

void AppendRfc3339Millis(std::string* out, int64_t ms) {
  out->append(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone()));
}

void AppendRfc3339Second(std::string* out, int64_t second) {
  out->append(
      absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second), absl::UTCTimeZone()));
}

absl::StatusOr<int64_t> ParseRfc3339Millis(absl::string_view text) {
  // Abseil reads hh:mm:60 as the next minute's :00 and drops its fraction; segd reads it as
  // hh:mm:59 with its fraction, in its own second.
  std::string leap;
  absl::string_view input = text;
  if (text.size() > 18 && text[16] == ':' && text.substr(17, 2) == "60") {
    leap = std::string(text);
    leap[17] = '5';
    leap[18] = '9';
    input = leap;
  }
  absl::Time t;
  std::string error;
  // RFC3339_full: %Y-%m-%d%ET%H:%M:%E*S%Ez; %ET takes 'T' or 't', %Ez takes 'Z', 'z' or an
  // offset. Out-of-range fields (February 30th, 24:00) are refused, not normalised.
  if (!absl::ParseTime(absl::RFC3339_full, input, absl::UTCTimeZone(), &t, &error) ||
      text.size() < 19 || text[4] != '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not an RFC 3339 time (", error.empty() ? "bad date" : error,
                     "); expected e.g. 2026-11-22T10:00:00Z or 2026-11-22T10:00:00.123Z"));
  }
  return absl::ToUnixMillis(t);
}

}  // namespace segd
