#include "base/time_text.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace segd {

namespace {

// Appends `v` as exactly `width` digits (0 <= v < 10^width).
void AppendDigits(std::string* out, int64_t v, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out->append(buf, static_cast<size_t>(width));
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// The calendar comes from Abseil (absl::ToCivilSecond); only fixed-width digits are written
// here. absl::FormatTime reads its format string on every call, which made a CSV report of
// millions of rows with expiries half as fast.
void AppendSecond(std::string* out, int64_t second) {
  const absl::CivilSecond civil =
      absl::ToCivilSecond(absl::FromUnixSeconds(second), absl::UTCTimeZone());
  AppendDigits(out, civil.year(), 4);
  out->push_back('-');
  AppendDigits(out, civil.month(), 2);
  out->push_back('-');
  AppendDigits(out, civil.day(), 2);
  out->push_back('T');
  AppendDigits(out, civil.hour(), 2);
  out->push_back(':');
  AppendDigits(out, civil.minute(), 2);
  out->push_back(':');
  AppendDigits(out, civil.second(), 2);
}

// The milliseconds and the zone after a second's text.
void AppendFraction(std::string* out, int64_t ms, int64_t second) {
  out->push_back('.');
  AppendDigits(out, ms - second * 1000, 3);
  out->push_back('Z');
}

}  // namespace

void AppendRfc3339Millis(std::string* out, int64_t ms) {
  const int64_t second = FloorDiv(ms, 1000);
  AppendSecond(out, second);
  AppendFraction(out, ms, second);
}

void Rfc3339Writer::Append(std::string* out, int64_t ms) {
  const int64_t second = FloorDiv(ms, 1000);
  if (second != second_) {
    second_ = second;
    prefix_.clear();
    AppendSecond(&prefix_, second);
  }
  out->append(prefix_);
  AppendFraction(out, ms, second);
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
