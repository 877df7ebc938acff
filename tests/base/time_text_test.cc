// Unit tests: RFC 3339 times, written and read, the leap second and the edges of the range.

#include "base/time_text.h"

#include <string>

#include "gtest/gtest.h"

namespace segd {
namespace {

std::string Format(int64_t ms) {
  std::string out;
  AppendRfc3339Millis(&out, ms);
  return out;
}

TEST(TimeText, WritesUtcToTheMillisecond) {
  EXPECT_EQ(Format(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Format(1790000000123), "2026-09-21T14:13:20.123Z");
  EXPECT_EQ(Format(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(Format(1800000000000), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(Format(253402300799999), "9999-12-31T23:59:59.999Z");
}

// The cached writer gives what AppendRfc3339Millis gives, across seconds, back and forth.
TEST(TimeText, TheCachedWriterWritesTheSame) {
  Rfc3339Writer writer;
  for (int64_t ms :
       {int64_t{1790000000123}, int64_t{1790000000999}, int64_t{1790000001000},
        int64_t{1790000000000}, int64_t{-1}, int64_t{-1000}, int64_t{-999}, int64_t{0}}) {
    std::string cached;
    writer.Append(&cached, ms);
    EXPECT_EQ(cached, Format(ms)) << ms;
  }
}

TEST(TimeText, ReadsWhatItWritesAndCutsFractionsTowardsThePast) {
  for (int64_t ms : {int64_t{0}, int64_t{-1}, int64_t{1790000000123}, int64_t{253402300799999},
                     int64_t{-62135596800000}}) {
    auto back = ParseRfc3339Millis(Format(ms));
    ASSERT_TRUE(back.ok()) << Format(ms) << ": " << back.status();
    EXPECT_EQ(*back, ms);
  }
  EXPECT_EQ(*ParseRfc3339Millis("2026-11-22T10:00:00.123999Z"), 1795341600123);
  EXPECT_EQ(*ParseRfc3339Millis("1969-12-31T23:59:59.9999Z"), -1);
  EXPECT_EQ(*ParseRfc3339Millis("2026-11-22t12:00:00+02:00"), 1795341600000);
  EXPECT_EQ(*ParseRfc3339Millis("2026-11-22T05:30:00-04:30"), 1795341600000);
  EXPECT_EQ(*ParseRfc3339Millis("2026-11-22T10:00:00z"), 1795341600000);
}

// 2016-12-31T23:59:60Z was a real leap second: it stays in 2016, after 23:59:59.
TEST(TimeText, ALeapSecondStaysInItsOwnMinute) {
  const int64_t last_second = *ParseRfc3339Millis("2016-12-31T23:59:59Z");
  const int64_t next_year = *ParseRfc3339Millis("2017-01-01T00:00:00Z");
  EXPECT_EQ(*ParseRfc3339Millis("2016-12-31T23:59:60Z"), last_second);
  EXPECT_EQ(*ParseRfc3339Millis("2016-12-31T23:59:60.500Z"), last_second + 500);
  EXPECT_LT(*ParseRfc3339Millis("2016-12-31T23:59:60.999Z"), next_year);
  EXPECT_EQ(*ParseRfc3339Millis("2017-01-01T08:59:60+09:00"), last_second);
}

TEST(TimeText, RefusesWhatIsNotAFullRfc3339Time) {
  for (const char* bad :
       {"", "2026-11-22", "2026-11-22T10:00:00", "2026-02-30T00:00:00Z", "2026-11-22T24:00:00Z",
        "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00Zjunk", "2026-11-22 10:00:00Z",
        "26-11-22T10:00:00Z", "2026-11-22T10:61:00Z", "2026-11-22T10:00:61Z",
        "2026-13-01T00:00:00Z", "2026-11-22T10:00:00+2:00"}) {
    auto parsed = ParseRfc3339Millis(bad);
    EXPECT_FALSE(parsed.ok()) << bad << " read as " << (parsed.ok() ? Format(*parsed) : "");
    if (!parsed.ok()) {
      EXPECT_NE(parsed.status().message().find("RFC 3339"), absl::string_view::npos);
    }
  }
}

}  // namespace
}  // namespace segd
