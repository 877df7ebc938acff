// Unit tests: Parsing and formatting of times, months, durations and sizes.

#include "server/time_text.h"

#include "gtest/gtest.h"

namespace segd::server {
namespace {

TEST(TimeText, ParsesRfc3339AndCutsToTheMillisecond) {
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.123Z"), 1795341600123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.123999Z"), 1795341600123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:00:00.5Z"), 1795341600500);
  EXPECT_EQ(*ParseRfc3339("2026-11-22t12:00:00+02:00"), 1795341600000);
  EXPECT_EQ(*ParseRfc3339("1969-12-31T23:59:59.999Z"), -1);
  for (const char* bad :
       {"", "2026-11-22", "2026-11-22T10:00:00", "2026-02-30T00:00:00Z", "2026-11-22T24:00:00Z",
        "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00Zjunk", "2026-11-22 10:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(TimeText, MonthsDurationsAndSizes) {
  auto sept = ParseMonth("2023-09");
  ASSERT_TRUE(sept.ok());
  EXPECT_EQ(sept->first, *ParseRfc3339("2023-09-01T00:00:00Z"));
  EXPECT_EQ(sept->second, *ParseRfc3339("2023-10-01T00:00:00Z"));
  EXPECT_EQ(ParseMonth("2023-12")->second, *ParseRfc3339("2024-01-01T00:00:00Z"));
  EXPECT_FALSE(ParseMonth("2023-9").ok());
  EXPECT_FALSE(ParseMonth("2023-00").ok());

  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationSeconds("30m"), 1800);
  EXPECT_EQ(*ParseDurationSeconds("4h"), 14400);
  EXPECT_EQ(*ParseDurationSeconds("7d"), 604800);
  EXPECT_EQ(*ParseDurationSeconds("15"), 15);
  for (const char* bad : {"", "h", "0s", "-5s", "1.5h", "4w", "+4h"}) {
    EXPECT_FALSE(ParseDurationSeconds(bad).ok()) << bad;
  }
  EXPECT_EQ(*ParseByteSize("1MiB"), 1u << 20);
  EXPECT_EQ(*ParseByteSize("512KiB"), 512u << 10);
  EXPECT_EQ(*ParseByteSize("2048"), 2048u);
  EXPECT_FALSE(ParseByteSize("0").ok());
  EXPECT_FALSE(ParseByteSize("1TiB").ok());
}

}  // namespace
}  // namespace segd::server
