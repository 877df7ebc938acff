#include "server/time_text.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/time_text.h"

namespace segd::server {
namespace {

// Reads exactly `n` digits at text[*pos]; false if they are not all digits.
bool Digits(absl::string_view text, size_t* pos, int n, int* value) {
  if (*pos + n > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *value = v;
  return true;
}

bool Expect(absl::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

}  // namespace

int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day) {
  // Howard Hinnant's days_from_civil algorithm.
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

absl::StatusOr<engine::TimeMs> ParseRfc3339(absl::string_view text) {
  return ParseRfc3339Millis(text);
}

absl::StatusOr<std::pair<engine::TimeMs, engine::TimeMs>> ParseMonth(absl::string_view text) {
  size_t pos = 0;
  int year, month;
  if (!Digits(text, &pos, 4, &year) || !Expect(text, &pos, '-') || !Digits(text, &pos, 2, &month) ||
      pos != text.size() || month < 1 || month > 12) {
    return absl::InvalidArgumentError(
        absl::StrCat("period '", text, "' is not a calendar month such as 2023-09"));
  }
  int next_year = month == 12 ? year + 1 : year;
  int next_month = month == 12 ? 1 : month + 1;
  return std::make_pair(DaysFromCivil(year, month, 1) * 86400000,
                        DaysFromCivil(next_year, next_month, 1) * 86400000);
}

absl::StatusOr<int64_t> ParseDurationSeconds(absl::string_view text) {
  absl::string_view digits = text;
  int64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        unit = 1;
        digits.remove_suffix(1);
        break;
      case 'm':
        unit = 60;
        digits.remove_suffix(1);
        break;
      case 'h':
        unit = 3600;
        digits.remove_suffix(1);
        break;
      case 'd':
        unit = 86400;
        digits.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  int64_t n = 0;
  constexpr int64_t kMax = int64_t{100} * 365 * 86400;
  if (digits.empty() || !absl::SimpleAtoi(digits, &n) || n <= 0 || n > kMax / unit ||
      digits[0] == '+' || digits[0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a duration; write a positive number with s, m, h or d (90s, 4h)"));
  }
  return n * unit;
}

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  absl::string_view digits = text;
  uint64_t unit = 1;
  struct Suffix {
    absl::string_view text;
    uint64_t unit;
  };
  static constexpr Suffix kSuffixes[] = {
      {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
      {"KB", 1ull << 10},  {"MB", 1ull << 20},  {"GB", 1ull << 30},
      {"K", 1ull << 10},   {"M", 1ull << 20},   {"G", 1ull << 30},
  };
  for (const Suffix& s : kSuffixes) {
    if (absl::EndsWith(text, s.text)) {
      digits = text.substr(0, text.size() - s.text.size());
      unit = s.unit;
      break;
    }
  }
  uint64_t n = 0;
  if (digits.empty() || digits[0] == '+' || !absl::SimpleAtoi(digits, &n) || n == 0 ||
      n > std::numeric_limits<uint64_t>::max() / unit) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a byte size; write e.g. 1048576, 512KiB, 1MiB, 1GiB"));
  }
  return n * unit;
}

}  // namespace segd::server
